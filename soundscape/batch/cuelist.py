"""Cue lists: an episode's music read from YAML or CSV and validated as a whole before anything renders.

A cue list names a production (title, episode, air date, territories, policy, preset...) and its
cues (id, kind, cue-sheet usage, timecode, duration, prompt or mood, musical controls, engine).
:func:`load_cuelist` reads either format (:mod:`soundscape.batch.cuefile`), checks every field of
every cue (:mod:`soundscape.batch.cuefields`) and raises one :class:`CueListError` listing every
problem (file, line, cue, field, what is wrong, what is allowed), so a supervisor fixes the whole
file in one pass and nothing renders from a bad list.

The keys are a contract that cue lists already written rely on; see ``examples/README.md`` for
both formats.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

from soundscape import spec as spec_mod
from soundscape.audio.master import PRESETS
from soundscape.batch import cuefields as f
from soundscape.batch.cuefields import CUE_FIELDS, PRODUCTION_FIELDS, Bad, Value
from soundscape.batch.cuefile import Collector, Problem, RawCue, RawList, read_csv, read_yaml
from soundscape.config import Workspace
from soundscape.engines import ENGINES, engine_info
from soundscape.errors import ParameterError
from soundscape.production import (DEFAULT_FRAME_RATE, DEFAULT_POLICY, DEFAULT_PRESET, USAGE_CODES,
                                   CueFacts, safe_name_part)
from soundscape.rights.policy import list_policies
from soundscape.spec import CueSpec
REQUIRED_PRODUCTION: tuple[str, ...] = ("title", "episode")
REQUIRED_CUE: tuple[str, ...] = ("id", "kind", "usage", "duration")

DEFAULT_ENGINE = "composer"
AUDIO_FORMAT = "wav"
# A season of cues is tens of kilobytes; anything past this is not a cue list.
MAX_CUE_LIST_BYTES = 8 * 1024 * 1024


class CueListError(ParameterError):
    """A cue list with problems; ``problems`` holds one line per problem, in file order."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


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
    # Filing facts (docs/reports.md, "Filing with a society"); all optional.
    alternate_titles: tuple[str, ...] = ()
    production_number: str | None = None
    programme_length: float | None = None
    production_type: str | None = None
    broadcaster: str | None = None
    country_of_origin: str | None = None
    year_of_origin: int | None = None
    prepared_by: str | None = None
    revision: int | None = None

    def filing(self) -> dict:
        """The filing facts that are set, as recorded with each cue."""
        values = {name: getattr(self, name) for name in f.FILING_FIELDS}
        values["alternate_titles"] = list(self.alternate_titles)
        return {k: v for k, v in values.items() if v not in (None, [], "")}


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


# --- validation ----------------------------------------------------------------------------

def known_presets() -> list[str]:
    """Mastering preset names the audio module offers."""
    return list(PRESETS)


def known_policies(workspace: Workspace | None = None) -> list[str]:
    """Clearance policy names: the project's licenses/policies plus the workspace's own."""
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
    problems = Collector(path.name)
    try:
        if path.is_file() and path.stat().st_size > MAX_CUE_LIST_BYTES:
            raise ParameterError(f"cue list {path} is {path.stat().st_size:,} bytes; a cue list "
                                 f"is at most {MAX_CUE_LIST_BYTES:,}")
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
        raw = read_yaml(text, problems)
    elif suffix == ".csv":
        raw = read_csv(text, problems)
    else:
        raise ParameterError(f"cue list {path}: unknown format {suffix or '(no extension)'}; "
                             f"use .yaml, .yml or .csv")
    if raw is None:
        raise CueListError(problems.problems)
    for name, value in (overrides or {}).items():
        if value is not None:
            raw.production[name] = Value(value, value if isinstance(value, str) else None, None)
    production = _validate_production(raw, problems, policies=policies, presets=presets)
    cues = _validate_cues(raw, production, problems, registered_models=registered_models)
    if problems.problems:
        # File order (stable, so a cue's problems keep their field order); the command line last.
        raise CueListError(sorted(problems.problems, key=lambda p: p.line or 10**9))
    if not cues:
        raise CueListError([Problem(path.name, None, None, "cues", "the list has no cues",
                                    "at least one cue")])
    return CueList(source=path, production=production, cues=tuple(cues))


