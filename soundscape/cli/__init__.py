"""The ``soundscape`` command line: a Typer app whose commands are thin calls into the library.

Each topic lives in its own module (``generate``, ``ledger``, ``dataset`` ...). Modules here
import only typer and rich at load time; anything heavy is imported inside the command, so
``soundscape --help`` stays instant.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from soundscape import __version__
from soundscape.cli import dataset, generate, keys, ledger, model, report, train, verify, batch
from soundscape.cli.common import STATE, error_line
from soundscape.errors import SoundscapeError

app = typer.Typer(
    name="soundscape",
    help="Rights-cleared AI ambient music: beds, jingles and the ledger that clears them.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"soundscape {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    home: Annotated[Optional[str], typer.Option(
        "--home", envvar="SOUNDSCAPE_HOME",
        help="Workspace folder (ledger, keys, models). Default: a per-user data folder.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show more detail.")] = False,
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    STATE.home = home
    STATE.verbose = verbose


for module in (generate, batch, dataset, ledger, model, train, report, verify, keys):
    module.register(app)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and a non-zero exit."""
    try:
        app()
    except SoundscapeError as exc:
        error_line(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        error_line("interrupted; nothing half-written was left behind")
        sys.exit(130)
