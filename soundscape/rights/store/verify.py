"""Verifying a whole ledger: every leaf, every root, every signature; the first fault is named."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field

from soundscape.errors import TamperError
from soundscape.rights import merkle
from soundscape.rights.store.schema import (LOOKUP2_KEYED, LOOKUP_KEYS, Checkpoint,
                                            lookup_columns, lookup_key, lookup_keys)


def record_columns(keyed: bool) -> str:
    """The record columns a verify reads, in the order :func:`scan` takes them; a ledger from
    before lookup keys (format version 3) gives NULL for them and ``keyed`` is False."""
    return ("seq, id, kind, body, leaf_hash, lookup, lookup2, "
            + ("lookup_key, lookup2_key" if keyed else "NULL, NULL"))


@dataclass
class VerifyReport:
    """What a successful verification saw."""

    records: int
    checkpoints: int
    signatures_checked: int
    root: str
    key_id: str
    latest: Checkpoint | None
    seconds: float
    key_source: str
    kinds: dict = field(default_factory=dict)
    # Records before this position were taken on trust of the witnessed checkpoint (0: none).
    checked_from: int = 0
    # Where the witnessed checkpoints this verify checked (and moved forward) are kept.
    witnessed: list = field(default_factory=list)


def scan(rows, cps: list[Checkpoint], key, trusted_kid: str, all_signatures: bool,
         held: dict[int, list[tuple[str, str]]], *, frontier: merkle.Frontier | None = None,
         start: int = 0, frontiers: dict[int, str] | None = None,
         tiles: dict[tuple[int, int], bytes] | None = None, keyed: bool = True) -> VerifyReport:
    """Walk the rows in order: recompute leaves, roots, stored frontiers and tile entries,
    check each checkpoint and each held one, and raise on the first fault.

    Args:
        rows: ``(seq, id, kind, body, leaf_hash, lookup, lookup2, lookup_key, lookup2_key)``
            tuples (:func:`record_columns`), in seq order, from position ``start + 1``.
        cps: the stored checkpoints after ``start``, by size.
        key: the trusted public key; ``trusted_kid`` its id.
        all_signatures: check every signature, not only the latest.
        held: checkpoint roots kept elsewhere, per size, with where they were found.
        frontier: the (checked) frontier of the first ``start`` records; empty when 0.
        frontiers: the frontier stored with each checkpoint, by size: each must be the one
            the records give, since the next append extends it.
        tiles: the stored tile entries, by (level, index): each completed in the scanned range
            must be the one the records give (None: a ledger without tiles).
        keyed: the rows carry lookup keys, each of which must be its lookup column's.

    Raises:
        TamperError: one line naming the first bad record or checkpoint.
    """
    frontier = frontier if frontier is not None else merkle.Frontier()
    sha256 = merkle.hashlib.sha256
    cp_index = 0
    next_cp = cps[0].size if cps else None
    prev_cp_size = start
    prev_id: str | None = None
    ids_since_cp: list[tuple[str, int]] = []
    kinds: dict[str, int] = {}
    signatures = 0
    n = start
    for seq, rid, kind, body, stored_leaf, lookup, lookup2, lk, lk2 in rows:
        n += 1
        if seq != n:
            if seq > n:
                after = f" after {prev_id} (#{n - 1})" if prev_id else ""
                raise TamperError(f"record #{n} is missing{after}: the next row is {rid} "
                                  f"(#{seq}); a record was deleted")
            raise TamperError(f"record {rid} has position #{seq} twice")
        if body is None:  # checked by a worker (check_rows): only its leaf hash comes here
            leaf = stored_leaf
        else:
            leaf = sha256(b"\x00" + body.encode("utf-8")).digest()
            if leaf != bytes(stored_leaf):
                raise TamperError(f"record {rid} (#{seq}) was edited: its body does not match "
                                  "its leaf hash")
            if not _binding_plain(body, rid, kind, seq, lookup, lookup2):
                _binding_exact(body, rid, kind, seq, lookup, lookup2)
            if keyed and (lk, lk2) != lookup_keys(kind, lookup, lookup2):
                raise TamperError(f"record {rid} (#{seq}): its lookup keys disagree with its "
                                  "lookup columns (a lookup would not find it)")
            kinds[kind] = kinds.get(kind, 0) + 1
        frontier.append(leaf)
        ids_since_cp.append((rid, seq))
        prev_id = rid
        if seq in held:
            root = frontier.root().hex()
            for label, held_root in held[seq]:
                if held_root != root:
                    raise TamperError(f"the first {seq} records do not match signed "
                                      f"checkpoint {seq} held in {label}: the ledger's "
                                      "history was rewritten")
        if seq == next_cp:
            cp = cps[cp_index]
            last = cp_index == len(cps) - 1
            first_id, first_seq = ids_since_cp[0]
            if frontier.root().hex() != cp.root:
                raise TamperError(_blame(ids_since_cp) + f" does not match signed checkpoint "
                                  f"{cp.size}")
            if frontiers is not None and frontiers.get(cp.size) != frontier.state():
                raise TamperError(f"signed checkpoint {cp.size}: the frontier stored with it does "
                                  "not match the records (an append would extend a wrong tree)")
            if cp.key_id != trusted_kid:
                raise TamperError(f"record {first_id} (#{first_seq}): signed checkpoint "
                                  f"{cp.size} names key {cp.key_id}, not the ledger's key "
                                  f"{trusted_kid}")
            if all_signatures or last:
                signatures += 1
                if not _signature_ok(cp, key):
                    if not all_signatures:
                        # Find the first bad signature so the message names the right place.
                        _first_bad_signature(cps, key)
                    raise TamperError(f"record {first_id} (#{first_seq}): signed checkpoint "
                                      f"{cp.size} has a signature that does not verify "
                                      "with the ledger's public key")
            prev_cp_size = cp.size
            ids_since_cp = []
            cp_index += 1
            next_cp = cps[cp_index].size if cp_index < len(cps) else None
    if tiles is not None:
        _check_tiles(frontier.tiles, tiles, start, n)
    if n > prev_cp_size:
        rid, seq = ids_since_cp[0]
        raise TamperError(f"record {rid} (#{seq}) is not covered by any signed checkpoint: "
                          "it was inserted after the last one")
    if cp_index < len(cps):
        cp = cps[cp_index]
        raise TamperError(f"record #{n + 1} is missing: signed checkpoint {cp.size} covers "
                          f"{cp.size} records but only {n} remain; the ledger was truncated")
    beyond = sorted(size for size in held if size > n)
    if beyond:
        label = held[beyond[0]][0][0]
        raise TamperError(f"record #{n + 1} is missing: {label} holds signed checkpoint "
                          f"{beyond[0]} but only {n} records remain; the ledger was "
                          "truncated or rolled back")
    latest = cps[-1] if cps else None
    return VerifyReport(records=n, checkpoints=len(cps), signatures_checked=signatures,
                        root=frontier.root().hex(), key_id=trusted_kid, latest=latest,
                        seconds=0.0, key_source="", kinds=kinds)


def check_rows(task: tuple[tuple, bool, int, int]) -> tuple[list[bytes], dict] | None:
    """One worker's share of a parallel verify: rows ``lo+1 .. hi`` of the ledger ``source``
    (``("sqlite", path)``, or ``("postgresql", args, kwargs, snapshot)``: psycopg's connect
    arguments and the snapshot to read in); ``keyed``: it has lookup keys.

    Checks what needs only the row itself (see :func:`check_stream`) and returns the chunk's
    subtrees (:meth:`merkle.Levels.chunk` of its leaf hashes; a chunk of 2^k rows starting at a
    multiple of 2^k holds subtrees of the whole tree), with the count of each kind; None at
    the first fault, so the caller re-runs the sequential scan, which names it exactly.
    """
    source, keyed, lo, hi = task
    if source[0] == "postgresql":
        checked = _check_pg_rows(source, keyed, lo, hi)
    else:
        con = sqlite3.connect(f"file:{source[1]}?mode=ro", uri=True)
        try:
            checked = check_stream(con.execute(
                f"SELECT {record_columns(keyed)} FROM ledger_records WHERE seq > ? AND seq <= ? "
                "ORDER BY seq", (lo, hi)), lo, keyed=keyed)
        finally:
            con.close()
    if checked is None or checked[2] != hi:
        return None
    return merkle.Levels.chunk(checked[0]), checked[1]


def _check_pg_rows(source: tuple, keyed: bool, lo: int, hi: int):
    """:func:`check_stream` over rows ``lo+1 .. hi`` on PostgreSQL, in the exported snapshot."""
    import psycopg

    _, args, kwargs, snapshot = source
    if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):  # a server-made id, inlined below
        return None
    try:
        with psycopg.connect(*args, **kwargs, autocommit=True) as con:
            con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            con.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            # A server-side cursor: the chunk's rows arrive in batches, not all at once.
            with con.cursor(name="ledger_verify_chunk") as cur:
                cur.itersize = 5000
                cur.execute(f"SELECT {record_columns(keyed)} FROM ledger_records WHERE seq > %s "
                            "AND seq <= %s ORDER BY seq", (lo, hi))
                checked = check_stream(cur, lo, keyed=keyed)
            con.execute("COMMIT")
    except psycopg.Error:
        return None  # no connection or snapshot here: the caller's own scan decides
    return checked


def check_stream(rows, start: int, *, keyed: bool) -> tuple[list[bytes], dict, int] | None:
    """The per-row checks of a verify, over rows in seq order from position ``start + 1``.

    Each row must hold the next position, a body whose leaf hash is the stored one, a body
    that names its own id, kind, position and lookup columns, and (``keyed``) the lookup keys
    of those columns (:func:`lookup_keys`, inlined here). Returns the leaf hashes, the count
    of each kind and the last position; None at the first fault
    (the sequential :func:`scan` then names it).
    """
    sha256 = merkle.hashlib.sha256
    from_bytes = int.from_bytes
    leaves: list[bytes] = []
    add_leaf = leaves.append
    kinds: dict[str, int] = {}
    expect = start + 1
    for seq, rid, kind, body, stored, lookup, lookup2, key, key2 in rows:
        if seq != expect:
            return None
        leaf = sha256(b"\x00" + body.encode("utf-8")).digest()
        if leaf != stored:
            return None
        if not _binding_plain(body, rid, kind, seq, lookup, lookup2):
            try:
                _binding_exact(body, rid, kind, seq, lookup, lookup2)
            except TamperError:
                return None
        if keyed:
            if lookup is None or lookup.__class__ is not str:
                if key != lookup_key(lookup):
                    return None
            elif key != from_bytes(sha256(lookup.encode("utf-8")).digest()[:8], "big",
                                   signed=True):
                return None
            if kind not in LOOKUP2_KEYED:
                if key2 is not None:
                    return None
            elif lookup2 is None or lookup2.__class__ is not str:
                if key2 != lookup_key(lookup2):
                    return None
            elif key2 != from_bytes(sha256(lookup2.encode("utf-8")).digest()[:8], "big",
                                    signed=True):
                return None
        kinds[kind] = kinds.get(kind, 0) + 1
        add_leaf(leaf)
        expect += 1
    return leaves, kinds, expect - 1


def tree_scan(levels: merkle.Levels, n: int, kinds: dict, cps: list[Checkpoint], key,
              trusted_kid: str,
              all_signatures: bool, held: dict[int, list[tuple[str, str]]],
              frontiers: dict[int, str], tiles: dict[tuple[int, int], bytes] | None
              ) -> VerifyReport | None:
    """The rest of a full verify once every row passed :func:`check_stream`.

    Given the whole tree of the ``n`` records level by level (:class:`merkle.Levels`), checks
    each checkpoint (root, stored frontier, key id, signature), each held root, and every tile
    entry, exactly what :func:`scan` checks. Returns None at any fault, so the caller runs
    :func:`scan`, which names the first one in the order it always has.
    """
    if cps and cps[-1].size != n or not cps and n:
        return None  # records beyond the last checkpoint, or a checkpoint beyond the records
    signatures = 0
    for i, cp in enumerate(cps):
        if (cp.size < 1 or levels.root(cp.size).hex() != cp.root
                or frontiers.get(cp.size) != levels.state(cp.size) or cp.key_id != trusted_kid):
            return None
        if all_signatures or i == len(cps) - 1:
            signatures += 1
            if not _signature_ok(cp, key):
                return None
    for size, labels in held.items():
        if size > n:
            return None
        if size >= 1 and any(root != levels.root(size).hex() for _, root in labels):
            return None
    if tiles is not None:
        expected = 0
        for entry, h in levels.tile_entries():
            if tiles.get(entry) != h:
                return None
            expected += 1
        if len(tiles) != expected:
            return None  # an entry beyond the records was inserted
    return VerifyReport(records=n, checkpoints=len(cps), signatures_checked=signatures,
                        root=levels.root(n).hex(), key_id=trusted_kid,
                        latest=cps[-1] if cps else None, seconds=0.0, key_source="",
                        kinds=kinds)


def _check_tiles(computed: list[tuple[int, int, bytes]], stored: dict, start: int, n: int) -> None:
    """Every tile entry the scanned records complete is stored as computed; none lies beyond."""
    for level, idx, h in computed:
        if stored.get((level, idx)) != h:
            width = merkle.TILE_WIDTH ** level
            state = "is missing" if (level, idx) not in stored else "does not match the records"
            raise TamperError(f"tile entry {level}/{idx} (the tree over records "
                              f"#{idx * width + 1} to #{(idx + 1) * width}) {state}")
    for level, idx in stored:
        if (idx + 1) * merkle.TILE_WIDTH ** level > n:
            raise TamperError(f"tile entry {level}/{idx} covers records beyond the last one "
                              f"(#{n}): it was inserted")


def _plain(value) -> bool:
    return isinstance(value, str) and '"' not in value and "\\" not in value and value.isprintable()


# Per kind: the lookup columns' body keys as the canonical text spells them.
_KEY_TEXT = {kind: tuple((f'"{k}":"', f'"{k}":null') if k else None for k in keys)
             for kind, keys in LOOKUP_KEYS.items()}


def _binding_plain(body: str, rid: str, kind: str, seq: int, lookup, lookup2) -> bool:
    """Fast check that a body names its own row (id, kind, seq) and lookup columns.

    Substring tests on the canonical text; True means they hold. False only means "look
    closer" (:func:`_binding_exact` decides), so this never wrongly fails a ledger.
    """
    if (f'"id":"{rid}"' not in body or f'"kind":"{kind}"' not in body
            or (f'"seq":{seq},' not in body and f'"seq":{seq}}}' not in body)):
        return False
    keys = _KEY_TEXT.get(kind)
    if keys is None:
        return lookup is None and lookup2 is None
    for key, value in zip(keys, (lookup, lookup2)):
        if key is None:
            if value is not None:
                return False
        elif value is None:
            if key[1] not in body:
                return False
        elif not (value.isalnum() or _plain(value)) or key[0] + value + '"' not in body:
            return False
    return True


def _binding_exact(body: str, rid: str, kind: str, seq: int, lookup, lookup2) -> None:
    """Parse the body and raise TamperError unless it names its row and lookup columns."""
    try:
        parsed = json.loads(body)
        b_id, b_seq, b_kind = parsed["id"], parsed["seq"], parsed["kind"]
    except (ValueError, KeyError, TypeError):
        raise TamperError(f"record {rid} (#{seq}) has a body that is not a ledger "
                          "record") from None
    if b_seq != seq or b_id != rid or b_kind != kind:
        raise TamperError(f"record {rid} (#{seq}) is out of place: its body is record "
                          f"{b_id} (#{b_seq}); rows were swapped or moved")
    if lookup_columns(parsed) != (lookup, lookup2):
        raise TamperError(f"record {rid} (#{seq}): its lookup columns disagree with its body")


def _blame(ids: list[tuple[str, int]]) -> str:
    if len(ids) == 1:
        return f"record {ids[0][0]} (#{ids[0][1]})"
    return (f"one of records {ids[0][0]} (#{ids[0][1]}) to {ids[-1][0]} (#{ids[-1][1]}), "
            "written in one batch,")


def _signature_ok(cp: Checkpoint, key) -> bool:
    try:
        merkle.verify_checkpoint(cp.to_dict(), key)
        return True
    except merkle.ProofError:
        return False


def _first_bad_signature(cps: list[Checkpoint], key) -> None:
    for cp in cps:
        if not _signature_ok(cp, key):
            raise TamperError(f"signed checkpoint {cp.size} has a signature that does not "
                              "verify with the ledger's public key")