def _validate_production(raw: RawList, problems: Collector, *, policies, presets) -> Production | None:
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
        "title": f.as_text, "episode": f.as_text, "episode_title": f.as_text,
        "company": f.as_text, "publisher": f.as_text, "model": f.as_text,
        "air_date": f.as_air_date, "territory": f.as_territories, "frame_rate": f.as_frame_rate,
        "engine": lambda v: f.as_choice(v, list(ENGINES), "engine"),
        "policy": lambda v: f.as_choice(v, policies if policies is not None else known_policies(),
                                        "policy"),
        "alternate_titles": f.as_text_list, "production_number": f.as_text,
        "programme_length": f.as_duration,
        "production_type": lambda v: f.as_choice(v, f.PRODUCTION_TYPES, "production type"),
        "broadcaster": f.as_text, "country_of_origin": f.as_country, "year_of_origin": f.as_year,
        "prepared_by": f.as_text, "revision": lambda v: int(f.as_integer(v, "a revision number")),
        "preset": lambda v: f.as_choice(v, presets if presets is not None else known_presets(),
                                        "preset"),
    }
    ok = True
    for name, check in checks.items():
        v = fields.get(name)
        if v is None or v.value is None:
            continue
        try:
            values[name] = check(v)
        except Bad as bad:
            ok = False
            problems.add(v.line, None, f"production.{name}", bad.message, bad.allowed)
    if not ok or any(n not in values for n in REQUIRED_PRODUCTION):
        return None
    return Production(**values)


