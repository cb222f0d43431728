"""The ledger's tables, what a row is, and which body fields the lookup columns copy.

Tables: ``ledger_meta`` (format, version, public key), ``ledger_records`` (seq, id, kind, the
canonical JSON body, its leaf hash, two derived lookup columns and their 64-bit index keys),
``ledger_checkpoints``
(one per batch; the writer's tree frontier is kept beside each so appends need no full scan;
the signature column holds the C2SP signed note, or a first-format base64 signature), and
``ledger_tiles`` (the tree's interior hashes in the C2SP tlog-tiles layout: one row per entry of
level >= 1, so a proof reads O(log n) rows; level 0 is the records' own leaf hashes).

Format version 2 added ``ledger_tiles`` and C2SP checkpoints (Alembic revision
``migrations/versions/0002_tlog.py``). Version 3 indexes the lookup columns by a 64-bit key
(:func:`lookup_key`) instead of their text (``0003_compact_lookups.py``): at a million records
the two text indexes of 64-character hashes were about 110 MB each, outgrew the page cache and
made every batch rewrite most of their pages; the integer ones are about 15 MB. An older ledger
is upgraded when first opened (``database.Store``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table,
                        Text)

from soundscape.rights.merkle import note_signature

LEDGER_FORMAT = "soundscape-ledger"
LEDGER_VERSION = "3"
# Versions this code opens; older ones are upgraded in place when they can be written (version 2
# gained the tiles, version 3 the lookup keys).
READABLE_VERSIONS = ("1", "2", "3")
# The first version with tiles, and the first with lookup keys: a reader that cannot migrate an
# older ledger falls back (proofs from the leaves, lookups by the text columns).
TILES_VERSION = 2
LOOKUP_KEYS_VERSION = 3
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
    # lookup_key(lookup), and lookup_key(lookup2) for the kinds searched by lookup2 alone
    # (LOOKUP2_KEYED): what the lookups are indexed by.
    Column("lookup_key", BigInteger),
    Column("lookup2_key", BigInteger),
    Index("ix_ledger_records_lookup_key", "lookup_key"),
    Index("ix_ledger_records_lookup2_key", "lookup2_key"),
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
tiles_table = Table(
    "ledger_tiles", metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)


# The derived lookup columns of each kind: which body fields the two indexed columns copy.
LOOKUP_KEYS = {"asset": ("audio_sha256", "file_sha256"), "output": ("audio_sha256", "content_key"),
               "model": ("name", "lm_sha256"), "dataset": ("name", "version"),
               "license": ("license_id", None), "correction": ("target", None)}


def lookup_columns(body: dict) -> tuple:
    """The (lookup, lookup2) columns a record body implies; verify checks the stored ones."""
    keys = LOOKUP_KEYS.get(body.get("kind"), (None, None))
    return tuple(body.get(k) if k else None for k in keys)


# The kinds looked up by their second column alone (an asset by its file's bytes hash), so
# only theirs is indexed. Every other search by lookup2 also names lookup (a dataset's name and
# version, an output's audio and content key) and goes through lookup's index: an output's
# content key, a random hash, would otherwise be a second index rewritten on every batch.
LOOKUP2_KEYED = frozenset({"asset"})


def lookup_keys(kind: str, lookup: str | None, lookup2: str | None) -> tuple:
    """The ``(lookup_key, lookup2_key)`` columns of a row (verify checks the stored ones)."""
    return lookup_key(lookup), lookup_key(lookup2) if kind in LOOKUP2_KEYED else None


def lookup_key(value: str | None) -> int | None:
    """The 64-bit index key of a lookup value: the first 8 bytes of its SHA-256, as a signed
    big-endian integer (what SQLite's INTEGER and PostgreSQL's BIGINT hold). None for None.

    A key names a handful of rows at most (two values share one with odds of 2^-64 per pair);
    a lookup also compares the text column and the body, so a shared key costs a row read.
    """
    if value is None:
        return None
    return int.from_bytes(hashlib.sha256(str(value).encode("utf-8")).digest()[:8], "big",
                          signed=True)


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
    note: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready: a C2SP checkpoint carries its signed ``note`` and the note's signature."""
        data = {"size": self.size, "root": self.root, "time": self.time,
                "key_id": self.key_id, "signature": self.signature}
        if self.note is not None:
            data["note"] = self.note
        return data

    @property
    def stored_signature(self) -> str:
        """What the signature column holds: the whole note, or a first-format signature."""
        return self.note if self.note is not None else self.signature


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
    if "\n" in row.signature:  # a C2SP signed note (a first-format signature is one line)
        return Checkpoint(size=row.size, root=row.root, time=row.time, key_id=row.key_id,
                          signature=note_signature(row.signature), note=row.signature)
    return Checkpoint(size=row.size, root=row.root, time=row.time, key_id=row.key_id,
                      signature=row.signature)


def stored_of(row) -> StoredRecord:
    """A record row (seq, id, kind, body) as a :class:`StoredRecord`."""
    return StoredRecord(seq=row.seq, id=row.id, kind=row.kind, body=json.loads(row.body),
                        text=row.body)
