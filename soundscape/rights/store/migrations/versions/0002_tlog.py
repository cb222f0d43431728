"""Ledger format version 2: the tree's interior hashes as tlog tiles, and C2SP checkpoints.

Adds ``ledger_tiles`` (one row per tile entry of level >= 1 in the C2SP tlog-tiles layout,
height 8: entry ``idx`` of level ``L`` is the RFC 6962 root of leaves ``[idx·256^L,
(idx+1)·256^L)``), fills it from the existing leaf hashes, and records format version 2 in
``ledger_meta``. From version 2 on, new checkpoints are C2SP signed notes, held whole in
``ledger_checkpoints.signature`` (a version-1 signature is one base64 line; a note has
newlines), so that column needs no change.

The tile hashing is spelled out here rather than imported, so the revision keeps meaning what
it meant when the live code changes.

Revision ID: 0002_tlog
Revises: 0001_baseline
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002_tlog"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

# C2SP tlog-tiles: tiles of height 8, so a level-L entry covers 256**L leaves.
TILE_HEIGHT = 8
# Rows per INSERT while filling the table.
CHUNK = 5000


def _tile_entries(leaves):
    """Yield ``(level, idx, hash)`` for every full 256**L-leaf subtree (L >= 1), RFC 6962 hashing."""
    hashes: list[bytes] = []
    sizes: list[int] = []
    count = 0
    for leaf in leaves:
        h, s = bytes(leaf), 1
        while sizes and sizes[-1] == s:
            h = hashlib.sha256(b"\x01" + hashes.pop() + h).digest()
            s += sizes.pop()
            level = (s.bit_length() - 1) // TILE_HEIGHT
            if level and s == 1 << (TILE_HEIGHT * level):
                yield level, count // s, h
        hashes.append(h)
        sizes.append(s)
        count += 1


def upgrade() -> None:
    tiles = op.create_table(
        "ledger_tiles",
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    conn = op.get_bind()
    leaves = (row[0] for row in conn.execute(
        sa.text("SELECT leaf_hash FROM ledger_records ORDER BY seq")))
    rows = [{"level": level, "idx": idx, "hash": h} for level, idx, h in _tile_entries(leaves)]
    for start in range(0, len(rows), CHUNK):
        op.bulk_insert(tiles, rows[start:start + CHUNK])
    op.execute("UPDATE ledger_meta SET value = '2' WHERE key = 'version'")


def downgrade() -> None:
    # Checkpoints written as signed notes cannot be read by format-1 code: refuse rather than
    # leave a ledger the older code would call tampered.
    conn = op.get_bind()
    notes = conn.execute(sa.text(
        "SELECT count(*) FROM ledger_checkpoints WHERE signature LIKE '%' || :nl || '%'"),
        {"nl": "\n"}).scalar()
    if notes:
        raise RuntimeError(f"{notes} checkpoints are C2SP signed notes, which ledger format 1 "
                           "cannot verify; this revision cannot be downgraded")
    op.drop_table("ledger_tiles")
    op.execute("UPDATE ledger_meta SET value = '1' WHERE key = 'version'")