def _validate_cues(raw: RawList, production: Production | None, problems: Collector, *,
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
        clash = [name for name in cue.files if name.lower() in names_seen]
        if clash:
            problems.add(raw_cue.line, cue.id, "id", f"file name {clash[0]} is also the file of cue "
                         f"{names_seen[clash[0].lower()]} (names compare without case, as on "
                         f"macOS and Windows)", "cue ids that stay distinct as file names")
            continue
        names_seen.update({name.lower(): cue.id for name in cue.files})
        cues.append(cue)
    return cues


def _cue_label(raw_cue: RawCue) -> str | None:
    v = raw_cue.fields.get("id")
    if v is None or v.value is None or isinstance(v.value, (list, dict)):
        return None
    return (v.raw if v.raw is not None else str(v.value)).strip() or None


class _CueProblems:
    """Problems of one cue, each on the line of the field it names (else the cue's own line)."""

    def __init__(self, raw_cue: RawCue, problems: Collector):
        self.raw_cue, self.problems = raw_cue, problems
        self.label = _cue_label(raw_cue)
        self.before = len(problems.problems)

    def __call__(self, name: str, message: str, allowed: str | None = None) -> None:
        v = self.raw_cue.fields.get(name)
        line = v.line if v is not None and v.line else self.raw_cue.line
        self.problems.add(line, self.label, name, message, allowed)

    @property
    def any(self) -> bool:
        return len(self.problems.problems) > self.before


def _validate_cue(raw_cue: RawCue, production: Production | None, frame_rate: float,
                  problems: Collector, registered_models) -> Cue | None:
    """One cue checked field by field, then as a whole; None when anything is wrong."""
    bad = _CueProblems(raw_cue, problems)
    values = _cue_values(raw_cue.fields, frame_rate, bad)
    _check_cue_rules(values, bad)
    engine, model = _cue_engine(values, production, registered_models, bad)
    if bad.any or production is None:
        return None
    return _make_cue(raw_cue, values, production, engine, model, bad)


def _cue_values(fields: dict[str, Value], frame_rate: float, bad: _CueProblems) -> dict[str, Any]:
    """Every known, present field coerced to its value; unknown and missing keys reported."""
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
    coerce = {
        "id": f.as_text, "title": f.as_text, "prompt": f.as_prompt,
        "kind": lambda v: f.as_choice(v, spec_mod.KINDS, "kind"),
        "usage": lambda v: f.as_choice(v, USAGE_CODES, "usage code", upper=True),
        "duration": f.as_duration,
        "bpm": lambda v: f.checked(spec_mod.check_bpm, f.as_number(v, "a tempo")),
        "key": lambda v: f.as_parsed_text(spec_mod.parse_key, v),
        "mood": lambda v: f.as_parsed_text(spec_mod.parse_mood, v),
        "intensity": lambda v: f.as_parsed_text(spec_mod.parse_intensity, v),
        "motif": lambda v: f.as_parsed_text(spec_mod.parse_motif, v),
        "loop": f.as_boolean,
        "seed": f.as_seed,
        "engine": lambda v: f.as_choice(v, list(ENGINES), "engine"),
        "model": f.as_text,
        "variants": f.as_variants,
        "timecode_in": lambda v: f.as_timecode(v, frame_rate),
        "contributors": f.as_contributors,
    }
    values: dict[str, Any] = {}
    for name, v in present.items():
        if name not in coerce:
            continue
        try:
            values[name] = coerce[name](v)
        except Bad as exc:
            bad(name, exc.message, exc.allowed)
    return values


def _check_cue_rules(values: dict[str, Any], bad: _CueProblems) -> None:
    """The rules between fields: the kind's duration limits, loops on beds, variants off beds."""
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
        bad("variants", "variants are arrangements of a jingle or sting motif",
            "variants on jingles and stings")


def _cue_engine(values: dict[str, Any], production: Production | None, registered_models,
                bad: _CueProblems) -> tuple[str, str | None]:
    """The cue's engine and model; a model only for engines that render with one, and then
    one the ledger has and that may be used."""
    engine = values.get("engine") or (production.engine if production else DEFAULT_ENGINE)
    model = values.get("model")
    if engine_info(engine).needs_model:
        model = model or (production.model if production else None)
        if not model:
            bad("model", f"a {engine} cue needs a model and none is given",
                "model on the cue or production.model: a name from 'soundscape model list'")
        elif registered_models is not None and model not in registered_models:
            usable = [name for name in sorted(registered_models)
                      if not isinstance(registered_models, Mapping) or registered_models[name] is None]
            bad("model", f"model {model!r} is not registered in the ledger",
                ", ".join(usable) or "none registered yet: 'soundscape model add'")
        elif isinstance(registered_models, Mapping) and registered_models[model] is not None:
            bad("model", f"model {model!r} cannot be used: {registered_models[model]}")
        return engine, model
    if "model" in values:
        with_models = " or ".join(name for name, info in ENGINES.items() if info.needs_model)
        bad("model", f"model applies to {with_models} cues; this cue uses the {engine} engine",
            f"engine: {with_models} with a model, or no model")
    return engine, None


def _make_cue(raw_cue: RawCue, values: dict[str, Any], production: Production, engine: str,
              model: str | None, bad: _CueProblems) -> Cue | None:
    """The cue with one spec per variant; the seed from the cue, else from its ids."""
    cue_id, kind = values["id"], values["kind"]
    seed = values.get("seed")
    if seed is None:
        seed = derive_seed(production.title, production.episode, cue_id)
    prompt = values.get("prompt") or f"{values['mood']} {kind}"
    count = values.get("variants", 1)
    facts = cue_facts(production, title=values.get("title"), usage=values["usage"],
                      timecode_in=values.get("timecode_in"), contributors=values.get("contributors"))
    try:
        specs = [spec_mod.make_spec(prompt, kind=kind, duration=values["duration"], seed=seed,
                                    key=values.get("key"), bpm=values.get("bpm"),
                                    mood=values.get("mood"), intensity=values.get("intensity"),
                                    motif=values.get("motif"), loop=values.get("loop", False),
                                    variant=variant, engine=engine, model=model, cue=facts,
                                    production=production.title, episode=production.episode,
                                    cue_id=cue_id)
                 for variant in range(count)]
    except ParameterError as exc:
        bad("prompt", str(exc))
        return None
    return Cue(id=cue_id, kind=kind, usage=values["usage"], duration=values["duration"],
               line=raw_cue.line, specs=tuple(specs),
               files=tuple(output_names(production.episode, cue_id, count)),
               title=values.get("title"), timecode_in=values.get("timecode_in"))


def cue_facts(production: Production, *, title: str | None, usage: str,
              timecode_in: str | None, contributors: tuple[dict, ...] | None = None) -> CueFacts:
    """The cue-sheet facts a cue's output carries (docs/reports.md).

    Production title, episode, air date and territories are fields of the output record itself;
    the rest of what a cue sheet prints travels here. Engines ignore it.
    """
    return CueFacts(title=title, usage=usage, timecode_in=timecode_in,
                    episode_title=production.episode_title, company=production.company,
                    publisher=production.publisher, frame_rate=production.frame_rate,
                    policy=production.policy, filing=production.filing() or None,
                    contributors=tuple(contributors) if contributors else None)


_REQUIRED_HINT = {
    "id": "the cue number, e.g. 1M1",
    "kind": ", ".join(spec_mod.KINDS),
    "usage": ", ".join(USAGE_CODES),
    "duration": "seconds, e.g. 30",
}
