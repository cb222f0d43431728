"""Cue lists: an episode's music read from YAML or CSV and validated as a whole before anything renders.

A cue list names a production (title, episode, air date, territories, policy, preset...) and its
cues (id, kind, cue-sheet usage, timecode, duration, prompt or mood, musical controls, engine).
:func:`load_cuelist` reads either format, checks every field of every cue and raises one
:class:`CueListError` listing every problem (file, line, cue, field, what is wrong, what is
allowed), so a supervisor fixes the whole file in one pass and nothing renders from a bad list.

The keys are a contract (issue 5); see ``examples/README.md`` for both formats.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

from soundscape import spec as spec_mod
from soundscape.errors import ParameterError, SoundscapeError
from soundscape.production import (DEFAULT_FRAME_RATE, DEFAULT_POLICY, DEFAULT_PRESET, FRAME_RATES,
                                   USAGE_CODES, CueFacts, parse_timecode, safe_name_part)
from soundscape.spec import MAX_VARIANTS, CueSpec

PRODUCTION_FIELDS: tuple[str, ...] = (
    "title", "episode", "episode_title", "air_date", "territory", "company", "publisher",
    "policy", "preset", "frame_rate", "engine", "model",
)
CUE_FIELDS: tuple[str, ...] = (
    "id", "title", "kind", "usage", "timecode_in", "duration", "prompt", "key", "bpm", "mood",
    "intensity", "motif", "loop", "seed", "engine", "model", "variants",
)
REQUIRED_PRODUCTION: tuple[str, ...] = ("title", "episode")
REQUIRED_CUE: tuple[str, ...] = ("id", "kind", "usage", "duration")

DEFAULT_ENGINE = "composer"
AUDIO_FORMAT = "wav"


class CueListError(ParameterError):
    """A cue list with problems; ``problems`` holds one line per problem, in file order."""

    def __init__(self, problems: list["Problem"]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a cue list, located as precisely as the file allows."""

    file: str
    line: int | None
    cue: str | None
    field: str | None
    message: str
    allowed: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.cue is not None:
            parts.append(f"cue {self.cue}")
        if self.field:
            parts.append(self.field)
        text = ": ".join(parts) + f": {self.message}"
        return text + (f" (allowed: {self.allowed})" if self.allowed else "")


@dataclass(frozen=True)
class Production:
    """The programme and episode every cue belongs to, and how its music is delivered and cleared."""

    title: str
    episode: str
    episode_title: str | None = None
    air_date: str | None = None
    territory: tuple[str, ...] = ()
    company: str | None = None
    publisher: str | None = None
    policy: str = DEFAULT_POLICY
    preset: str = DEFAULT_PRESET
    frame_rate: float = DEFAULT_FRAME_RATE
    engine: str = DEFAULT_ENGINE
    model: str | None = None


@dataclass(frozen=True)
class Cue:
    """One validated cue: its cue-sheet facts and one resolved :class:`CueSpec` per variant.

    ``files`` are the output file names (no folder), one per variant, safe on any file system.
    """

    id: str
    kind: str
    usage: str
    duration: float
    line: int | None
    specs: tuple[CueSpec, ...]
    files: tuple[str, ...]
    title: str | None = None
    timecode_in: str | None = None

    @property
    def engine(self) -> str:
        return self.specs[0].engine

    @property
    def model(self) -> str | None:
        return self.specs[0].model

    @property
    def seed(self) -> int:
        return self.specs[0].seed


@dataclass(frozen=True)
class CueList:
    """A validated episode cue list."""

    source: Path
    production: Production
    cues: tuple[Cue, ...]

    def select(self, only: Iterable[str] | None) -> "CueList":
        """The same list restricted to the cue ids in ``only`` (all cues when empty or None).

        Raises:
            ParameterError: an id that is not in the list.
        """
        wanted = [c.strip() for item in (only or ()) for c in str(item).split(",") if c.strip()]
        if not wanted:
            return self
        ids = {c.id for c in self.cues}
        unknown = [c for c in wanted if c not in ids]
        if unknown:
            raise ParameterError(f"--only names cue(s) not in {self.source.name}: "
                                 f"{', '.join(unknown)}; cues are {', '.join(c.id for c in self.cues)}")
        return replace(self, cues=tuple(c for c in self.cues if c.id in set(wanted)))


