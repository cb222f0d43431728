"""Small things every command shares: the workspace, the console, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console

from soundscape.config import open_workspace

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


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
