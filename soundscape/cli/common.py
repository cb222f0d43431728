"""Small things every command shares: the workspace, the console, one-line errors."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console

from soundscape.config import open_workspace

# Wide enough that no table or line is ever cut: when output goes to a file or a pipe,
# values print whole (Rich would otherwise assume 80 columns and end them in "…").
UNCUT_WIDTH = 100_000


def _width(stream) -> int | None:
    """None (Rich asks the terminal) on a terminal or where COLUMNS is set; else uncut."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return None if interactive or os.environ.get("COLUMNS") else UNCUT_WIDTH


console = Console(highlight=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))

# `--json` on every command that lists or checks: one JSON document on stdout, nothing else.
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text "
                                                     "(fields: soundscape docs cli).")]


def print_json(data: Any) -> None:
    """Write ``data`` as one JSON document to stdout (UTF-8, keys sorted, newline-terminated)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str))


@dataclass
class _State:
    home: str | None = None
    verbose: bool = False


STATE = _State()


def error_line(message: str) -> None:
    """Print one line to stderr in the form every soundscape error takes."""
    from rich.markup import escape

    # The message is plain text (it may quote a user's "[...]"): only our prefix is markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, markup=True)


def workspace():
    """The workspace chosen by --home / SOUNDSCAPE_HOME / default."""
    return open_workspace(STATE.home)


def fail(message: str, code: int = 2) -> None:
    """Stop a command with a one-line error."""
    error_line(message)
    raise typer.Exit(code=code)
