"""Clearance reports: music cue sheets built from the ledger, written as CSV, JSON, HTML or PDF.

:func:`write_report` is the one door: it checks the output path before any work, renders the
cue sheet in the asked format and writes the file atomically (a temp file renamed into place),
so a failure leaves nothing behind and an existing report is replaced only by a complete one.
"""

from __future__ import annotations

import os
from pathlib import Path

from soundscape.atomic import write_bytes_atomic
from soundscape.audio.io import can_create_in
from soundscape.errors import OutputError, ParameterError
from soundscape.production import safe_name_part
from soundscape.reports import render_csv, render_html, render_json, render_society
from soundscape.reports.plots import waveforms

FORMATS = ("csv", "json", "html", "pdf", "society")
# The file extension of each format where it is not the format's name: the society export is a
# CSV shaped for filing (render_society.py).
EXTENSIONS = {"society": "csv"}


def extension(fmt: str) -> str:
    return EXTENSIONS.get(fmt, fmt)


def report_format(fmt: str | None, out: str | Path | None) -> str:
    """The format asked for, else the one the output's extension names, else csv."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ParameterError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(out).suffix.lower().lstrip(".") if out else ""
    return suffix if suffix in FORMATS else "csv"


def output_path(out: str | Path | None, *, episode: str, fmt: str) -> Path:
    """The report file: ``--out`` as given, or ``<episode>-cuesheet.<fmt>`` inside a folder.

    Raises:
        OutputError: the folder is missing or not writable, or the path is a folder that
            cannot take the default name.
        ParameterError: the file's extension names another format than ``fmt`` (a report
            must never replace a delivered .wav, nor a .csv hold JSON).
    """
    ext = extension(fmt)
    default = f"{safe_name_part(episode)}-{'society' if fmt == 'society' else 'cuesheet'}.{ext}"
    path = Path(out).expanduser() if out else Path(default)
    if path.is_dir():
        path = path / default
    suffix = path.suffix.lower()
    if suffix and suffix not in (f".{ext}", ".htm" if fmt == "html" else f".{ext}"):
        if suffix[1:] in FORMATS:
            raise ParameterError(f"--out {out} ends in {path.suffix} but the report is {fmt}: "
                                 f"name the file .{ext}, or pass --format {suffix[1:]}")
        raise ParameterError(f"--out {out} ends in {path.suffix}, which is not a report: "
                             f"name the file .{ext} (formats: {', '.join(FORMATS)})")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    # os.access trusts permission bits; /proc, a read-only mount or root need a real probe.
    if not os.access(folder, os.W_OK | os.X_OK) or not can_create_in(folder):
        raise OutputError(f"cannot write {path}: folder {folder} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"cannot write {path}: the file exists and is read-only")
    return path


def render(sheet, fmt: str, *, out: Path | None = None, template_dir: Path | None = None) -> bytes:
    """The report bytes in ``fmt`` (waveforms drawn for html and pdf).

    ``template_dir`` is a studio's folder of HTML templates (render_html.py); the other formats
    have no templates and ignore it.
    """
    if fmt == "csv":
        return render_csv.render(sheet)
    if fmt == "json":
        return render_json.render(sheet)
    if fmt == "society":
        return render_society.render(sheet)
    images = waveforms(sheet.cues)
    if fmt == "html":
        return render_html.render(sheet, base_dir=out.parent if out else None, images=images,
                                  template_dir=template_dir)
    if fmt == "pdf":
        # reportlab loads only when a PDF is asked for (render_pdf imports it at its top).
        from soundscape.reports import render_pdf

        return render_pdf.render(sheet, images=images)
    raise ParameterError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")


def write_report(sheet, fmt: str, out: Path, *, template_dir: Path | None = None) -> Path:
    """Render ``sheet`` and write it to ``out`` atomically; returns the path written.

    Raises:
        OutputError: the file cannot be written (nothing is left behind).
        render_html.TemplateError: a studio's HTML template is broken (nothing is written).
    """
    data = render(sheet, fmt, out=out, template_dir=template_dir)
    try:
        write_bytes_atomic(out, data)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
