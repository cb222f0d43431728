"""Cue-list fields: the keys a cue list may use, and each raw value coerced into what it means.

Each function takes a :class:`Value` (as :mod:`soundscape.batch.cuefile` reads it) and returns the value, or raises
:class:`Bad` saying what is wrong and what is allowed; the cue list turns that into a problem
line. YAML's own readings (base-60 numbers, dates) are judged by the text as typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Collection

from soundscape.errors import ParameterError, SoundscapeError
from soundscape.production import (CONTRIBUTOR_ROLES, FRAME_RATES, MAX_PROMPT_CHARS, MAX_TITLE_CHARS,
                                   PRODUCTION_TYPES, PUBLISHER_ROLES, parse_timecode)
from soundscape.rights.licenses import normalize_territory
from soundscape.spec import MAX_VARIANTS

PRODUCTION_FIELDS: tuple[str, ...] = (
    "title", "episode", "episode_title", "air_date", "territory", "company", "publisher",
    "policy", "preset", "frame_rate", "engine", "model",
    # For filing with a society (reports: --format society)
    "alternate_titles", "production_number", "programme_length", "production_type", "broadcaster",
    "country_of_origin", "year_of_origin", "prepared_by", "revision",
)
# Production fields that travel to the cue sheet's society export (CueFacts.filing).
FILING_FIELDS: tuple[str, ...] = (
    "alternate_titles", "production_number", "programme_length", "production_type", "broadcaster",
    "country_of_origin", "year_of_origin", "prepared_by", "revision",
)
CUE_FIELDS: tuple[str, ...] = (
    "id", "title", "kind", "usage", "timecode_in", "duration", "prompt", "key", "bpm", "mood",
    "intensity", "motif", "loop", "seed", "engine", "model", "variants", "contributors",
)


@dataclass(frozen=True)
class Value:
    """A raw field value and where it was written. ``raw`` is the text as typed (None when the
    value is not a plain scalar); ``value`` is what YAML made of it (a list for sequences)."""

    value: Any
    raw: str | None
    line: int | None


class Bad(Exception):
    """A field's value is wrong: ``message`` says how, ``allowed`` what would be right."""

    def __init__(self, message: str, allowed: str | None = None):
        super().__init__(message)
        self.message, self.allowed = message, allowed


def as_text(v: Value, *, limit: int = MAX_TITLE_CHARS) -> str:
    """A single line of text (a title, a name, an id), at most ``limit`` characters."""
    if isinstance(v.value, (list, dict)):
        raise Bad("must be a single value, not a list or mapping")
    text = v.raw if v.raw is not None else str(v.value)
    if not text.strip():
        raise Bad("is empty")
    if len(text.strip()) > limit:
        raise Bad(f"is {len(text.strip()):,} characters long", f"at most {limit:,} characters")
    return text.strip()


def as_prompt(v: Value) -> str:
    return as_text(v, limit=MAX_PROMPT_CHARS)


def as_number(v: Value, what: str = "a number") -> float:
    if isinstance(v.value, bool) or isinstance(v.value, (list, dict)):
        raise Bad(f"{v.raw or v.value!r} is not {what}")
    if isinstance(v.value, (int, float)) and (v.raw is None or ":" not in v.raw):
        return float(v.value)
    try:
        return float(str(v.raw if v.raw is not None else v.value).strip())
    except ValueError:
        raise Bad(f"{v.raw or v.value!r} is not {what}") from None


def as_integer(v: Value, what: str = "a whole number") -> int:
    number = as_number(v, what)
    if number != int(number):
        raise Bad(f"{v.raw or v.value!r} is not {what}")
    return int(number)


