"""The ledger store: append-only records, signed checkpoints, tamper detection, proofs, writers."""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import sqlite3
import stat

import pytest

from soundscape.config import open_workspace
from soundscape.errors import LedgerError, TamperError
from soundscape.facts import OutputFacts
from soundscape.rights import merkle
from soundscape.rights.clearance import clear, lineage
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import ModelEntry


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def output(i: int, folder="/tmp/out") -> OutputFacts:
    return OutputFacts(audio_sha256=sha(f"audio {i}"), file_sha256=sha(f"file {i}"),
                       path=f"{folder}/cue-{i:03d}.wav", engine="composer",
                       engine_version="1.0", prompt=f"prompt number {i}", cue_kind="bed",
                       parameters={"duration": 30.0, "seed": i}, seed=i)


def open_ledger(home):
    """The workspace's ledger: its own SQLite file, or the ``ledger_url`` its soundscape.toml names."""
    return Ledger.open(open_workspace(home))


# Connections for tampering, per workspace, from the backend that made it.
_BACKENDS: dict = {}


@pytest.fixture
def filled(tmp_path, ledger_backend):
    """A ledger of 12 outputs, one per transaction (so one signed checkpoint per record), on
    each backend."""
    ledger_backend.use(tmp_path)
    _BACKENDS[tmp_path] = ledger_backend
    with open_ledger(tmp_path) as ledger:
        for i in range(1, 13):
            ledger.record_output(output(i))
    yield tmp_path
    _BACKENDS.pop(tmp_path, None)


def db(home):
    """A raw autocommit connection to the ledger's database (``?`` placeholders on both)."""
    backend = _BACKENDS.get(home)
    if backend is None:
        return sqlite3.connect(home / "ledger.sqlite", isolation_level=None)
    return backend.connect(home)


def verify_error(home) -> str:
    with open_ledger(home) as ledger:
        with pytest.raises(TamperError) as info:
            ledger.verify()
    return str(info.value)


def test_a_fresh_ledger_verifies_and_has_a_private_key_only_its_owner_reads(filled):
    with open_ledger(filled) as ledger:
        report = ledger.verify()
        assert report.records == 12 and report.checkpoints == 12
        assert report.signatures_checked == 12
        assert report.latest.size == 12
        assert [r.id for r in ledger.records()][:2] == ["out-000001", "out-000002"]
    mode = stat.S_IMODE(os.stat(filled / "keys" / "ledger-ed25519.pem").st_mode)
    assert mode == 0o600
    assert (filled / "keys" / "ledger-ed25519.pub.pem").exists()


def test_bodies_are_canonical_json_and_hash_to_their_leaves(filled):
    rows = db(filled).execute("SELECT body, leaf_hash FROM ledger_records ORDER BY seq").fetchall()
    for body, leaf in rows:
        assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False)
        assert hashlib.sha256(b"\x00" + body.encode()).digest() == leaf


def test_record_output_is_idempotent_on_audio_and_path(filled):
    with open_ledger(filled) as ledger:
        again = ledger.record_output(output(5))
        assert again.id == "out-000005"
        elsewhere = ledger.record_output(output(5, folder="/tmp/copy"))
        assert elsewhere.id == "out-000013"
        assert ledger.store.count() == 13


def test_edited_record_is_named(filled):
    db(filled).execute("UPDATE ledger_records SET body = replace(body, 'prompt number 7', "
                       "'prompt number 8') WHERE id = 'out-000007'")
    message = verify_error(filled)
    assert "record out-000007 (#7)" in message and "edited" in message


def test_edited_record_with_recomputed_leaf_hash_fails_its_checkpoint(filled):
    con = db(filled)
    body = con.execute("SELECT body FROM ledger_records WHERE seq = 7").fetchone()[0]
    body = body.replace("prompt number 7", "prompt number X")
    leaf = hashlib.sha256(b"\x00" + body.encode()).digest()
    con.execute("UPDATE ledger_records SET body = ?, leaf_hash = ? WHERE seq = 7", (body, leaf))
    assert verify_error(filled) == "record out-000007 (#7) does not match signed checkpoint 7"


