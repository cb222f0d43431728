"""The cue sheet as one self-contained HTML file that opens offline, built from jinja2 templates.

The markup lives in ``soundscape/reports/templates/`` (a wheel carries it inside the package).
A studio restyles its cue sheet without touching code by pointing ``report --templates DIR`` (or
the ``report_templates`` setting) at a folder of its own: a file there replaces the packaged
template of the same name, and ``{% extends "soundscape/cuesheet.html.j2" %}`` still reaches the
packaged original. docs/reports.md lists the variables templates get.

Styles are inline, waveforms are PNG ``data:`` URIs and there is no script, so the page makes
no network request; each cue's audio player links to the delivered file by a path relative to
the report, so the report and the episode's folder can be moved together.
"""

from __future__ import annotations

import base64
import functools
import os
from pathlib import Path
from urllib.parse import quote

import jinja2

from soundscape.errors import ParameterError
from soundscape.reports.plots import waveforms

# A model trained on thousands of CC-BY recordings owes thousands of credits on every cue: each
# cue shows the first few, Appendix A holds every one (and the CSV and JSON, all per cue).
OBLIGATIONS_SHOWN = 6
PAGE = "cuesheet.html.j2"
# The prefix under which the packaged templates stay reachable when a studio overrides them.
PACKAGED_PREFIX = "soundscape"


class TemplateError(ParameterError):
    """A studio's template folder or template that cannot be used; the message names the file."""


def _status_kind(status: str) -> str:
    # NEEDS REVIEW is neither green nor red: amber, so a sheet shows what a person must settle.
    return {"CLEARED": "ok", "NEEDS REVIEW": "review"}.get(status, "bad")


def _anchor(cue_id: str) -> str:
    return "cue-" + quote(cue_id, safe="")


def _counts(licenses: dict[str, int]) -> str:
    return ", ".join(f"{lic} ×{n}" for lic, n in licenses.items())


def _audio_href(file: str, base_dir: Path | None) -> str:
    path = Path(file)
    if base_dir is not None:
        try:
            rel = os.path.relpath(path, base_dir)
        except ValueError:  # another drive on Windows: keep the absolute path
            rel = str(path)
    else:
        rel = str(path)
    return quote(Path(rel).as_posix())


def environment(template_dir: str | Path | None = None) -> jinja2.Environment:
    """The template environment: the studio's folder first (when given), then the packaged one.

    One environment per folder is kept, so templates compile once (about 0.1 s) however often a
    process renders; jinja2 still recompiles a template whose file changed (a template added
    to the folder afterwards is seen by the next process).

    Raises:
        TemplateError: ``template_dir`` is not a folder.
    """
    if template_dir is not None:
        folder = Path(template_dir).expanduser()
        if not folder.is_dir():
            raise TemplateError(f"template folder {folder} does not exist (or is not a folder)")
        return _environment(str(folder.resolve()))
    return _environment(None)


@functools.lru_cache(maxsize=8)
def _environment(folder: str | None) -> jinja2.Environment:
    packaged = jinja2.PackageLoader("soundscape.reports", "templates")
    loaders: list[jinja2.BaseLoader] = []
    if folder is not None:
        loaders.append(jinja2.FileSystemLoader(folder))
    loaders += [packaged, jinja2.PrefixLoader({PACKAGED_PREFIX: packaged})]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        # Always on: every template here writes HTML, and select_autoescape would match none of
        # them (it goes by the name's last extension, and ours end in .j2).
        autoescape=True,
        # A misspelt variable in a studio's template is an error, never a silently empty cell.
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False)
    env.filters.update(anchor=_anchor, status_kind=_status_kind, counts=_counts,
                       basename=lambda file: Path(file).name, number=lambda value: f"{value:g}")
    return env


def load_page(template_dir: str | Path | None = None) -> jinja2.Template:
    """The page template, compiled (with every template it includes found and parsed).

    Called before any work, so a studio's broken template is refused before the cue sheet is
    built. Raises :class:`TemplateError` with the file and line of the problem.
    """
    env = environment(template_dir)
    try:
        page = env.get_template(PAGE)
        # Includes and imports are compiled only when rendered: parse every template the
        # studio's folder holds now, so a syntax error anywhere is caught before any work.
        for name in env.list_templates(filter_func=lambda n: n.endswith(".j2")):
            env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {exc.filename or exc.name}, line {exc.lineno}: "
                            f"{exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name} not found in {template_dir or 'the package'}") from None
    except UnicodeDecodeError as exc:
        raise TemplateError(f"a template in {template_dir} is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})") from None
    except OSError as exc:
        raise TemplateError(f"cannot read template {exc.filename}: {exc.strerror or exc}") from None
    return page


def render(sheet, *, base_dir: str | Path | None = None, images: dict | None = None,
           template_dir: str | Path | None = None, page: jinja2.Template | None = None) -> bytes:
    """The HTML page.

    Args:
        sheet: the :class:`~soundscape.reports.cuesheet.CueSheet`.
        base_dir: the folder the report is written to (audio links are relative to it).
        images: ``{cue_id: png bytes or None}``; drawn here when not given.
        template_dir: a studio's template folder, overriding packaged templates by name.
        page: the page template already loaded by :func:`load_page` (else loaded here).

    Raises:
        TemplateError: a template is missing, broken, or uses a variable that does not exist.
    """
    base_dir = Path(base_dir).resolve() if base_dir is not None else None
    page = page or load_page(template_dir)
    p = sheet.production
    if images is None:
        images = waveforms(sheet.cues)
    pngs = {c.cue_id: images.get(c.cue_id) for c in sheet.cues}
    context = {
        "sheet": sheet,
        "title": f"{p.title} {p.episode}" + (f" “{p.episode_title}”" if p.episode_title else ""),
        "waveforms": {cue_id: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
                      if png else None for cue_id, png in pngs.items()},
        "audio": {c.cue_id: _audio_href(c.file, base_dir) for c in sheet.cues},
        "obligations_shown": OBLIGATIONS_SHOWN,
    }
    try:
        return page.render(context).encode("utf-8")
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {_template_line(exc)}: includes {exc.name}, which is in "
                            f"neither {template_dir or 'the studio folder'} nor the package") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {_template_line(exc)}: {exc.message or type(exc).__name__}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        # An expression in a template that fails ({{ "%d" | format("x") }}): the studio's to fix,
        # so one line naming it. Raised outside any template, it is our bug and keeps its traceback.
        where = _template_line(exc)
        if where == "?":
            raise
        raise TemplateError(f"template {where}: {type(exc).__name__}: {exc}") from None


def _template_line(exc: Exception) -> str:
    """``file, line N`` of the template frame an error was raised in, as well as can be told."""
    tb = exc.__traceback__
    found = "?"
    while tb is not None:
        code = tb.tb_frame.f_code
        # jinja2 rewrites tracebacks so that template frames carry the template's file name.
        if code.co_filename.endswith(".j2"):
            found = f"{code.co_filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return found
