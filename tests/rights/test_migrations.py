"""The ledger's schema version: new ledgers are made by the Alembic revisions, old ones are
stamped at the baseline and upgraded, and a ledger newer than this soundscape is refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, func, insert, select

from soundscape.config import open_workspace
from soundscape.errors import LedgerError
from soundscape.rights.ledger import Ledger
from soundscape.rights.store import migrate
from soundscape.rights.store.schema import metadata

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ledger-v1"


def schema_differences(url: str) -> list:
    """What Alembic's autogenerate finds between the database and the live schema (schema.py)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return migrate.current(conn)
    finally:
        engine.dispose()


def v1_ledger(home: Path, backend) -> str:
    """The v1 fixture ledger (written before migrations existed) in ``home``, on ``backend``.

    On PostgreSQL it is rebuilt as that code would have made it: the baseline revision's tables
    (what version 1's ``create_all`` made), the same rows, and no version table.
    """
    (home / "keys").mkdir(parents=True)
    for key in (FIXTURE / "keys").iterdir():
        shutil.copy(key, home / "keys" / key.name)
    url = backend.use(home)
    if backend.name == "sqlite":
        shutil.copy(FIXTURE / "ledger.sqlite", home / "ledger.sqlite")
        return url
    source = sqlite3.connect(FIXTURE / "ledger.sqlite")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrate.config(conn), migrate.BASELINE)
            conn.exec_driver_sql(f"DROP TABLE {migrate.VERSION_TABLE}")
            baseline = [t for t in metadata.sorted_tables if t.name in migrate.BASELINE_TABLES]
            for table in baseline:
                cursor = source.execute(f"SELECT * FROM {table.name}")
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, r)) for r in cursor.fetchall()]
                conn.execute(insert(table), rows)
    finally:
        engine.dispose()
        source.close()
    return url


def test_each_revision_is_named_by_its_file_and_follows_the_one_before():
    """The naming rule that lets opening a current ledger skip importing Alembic."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.config())
    revisions = {Path(s.path).stem: s for s in script.walk_revisions()}
    assert sorted(revisions) == list(migrate.known())
    assert all(s.revision == stem for stem, s in revisions.items())
    names = list(migrate.known())
    assert names[0] == migrate.BASELINE and revisions[names[0]].down_revision is None
    for before, after in zip(names, names[1:]):
        assert revisions[after].down_revision == before
    assert migrate.alembic_heads() == [migrate.head()]


def test_a_new_ledger_is_made_by_the_migrations_and_matches_the_schema(tmp_path, ledger_backend):
    url = ledger_backend.use(tmp_path)
    with Ledger.open(open_workspace(tmp_path)) as ledger:
        assert ledger.store.schema_revision() == migrate.head()
    assert revision_of(url) == migrate.head()
    assert schema_differences(url) == []


def test_a_ledger_from_before_migrations_is_stamped_and_still_verifies(tmp_path, ledger_backend):
    url = v1_ledger(tmp_path, ledger_backend)
    assert revision_of(url) is None
    old = [r for r in Ledger.open(open_workspace(tmp_path)).records()]
    with Ledger.open(open_workspace(tmp_path)) as ledger:
        assert ledger.store.schema_revision() == migrate.head()
        report = ledger.verify()
        assert (report.records, report.checkpoints) == (39, 11)
        assert [r.text for r in ledger.records()] == [r.text for r in old]
    assert schema_differences(url) == []


def test_a_ledger_newer_than_this_soundscape_is_refused_untouched(tmp_path, ledger_backend):
    url = ledger_backend.use(tmp_path)
    Ledger.open(open_workspace(tmp_path)).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_future'")
        count = conn.exec_driver_sql("SELECT count(*) FROM ledger_meta").scalar()
    with pytest.raises(LedgerError, match="revision 0099_future, which this soundscape does not "
                                          "know .* upgrade soundscape"):
        Ledger.open(open_workspace(tmp_path))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == \
            "0099_future"
        assert conn.exec_driver_sql("SELECT count(*) FROM ledger_meta").scalar() == count
    engine.dispose()


NEXT_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "9999_test"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("ledger_extra", sa.Column("n", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("ledger_extra")
'''


def test_a_next_revision_dropped_into_versions_upgrades_an_old_ledger(tmp_path, monkeypatch):
    """The layout a later revision (``NNNN_...``, down_revision the current head) drops into."""
    migrations = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, migrations,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9999_test.py").write_text(NEXT_REVISION.replace("{head}", migrate.head()))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrations)
    migrate.known.cache_clear()
    try:
        home = tmp_path / "home"
        from ledger_backends import Backend

        url = v1_ledger(home, Backend("sqlite"))
        with Ledger.open(open_workspace(home)) as ledger:
            assert ledger.store.schema_revision() == "9999_test"
            assert ledger.verify().records == 39
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM ledger_extra").scalar() == 0
            assert conn.execute(select(func.max(metadata.tables["ledger_records"].c.seq))
                                ).scalar() == 39
        engine.dispose()
    finally:
        migrate.known.cache_clear()


@pytest.mark.postgresql
def test_a_read_only_role_reads_a_current_ledger_and_is_told_when_an_old_one_needs_a_write(
        tmp_path, pg_server):
    from ledger_backends import Backend

    old_home, new_home = tmp_path / "old", tmp_path / "new"
    backend = Backend("postgresql", pg_server)
    old_url = v1_ledger(old_home, backend)
    new_url = backend.use(new_home)
    Ledger.open(open_workspace(new_home)).close()  # made, with its metadata
    role = f"reader_{tmp_path.name}"[:60].replace("-", "_")
    with pg_server.admin() as con:
        con.execute(f'CREATE ROLE "{role}" LOGIN')

    def grant(url):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        engine.dispose()

    grant(old_url)
    grant(new_url)
    as_reader = {u: u.replace("soundscape@", f"{role}@") for u in (old_url, new_url)}
    try:
        with Ledger.open_url(as_reader[new_url], new_home / "keys") as ledger:
            assert ledger.verify().records == 0
        with pytest.raises(LedgerError, match="needs its schema brought to revision .* "
                                              "open it once where it can be written") as info:
            Ledger.open_url(as_reader[old_url], old_home / "keys")
        assert "\n" not in str(info.value) and "permission denied" in str(info.value)
        assert revision_of(old_url) is None  # untouched
        with Ledger.open_url(old_url, old_home / "keys") as ledger:  # the owner upgrades it
            assert ledger.verify().records == 39
        grant(old_url)  # the upgrade made alembic_version: the reader is granted it too
        with Ledger.open_url(as_reader[old_url], old_home / "keys") as ledger:
            assert ledger.verify().records == 39
    finally:
        backend.close()
