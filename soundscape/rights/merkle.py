"""RFC 6962 Merkle tree over ledger records: hashing, proofs and signed checkpoints.

This module needs only :mod:`hashlib` and ``cryptography`` so that it can be copied to another
machine and used there to check an inclusion proof with the ledger's public key alone
(``verify_inclusion``). Hashing follows RFC 6962 §2.1 (SHA-256; leaf = H(0x00 ‖ data),
node = H(0x01 ‖ left ‖ right); a tree of n leaves splits at the largest power of two below n).
Proof checking follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2. Checkpoints are C2SP
signed notes in the tlog-checkpoint form (c2sp.org/signed-note, c2sp.org/tlog-checkpoint), so
standard transparency-log tooling can check them; the ledger's first format (a labelled text
with a bare Ed25519 signature, ``soundscape-ledger-checkpoint/v1``) still verifies. The tree's
interior hashes are kept in the C2SP tlog-tiles layout (tiles of height 8,
c2sp.org/tlog-tiles): :class:`TileTree` answers any subtree root from them in O(log n) reads.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
CHECKPOINT_FORMAT = "soundscape-ledger-checkpoint/v1"
PROOF_FORMAT = "soundscape-inclusion-proof/v1"
CONSISTENCY_FORMAT = "soundscape-consistency-proof/v1"
# C2SP tlog-tiles: a tile holds 2**8 hashes; an entry of level L is the root of 256**L leaves.
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
# C2SP signed-note: a signature line starts with an em dash and a space; Ed25519 is type 0x01.
NOTE_SIGNATURE_PREFIX = "\u2014 "
NOTE_ED25519 = b"\x01"
# The checkpoint's origin (and signing key name): a schema-less URL naming this ledger's key,
# as C2SP recommends (unique per log; no spaces, no plus signs).
ORIGIN_PREFIX = "soundscape.ledger/"


try:
    from soundscape.errors import ProofError
except ImportError:  # this file copied alone to check a proof elsewhere (docs/ledger.md)
    class ProofError(ValueError):
        """A proof or checkpoint that does not verify; the message says which part failed."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256 over 0x00 followed by the record's bytes."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256 over 0x01, the left and the right child."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """An append-only tree summarised by the roots of its full subtrees (largest first).

    Appending is amortised O(1) hashes and the root of the current size costs O(log n), so a
    verifier can check every checkpoint on one pass over the leaves. The full subtrees of a
    tree of size n are those of n's binary digits, and folding them right to left gives exactly
    RFC 6962's root, because its split rule peels off the largest full subtree first.
    """

    __slots__ = ("size", "_hashes", "_sizes", "tiles")

    def __init__(self) -> None:
        self.size = 0
        self._hashes: list[bytes] = []
        self._sizes: list[int] = []
        # Tile entries (level >= 1) completed by appends, as (level, index, hash); the writer
        # stores them, the verifier checks the stored ones (see TileTree).
        self.tiles: list[tuple[int, int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (already hashed with :func:`leaf_hash`)."""
        hashes, sizes = self._hashes, self._sizes
        h, s = leaf, 1
        # Two full subtrees of the same size merge into one twice the size (binary carry).
        while sizes and sizes[-1] == s:
            h = hashlib.sha256(NODE_PREFIX + hashes.pop() + h).digest()
            s += sizes.pop()
            if s & _TILE_MASK == 0:  # a multiple of 256: perhaps a power of 256
                self._tile_done(h, s)
        hashes.append(h)
        sizes.append(s)
        self.size += 1

    def _tile_done(self, h: bytes, s: int) -> None:
        level = (s.bit_length() - 1) // TILE_HEIGHT
        if s == 1 << (TILE_HEIGHT * level):
            # The subtree just completed ends at the current size + 1 (this leaf).
            self.tiles.append((level, self.size // s, h))

    def root(self) -> bytes:
        """The RFC 6962 root hash of the leaves appended so far."""
        if not self._hashes:
            return EMPTY_ROOT
        hashes = self._hashes
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = hashlib.sha256(NODE_PREFIX + left + h).digest()
        return h

    def state(self) -> str:
        """The frontier as text (size:hex,hex,...), so a writer can resume without a full scan."""
        return f"{self.size}:" + ",".join(h.hex() for h in self._hashes)

    @classmethod
    def from_state(cls, text: str) -> "Frontier":
        """Rebuild a frontier saved with :meth:`state`."""
        f = cls()
        size_text, _, hashes = text.partition(":")
        f.size = int(size_text)
        f._hashes = [bytes.fromhex(h) for h in hashes.split(",")] if hashes else []
        # The subtree sizes are the binary digits of the size, largest first.
        f._sizes = [1 << b for b in range(f.size.bit_length() - 1, -1, -1) if f.size >> b & 1]
        if len(f._sizes) != len(f._hashes):
            raise ValueError("frontier state does not match its size")
        return f


_TILE_MASK = TILE_WIDTH - 1


class Levels:
    """Every full subtree of a tree, computed level by level from all its leaves at once.

    ``node(h, i)`` is the root of leaves ``[i·2^h, (i+1)·2^h)`` (``nodes[h]`` holds level ``h``'s
    hashes joined, 32 bytes each); level ``h + 1`` pairs up level ``h`` in one comprehension,
    so a whole tree costs about one SHA-256 call per leaf with none of :class:`Frontier`'s
    per-append bookkeeping, and chunks of it can be hashed in parallel (:meth:`from_parts`).
    From these, the root, frontier and tile entries of any size up to the leaf count are
    O(log n) lookups: what a full verify needs at each checkpoint. The hashes are the same ones :class:`Frontier` gives (RFC 6962).
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.nodes = self.chunk(leaves)
        self._extend()

    @staticmethod
    def chunk(leaves: Sequence[bytes]) -> list[bytes]:
        """Every full subtree of ``leaves``, per level, each level's hashes joined (32 bytes
        each): what a verify worker returns for its chunk of a tree (see :meth:`from_parts`)."""
        sha256 = hashlib.sha256
        level = list(leaves)
        out = [b"".join(level)]
        while len(level) > 1:
            left, right = level[0:len(level) - 1:2], level[1::2]
            level = [sha256(NODE_PREFIX + a + b).digest() for a, b in zip(left, right)]
            out.append(b"".join(level))
        return out

    @classmethod
    def from_parts(cls, parts: Sequence[list[bytes]]) -> "Levels":
        """The tree of consecutive chunks, each given as :meth:`chunk` of its leaves.

        Every chunk but the last must hold the same power-of-two number of leaves, so each of
        its subtrees is one of the whole tree's: level ``h`` is then the chunks' level ``h``
        joined, and only the levels above a chunk's height are hashed here.
        """
        self = cls.__new__(cls)
        height = max((len(p) for p in parts), default=1)
        self.nodes = [b"".join(p[h] for p in parts if len(p) > h) for h in range(height)]
        self._extend()
        return self

    def _extend(self) -> None:
        # Hash the levels above the top one held, up to the root of the largest full subtree.
        sha256 = hashlib.sha256
        top = self.nodes[-1]
        while len(top) > 32:
            level = [top[i:i + 32] for i in range(0, len(top) - 32, 64)]
            right = [top[i:i + 32] for i in range(32, len(top), 64)]
            top = b"".join(sha256(NODE_PREFIX + a + b).digest() for a, b in zip(level, right))
            self.nodes.append(top)

    def node(self, height: int, index: int) -> bytes:
        """The root of leaves ``[index·2^height, (index+1)·2^height)``."""
        return self.nodes[height][32 * index:32 * index + 32]

    def frontier_hashes(self, size: int) -> list[bytes]:
        """The full-subtree roots of the first ``size`` leaves, largest first (the frontier)."""
        out, offset = [], 0
        for h in range(size.bit_length() - 1, -1, -1):
            if size >> h & 1:
                out.append(self.node(h, offset >> h))
                offset += 1 << h
        return out

    def root(self, size: int) -> bytes:
        """RFC 6962's root of the first ``size`` leaves."""
        hashes = self.frontier_hashes(size)
        if not hashes:
            return EMPTY_ROOT
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = hashlib.sha256(NODE_PREFIX + left + h).digest()
        return h

    def state(self, size: int) -> str:
        """:meth:`Frontier.state` of the first ``size`` leaves."""
        return f"{size}:" + ",".join(h.hex() for h in self.frontier_hashes(size))

    def tile_entries(self):
        """Every tile entry of level >= 1 the leaves complete, as ``((level, index), hash)``."""
        level = 1
        while TILE_HEIGHT * level < len(self.nodes):
            hashes = self.nodes[TILE_HEIGHT * level]
            for idx in range(len(hashes) // 32):
                yield (level, idx), hashes[32 * idx:32 * idx + 32]
            level += 1


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The root hash of a tree whose leaf hashes are ``leaves``."""
    f = Frontier()
    for leaf in leaves:
        f.append(leaf)
    return f.root()


def _subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    f = Frontier()
    for i in range(lo, hi):
        f.append(leaves[i])
    return f.root()


def inclusion_path(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The audit path for leaf ``index`` in the tree of the first ``size`` leaves (RFC 6962 PATH).

    Args:
        leaves: leaf hashes, at least ``size`` of them.
        index: zero-based leaf index, below ``size``.
        size: tree size the path proves against.

    Returns:
        Sibling hashes from the leaf upwards.
    """
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    return _inclusion_path(lambda lo, hi: _subtree_root(leaves, lo, hi), index, size)


def _inclusion_path(subtree, index: int, size: int) -> list[bytes]:
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root, keeping the sibling subtree at each split; reversed at the end.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def consistency_path(leaves: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof between tree sizes ``old_size`` and ``new_size`` (RFC 6962 §2.1.2).

    Args:
        leaves: leaf hashes, at least ``new_size`` of them.
        old_size: the earlier tree size, 1..new_size.
        new_size: the later tree size.

    Returns:
        The proof's hashes, in the RFC's order.
    """
    if not 0 < old_size <= new_size <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    return _consistency_path(lambda lo, hi: _subtree_root(leaves, lo, hi), old_size, new_size)


def _consistency_path(subtree, old_size: int, new_size: int) -> list[bytes]:
    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [subtree(lo, hi)]
        k = _split(n)
        if m <= k:
            return subproof(m, lo, lo + k, complete) + [subtree(lo + k, hi)]
        return subproof(m - k, lo + k, hi, False) + [subtree(lo, lo + k)]

    return subproof(old_size, 0, new_size, True)


class TileTree:
    """Subtree roots, proofs and frontiers of a tree from its stored tile entries (c2sp.org/tlog-tiles).

    Entry ``i`` of level ``L`` is the root of leaves ``[i·256^L, (i+1)·256^L)``; level 0 holds
    the leaf hashes themselves. A tile ``L/N`` is entries ``256N .. 256N+255`` of level ``L``.
    The root of any aligned subtree of ``2^h`` leaves (``h = 8L + j``) is ``2^j`` entries of
    level ``L`` hashed up ``j`` times, so a proof reads O(log n) tiles, not the leaves.

    Args:
        read: ``read(level, lo, hi)`` returns the stored entries ``lo .. hi-1`` of ``level``
            (fewer when the store holds fewer).
    """

    def __init__(self, read):
        self._read = read
        self._tiles: dict[tuple[int, int], list[bytes]] = {}
        self.reads = 0

    def _entries(self, level: int, lo: int, hi: int) -> list[bytes]:
        out: list[bytes] = []
        while lo < hi:
            n = lo >> TILE_HEIGHT
            tile = self._tiles.get((level, n))
            if tile is None or len(tile) < min(hi - (n << TILE_HEIGHT), TILE_WIDTH):
                tile = self._read(level, n << TILE_HEIGHT, (n + 1) << TILE_HEIGHT)
                self._tiles[(level, n)] = tile
                self.reads += 1
            start = lo - (n << TILE_HEIGHT)
            stop = min(hi - (n << TILE_HEIGHT), TILE_WIDTH)
            if len(tile) < stop:
                raise ProofError(f"tile {level}/{n} holds {len(tile)} hashes; "
                                 f"{stop} are needed")
            out += tile[start:stop]
            lo = (n + 1) << TILE_HEIGHT
        return out

    def node(self, height: int, index: int) -> bytes:
        """The root of the aligned subtree of ``2**height`` leaves starting at ``index * 2**height``."""
        level, j = divmod(height, TILE_HEIGHT)
        hashes = self._entries(level, index << j, (index + 1) << j)
        while len(hashes) > 1:
            hashes = [hashlib.sha256(NODE_PREFIX + hashes[i] + hashes[i + 1]).digest()
                      for i in range(0, len(hashes), 2)]
        return hashes[0]

    def blocks(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """``[lo, hi)`` as aligned full subtrees ``(height, index)``, left to right, largest first."""
        out = []
        while lo < hi:
            h = ((hi - lo).bit_length() - 1) if lo == 0 else min(
                (lo & -lo).bit_length() - 1, (hi - lo).bit_length() - 1)
            out.append((h, lo >> h))
            lo += 1 << h
        return out

    def subtree(self, lo: int, hi: int) -> bytes:
        """RFC 6962's root of leaves ``[lo, hi)`` (``lo`` a multiple of a power of two >= hi - lo)."""
        nodes = [self.node(h, i) for h, i in self.blocks(lo, hi)]
        r = nodes[-1]
        for left in reversed(nodes[:-1]):
            r = node_hash(left, r)
        return r

    def root(self, size: int) -> bytes:
        return self.subtree(0, size) if size else EMPTY_ROOT

    def frontier(self, size: int) -> "Frontier":
        """The frontier (full-subtree roots) of the first ``size`` leaves, from the tiles."""
        f = Frontier()
        f.size = size
        f._hashes = [self.node(h, i) for h, i in self.blocks(0, size)]
        f._sizes = [1 << h for h, _ in self.blocks(0, size)]
        return f

    def inclusion_path(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        return _inclusion_path(self.subtree, index, size)

    def consistency_path(self, old_size: int, new_size: int) -> list[bytes]:
        if not 0 < old_size <= new_size:
            raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
        return _consistency_path(self.subtree, old_size, new_size)


def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root implied by a leaf hash and its audit path (RFC 9162 §2.1.3.2).

    Raises:
        ProofError: the path has the wrong length for this index and size.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("audit path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("audit path is shorter than the tree is deep")
    return r


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree of ``new_size`` extends the tree of ``old_size`` (RFC 9162 §2.1.4.2).

    Raises:
        ProofError: the proof does not show that the older tree is a prefix of the newer one.
    """
    if old_size < 1 or old_size > new_size:
        raise ProofError(f"no consistency between sizes {old_size} and {new_size}")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofError("equal sizes need an empty proof and equal roots")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node
        path.insert(0, old_root)
    if not path:
        raise ProofError("empty consistency proof")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the older root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the newer root")


# ---- signed checkpoints -------------------------------------------------------------------

def checkpoint_message(size: int, root_hex: str, time: str, key_id: str) -> bytes:
    """The exact bytes a checkpoint signature covers: four labelled lines after a format line."""
    return (f"{CHECKPOINT_FORMAT}\nsize {size}\nroot {root_hex}\ntime {time}\nkey {key_id}\n"
            ).encode("utf-8")


def raw_public_key(public_key) -> bytes:
    """The 32 raw bytes of an Ed25519 public key (RFC 8032 encoding)."""
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def origin_of(key_id: str) -> str:
    """The checkpoint origin (and note key name) of the ledger whose key id is ``key_id``."""
    return ORIGIN_PREFIX + key_id


def note_key_hash(name: str, raw_key: bytes) -> bytes:
    """C2SP signed-note key ID: SHA-256(name || 0x0A || 0x01 || 32-byte Ed25519 key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + NOTE_ED25519 + raw_key).digest()[:4]


def verifier_key(name: str, public_key) -> str:
    """The note verifier key string standard tooling takes: ``name+hex(key ID)+base64(0x01||key)``
    (the encoding of golang.org/x/mod/sumdb/note, which C2SP signed-note describes)."""
    raw = raw_public_key(public_key)
    return (f"{name}+{note_key_hash(name, raw).hex()}+"
            f"{base64.b64encode(NOTE_ED25519 + raw).decode()}")


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    """The C2SP tlog-checkpoint note text: origin, decimal size, base64 root, one per line."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(text: str, name: str, private_key) -> str:
    """A C2SP signed note: ``text``, a blank line, and one Ed25519 signature line by ``name``."""
    raw = raw_public_key(private_key.public_key())
    signature = note_key_hash(name, raw) + private_key.sign(text.encode("utf-8"))
    return f"{text}\n{NOTE_SIGNATURE_PREFIX}{name} {base64.b64encode(signature).decode()}\n"


def sign_checkpoint(private_key, key_id: str, size: int, root: bytes) -> str:
    """The signed checkpoint note for a tree of ``size`` leaves with root ``root``."""
    origin = origin_of(key_id)
    return sign_note(checkpoint_text(origin, size, root), origin, private_key)


def _strict_b64(text: str) -> bytes | None:
    """RFC 4648 base64 in its one canonical form (padding bits zero), else None.

    Lenient decoders accept two spellings of the same bytes; a signed text must have one.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return data if base64.b64encode(data).decode("ascii") == text else None


def parse_signed_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """A signed note's text and its signatures ``(key name, 4-byte key ID + signature)``.

    Raises:
        ProofError: not a signed note (c2sp.org/signed-note's format).
    """
    if not isinstance(note, str) or any(c < " " and c != "\n" for c in note):
        raise ProofError("not a signed note: it holds control characters")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise ProofError("not a signed note: no blank line before the signatures")
    text, lines = note[:cut + 1], note[cut + 2:-1].split("\n")
    signatures = []
    for line in lines:
        if not line.startswith(NOTE_SIGNATURE_PREFIX):
            raise ProofError("not a signed note: a signature line must start with an em dash")
        name, _, encoded = line[len(NOTE_SIGNATURE_PREFIX):].partition(" ")
        signature = _strict_b64(encoded)
        if signature is None:
            raise ProofError(f"signed note: the signature by {name} is not base64") from None
        if not name or "+" in name or len(signature) < 5:
            raise ProofError("signed note: a signature line is malformed")
        signatures.append((name, signature))
    return text, signatures


def open_note(note: str, name: str, public_key) -> str:
    """The text of ``note`` once the signature of key ``name`` (Ed25519) verifies.

    Signatures by other keys are ignored, as C2SP asks; one by this key that fails rejects
    the note.

    Raises:
        ProofError: no signature by this key, or one that does not verify.
    """
    from cryptography.exceptions import InvalidSignature

    text, signatures = parse_signed_note(note)
    kh = note_key_hash(name, raw_public_key(public_key))
    ours = [sig[4:] for n, sig in signatures if n == name and sig[:4] == kh]
    if not ours:
        raise ProofError(f"the checkpoint is not signed by key {name}")
    for sig in ours:
        try:
            public_key.verify(sig, text.encode("utf-8"))
        except InvalidSignature:
            raise ProofError("checkpoint signature does not verify with the public key") from None
    return text


def parse_checkpoint_text(text: str) -> tuple[str, int, bytes]:
    """``(origin, size, root)`` from a tlog-checkpoint note text (extension lines ignored).

    Raises:
        ProofError: not three such lines.
    """
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not all(lines[:-1]):
        raise ProofError("not a checkpoint: expected origin, size and root hash lines")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise ProofError(f"not a checkpoint: tree size {size_text!r} is not a decimal number")
    root = _strict_b64(root_text) or b""
    if len(root) != 32:
        raise ProofError("not a checkpoint: the root hash is not 32 bytes of base64")
    return origin, int(size_text), root


def key_id_of(public_key) -> str:
    """A short stable id for an Ed25519 public key: the first 16 hex digits of SHA-256(raw key)."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()[:16]


def load_public_key(pem: str | bytes):
    """An Ed25519 public key from PEM text.

    Raises:
        ProofError: the text is not an Ed25519 public key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise ProofError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ProofError("the public key is not an Ed25519 key")
    return key


def verify_checkpoint(checkpoint: dict, public_key) -> None:
    """Check a checkpoint's signature and key id against ``public_key``.

    Args:
        checkpoint: ``{"size", "root", "time", "key_id", "note"}`` where ``note`` is the C2SP
            signed note (root hex), or a first-format ``{..., "signature"}`` (base64 over
            :func:`checkpoint_message`), as the ledger stores and sidecars and proofs carry them.
        public_key: an Ed25519 public key object, or its PEM text.

    Raises:
        ProofError: the checkpoint was not signed by this key.
    """
    from cryptography.exceptions import InvalidSignature

    if isinstance(public_key, (str, bytes)):
        public_key = load_public_key(public_key)
    kid = key_id_of(public_key)
    if checkpoint.get("key_id") != kid:
        raise ProofError(f"checkpoint names key {checkpoint.get('key_id')}, not {kid}")
    if checkpoint.get("note") is not None:
        origin, size, root = parse_checkpoint_text(
            open_note(checkpoint["note"], origin_of(kid), public_key))
        if origin != origin_of(kid):
            raise ProofError(f"the checkpoint is for log {origin}, not {origin_of(kid)}")
        try:
            same = size == int(checkpoint["size"]) and root.hex() == checkpoint["root"]
        except (KeyError, TypeError, ValueError):
            same = False
        if not same:
            raise ProofError("the checkpoint's size or root differs from its signed note")
        signature = checkpoint.get("signature")
        if signature is not None and signature != note_signature(checkpoint["note"]):
            raise ProofError("the checkpoint's signature differs from its signed note's")
        return
    try:
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        message = checkpoint_message(int(checkpoint["size"]), checkpoint["root"],
                                     checkpoint["time"], checkpoint["key_id"])
        public_key.verify(signature, message)
    except (InvalidSignature, ValueError, KeyError, TypeError):
        raise ProofError("checkpoint signature does not verify with the public key") from None


def note_signature(note: str) -> str:
    """The base64 of a signed note's first signature (key ID + Ed25519 signature)."""
    return note.rstrip("\n").rsplit("\n", 1)[-1].rsplit(" ", 1)[-1]


def verify_inclusion(proof: dict, public_key_pem: str | bytes) -> dict:
    """Check an inclusion proof from ``soundscape ledger prove`` with the public key alone.

    Checks, in order: the record body hashes to the stated leaf hash (when the body is
    included); the leaf and audit path lead to the checkpoint's root; the checkpoint is signed
    by the given key. The public key inside the proof is ignored: trust comes from the key you
    were given separately.

    Args:
        proof: the proof as parsed JSON.
        public_key_pem: the ledger's Ed25519 public key (PEM).

    Returns:
        A summary: ``{"record_id", "leaf_index", "tree_size", "root", "key_id"}``.

    Raises:
        ProofError: any part does not verify; the message says which.
    """
    try:
        if proof.get("format") != PROOF_FORMAT:
            raise ProofError(f"not a soundscape inclusion proof (format {proof.get('format')!r})")
        index = int(proof["leaf_index"])
        size = int(proof["tree_size"])
        leaf = bytes.fromhex(proof["leaf_hash"])
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        checkpoint = proof["checkpoint"]
        root = bytes.fromhex(checkpoint["root"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ProofError):
            raise
        raise ProofError(f"malformed proof ({exc!r})") from None
    body = proof.get("body")
    if body is not None and leaf_hash(body.encode("utf-8")) != leaf:
        raise ProofError("the record body does not hash to the proof's leaf hash")
    if int(checkpoint.get("size", -1)) != size:
        raise ProofError("the proof's tree size differs from its checkpoint's size")
    if root_from_inclusion(leaf, index, size, path) != root:
        raise ProofError("the audit path does not lead to the checkpoint's root")
    key = load_public_key(public_key_pem)
    verify_checkpoint(checkpoint, key)
    return {"record_id": proof.get("record_id"), "leaf_index": index, "tree_size": size,
            "root": checkpoint["root"], "key_id": checkpoint["key_id"]}
