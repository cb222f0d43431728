"""Command: ``verify`` (check a delivered file's content credentials, metadata and ledger record)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from soundscape.cli.common import Json, console, print_json, workspace
# Library services are imported inside each command: `soundscape --help` loads none of them.


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("verify")(verify)


def verify(
    file: Annotated[Path, typer.Argument(help="A delivered WAV or FLAC file.")],
    as_json: Json = False,
) -> None:
    """Check where a file came from: its C2PA manifest, bext/iXML, audio hash, ledger proof and mark.

    Validates the manifest against the workspace's trust anchors (no network), compares bext
    and iXML with the copies signed into it, recomputes the decoded-audio hash, finds the
    ledger record and checks its inclusion proof against the signed checkpoint. One verdict
    line per check; the exit code is 1 when any check fails.
    """
    from soundscape.cli.detect import mark_check, seal_check
    from soundscape.rights.credentials import verify_file

    checks = verify_file(file, workspace())
    if not any(c.name == "audio" and not c.ok for c in checks):
        checks.append(mark_check(file, workspace()))
        second = seal_check(file, workspace())
        if second is not None:
            checks.append(second)
    failed = [c.name for c in checks if not c.ok]
    if as_json:
        print_json({"file": str(file), "verified": not failed,
                    "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]})
        if failed:
            raise typer.Exit(code=1)
        return
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = "[green]PASS[/]" if check.ok else "[bold red]FAIL[/]"
        console.print(f"{mark}  {check.name:<{width}}  {check.detail}", soft_wrap=True,
                      markup=True)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        console.print(f"[bold red]NOT VERIFIED[/]: {file} failed {len(failed)} check"
                      f"{'s' if len(failed) > 1 else ''} ({', '.join(failed)})", soft_wrap=True)
        raise typer.Exit(code=1)
    console.print(f"[bold green]VERIFIED[/]: {file}", soft_wrap=True)
