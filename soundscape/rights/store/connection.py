"""Database connections for the ledger: SQLite in WAL mode, or PostgreSQL (psycopg 3), one writer at a time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from soundscape.errors import LedgerError
from soundscape.rights.store.schema import LEDGER_FORMAT

# A writer waits this long for another process's transaction before giving up (seconds).
BUSY_TIMEOUT_S = 120
# SQLite page size for a new ledger file: a record (about 1.2 kB of JSON) fits several to a
# page, where the default 4 KiB page held two and left a third of it empty. Only takes effect
# when the file is created (an existing ledger keeps its page size).
SQLITE_PAGE_SIZE = 16384
# Page cache per connection (KiB, SQLite's negative form): the random-keyed lookup indexes of a
# million records stay in memory, so appends do not slow down as the ledger grows.
SQLITE_CACHE_KIB = 131072
# Pages the write-ahead log may hold before a commit copies them back into the file (SQLite's
# default is 1,000). A batch of 1,000 records dirties about that many index pages (the lookup
# indexes are keyed by random hashes), so the default copied every page back on every commit;
# at 8,192 (128 MiB) a page rewritten by several commits is copied once. Durability is the
# WAL's, with synchronous=FULL: a commit is on disk when it returns, whatever this says.
SQLITE_WAL_AUTOCHECKPOINT = 8192
# PostgreSQL advisory lock key for the single-writer rule ("SSLEDGER" as a 64-bit integer).
PG_WRITE_LOCK = int.from_bytes(b"SSLEDGER", "big") & 0x7FFFFFFFFFFFFFFF


def connect(url: str) -> tuple[Engine, str, str]:
    """The SQLAlchemy engine for a ledger URL, its dialect name, and a label for messages.

    Raises:
        LedgerError: not a database URL, an in-memory SQLite, a file that is not a ledger,
            a folder that cannot be made, or no driver for the database.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, TypeError, ValueError):
        raise LedgerError(f"ledger URL {url!r} is not a database URL: expected "
                          "sqlite:///path/to/ledger.sqlite or postgresql://...") from None
    dialect = parsed.get_backend_name()
    label = parsed.database if dialect == "sqlite" else parsed.render_as_string()
    if dialect == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise LedgerError("the ledger needs a file: an in-memory SQLite URL cannot be shared")
        db = Path(parsed.database)
        check_sqlite_file(db)
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger's folder {db.parent}: "
                              f"{exc.strerror or exc}") from None
        # A pooled connection stays open between transactions: closing SQLite's last
        # connection checkpoints and removes the WAL, which would cost every write.
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine, dialect, label
    if parsed.drivername == "postgresql":
        # SQLAlchemy's plain postgresql:// means psycopg2; the driver shipped with soundscape is
        # psycopg 3, so a team's soundscape.toml can say postgresql://... and just work.
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        # pool_pre_ping: a pooled connection the server dropped (a restart, an idle timeout on
        # a shared server) is replaced before use instead of failing the next write.
        return create_engine(parsed, pool_pre_ping=True), dialect, label
    except (NoSuchModuleError, ImportError) as exc:
        raise LedgerError(f"ledger URL {label}: no database driver for "
                          f"{parsed.drivername!r} is installed ({exc})") from None


def check_sqlite_file(path: Path) -> None:
    """Refuse, without writing to it, a file that exists but is not a soundscape ledger.

    A database with no tables yet is accepted: another process may be creating the ledger
    right now (its schema and metadata commit together, so it is empty or complete).
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with open(path, "rb") as handle:
            header = handle.read(16)
    except OSError as exc:
        raise LedgerError(f"cannot read the ledger {path}: {exc.strerror or exc}") from None
    if header != b"SQLite format 3\x00":
        raise LedgerError(f"{path} is not a soundscape ledger")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return
            row = (con.execute("SELECT value FROM ledger_meta WHERE key = 'format'").fetchone()
                   if "ledger_meta" in tables else None)
        finally:
            con.close()
    except sqlite3.Error:
        row = None
    if not row or row[0] != LEDGER_FORMAT:
        raise LedgerError(f"{path} is not a soundscape ledger")


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite driver would otherwise
    # begin lazily and deferred, which lets two writers deadlock on the upgrade to a write lock).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    cur.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
    cur.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    # WAL: readers never block the writer; FULL: a committed record survives power loss.
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT}")
    # Once copied back, the log file is cut to this size rather than left at its peak.
    cur.execute(f"PRAGMA journal_size_limit = {SQLITE_WAL_AUTOCHECKPOINT * SQLITE_PAGE_SIZE}")
    cur.close()


def _sqlite_on_begin(conn) -> None:
    immediate = conn.get_execution_options().get("ledger_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
