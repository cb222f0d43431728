"""The `model` and `train` commands, run in-process with Typer's runner on a private workspace."""

from __future__ import annotations

import re

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


@pytest.mark.slow
def test_new_train_show_list(run, tmp_path):
    result = run("model", "new", "studio-tiny", "--arch", "tiny")
    assert result.exit_code == 0, result.output
    assert "LicenseRef-Studio-Owned" in result.output

    result = run("train", "--model", "studio-tiny", "--dataset", "soundscape-samples",
                 "--out", "tiny-samples", "--steps", "6", "--batch-size", "2", "--lr", "3e-3",
                 "--segment-seconds", "1", "--policy", "broadcast-commercial",
                 "--allow-untrained-codec")
    assert result.exit_code == 0, result.output
    assert "trained tiny-samples" in result.output and "6 steps" in result.output
    assert (tmp_path / "home" / "models" / "tiny-samples" / "state_dict.bin").is_file()

    result = run("model", "show", "tiny-samples")
    assert result.exit_code == 0, result.output
    assert "broadcast-commercial: CLEARED" in result.output
    counts = re.search(r"trained on soundscape-samples@\S+: (\d+) assets \((\d+) CC0-1.0\)",
                       result.output)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) >= 10
    assert "base model: studio-tiny (LicenseRef-Studio-Owned)" in result.output

    result = run("model", "list")
    assert result.exit_code == 0
    assert "studio-tiny" in result.output and "tiny-samples" in result.output

    folder = tmp_path / "home" / "models" / "tiny-samples"
    result = run("model", "add", folder, "--name", "nc-copy", "--license", "CC-BY-NC-4.0",
                 "--trained-on", "soundscape-samples")
    assert result.exit_code == 0, result.output
    result = run("model", "show", "nc-copy", "--policy", "broadcast-commercial")
    assert "broadcast-commercial: NOT CLEARED" in result.output


def test_bad_input_is_one_line_and_non_zero(run, tmp_path, tiny_model_dir):
    result = run("model", "add", tmp_path, "--name", "x", "--license", "MIT", "--lineage-unknown")
    assert result.exit_code != 0
    assert "not an audiocraft checkpoint folder" in result.output
    result = run("model", "add", tiny_model_dir, "--name", "x", "--license", "MIT")
    assert result.exit_code == 2 and "--trained-on" in result.output
    result = run("model", "new", "x", "--arch", "huge")
    assert result.exit_code == 2 and "unknown architecture 'huge'" in result.output
    result = run("model", "show", "nobody")
    assert result.exit_code != 0 and "no model 'nobody'" in result.output
    result = run("train", "--model", "nobody", "--dataset", "soundscape-samples", "--out", "y")
    assert result.exit_code != 0 and "unknown model 'nobody'" in result.output
    assert "Traceback" not in result.output
