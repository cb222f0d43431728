"""``soundscape report`` as a user runs it: every format, and every bad input refused in one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from soundscape.config import open_workspace


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    """Two composer cues of S01E01 rendered and recorded through the pipeline."""
    from soundscape import pipeline
    from soundscape.production import CueFacts
    from soundscape.spec import make_spec

    root = tmp_path_factory.mktemp("report-cli")
    home, folder = root / "home", root / "S01E01"
    folder.mkdir()
    jobs = []
    for cue_id, kind, tc, seconds, title in (("1M1", "jingle", "00:00:00:00", 3, "Opening"),
                                             ("1M2", "sting", "00:00:30:00", 2, "Sting")):
        spec = make_spec("bright bells, hopeful", kind=kind, duration=seconds, seed=5,
                         production="Deep Water", episode="S01E01", cue_id=cue_id,
                         cue=CueFacts(title=title, usage="MT", timecode_in=tc,
                                      publisher="Abyss Music", frame_rate=25))
        jobs.append(pipeline.Job(spec=spec, path=folder / f"S01E01_{cue_id}.wav",
                                 air_date="2027-01-02", territories=("FR",)))
    pipeline.run(jobs, workspace=open_workspace(home))
    return {"home": home, "folder": folder, "root": root}


def _report(episode, *args):
    env = dict(os.environ, SOUNDSCAPE_HOME=str(episode["home"]), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "soundscape", "report", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def _one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("fmt", ["csv", "json", "html", "pdf"])
def test_every_format_is_written(episode, fmt):
    out = episode["root"] / f"cuesheet.{fmt}"
    proc = _report(episode, "S01E01", "--format", fmt, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Deep Water S01E01: CLEARED" in proc.stdout and f"wrote {out}" in proc.stdout
    data = out.read_bytes()
    if fmt == "csv":
        rows = list(csv.DictReader(data.decode("utf-8-sig").splitlines()))
        assert [r["cue_id"] for r in rows] == ["1M1", "1M2"]
    elif fmt == "json":
        assert [c["cue_id"] for c in json.loads(data)["cues"]] == ["1M1", "1M2"]
    elif fmt == "html":
        assert b'data-cue-id="1M1"' in data and b'data-cue-id="1M2"' in data
    else:
        assert data.startswith(b"%PDF-")
    assert out.stat().st_mode & 0o044  # a report is for sharing: not left private


def test_format_from_extension_and_folder_default_name(episode):
    proc = _report(episode, "S01E01", "--out", episode["folder"], "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert (episode["folder"] / "S01E01-cuesheet.json").exists()
    out = episode["root"] / "sheet.html"
    assert _report(episode, "S01E01", "--out", out).returncode == 0
    assert out.read_bytes().startswith(b"<!DOCTYPE html>")


def test_policy_option_changes_the_verdict_policy(episode):
    out = episode["root"] / "strict.json"
    assert _report(episode, "S01E01", "--policy", "strict-cc0", "--out", out).returncode == 0
    assert json.loads(out.read_text())["production"]["policy"] == "strict-cc0"


def test_an_episode_with_no_outputs(episode):
    out = episode["root"] / "none.csv"
    line = _one_error_line(_report(episode, "S09E09", "--out", out))
    assert "no outputs recorded for episode 'S09E09'" in line
    assert not out.exists()


def test_a_policy_that_does_not_exist(episode):
    out = episode["root"] / "nopolicy.csv"
    line = _one_error_line(_report(episode, "S01E01", "--policy", "no-such", "--out", out))
    assert "unknown policy 'no-such'" in line and "broadcast-commercial" in line
    assert not out.exists()


def test_an_unwritable_output_path(episode, tmp_path):
    line = _one_error_line(_report(episode, "S01E01", "--out", tmp_path / "missing" / "r.pdf"))
    assert "does not exist" in line
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root can write anywhere; the check is moot then
            line = _one_error_line(_report(episode, "S01E01", "--out", locked / "r.pdf"))
            assert "not writable" in line
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_an_unknown_format(episode):
    line = _one_error_line(_report(episode, "S01E01", "--format", "docx"))
    assert "'docx' is not one of 'csv', 'json', 'html', 'pdf', 'society'" in line


@pytest.mark.parametrize("args, says", [
    (["--out", "{folder}/S01E01_1M1.wav"], "which is not a report"),
    (["--format", "json", "--out", "{root}/cues.csv"], "pass --format csv"),
    (["--out", "/proc/soundscape-report.csv"], "is not writable"),
], ids=["delivered-wav", "csv-holding-json", "proc"])
def test_an_out_that_names_another_kind_of_file_is_refused(episode, args, says):
    # Formerly `--out cue.wav` replaced the delivered audio with a CSV cue sheet, and
    # /proc (where even root cannot create files) got "No such file or directory".
    wav = episode["folder"] / "S01E01_1M1.wav"
    before = wav.read_bytes()
    args = [a.format(folder=episode["folder"], root=episode["root"]) for a in args]
    assert says in _one_error_line(_report(episode, "S01E01", *args))
    assert wav.read_bytes() == before
    assert not (episode["root"] / "cues.csv").exists()


def test_a_studio_template_folder_restyles_the_html(episode, tmp_path):
    studio = tmp_path / "studio-templates"
    studio.mkdir()
    (studio / "style.css.j2").write_text("h1 { color: #c0ffee; }", encoding="utf-8")
    plain, styled = episode["root"] / "plain.html", episode["root"] / "styled.html"
    assert _report(episode, "S01E01", "--out", plain).returncode == 0
    proc = _report(episode, "S01E01", "--out", styled, "--templates", studio)
    assert proc.returncode == 0, proc.stderr
    assert b"h1 { color: #c0ffee; }" not in plain.read_bytes()
    html = styled.read_bytes()
    assert b"<style>h1 { color: #c0ffee; }</style>" in html and b'data-cue-id="1M2"' in html

    # The same folder named once for the workspace, in soundscape.toml (relative to it).
    settings = episode["home"] / "soundscape.toml"
    settings.write_text(f'report_templates = "{studio}"\n', encoding="utf-8")
    try:
        by_setting = episode["root"] / "by-setting.html"
        assert _report(episode, "S01E01", "--out", by_setting).returncode == 0
        assert by_setting.read_bytes().count(b"#c0ffee") == 1
        # The setting restyles HTML alone: a CSV is written as before.
        assert _report(episode, "S01E01", "--out", episode["root"] / "set.csv").returncode == 0
    finally:
        settings.unlink()


@pytest.mark.parametrize("template, says", [
    (None, "does not exist"),
    ("{% for cue in sheet.cues %}<p>{{ cue.title }}</p>", "cue_table.html.j2, line 1: Unexpected end of template"),
    ("<p>{{ sheet.production.budget }}</p>", "has no attribute 'budget'"),
], ids=["missing-folder", "syntax-error", "unknown-variable"])
def test_a_broken_studio_template_is_one_line_and_nothing_written(episode, tmp_path, template, says):
    studio = tmp_path / "studio"
    if template is not None:
        studio.mkdir()
        (studio / "cue_table.html.j2").write_text(template, encoding="utf-8")
    out = tmp_path / "sheet.html"
    proc = _report(episode, "S01E01", "--out", out, "--templates", studio)
    line = _one_error_line(proc)
    assert proc.returncode == 2 and says in line
    assert list(tmp_path.iterdir()) == ([studio] if template is not None else [])


def test_templates_with_another_format_is_refused(episode, tmp_path):
    line = _one_error_line(_report(episode, "S01E01", "--format", "pdf", "--out", tmp_path / "r.pdf",
                                   "--templates", tmp_path))
    assert "--templates restyles the HTML cue sheet only" in line and not (tmp_path / "r.pdf").exists()
