"""The writers: CSV columns and rows, JSON structure, HTML in headless Chromium, PDF via poppler."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from soundscape import reports
from soundscape.config import PROJECT_ROOT
from soundscape.errors import OutputError
from soundscape.reports import cuesheet as cs
from soundscape.reports.render_csv import COLUMNS
from soundscape.rights.ledger import Ledger

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(scripts/ensure-tools.sh installs it)")
needs_poppler = pytest.mark.skipif(not (shutil.which("pdftoppm") and shutil.which("pdftotext")),
                                   reason="pdftoppm/pdftotext (poppler-utils) are not installed")


@pytest.fixture(scope="module")
def sheets(rendered_episode, ledger_episode):
    """The rendered episode's sheet, and the ledger episode's (with a cue NOT CLEARED)."""
    out = {}
    for key, episode, name, production in (("rendered", rendered_episode, "S01E03", None),
                                           ("ledger", ledger_episode, "S02E01", "Tidal")):
        with Ledger.open(episode.workspace) as ledger:
            out[key] = cs.build_cuesheet(ledger, name, production=production,
                                         workspace=episode.workspace)
    return out


def _write(sheet, fmt, folder: Path) -> Path:
    return reports.write_report(sheet, fmt, folder / f"report.{fmt}")


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float64)


def test_csv_has_documented_columns_and_one_row_per_cue(sheets, rendered_episode):
    path = _write(sheets["rendered"], "csv", rendered_episode.folder)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read UTF-8 right
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    with open(path, encoding="utf-8-sig", newline="") as handle:
        assert tuple(next(csv.reader(handle))) == COLUMNS
    assert [r["cue_id"] for r in rows] == ["1M1", "1M2", "1M3"]
    assert [r["sequence"] for r in rows] == ["1", "2", "3"]
    bed = rows[1]
    assert (bed["cue_title"], bed["usage"], bed["timecode_in"], bed["timecode_out"]) == (
        "Rain on the Hull", "BI", "00:00:10:00", "00:00:20:00")
    assert bed["clearance"] == "CLEARED" and bed["ai_generated"] == "yes"
    assert bed["production_title"] == "Deep Water" and bed["episode_title"] == "The Trench"
    # Two library samples (CC0) and the sound-bank presets the bed played (MIT banks).
    presets = sheets["rendered"].cues[1].lineage.presets
    assert presets and bed["licenses"] == f"CC0-1.0 x2; MIT x{len(presets)}"
    assert re.fullmatch(r"[0-9a-f]{64}", bed["audio_sha256"])
    # Every rendered cue carries its mark's payload (ledger key id - mark id).
    assert all(re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{8}", r["watermark"]) for r in rows)


def test_csv_column_order_is_the_documented_one():
    doc = (PROJECT_ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\|\s*(\d+)\s*\|\s*`([a-z_0-9]+)`", doc, flags=re.M)
    assert [int(n) for n, _ in documented] == list(range(1, len(COLUMNS) + 1))
    assert tuple(name for _, name in documented) == COLUMNS


def test_csv_cells_never_start_a_formula(sheets, tmp_path):
    import copy

    sheet = copy.deepcopy(sheets["rendered"])
    sheet.cues[0].title = "=HYPERLINK(\"http://evil\")"
    sheet.cues[0].prompt = "@SUM(1)"
    rows = list(csv.DictReader(io.StringIO(_write(sheet, "csv", tmp_path).read_text("utf-8-sig"))))
    assert rows[0]["cue_title"].startswith("'=")
    assert rows[0]["duration_seconds"] == "3.000"


def test_json_holds_every_cue_and_the_appendices(sheets, tmp_path):
    data = json.loads(_write(sheets["ledger"], "json", tmp_path).read_text("utf-8"))
    assert data["format"] == "soundscape-cuesheet/v1"
    assert data["production"]["title"] == "Tidal" and data["production"]["status"] == "NOT CLEARED"
    assert [c["cue_id"] for c in data["cues"]] == ["2M1", "2M2", "2M3", "2M4"]
    for cue in data["cues"]:
        for key in ("sequence", "title", "usage", "timecode_in", "timecode_out", "duration",
                    "composer", "publisher", "disclosure", "engine", "model", "lineage", "status",
                    "reasons", "obligations", "audio_sha256", "record_id"):
            assert key in cue
        assert cue["lineage"]["summary"] and cue["lineage"]["licenses"]
    appendices = data["appendices"]
    assert len(appendices["attributions"]) == 5
    assert {m["name"] for m in appendices["models"]} == {"waves-v1", "small-ft"}
    ds = appendices["models"][0]["datasets"][0]
    assert ds["licenses"] == {"CC-BY-4.0": 3} and ds["summary"].startswith("field-waves@")
    assert appendices["checkpoint"]["verified"] is True
    assert appendices["checkpoint"]["size"] >= 8


def test_html_is_self_contained(sheets, rendered_episode):
    path = _write(sheets["rendered"], "html", rendered_episode.folder)
    html = path.read_text("utf-8")
    # Nothing fetched: images inline, links only to anchors, audio relative to the report.
    for attr, value in re.findall(r'\b(src|href)="([^"]*)"', html):
        assert not re.match(r"[a-z]+://", value) or value.startswith("data:"), (attr, value)
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', html)
    assert len(images) == 3
    audio = re.findall(r'<audio controls preload="none" src="([^"]+)"', html)
    assert audio == ["S01E03_1M1.wav", "S01E03_1M2.wav", "S01E03_1M3.wav"]
    assert all((path.parent / a).exists() for a in audio)
    assert html.count("NOT CLEARED") == 0 and html.count(">CLEARED<") >= 7


@needs_chromium
def test_html_loads_in_chromium_with_every_cue(sheets, ledger_episode, tmp_path):
    path = _write(sheets["ledger"], "html", ledger_episode.folder)
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
            "--v=0", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", path.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for cue in sheets["ledger"].cues:
        assert f'data-cue-id="{cue.cue_id}"' in dom.stdout
    assert 'id="episode-status"' in dom.stdout and "NOT CLEARED" in dom.stdout
    # Page errors, blocked fetches and CSP violations show up as console messages.
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []

    shot = tmp_path / "shot.png"
    proc = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,1600",
                           path.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    pixels = _read_png(shot)
    assert pixels.shape == (1600, 1200) and pixels.var() > 100  # text, tables, waveforms


@needs_poppler
def test_pdf_renders_and_holds_every_cue_id(sheets, ledger_episode, tmp_path):
    path = _write(sheets["ledger"], "pdf", tmp_path)
    assert path.read_bytes().startswith(b"%PDF-")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / "page")],
                   check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3
    for page in pages:
        assert _read_png(page).var() > 20  # every page carries something
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True, timeout=120).stdout
    for cue in sheets["ledger"].cues:
        assert cue.cue_id in text and cue.title in text
    assert "NOT CLEARED" in text and "Appendix C" in text and "facebook/musicgen-small" in text


def test_unwritable_output_is_refused_before_any_work(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        reports.output_path(tmp_path / "missing" / "r.csv", episode="S01E03", fmt="csv")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not __import__("os").access(locked, __import__("os").W_OK):  # root writes anywhere
            with pytest.raises(OutputError, match="not writable"):
                reports.output_path(locked / "r.csv", episode="S01E03", fmt="csv")
    finally:
        locked.chmod(0o700)
    assert reports.output_path(tmp_path, episode="S01E03", fmt="pdf") == tmp_path / "S01E03-cuesheet.pdf"


def test_a_failed_render_leaves_the_old_report_untouched(sheets, tmp_path, monkeypatch):
    path = _write(sheets["rendered"], "json", tmp_path)
    before = path.read_bytes()
    import soundscape.reports.render_json as render_json

    def broken(sheet):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(render_json, "render", broken)
    with pytest.raises(RuntimeError):
        reports.write_report(sheets["rendered"], "json", path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_cue_without_its_file_still_renders(sheets, tmp_path):
    import copy

    sheet = copy.deepcopy(sheets["rendered"])
    sheet.cues[0].file = str(tmp_path / "gone.wav")
    html = reports.render(sheet, "html", out=tmp_path / "r.html").decode("utf-8")
    assert "no waveform: the delivered file was not found" in html
    assert reports.render(sheet, "pdf").startswith(b"%PDF-")


def test_long_credit_lists_point_to_appendix_a(sheets, tmp_path):
    import copy

    sheet = copy.deepcopy(sheets["ledger"])
    sheet.cues[0].obligations = [f'"rec{i:02d}" by Someone, licensed under CC BY 4.0' for i in range(20)]
    html = reports.render(sheet, "html", out=tmp_path / "r.html").decode("utf-8")
    assert "… and 15 more: every credit is in Appendix A" in html and "rec04" in html
    assert "rec05" not in html.split('id="attributions"')[0]
    rows = list(csv.DictReader(io.StringIO(reports.render(sheet, "csv").decode("utf-8-sig"))))
    assert rows[0]["obligations"].count(" | ") == 19  # the CSV keeps every line


def test_cue_kind_comes_from_the_cue_parameters(sheets):
    assert [c.kind for c in sheets["rendered"].cues] == ["jingle", "bed", "sting"]
