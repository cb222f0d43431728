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


def test_base_license_for_a_base_outside_the_list(run, tiny_model_dir, tmp_path):
    missing = run("model", "add", tiny_model_dir, "--name", "sao", "--license",
                  "LicenseRef-Stability-AI-Community", "--trained-on", "soundscape-samples",
                  "--base-model", "stabilityai/stable-audio-open-1.0")
    assert missing.exit_code == 2 and "give its license with --base-license EXPR" in missing.output
    result = run("model", "add", tiny_model_dir, "--name", "sao", "--license",
                 "LicenseRef-Stability-AI-Community", "--trained-on", "soundscape-samples",
                 "--base-model", "stabilityai/stable-audio-open-1.0",
                 "--base-license", "LicenseRef-Stability-AI-Community")
    assert result.exit_code == 0, result.output
    assert "base stabilityai/stable-audio-open-1.0 (LicenseRef-Stability-AI-Community)" in result.output
    shown = run("model", "show", "sao", "--policy", "internal-preproduction")
    assert shown.exit_code == 0, shown.output
    assert "internal-preproduction: CLEARED" in shown.output
    assert "has no license" not in shown.output
    # The base's licence is credited once, on the base, not again on the fine-tune.
    assert shown.output.count("Powered by Stability AI") == 1
    broadcast = run("model", "show", "sao", "--policy", "broadcast-commercial")
    assert "broadcast-commercial: NOT CLEARED" in broadcast.output
    assert "has no license" not in broadcast.output
    alone = run("model", "add", tiny_model_dir, "--name", "y", "--license", "MIT",
                "--trained-on", "soundscape-samples", "--base-license", "MIT")
    assert alone.exit_code == 2 and "--base-license needs --base-model" in alone.output


@pytest.mark.slow
def test_generate_continue_from_an_asset_names_the_continuation_source(run, tiny_model_dir, tmp_path):
    import json

    import numpy as np
    import soundfile as sf

    source = tmp_path / "lib" / "rain.wav"
    source.parent.mkdir()
    t = np.arange(3 * 32000) / 32000
    sf.write(source, 0.2 * np.sin(2 * np.pi * 330 * t), 32000, subtype="PCM_16")
    assert run("dataset", "add", source, "--license", "CC-BY-NC-4.0", "--author", "Ana",
               "--dataset", "prompts").exit_code == 0
    assert run("model", "add", tiny_model_dir, "--name", "tiny", "--license",
               "LicenseRef-Studio-Owned", "--trained-on", "prompts").exit_code == 0
    stranger = tmp_path / "stranger.wav"
    sf.write(stranger, 0.2 * np.sin(2 * np.pi * 550 * t), 32000, subtype="PCM_16")
    common = ["generate", "calm pad", "--engine", "musicgen", "--model", "tiny", "--duration",
              10, "--seed", 1]
    for bad, says in (("asset-009999", "neither a file nor a registered asset id"),
                      (stranger, "its audio matches no registered asset")):
        refused = run(*common, "--out", tmp_path / "x.wav", "--continue-from", bad)
        assert refused.exit_code == 2 and says in refused.output, refused.output
        assert not (tmp_path / "x.wav").exists()
    out = tmp_path / "cont.wav"
    made = run(*common, "--out", out, "--continue-from", source)  # the asset's own file
    assert made.exit_code == 0, made.output
    sidecar = json.loads((tmp_path / "cont.wav.json").read_text())
    assert sidecar["continuation_source"]["id"] == "asset-000001"
    assert sidecar["continuation_source"]["license"] == "CC-BY-NC-4.0"
    verdict = run("clear", out, "--policy", "broadcast-commercial")
    assert verdict.exit_code == 4, verdict.output
    assert (f"continuation source 'rain' (asset-000001, {source.resolve()}) is CC-BY-NC-4.0: "
            "non-commercial use only") in " ".join(verdict.output.split())
    assert "ingredient" not in verdict.output
    # By id, the same asset resolves to the same source the render recorded.
    from soundscape.pipeline import continuation_source

    assert continuation_source("asset-000001") == sidecar["continuation_source"]


@pytest.mark.slow
def test_identical_weights_under_two_licenses_each_file_clears_by_its_own_record(run, tiny_model_dir, tmp_path):
    """The same checkpoint registered as studio-owned and as CC-BY-NC renders the same music for
    one prompt and seed; `clear` on each file gives that file's own verdict.

    Every output carries its own watermark (docs/watermark.md), so the two files' decoded audio
    differs by the mark alone and each hash leads to its own record; the case of one audio hash
    under several lineages (unmarked audio) is in tests/cli/test_verdicts_cli.py."""
    from soundscape.audio.io import audio_sha256

    for name, license in (("studio", "LicenseRef-Studio-Owned"), ("nc-copy", "CC-BY-NC-4.0")):
        added = run("model", "add", tiny_model_dir, "--name", name, "--license", license,
                    "--trained-on", "soundscape-samples")
        assert added.exit_code == 0, added.output
    files = {}
    for name in ("studio", "nc-copy"):
        files[name] = tmp_path / f"{name}.wav"
        made = run("generate", "calm pad", "--engine", "musicgen", "--model", name,
                   "--duration", 10, "--seed", 7, "--out", files[name])
        assert made.exit_code == 0, made.output
    import numpy as np

    from soundscape.audio.io import read_audio

    assert audio_sha256(files["studio"]) != audio_sha256(files["nc-copy"])  # the marks differ
    a, b = read_audio(files["studio"])[0], read_audio(files["nc-copy"])[0]
    difference = 10 * np.log10(np.mean((a - b) ** 2) / np.mean(a ** 2))
    assert difference < -20, difference  # the same music: what differs is the two marks
    studio = run("clear", files["studio"], "--policy", "broadcast-commercial")
    assert studio.exit_code == 0, studio.output
    assert studio.output.startswith("CLEARED under broadcast-commercial")
    assert "named by its sidecar studio.wav.json" in studio.output
    nc = run("clear", files["nc-copy"], "--policy", "broadcast-commercial")
    assert nc.exit_code == 4, nc.output
    assert nc.output.startswith("NOT CLEARED under broadcast-commercial")
    assert "model 'nc-copy'" in nc.output and "CC-BY-NC-4.0: non-commercial use only" in nc.output
