"""The RFC 6962 tree: hashes against published vectors and an independent computation, proofs."""

from __future__ import annotations

import base64
import hashlib

import pytest

from soundscape.rights import merkle
from soundscape.rights.merkle import ProofError

# The Certificate Transparency reference leaves and the roots RFC 6962 implementations agree on
# for every tree size 0..8 (index = tree size).
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# The audit path of leaf 0 in the 8-leaf reference tree.
CT_PATH_0_8 = ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]


def reference_mth(data: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written straight from the definition (recursion on the raw data)."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(data[:k]) + reference_mth(data[k:])).digest()


def entries(n: int) -> list[bytes]:
    return [f"record {i}".encode() * (i % 3 + 1) for i in range(n)]


def test_reference_vectors():
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in CT_LEAVES]
    for size, expected in enumerate(CT_ROOTS):
        assert merkle.root_of(leaves[:size]).hex() == expected
    assert [h.hex() for h in merkle.inclusion_path(leaves, 0, 8)] == CT_PATH_0_8


@pytest.mark.parametrize("n", range(1, 21))
def test_root_matches_independent_computation(n):
    data = entries(n)
    leaves = [merkle.leaf_hash(d) for d in data]
    expected = reference_mth(data)
    assert merkle.root_of(leaves) == expected
    # The incremental frontier gives the same root at every size on the way, and survives a
    # save and restore of its state.
    f = merkle.Frontier()
    for i, leaf in enumerate(leaves, start=1):
        f.append(leaf)
        assert f.root() == reference_mth(data[:i])
        f = merkle.Frontier.from_state(f.state())
    assert f.size == n


@pytest.mark.parametrize("n", range(1, 21))
def test_every_inclusion_proof_verifies_and_any_change_fails(n):
    data = entries(n)
    leaves = [merkle.leaf_hash(d) for d in data]
    root = reference_mth(data)
    for i in range(n):
        path = merkle.inclusion_path(leaves, i, n)
        assert merkle.root_from_inclusion(leaves[i], i, n, path) == root
        for j in range(len(path)):
            bad = list(path)
            bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
            assert merkle.root_from_inclusion(leaves[i], i, n, bad) != root
        if n > 1:  # the same path at another index: a wrong root, or a path of the wrong length
            try:
                assert merkle.root_from_inclusion(leaves[i], (i + 1) % n, n, path) != root
            except ProofError:
                pass
        with pytest.raises(ProofError):
            merkle.root_from_inclusion(leaves[i], i, n, path + [root])


@pytest.mark.parametrize("n", range(1, 21))
def test_consistency_proofs(n):
    data = entries(n)
    leaves = [merkle.leaf_hash(d) for d in data]
    new_root = reference_mth(data)
    for m in range(1, n + 1):
        old_root = reference_mth(data[:m])
        proof = merkle.consistency_path(leaves, m, n)
        merkle.verify_consistency(m, n, old_root, new_root, proof)
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, hashlib.sha256(b"x").digest(), new_root, proof)
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, old_root, hashlib.sha256(b"x").digest(), proof)
        for j in range(len(proof)):
            bad = list(proof)
            bad[j] = hashlib.sha256(bad[j]).digest()
            with pytest.raises(ProofError):
                merkle.verify_consistency(m, n, old_root, new_root, bad)


def test_consistency_fails_for_a_rewritten_history():
    data = entries(12)
    leaves = [merkle.leaf_hash(d) for d in data]
    forked = list(leaves)
    forked[2] = merkle.leaf_hash(b"rewritten")
    proof = merkle.consistency_path(forked, 5, 12)
    with pytest.raises(ProofError):
        merkle.verify_consistency(5, 12, merkle.root_of(leaves[:5]), merkle.root_of(forked), proof)


def _signed_proof(n: int = 11, index: int = 6):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization

    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    bodies = [f'{{"id":"r{i}","seq":{i + 1}}}' for i in range(n)]
    leaves = [merkle.leaf_hash(b.encode()) for b in bodies]
    root = merkle.root_of(leaves).hex()
    kid = merkle.key_id_of(key.public_key())
    time = "2026-01-01T00:00:00+00:00"
    sig = base64.b64encode(key.sign(merkle.checkpoint_message(n, root, time, kid))).decode()
    proof = {"format": merkle.PROOF_FORMAT, "record_id": f"r{index}", "leaf_index": index,
             "tree_size": n, "body": bodies[index], "leaf_hash": leaves[index].hex(),
             "audit_path": [h.hex() for h in merkle.inclusion_path(leaves, index, n)],
             "checkpoint": {"size": n, "root": root, "time": time, "key_id": kid,
                            "signature": sig}}
    return proof, pem


def test_verify_inclusion_with_the_public_key_alone():
    proof, pem = _signed_proof()
    assert merkle.verify_inclusion(proof, pem)["record_id"] == "r6"


def test_verify_inclusion_rejects_another_key():
    proof, _ = _signed_proof()
    _, other = _signed_proof()
    with pytest.raises(ProofError, match="key"):
        merkle.verify_inclusion(proof, other)


def test_levels_agree_with_the_definition_and_the_frontier():
    # The level-by-level tree a full verify builds: at every size up to 600 (over two
    # 256-leaf tiles), its root is RFC 6962's, its frontier state is the incremental one, and
    # its tile entries are those the appends completed.
    data = [f"record {i}".encode() for i in range(600)]
    leaves = [merkle.leaf_hash(d) for d in data]
    levels = merkle.Levels(leaves)
    f = merkle.Frontier()
    for size in range(1, len(leaves) + 1):
        f.append(leaves[size - 1])
        assert levels.root(size) == f.root()
        assert levels.state(size) == f.state()
    for size in (1, 2, 3, 255, 256, 257, 511, 512, 600):
        assert levels.root(size) == reference_mth(data[:size])
    assert levels.root(0) == hashlib.sha256(b"").digest()
    assert sorted(levels.tile_entries()) == sorted(((lv, i), h) for lv, i, h in f.tiles)
    assert [entry for entry, _ in levels.tile_entries()] == [(1, 0), (1, 1)]


def test_levels_joined_from_aligned_chunks_are_the_whole_trees():
    # A parallel verify's workers each hash a chunk of 2^k leaves (the last one shorter); the
    # joined tree must give the same roots, frontiers and tile entries as one pass over all.
    leaves = [merkle.leaf_hash(f"record {i}".encode()) for i in range(1300)]
    whole = merkle.Levels(leaves)
    for step in (1, 64, 256, 512, 2048):
        joined = merkle.Levels.from_parts([merkle.Levels.chunk(leaves[lo:lo + step])
                                           for lo in range(0, len(leaves), step)])
        assert joined.nodes == whole.nodes
        for size in (1, 255, 256, 257, 1024, 1299, 1300):
            assert joined.root(size) == whole.root(size) == merkle.root_of(leaves[:size])
            assert joined.state(size) == whole.state(size)
        assert list(joined.tile_entries()) == list(whole.tile_entries())
