"""Ledger format version 3: lookups indexed by a 64-bit key of the value, not its text.

Adds ``ledger_records.lookup_key`` and ``lookup2_key`` (BIGINT): the first 8 bytes of the
SHA-256 of ``lookup`` / ``lookup2`` (UTF-8), as a signed big-endian integer; NULL where the
column is NULL. ``lookup2_key`` is kept for assets only, the one kind searched by its second
column alone (by a file's bytes hash); every other search by ``lookup2`` also names ``lookup``.
Fills them for every existing row, drops the two ``(kind, lookup)`` text indexes and indexes
the keys instead. The text columns stay: a lookup matches the key, then compares
the text and the body. Records, leaf hashes, checkpoints and tiles are untouched.

Why: the text indexes held 64-character hashes in random order, about 110 MB each at a million
records; they outgrew the page cache, and each batch of 1,000 appends rewrote most of their
pages. The integer indexes are about 15 MB each.

The key function is spelled out here rather than imported, so the revision keeps meaning what
it meant when the live code changes; on PostgreSQL the same key is computed by the server.

Revision ID: 0003_compact_lookups
Revises: 0002_tlog
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003_compact_lookups"
down_revision = "0002_tlog"
branch_labels = None
depends_on = None

# Rows per UPDATE batch where the key is computed in Python (neither SQLite nor PostgreSQL).
CHUNK = 5000


def _key(value):
    if value is None:
        return None
    return int.from_bytes(hashlib.sha256(str(value).encode("utf-8")).digest()[:8], "big",
                          signed=True)


def _fill(conn) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # A Python function inside one UPDATE: no row crosses into Python and back as a statement.
        conn.connection.driver_connection.create_function("soundscape_lookup_key", 1, _key,
                                                          deterministic=True)
        conn.execute(sa.text("UPDATE ledger_records SET "
                             "lookup_key = soundscape_lookup_key(lookup), "
                             "lookup2_key = CASE WHEN kind = 'asset' THEN "
                             "soundscape_lookup_key(lookup2) END"))
        return
    if dialect == "postgresql":
        # sha256() is built in from PostgreSQL 11; bit(64)::bigint reads the bits as two's
        # complement, the same signed big-endian integer _key gives.
        expr = ("('x' || substr(encode(sha256(convert_to({col}, 'UTF8')), 'hex'), 1, 16))"
                "::bit(64)::bigint")
        conn.execute(sa.text(f"UPDATE ledger_records SET "
                             f"lookup_key = {expr.format(col='lookup')}, "
                             f"lookup2_key = CASE WHEN kind = 'asset' THEN "
                             f"{expr.format(col='lookup2')} END"))
        return
    rows = conn.execute(sa.text("SELECT seq, kind, lookup, lookup2 FROM ledger_records")).all()
    update = sa.text("UPDATE ledger_records SET lookup_key = :k, lookup2_key = :k2 WHERE seq = :s")
    for start in range(0, len(rows), CHUNK):
        conn.execute(update, [{"s": s, "k": _key(a), "k2": _key(b) if kind == "asset" else None}
                              for s, kind, a, b in rows[start:start + CHUNK]])


def upgrade() -> None:
    # The old indexes go first, so the fill does not maintain them; the new ones are built once
    # over the filled columns (a sorted build, not a million random inserts).
    op.drop_index("ix_ledger_records_kind_lookup", table_name="ledger_records")
    op.drop_index("ix_ledger_records_kind_lookup2", table_name="ledger_records")
    op.add_column("ledger_records", sa.Column("lookup_key", sa.BigInteger))
    op.add_column("ledger_records", sa.Column("lookup2_key", sa.BigInteger))
    _fill(op.get_bind())
    op.create_index("ix_ledger_records_lookup_key", "ledger_records", ["lookup_key"])
    op.create_index("ix_ledger_records_lookup2_key", "ledger_records", ["lookup2_key"])
    op.execute("UPDATE ledger_meta SET value = '3' WHERE key = 'version'")


def downgrade() -> None:
    op.drop_index("ix_ledger_records_lookup2_key", table_name="ledger_records")
    op.drop_index("ix_ledger_records_lookup_key", table_name="ledger_records")
    with op.batch_alter_table("ledger_records") as batch:
        batch.drop_column("lookup2_key")
        batch.drop_column("lookup_key")
    op.create_index("ix_ledger_records_kind_lookup", "ledger_records", ["kind", "lookup"])
    op.create_index("ix_ledger_records_kind_lookup2", "ledger_records", ["kind", "lookup2"])
    op.execute("UPDATE ledger_meta SET value = '2' WHERE key = 'version'")