def test_deleted_record_is_found(filled):
    db(filled).execute("DELETE FROM ledger_records WHERE seq = 5")
    message = verify_error(filled)
    assert "record #5 is missing" in message and "out-000006 (#6)" in message


def test_deleted_and_renumbered_rows_are_found(filled):
    con = db(filled)
    con.execute("DELETE FROM ledger_records WHERE seq = 5")
    # Through negative numbers: PostgreSQL checks the primary key row by row.
    con.execute("UPDATE ledger_records SET seq = 1 - seq WHERE seq > 5")
    con.execute("UPDATE ledger_records SET seq = -seq WHERE seq < 0")
    message = verify_error(filled)
    assert "out-000006" in message and "(#5)" in message and "out of place" in message


def test_swapped_rows_are_found(filled):
    con = db(filled)
    cols = "id, kind, lookup, lookup2, body, leaf_hash"
    a = con.execute(f"SELECT {cols} FROM ledger_records WHERE seq = 3").fetchone()
    b = con.execute(f"SELECT {cols} FROM ledger_records WHERE seq = 9").fetchone()
    con.execute("UPDATE ledger_records SET id = 'tmp' WHERE seq = 3")
    sets = "id = ?, kind = ?, lookup = ?, lookup2 = ?, body = ?, leaf_hash = ?"
    con.execute(f"UPDATE ledger_records SET {sets} WHERE seq = 9", a)
    con.execute(f"UPDATE ledger_records SET {sets} WHERE seq = 3", b)
    message = verify_error(filled)
    assert message.startswith("record out-000009 (#3) is out of place")


def test_truncation_behind_the_last_checkpoint_is_found(filled):
    db(filled).execute("DELETE FROM ledger_records WHERE seq > 9")
    message = verify_error(filled)
    assert "record #10 is missing" in message and "truncated" in message


def test_inserted_record_without_a_checkpoint_is_found(filled):
    con = db(filled)
    body = json.dumps({"id": "out-000013", "kind": "output", "seq": 13}, sort_keys=True,
                      separators=(",", ":"))
    con.execute("INSERT INTO ledger_records (seq, id, kind, lookup, lookup2, body, leaf_hash) "
                "VALUES (13, 'out-000013', 'output', NULL, NULL, ?, ?)",
                (body, hashlib.sha256(b"\x00" + body.encode()).digest()))
    message = verify_error(filled)
    assert message.startswith("record out-000013 (#13) is not covered by any signed checkpoint")
    # ... and the ledger refuses to write on top of it.
    with open_ledger(filled) as ledger, pytest.raises(TamperError):
        ledger.record_output(output(99))


def _flip_note_signature(note: str) -> str:
    """The signed note with one bit of its Ed25519 signature (after the key ID) flipped."""
    head, encoded = note.rstrip("\n").rsplit(" ", 1)
    sig = base64.b64decode(encoded)
    return f"{head} {base64.b64encode(sig[:4] + bytes([sig[4] ^ 1]) + sig[5:]).decode()}\n"


def test_forged_checkpoint_signature_is_found(filled):
    con = db(filled)
    note = con.execute("SELECT signature FROM ledger_checkpoints WHERE size = 4").fetchone()[0]
    con.execute("UPDATE ledger_checkpoints SET signature = ? WHERE size = 4",
                (_flip_note_signature(note),))
    message = verify_error(filled)
    assert message.startswith("record out-000004 (#4): signed checkpoint 4 has a signature")


