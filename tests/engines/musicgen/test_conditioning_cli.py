"""A model with attribute conditioners through the CLI: --key/--bpm/--mood reach it, the sidecar
says what it received, and a prompt it cannot hear gets one warning line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner


@pytest.fixture
def run(tmp_path, monkeypatch, torch_one_thread):
    from soundscape.cli import app

    monkeypatch.setenv("SOUNDSCAPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def test_controls_reach_the_model_and_the_sidecar_says_what_it_received(run, tmp_path):
    result = run("model", "new", "attr-tiny", "--arch", "tiny")
    assert result.exit_code == 0, result.output
    out = tmp_path / "cue.wav"
    result = run("jingle", "Soft bells.", "--engine", "musicgen", "--model", "attr-tiny",
                 "--duration", 2, "--seed", 4, "--key", "D minor", "--bpm", 110, "--out", out)
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "cue.wav.json").read_text())
    received = sidecar["details"]["conditioning"]
    assert received["key"] == "d minor" and received["tempo"] == "lively"
    assert received["instrument"] == "bells" and received["mood"] == "calm"  # "soft" is calm
    assert received["description"] == "soft bells"
    intent = sidecar["intent"]
    assert intent["key"] == "D minor" and intent["bpm"] == 110.0 and intent["tempo"] == "lively"
    assert intent["sources"] == {"mood": "prompt", "key": "flag", "tempo": "flag"}
    assert sidecar["parameters"]["intent"] == intent

    # Without --key the composer would choose one from the seed; the model is given none, and
    # the sidecar does not pretend otherwise.
    result = run("jingle", "Soft bells.", "--engine", "musicgen", "--model", "attr-tiny",
                 "--duration", 2, "--seed", 4, "--out", tmp_path / "free.wav")
    assert result.exit_code == 0, result.output
    free = json.loads((tmp_path / "free.wav.json").read_text())
    assert free["intent"]["key"] is None and free["intent"]["bpm"] is None
    assert free["details"]["conditioning"]["key"] is None
    assert free["audio_sha256"] != sidecar["audio_sha256"]  # the key and tempo changed the audio


def test_a_prompt_no_conditioner_knows_is_warned_about_in_one_line(tmp_path):
    # The real program (not the in-process runner, whose log capture would swallow the line).
    env = dict(os.environ, SOUNDSCAPE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")

    def soundscape(*args):
        return subprocess.run([sys.executable, "-m", "soundscape", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=300)

    assert soundscape("model", "new", "attr-tiny", "--arch", "tiny").returncode == 0
    proc = soundscape("jingle", "glorbwave zint", "--engine", "musicgen", "--model", "attr-tiny",
                      "--duration", 2, "--seed", 1, "--out", tmp_path / "odd.wav")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "glorbwave" in line]
    assert len(lines) == 1 and "knows" in lines[0], proc.stderr
    proc = soundscape("jingle", "calm bells", "--engine", "musicgen", "--model", "attr-tiny",
                      "--duration", 2, "--seed", 1, "--out", tmp_path / "fine.wav")
    assert proc.returncode == 0 and "knows" not in proc.stderr, proc.stderr


def test_t5_conditioning_without_a_local_t5_says_so_in_one_line(run, tmp_path, monkeypatch):
    # An empty Hugging Face cache: t5-base is not there, and nothing may fetch it.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run("model", "new", "t5-tiny", "--arch", "tiny", "--conditioning", "t5")
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "t5-base" in lines[0] and "never downloads" in lines[0]
    assert not (tmp_path / "home" / "models" / "t5-tiny").exists()
    assert run("model", "list").output.count("t5-tiny") == 0


def test_a_cached_t5_is_found_by_the_cache_layout_alone(tmp_path, monkeypatch):
    from soundscape.engines.musicgen.conditioning import find_local_t5

    repo = tmp_path / "hub" / "models--t5-base"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert find_local_t5() is None  # nothing cached
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a1b2c3\n")
    assert find_local_t5() is None  # a ref without its snapshot
    (repo / "snapshots" / "a1b2c3").mkdir(parents=True)
    (repo / "snapshots" / "a1b2c3" / "config.json").write_text("{}")
    assert find_local_t5() == repo / "snapshots" / "a1b2c3"
