"""Command: ``report`` (an episode's music cue sheet and clearance report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soundscape.cli.choices import ReportFormatChoice
from soundscape.cli.common import console, workspace
# Library services are imported inside each command: `soundscape --help` loads none of them.


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("report")(report)


def report(
    episode: Annotated[str, typer.Argument(help="Episode as in the cue list, e.g. S01E03.")],
    fmt: Annotated[Optional[ReportFormatChoice], typer.Option(
        "--format", "-f", case_sensitive=False, help="society is a CSV shaped for filing with ASCAP, BMI, PRS... (soundscape docs reports). Default: from --out's extension, else csv.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Report file (or a folder for <episode>-cuesheet.<format>).")] = None,
    policy: Annotated[Optional[str], typer.Option(
        help="Clearance policy. Default: the cue list's policy, else broadcast-commercial.")] = None,
    production: Annotated[Optional[str], typer.Option(
        help="Programme title, where episodes of several productions share a ledger.")] = None,
    templates: Annotated[Optional[Path], typer.Option(
        "--templates", metavar="DIR",
        help="A folder of HTML templates that replace the packaged ones by name (restyles --format html; soundscape docs reports). Default: the report_templates setting.")] = None,
) -> None:
    """Write the music cue sheet of an episode: every cue, its lineage, clearance and credits.

    Built from the rights ledger alone. The episode's status (CLEARED / NEEDS REVIEW / NOT
    CLEARED) is printed; the exit code is 0 whenever the report was written.
    """
    from soundscape import reports
    from soundscape.errors import ParameterError
    from soundscape.reports import render_html
    from soundscape.reports.cuesheet import build_cuesheet
    from soundscape.rights.ledger import Ledger

    kind = reports.report_format(fmt, out)
    if templates is not None and kind != "html":
        raise ParameterError(f"--templates restyles the HTML cue sheet only; this report is {kind}")
    path = reports.output_path(out, episode=episode, fmt=kind)  # fail before any work
    ws = workspace()
    template_dir = (templates or ws.report_templates) if kind == "html" else None
    if kind == "html":
        render_html.load_page(template_dir)  # a broken studio template fails before any work
    with Ledger.open(ws) as ledger:
        sheet = build_cuesheet(ledger, episode, policy=policy, production=production, workspace=ws)
        reports.write_report(sheet, kind, path, template_dir=template_dir)
    p = sheet.production
    colour = {"CLEARED": "green", "NEEDS REVIEW": "yellow"}.get(p.status, "red")
    console.print(f"{p.title} {p.episode}: [bold {colour}]{p.status}[/] · {p.cleared_count} of "
                  f"{p.cue_count} cues cleared under {p.policy} · {p.total_duration_text} of music", soft_wrap=True)
    if not sheet.checkpoint.verified:
        console.print(f"[red]ledger checkpoint: {sheet.checkpoint.message}[/]", soft_wrap=True)
    console.print(f"wrote {path}", soft_wrap=True)
