"""The ledger's database: append-only record rows and signed checkpoints, read and proven.

Storage sits behind SQLAlchemy Core with portable SQL, so a ``postgresql://`` URL can serve a
team later; the default is one SQLite file in WAL mode. Every record is a leaf of an RFC 6962
tree (:mod:`soundscape.rights.merkle`); every write batch is one transaction that ends with a
checkpoint (size, root, time, key id) signed with the ledger's Ed25519 key. There is no UPDATE
or DELETE anywhere here: rows are only ever inserted.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from sqlalchemy import func, inspect, null, select
from sqlalchemy.exc import DBAPIError

from soundscape.canonical import canonical_json
from soundscape.errors import LedgerError, TamperError
from soundscape.rights import merkle
from soundscape.rights.store import migrate
from soundscape.rights.store.connection import BUSY_TIMEOUT_S, PG_WRITE_LOCK, connect
from soundscape.rights.store.keys import (PRIVATE_KEY_NAME, PUBLIC_KEY_NAME, load_or_create_key,
                                          public_pem)
from soundscape.rights.store.schema import (ID_PREFIX, LEDGER_FORMAT, LEDGER_VERSION,
                                            LOOKUP2_KEYED, LOOKUP_KEYS_VERSION,
                                            READABLE_VERSIONS, TILES_VERSION, Checkpoint,
                                            StoredRecord, checkpoint_of, checkpoints_table,
                                            lookup_columns, lookup_key, lookup_keys,
                                            meta_table, records_table, stored_of, tiles_table,
                                            utc_now)
from soundscape.rights.store.verify import (VerifyReport, check_rows, check_stream,
                                            record_columns, scan, tree_scan)
from soundscape.rights.store.witness import Witness

# Ids per "IN (...)" clause: well under every database's limit on bound parameters.
_IN_CHUNK = 500
# A verify of at least this many rows spreads the per-row work over processes (each reading
# the SQLite file, or its own PostgreSQL connection in the verify's exported snapshot): below
# it, starting them costs more than it saves.
PARALLEL_MIN_ROWS = 200_000
PARALLEL_MAX_WORKERS = 4
# Rows per worker task, at least (rounded up to a power of two).
PARALLEL_CHUNK_ROWS = 16_384



def _plain_signals() -> None:
    """A verify worker dies on SIGTERM, whatever handler the parent had.

    Forked workers inherit the parent's Python signal handlers; one that only sets a flag (a
    training run's checkpoint-on-SIGTERM, Ray's) would let ``Pool.terminate`` wait forever on a
    worker that never exits.
    """
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)

class Store:
    """Append-only records and signed checkpoints in one database.

    Args:
        url: SQLAlchemy URL (``sqlite:///path`` or ``postgresql://...``).
        keys_dir: folder of the ledger's key pair; the private key is made there on first use.
        witness_dirs: further folders that keep the latest signed checkpoint (besides
            ``keys_dir``), e.g. a team's second store (``witness_dir`` in soundscape.toml).
    """

    def __init__(self, url: str, keys_dir: Path, *, witness_dirs: Sequence[Path] = ()):
        self.url = url
        self.keys_dir = Path(keys_dir)
        self.witness = Witness(self.keys_dir, tuple(witness_dirs))
        self.engine, self.dialect, self.label = connect(url)
        self._private_key = None
        self._public_key = None
        self._pid = os.getpid()
        self._init_schema()

    # -- opening ----------------------------------------------------------------------------

    def _init_schema(self) -> None:
        # Read first, so a ledger on read-only storage (an auditor's copy) opens for reading
        # when its schema is current. Otherwise the schema is migrated to the newest revision
        # (migrate.py) and, for a new ledger, the metadata written, in one write transaction
        # under the single-writer lock: two processes opening a new ledger at once make it once,
        # and another process sees no tables or a complete ledger, never one without metadata.
        try:
            rows, due = self._read_state()
            if due:
                try:
                    rows = self._migrate()
                except DBAPIError as exc:
                    if not rows:
                        raise
                    # An existing ledger that cannot be written (read-only storage or role).
                    raise LedgerError(f"the ledger {self.label} needs its schema brought to "
                                      f"revision {migrate.head()} and that write failed "
                                      f"({_first_line(exc.orig)}); open it once where it can "
                                      "be written") from None
        except DBAPIError as exc:
            raise LedgerError(f"cannot open the ledger {self.label}: "
                              f"{_first_line(exc.orig)}") from None
        if rows.get("format") != LEDGER_FORMAT:
            raise LedgerError(f"{self.label} is not a soundscape ledger")
        if rows.get("version") not in READABLE_VERSIONS:
            raise LedgerError(f"{self.label} is ledger format version {rows.get('version')}; "
                              f"this soundscape reads versions {', '.join(READABLE_VERSIONS)}")
        self.meta = rows
        # Opened by a reader that may not migrate an older ledger (a current one always has its
        # tiles and lookup keys; migrations 0002 and 0003 add them): proofs then use the leaves
        # and lookups the text columns.
        version = int(rows["version"])
        self.has_tiles = version >= TILES_VERSION
        self.has_lookup_keys = version >= LOOKUP_KEYS_VERSION
        # The record columns a verify reads: the lookup keys are checked where they exist.
        self._verify_columns = record_columns(self.has_lookup_keys)

    def _migrate(self) -> dict:
        """Upgrade the schema and, for a new ledger, write its metadata; one transaction."""
        with self._write() as conn:
            migrate.upgrade(conn)
            rows = dict(conn.execute(select(meta_table.c.key, meta_table.c.value)).all())
            if not rows:
                key = load_or_create_key(self.keys_dir)
                conn.execute(meta_table.insert(), [
                    {"key": "format", "value": LEDGER_FORMAT},
                    {"key": "version", "value": LEDGER_VERSION},
                    {"key": "created", "value": utc_now()},
                    {"key": "public_key", "value": public_pem(key.public_key())},
                    {"key": "key_id", "value": merkle.key_id_of(key.public_key())},
                ])
                rows = dict(conn.execute(select(meta_table.c.key, meta_table.c.value)).all())
        return rows

    def _read_state(self) -> tuple[dict | None, bool]:
        """The metadata rows (None when there are none yet) and whether a migration is due."""
        with self.read() as conn:
            if not inspect(conn).has_table("ledger_meta"):
                return None, True
            rows = dict(conn.execute(select(meta_table.c.key, meta_table.c.value)).all())
            return rows or None, not rows or migrate.needs_upgrade(conn)

    def schema_revision(self) -> str | None:
        """The schema revision (Alembic) the database stands at."""
        with self.read() as conn:
            return migrate.current(conn)

    def close(self) -> None:
        self.engine.dispose()

    # -- keys -------------------------------------------------------------------------------

    def signing_key(self):
        """The private key, checked to belong to this ledger."""
        if self._private_key is None:
            key = load_or_create_key(self.keys_dir, create=False)
            if key is None:
                raise LedgerError(f"the ledger's signing key is missing from {self.keys_dir}; "
                                  "restore ledger-ed25519.pem there to write")
            if merkle.key_id_of(key.public_key()) != self.meta["key_id"]:
                raise LedgerError(f"the key in {self.keys_dir} is not this ledger's key "
                                  f"({self.meta['key_id']})")
            self._private_key = key
        return self._private_key

    def trusted_public_key(self) -> tuple[object, str]:
        """The public key to verify with, and where it came from.

        The key files in the workspace are trusted over the copy inside the database, so a
        ledger rebuilt and re-signed with another key (database replaced) fails.
        """
        pub_path = self.keys_dir / PUBLIC_KEY_NAME
        if pub_path.exists():
            return merkle.load_public_key(pub_path.read_bytes()), str(pub_path)
        key = load_or_create_key(self.keys_dir, create=False)
        if key is not None:
            return key.public_key(), str(self.keys_dir / PRIVATE_KEY_NAME)
        return merkle.load_public_key(self.meta["public_key"]), "the ledger database itself"

    def public_key_pem(self) -> str:
        key, _ = self.trusted_public_key()
        return public_pem(key)

    # -- transactions -----------------------------------------------------------------------

    def _write(self):
        """A connection in a write transaction (SQLite: BEGIN IMMEDIATE, so writers queue)."""
        return _Txn(self, write=True)

    def read(self):
        """A connection in a read transaction (one consistent snapshot)."""
        return _Txn(self, write=False)

    def batch(self) -> "Batch":
        """A write batch: add records, then leaving the ``with`` commits them and a checkpoint.

        Raises inside the block roll everything back: all or nothing.
        """
        return Batch(self)

    # -- reading ----------------------------------------------------------------------------

    def latest_checkpoint(self, conn=None) -> Checkpoint | None:
        def q(c):
            row = c.execute(select(checkpoints_table).order_by(checkpoints_table.c.size.desc())
                            .limit(1)).first()
            return checkpoint_of(row) if row else None
        if conn is not None:
            return q(conn)
        with self.read() as c:
            return q(c)

    def checkpoints(self) -> list[Checkpoint]:
        with self.read() as c:
            return [checkpoint_of(r) for r in c.execute(
                select(checkpoints_table).order_by(checkpoints_table.c.size)).all()]

    def get(self, record_id: str) -> StoredRecord | None:
        with self.read() as c:
            row = c.execute(select(records_table.c.seq, records_table.c.id, records_table.c.kind,
                                   records_table.c.body)
                            .where(records_table.c.id == record_id)).first()
        return stored_of(row) if row else None

    def find(self, kind: str, *, lookup: str | None = None, lookup2: str | None = None,
             conn=None) -> list[StoredRecord]:
        """Records of ``kind`` by a derived lookup column, oldest first."""
        t = records_table
        q = select(t.c.seq, t.c.id, t.c.kind, t.c.body).where(t.c.kind == kind)
        if lookup is not None:
            if self.has_lookup_keys:  # the index is on the key; the text is compared after
                q = q.where(t.c.lookup_key == lookup_key(lookup))
            q = q.where(t.c.lookup == lookup)
        if lookup2 is not None:
            if self.has_lookup_keys and kind in LOOKUP2_KEYED:
                q = q.where(t.c.lookup2_key == lookup_key(lookup2))
            q = q.where(t.c.lookup2 == lookup2)
        q = q.order_by(t.c.seq)
        if conn is not None:
            found = [stored_of(r) for r in conn.execute(q).all()]
        else:
            with self.read() as c:
                found = [stored_of(r) for r in c.execute(q).all()]
        # The indexed columns are hints: results are checked against the bodies they came from.
        return [r for r in found if _matches(lookup_columns(r.body), lookup, lookup2)]

    def get_many(self, ids: Sequence[str]) -> dict[str, StoredRecord]:
        """Records by id (unknown ids are left out), in one read of a few queries."""
        t = records_table
        ids = list(dict.fromkeys(ids))
        out: dict[str, StoredRecord] = {}
        with self.read() as c:
            for i in range(0, len(ids), _IN_CHUNK):
                for row in c.execute(select(t.c.seq, t.c.id, t.c.kind, t.c.body)
                                     .where(t.c.id.in_(ids[i:i + _IN_CHUNK]))).all():
                    out[row.id] = stored_of(row)
        return out

    def find_many(self, kind: str, lookups: Sequence[str]) -> list[StoredRecord]:
        """Records of ``kind`` whose first lookup column is any of ``lookups``, oldest first."""
        t = records_table
        lookups = list(dict.fromkeys(lookups))
        found: list[StoredRecord] = []
        with self.read() as c:
            for i in range(0, len(lookups), _IN_CHUNK):
                chunk = lookups[i:i + _IN_CHUNK]
                q = select(t.c.seq, t.c.id, t.c.kind, t.c.body).where(t.c.kind == kind)
                if self.has_lookup_keys:
                    q = q.where(t.c.lookup_key.in_([lookup_key(v) for v in chunk]))
                found += [stored_of(r) for r in c.execute(
                    q.where(t.c.lookup.in_(chunk)).order_by(t.c.seq)).all()]
        wanted = set(lookups)
        # As in find: the indexed column is a hint, checked against the body it came from.
        return sorted((r for r in found if lookup_columns(r.body)[0] in wanted),
                      key=lambda r: r.seq)

    def iter_records(self, kind: str | None = None) -> Iterator[StoredRecord]:
        t = records_table
        q = select(t.c.seq, t.c.id, t.c.kind, t.c.body).order_by(t.c.seq)
        if kind:
            q = q.where(t.c.kind == kind)
        with self.read() as c:
            for row in c.execute(q).yield_per(2000):
                yield stored_of(row)

    def count(self) -> int:
        with self.read() as c:
            return c.execute(select(func.count()).select_from(records_table)).scalar_one()

    def leaf_hashes(self, size: int | None, conn) -> list[bytes]:
        q = select(records_table.c.leaf_hash).order_by(records_table.c.seq)
        rows = conn.execute(q if size is None else q.limit(size)).all()
        return [bytes(r[0]) for r in rows]

    # -- proofs ---------------------------------------------------------------------------

    def tile_tree(self, conn) -> merkle.TileTree:
        """The tree's hashes as tiles read from the database in ``conn``'s transaction."""
        if not self.has_tiles:
            leaves = self.leaf_hashes(None, conn)
            return merkle.TileTree(lambda level, lo, hi: _tiles_from_leaves(leaves, level, lo, hi))
        r, t = records_table, tiles_table

        def read(level: int, lo: int, hi: int) -> list[bytes]:
            if level == 0:
                rows = conn.execute(select(r.c.seq, r.c.leaf_hash).where(r.c.seq > lo)
                                    .where(r.c.seq <= hi).order_by(r.c.seq)).all()
                return _contiguous(rows, lo + 1)
            rows = conn.execute(select(t.c.idx, t.c.hash).where(t.c.level == level)
                                .where(t.c.idx >= lo).where(t.c.idx < hi).order_by(t.c.idx)).all()
            return _contiguous(rows, lo)
        return merkle.TileTree(read)

    def prove(self, record_id: str) -> dict:
        """An inclusion proof for ``record_id`` against the latest signed checkpoint."""
        with self.read() as c:
            row = c.execute(select(records_table.c.seq, records_table.c.body)
                            .where(records_table.c.id == record_id)).first()
            if row is None:
                raise LedgerError(f"no record {record_id} in the ledger")
            cp = self.latest_checkpoint(c)
            if cp is None or cp.size < row.seq:
                raise TamperError(f"record {record_id} (#{row.seq}) is not covered by any "
                                  "signed checkpoint")
            index = row.seq - 1
            tree = self.tile_tree(c)
            try:
                leaf = tree.node(0, index)
                path = tree.inclusion_path(index, cp.size)
            except merkle.ProofError:
                path = None
        # The path is checked before it leaves: stored tiles that were altered never yield a
        # proof (the recipient would reject it anyway, against the signed root).
        if path is None or merkle.root_from_inclusion(leaf, index, cp.size, path).hex() != cp.root:
            raise TamperError(f"the stored tree hashes do not match signed checkpoint "
                              f"{cp.size}; run `soundscape ledger verify`")
        body = row.body
        if merkle.leaf_hash(body.encode("utf-8")) != leaf:
            raise TamperError(f"record {record_id} (#{row.seq}) was edited: its body does not "
                              "match its leaf hash")
        return {
            "format": merkle.PROOF_FORMAT,
            "record_id": record_id,
            "leaf_index": index,
            "tree_size": cp.size,
            "body": body,
            "leaf_hash": leaf.hex(),
            "audit_path": [h.hex() for h in path],
            "checkpoint": {**cp.to_dict(), "public_key": self.meta["public_key"]},
        }

    def consistency(self, old_size: int, new_size: int | None = None) -> dict:
        """A consistency proof that the tree at ``new_size`` (default: latest) extends ``old_size``."""
        with self.read() as c:
            latest = self.latest_checkpoint(c)
            if latest is None:
                raise LedgerError("the ledger is empty")
            new_size = latest.size if new_size is None else new_size
            if not 0 < old_size <= new_size <= latest.size:
                raise LedgerError(f"no consistency proof from size {old_size} to {new_size} "
                                  f"(the ledger has {latest.size} signed records)")
            tree = self.tile_tree(c)
            try:
                old_root, new_root = tree.root(old_size), tree.root(new_size)
                path = tree.consistency_path(old_size, new_size)
            except merkle.ProofError as exc:
                raise TamperError(f"the stored tree hashes are incomplete ({exc}); run "
                                  "`soundscape ledger verify`") from None
            cps = {r.size: checkpoint_of(r) for r in c.execute(
                select(checkpoints_table).where(
                    checkpoints_table.c.size.in_([old_size, new_size]))).all()}
        return {
            "format": merkle.CONSISTENCY_FORMAT,
            "old_size": old_size,
            "new_size": new_size,
            "old_root": old_root.hex(),
            "new_root": new_root.hex(),
            "path": [h.hex() for h in path],
            "old_checkpoint": cps[old_size].to_dict() if old_size in cps else None,
            "new_checkpoint": cps[new_size].to_dict() if new_size in cps else None,
        }

    # -- verification -----------------------------------------------------------------------

    def verify(self, *, all_signatures: bool = True, against: Sequence[tuple[str, dict]] = (),
               since_witness: bool = False) -> VerifyReport:
        """Recompute every leaf, root, frontier and tile; check signatures and the witness.

        Args:
            all_signatures: check every checkpoint's signature (default). When false, only the
                latest is checked: still sound, since its root commits to every leaf and each
                earlier root is recomputed from those leaves, but a forged signature on an
                older checkpoint goes unreported.
            against: ``(label, checkpoint dict)`` pairs held elsewhere (a sidecar's
                ``ledger.checkpoint``, a proof's ``checkpoint``): each must be signed by the
                ledger's key and match the tree at its size, which exposes a truncation or a
                rewrite even when the checkpoints in the database were removed or re-signed.
            since_witness: check only the records added since the latest witnessed checkpoint
                (whose stored frontier must fold to the witnessed root); the whole ledger when
                nothing is witnessed yet.

        Raises:
            TamperError: one line naming the first bad record or checkpoint.
        """
        started = time.perf_counter()
        key, key_source = self.trusted_public_key()
        trusted_kid = merkle.key_id_of(key)
        if self.meta.get("key_id") != trusted_kid:
            raise TamperError(f"the ledger names key {self.meta.get('key_id')} but this "
                              f"workspace's ledger key is {trusted_kid} ({key_source}): the "
                              "ledger was rebuilt or replaced")
        held: dict[int, list[tuple[str, str]]] = {}
        for label, cp in against:
            try:
                merkle.verify_checkpoint(cp, key)
            except merkle.ProofError as exc:
                raise TamperError(f"the checkpoint held in {label} does not verify with this "
                                  f"ledger's key ({exc})") from None
            held.setdefault(int(cp["size"]), []).append((label, cp["root"]))
        witnessed = self.witnessed(key, trusted_kid)
        for w in witnessed:
            held.setdefault(w.size, []).append((f"the witness {w.label}", w.root))
        with self.read() as conn:
            rows_cp = conn.execute(select(checkpoints_table)
                                   .order_by(checkpoints_table.c.size)).all()
            cps = [checkpoint_of(r) for r in rows_cp]
            frontiers = {r.size: r.frontier for r in rows_cp}
            tiles = ({(r.level, r.idx): bytes(r.hash) for r in conn.execute(
                select(tiles_table.c.level, tiles_table.c.idx, tiles_table.c.hash)).all()}
                if self.has_tiles else None)
            start, frontier = 0, None
            tree = self.tile_tree(conn)
            verified = [w for w in witnessed if w.verified]
            base = max(verified, key=lambda w: w.size) if since_witness and verified else None
            if base is not None and cps and base.size <= cps[-1].size:
                start, frontier = base.size, self._witnessed_frontier(base, cps, frontiers)
                for size in sorted(k for k in held if k < start):
                    _check_held_root(size, held.pop(size), tree)
                held.pop(start, None)  # the frontier folds to it: checked
            r = records_table
            keys = ((r.c.lookup_key, r.c.lookup2_key) if self.has_lookup_keys
                    else (null(), null()))
            query = select(r.c.seq, r.c.id, r.c.kind, r.c.body, r.c.leaf_hash, r.c.lookup,
                           r.c.lookup2, *keys).where(r.c.seq > start).order_by(r.c.seq)
            last_seq = conn.execute(select(func.max(records_table.c.seq))).scalar() or 0
            result = None
            if start == 0:
                # A full verify: the per-row checks first (spread over processes for a large
                # SQLite file), then the whole tree level by level. Any fault there falls
                # through to the sequential scan below, which names the first one.
                result = self._full_scan(conn, last_seq, cps, key, trusted_kid,
                                         all_signatures, held, frontiers, tiles)
            if result is None:
                if self.dialect == "sqlite":
                    # The driver's cursor directly, in the same transaction: a plain tuple per row.
                    rows = conn.connection.driver_connection.execute(
                        f"SELECT {self._verify_columns} FROM ledger_records WHERE seq > ? "
                        "ORDER BY seq", (start,))
                else:
                    rows = conn.execute(query).yield_per(5000)
                result = scan(rows, [c for c in cps if c.size > start], key, trusted_kid,
                              all_signatures, held, frontier=frontier, start=start,
                              frontiers=frontiers, tiles=tiles, keyed=self.has_lookup_keys)
            latest = cps[-1] if cps else None
            if latest is not None and self.has_tiles:
                # RFC 9162 §2.1.4: the witnessed tree is a prefix of today's, by a consistency
                # proof built from the tiles (what a second party holding the witness runs).
                for w in witnessed:
                    _check_consistency(w, latest, tree)
        result.latest = latest
        result.checked_from = start
        result.witnessed = [w.label for w in witnessed]
        if latest is not None and latest.note is not None:
            self.witness.publish(latest.note, latest.size, trusted_kid, key, verified=True)
        result.seconds = time.perf_counter() - started
        result.key_source = key_source
        return result

    def _full_scan(self, conn, last_seq: int, cps, key, trusted_kid: str, all_signatures: bool,
                   held, frontiers, tiles) -> VerifyReport | None:
        """A full verify's fast path: :func:`check_stream` over every row, then
        :func:`tree_scan`. None at any fault (the caller's sequential scan names it)."""
        if (self.dialect in ("sqlite", "postgresql") and last_seq >= PARALLEL_MIN_ROWS
                and (os.cpu_count() or 1) > 1):
            checked = self._parallel_rows(last_seq, conn)
        elif self.dialect == "sqlite":
            checked = check_stream(conn.connection.driver_connection.execute(
                f"SELECT {self._verify_columns} FROM ledger_records ORDER BY seq"), 0,
                keyed=self.has_lookup_keys)
        else:
            # A server-side cursor in this transaction's snapshot: rows arrive as plain tuples
            # in batches, with none of SQLAlchemy's per-row processing.
            cursor = conn.connection.driver_connection.cursor(name="ledger_verify")
            cursor.itersize = 5000
            try:
                cursor.execute(f"SELECT {self._verify_columns} FROM ledger_records ORDER BY seq")
                checked = check_stream(cursor, 0, keyed=self.has_lookup_keys)
            finally:
                cursor.close()
        if checked is None or checked[2] != last_seq:
            return None
        tree, kinds, n = checked
        levels = tree if isinstance(tree, merkle.Levels) else merkle.Levels(tree)
        return tree_scan(levels, n, kinds, cps, key, trusted_kid, all_signatures, held,
                         frontiers, tiles)

    def _parallel_rows(self, last_seq: int, conn) -> tuple[merkle.Levels, dict, int] | None:
        """:func:`check_stream` over all rows, in chunks over processes, each of which also
        hashes its chunk's subtrees; the parent joins them into the tree.

        SQLite: the workers read the committed file, so the caller's snapshot must match: it
        checks that the rows end where its own transaction saw them end. PostgreSQL: each
        worker opens its own connection and reads in the snapshot ``conn``'s transaction
        exports (``pg_export_snapshot``), exactly the rows the caller sees. None at any fault
        (or when processes or connections cannot be started).
        """
        import multiprocessing

        if self.dialect == "sqlite":
            source = ("sqlite", self.engine.url.database)
        else:
            snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
            # SQLAlchemy's adapter map stays behind: the workers read plain columns.
            cparams = {k: v for k, v in cparams.items() if k != "context"}
            source = ("postgresql", cargs, cparams, snapshot)
        workers = min(os.cpu_count() or 1, PARALLEL_MAX_WORKERS)
        # A power of two, so every full chunk is a subtree of the whole tree (Levels.from_parts).
        step = 1 << (max(PARALLEL_CHUNK_ROWS, last_seq // (workers * 8) + 1) - 1).bit_length()
        tasks = [(source, self.has_lookup_keys, lo, min(lo + step, last_seq))
                 for lo in range(0, last_seq, step)]
        parts, kinds, faulty = [], {}, False
        try:
            with multiprocessing.get_context("fork").Pool(workers, initializer=_plain_signals) as pool:
                for part in pool.imap(check_rows, tasks):
                    if part is None:
                        faulty = True
                        break
                    parts.append(part[0])
                    for k, v in part[1].items():
                        kinds[k] = kinds.get(k, 0) + v
                # Workers end on the queue's sentinel, not on a signal: a worker forked just
                # before ``terminate`` may not have run ``_plain_signals`` yet, and would then
                # ignore SIGTERM under a parent's flag-only handler and be waited on forever.
                pool.close()
                pool.join()
        except (OSError, DBAPIError):
            return None
        if faulty:
            return None
        return merkle.Levels.from_parts(parts), kinds, last_seq

    def witnessed(self, key, key_id: str):
        """The witness copies, each checked to be signed by the ledger's key.

        Raises:
            TamperError: a copy signed by another key (the ledger was rebuilt with new keys)
                or not signed at all.
        """
        found = []
        for w in self.witness.read(key_id):
            try:
                merkle.verify_checkpoint(w.checkpoint(key_id), key)
            except merkle.ProofError as exc:
                raise TamperError(f"the witnessed checkpoint {w.label} (size {w.size}) does not "
                                  f"verify with this ledger's key ({exc}): the ledger or its key "
                                  "files were replaced") from None
            found.append(w)
        return found

    def _witnessed_frontier(self, base, cps: list[Checkpoint], frontiers: dict):
        """The stored frontier at the witnessed size, checked to fold to the witnessed root."""
        cp = next((c for c in cps if c.size == base.size), None)
        if cp is None or cp.root != base.root:
            raise TamperError(f"signed checkpoint {base.size}, held by the witness {base.label}, "
                              "is not in the ledger: its history was rewritten")
        try:
            frontier = merkle.Frontier.from_state(frontiers[base.size])
        except (ValueError, KeyError):
            frontier = None
        if frontier is None or frontier.size != base.size or frontier.root().hex() != base.root:
            raise TamperError(f"signed checkpoint {base.size}: the frontier stored with it does "
                              "not match its root (an append would extend a wrong tree)")
        return frontier


def _check_held_root(size: int, labels: list[tuple[str, str]], tree: merkle.TileTree) -> None:
    try:
        root = tree.root(size).hex()
    except merkle.ProofError:
        root = None
    for label, held_root in labels:
        if held_root != root:
            raise TamperError(f"the first {size} records do not match signed checkpoint {size} "
                              f"held in {label}: the ledger's history was rewritten")


def _check_consistency(w, latest: Checkpoint, tree: merkle.TileTree) -> None:
    if w.size >= latest.size:
        return
    try:
        merkle.verify_consistency(w.size, latest.size, bytes.fromhex(w.root),
                                  bytes.fromhex(latest.root),
                                  tree.consistency_path(w.size, latest.size))
    except (merkle.ProofError, ValueError) as exc:
        raise TamperError(f"signed checkpoint {latest.size} does not extend checkpoint {w.size} "
                          f"held by the witness {w.label} ({exc})") from None


def build_tiles(conn) -> int:
    """Fill ``ledger_tiles`` from the leaf hashes (the upgrade from format version 1)."""
    frontier = merkle.Frontier()
    count = 0
    rows = conn.execute(select(records_table.c.leaf_hash).order_by(records_table.c.seq))
    for (leaf,) in rows:
        frontier.append(bytes(leaf))
    for start in range(0, len(frontier.tiles), 5000):
        conn.execute(tiles_table.insert(), [{"level": level, "idx": idx, "hash": h}
                                            for level, idx, h in
                                            frontier.tiles[start:start + 5000]])
        count += len(frontier.tiles[start:start + 5000])
    return count


def _contiguous(rows, first: int) -> list[bytes]:
    """The hashes of ``(position, hash)`` rows up to the first gap (a gap ends a tile early)."""
    out = []
    for position, h in rows:
        if position != first + len(out):
            break
        out.append(bytes(h))
    return out


def _tiles_from_leaves(leaves: list[bytes], level: int, lo: int, hi: int) -> list[bytes]:
    """Tile entries computed from the leaves (a version-1 ledger that could not be upgraded)."""
    width = merkle.TILE_WIDTH ** level
    return [merkle.root_of(leaves[i * width:(i + 1) * width])
            for i in range(lo, min(hi, len(leaves) // width))]


def _first_line(exc) -> str:
    # PostgreSQL's messages carry LINE/HINT lines after the first; an error is one line.
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _matches(columns: tuple, lookup, lookup2) -> bool:
    return (lookup is None or columns[0] == lookup) and (lookup2 is None or columns[1] == lookup2)


class _Txn:
    """``with`` a connection inside one transaction; commit on success, roll back on error."""

    def __init__(self, store: Store, *, write: bool):
        self.store = store
        self.write = write

    def __enter__(self):
        if os.getpid() != self.store._pid:
            # A forked child must not use its parent's pooled connections (SQLAlchemy's advice).
            self.store.engine.dispose(close=False)
            self.store._pid = os.getpid()
        # SQLite's busy handler waits out ordinary locks; a few paths (a fresh file switching to
        # WAL, recovery of another process's WAL index) answer "locked" at once: wait them out too.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            conn = None
            try:
                conn = self.store.engine.connect().execution_options(ledger_write=self.write)
                if self.store.dialect == "postgresql":
                    # A reader sees one snapshot for the whole transaction (verify reads the
                    # checkpoints, then the records: a commit between them must not show). A
                    # writer reads committed rows afresh after it gets the lock below: a
                    # snapshot taken while it waited would miss the writer before it.
                    conn = conn.execution_options(
                        isolation_level="READ COMMITTED" if self.write else "REPEATABLE READ")
                self.tx = conn.begin()
                if self.write and self.store.dialect == "postgresql":
                    # The same serialisation BEGIN IMMEDIATE gives SQLite: one writer at a time
                    # (a transaction-scoped advisory lock, so it works before the tables exist).
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")
                self.conn = conn
                return conn
            except DBAPIError as exc:
                if conn is not None:
                    conn.close()
                if "locked" in str(exc.orig) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise LedgerError(f"cannot open the ledger {self.store.label}: "
                                  f"{_first_line(exc.orig)}") from None

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.tx.commit()
            else:
                self.tx.rollback()
        finally:
            self.conn.close()
        return False


@dataclass
class _Pending:
    seq: int
    id: str
    kind: str
    body: dict
    lookup: str | None
    lookup2: str | None


class Batch:
    """Records added in one transaction, committed with one signed checkpoint."""

    def __init__(self, store: Store):
        self.store = store
        self.pending: list[_Pending] = []
        self._counters: dict[str, int] = {}
        self.checkpoint: Checkpoint | None = None
        self.time = utc_now()

    def __enter__(self) -> "Batch":
        self.store.signing_key()  # fail before any work when the key is missing
        self._txn = self.store._write()
        self.conn = self._txn.__enter__()
        try:
            last_seq = self.conn.execute(select(func.max(records_table.c.seq))).scalar() or 0
            cp = self.store.latest_checkpoint(self.conn)
            if (cp.size if cp else 0) != last_seq:
                raise TamperError(f"the ledger has {last_seq} records but its last signed "
                                  f"checkpoint covers {cp.size if cp else 0}; run `soundscape "
                                  "ledger verify`")
            self.frontier = self._checked_frontier(cp)
            self.next_seq = last_seq + 1
        except BaseException:
            self._txn.__exit__(*sys.exc_info())
            raise
        return self

    def _checked_frontier(self, cp: Checkpoint | None) -> merkle.Frontier:
        """The frontier to extend, once it folds to the latest checkpoint's root, that checkpoint
        verifies with the workspace's key, and no witness holds a later or other checkpoint.

        Raises:
            TamperError: any of these fails; nothing is appended to a tree nobody signed.
        """
        size = cp.size if cp else 0
        for w in self.store.witness.read(self.store.meta["key_id"]):
            if w.size > size or (w.size == size and cp is not None and w.root != cp.root):
                raise TamperError(f"the witness {w.label} holds signed checkpoint {w.size} but "
                                  f"the ledger's latest is {size}: it was truncated or rolled "
                                  "back; run `soundscape ledger verify`")
        if cp is None:
            return merkle.Frontier()
        text = self.conn.execute(select(checkpoints_table.c.frontier)
                                 .where(checkpoints_table.c.size == cp.size)).scalar_one()
        try:
            frontier = merkle.Frontier.from_state(text)
        except ValueError:
            frontier = None
        if frontier is None or frontier.size != cp.size or frontier.root().hex() != cp.root:
            raise TamperError(f"the frontier stored with signed checkpoint {cp.size} does not "
                              "match its root: refusing to extend an unverified tree; run "
                              "`soundscape ledger verify`")
        key, source = self.store.trusted_public_key()
        try:
            merkle.verify_checkpoint(cp.to_dict(), key)
        except merkle.ProofError as exc:
            raise TamperError(f"signed checkpoint {cp.size} does not verify with the ledger key "
                              f"in {source} ({exc}): refusing to extend it; run `soundscape "
                              "ledger verify`") from None
        return frontier

    def _next_number(self, kind: str) -> int:
        if kind not in self._counters:
            last = self.conn.execute(
                select(records_table.c.id).where(records_table.c.kind == kind)
                .order_by(records_table.c.seq.desc()).limit(1)).scalar()
            self._counters[kind] = int(last.rsplit("-", 1)[1]) if last else 0
        self._counters[kind] += 1
        return self._counters[kind]

    def add(self, kind: str, fields: dict, *, lookup: str | None = None,
            lookup2: str | None = None) -> _Pending:
        """Queue one record; its id and position are assigned now, its row written on commit."""
        number = self._next_number(kind)
        rid = f"{ID_PREFIX[kind]}-{number:06d}"
        body = {**fields, "id": rid, "seq": self.next_seq, "kind": kind,
                "recorded": fields.get("recorded") or self.time}
        item = _Pending(self.next_seq, rid, kind, body, lookup, lookup2)
        self.pending.append(item)
        self.next_seq += 1
        return item

    def find(self, kind: str, *, lookup: str | None = None,
             lookup2: str | None = None) -> list[dict]:
        """Bodies of ``kind`` matching a lookup, committed ones first, then this batch's."""
        found = [r.body for r in self.store.find(kind, lookup=lookup, lookup2=lookup2,
                                                 conn=self.conn)]
        for p in self.pending:
            if p.kind == kind and (lookup is None or p.lookup == lookup) and (
                    lookup2 is None or p.lookup2 == lookup2):
                found.append(p.body)
        return found

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.pending:
            try:
                self._commit_rows()
            except BaseException:
                return self._txn.__exit__(*sys.exc_info())
        result = self._txn.__exit__(exc_type, exc, tb)
        if exc_type is None and self.checkpoint is not None:
            # Committed: the witness copies move forward (after the commit, never ahead of it).
            self.store.witness.publish(self.checkpoint.note, self.checkpoint.size,
                                       self.checkpoint.key_id,
                                       self.store.signing_key().public_key())
        return result

    def _commit_rows(self) -> None:
        sha256 = merkle.hashlib.sha256
        rows = []
        for p in self.pending:
            text = canonical_json(p.body)
            leaf = sha256(b"\x00" + text.encode("utf-8")).digest()
            self.frontier.append(leaf)
            rows.append((p.seq, p.id, p.kind, p.lookup, p.lookup2, text, leaf,
                         *lookup_keys(p.kind, p.lookup, p.lookup2)))
        tiles = self.frontier.tiles
        if self.store.dialect == "sqlite":
            # The driver's own executemany, inside the same transaction: SQLAlchemy's per-row
            # parameter processing would cost more than the insert itself.
            driver = self.conn.connection.driver_connection
            driver.executemany(
                "INSERT INTO ledger_records (seq, id, kind, lookup, lookup2, body, leaf_hash, "
                "lookup_key, lookup2_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if tiles:
                driver.executemany("INSERT INTO ledger_tiles (level, idx, hash) VALUES (?, ?, ?)",
                                   tiles)
        elif self.store.dialect == "postgresql":
            # COPY through psycopg's cursor, in the same transaction: one stream for the batch
            # instead of a statement per row. All or nothing with the rest of the batch.
            cursor = self.conn.connection.driver_connection.cursor()
            with cursor.copy("COPY ledger_records (seq, id, kind, lookup, lookup2, body, "
                             "leaf_hash, lookup_key, lookup2_key) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            if tiles:
                with cursor.copy("COPY ledger_tiles (level, idx, hash) FROM STDIN") as copy:
                    for t in tiles:
                        copy.write_row(t)
        else:
            self.conn.execute(records_table.insert(), [
                dict(zip(("seq", "id", "kind", "lookup", "lookup2", "body", "leaf_hash",
                          "lookup_key", "lookup2_key"), r))
                for r in rows])
            if tiles:
                self.conn.execute(tiles_table.insert(), [
                    {"level": level, "idx": idx, "hash": h} for level, idx, h in tiles])
        key = self.store.signing_key()
        size, root = self.frontier.size, self.frontier.root()
        kid = self.store.meta["key_id"]
        note = merkle.sign_checkpoint(key, kid, size, root)
        self.checkpoint = Checkpoint(size=size, root=root.hex(), time=utc_now(), key_id=kid,
                                     signature=merkle.note_signature(note), note=note)
        self.conn.execute(checkpoints_table.insert(), {
            "size": size, "root": root.hex(), "time": self.checkpoint.time, "key_id": kid,
            "signature": note, "frontier": self.frontier.state()})
