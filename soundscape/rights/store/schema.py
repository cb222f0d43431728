"""The ledger's tables, what a row is, and which body fields the lookup columns copy.

Tables: ``ledger_meta`` (format, version, public key), ``ledger_records`` (seq, id, kind, the
canonical JSON body, its leaf hash, and two derived lookup columns), ``ledger_checkpoints``
(one per batch; the writer's tree frontier is kept beside each so appends need no full scan).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Column, Index, Integer, LargeBinary, MetaData, String, Table, Text

LEDGER_FORMAT = "soundscape-ledger"
LEDGER_VERSION = "1"
ID_PREFIX = {"license": "lic", "asset": "asset", "dataset": "ds", "model": "model",
             "output": "out", "correction": "fix"}

metadata = MetaData()
meta_table = Table(
    "ledger_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
records_table = Table(
    "ledger_records", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("lookup", String(255)),
    Column("lookup2", String(255)),
    Column("body", Text, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Index("ix_ledger_records_kind_lookup", "kind", "lookup"),
    Index("ix_ledger_records_kind_lookup2", "kind", "lookup2"),
    Index("ix_ledger_records_kind_seq", "kind", "seq"),
)
checkpoints_table = Table(
    "ledger_checkpoints", metadata,
    Column("size", Integer, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("time", String(40), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", Text, nullable=False),
    Column("frontier", Text, nullable=False),
)


# The derived lookup columns of each kind: which body fields the two indexed columns copy.
LOOKUP_KEYS = {"asset": ("audio_sha256", "file_sha256"), "output": ("audio_sha256", "content_key"),
               "model": ("name", "lm_sha256"), "dataset": ("name", "version"),
               "license": ("license_id", None), "correction": ("target", None)}


def lookup_columns(body: dict) -> tuple:
    """The (lookup, lookup2) columns a record body implies; verify checks the stored ones."""
    keys = LOOKUP_KEYS.get(body.get("kind"), (None, None))
    return tuple(body.get(k) if k else None for k in keys)


def utc_now() -> str:
    """The current UTC time, ISO 8601 with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the tree: ``size`` records with root hash ``root`` (hex)."""

    size: int
    root: str
    time: str
    key_id: str
    signature: str

    def to_dict(self) -> dict:
        return {"size": self.size, "root": self.root, "time": self.time,
                "key_id": self.key_id, "signature": self.signature}


@dataclass(frozen=True)
class StoredRecord:
    """One ledger row: its global position ``seq`` (1-based), id, kind and parsed body."""

    seq: int
    id: str
    kind: str
    body: dict
    text: str


def checkpoint_of(row) -> Checkpoint:
    """A checkpoint row as a :class:`Checkpoint`."""
    return Checkpoint(size=row.size, root=row.root, time=row.time, key_id=row.key_id,
                      signature=row.signature)


def stored_of(row) -> StoredRecord:
    """A record row (seq, id, kind, body) as a :class:`StoredRecord`."""
    return StoredRecord(seq=row.seq, id=row.id, kind=row.kind, body=json.loads(row.body),
                        text=row.body)
