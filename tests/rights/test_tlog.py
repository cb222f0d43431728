"""Ledger hardening: checked frontiers, the witness, C2SP checkpoints, tiles, incremental verify."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from soundscape.errors import TamperError
from soundscape.facts import OutputFacts
from soundscape.rights import merkle
from soundscape.rights.ledger import Ledger
from soundscape.rights.store.schema import LEDGER_VERSION

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ledger-v1"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def output(i: int) -> OutputFacts:
    return OutputFacts(audio_sha256=sha(f"audio {i}"), file_sha256=sha(f"file {i}"),
                       path=f"/tmp/out/cue-{i:04d}.wav", engine="composer", engine_version="1.0",
                       prompt=f"prompt number {i}", cue_kind="bed", seed=i)


def open_ledger(home, **kw):
    return Ledger.open_url(f"sqlite:///{home / 'ledger.sqlite'}", home / "keys", home=home, **kw)


def append(ledger, start: int, count: int, batch: int = 100) -> None:
    for lo in range(start, start + count, batch):
        with ledger.store.batch() as b:
            for i in range(lo, min(lo + batch, start + count)):
                data = output(i).entry()
                b.add("output", data, lookup=data["audio_sha256"], lookup2=data["content_key"])


def db(home) -> sqlite3.Connection:
    return sqlite3.connect(home / "ledger.sqlite", isolation_level=None)


def count(home) -> int:
    return db(home).execute("SELECT count(*) FROM ledger_records").fetchone()[0]


@pytest.fixture
def small(tmp_path):
    """Twelve outputs, one per transaction."""
    with open_ledger(tmp_path) as ledger:
        for i in range(12):
            ledger.record_output(output(i))
    return tmp_path


# -- tampered frontier --------------------------------------------------------------------

def test_an_edited_frontier_fails_verify_and_the_next_append_refuses(small):
    con = db(small)
    text = con.execute("SELECT frontier FROM ledger_checkpoints WHERE size = 12").fetchone()[0]
    size, hashes = text.split(":")
    first, rest = hashes.split(",", 1)
    forged = f"{size}:{'0' * 64},{rest}"
    con.execute("UPDATE ledger_checkpoints SET frontier = ? WHERE size = 12", (forged,))
    with open_ledger(small) as ledger:
        with pytest.raises(TamperError) as info:
            ledger.verify()
        assert str(info.value) == ("signed checkpoint 12: the frontier stored with it does not "
                                   "match the records (an append would extend a wrong tree)")
        with pytest.raises(TamperError, match="frontier stored with signed checkpoint 12 does not "
                                              "match its root: refusing to extend"):
            ledger.record_output(output(99))
    assert count(small) == 12  # nothing was written under a root that does not match its leaves
    # An older frontier is checked too (verify recomputes every one).
    con.execute("UPDATE ledger_checkpoints SET frontier = ? WHERE size = 12", (text,))
    con.execute("UPDATE ledger_checkpoints SET frontier = '5:' WHERE size = 5")
    with open_ledger(small) as ledger, pytest.raises(TamperError, match="signed checkpoint 5: "):
        ledger.verify()


def test_an_append_refuses_a_latest_checkpoint_that_does_not_verify(small):
    con = db(small)
    # One base64 character of the signature changed (a fixed letter might not occur in it).
    note = con.execute("SELECT signature FROM ledger_checkpoints WHERE size = 12").fetchone()[0]
    head, _, line = note.rstrip("\n").rpartition("\n")
    forged = line[:-5] + ("B" if line[-5] != "B" else "C") + line[-4:]
    con.execute("UPDATE ledger_checkpoints SET signature = ? WHERE size = 12",
                (f"{head}\n{forged}\n",))
    with open_ledger(small) as ledger, pytest.raises(TamperError, match="signed checkpoint 12 does "
                                                                         "not verify"):
        ledger.record_output(output(99))
    assert count(small) == 12


# -- the witness --------------------------------------------------------------------------

def test_truncating_records_and_checkpoints_together_fails_plain_verify(tmp_path):
    team = tmp_path / "team-witness"
    home = tmp_path / "home"
    with open_ledger(home, witness_dirs=[team]) as ledger:
        for i in range(10):
            ledger.record_output(output(i))
        ledger.verify()  # the team's witness takes checkpoint 10 once a verify checked it
    local = home / "keys" / "ledger.checkpoint"
    (shared,) = team.glob("*.checkpoint")
    assert local.read_text() == shared.read_text()  # both copies hold checkpoint 10
    assert merkle.parse_checkpoint_text(merkle.parse_signed_note(local.read_text())[0])[1] == 10
    con = db(home)
    con.execute("DELETE FROM ledger_records WHERE seq > 7")
    con.execute("DELETE FROM ledger_checkpoints WHERE size > 7")
    local.unlink()  # even with the local copies gone, the team's copy holds the ledger to size 10
    (home / "keys" / "ledger.witnessed.checkpoint").unlink()
    with open_ledger(home, witness_dirs=[team]) as ledger:
        with pytest.raises(TamperError) as info:
            ledger.verify()
        assert str(info.value) == (f"record #8 is missing: the witness {shared} holds signed "
                                   "checkpoint 10 but only 7 records remain; the ledger was "
                                   "truncated or rolled back")
        with pytest.raises(TamperError, match="truncated or rolled back"):
            ledger.record_output(output(50))  # and nothing is appended over the gap
    assert count(home) == 7


def test_a_ledger_rebuilt_with_replaced_key_files_fails_plain_verify(small, tmp_path):
    # Someone rebuilds the history elsewhere (record 3 rewritten) under a key pair of their own ...
    forged = tmp_path / "forged"
    with open_ledger(small) as ledger:
        bodies = [r.body for r in ledger.records()]
    with open_ledger(forged) as ledger:
        for body in bodies:
            facts = output(body["seed"])
            if body["seed"] == 3:
                facts = dataclasses.replace(facts, prompt="prompt number Z")
            ledger.record_output(facts)
        assert ledger.verify().records == 12  # self-consistent under its own key
    # ... and puts the database and both key files in place of the real ones.
    for name in ("ledger.sqlite", "keys/ledger-ed25519.pem", "keys/ledger-ed25519.pub.pem"):
        shutil.copy(forged / name, small / name)
    with open_ledger(small) as ledger:
        with pytest.raises(TamperError) as info:
            ledger.verify()
    assert str(info.value).startswith(f"the witnessed checkpoint {small / 'keys'}")
    assert str(info.value).endswith("the ledger or its key files were replaced")


def test_verify_moves_the_witness_forward_and_checks_consistency(small):
    local = small / "keys" / "ledger.checkpoint"
    old = local.read_text()
    with open_ledger(small) as ledger:
        append(ledger, 100, 30, batch=10)
        report = ledger.verify()
    assert report.witnessed == [str(local)]
    new = local.read_text()
    assert merkle.parse_checkpoint_text(merkle.parse_signed_note(new)[0])[1] == 42
    # The consistency proof between the old and the new witnessed trees, from the tiles.
    _, m, old_root = merkle.parse_checkpoint_text(merkle.parse_signed_note(old)[0])
    _, n, new_root = merkle.parse_checkpoint_text(merkle.parse_signed_note(new)[0])
    with open_ledger(small) as ledger:
        proof = ledger.consistency(m, n)
    merkle.verify_consistency(m, n, old_root, new_root, [bytes.fromhex(h) for h in proof["path"]])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(m, n, old_root[::-1], new_root,
                                  [bytes.fromhex(h) for h in proof["path"]])


# -- C2SP checkpoints, checked from the spec alone ----------------------------------------

def check_note_from_the_spec(note: str, public_pem: bytes) -> tuple[str, int, bytes]:
    """c2sp.org/signed-note + c2sp.org/tlog-checkpoint, written from the spec, not merkle.py.

    Base64 is RFC 4648's, in its canonical form (RFC 4648 §3.5: zero padding bits).
    """

    def b64(text: str) -> bytes:
        data = base64.b64decode(text, validate=True)
        assert base64.b64encode(data).decode() == text, "not canonical base64"
        return data

    key = serialization.load_pem_public_key(public_pem)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert note.endswith("\n") and all(c >= " " or c == "\n" for c in note)
    cut = note.rindex("\n\n")
    text, signature_lines = note[:cut + 1], note[cut + 2:].splitlines()
    origin, size, root_b64 = text.splitlines()[:3]
    key_id = hashlib.sha256(origin.encode() + b"\x0a" + b"\x01" + raw).digest()[:4]
    verified = False
    for line in signature_lines:
        assert line.startswith("\u2014 ")
        name, sig_b64 = line[2:].split(" ")
        sig = b64(sig_b64)
        if name == origin and sig[:4] == key_id:
            key.verify(sig[4:], text.encode())  # raises InvalidSignature
            verified = True
    assert verified, "no signature by the ledger's key"
    assert size.isdigit() and (size == "0" or not size.startswith("0"))
    return origin, int(size), b64(root_b64)


def test_checkpoints_are_c2sp_signed_notes_any_changed_byte_fails(small):
    with open_ledger(small) as ledger:
        cp = ledger.latest_checkpoint_dict()
        pem = ledger.public_key_pem().encode()
    origin, size, root = check_note_from_the_spec(cp["note"], pem)
    assert (origin, size, root.hex()) == (f"soundscape.ledger/{cp['key_id']}", 12, cp["root"])
    note = cp["note"].encode()
    failures = 0
    for i in range(len(note)):
        if note[i:i + 1] == b"\n" or 0x80 <= note[i] < 0xC0 or note[i] >= 0xC0:
            continue  # keep the framing and the em dash's UTF-8 intact; every other byte changes
        changed = (note[:i] + bytes([note[i] ^ 0x01]) + note[i + 1:]).decode()
        with pytest.raises((InvalidSignature, AssertionError, ValueError)):
            check_note_from_the_spec(changed, pem)
        with pytest.raises(merkle.ProofError):
            merkle.verify_checkpoint(dict(cp, note=changed), pem)
        failures += 1
    assert failures > 100
    # The verifier key standard tooling takes (Go's sumdb/note form) is written beside the key.
    vkey = (small / "keys" / "ledger.vkey").read_text().strip()
    name, key_hash, encoded = vkey.split("+", 2)
    raw = base64.b64decode(encoded)
    assert name == origin and raw[:1] == b"\x01"
    assert bytes.fromhex(key_hash) == hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]


def test_first_format_checkpoints_still_verify_and_new_ones_are_notes(tmp_path):
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    shutil.copy(FIXTURE / "ledger.sqlite", home / "ledger.sqlite")
    for key in (FIXTURE / "keys").iterdir():
        shutil.copy(key, home / "keys" / key.name)
    with open_ledger(home) as ledger:
        old = [cp.to_dict() for cp in ledger.store.checkpoints()]
        assert len(old) == 11 and all("note" not in cp for cp in old)
        pem = ledger.public_key_pem()
        for cp in old:
            merkle.verify_checkpoint(cp, pem)
        ledger.record_output(output(1))
        new = ledger.latest_checkpoint_dict()
        report = ledger.verify()
    assert (report.records, report.checkpoints) == (40, 12)
    assert check_note_from_the_spec(new["note"], pem.encode())[1] == 40
    assert db(home).execute("SELECT value FROM ledger_meta WHERE key = 'version'").fetchone() == (
        LEDGER_VERSION,)


# -- tiles --------------------------------------------------------------------------------

def test_proofs_come_from_tiles_and_an_edited_tile_is_named(tmp_path):
    with open_ledger(tmp_path) as ledger:
        append(ledger, 0, 700, batch=100)
        leaves = [merkle.leaf_hash(r.text.encode()) for r in ledger.records()]
        with ledger.store.read() as conn:
            tree = ledger.store.tile_tree(conn)
            for index in (0, 255, 256, 511, 699):
                path = tree.inclusion_path(index, 700)
                assert merkle.root_from_inclusion(leaves[index], index, 700, path) == \
                    merkle.root_of(leaves)
            assert tree.reads <= 6  # tiles read, not 700 leaves: level-0 tiles 0..2, level 1
        proof = ledger.prove("out-000100").to_dict()
        assert merkle.verify_inclusion(proof, ledger.public_key_pem())["tree_size"] == 700
    rows = db(tmp_path).execute("SELECT level, idx FROM ledger_tiles ORDER BY idx").fetchall()
    assert rows == [(1, 0), (1, 1)]  # the roots of records 1-256 and 257-512
    db(tmp_path).execute("UPDATE ledger_tiles SET hash = ? WHERE idx = 1", (b"\0" * 32,))
    with open_ledger(tmp_path) as ledger:
        with pytest.raises(TamperError, match="tree hashes do not match signed checkpoint 700"):
            ledger.prove("out-000100")  # its path holds tile entry 1/1
        with pytest.raises(TamperError) as info:
            ledger.verify()
    assert str(info.value) == ("tile entry 1/1 (the tree over records #257 to #512) does not "
                               "match the records")


# -- incremental verify -------------------------------------------------------------------

def test_verify_since_witness_checks_only_what_was_added(tmp_path):
    with open_ledger(tmp_path) as ledger:
        append(ledger, 0, 300)
        ledger.verify()  # the witness now holds checkpoint 300
        append(ledger, 300, 50, batch=25)
    # An edit after the witnessed checkpoint is found by the incremental check ...
    con = db(tmp_path)
    con.execute("UPDATE ledger_records SET body = replace(body, 'number 320', 'number 999') "
                "WHERE seq = 321")
    with open_ledger(tmp_path) as ledger:
        with pytest.raises(TamperError, match=r"out-000321 \(#321\) was edited"):
            ledger.verify(since_witness=True)
    con.execute("UPDATE ledger_records SET body = replace(body, 'number 999', 'number 320') "
                "WHERE seq = 321")
    with open_ledger(tmp_path) as ledger:
        report = ledger.verify(since_witness=True)
    assert (report.checked_from, report.records, report.checkpoints) == (300, 350, 2)
    assert report.kinds == {"output": 50}  # only the new records were read
    # ... one before it is the full verify's to find (the witness vouches for the old tree).
    con.execute("UPDATE ledger_records SET body = replace(body, 'number 20', 'number 21') "
                "WHERE seq = 21")
    with open_ledger(tmp_path) as ledger:
        assert ledger.verify(since_witness=True).checked_from == 350
        with pytest.raises(TamperError, match=r"out-000021 \(#21\) was edited"):
            ledger.verify()


# -- parallel verify ----------------------------------------------------------------------

def test_a_parallel_verify_agrees_with_the_sequential_one_and_names_the_same_fault(
        tmp_path, monkeypatch):
    # A full verify checks the rows (in processes, for a large file), then builds the tree level
    # by level; at any fault the sequential scan runs and names it. Both must see the same.
    from soundscape.rights.store import database

    with open_ledger(tmp_path) as ledger:
        append(ledger, 0, 900, batch=100)
        real_full = database.Store._full_scan
        with monkeypatch.context() as m:
            m.setattr(database.Store, "_full_scan", lambda self, *a: None)
            sequential = ledger.verify()  # the sequential scan alone
        monkeypatch.setattr(database, "PARALLEL_MIN_ROWS", 100)
        monkeypatch.setattr(database, "PARALLEL_CHUNK_ROWS", 128)
        calls, rows = [], []
        real_rows = database.Store._parallel_rows
        monkeypatch.setattr(database.Store, "_parallel_rows",
                            lambda self, *a: rows.append(real_rows(self, *a)) or rows[-1])
        monkeypatch.setattr(database.Store, "_full_scan",
                            lambda self, *a: calls.append(real_full(self, *a)) or calls[-1])
        parallel = ledger.verify()
    assert rows and rows[0] is not None and rows[0][2] == 900  # the workers passed every row
    assert calls and calls[0] is not None  # and the level-by-level tree passed the ledger
    assert (parallel.records, parallel.root, parallel.kinds, parallel.checkpoints,
            parallel.signatures_checked) == (
        sequential.records, sequential.root, sequential.kinds, sequential.checkpoints,
        sequential.signatures_checked)
    assert parallel.root == ledger.latest_checkpoint().root
    db(tmp_path).execute("UPDATE ledger_records SET body = replace(body, 'number 600', "
                         "'number 6000') WHERE seq = 601")
    with open_ledger(tmp_path) as ledger, pytest.raises(TamperError) as info:
        ledger.verify()
    assert str(info.value) == ("record out-000601 (#601) was edited: its body does not match its "
                               "leaf hash")


def test_a_parallel_verify_ends_when_the_process_has_its_own_sigterm_handler(tmp_path):
    """Forked verify workers inherit the parent's signal handlers; with one that does not exit
    (as a training run's or Ray's), Pool.terminate used to wait on them forever."""
    import subprocess
    import sys

    with open_ledger(tmp_path) as ledger:
        append(ledger, 0, 400, batch=100)
    code = (
        "import signal, sys\n"
        "from pathlib import Path\n"
        "from soundscape.rights.ledger import Ledger\n"
        "from soundscape.rights.store import database\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)  # a handler that only notes it\n"
        "database.PARALLEL_MIN_ROWS, database.PARALLEL_CHUNK_ROWS = 100, 64\n"
        "home = Path(sys.argv[1])\n"
        "with Ledger.open_url(f'sqlite:///{home / \"ledger.sqlite\"}', home / 'keys', home=home) as l:\n"
        "    called = []\n"
        "    real = database.Store._parallel_rows\n"
        "    database.Store._parallel_rows = lambda self, *a: called.append(1) or real(self, *a)\n"
        "    for _ in range(20):\n"
        "        records = l.verify().records\n"
        "    print(records, len(called))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["400", "20"]  # twenty parallel verifies, each of them ended


@pytest.mark.parametrize("tamper, message", [
    ("UPDATE ledger_tiles SET hash = zeroblob(32) WHERE level = 1 AND idx = 1",
     "tile entry 1/1 (the tree over records #257 to #512) does not match the records"),
    ("INSERT INTO ledger_tiles (level, idx, hash) VALUES (1, 9, zeroblob(32))",
     "tile entry 1/9 covers records beyond the last one (#600): it was inserted"),
    ("UPDATE ledger_checkpoints SET frontier = '300:' || (CASE substr(frontier, 5, 1) WHEN '0' "
     "THEN '1' ELSE '0' END) || substr(frontier, 6) WHERE size = 300",
     "signed checkpoint 300: the frontier stored with it does not match the records (an append "
     "would extend a wrong tree)"),
    ("DELETE FROM ledger_checkpoints WHERE size = 600",
     "record out-000301 (#301) is not covered by any signed checkpoint: it was inserted after "
     "the last one"),
])
def test_the_level_by_level_tree_declines_every_fault_and_the_scan_names_it(
        tmp_path, monkeypatch, tamper, message):
    # The full verify's fast path never passes a tampered ledger: it hands over to the
    # sequential scan, which names the fault; on an intact ledger the scan is not needed.
    from soundscape.rights.store import database

    with open_ledger(tmp_path) as ledger:
        append(ledger, 0, 600, batch=300)
    scans = []
    real_scan = database.scan
    monkeypatch.setattr(database, "scan", lambda *a, **kw: scans.append(1) or real_scan(*a, **kw))
    with open_ledger(tmp_path) as ledger:
        assert ledger.verify().records == 600
    assert scans == []
    db(tmp_path).execute(tamper)
    with open_ledger(tmp_path) as ledger, pytest.raises(TamperError) as info:
        ledger.verify()
    assert scans == [1]
    assert str(info.value) == message


def test_a_parallel_verify_on_either_backend_reads_the_verifys_own_snapshot(
        tmp_path, ledger_backend, monkeypatch):
    # PostgreSQL's workers each open a connection and read in the snapshot the verify's
    # transaction exports: a row changed after that transaction began is not what they check
    # (the next verify, in a new snapshot, names it). SQLite's read the committed file.
    from soundscape.config import open_workspace
    from soundscape.rights.store import database

    ledger_backend.use(tmp_path)
    with Ledger.open(open_workspace(tmp_path)) as ledger:
        append(ledger, 0, 900, batch=100)
        sequential = ledger.verify()
    monkeypatch.setattr(database, "PARALLEL_MIN_ROWS", 100)
    monkeypatch.setattr(database, "PARALLEL_CHUNK_ROWS", 128)
    con = ledger_backend.connect(tmp_path)
    results = []
    real_rows = database.Store._parallel_rows

    def tamper_then_check(self, *a):
        if ledger_backend.name == "postgresql":
            con.execute("UPDATE ledger_records SET body = replace(body, 'number 600', "
                        "'number 6000') WHERE seq = 601")
        results.append(real_rows(self, *a))
        return results[-1]

    monkeypatch.setattr(database.Store, "_parallel_rows", tamper_then_check)
    with Ledger.open(open_workspace(tmp_path)) as ledger:
        parallel = ledger.verify()
    assert results and results[0] is not None and results[0][2] == 900
    assert (parallel.records, parallel.root, parallel.kinds, parallel.signatures_checked) == (
        sequential.records, sequential.root, sequential.kinds, sequential.signatures_checked)
    if ledger_backend.name == "sqlite":
        con.execute("UPDATE ledger_records SET body = replace(body, 'number 600', "
                    "'number 6000') WHERE seq = 601")
    with Ledger.open(open_workspace(tmp_path)) as ledger, pytest.raises(TamperError) as info:
        ledger.verify()
    assert results[-1] is None  # the workers found it; the sequential scan named it
    assert str(info.value) == ("record out-000601 (#601) was edited: its body does not match its "
                               "leaf hash")
