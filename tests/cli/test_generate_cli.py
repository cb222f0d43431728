"""``soundscape generate`` and ``jingle`` end to end, and every bad input they must refuse."""

import json

import numpy as np
import pytest
import soundfile as sf


def _one_error_line(proc):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_generate_writes_a_mastered_recorded_bed(soundscape, tmp_path):
    out = tmp_path / "bed.wav"
    proc = soundscape("generate", "calm pad with rain in D minor", "--duration", 12, "--seed", 3,
                      "--out", out, check=True)
    audio, rate = sf.read(out, always_2d=True)
    assert rate == 48000 and audio.shape == (12 * 48000, 2)
    assert sf.info(out).subtype == "PCM_24"
    sidecar = json.loads((tmp_path / "bed.wav.json").read_text())
    assert sidecar["seed"] == 3 and sidecar["intent"]["key"] == "D minor"
    assert sidecar["mastering"]["preset"] == "ebu-r128"
    assert abs(sidecar["mastering"]["loudness_lufs"] + 23) <= 0.5
    assert sidecar["ledger"]["record_id"] in proc.stdout  # the summary names the record
    assert "D minor" in proc.stdout and "LUFS" in proc.stdout


def test_words_the_prompt_vocabulary_lacks_are_printed_and_kept(soundscape, tmp_path):
    out = tmp_path / "bed.wav"
    proc = soundscape("generate", "calm plucks with glorbwave and rain", "--duration", 10,
                      "--seed", 4, "--out", out, check=True)
    line = next(l for l in proc.stdout.splitlines() if "not understood" in l)
    assert "glorbwave" in line and "rain" not in line and "plucks" not in line
    sidecar = json.loads((tmp_path / "bed.wav.json").read_text())
    assert sidecar["intent"]["unknown_words"] == ["glorbwave"]
    assert "rain" in sidecar["intent"]["textures"]


def test_jingle_variants_share_a_seed_and_differ(soundscape, tmp_path):
    soundscape("jingle", "hopeful logo", "--motif", "C5 E5 G5 C6", "--variants", 2, "--duration", 4,
               "--out", tmp_path / "logo.wav", check=True)
    one, _ = sf.read(tmp_path / "logo-v1.wav")
    two, _ = sf.read(tmp_path / "logo-v2.wav")
    seeds = {json.loads((tmp_path / f"logo-v{i}.wav.json").read_text())["seed"] for i in (1, 2)}
    assert len(seeds) == 1
    assert not np.array_equal(one, two)


BAD_INPUTS = [
    (["generate", "calm", "--key", "H minor"], "unknown key"),
    (["generate", "calm", "--mood", "jolly"], "unknown mood"),
    (["generate", "calm", "--duration", "5"], "out of range"),
    (["generate", "calm", "--intensity", "0:0.3,0:0.5"], "intensity"),
    (["generate", "calm", "--preset", "loud"], "'loud' is not one of 'ebu-r128', 'netflix', 'streaming', 'none'"),
    (["generate", "calm", "--bpm", "900"], "bpm"),
    (["generate", "calm", "--format", "mp3"], "'mp3' is not one of 'wav', 'flac'"),
    (["jingle", "logo", "--motif", "C5 X9"], "malformed note"),
    (["jingle", "logo", "--duration", "45"], "out of range"),
    (["jingle", "logo", "--variants", "0"], "variants"),
    (["generate", "", "--duration", "10"], "prompt is empty"),
]


@pytest.mark.parametrize("args, fragment", BAD_INPUTS, ids=[a[1] for a in BAD_INPUTS])
def test_bad_input_is_one_line_and_writes_nothing(soundscape, tmp_path, args, fragment):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = soundscape(*args, "--out", out_dir / "x.wav")
    assert fragment in _one_error_line(proc)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("out", [".", "out", "out/", "fresh/", ""])
def test_a_folder_as_output_is_one_line_and_writes_nothing(soundscape, tmp_path, out):
    # Formerly: '.' crashed with a traceback and 'out/' quietly wrote out.wav beside the folder.
    (tmp_path / "out").mkdir()
    proc = subprocess_in(soundscape, tmp_path, "generate", "calm", "--duration", "10", "--out", out)
    assert "--out" in _one_error_line(proc)
    assert {p.name for p in tmp_path.iterdir()} <= {"home", "out"}
    assert list((tmp_path / "out").iterdir()) == []


ODD_ENGINE_OPTIONS = [
    (["--engine", "foo"], "'foo' is not one of 'composer', 'musicgen'"),
    (["--model", "mine"], "--model applies only to --engine musicgen"),
    (["--top-k", "5", "--temperature", "2"], "--top-k, --temperature apply only to --engine musicgen"),
]


@pytest.mark.parametrize("extra, fragment", ODD_ENGINE_OPTIONS, ids=["engine", "model", "sampling"])
def test_options_the_engine_would_ignore_are_refused(soundscape, tmp_path, extra, fragment):
    proc = soundscape("generate", "calm", "--duration", "10", *extra, "--out", tmp_path / "x.wav")
    assert fragment in _one_error_line(proc)
    assert not (tmp_path / "x.wav").exists()