# --- file names and seeds ------------------------------------------------------------------

def output_names(episode: str, cue_id: str, variants: int = 1, *, fmt: str = AUDIO_FORMAT) -> list[str]:
    """File names for a cue: ``<episode>_<cue id>.wav``, or ``...-v1.wav ...`` for variants."""
    stem = f"{safe_name_part(episode)}_{safe_name_part(cue_id)}"
    if variants == 1:
        return [f"{stem}.{fmt}"]
    return [f"{stem}-v{i + 1}.{fmt}" for i in range(variants)]


def derive_seed(title: str, episode: str, cue_id: str) -> int:
    """A seed that depends only on the production title, episode and cue id (stable across runs)."""
    digest = hashlib.sha256("\x1f".join((title, episode, cue_id)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 2**31


# --- reading -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Value:
    """A raw field value and where it was written. ``raw`` is the text as typed (None when the
    value is not a plain scalar); ``value`` is what YAML made of it (a list for sequences)."""

    value: Any
    raw: str | None
    line: int | None


@dataclass
class _RawCue:
    line: int | None
    fields: dict[str, _Value] = field(default_factory=dict)


@dataclass
class _RawList:
    production: dict[str, _Value]
    production_line: int | None
    cues: list[_RawCue]


class _Collector:
    """Gathers problems for one file, in the order they are found."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, line, cue, field_name, message, allowed=None) -> None:
        self.problems.append(Problem(self.file, line, cue, field_name, message, allowed))


def _read_yaml(text: str, problems: _Collector) -> _RawList | None:
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problems.add(mark.line + 1 if mark else None, None, None,
                         f"not valid YAML: {getattr(exc, 'problem', None) or exc}")
            return None
        if root is None or not isinstance(root, yaml.MappingNode):
            problems.add(root.start_mark.line + 1 if root is not None else None, None, None,
                         "the file must be a mapping with 'production' and 'cues'")
            return None
        top = _mapping(loader, root, problems, None, allowed=("production", "cues"), where="top level")
        raw = _RawList(production={}, production_line=None, cues=[])
        prod_node = top.get("production")
        if prod_node is None:
            problems.add(None, None, "production", "missing", "a 'production:' mapping")
        elif not isinstance(prod_node, yaml.MappingNode):
            problems.add(prod_node.start_mark.line + 1, None, "production", "must be a mapping of "
                         "production fields", ", ".join(PRODUCTION_FIELDS))
        else:
            raw.production_line = prod_node.start_mark.line + 1
            fields = _mapping(loader, prod_node, problems, None, allowed=None, where="production")
            raw.production = {k: _value(loader, v) for k, v in fields.items()}
        cues_node = top.get("cues")
        if cues_node is None:
            problems.add(None, None, "cues", "missing", "a 'cues:' list")
        elif not isinstance(cues_node, yaml.SequenceNode):
            problems.add(cues_node.start_mark.line + 1, None, "cues", "must be a list of cues")
        else:
            for item in cues_node.value:
                line = item.start_mark.line + 1
                if not isinstance(item, yaml.MappingNode):
                    problems.add(line, None, None, "a cue must be a mapping of cue fields",
                                 ", ".join(CUE_FIELDS))
                    continue
                cue_id = _peek_id(item)
                fields = _mapping(loader, item, problems, cue_id, allowed=None, where="cue")
                raw.cues.append(_RawCue(line, {k: _value(loader, v) for k, v in fields.items()}))
        return raw
    finally:
        loader.dispose()


def _peek_id(node) -> str | None:
    for key, value in node.value:
        if getattr(key, "value", None) == "id" and hasattr(value, "value") and isinstance(value.value, str):
            return value.value
    return None


def _mapping(loader, node, problems: _Collector, cue_id, *, allowed, where: str) -> dict:
    """A mapping node's entries by key name, reporting non-text and duplicate keys."""
    import yaml

    out: dict = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            problems.add(line, cue_id, None, f"a key in the {where} is not a plain name")
            continue
        name = key_node.value
        if name in out:
            problems.add(line, cue_id, name, f"given twice in the same {where}", "each key once")
            continue
        if allowed is not None and name not in allowed:
            problems.add(line, cue_id, name, f"unknown key at the {where}", ", ".join(allowed))
            continue
        out[name] = value_node
    return out


def _value(loader, node) -> _Value:
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:null":
            return _Value(None, None, line)
        try:
            return _Value(loader.construct_object(node, deep=True), node.value, line)
        except (ValueError, yaml.YAMLError):
            # YAML's own reading failed (2027-02-30 as a timestamp): judge the text as typed.
            return _Value(node.value, node.value, line)
    try:
        return _Value(loader.construct_object(node, deep=True), None, line)
    except (ValueError, yaml.YAMLError):
        return _Value([getattr(n, "value", None) for n in node.value]
                      if isinstance(node, yaml.SequenceNode) else {}, None, line)


# A header-block line "# key: value"; other comment lines are free text.
_HEADER_RE = re.compile(r"^#\s*([A-Za-z_]+)\s*:(.*)$")


def _read_csv(text: str, problems: _Collector) -> _RawList | None:
    """One cue per row under a header row; ``# key: value`` lines before it give production fields."""
    lines = text.splitlines(keepends=True)
    raw = _RawList(production={}, production_line=None, cues=[])
    index = 0
    while index < len(lines) and (lines[index].lstrip().startswith("#") or not lines[index].strip()):
        m = _HEADER_RE.match(lines[index].strip())
        if m:
            key, value = m.group(1), m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1].strip()
            if key in raw.production:
                problems.add(index + 1, None, key, "given twice in the header block", "each key once")
            else:
                raw.production[key] = _Value(value if value else None, value or None, index + 1)
                raw.production_line = raw.production_line or index + 1
        index += 1
    offset = index
    reader = csv.reader(io.StringIO("".join(lines[offset:])))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.add(offset + 1, None, None, f"not valid CSV: {exc}")
        return None
    if header is None:
        problems.add(offset + 1 if lines else None, None, None, "no header row",
                     "a first row naming the cue columns: " + ", ".join(CUE_FIELDS))
        return raw
    columns = [h.strip() for h in header]
    header_line = offset + reader.line_num
    for i, name in enumerate(columns):
        if name in columns[:i]:
            problems.add(header_line, None, name, "column given twice", "each column once")
    last_line = reader.line_num
    try:
        for row in reader:
            start = offset + last_line + 1
            last_line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            cue = _RawCue(start)
            for i, cell in enumerate(row):
                if i >= len(columns):
                    problems.add(start, None, None, f"row has {len(row)} cells but the header names "
                                 f"{len(columns)} columns")
                    break
                cell = cell.strip()
                if cell and columns[i] not in cue.fields:
                    cue.fields[columns[i]] = _Value(cell, cell, start)
            raw.cues.append(cue)
    except csv.Error as exc:
        problems.add(offset + reader.line_num, None, None, f"not valid CSV: {exc}")
    return raw


# --- field coercion ------------------------------------------------------------------------

class _Bad(Exception):
    """A field's value is wrong: ``message`` says how, ``allowed`` what would be right."""

    def __init__(self, message: str, allowed: str | None = None):
        super().__init__(message)
        self.message, self.allowed = message, allowed


def _text(v: _Value) -> str:
    if isinstance(v.value, (list, dict)):
        raise _Bad("must be a single value, not a list or mapping")
    text = v.raw if v.raw is not None else str(v.value)
    if not text.strip():
        raise _Bad("is empty")
    return text.strip()


def _number(v: _Value, what: str = "a number") -> float:
    if isinstance(v.value, bool) or isinstance(v.value, (list, dict)):
        raise _Bad(f"{v.raw or v.value!r} is not {what}")
    if isinstance(v.value, (int, float)) and (v.raw is None or ":" not in v.raw):
        return float(v.value)
    try:
        return float(str(v.raw if v.raw is not None else v.value).strip())
    except ValueError:
        raise _Bad(f"{v.raw or v.value!r} is not {what}") from None


def _integer(v: _Value, what: str = "a whole number") -> int:
    number = _number(v, what)
    if number != int(number):
        raise _Bad(f"{v.raw or v.value!r} is not {what}")
    return int(number)


def _duration(v: _Value) -> float:
    """Seconds as a number, or ``M:SS`` / ``H:MM:SS`` text (YAML would read those as base 60)."""
    text = v.raw if v.raw is not None else str(v.value)
    if ":" in text:
        parts = text.strip().split(":")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise _Bad(f"{text!r} is not a duration", "seconds (90), M:SS (1:30) or H:MM:SS") from None
        if len(values) > 3 or any(x < 0 for x in values) or any(x >= 60 for x in values[1:]):
            raise _Bad(f"{text!r} is not a duration", "seconds (90), M:SS (1:30) or H:MM:SS")
        seconds = 0.0
        for x in values:
            seconds = seconds * 60 + x
        return seconds
    return _number(v, "a duration")


def _boolean(v: _Value) -> bool:
    if isinstance(v.value, bool):
        return v.value
    text = str(v.raw if v.raw is not None else v.value).strip().lower()
    if text in ("true", "yes", "y", "1", "on"):
        return True
    if text in ("false", "no", "n", "0", "off"):
        return False
    raise _Bad(f"{v.raw or v.value!r} is not true or false", "true or false")


def _air_date(v: _Value) -> str:
    if isinstance(v.value, datetime):
        return v.value.date().isoformat()
    if isinstance(v.value, date):
        return v.value.isoformat()
    try:
        return date.fromisoformat(_text(v)).isoformat()
    except ValueError:
        raise _Bad(f"{v.raw or v.value!r} is not a date", "YYYY-MM-DD, e.g. 2027-03-14") from None


def _territories(v: _Value) -> tuple[str, ...]:
    from soundscape.rights.licenses import normalize_territory

    items = v.value if isinstance(v.value, list) else re.split(r"[\s,;]+", _text(v))
    out: list[str] = []
    for item in items:
        if item is None or not str(item).strip():
            continue
        try:
            code = normalize_territory(str(item))
        except SoundscapeError as exc:
            raise _Bad(str(exc)) from None
        if code not in out:
            out.append(code)
    if not out:
        raise _Bad("is empty", "ISO 3166-1 alpha-2 codes such as [FR, BE, CH], or WORLD")
    return tuple(out)


def _choice(v: _Value, choices: Collection[str], what: str, *, upper: bool = False) -> str:
    text = _text(v)
    text = text.upper() if upper else text
    if text not in choices:
        raise _Bad(f"unknown {what} {text!r}", ", ".join(choices))
    return text


def _parsed_text(parser, v: _Value) -> str:
    """The field's text once ``parser`` (a soundscape.spec parser) accepts it."""
    text = _text(v)
    try:
        parser(text)
    except ParameterError as exc:
        raise _Bad(str(exc)) from None
    return text


# --- validation ----------------------------------------------------------------------------

def known_presets() -> list[str]:
    """Mastering preset names the audio module offers."""
    from soundscape.audio import master

    return list(master.PRESETS)


def known_policies(workspace=None) -> list[str]:
    """Clearance policy names: the project's licenses/policies plus the workspace's own."""
    from soundscape.rights.policy import list_policies

    return list_policies(workspace_home=Path(workspace.home) if workspace is not None else None)


def load_cuelist(path: str | Path, *, overrides: Mapping[str, Any] | None = None,
                 registered_models: Mapping[str, str | None] | Collection[str] | None = None,
                 policies: Collection[str] | None = None,
                 presets: Collection[str] | None = None) -> CueList:
    """Read and validate a YAML or CSV cue list as a whole.

    Args:
        path: a ``.yaml``/``.yml`` or ``.csv`` file.
        overrides: production fields given on the command line; they win over the file.
        registered_models: the models registered in the ledger, as names or as
            :func:`soundscape.models.usable_models` gives them (name -> why it cannot be used, or None); a musicgen
            cue whose model is missing or unusable is a problem. None skips that check.
        policies: clearance policy names accepted (default :func:`known_policies`).
        presets: mastering preset names accepted (default :func:`known_presets`).

    Returns:
        The validated :class:`CueList`, cues in file order.

    Raises:
        CueListError: every problem found, one per line (a ParameterError: exit code 2).
    """
    path = Path(path)
    problems = _Collector(path.name)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ParameterError(f"cue list {path} does not exist") from None
    except IsADirectoryError:
        raise ParameterError(f"cue list {path} is a folder, not a file") from None
    except UnicodeDecodeError:
        raise ParameterError(f"cue list {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ParameterError(f"cannot read cue list {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        raw = _read_yaml(text, problems)
    elif suffix == ".csv":
        raw = _read_csv(text, problems)
    else:
        raise ParameterError(f"cue list {path}: unknown format {suffix or '(no extension)'}; "
                             f"use .yaml, .yml or .csv")
    if raw is None:
        raise CueListError(problems.problems)
    for name, value in (overrides or {}).items():
        if value is not None:
            raw.production[name] = _Value(value, value if isinstance(value, str) else None, None)
    production = _validate_production(raw, problems, policies=policies, presets=presets)
    cues = _validate_cues(raw, production, problems, registered_models=registered_models)
    if problems.problems:
        # File order (stable, so a cue's problems keep their field order); the command line last.
        raise CueListError(sorted(problems.problems, key=lambda p: p.line or 10**9))
    if not cues:
        raise CueListError([Problem(path.name, None, None, "cues", "the list has no cues",
                                    "at least one cue")])
    return CueList(source=path, production=production, cues=tuple(cues))


def _validate_production(raw: _RawList, problems: _Collector, *, policies, presets) -> Production | None:
    fields = raw.production
    values: dict[str, Any] = {}
    line = raw.production_line
    for name, v in fields.items():
        if name not in PRODUCTION_FIELDS:
            problems.add(v.line, None, f"production.{name}", "unknown key", ", ".join(PRODUCTION_FIELDS))
    for name in REQUIRED_PRODUCTION:
        if name not in fields or fields[name].value is None:
            problems.add(line, None, f"production.{name}", "missing", "a non-empty text")
    checks = {
        "title": _text, "episode": _text, "episode_title": _text, "company": _text,
        "publisher": _text, "model": _text, "air_date": _air_date, "territory": _territories,
        "frame_rate": _frame_rate,
        "engine": lambda v: _choice(v, _engines(), "engine"),
        "policy": lambda v: _choice(v, policies if policies is not None else known_policies(), "policy"),
        "preset": lambda v: _choice(v, presets if presets is not None else known_presets(), "preset"),
    }
    ok = True
    for name, check in checks.items():
        v = fields.get(name)
        if v is None or v.value is None:
            continue
        try:
            values[name] = check(v)
        except _Bad as bad:
            ok = False
            problems.add(v.line, None, f"production.{name}", bad.message, bad.allowed)
    if not ok or any(n not in values for n in REQUIRED_PRODUCTION):
        return None
    return Production(**values)


def _engines() -> list[str]:
    from soundscape.engines import ENGINES

    return list(ENGINES)


def _frame_rate(v: _Value) -> float:
    rate = _number(v, "a frame rate")
    if rate not in FRAME_RATES:
        raise _Bad(f"{rate:g} fps is not a broadcast frame rate", ", ".join(f"{r:g}" for r in FRAME_RATES))
    return rate


def _validate_cues(raw: _RawList, production: Production | None, problems: _Collector, *,
                   registered_models) -> list[Cue]:
    cues: list[Cue] = []
    first_line: dict[str, int | None] = {}
    names_seen: dict[str, str] = {}
    frame_rate = production.frame_rate if production else DEFAULT_FRAME_RATE
    for raw_cue in raw.cues:
        cue = _validate_cue(raw_cue, production, frame_rate, problems, registered_models)
        cue_id = _cue_label(raw_cue)
        if cue_id is not None:
            if cue_id in first_line:
                problems.add(raw_cue.line, cue_id, "id", f"duplicate cue id (first used on line "
                             f"{first_line[cue_id]})", "each cue id once")
                continue
            first_line[cue_id] = raw_cue.line
        if cue is None:
            continue
        clash = [f for f in cue.files if f.lower() in names_seen]
        if clash:
            problems.add(raw_cue.line, cue.id, "id", f"file name {clash[0]} is also the file of cue "
                         f"{names_seen[clash[0].lower()]} (names compare without case, as on "
                         f"macOS and Windows)", "cue ids that stay distinct as file names")
            continue
        names_seen.update({f.lower(): cue.id for f in cue.files})
        cues.append(cue)
    return cues


def _cue_label(raw_cue: _RawCue) -> str | None:
    v = raw_cue.fields.get("id")
    if v is None or v.value is None or isinstance(v.value, (list, dict)):
        return None
    return (v.raw if v.raw is not None else str(v.value)).strip() or None


def _validate_cue(raw_cue: _RawCue, production: Production | None, frame_rate: float,
                  problems: _Collector, registered_models) -> Cue | None:
    fields = raw_cue.fields
    label = _cue_label(raw_cue)
    before = len(problems.problems)

    def bad(name: str, message: str, allowed: str | None = None) -> None:
        v = fields.get(name)
        problems.add(v.line if v is not None and v.line else raw_cue.line, label, name, message, allowed)

    for name in fields:
        if name not in CUE_FIELDS:
            bad(name, "unknown key", ", ".join(CUE_FIELDS))
    present = {k: v for k, v in fields.items() if k in CUE_FIELDS and v.value is not None}
    for name in REQUIRED_CUE:
        if name not in present:
            bad(name, "missing", _REQUIRED_HINT[name])
    if "prompt" not in present and "mood" not in present:
        bad("prompt", "missing: give a prompt, a mood or both", "prompt: a description; mood: "
            + ", ".join(spec_mod.MOODS))

    values: dict[str, Any] = {}
    coerce = {
        "id": _text, "title": _text, "prompt": _text,
        "kind": lambda v: _choice(v, spec_mod.KINDS, "kind"),
        "usage": lambda v: _choice(v, USAGE_CODES, "usage code", upper=True),
        "duration": _duration,
        "bpm": lambda v: _checked(spec_mod.check_bpm, _number(v, "a tempo")),
        "key": lambda v: _parsed_text(spec_mod.parse_key, v),
        "mood": lambda v: _parsed_text(spec_mod.parse_mood, v),
        "intensity": lambda v: _parsed_text(spec_mod.parse_intensity, v),
        "motif": lambda v: _parsed_text(spec_mod.parse_motif, v),
        "loop": _boolean,
        "seed": _seed,
        "engine": lambda v: _choice(v, _engines(), "engine"),
        "model": _text,
        "variants": _variants,
        "timecode_in": lambda v: _timecode(v, frame_rate),
    }
    for name, v in present.items():
        if name not in coerce:
            continue
        try:
            values[name] = coerce[name](v)
        except _Bad as exc:
            bad(name, exc.message, exc.allowed)

    kind = values.get("kind")
    if kind and "duration" in values:
        try:
            values["duration"] = spec_mod.check_duration(kind, values["duration"])
        except ParameterError as exc:
            bad("duration", str(exc))
            values.pop("duration")
    if values.get("loop") and kind and kind != "bed":
        bad("loop", f"a {kind} has an ending and cannot loop", "loop: true on beds only")
    if values.get("variants", 1) > 1 and kind == "bed":
        bad("variants", "variants are arrangements of a jingle or sting motif", "variants on jingles and stings")

    engine = values.get("engine") or (production.engine if production else DEFAULT_ENGINE)
    model = values.get("model")
    if engine == "musicgen":
        model = model or (production.model if production else None)
        if not model:
            bad("model", "a musicgen cue needs a model and none is given",
                "model on the cue or production.model: a name from 'soundscape model list'")
        elif registered_models is not None and model not in registered_models:
            usable = [name for name in sorted(registered_models)
                      if not isinstance(registered_models, Mapping) or registered_models[name] is None]
            bad("model", f"model {model!r} is not registered in the ledger",
                ", ".join(usable) or "none registered yet: 'soundscape model add'")
        elif isinstance(registered_models, Mapping) and registered_models[model] is not None:
            bad("model", f"model {model!r} cannot be used: {registered_models[model]}")
    elif "model" in values:
        bad("model", f"model applies to musicgen cues; this cue uses the {engine} engine",
            "engine: musicgen with a model, or no model")
        model = None
    else:
        model = None

    if len(problems.problems) > before or production is None:
        return None
    cue_id = values["id"]
    seed = values.get("seed")
    if seed is None:
        seed = derive_seed(production.title, production.episode, cue_id)
    prompt = values.get("prompt") or f"{values['mood']} {kind}"
    count = values.get("variants", 1)
    facts = cue_facts(production, title=values.get("title"), usage=values["usage"],
                      timecode_in=values.get("timecode_in"))
    specs = []
    try:
        for variant in range(count):
            specs.append(spec_mod.make_spec(prompt, kind=kind, duration=values["duration"], seed=seed,
                                    key=values.get("key"), bpm=values.get("bpm"),
                                    mood=values.get("mood"), intensity=values.get("intensity"),
                                    motif=values.get("motif"), loop=values.get("loop", False),
                                    variant=variant, engine=engine, model=model, cue=facts,
                                    production=production.title, episode=production.episode,
                                    cue_id=cue_id))
    except ParameterError as exc:
        bad("prompt", str(exc))
        return None
    return Cue(id=cue_id, kind=kind, usage=values["usage"], duration=values["duration"],
               line=raw_cue.line, specs=tuple(specs),
               files=tuple(output_names(production.episode, cue_id, count)),
               title=values.get("title"), timecode_in=values.get("timecode_in"))


def cue_facts(production: Production, *, title: str | None, usage: str,
              timecode_in: str | None) -> CueFacts:
    """The cue-sheet facts a cue's output carries (docs/reports.md).

    Production title, episode, air date and territories are fields of the output record itself;
    the rest of what a cue sheet prints travels here. Engines ignore it.
    """
    return CueFacts(title=title, usage=usage, timecode_in=timecode_in,
                    episode_title=production.episode_title, company=production.company,
                    publisher=production.publisher, frame_rate=production.frame_rate,
                    policy=production.policy)


_REQUIRED_HINT = {
    "id": "the cue number, e.g. 1M1",
    "kind": ", ".join(spec_mod.KINDS),
    "usage": ", ".join(USAGE_CODES),
    "duration": "seconds, e.g. 30",
}


def _checked(func, value):
    try:
        return func(value)
    except ParameterError as exc:
        raise _Bad(str(exc)) from None


def _seed(v: _Value) -> int:
    seed = _integer(v, "a whole number")
    if not 0 <= seed < 2**63:
        raise _Bad(f"seed {seed} is out of range", "0 to 2**63-1")
    return seed


def _variants(v: _Value) -> int:
    count = _integer(v, "a whole number")
    if not 1 <= count <= MAX_VARIANTS:
        raise _Bad(f"{count} variants is out of range", f"1 to {MAX_VARIANTS}")
    return count


def _timecode(v: _Value, frame_rate: float) -> str:
    text = _text(v)
    try:
        parse_timecode(text, frame_rate)
    except ParameterError as exc:
        allowed = f"HH:MM:SS:FF with FF below {round(frame_rate)} ({frame_rate:g} fps)"
        raise _Bad(str(exc), allowed) from None
    return text
