"""Small things every command shares: the workspace, the console, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class _State:
    home: str | None = None
    verbose: bool = False


STATE = _State()


def error_line(message: str) -> None:
    """Print one line to stderr in the form every soundscape error takes."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True)


def workspace():
    """The workspace chosen by --home / SOUNDSCAPE_HOME / default."""
    from soundscape.config import open_workspace

    return open_workspace(STATE.home)


def fail(message: str, code: int = 2) -> None:
    """Stop a command with a one-line error."""
    error_line(message)
    raise typer.Exit(code=code)
