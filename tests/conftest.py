"""Fixtures every test may use: one seeded random generator, as librosa's tests keep one."""

from __future__ import annotations

import numpy as np
import pytest

# One seed for the noise in every test: a failure reproduces exactly.
RNG_SEED = 440


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator seeded with :data:`RNG_SEED`: every test draws the same numbers."""
    return np.random.default_rng(seed=RNG_SEED)


@pytest.fixture(scope="session")
def make_rng():
    """Fresh seeded generators for fixtures that outlive one test (module or session scope)."""
    return lambda: np.random.default_rng(seed=RNG_SEED)


# -- ledger backends ---------------------------------------------------------------------------
# The ledger's tests run on SQLite and on PostgreSQL. The server is private to this test run
# (tests/pgserver.py: initdb into a temporary folder, a unix socket only, an unprivileged user),
# started once on first use and stopped at the end; each test gets a database of its own.

@pytest.fixture(scope="session")
def pg_server():
    """The run's PostgreSQL server; skips (with the reason) where none can be started."""
    from pgserver import PgServer, Unavailable

    try:
        server = PgServer()
    except Unavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


class Backend:
    """Where a test's ledgers live: ``use(home)`` points the workspace at ``home`` there.

    For SQLite that is the workspace's own ``ledger.sqlite`` (the default, nothing written); for
    PostgreSQL a new database on the run's server, named in ``home/soundscape.toml`` as
    ``ledger_url`` exactly as a team would.
    """

    def __init__(self, name: str, server=None):
        self.name = name
        self.server = server
        self.urls: dict = {}

    def use(self, home, *, url: str | None = None) -> str:
        from pathlib import Path

        home = Path(home)
        if self.name == "sqlite":
            return f"sqlite:///{home / 'ledger.sqlite'}"
        if home not in self.urls:
            self.urls[home] = url or self.server.create_database()
            home.mkdir(parents=True, exist_ok=True)
            (home / "soundscape.toml").write_text(f'ledger_url = "{self.urls[home]}"\n')
        return self.urls[home]

    def url(self, home) -> str:
        return self.use(home)

    def connect(self, home):
        """A raw autocommit connection to the ledger database of ``home``, for tampering with
        it as an attacker with database access would; SQL uses ``?`` placeholders on both."""
        import sqlite3

        if self.name == "sqlite":
            from pathlib import Path

            return sqlite3.connect(Path(home) / "ledger.sqlite", isolation_level=None)
        return _PgConnection(self.use(home))

    def close(self) -> None:
        for url in set(self.urls.values()):
            self.server.drop_database(url)


class _PgConnection:
    """sqlite3's ``execute(sql, params)`` on a psycopg connection (autocommit)."""

    def __init__(self, url: str):
        import psycopg
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.con = psycopg.connect(host=parsed.query["host"], user=parsed.username,
                                   dbname=parsed.database, autocommit=True)

    def execute(self, sql: str, params=()):
        return self.con.execute(sql.replace("?", "%s"), tuple(params))

    def close(self) -> None:
        self.con.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def ledger_backend(request):
    """Each test that takes this runs twice: on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    backend = Backend("postgresql", request.getfixturevalue("pg_server"))
    yield backend
    backend.close()
