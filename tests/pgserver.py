"""A private PostgreSQL server for one test run (or one benchmark): initdb into a temporary
folder, listen on a unix socket in that folder only (no TCP port at all), stop and remove it all
at the end. PostgreSQL refuses to run as root, so under root the server runs as an unprivileged
user (``postgres`` from Debian's package, or ``soundscape-pg`` made by
scripts/ensure-postgres.sh) through ``runuser``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

# The cluster's superuser. Trust authentication is safe here: the only way in is a unix socket
# inside a folder of mode 0700 this run made (root, the client under root, passes it anyway).
SUPERUSER = "soundscape"
UNPRIVILEGED_USERS = ("postgres", "soundscape-pg")
START_TIMEOUT_S = 60


def find_bindir() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: Debian's newest, else whatever is on PATH."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                    reverse=True):
        if all(os.access(Path(d) / n, os.X_OK) for n in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


class Unavailable(Exception):
    """No server can be started here; the message says why (tests skip with it)."""


class PgServer:
    """One running server; ``url(db)`` names a database on it, ``create_database()`` makes one."""

    def __init__(self, *, durable: bool = False):
        self.bindir = find_bindir()
        if self.bindir is None:
            raise Unavailable("PostgreSQL's server programs are not installed "
                              "(make postgres installs Debian's postgresql)")
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = next((u for u in UNPRIVILEGED_USERS if _user_exists(u)), None)
            if self.run_as is None:
                raise Unavailable("running as root and no unprivileged user to run PostgreSQL as "
                                  "(make postgres makes one)")
        self.root = Path(tempfile.mkdtemp(prefix="soundscape-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self._names = itertools.count(1)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "--no-sync")
            options = [f"-c listen_addresses=''", f"-c unix_socket_directories={self.socket_dir}",
                       "-c max_connections=60", "-c shared_buffers=64MB"]
            if not durable:
                # Tests kill clients, never the server: its own crash safety is not what they
                # measure, and fsync on two shared cores would cost the suite seconds.
                options += ["-c fsync=off", "-c synchronous_commit=off",
                            "-c full_page_writes=off"]
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                      "-w", "-t", str(START_TIMEOUT_S), "-o", " ".join(options), "start")
        except subprocess.CalledProcessError as exc:
            log = (self.root / "server.log")
            detail = log.read_text(errors="replace")[-500:] if log.exists() else exc.stderr
            shutil.rmtree(self.root, ignore_errors=True)
            raise Unavailable(f"PostgreSQL did not start: {detail.strip()}") from None

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / program), *args]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True,
                              cwd=self.root, timeout=START_TIMEOUT_S + 30)

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for ``database`` over the unix socket (psycopg 3)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def admin(self):
        import psycopg

        return psycopg.connect(host=str(self.socket_dir), user=SUPERUSER, dbname="postgres",
                               autocommit=True)

    def create_database(self, prefix: str = "ledger") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with self.admin() as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with self.admin() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
