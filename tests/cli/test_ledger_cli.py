"""``soundscape dataset``, ``ledger`` and ``clear`` through the Typer app: exit codes, output, rows."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from soundscape import delivery
from soundscape.audio.io import audio_sha256, file_sha256
from soundscape.cli import app
from soundscape.config import SAMPLES_DIR
from soundscape.errors import LedgerError
from soundscape.facts import OutputFacts
from soundscape.journal import Journal
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import ModelEntry


@pytest.fixture
def ws(tmp_path):
    return tmp_path / "ws"


@pytest.fixture
def cli(ws):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, ["--home", str(ws), *map(str, args)])

    return run


def tone(path, rng, seconds=0.2):
    t = np.arange(int(seconds * 48000)) / 48000
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * t), 48000, subtype="PCM_24")
    return path


def rows(ws, kind=None) -> list[tuple[str, dict]]:
    con = sqlite3.connect(ws / "ledger.sqlite")
    q = "SELECT id, body FROM ledger_records" + (" WHERE kind = ?" if kind else "") + " ORDER BY seq"
    return [(rid, json.loads(body)) for rid, body in con.execute(q, (kind,) if kind else ())]


def one_error(result, code):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_dataset_add_list_show(cli, ws, tmp_path, rng):
    for i in range(3):
        tone(tmp_path / "lib" / f"{i}.wav", rng)
    result = cli("dataset", "add", tmp_path / "lib", "--license", "CC-BY-4.0", "--author",
                 "Ana", "--dataset", "field", "--source", "https://a.example")
    assert result.exit_code == 0, result.output
    assert "dataset field version 1" in result.stdout and "3 CC-BY-4.0" in result.stdout
    assets = rows(ws, "asset")
    assert len(assets) == 3 and {b["author"] for _, b in assets} == {"Ana"}
    tone(tmp_path / "cc0.wav", rng)
    assert cli("dataset", "add", tmp_path / "cc0.wav", "--license", "CC0-1.0", "--author", "B",
               "--dataset", "field").exit_code == 0
    listed = cli("dataset", "list")
    assert listed.exit_code == 0 and "field" in listed.stdout and "4 assets" in listed.stdout
    shown = cli("dataset", "show", "field")
    assert shown.exit_code == 0
    assert "version 2" in shown.stdout
    assert "3  CC-BY-4.0" in shown.stdout and "1  CC0-1.0" in shown.stdout
    first = cli("dataset", "show", "field", "--version", "1").stdout
    assert "version 1" in first and "3  CC-BY-4.0" in first and "CC0-1.0" not in first


@pytest.mark.parametrize("args, code, words", [
    (["--license", "CC-BY-99", "--author", "A", "--dataset", "d"], 2, "unknown license"),
    (["--license", "CC0-1.0 OR", "--author", "A", "--dataset", "d"], 2, "malformed"),
])
def test_dataset_add_refuses_bad_input_and_writes_nothing(cli, ws, tmp_path, rng, args, code, words):
    f = tone(tmp_path / "a.wav", rng)
    line = one_error(cli("dataset", "add", f, *args), code)
    assert words in line
    assert not (ws / "ledger.sqlite").exists() or rows(ws) == []


@pytest.mark.parametrize("args, missing", [
    (["--author", "A", "--dataset", "d"], "--license"),
    (["--license", "CC0-1.0", "--author", "A"], "--dataset"),
    (["--license", "CC0-1.0", "--dataset", "d"], "--author"),
])
def test_dataset_add_names_a_missing_required_option_in_one_line(ws, tmp_path, rng, args, missing):
    import subprocess
    import sys

    f = tone(tmp_path / "a.wav", rng)
    proc = subprocess.run([sys.executable, "-m", "soundscape", "--home", str(ws), "dataset", "add", str(f), *args],
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"Missing option '{missing}'" in lines[0]
    assert not (ws / "ledger.sqlite").exists() or rows(ws) == []


def test_dataset_add_with_a_corrupt_file_adds_nothing(cli, ws, tmp_path, rng):
    tone(tmp_path / "lib" / "good.wav", rng)
    (tmp_path / "lib" / "broken.flac").write_bytes(b"fLaC" + bytes(64))
    line = one_error(cli("dataset", "add", tmp_path / "lib", "--license", "CC0-1.0",
                         "--author", "A", "--dataset", "d"), 1)
    assert "broken.flac" in line
    assert rows(ws) == []


def test_dataset_add_with_a_truncated_wav_adds_nothing(cli, ws, tmp_path, rng):
    # Formerly a WAV cut short (an interrupted copy) decoded without complaint and was
    # registered, with a hash of half the audio, as if it were the whole file.
    whole = tone(tmp_path / "lib" / "good.wav", rng, seconds=1.0)
    cut = tmp_path / "lib" / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    line = one_error(cli("dataset", "add", tmp_path / "lib", "--license", "CC0-1.0",
                         "--author", "A", "--dataset", "d"), 1)
    assert "cut.wav is truncated" in line
    assert not (ws / "ledger.sqlite").exists() or rows(ws) == []
    cut.unlink()
    assert cli("dataset", "add", tmp_path / "lib", "--license", "CC0-1.0", "--author", "A",
               "--dataset", "d").exit_code == 0


def test_license_conflict_is_refused(cli, ws, tmp_path, rng):
    f = tone(tmp_path / "a.wav", rng)
    assert cli("dataset", "add", f, "--license", "CC0-1.0", "--author", "A",
               "--dataset", "d").exit_code == 0
    before = rows(ws)
    copy = shutil.copy(f, tmp_path / "renamed.wav")
    line = one_error(cli("dataset", "add", copy, "--license", "CC-BY-NC-4.0", "--author", "A",
                         "--dataset", "e"), 2)
    assert "already registered as asset-000001" in line and "CC-BY-NC-4.0" in line
    assert rows(ws) == before
    # The same license again is a no-op for the asset.
    assert cli("dataset", "add", copy, "--license", "CC0-1.0", "--author", "A",
               "--dataset", "e").exit_code == 0
    assert len(rows(ws, "asset")) == 1
    # A correction (with its reason) is how a wrong license is fixed; the record stays.
    fixed = cli("ledger", "correct", "asset-000001", "--license", "CC-BY-NC-4.0",
                "--reason", "the licensor says NC")
    assert fixed.exit_code == 0, fixed.output
    assert "corrected asset-000001 by fix-000001: license CC-BY-NC-4.0" in fixed.stdout
    assert rows(ws, "asset")[0][1]["license"] == "CC0-1.0"
    assert rows(ws, "correction")[0][1]["changes"] == {"license": "CC-BY-NC-4.0"}
    assert cli("dataset", "add", copy, "--license", "CC-BY-NC-4.0", "--author", "A",
               "--dataset", "f").exit_code == 0
    no_reason = cli("ledger", "correct", "asset-000001", "--license", "MIT")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.stderr
    # A correction never blanks the author or license the credit line needs.
    before = rows(ws)
    for field in ("--author", "--license"):
        assert "cannot be empty" in one_error(
            cli("ledger", "correct", "asset-000001", field, " ", "--reason", "typo"), 2)
    assert rows(ws) == before


def test_dataset_import_jsonl(cli, ws, tmp_path, rng):
    tone(tmp_path / "m" / "x.wav", rng)
    manifest = tmp_path / "m" / "set.jsonl"
    manifest.write_text(json.dumps({"path": "x.wav", "license": "CC-BY-3.0", "author": "X"}) + "\n")
    result = cli("dataset", "import", manifest, "--dataset", "imported")
    assert result.exit_code == 0, result.output
    assert [b["name"] for _, b in rows(ws, "dataset")] == ["imported"]


def test_an_empty_dataset_version_is_refused(cli, ws, tmp_path, rng):
    # Formerly `--version ""` recorded a dataset version named "" for good, and every later
    # add without --version failed on it.
    f = tone(tmp_path / "a.wav", rng)
    assert "--version is empty" in one_error(
        cli("dataset", "add", f, "--license", "CC0-1.0", "--author", "A", "--dataset", "d",
            "--version", " "), 2)
    assert rows(ws, "dataset") == [] if (ws / "ledger.sqlite").exists() else True
    assert cli("dataset", "add", f, "--license", "CC0-1.0", "--author", "A",
               "--dataset", "d").exit_code == 0
    assert [b["version"] for _, b in rows(ws, "dataset")] == ["1"]


@pytest.mark.parametrize("name, content, says", [
    ("set.jsonl", json.dumps({"path": 123, "license": "CC0-1.0", "author": "A"}) + "\n",
     "'path' must be text"),
    ("set.jsonl", json.dumps({"path": "x.wav", "license": ["CC0-1.0"], "author": "A"}) + "\n",
     "'license' must be text"),
    ("set.csv", b"\xff\xfe\x00 not text", "not a text manifest"),
    ("take.wav", b"RIFF\xff\xff\x00\x00WAVEfmt \x80\x81", "not a text manifest"),
    ("folder", None, "is a folder"),
])
def test_dataset_import_of_a_bad_manifest_is_one_line(cli, ws, tmp_path, name, content, says):
    manifest = tmp_path / name
    if content is None:
        manifest.mkdir()
    elif isinstance(content, bytes):
        manifest.write_bytes(content)
    else:
        manifest.write_text(content)
    assert says in one_error(cli("dataset", "import", manifest, "--dataset", "d"), 2)
    assert rows(ws, "dataset") == [] if (ws / "ledger.sqlite").exists() else True


def _record_outputs(ws, tmp_path, rng):
    """A composer output made of CC0 samples and a musicgen output of a CC-BY-NC fine-tune."""
    manifest = [json.loads(line) for line in
                (SAMPLES_DIR / "manifest.jsonl").read_text().splitlines() if line.strip()]
    with Ledger.open_url(f"sqlite:///{ws / 'ledger.sqlite'}", ws / "keys", home=ws) as ledger:
        bed = tone(tmp_path / "out" / "bed.wav", rng)
        delivery.record(ledger, OutputFacts(
            audio_sha256=audio_sha256(bed), file_sha256=file_sha256(bed), path=str(bed),
            engine="composer", prompt="rain", cue_kind="bed",
            samples=[{k: m[k] for k in ("id", "sha256", "license", "path")} for m in manifest[:3]]))
        ledger.register_model(ModelEntry(name="ft", lm_sha256="1" * 64, license="CC-BY-NC-4.0",
                                         base_model="facebook/musicgen-small"))
        nc = tone(tmp_path / "out" / "nc.wav", rng)
        ledger.record_output(OutputFacts(audio_sha256=audio_sha256(nc), file_sha256=file_sha256(nc),
                                         path=str(nc), engine="musicgen", model="ft"))
    return bed, nc


def test_clear_finds_a_renamed_copy_and_exits_by_verdict(cli, ws, tmp_path, rng):
    bed, nc = _record_outputs(ws, tmp_path, rng)
    copy = shutil.copy(bed, tmp_path / "some other name.wav")
    result = cli("clear", copy, "--policy", "broadcast-commercial")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("CLEARED under broadcast-commercial: out-000001 (bed.wav)")
    result = cli("clear", nc, "--policy", "broadcast-commercial")
    assert result.exit_code == 4
    assert result.stdout.startswith("NOT CLEARED")
    assert "CC-BY-NC-4.0: non-commercial" in result.stdout and "base-model" in result.stdout
    assert cli("clear", "out-000002", "--policy", "internal-preproduction").exit_code == 0
    assert cli("clear", "out-000002", "--policy", "strict-cc0").exit_code == 4
    stranger = tone(tmp_path / "stranger.wav", rng)
    assert "not in the ledger" in one_error(cli("clear", stranger, "--policy", "strict-cc0"), 1)
    assert "policy" in one_error(cli("clear", "out-000001", "--policy", "no-such"), 2)


def test_ledger_list_show_verify_prove_check_export(cli, ws, tmp_path, rng):
    _record_outputs(ws, tmp_path, rng)
    listed = cli("ledger", "list", "--kind", "output")
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["out-000001", "out-000002"]
    last = cli("ledger", "list", "--kind", "output", "--limit", "1")
    assert [line.split()[0] for line in last.stdout.splitlines()] == ["out-000002"]
    # Formerly 0 or a negative limit printed "no records", as if the ledger were empty.
    assert "--limit 0" in one_error(cli("ledger", "list", "--limit", "0"), 2)
    assert "--limit -3" in one_error(cli("ledger", "list", "--limit", "-3"), 2)
    shown = cli("ledger", "show", "out-000002")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["model"] == "ft"
    by_file = cli("ledger", "show", tmp_path / "out" / "bed.wav")
    assert by_file.exit_code == 0 and json.loads(by_file.stdout)["id"] == "out-000001"
    verified = cli("ledger", "verify")
    total = len(rows(ws))
    assert verified.exit_code == 0 and f"ledger OK: {total} records" in verified.stdout

    proof = tmp_path / "proof.json"
    assert cli("ledger", "prove", "out-000001", "--out", proof).exit_code == 0
    key = tmp_path / "ledger.pub.pem"
    key.write_text(cli("ledger", "public-key").stdout)
    checked = cli("ledger", "check-proof", proof, "--public-key", key)
    assert checked.exit_code == 0 and "proof OK: record out-000001" in checked.stdout
    data = json.loads(proof.read_text())
    data["audit_path"][0] = "0" * 64
    proof.write_text(json.dumps(data))
    assert "proof does not verify" in one_error(
        cli("ledger", "check-proof", proof, "--public-key", key), 3)

    exported = tmp_path / "ledger.jsonl"
    assert cli("ledger", "export", "--format", "jsonl", "--out", exported).exit_code == 0
    lines = exported.read_text().splitlines()
    assert len(lines) == total
    stored = sqlite3.connect(ws / "ledger.sqlite").execute(
        "SELECT leaf_hash FROM ledger_records ORDER BY seq").fetchall()
    assert [hashlib.sha256(b"\x00" + line.encode()).digest() for line in lines] == \
        [bytes(r[0]) for r in stored]
    assert one_error(cli("ledger", "show", "out-999999"), 1).endswith(
        "no record out-999999 in the ledger (see `soundscape ledger list`)")


@pytest.mark.parametrize("command", [["ledger", "prove", "out-000001"],
                                     ["ledger", "export", "--format", "jsonl"]],
                         ids=["prove", "export"])
def test_proof_and_export_never_replace_an_existing_file_unasked(cli, ws, tmp_path, rng, command):
    # Formerly `ledger prove out-000001 --out bed.wav` replaced the delivered audio with JSON.
    bed, _ = _record_outputs(ws, tmp_path, rng)
    before = bed.read_bytes()
    assert "--overwrite" in one_error(cli(*command, "--out", bed), 2)
    assert bed.read_bytes() == before
    assert "folder" in one_error(cli(*command, "--out", tmp_path), 2)
    assert cli(*command, "--out", bed, "--overwrite").exit_code == 0
    assert bed.read_bytes() != before


def test_check_proof_tells_a_wrong_file_from_a_bad_proof(cli, ws, tmp_path, rng):
    # Formerly a key file that is not a key exited 3 ("proof does not verify"), as for tampering.
    bed, _ = _record_outputs(ws, tmp_path, rng)
    proof = tmp_path / "proof.json"
    assert cli("ledger", "prove", "out-000001", "--out", proof).exit_code == 0
    key = tmp_path / "ledger.pub.pem"
    key.write_text(cli("ledger", "public-key").stdout)
    assert "is not the ledger's public key" in one_error(
        cli("ledger", "check-proof", proof, "--public-key", bed), 2)
    assert "cannot read the public key" in one_error(
        cli("ledger", "check-proof", proof, "--public-key", tmp_path), 2)
    assert "is not a proof" in one_error(cli("ledger", "check-proof", bed, "--public-key", key), 2)
    assert "cannot read the proof" in one_error(
        cli("ledger", "check-proof", tmp_path / "none.json", "--public-key", key), 2)


def test_verify_names_the_first_bad_record_with_exit_code_3(cli, ws, tmp_path, rng):
    _record_outputs(ws, tmp_path, rng)
    con = sqlite3.connect(ws / "ledger.sqlite")
    seq = con.execute("SELECT seq FROM ledger_records WHERE id = 'out-000002'").fetchone()[0]
    con.execute("UPDATE ledger_records SET body = replace(body, '\"musicgen\"', '\"composer\"') "
                "WHERE id = 'out-000002'")
    con.commit()
    line = one_error(cli("ledger", "verify"), 3)
    assert line == f"error: record out-000002 (#{seq}) was edited: its body does not match its leaf hash"


def test_a_file_that_is_not_a_ledger(cli, ws):
    ws.mkdir(parents=True)
    (ws / "ledger.sqlite").write_bytes(b"these are not the records you are looking for" * 50)
    line = one_error(cli("ledger", "verify"), 1)
    assert line.endswith("ledger.sqlite is not a soundscape ledger")


@pytest.mark.parametrize("settings, says", [
    ("ledger_url = 5\n", "ledger_url must be a quoted URL"),
    ('ledger_url = "not a url"\n', "is not a database URL"),
    ('ledger_url = "nonsense://x"\n', "no database driver for 'nonsense'"),
    ('ledger_url = "sqlite:////proc/soundscape-test/ledger.sqlite"\n',
     "cannot create the ledger's folder /proc/soundscape-test"),
    (None, "cannot read the settings file"),
    ("keys-file", "cannot create the ledger's keys folder"),
])
def test_a_bad_ledger_setting_is_one_line(cli, ws, settings, says):
    ws.mkdir(parents=True)
    made = "soundscape.toml"
    if settings is None:
        (ws / "soundscape.toml").mkdir()
    elif settings == "keys-file":  # formerly a FileExistsError traceback
        made = "keys"
        (ws / "keys").write_text("not a folder")
    else:
        (ws / "soundscape.toml").write_text(settings)
    assert says in one_error(cli("ledger", "list"), 1)
    names = sorted(p.name for p in ws.iterdir())
    assert names == [made] if made == "soundscape.toml" else (ws / "keys").is_file()


def test_a_broken_workspace_layout_is_one_line(cli, ws, tmp_path, rng):
    # Formerly: a 'pending' file where the folder goes was a FileExistsError traceback, and a
    # damaged ledger key printed cryptography's FAQ link.
    f = tone(tmp_path / "a.wav", rng)
    add = ("dataset", "add", f, "--license", "CC0-1.0", "--author", "A", "--dataset", "d")
    assert cli(*add).exit_code == 0
    key = ws / "keys" / "ledger-ed25519.pem"
    kept = key.read_bytes()
    key.write_text("junk\n")
    line = one_error(cli("ledger", "correct", "asset-000001", "--title", "x", "--reason", "r"), 1)
    assert line.endswith("ledger-ed25519.pem: not an unencrypted PEM private key")
    key.write_bytes(kept)
    (ws / "pending").write_text("not a folder")
    from soundscape.config import open_workspace
    from soundscape.rights.ledger import Ledger

    with Ledger.open(open_workspace(ws)) as ledger:
        with pytest.raises(LedgerError, match="cannot create the workspace's pending folder"):
            Journal.of(ledger).begin(tmp_path / "x.wav", tmp_path / "x.wav.json")


def test_ledger_reconcile_records_a_crashed_output(cli, ws, tmp_path, rng):
    from soundscape.atomic import write_json_atomic

    audio = tone(tmp_path / "out" / "cue.wav", rng)
    side = tmp_path / "out" / "cue.wav.json"
    write_json_atomic(side, {"audio_sha256": audio_sha256(audio), "file_sha256": file_sha256(audio),
                             "engine": {"name": "composer", "version": "1"}, "samples": [],
                             "ingredients": [], "ledger": None})
    (ws / "pending").mkdir(parents=True)
    (ws / "pending" / "1-999999999-x.json").write_text(json.dumps(
        {"token": "1-999999999-x", "audio": str(audio), "sidecar": str(side),
         "pid": 2 ** 22 + 99, "host": "elsewhere"}))
    result = cli("ledger", "reconcile")
    assert result.exit_code == 0, result.output
    assert f"reconciled: recorded {audio} as out-000001" in result.stdout
    assert json.loads(side.read_text())["ledger"]["record_id"] == "out-000001"
    assert "nothing to reconcile" in cli("ledger", "reconcile").stdout
    # The sidecar keeps the signed checkpoint: a ledger rolled back behind it is caught.
    assert cli("ledger", "verify", "--against", side).exit_code == 0
    con = sqlite3.connect(ws / "ledger.sqlite")
    con.execute("DELETE FROM ledger_records")
    con.execute("DELETE FROM ledger_checkpoints")
    con.commit()
    # The witness beside the public key holds the checkpoint too: plain verify sees the rollback.
    assert "the witness" in one_error(cli("ledger", "verify"), 3)
    for copy in (ws / "keys").glob("ledger*.checkpoint"):
        copy.unlink()
    assert cli("ledger", "verify").exit_code == 0
    assert "truncated or rolled back" in one_error(cli("ledger", "verify", "--against", side), 3)


def test_clear_checks_agreements_against_air_date_and_territories(cli, ws, tmp_path, rng):
    """An asset under a studio agreement (FR BE CH LU, 2026-2028) used as an ingredient."""
    lib = tone(tmp_path / "library.wav", rng)
    assert cli("dataset", "add", lib, "--license", "LicenseRef-Agreement-EXAMPLE-0001",
               "--author", "Example Music Library Ltd", "--dataset", "library").exit_code == 0
    out = tone(tmp_path / "out.wav", rng)
    with Ledger.open_url(f"sqlite:///{ws / 'ledger.sqlite'}", ws / "keys", home=ws) as ledger:
        ledger.record_output(OutputFacts(
            audio_sha256=audio_sha256(out), file_sha256=file_sha256(out), path=str(out),
            engine="composer", air_date="2027-03-14", territories=["FR", "BE"],
            ingredients=[{"id": "library", "sha256": audio_sha256(lib), "path": str(lib),
                          "license": "LicenseRef-Agreement-EXAMPLE-0001"}]))
    recorded = cli("clear", out, "--policy", "broadcast-commercial")
    assert recorded.exit_code == 0, recorded.output
    assert "Example Music Library Ltd under agreement EXAMPLE-0001" in recorded.stdout
    elsewhere = cli("clear", out, "--policy", "broadcast-commercial", "--territory", "US")
    assert elsewhere.exit_code == 4 and "US" in elsewhere.stdout
    too_late = cli("clear", out, "--policy", "broadcast-commercial", "--air-date", "2029-06-01")
    assert too_late.exit_code == 4 and "2029-06-01" in too_late.stdout


def test_clear_help_names_every_medium_it_accepts(cli):
    # Formerly "tv, radio, streaming, online ..." while cinema, podcast and advertising are valid.
    from soundscape.rights.licenses import MEDIA

    text = " ".join(CliRunner().invoke(app, ["clear", "--help"], env={"COLUMNS": "400"}).stdout.split())
    assert all(medium in text for medium in MEDIA)
