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
