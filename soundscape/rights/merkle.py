"""RFC 6962 Merkle tree over ledger records: hashing, proofs and signed checkpoints.

This module needs only :mod:`hashlib` and ``cryptography`` so that it can be copied to another
machine and used there to check an inclusion proof with the ledger's public key alone
(``verify_inclusion``). Hashing follows RFC 6962 §2.1 (SHA-256; leaf = H(0x00 ‖ data),
node = H(0x01 ‖ left ‖ right); a tree of n leaves splits at the largest power of two below n).
Proof checking follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.
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

    __slots__ = ("size", "_hashes", "_sizes")

    def __init__(self) -> None:
        self.size = 0
        self._hashes: list[bytes] = []
        self._sizes: list[int] = []

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (already hashed with :func:`leaf_hash`)."""
        hashes, sizes = self._hashes, self._sizes
        h, s = leaf, 1
        # Two full subtrees of the same size merge into one twice the size (binary carry).
        while sizes and sizes[-1] == s:
            h = hashlib.sha256(NODE_PREFIX + hashes.pop() + h).digest()
            s += sizes.pop()
        hashes.append(h)
        sizes.append(s)
        self.size += 1

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
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root, keeping the sibling subtree at each split; reversed at the end.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(leaves, lo, lo + k))
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

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [_subtree_root(leaves, lo, hi)]
        k = _split(n)
        if m <= k:
            return subproof(m, lo, lo + k, complete) + [_subtree_root(leaves, lo + k, hi)]
        return subproof(m - k, lo + k, hi, False) + [_subtree_root(leaves, lo, lo + k)]

    return subproof(old_size, 0, new_size, True)


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


def key_id_of(public_key) -> str:
    """A short stable id for an Ed25519 public key: the first 16 hex digits of SHA-256(raw key)."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


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
        checkpoint: ``{"size", "root", "time", "key_id", "signature"}`` (root hex, signature
            base64), as the ledger stores and proofs carry them.
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
    try:
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        message = checkpoint_message(int(checkpoint["size"]), checkpoint["root"],
                                     checkpoint["time"], checkpoint["key_id"])
        public_key.verify(signature, message)
    except (InvalidSignature, ValueError, KeyError, TypeError):
        raise ProofError("checkpoint signature does not verify with the public key") from None


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
