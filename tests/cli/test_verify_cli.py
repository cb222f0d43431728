"""``soundscape verify``: a signed output passes; every kind of tampering fails with its reason."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from soundscape.audio.io import audio_sha256, file_sha256, riff_chunks
from soundscape.cli import app
from soundscape.config import open_workspace
from soundscape.rights import credentials as cr

pytest.importorskip("c2pa")


def _render(home, folder, cue_id: str, *, prompt="bright bells jingle"):
    from soundscape import pipeline
    from soundscape.spec import make_spec

    spec = make_spec(prompt, kind="jingle", duration=2, seed=11, production="Deep Water",
                     episode="S01E01", cue_id=cue_id)
    (delivery,) = pipeline.run([pipeline.Job(spec=spec, path=folder / f"{cue_id}.wav")],
                               workspace=open_workspace(home))
    return delivery


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A workspace with development keys and one output rendered, recorded and signed in it."""
    root = tmp_path_factory.mktemp("verify")
    home, folder = root / "home", root / "out"
    folder.mkdir()
    keys = cr.make_dev_ca(cr.dev_folder(open_workspace(home)), organization="Abyss Films")
    delivery = _render(home, folder, "1M1")
    return {"home": home, "folder": folder, "file": delivery.path, "keys": keys,
            "record": delivery.record_id}


def _verify(home, path):
    result = CliRunner().invoke(app, ["--home", str(home), "verify", str(path)],
                                env={"COLUMNS": "240"})
    lines = {line.split()[1]: line for line in result.output.splitlines()
             if line.startswith(("PASS", "FAIL"))}
    return result, lines


def _copy(signed, tmp_path, name="copy.wav"):
    return shutil.copy(signed["file"], tmp_path / name)


def test_a_signed_output_verifies(signed):
    sidecar = json.loads(signed["file"].with_name("1M1.wav.json").read_text())
    assert sidecar["file_sha256"] == file_sha256(signed["file"])  # updated after signing
    assert sidecar["audio_sha256"] == audio_sha256(signed["file"])  # signing left the audio alone
    result, lines = _verify(signed["home"], signed["file"])
    assert result.exit_code == 0, result.output
    assert set(lines) == {"manifest", "signer", "bext", "iXML", "audio", "ledger", "inclusion",
                          "watermark"}
    assert all(line.startswith("PASS") for line in lines.values())
    assert signed["record"] in lines["ledger"]
    assert "VERIFIED" in result.output.splitlines()[-1]


def test_the_manifest_describes_the_output(signed):
    anchors = signed["keys"].ca_cert.read_text()
    creds = cr.read_credentials(signed["file"], anchors_pem=anchors)
    assert creds.trusted
    assert creds.digital_source_type == cr.IPTC + "algorithmicMedia"
    assert creds.ledger["record_id"] == signed["record"]
    assert creds.ledger["inclusion_proof"]["record_id"] == signed["record"]
    assert creds.ledger["metadata"]["bext"]["description"] == "bright bells jingle"
    mining = creds.assertion(cr.TRAINING_MINING_LABEL)["entries"]
    assert {entry["use"] for entry in mining.values()} == {"notAllowed"}


def test_one_changed_sample_fails_audio_and_manifest_hash(signed, tmp_path):
    path = _copy(signed, tmp_path)
    offset, _ = riff_chunks(path)[b"data"]
    data = bytearray(path.read_bytes())
    data[offset + 3 * 1000] ^= 0x01  # lowest bit of one 24-bit sample
    path.write_bytes(bytes(data))
    result, lines = _verify(signed["home"], path)
    assert result.exit_code == 1
    assert lines["manifest"].startswith("FAIL") and "changed after signing" in lines["manifest"]
    assert lines["audio"].startswith("FAIL") and "samples were changed" in lines["audio"]
    assert lines["bext"].startswith("PASS") and lines["signer"].startswith("PASS")
    assert "NOT VERIFIED" in result.output


