"""The store on its own: rows, batches, lookups, checkpoints and proofs, below the ledger."""

from __future__ import annotations

import pytest

from soundscape.canonical import canonical_json
from soundscape.errors import LedgerError
from soundscape.rights import merkle
from soundscape.rights.store import Store, lookup_columns


@pytest.fixture
def store(tmp_path, ledger_backend):
    """A store on each backend (SQLite, then the test run's PostgreSQL)."""
    s = Store(ledger_backend.url(tmp_path), tmp_path / "keys")
    s.backend = ledger_backend
    yield s
    s.close()


def add_assets(store, count: int, *, start: int = 0) -> list[str]:
    with store.batch() as batch:
        return [batch.add("asset", {"audio_sha256": f"{i:064x}", "file_sha256": f"{i + 1:064x}",
                                    "license": "CC0-1.0"},
                          lookup=f"{i:064x}", lookup2=f"{i + 1:064x}").id
                for i in range(start, start + count)]


def test_a_batch_is_one_transaction_with_one_signed_checkpoint(store):
    ids = add_assets(store, 3)
    assert ids == ["asset-000001", "asset-000002", "asset-000003"]
    assert add_assets(store, 2, start=10) == ["asset-000004", "asset-000005"]
    checkpoints = store.checkpoints()
    assert [cp.size for cp in checkpoints] == [3, 5]
    for cp in checkpoints:  # raises unless signed by the ledger's own key
        merkle.verify_checkpoint(cp.to_dict(), store.public_key_pem())
    assert [r.seq for r in store.iter_records()] == [1, 2, 3, 4, 5]


def test_a_batch_that_fails_leaves_nothing(store):
    add_assets(store, 2)
    with pytest.raises(RuntimeError):
        with store.batch() as batch:
            batch.add("asset", {"audio_sha256": "a" * 64}, lookup="a" * 64)
            raise RuntimeError("half way")
    assert store.count() == 2 and len(store.checkpoints()) == 1
    assert add_assets(store, 1, start=50) == ["asset-000003"]  # numbering did not move


def test_bodies_are_stored_canonically_and_name_their_row(store):
    add_assets(store, 2)
    for record in store.iter_records():
        assert record.text == canonical_json(record.body)
        assert (record.body["id"], record.body["seq"], record.body["kind"]) == \
            (record.id, record.seq, record.kind)
        assert lookup_columns(record.body) == (record.body["audio_sha256"],
                                               record.body["file_sha256"])


def test_reads_by_id_and_by_lookup_in_batches(store):
    ids = add_assets(store, 1200)  # more than one "IN (...)" clause holds
    wanted = ids[::7] + ["asset-999999"]
    found = store.get_many(wanted)
    assert sorted(found) == sorted(ids[::7])
    assert all(found[i].id == i for i in ids[::7])
    lookups = [f"{i:064x}" for i in range(0, 1200, 11)]
    many = store.find_many("asset", lookups)
    assert [r.body["audio_sha256"] for r in many] == lookups  # oldest first
    assert [r.id for r in store.find("asset", lookup2=f"{8:064x}")] == ["asset-000008"]


def test_lookup_columns_are_hints_checked_against_the_body(store, tmp_path):
    add_assets(store, 2)
    con = store.backend.connect(tmp_path)
    con.execute("UPDATE ledger_records SET lookup = ? WHERE id = 'asset-000002'", ("f" * 64,))
    con.close()
    assert store.find("asset", lookup="f" * 64) == []
    assert store.find_many("asset", ["f" * 64]) == []


def test_a_proof_from_the_store_verifies_with_the_public_key_alone(store):
    add_assets(store, 5)
    add_assets(store, 4, start=20)
    proof = store.prove("asset-000003")
    summary = merkle.verify_inclusion(proof, store.public_key_pem())
    assert (summary["record_id"], summary["leaf_index"], summary["tree_size"]) == ("asset-000003", 2, 9)
    step = store.consistency(5)
    merkle.verify_consistency(step["old_size"], step["new_size"], bytes.fromhex(step["old_root"]),
                              bytes.fromhex(step["new_root"]), [bytes.fromhex(h) for h in step["path"]])
    assert step["old_checkpoint"]["root"] == step["old_root"]


def test_a_store_writes_only_with_its_own_key(tmp_path, ledger_backend):
    url = ledger_backend.url(tmp_path)
    Store(url, tmp_path / "keys").close()
    other = Store(url, tmp_path / "other-keys")
    try:
        with pytest.raises(LedgerError, match="signing key is missing"):
            with other.batch():
                pass
    finally:
        other.close()


@pytest.mark.parametrize("url, says", [
    ("sqlite:///:memory:", "needs a file"), ("not a url", "not a database URL")])
def test_unusable_urls_are_refused(tmp_path, url, says):
    with pytest.raises(LedgerError, match=says):
        Store(url, tmp_path / "keys")
