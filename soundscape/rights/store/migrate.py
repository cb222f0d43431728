"""The ledger's schema version: Alembic revisions in ``migrations/versions/``, applied on open.

Each revision is one step of the schema (``0001_baseline`` is the schema ledger format version 1
wrote); the revision a database stands at is kept in its ``alembic_version`` table. A ledger made
before migrations existed has the baseline's tables and no version: it is stamped at the
baseline, never re-created. Alembic is imported inside these functions: it costs tens of
milliseconds, and ``soundscape --help`` must stay instant.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from soundscape.errors import LedgerError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"
# The tables the baseline revision makes; a database holding them and no version is a ledger
# from before migrations.
BASELINE_TABLES = ("ledger_meta", "ledger_records", "ledger_checkpoints")


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
def head() -> str:
    """The newest revision this soundscape knows (there is exactly one head)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(config()).get_heads()
    if len(heads) != 1:
        raise LedgerError(f"the ledger's migrations have {len(heads)} heads ({', '.join(heads)}); "
                          "a revision is missing its down_revision")
    return heads[0]


@lru_cache(maxsize=1)
def known() -> frozenset[str]:
    """Every revision this soundscape knows."""
    from alembic.script import ScriptDirectory

    return frozenset(s.revision for s in ScriptDirectory.from_config(config()).walk_revisions())


def current(conn) -> str | None:
    """The revision the database at ``conn`` stands at; None when it has no version table."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


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
    from sqlalchemy import inspect

    before = current(conn)
    check_known(before)
    if before == head():
        return before
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
