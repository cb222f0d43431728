"""The ledger's schema version: Alembic revisions in ``migrations/versions/``, applied on open.

Each revision is one step of the schema (``0001_baseline`` is the schema ledger format version 1
wrote); the revision a database stands at is kept in its ``alembic_version`` table. A ledger made
before migrations existed has the baseline's tables and no version: it is stamped at the
baseline, never re-created. Alembic is imported only when a migration is due: importing it
costs more than opening the ledger, and every command opens one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import inspect

from soundscape.errors import LedgerError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"
# The tables the baseline revision makes; a database holding them and no version is a ledger
# from before migrations.
BASELINE_TABLES = ("ledger_meta", "ledger_records", "ledger_checkpoints")
# Where Alembic keeps the revision a database stands at.
VERSION_TABLE = "alembic_version"


def config(connection=None):
    """An Alembic config for the ledger's migrations, using ``connection`` when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def known() -> tuple[str, ...]:
    """Every revision this soundscape knows, oldest first.

    Read from the file names alone (a revision's id is its file's name, ``NNNN_topic``, and the
    numbers run in order), so opening a current ledger never imports Alembic;
    ``tests/rights/test_migrations.py`` checks that Alembic's own reading agrees.
    """
    return tuple(sorted(p.stem for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py")))


def head() -> str:
    """The newest revision this soundscape knows."""
    return known()[-1]


def alembic_heads() -> list[str]:
    """The heads as Alembic reads the revision files (for checking the naming rule above)."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(config()).get_heads())


def current(conn) -> str | None:
    """The revision the database at ``conn`` stands at; None when it has no version table."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    revs = [r[0] for r in conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}")]
    if len(revs) > 1:
        raise LedgerError(f"the ledger's schema names {len(revs)} revisions at once "
                          f"({', '.join(sorted(revs))}); it was migrated by hand on two branches")
    return revs[0] if revs else None


def needs_upgrade(conn) -> bool:
    """True when the database is behind (or empty): an upgrade, under the write lock, is due."""
    rev = current(conn)
    check_known(rev)
    return rev != head()


def check_known(rev: str | None) -> None:
    """Refuse a database a newer soundscape has migrated past what this one knows."""
    if rev is not None and rev not in known():
        raise LedgerError(f"the ledger's schema is at revision {rev}, which this soundscape does "
                          f"not know (it knows up to {head()}): upgrade soundscape to open it")


def upgrade(conn) -> str:
    """Bring the database at ``conn`` to the head revision, inside the caller's transaction.

    The caller holds the single-writer lock, so two processes opening a new ledger at once
    migrate it once. Returns the revision the database stood at before (None: empty).
    """
    from alembic import command

    before = current(conn)
    check_known(before)
    if before == head():
        return before
    heads = alembic_heads()
    if heads != [head()]:
        raise LedgerError(f"the ledger's migrations end in {', '.join(heads)} but the newest file "
                          f"is {head()}: a revision's id must be its file's name and name the "
                          "one before it as down_revision")
    cfg = config(conn)
    if before is None:
        tables = set(inspect(conn).get_table_names())
        if tables & set(BASELINE_TABLES):
            missing = [t for t in BASELINE_TABLES if t not in tables]
            if missing:
                raise LedgerError(f"the ledger has no schema version and lacks table(s) "
                                  f"{', '.join(missing)}: it is not a ledger this soundscape "
                                  "can upgrade")
            # Made before migrations existed: its tables are the baseline's; record that.
            command.stamp(cfg, BASELINE)
    command.upgrade(cfg, "head")
    return before