def _resign_everything(home, *, replace_meta: bool):
    """Rebuild the tree's checkpoints with a new key, as someone without the ledger key would."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from soundscape.rights.store import public_pem

    key = Ed25519PrivateKey.generate()
    kid = merkle.key_id_of(key.public_key())
    con = db(home)
    # Also edit a record: the point of a rebuild is to change history and re-sign it.
    body = con.execute("SELECT body FROM ledger_records WHERE seq = 2").fetchone()[0]
    body = body.replace("prompt number 2", "prompt number Z")
    con.execute("UPDATE ledger_records SET body = ?, leaf_hash = ? WHERE seq = 2",
                (body, merkle.leaf_hash(body.encode())))
    leaves = [bytes(r[0]) for r in con.execute(
        "SELECT leaf_hash FROM ledger_records ORDER BY seq")]
    _resign(con, key, leaves, kid=kid)
    if replace_meta:
        con.execute("UPDATE ledger_meta SET value = ? WHERE key = 'public_key'",
                    (public_pem(key.public_key()),))
        con.execute("UPDATE ledger_meta SET value = ? WHERE key = 'key_id'", (kid,))


def _resign(con, key, leaves, *, kid):
    """Re-sign every checkpoint (note, root and frontier) over ``leaves`` with ``key``."""
    for (size,) in con.execute("SELECT size FROM ledger_checkpoints").fetchall():
        frontier = merkle.Frontier()
        for leaf in leaves[:size]:
            frontier.append(leaf)
        note = merkle.sign_checkpoint(key, kid, size, frontier.root())
        con.execute("UPDATE ledger_checkpoints SET root = ?, key_id = ?, signature = ?, "
                    "frontier = ? WHERE size = ?",
                    (frontier.root().hex(), kid, note, frontier.state(), size))


def test_rebuild_with_another_key_is_found(filled):
    _resign_everything(filled, replace_meta=False)
    message = verify_error(filled)
    assert message.startswith("record out-000001 (#1): signed checkpoint 1 names key")


def test_rebuild_with_another_key_and_its_public_key_is_found(filled):
    _resign_everything(filled, replace_meta=True)
    message = verify_error(filled)
    assert "rebuilt or replaced" in message


def test_quick_verify_checks_the_latest_signature_and_every_root(filled):
    with open_ledger(filled) as ledger:
        assert ledger.verify(all_signatures=False).signatures_checked == 1
    db(filled).execute("UPDATE ledger_records SET body = replace(body, 'number 3', 'number 4')"
                       " WHERE seq = 3")
    with open_ledger(filled) as ledger, pytest.raises(TamperError, match=r"out-000003 \(#3\)"):
        ledger.verify(all_signatures=False)


@pytest.mark.parametrize("content", [b"", os.urandom(4096)], ids=["empty", "random"])
def test_a_file_that_is_not_a_ledger_is_refused(tmp_path, content):
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(content + b"\x01")
    with pytest.raises(LedgerError, match="is not a soundscape ledger"):
        open_ledger(tmp_path)
    assert path.read_bytes() == content + b"\x01"


def test_another_sqlite_database_is_refused_untouched(tmp_path):
    path = tmp_path / "ledger.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE music (title TEXT)")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError, match=f"{path} is not a soundscape ledger"):
        open_ledger(tmp_path)
    assert path.read_bytes() == before


def test_inclusion_proof_verifies_with_the_public_key_alone(filled):
    with open_ledger(filled) as ledger:
        proof = ledger.prove("out-000006").to_dict()
        pem = ledger.public_key_pem()
    proof = json.loads(json.dumps(proof))  # as another machine reads it
    summary = merkle.verify_inclusion(proof, pem)
    assert summary == {"record_id": "out-000006", "leaf_index": 5, "tree_size": 12,
                       "root": proof["checkpoint"]["root"], "key_id": proof["checkpoint"]["key_id"]}


def _flip(hex_text: str) -> str:
    return ("0" if hex_text[0] != "0" else "1") + hex_text[1:]


def test_inclusion_proof_fails_when_any_part_is_altered(filled):
    with open_ledger(filled) as ledger:
        proof = ledger.prove("out-000006").to_dict()
        pem = ledger.public_key_pem()
    def altered(change):
        copy = json.loads(json.dumps(proof))
        change(copy)
        return copy

    def flip_signature(p):
        sig = base64.b64decode(p["checkpoint"]["signature"])
        p["checkpoint"]["signature"] = base64.b64encode(bytes([sig[0] ^ 1]) + sig[1:]).decode()

    def flip_leaf_without_body(p):
        p["leaf_hash"] = _flip(p["leaf_hash"])
        p["body"] = None

    variants = [
        altered(lambda p: p.update(leaf_hash=_flip(p["leaf_hash"]))),
        altered(flip_leaf_without_body),
        altered(lambda p: p["checkpoint"].update(root=_flip(p["checkpoint"]["root"]))),
        altered(flip_signature),
        altered(lambda p: p.update(body=p["body"].replace("number 6", "number 7"))),
        altered(lambda p: p.update(leaf_index=4)),
    ]
    for i in range(len(proof["audit_path"])):
        variants.append(altered(lambda p, i=i: p["audit_path"].__setitem__(
            i, _flip(p["audit_path"][i]))))
    assert len(proof["audit_path"]) == 4  # a tree of 12: every level is tried
    for p in variants:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(p, pem)


def test_consistency_between_checkpoints(filled):
    with open_ledger(filled) as ledger:
        cps = {c.size: c for c in ledger.store.checkpoints()}
        for old in (1, 3, 4, 7, 12):
            proof = ledger.consistency(old)
            assert proof["old_root"] == cps[old].root and proof["new_root"] == cps[12].root
            merkle.verify_consistency(old, 12, bytes.fromhex(cps[old].root),
                                      bytes.fromhex(cps[12].root),
                                      [bytes.fromhex(h) for h in proof["path"]])


def test_model_names_are_unique(tmp_path, ledger_backend):
    ledger_backend.use(tmp_path)
    with open_ledger(tmp_path) as ledger:
        entry = ModelEntry(name="deep-water", lm_sha256=sha("lm"), compression_sha256=sha("c"),
                           license="CC0-1.0", lineage_unknown=True)
        first = ledger.register_model(entry)
        assert ledger.register_model(entry).id == first.id
        other = ModelEntry(name="deep-water", lm_sha256=sha("lm2"), compression_sha256=sha("c"),
                           license="CC0-1.0")
        with pytest.raises(LedgerError, match="already registered"):
            ledger.register_model(other)
        assert ledger.get_model("deep-water").lm_sha256 == sha("lm")
        assert [m.name for m in ledger.list_models()] == ["deep-water"]
        assert ledger.get_model("nope") is None
        with pytest.raises(LedgerError, match="no dataset"):
            ledger.register_model(ModelEntry(name="x", license="CC0-1.0", datasets=["missing"]))


def test_a_fine_tune_of_musicgen_records_its_noncommercial_base(tmp_path, ledger_backend):
    ledger_backend.use(tmp_path)
    with open_ledger(tmp_path) as ledger:
        model = ledger.register_model(ModelEntry(name="ft", lm_sha256=sha("ft"),
                                                 license="CC-BY-NC-4.0",
                                                 base_model="facebook/musicgen-small"))
        assert model.base_model_license == "CC-BY-NC-4.0"
        out = ledger.record_output(OutputFacts(
            audio_sha256=sha("ft out"), file_sha256=sha("f"), path="/tmp/ft.wav",
            engine="musicgen", model="ft"))
        roles = sorted(item.role for item in lineage(ledger, out.id))
        assert roles == ["base-model", "model"]
        assert not clear(ledger, out.id, "broadcast-commercial").cleared
        assert clear(ledger, out.id, "internal-preproduction").cleared


def _append_worker(home, worker, count, barrier):
    from pathlib import Path

    barrier.wait(timeout=120)  # every process opens the (not yet existing) ledger at once
    with open_ledger(Path(home)) as ledger:
        for i in range(count):
            ledger.record_output(output(worker * 1000 + i))


def test_four_processes_appending_at_once_lose_nothing(tmp_path, ledger_backend):
    ledger_backend.use(tmp_path)
    count = 30
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_append_worker, args=(str(tmp_path), w, count, barrier))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with open_ledger(tmp_path) as ledger:
        report = ledger.verify()
        assert report.records == 4 * count
        assert report.checkpoints == 4 * count
        ids = [r.id for r in ledger.records()]
        assert ids == [f"out-{n:06d}" for n in range(1, 4 * count + 1)]
        seeds = sorted(r.body["seed"] for r in ledger.records("output"))
        assert seeds == sorted(w * 1000 + i for w in range(4) for i in range(count))


def test_the_standalone_checker_in_the_docs_works(filled, tmp_path):
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ledger.md").read_text()
    script = next(block for block in re.findall(r"```python\n(.*?)```", doc, re.S)
                  if "RFC 9162" in block)
    (tmp_path / "check.py").write_text(script)
    with open_ledger(filled) as ledger:
        proof = ledger.prove("out-000011").to_dict()
        (tmp_path / "key.pem").write_text(ledger.public_key_pem())

    def check(p):
        (tmp_path / "proof.json").write_text(json.dumps(p))
        return subprocess.run([sys.executable, str(tmp_path / "check.py"),
                               str(tmp_path / "proof.json"), str(tmp_path / "key.pem")],
                              capture_output=True, text=True, timeout=60)

    ok = check(proof)
    assert ok.returncode == 0 and ok.stdout.startswith("OK out-000011 is leaf 10 of 12"), ok.stderr
    for field in ("leaf_hash", "root", "path"):
        bad = json.loads(json.dumps(proof))
        if field == "root":
            bad["checkpoint"]["root"] = _flip(bad["checkpoint"]["root"])
        elif field == "path":
            bad["audit_path"][-1] = _flip(bad["audit_path"][-1])
        else:
            bad["leaf_hash"] = _flip(bad["leaf_hash"])
            bad["body"] = None
        assert check(bad).returncode != 0, field


def test_a_checkpoint_held_elsewhere_exposes_truncation_and_rewrites(filled):
    with open_ledger(filled) as ledger:
        held = ledger.store.checkpoints()[9].to_dict()  # size 10, as a sidecar keeps it
        assert ledger.verify(against=[("cue.wav.json", held)]).records == 12
    # Truncation that also removes the checkpoints: invisible from inside the database ...
    con = db(filled)
    con.execute("DELETE FROM ledger_records WHERE seq > 8")
    con.execute("DELETE FROM ledger_checkpoints WHERE size > 8")
    # ... the witness beside the public key holds checkpoint 12: plain verify names it ...
    assert verify_error(filled).startswith("record #9 is missing: the witness ")
    for copy in (filled / "keys").glob("ledger*.checkpoint"):
        copy.unlink()
    with open_ledger(filled) as ledger:
        assert ledger.verify().records == 8
        # ... and without the witness, the checkpoint the sidecar kept does.
        with pytest.raises(TamperError) as info:
            ledger.verify(against=[("cue.wav.json", held)])
    assert str(info.value) == ("record #9 is missing: cue.wav.json holds signed checkpoint 10 "
                               "but only 8 records remain; the ledger was truncated or rolled back")


def test_a_held_checkpoint_exposes_a_rewrite_by_the_key_holder(filled):
    with open_ledger(filled) as ledger:
        held = ledger.store.checkpoints()[5].to_dict()  # size 6
    # Someone with the key rewrites record 3 and re-signs every checkpoint after it.
    from soundscape.rights.store import load_or_create_key

    key = load_or_create_key(filled / "keys")
    con = db(filled)
    body = con.execute("SELECT body FROM ledger_records WHERE seq = 3").fetchone()[0]
    body = body.replace("prompt number 3", "prompt number Q")
    con.execute("UPDATE ledger_records SET body = ?, leaf_hash = ? WHERE seq = 3",
                (body, merkle.leaf_hash(body.encode())))
    leaves = [bytes(r[0]) for r in con.execute("SELECT leaf_hash FROM ledger_records ORDER BY seq")]
    _resign(con, key, leaves, kid=merkle.key_id_of(key.public_key()))
    # The witness beside the public key holds checkpoint 12 as it was: plain verify sees it.
    assert "held in the witness" in verify_error(filled)
    for copy in (filled / "keys").glob("ledger*.checkpoint"):
        copy.unlink()
    with open_ledger(filled) as ledger:
        assert ledger.verify().records == 12  # self-consistent without its witness ...
        with pytest.raises(TamperError, match="first 6 records do not match signed checkpoint 6 "
                                              "held in proof.json"):
            ledger.verify(against=[("proof.json", held)])
        forged = dict(held, root="0" * 64)
        with pytest.raises(TamperError, match="does not verify"):
            ledger.verify(against=[("forged.json", forged)])
