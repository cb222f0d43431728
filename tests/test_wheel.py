"""The built wheel, installed light (no extras) into a fresh virtual environment, works as the
checkout does: same audio for the same prompt and seed, policies found, batch and report run,
and the MusicGen commands name the extra they need."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from soundscape.audio.io import audio_sha256

REPO = Path(__file__).resolve().parents[1]

CUES = """\
production: {title: "Deep Water", episode: "S01E09", air_date: 2027-03-14, territory: [FR],
             policy: broadcast-commercial}
cues:
  - {id: "1M1", kind: sting, usage: BI, timecode_in: "00:01:00:00", duration: 3, mood: tense}
"""


def _uv() -> str:
    found = shutil.which("uv") or (str(REPO / ".tools/uv/bin/uv") if (REPO / ".tools/uv/bin/uv").exists() else None)
    if found is None:
        pytest.skip("uv is not installed (make env installs it)")
    return found


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory):
    """(soundscape program of the fresh venv, the venv's python, the wheel's path)."""
    uv = _uv()
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([uv, "build", "--wheel", "--out-dir", str(root / "dist"), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((root / "dist").glob("soundscape-*.whl"))
    venv = root / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
    installed = subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin/python"), str(wheel)],
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv / "bin/soundscape", venv / "bin/python", wheel


def _run(program, home, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SOUNDSCAPE_HOME=str(home), COLUMNS="200")
    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def test_the_wheel_carries_the_data_the_package_reads(wheel_install):
    _, _, wheel = wheel_install
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("soundscape/data/licenses/policies/broadcast-commercial.toml",
                     "soundscape/data/licenses/base-models.toml",
                     "soundscape/data/samples/manifest.jsonl",
                     "soundscape/data/examples/deep-water-s01e03.yaml",
                     "soundscape/data/docs/cli.md",
                     "soundscape/reports/templates/cuesheet.html.j2",
                     "soundscape/reports/templates/style.css.j2"):
        assert required in names, required
    flacs = [n for n in names if n.startswith("soundscape/data/samples/") and n.endswith(".flac")]
    assert len(flacs) == len(list((REPO / "samples").glob("*.flac")))


def test_a_light_wheel_install_generates_the_same_audio_and_clears_batches_and_reports(wheel_install, tmp_path):
    program, python, _ = wheel_install
    # Light: none of the extras came with it.
    for module in ("torch", "audiocraft", "ray", "librosa"):
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, timeout=120)
        assert probe.returncode != 0, f"{module} was installed without its extra"
    where = subprocess.run([str(python), "-c", "import soundscape.config as c; print(c.LICENSES_DIR)"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120).stdout.strip()
    assert "site-packages/soundscape/data/licenses" in where

    args = ("generate", "calm pad with rain and soft bells", "--duration", "10", "--seed", "7")
    from_wheel = _run(program, tmp_path / "h1", *args, "--out", tmp_path / "wheel.wav", cwd=tmp_path)
    assert from_wheel.returncode == 0, from_wheel.stderr
    # The same workspace (so the same ledger key, which the watermark carries) for both.
    from_repo = subprocess.run([sys.executable, "-m", "soundscape", *args, "--out", str(tmp_path / "repo.wav")],
                               capture_output=True, text=True, timeout=600,
                               env=dict(os.environ, SOUNDSCAPE_HOME=str(tmp_path / "h1")))
    assert from_repo.returncode == 0, from_repo.stderr
    assert audio_sha256(tmp_path / "wheel.wav") == audio_sha256(tmp_path / "repo.wav")
    sidecar = json.loads((tmp_path / "wheel.wav.json").read_text())
    assert sidecar["samples"], "the wheel's sample layer is missing"

    cleared = _run(program, tmp_path / "h1", "clear", tmp_path / "wheel.wav", "--policy", "broadcast-commercial",
                   cwd=tmp_path)
    assert cleared.returncode == 0 and "CLEARED" in cleared.stdout, cleared.stdout + cleared.stderr

    (tmp_path / "cues.yaml").write_text(CUES, encoding="utf-8")
    batch = _run(program, tmp_path / "h1", "batch", tmp_path / "cues.yaml", "--out", tmp_path / "ep",
                 "--workers", "1", cwd=tmp_path)
    assert batch.returncode == 0, batch.stderr
    report = _run(program, tmp_path / "h1", "report", "S01E09", "--format", "json",
                  "--out", tmp_path / "sheet.json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    sheet = json.loads((tmp_path / "sheet.json").read_text())
    assert [c["cue_id"] for c in sheet["cues"]] == ["1M1"]
    html = _run(program, tmp_path / "h1", "report", "S01E09", "--out", tmp_path / "sheet.html", cwd=tmp_path)
    assert html.returncode == 0, html.stderr  # the HTML templates came with the wheel
    assert 'data-cue-id="1M1"' in (tmp_path / "sheet.html").read_text("utf-8")
    shown = _run(program, tmp_path / "h1", "docs", "cli", cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith("# The command line for scripts")


def test_musicgen_without_its_extra_says_which_extra(wheel_install, tmp_path):
    program, _, _ = wheel_install
    proc = _run(program, tmp_path / "h", "model", "new", "tiny", "--arch", "tiny", cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "pip install 'soundscape[musicgen]'" in lines[0] and "Traceback" not in proc.stderr
