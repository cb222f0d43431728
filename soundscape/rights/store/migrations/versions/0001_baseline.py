"""The ledger's schema as ledger format version 1 wrote it: metadata, records, checkpoints.

A ledger made before migrations existed already has exactly these tables; opening one stamps it
at this revision instead of running it (see ``migrate.upgrade``). The tables are spelled out here,
not imported from ``schema.py``, so this revision keeps meaning what it meant when later ones
change the live schema.

Revision ID: 0001_baseline
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "ledger_records",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lookup", sa.String(255)),
        sa.Column("lookup2", sa.String(255)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_index("ix_ledger_records_kind_lookup", "ledger_records", ["kind", "lookup"])
    op.create_index("ix_ledger_records_kind_lookup2", "ledger_records", ["kind", "lookup2"])
    op.create_index("ix_ledger_records_kind_seq", "ledger_records", ["kind", "seq"])
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
    )


def downgrade() -> None:
    # A ledger is append-only: going below the baseline would drop every record. Refused.
    raise RuntimeError("the ledger's baseline schema cannot be downgraded")