def as_duration(v: Value) -> float:
    """Seconds as a number, or ``M:SS`` / ``H:MM:SS`` text (YAML would read those as base 60)."""
    text = v.raw if v.raw is not None else str(v.value)
    if ":" in text:
        parts = text.strip().split(":")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise Bad(f"{text!r} is not a duration", "seconds (90), M:SS (1:30) or H:MM:SS") from None
        if len(values) > 3 or any(x < 0 for x in values) or any(x >= 60 for x in values[1:]):
            raise Bad(f"{text!r} is not a duration", "seconds (90), M:SS (1:30) or H:MM:SS")
        seconds = 0.0
        for x in values:
            seconds = seconds * 60 + x
        return seconds
    return as_number(v, "a duration")


def as_boolean(v: Value) -> bool:
    if isinstance(v.value, bool):
        return v.value
    text = str(v.raw if v.raw is not None else v.value).strip().lower()
    if text in ("true", "yes", "y", "1", "on"):
        return True
    if text in ("false", "no", "n", "0", "off"):
        return False
    raise Bad(f"{v.raw or v.value!r} is not true or false", "true or false")


def as_air_date(v: Value) -> str:
    if isinstance(v.value, datetime):
        return v.value.date().isoformat()
    if isinstance(v.value, date):
        return v.value.isoformat()
    try:
        return date.fromisoformat(as_text(v)).isoformat()
    except ValueError:
        raise Bad(f"{v.raw or v.value!r} is not a date", "YYYY-MM-DD, e.g. 2027-03-14") from None


def as_territories(v: Value) -> tuple[str, ...]:
    items = v.value if isinstance(v.value, list) else re.split(r"[\s,;]+", as_text(v))
    out: list[str] = []
    for item in items:
        if item is None or not str(item).strip():
            continue
        try:
            code = normalize_territory(str(item))
        except SoundscapeError as exc:
            raise Bad(str(exc)) from None
        if code not in out:
            out.append(code)
    if not out:
        raise Bad("is empty", "ISO 3166-1 alpha-2 codes such as [FR, BE, CH], or WORLD")
    return tuple(out)


def as_choice(v: Value, choices: Collection[str], what: str, *, upper: bool = False) -> str:
    text = as_text(v)
    text = text.upper() if upper else text
    if text not in choices:
        raise Bad(f"unknown {what} {text!r}", ", ".join(choices))
    return text


def as_parsed_text(parser, v: Value) -> str:
    """The field's text once ``parser`` (a soundscape.spec parser) accepts it."""
    text = as_text(v)
    try:
        parser(text)
    except ParameterError as exc:
        raise Bad(str(exc)) from None
    return text


def as_frame_rate(v: Value) -> float:
    rate = as_number(v, "a frame rate")
    if rate not in FRAME_RATES:
        raise Bad(f"{rate:g} fps is not a broadcast frame rate", ", ".join(f"{r:g}" for r in FRAME_RATES))
    return rate


def checked(func, value):
    try:
        return func(value)
    except ParameterError as exc:
        raise Bad(str(exc)) from None


def as_seed(v: Value) -> int:
    seed = as_integer(v, "a whole number")
    if not 0 <= seed < 2**63:
        raise Bad(f"seed {seed} is out of range", "0 to 2**63-1")
    return seed


def as_variants(v: Value) -> int:
    count = as_integer(v, "a whole number")
    if not 1 <= count <= MAX_VARIANTS:
        raise Bad(f"{count} variants is out of range", f"1 to {MAX_VARIANTS}")
    return count


def as_timecode(v: Value, frame_rate: float) -> str:
    text = as_text(v)
    try:
        parse_timecode(text, frame_rate)
    except ParameterError as exc:
        allowed = f"HH:MM:SS:FF with FF below {round(frame_rate)} ({frame_rate:g} fps)"
        raise Bad(str(exc), allowed) from None
    return text


# --- society filing fields (docs/reports.md, "Filing with a society") ------------------------

CONTRIBUTOR_KEYS = ("name", "role", "society", "ipi", "share")
_IPI = re.compile(r"^\d{9,11}$")


