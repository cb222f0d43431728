"""``--json`` output parsed as a script would, and whole values when output is not a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def workspace_with_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("json-cli")
    home = root / "home"
    run = _runner(home)
    made = run("generate", "calm pad with rain and a very long description that a table would cut short",
               "--duration", "10", "--seed", "3", "--out", root / "bed.wav")
    assert made.returncode == 0, made.stderr
    return root, home


def _runner(home, **extra_env):
    def run(*args):
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        env.update(SOUNDSCAPE_HOME=str(home), **extra_env)
        return subprocess.run([sys.executable, "-m", "soundscape", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=600)
    return run


def test_ledger_list_and_show_json(workspace_with_output):
    root, home = workspace_with_output
    run = _runner(home)
    listed = json.loads(run("ledger", "list", "--json").stdout)
    outputs = [r for r in listed if r["kind"] == "output"]
    assert len(outputs) == 1 and [r["seq"] for r in listed] == sorted(r["seq"] for r in listed)
    shown = json.loads(run("ledger", "show", root / "bed.wav", "--json").stdout)
    assert shown["id"] == outputs[0]["id"] and shown["kind"] == "output"
    sidecar = json.loads((root / "bed.wav.json").read_text())
    assert shown["body"]["audio_sha256"] == sidecar["audio_sha256"]


def test_dataset_and_model_list_json(workspace_with_output):
    _, home = workspace_with_output
    run = _runner(home)
    datasets = json.loads(run("dataset", "list", "--json").stdout)
    assert "soundscape-samples" in {d["name"] for d in datasets}
    assert all(d["assets"] > 0 and d["id"] for d in datasets)
    assert json.loads(run("model", "list", "--json").stdout) == []


def test_output_to_a_pipe_is_never_cut(tmp_path):
    name = "S01E03_1M1_harbour_at_dawn_with_gulls_and_a_distant_bell_alternate_take_for_the_director.wav"
    made = _runner(tmp_path / "home")("generate", "calm pad", "--duration", "10", "--seed", "3",
                                      "--out", tmp_path / name)  # stdout is a pipe; COLUMNS unset
    assert made.returncode == 0, made.stderr
    line = next(line for line in made.stdout.splitlines() if "LUFS" in line)
    assert name in line and "…" not in line and len(line) > 80


def test_verify_clear_model_show_and_batch_json(tmp_path):
    run = _runner(tmp_path / "home")
    assert run("keys", "init").returncode == 0
    made = run("generate", "calm pad", "--duration", "10", "--seed", "3", "--out", tmp_path / "bed.wav")
    assert made.returncode == 0, made.stderr
    verified = run("verify", tmp_path / "bed.wav", "--json")
    doc = json.loads(verified.stdout)
    assert verified.returncode == 0 and doc["verified"] is True
    assert {c["name"] for c in doc["checks"]} >= {"audio hash", "ledger record"} and all(c["ok"] for c in doc["checks"])
    cleared = run("clear", tmp_path / "bed.wav", "--policy", "broadcast-commercial", "--json")
    doc = json.loads(cleared.stdout)
    assert cleared.returncode == 0 and doc["state"] == "CLEARED"
    assert [v["own"] for v in doc["verdicts"]] == [True] and doc["own_record"] == doc["verdicts"][0]["record"]
    (tmp_path / "cues.yaml").write_text(
        'production: {title: "Deep Water", episode: "S01E07", policy: broadcast-commercial}\n'
        'cues:\n  - {id: "1M1", kind: sting, usage: BI, duration: 3, mood: tense}\n'
        '  - {id: "1M2", kind: sting, usage: BI, duration: 3, mood: calm}\n', encoding="utf-8")
    batch = run("batch", tmp_path / "cues.yaml", "--out", tmp_path / "ep", "--workers", "1", "--json")
    assert batch.returncode == 0, batch.stderr
    rows = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [(r["cue"], r["status"], r["clearance"]) for r in rows] == [
        ("1M1", "rendered", "CLEARED"), ("1M2", "rendered", "CLEARED")]
    assert all(abs(r["loudness_lufs"] - (-23.0)) < 0.5 and r["record"] for r in rows)
