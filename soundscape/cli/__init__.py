"""The ``soundscape`` command line: a Typer app whose commands are thin calls into the library.

Each topic lives in its own module (``generate``, ``ledger``, ``dataset`` ...). Modules here
import only typer, rich and soundscape's zero-cost modules at load time; the library's services
(the ledger, audio, engines) are imported inside each command, so ``soundscape --help`` stays
instant. User mistakes become one line and an exit code in one place: :class:`_Commands`.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from soundscape import __version__
from soundscape.cli import (batch, corpus, dataset, detect, docs, generate, keys, ledger, model,
                            report, train, verify)
from soundscape.cli.common import STATE, error_line
from soundscape.errors import SoundscapeError


def _plain_metavar(param, ctx) -> str | None:
    """The help's type column in words a user reads: TEXT, INTEGER, NUMBER, PATH, the choices
    themselves, nothing for an on/off flag (Typer's own shows Python types: <str>, <bool>,
    <list[Path]>). Set once here on Typer's parameter classes, for every command."""
    if getattr(param, "is_flag", False) or getattr(param, "is_bool_flag", False):
        return None
    label = _TYPER_DISPLAY_TYPE(param, ctx)
    if label is None:
        return None
    inner = label.strip("<>")
    many = inner.startswith("list[") and inner.endswith("]")
    if many:
        inner = inner[5:-1]
    words = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "bool": "BOOLEAN", "Path": "PATH",
             "path": "PATH", "file": "FILE", "directory": "FOLDER", "datetime": "DATE"}
    plain = words.get(inner, inner if "|" in inner else inner.upper())
    return f"{plain} …" if many else plain


class _Commands(TyperGroup):
    """The one net between the library and the user: a SoundscapeError raised by any command
    becomes one ``error:`` line and that error's exit code, for the installed program and for
    in-process runners (tests) alike; anything else is a bug and keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SoundscapeError as exc:
            error_line(str(exc))
            raise typer.Exit(code=exc.exit_code) from None
        except ImportError as exc:  # an optional part (soundscape[musicgen], [ray]) not installed
            from soundscape.extras import extra_for, missing_extra

            extra = extra_for(exc)
            if extra is None:
                raise
            missing = missing_extra(extra)
            error_line(str(missing))
            raise typer.Exit(code=missing.exit_code) from None


app = typer.Typer(
    name="soundscape",
    cls=_Commands,
    help="Rights-cleared AI ambient music: beds, jingles and the ledger that clears them.",
    epilog="Documentation ships with soundscape: `soundscape docs` lists it, `soundscape docs cli` prints one.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"soundscape {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[Optional[str], typer.Option(
        "--home", envvar="SOUNDSCAPE_HOME",
        help="Workspace folder (ledger, keys, models). Default: a per-user data folder.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show more detail.")] = False,
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    if home is not None and not home.strip():
        # An empty SOUNDSCAPE_HOME means "not set"; an empty --home is a mistake (an unset
        # shell variable, say), and must not send outputs to the default workspace's ledger.
        source = ctx.get_parameter_source("home")
        if source is not None and source.name == "COMMANDLINE":
            error_line("--home is empty: give the workspace folder, or leave --home out")
            raise typer.Exit(code=2)
        home = None
    STATE.home = home
    STATE.verbose = verbose


_TYPER_DISPLAY_TYPE = TyperOption.display_type_rich
TyperOption.display_type_rich = _plain_metavar
TyperArgument.display_type_rich = _plain_metavar

for module in (generate, batch, dataset, corpus, ledger, model, train, report, verify, keys, docs, detect):
    module.register(app)


def main() -> None:
    """Entry point: Click's own mistakes, aborts and interrupts as one line and an exit code.

    Command-line mistakes that Click catches (a missing argument, a value of the wrong type,
    an unknown command or option) take the same one-line form as every other error, with a
    pointer to the command's help, instead of Click's multi-line usage box. Soundscape's own
    errors are turned into lines inside the app (:class:`_Commands`).
    """
    try:  # typer vendors its own copy of Click; its exceptions are the ones raised
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    except ImportError:  # a typer that uses Click itself
        from click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    from typer import Abort

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError:
        sys.exit(2)  # the help was printed; nothing was asked for
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "soundscape"
        # Typer words a bad choice "Value error, 'x' is not one of ..."; the first two words add nothing.
        message = exc.format_message().rstrip().replace("Value error, ", "")
        error_line(f"{message} (see '{where} --help')")
        sys.exit(exc.exit_code)
    except ClickException as exc:
        error_line(exc.format_message())
        sys.exit(exc.exit_code)
    except Abort:
        error_line("aborted; nothing half-written was left behind")
        sys.exit(1)
    except KeyboardInterrupt:
        error_line("interrupted; nothing half-written was left behind")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