def _short(text: str, limit: int = 40) -> str:
    # A wrong value is echoed so the user can find it, never at length.
    return text if len(text) <= limit else text[:limit] + "…"  # IPI name numbers have 9 to 11 digits (CAE numbers 9)


def as_text_list(v: Value) -> tuple[str, ...]:
    """One text or a list of texts (alternate titles)."""
    items = v.value if isinstance(v.value, list) else [as_text(v)]
    out = []
    for item in items:
        if isinstance(item, (list, dict)) or item is None or not str(item).strip():
            raise Bad("must be a text or a list of texts", "e.g. [\"Deep Water: The Series\"]")
        text = str(item).strip()
        if len(text) > MAX_TITLE_CHARS:
            raise Bad(f"has an entry {len(text):,} characters long", f"at most {MAX_TITLE_CHARS:,} characters")
        out.append(text)
    return tuple(out)


def as_year(v: Value) -> int:
    year = as_integer(v, "a year")
    if not 1888 <= year <= 2200:  # the first surviving film is from 1888
        raise Bad(f"{year} is not a plausible year", "a four-digit year such as 2027")
    return year


def as_country(v: Value) -> str:
    try:
        code = normalize_territory(as_text(v))
    except SoundscapeError as exc:
        raise Bad(str(exc)) from None
    if code == "WORLD":
        raise Bad("must be one country", "an ISO 3166-1 alpha-2 code such as FR")
    return code


def as_contributors(v: Value) -> tuple[dict, ...]:
    """Human contributors of a cue: a list of {name, role, society, ipi, share}."""
    if not isinstance(v.value, list) or not v.value:
        raise Bad("must be a list of contributors",
                  "[{name: ..., role: AR, society: PRS, ipi: 00123456789, share: 50}]")
    out = []
    totals = {"writers": 0.0, "publishers": 0.0}
    for entry in v.value:
        if not isinstance(entry, dict):
            raise Bad("each contributor must be a mapping", f"keys: {', '.join(CONTRIBUTOR_KEYS)}")
        unknown = [str(k) for k in entry if k not in CONTRIBUTOR_KEYS]
        if unknown:
            raise Bad(f"a contributor has unknown key {_short(unknown[0])!r}", ", ".join(CONTRIBUTOR_KEYS))
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_TITLE_CHARS:
            raise Bad("a contributor needs a name (text)", f"at most {MAX_TITLE_CHARS} characters")
        role = str(entry.get("role") or "").strip().upper()
        if role not in CONTRIBUTOR_ROLES:
            raise Bad(f"contributor {name.strip()!r} has role {_short(str(entry.get('role')))!r}",
                      ", ".join(f"{k} ({meaning})" for k, meaning in CONTRIBUTOR_ROLES.items()))
        ipi = entry.get("ipi")
        ipi = None if ipi is None else str(ipi).strip()
        if ipi is not None and not _IPI.match(ipi):
            raise Bad(f"contributor {name.strip()!r} has IPI {_short(ipi)!r}",
                      "9 to 11 digits (quote it in YAML to keep leading zeros)")
        share = entry.get("share")
        if share is not None:
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 100:
                raise Bad(f"contributor {name.strip()!r} has share {_short(str(share))!r}",
                          "a percentage above 0 and at most 100")
            totals["publishers" if role in PUBLISHER_ROLES else "writers"] += float(share)
        society = entry.get("society")
        if society is not None and (not isinstance(society, str) or len(society) > 40):
            raise Bad(f"contributor {name.strip()!r} has a society that is not a short name",
                      "e.g. ASCAP, BMI, PRS, SACEM")
        out.append({"name": name.strip(), "role": role, "society": society.strip() if society else None,
                    "ipi": ipi, "share": float(share) if share is not None else None})
    for side, total in totals.items():
        if total > 100.0001:
            raise Bad(f"the {side}' shares add up to {total:g}%", "at most 100% for writers and for publishers")
    return tuple(out)