def subprocess_in(soundscape, cwd, *args):
    """Run ``soundscape`` from ``cwd`` (relative --out paths resolve there)."""
    import os

    here = os.getcwd()
    os.chdir(cwd)
    try:
        return soundscape(*args)
    finally:
        os.chdir(here)


USAGE_MISTAKES = [
    (["generate", "calm", "--duration", "abc"], "Invalid value for '--duration'"),
    (["generate", "--duration", "10"], "Missing argument"),
    (["jingle", "logo", "--variants", "2.5"], "Invalid value for '--variants'"),
    (["generate", "calm", "--bogus"], "No such option: --bogus"),
    (["genrate", "calm"], "Did you mean 'generate'?"),
]


@pytest.mark.parametrize("args, fragment", USAGE_MISTAKES, ids=[a[1] for a in USAGE_MISTAKES])
def test_usage_mistakes_are_one_line_too(soundscape, tmp_path, args, fragment):
    # Formerly Click's usage box: six lines on stderr for a mistyped number.
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = soundscape(*args, "--out", out_dir / "x.wav")
    line = _one_error_line(proc)
    assert proc.returncode == 2 and fragment in line and "--help" in line
    assert list(out_dir.iterdir()) == []


def test_missing_output_folder(soundscape, tmp_path):
    proc = soundscape("generate", "calm", "--out", tmp_path / "nowhere" / "x.wav")
    assert "does not exist" in _one_error_line(proc)
    assert not (tmp_path / "nowhere").exists()


def test_unwritable_output_folder(soundscape):
    # /proc refuses new files even to root, so this holds whoever runs the suite.
    proc = soundscape("generate", "calm", "--duration", "10", "--out", "/proc/soundscape-test.wav")
    assert "writable" in _one_error_line(proc)


def test_existing_output_needs_overwrite(soundscape, tmp_path):
    out = tmp_path / "taken.wav"
    out.write_bytes(b"not yours")
    proc = soundscape("generate", "calm", "--duration", "10", "--out", out)
    assert "--overwrite" in _one_error_line(proc)
    assert out.read_bytes() == b"not yours"
    assert {p.name for p in tmp_path.iterdir()} <= {"home", "taken.wav"}


def test_help_is_quick_and_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, soundscape.cli; "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("broken", ["cert", "key", "pair"])
def test_a_signing_setup_that_cannot_sign_is_refused_before_rendering(soundscape, home, tmp_path,
                                                                        broken):
    # Formerly the bed was rendered, delivered and recorded, and only then did signing fail
    # (exit 1, with the unsigned file left behind); keys show died with a traceback.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert soundscape("keys", "init").returncode == 0
    dev = home / "keys" / "c2pa"
    stranger = tmp_path / "stranger.key"
    stranger.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a pem\n")
    cert, key = {"cert": (junk, dev / "signer.key"), "key": (dev / "signer.pem", junk),
                 "pair": (dev / "signer.pem", stranger)}[broken]
    (home / "soundscape.toml").write_text(f'signing_cert = "{cert}"\nsigning_key = "{key}"\n')
    out = tmp_path / "out"
    out.mkdir()
    line = _one_error_line(soundscape("generate", "calm", "--duration", "10", "--out", out / "x.wav"))
    assert {"cert": "is not a PEM certificate", "key": "is not an unencrypted PEM private key",
            "pair": "does not belong to the signing certificate"}[broken] in line
    assert list(out.iterdir()) == []
    assert _one_error_line(soundscape("keys", "show")) == line


def test_an_empty_home_option_is_refused(soundscape, tmp_path):
    # Formerly `--home ""` (an unset shell variable) quietly used the per-user default workspace,
    # so the output's record landed in a ledger nobody was looking at.
    out = tmp_path / "out"
    out.mkdir()
    proc = soundscape("--home", "", "generate", "calm", "--duration", "10", "--out", out / "x.wav")
    assert proc.returncode == 2 and "--home is empty" in _one_error_line(proc)
    assert list(out.iterdir()) == []


def test_a_folder_where_the_sidecar_goes_leaves_nothing(soundscape, tmp_path):
    (tmp_path / "bed.wav.json").mkdir()
    proc = soundscape("generate", "calm", "--duration", "10", "--out", tmp_path / "bed.wav")
    assert "sidecar" in _one_error_line(proc)
    assert not (tmp_path / "bed.wav").exists()


def test_overwrite_help_says_the_sidecar_is_replaced_too():
    from typer.testing import CliRunner

    from soundscape.cli import app

    for command in ("generate", "jingle"):
        text = " ".join(CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"}).stdout.split())
        assert "Replace an existing output file and its sidecar" in text


def test_format_and_preset_names_ignore_case_as_key_and_mood_do(soundscape, tmp_path):
    soundscape("generate", "calm", "--duration", "10", "--format", "FLAC", "--preset", "EBU-R128",
               "--seed", "1", "--out", tmp_path / "bed", check=True)
    sidecar = json.loads((tmp_path / "bed.flac.json").read_text())
    assert sidecar["mastering"]["preset"] == "ebu-r128" and sf.info(tmp_path / "bed.flac").format == "FLAC"
