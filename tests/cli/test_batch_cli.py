"""``soundscape batch`` as a user runs it: dry runs, real runs, bad cue lists, failed cues."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soundscape.cli import app
from soundscape.rights.records import ModelEntry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SMALL = """\
production:
  title: "Deep Water"
  episode: "S01E03"
  air_date: 2027-03-14
  territory: [FR]
  policy: broadcast-commercial
  preset: netflix
cues:
  - {id: "1M1", kind: jingle, usage: MT, timecode_in: "00:00:00:00", duration: 4, prompt: "hopeful bells", motif: "C5 E5 G5 C6"}
  - {id: "1M2", kind: sting, usage: BI, timecode_in: "00:01:00:00", duration: 3, mood: tense}
  - {id: "1M3", kind: bed, usage: BI, timecode_in: "00:02:00:00", duration: 10, prompt: "calm pad with rain", loop: true}
"""


@pytest.fixture
def small(tmp_path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL, encoding="utf-8")
    return path


def invoke(home, *args):
    return CliRunner().invoke(app, ["--home", str(home), *map(str, args)], env={"COLUMNS": "200"})


def test_dry_run_prints_the_resolved_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = invoke(tmp_path / "home", "batch", EXAMPLES / "deep-water-s01e03.yaml", "--out", out, "--dry-run")
    assert result.exit_code == 0, result.output
    for words in ("dry run", "1M1", "jingle", "MT", "00:00:49:00", "20 s", "composer", "D minor", "72",
                  "S01E03_1M1.wav", "render (new)", "bed loop", "4M4", "ET"):
        assert words in result.output, words
    assert result.output.count("render (new)") == 18
    assert not out.exists()


def test_a_batch_renders_and_prints_the_summary(tmp_path, small, soundscape):
    out = tmp_path / "out"
    proc = soundscape("batch", small, "--out", out, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    for words in ("1M1", "rendered", "S01E03_1M2.wav", "-24.0 LUFS", "CLEARED", "3 rendered"):
        assert words in proc.stdout, words
    for name in ("S01E03_1M1.wav", "S01E03_1M2.wav", "S01E03_1M3.wav"):
        sidecar = json.loads((out / (name + ".json")).read_text())
        assert sidecar["mastering"]["preset"] == "netflix"
        assert abs(sidecar["mastering"]["loudness_lufs"] + 24) <= 0.5
        assert sidecar["ledger"]["record_id"]
    # --only with a cue already done: nothing rendered, the row says so.
    proc = soundscape("batch", small, "--out", out, "--only", "1M2")
    assert proc.returncode == 0 and "up to date" in proc.stdout and "1 skipped" in proc.stdout
    proc = soundscape("batch", small, "--out", out, "--dry-run")
    assert proc.stdout.count("skip (up to date)") == 3
    listed = soundscape("ledger", "list")
    assert listed.stdout.count("out-") == 3


def test_every_problem_is_printed_and_nothing_renders(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.replace("usage: MT", "usage: XX").replace("duration: 3", "duration: 90")
                   .replace('"00:02:00:00"', '"00:02:00:30"'), encoding="utf-8")
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "batch", str(bad),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 4, result.output
    assert "bad.yaml:9: cue 1M1: usage: unknown usage code 'XX'" in lines[0]
    assert "bad.yaml:10: cue 1M2: duration" in lines[1]
    assert "bad.yaml:11: cue 1M3: timecode_in" in lines[2]
    assert "3 problems in" in lines[3] and "nothing was rendered" in lines[3]
    assert not (tmp_path / "out").exists()


def test_csv_with_production_fields_on_the_command_line(tmp_path):
    cues = tmp_path / "cues.csv"
    cues.write_text("id,kind,usage,duration,mood\n2M2,sting,BI,3,eerie\n", encoding="utf-8")
    args = ["batch", cues, "--out", tmp_path / "out", "--dry-run"]
    result = invoke(tmp_path / "home", *args)
    assert result.exit_code == 2
    assert "production.title: missing" in result.output and "production.episode: missing" in result.output
    result = invoke(tmp_path / "home", *args, "--production-title", "Deep Water", "--episode", "S01E04",
                    "--territory", "FR,BE", "--air-date", "2027-03-21")
    assert result.exit_code == 0, result.output
    assert "S01E04_2M2.wav" in result.output


def test_unknown_only_and_executor_are_one_line_errors(tmp_path, small, soundscape):
    proc = soundscape("batch", small, "--out", tmp_path / "out", "--only", "9M9")
    assert proc.returncode == 2 and "9M9" in proc.stderr and "Traceback" not in proc.stderr
    proc = soundscape("batch", small, "--out", tmp_path / "out", "--executor", "slurm")
    assert proc.returncode == 2 and "unknown executor 'slurm'" in proc.stderr


def test_a_failed_cue_is_reported_and_the_exit_code_is_not_zero(tmp_path, small, soundscape, home):
    from soundscape.config import open_workspace
    from soundscape.rights.ledger import Ledger

    gone = tmp_path / "models" / "gone"
    gone.mkdir(parents=True)
    with Ledger.open(open_workspace(home)) as ledger:
        ledger.register_model(ModelEntry(name="deep-water-ft", path=str(gone), lm_sha256="0" * 64,
                                         compression_sha256="1" * 64, license="LicenseRef-Studio-Owned"))
    small.write_text(SMALL + '  - {id: "9M9", kind: bed, usage: BI, duration: 10, prompt: "drone", '
                     'engine: musicgen, model: deep-water-ft}\n', encoding="utf-8")
    proc = soundscape("batch", small, "--out", tmp_path / "out", "--only", "1M2,9M9")
    assert proc.returncode == 1
    assert "failed" in proc.stdout and "1 rendered" in proc.stdout and "1 failed" in proc.stdout
    assert "not an audiocraft checkpoint folder" in proc.stdout
    assert (tmp_path / "out" / "S01E03_1M2.wav").exists()


def test_cue_ids_and_values_that_look_like_markup_are_printed_as_typed(tmp_path):
    cues = tmp_path / "cues.csv"
    cues.write_text("# title: [bold]Deep Water\n# episode: S01E03\n"
                    "id,kind,usage,duration,mood\n[/]1M1[red],sting,BI,3,tense\n", encoding="utf-8")
    result = invoke(tmp_path / "home", "batch", cues, "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "[/]1M1[red]" in result.output and "[bold]Deep Water" in result.output
    cues.write_text("# title: x\n# episode: S01E03\nid,kind,usage,duration,mood\n1M1,sting,[/x],3,tense\n",
                    encoding="utf-8")
    result = invoke(tmp_path / "home", "batch", cues, "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 2 and "unknown usage code '[/X]'" in result.output


@pytest.mark.slow
def test_executor_ray_starts_a_private_local_ray_and_records_from_the_driver(tmp_path, small, soundscape):
    out = tmp_path / "out"
    proc = soundscape("batch", small, "--out", out, "--executor", "ray", "--workers", "2", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "3 rendered" in proc.stdout
    proc = soundscape("batch", small, "--out", out, "--dry-run")
    assert proc.stdout.count("skip (up to date)") == 3
    verify = soundscape("ledger", "verify")
    assert verify.returncode == 0, verify.stderr