def test_a_changed_bext_description_is_named(signed, tmp_path):
    path = _copy(signed, tmp_path)
    offset, _ = riff_chunks(path)[b"bext"]
    data = bytearray(path.read_bytes())
    data[offset:offset + 6] = b"BOUGHT"  # the description is the first 256 bytes of bext
    path.write_bytes(bytes(data))
    result, lines = _verify(signed["home"], path)
    assert result.exit_code == 1
    assert lines["bext"].startswith("FAIL")
    assert "description changed since signing" in lines["bext"] and "BOUGHT" in lines["bext"]
    assert lines["manifest"].startswith("FAIL")
    assert lines["audio"].startswith("PASS")  # the samples are intact


def test_a_damaged_manifest_fails_without_stopping_the_other_checks(signed, tmp_path):
    path = _copy(signed, tmp_path)
    offset, size = riff_chunks(path)[b"C2PA"]
    data = bytearray(path.read_bytes())
    for k in range(0, size, 97):
        data[offset + k] ^= 0xFF
    path.write_bytes(bytes(data))
    result, lines = _verify(signed["home"], path)
    assert result.exit_code == 1
    assert lines["manifest"].startswith("FAIL") and "C2PA manifest" in lines["manifest"]
    assert lines["ledger"].startswith("PASS") and lines["audio"].startswith("PASS")


def test_a_file_with_no_manifest(signed, tmp_path):
    home = tmp_path / "home"  # no keys here: outputs are recorded but not signed
    delivery = _render(home, tmp_path, "2M1")
    assert cr.read_credentials(delivery.path) is None
    result, lines = _verify(home, delivery.path)
    assert result.exit_code == 1
    assert lines["manifest"].startswith("FAIL") and "no C2PA manifest" in lines["manifest"]
    assert lines["ledger"].startswith("PASS")  # still found, by its audio hash


def test_a_manifest_from_an_untrusted_signer_is_named(signed, tmp_path):
    other = cr.make_dev_ca(tmp_path / "rogue", organization="Rogue Remixers")
    home = tmp_path / "home"
    home.mkdir()
    (home / "soundscape.toml").write_text(
        f'signing_cert = "{other.signer_cert}"\nsigning_key = "{other.signer_key}"\n'
        f'trust_anchors = "{signed["keys"].ca_cert}"\n')
    delivery = _render(home, tmp_path, "3M1")
    result, lines = _verify(home, delivery.path)
    assert result.exit_code == 1
    assert lines["signer"].startswith("FAIL")
    assert "Rogue Remixers" in lines["signer"] and "not under the trust anchors" in lines["signer"]
    assert lines["manifest"].startswith("PASS")  # intact, just not trusted


def test_a_rebuilt_ledger_fails_the_inclusion_proof(signed, tmp_path):
    # Another workspace's ledger (another key) does not hold this file's record or checkpoint.
    home = tmp_path / "home"
    _render(home, tmp_path, "4M1", prompt="soft piano jingle")
    shutil.copytree(signed["keys"].folder, home / "keys" / "c2pa", dirs_exist_ok=True)
    result, lines = _verify(home, signed["file"])
    assert result.exit_code == 1
    assert lines["ledger"].startswith("FAIL"), lines
    assert lines["inclusion"].startswith("FAIL") and "key" in lines["inclusion"], lines


def test_missing_file_and_wrong_type_are_one_line_errors(signed, tmp_path):
    import subprocess
    import sys

    env = {"SOUNDSCAPE_HOME": str(signed["home"]), "PATH": "/usr/bin:/bin"}
    for target in (tmp_path / "nope.wav", tmp_path / "notes.txt"):
        if target.suffix == ".txt":
            target.write_text("hello")
        proc = subprocess.run([sys.executable, "-m", "soundscape", "verify", str(target)],
                              capture_output=True, text=True, env=env, timeout=120)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_a_folder_is_named_as_a_folder(signed, tmp_path):
    # Formerly "error: <folder>: no such file", which sends the user looking for a typo.
    import subprocess
    import sys

    env = {"SOUNDSCAPE_HOME": str(signed["home"]), "PATH": "/usr/bin:/bin", "COLUMNS": "400"}
    proc = subprocess.run([sys.executable, "-m", "soundscape", "verify", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0] == f"error: {tmp_path} is a folder: give a delivered .wav or .flac file"
