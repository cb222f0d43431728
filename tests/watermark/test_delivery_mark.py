"""Delivery marks every output, and the marked file still meets its preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from soundscape import pipeline
from soundscape.audio.io import read_audio
from soundscape.audio.loudness import integrated_loudness, true_peak_dbtp
from soundscape.audio.master import get_preset
from soundscape.cli import app
from soundscape.cli.detect import EXIT_FOREIGN, EXIT_MATCHED, EXIT_NO_MARK
from soundscape.config import open_workspace
from soundscape.delivery import Job, write_delivery
from soundscape.engines import get_engine
from soundscape.spec import make_spec
from soundscape.watermark.detect import detect


@pytest.mark.parametrize("preset", ["ebu-r128", "netflix"])
def test_marked_jingle_meets_its_preset(tmp_path, preset):
    spec = make_spec("bright upbeat logo", kind="jingle", duration=6, seed=7)
    job = Job(spec=spec, path=tmp_path / "logo.wav", preset=preset)
    sidecar = write_delivery(get_engine("composer").render([spec])[0], job, key_id=0x1234)
    audio, sr = read_audio(job.path)
    chosen = get_preset(preset)
    loudness = integrated_loudness(audio, sr)
    peak = true_peak_dbtp(audio, sr)
    assert abs(loudness - chosen.target_lufs) <= 0.1          # EBU R 128 allows +-0.5 LU
    assert peak <= chosen.true_peak_dbtp                        # never over the ceiling
    assert sidecar["mastering"]["true_peak_dbtp"] == pytest.approx(peak, abs=0.01)
    assert sidecar["mastering"]["loudness_lufs"] == pytest.approx(loudness, abs=0.01)
    found = detect(audio, sr)
    assert found.present and found.payload.hex == sidecar["watermark"]["payload"]
    assert sidecar["watermark"]["payload"].startswith("1234-")


def _invoke(home, *args):
    return CliRunner().invoke(app, ["--home", str(home), *map(str, args)], env={"COLUMNS": "200"})


def test_detect_names_the_record_and_tells_foreign_and_unmarked_files(tmp_path, monkeypatch):
    home = tmp_path / "studio"
    monkeypatch.setenv("SOUNDSCAPE_HOME", str(home))
    jobs = pipeline.prompt_jobs("warm pad", out=str(tmp_path / "pad.wav"), kind="bed",
                                duration=10, seed=5)
    [delivery] = pipeline.run(jobs, workspace=open_workspace(home))
    result = _invoke(home, "detect", delivery.path, "--json")
    assert result.exit_code == EXIT_MATCHED, result.output
    report = json.loads(result.output)
    assert report["record"]["id"] == delivery.record_id
    assert report["record"]["verdict"]["status"] == "CLEARED"
    assert report["mark"]["payload"] == delivery.facts.watermark["payload"]
    plain = _invoke(home, "detect", delivery.path)
    assert plain.exit_code == EXIT_MATCHED and delivery.record_id in plain.output

    other = _invoke(tmp_path / "elsewhere", "detect", delivery.path)  # another ledger's key
    assert other.exit_code == EXIT_FOREIGN, other.output
    assert "NOT IN THIS LEDGER" in other.output

    unmarked = tmp_path / "plain.wav"
    spec = make_spec("warm pad", kind="bed", duration=10, seed=6)
    write_delivery(get_engine("composer").render([spec])[0],
                   Job(spec=spec, path=unmarked, watermark=False))
    none = _invoke(home, "detect", unmarked, "--json")
    assert none.exit_code == EXIT_NO_MARK and json.loads(none.output)["mark"]["present"] is False

    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    failed = _invoke(home, "detect", bad)
    assert failed.exit_code not in (EXIT_MATCHED, EXIT_FOREIGN, EXIT_NO_MARK)
    assert failed.output.strip().startswith("error:") and "Traceback" not in failed.output
    assert len(failed.output.strip().splitlines()) == 1

    verified = _invoke(home, "verify", delivery.path)
    assert "watermark" in verified.output and f"names record {delivery.record_id}" in verified.output
