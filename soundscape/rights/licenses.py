"""The license registry: license terms as data (licenses/), SPDX expressions, base-model licenses.

Terms live in ``licenses/terms/<id>.toml`` (one file per SPDX id or LicenseRef), studio license
agreements in ``licenses/agreements/*.toml`` and ``<SOUNDSCAPE_HOME>/licenses/agreements/*.toml``
(each becomes ``LicenseRef-Agreement-<agreement_id>``), and the licenses of published base models
in ``licenses/base-models.toml``. licenses/README.md describes the formats.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path, PurePath

from soundscape.config import LICENSES_DIR, require_data
from soundscape.errors import LicenseError

TERMS_DIR = "terms"
AGREEMENTS_DIR = "agreements"
BASE_MODELS_FILE = "base-models.toml"
AGREEMENT_PREFIX = "LicenseRef-Agreement-"

WORLD = "WORLD"
"""A territory that covers every country."""

ALL_MEDIA = "all"
"""A medium that covers every other medium."""

MEDIA = ("tv", "radio", "streaming", "online", "cinema", "podcast", "advertising")
"""The media an agreement can name (plus ``all``), in the words of a rights contract."""

# ISO 3166-1 alpha-2, checked against tzdata's iso3166.tab; plus XK (Kosovo), a user-assigned code
# that broadcasters and the EU use. A typo such as "UK" (the ISO code is GB) fails loudly instead
# of silently leaving a territory uncovered.
COUNTRIES = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC
    EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK
    HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB
    LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU
    RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN
    TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK""".split()
)

# An SPDX LicenseRef idstring is letters, digits, "." and "-" (SPDX spec, annex on license expressions).
_IDSTRING = re.compile(r"^[A-Za-z0-9.\-]+$")

_TERMS_KEYS = {
    "id", "name", "url", "commercial_use", "attribution_required", "share_alike",
    "derivatives_allowed", "attribution_template", "notes",
}  # fmt: skip
_AGREEMENT_KEYS = (_TERMS_KEYS - {"id"}) | {
    "agreement_id", "licensor", "start", "end", "territories", "media",
}  # fmt: skip
_TEMPLATE_FIELDS = {"work", "title", "author", "source", "id", "name", "url", "licensor", "agreement_id"}


@dataclass(frozen=True)
class Agreement:
    """A studio's own license agreement: who granted it, for when, where and on which media.

    ``end`` is None for a perpetual agreement. ``territories`` are ISO 3166-1 alpha-2 codes or
    ``WORLD``; ``media`` are words from :data:`MEDIA` or ``all``.
    """

    agreement_id: str
    licensor: str
    start: date
    end: date | None
    territories: tuple[str, ...]
    media: tuple[str, ...]

    def in_force(self, on: date) -> bool:
        """Whether the agreement covers the day ``on`` (both ends inclusive)."""
        return self.start <= on and (self.end is None or on <= self.end)

    def missing_territories(self, asked: tuple[str, ...] | list[str]) -> list[str]:
        """The asked territories this agreement does not cover, sorted.

        WORLD in the agreement covers everything; WORLD asked is covered only by WORLD.
        """
        if WORLD in self.territories:
            return []
        return sorted({t for t in asked if t not in self.territories})

    def covers_medium(self, medium: str) -> bool:
        """Whether the agreement covers ``medium`` (``all`` covers every medium)."""
        return ALL_MEDIA in self.media or medium in self.media


@dataclass(frozen=True)
class LicenseTerms:
    """What a license allows and asks, in the words a clearance team uses."""

    id: str
    name: str
    commercial_use: bool
    attribution_required: bool
    share_alike: bool
    derivatives_allowed: bool
    url: str
    notes: str = ""
    attribution_template: str = ""
    agreement: Agreement | None = None


@dataclass(frozen=True)
class BaseModelInfo:
    """The license of a published base model, and where that fact comes from."""

    name: str
    license: str
    source: str
    notes: str = ""


def normalize_territory(code: str) -> str:
    """``code`` upper-cased and checked: an ISO 3166-1 alpha-2 code or ``WORLD``.

    Raises:
        LicenseError: not a known code (e.g. "UK", whose ISO code is GB).
    """
    value = str(code).strip().upper()
    if value != WORLD and value not in COUNTRIES:
        hint = " (the ISO code for the United Kingdom is GB)" if value == "UK" else ""
        raise LicenseError(f"unknown territory '{code}': use an ISO 3166-1 alpha-2 code or WORLD{hint}")
    return value


def normalize_medium(medium: str) -> str:
    """``medium`` lower-cased and checked against :data:`MEDIA` (or ``all``).

    Raises:
        LicenseError: an unknown medium.
    """
    value = str(medium).strip().lower()
    if value != ALL_MEDIA and value not in MEDIA:
        raise LicenseError(f"unknown medium '{medium}': choose one of {', '.join(MEDIA)} or {ALL_MEDIA}")
    return value


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LicenseError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise LicenseError(f"{path}: cannot read ({exc.strerror})") from None


def _need(path: Path, data: dict, key: str, kind: type | tuple[type, ...]):
    if key not in data:
        raise LicenseError(f"{path}: missing '{key}'")
    value = data[key]
    # bool is an int subclass and date a datetime base: check exactly what the format promises.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise LicenseError(f"{path}: '{key}' must be {names}, not {value!r}")
    return value


def _check_keys(path: Path, data: dict, allowed: set[str]) -> None:
    # A misspelt key (derivative_allowed) would otherwise silently fall back to nothing; say so.
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise LicenseError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _check_template(path: Path, template: str) -> None:
    fields = set(re.findall(r"{(\w*)}", template))
    unknown = sorted(fields - _TEMPLATE_FIELDS)
    if unknown:
        raise LicenseError(
            f"{path}: attribution_template uses unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_TEMPLATE_FIELDS))}"
        )


def _terms_from(path: Path, data: dict, *, license_id: str, agreement: Agreement | None) -> LicenseTerms:
    template = data.get("attribution_template", "")
    if not isinstance(template, str):
        raise LicenseError(f"{path}: 'attribution_template' must be a string")
    _check_template(path, template)
    notes = data.get("notes", "")
    if not isinstance(notes, str):
        raise LicenseError(f"{path}: 'notes' must be a string")
    return LicenseTerms(
        id=license_id,
        name=_need(path, data, "name", str),
        commercial_use=_need(path, data, "commercial_use", bool),
        attribution_required=_need(path, data, "attribution_required", bool),
        share_alike=_need(path, data, "share_alike", bool),
        derivatives_allowed=_need(path, data, "derivatives_allowed", bool),
        url=_need(path, data, "url", str),
        notes=notes,
        attribution_template=template,
        agreement=agreement,
    )


def read_terms_file(path: Path) -> LicenseTerms:
    """Read one ``terms/<id>.toml`` file.

    Raises:
        LicenseError: bad TOML, a missing or mistyped field, or an id that is not an SPDX idstring.
    """
    data = _read_toml(path)
    _check_keys(path, data, _TERMS_KEYS)
    license_id = _need(path, data, "id", str)
    if not _IDSTRING.match(license_id):
        raise LicenseError(f"{path}: id '{license_id}' may hold only letters, digits, '.' and '-'")
    if license_id.startswith(AGREEMENT_PREFIX):
        raise LicenseError(f"{path}: ids starting {AGREEMENT_PREFIX} belong in {AGREEMENTS_DIR}/")
    return _terms_from(path, data, license_id=license_id, agreement=None)


def read_agreement_file(path: Path) -> LicenseTerms:
    """Read one ``agreements/*.toml`` file into the terms of ``LicenseRef-Agreement-<agreement_id>``.

    ``commercial_use`` and ``derivatives_allowed`` default to true and ``share_alike`` and
    ``attribution_required`` to false, the usual shape of a production-music agreement.

    Raises:
        LicenseError: bad TOML, a missing or mistyped field, bad dates, territories or media.
    """
    data = _read_toml(path)
    _check_keys(path, data, _AGREEMENT_KEYS)
    agreement_id = _need(path, data, "agreement_id", str)
    if not _IDSTRING.match(agreement_id):
        raise LicenseError(f"{path}: agreement_id '{agreement_id}' may hold only letters, digits, '.' and '-'")
    start = _need(path, data, "start", date)
    end = data.get("end")
    if end is not None and not isinstance(end, date):
        raise LicenseError(f"{path}: 'end' must be a date (YYYY-MM-DD), not {end!r}")
    # TOML has datetimes too; an agreement runs in whole days.
    start = start.date() if hasattr(start, "date") else start
    end = end.date() if end is not None and hasattr(end, "date") else end
    if end is not None and end < start:
        raise LicenseError(f"{path}: end {end} is before start {start}")
    territories = _need(path, data, "territories", list)
    media = _need(path, data, "media", list)
    if not territories or not media:
        raise LicenseError(f"{path}: 'territories' and 'media' must each name at least one")
    try:
        territories_t = tuple(sorted({normalize_territory(t) for t in territories}))
        media_t = tuple(sorted({normalize_medium(m) for m in media}))
    except LicenseError as exc:
        raise LicenseError(f"{path}: {exc}") from None
    licensor = _need(path, data, "licensor", str)
    agreement = Agreement(agreement_id, licensor, start, end, territories_t, media_t)
    defaults = {
        "name": f"License agreement {agreement_id} with {licensor}",
        "commercial_use": True,
        "derivatives_allowed": True,
        "share_alike": False,
        "attribution_required": False,
        "url": "",
    }
    fields = {**defaults, **{k: v for k, v in data.items() if k in _TERMS_KEYS}}
    return _terms_from(path, fields, license_id=AGREEMENT_PREFIX + agreement_id, agreement=agreement)


class UnknownLicenseError(LicenseError):
    """An expression names license ids the registry does not know; ``ids`` lists them."""

    def __init__(self, message: str, ids: list[str]):
        super().__init__(message)
        self.ids = list(ids)


class LicenseRegistry:
    """Every license id soundscape knows, with its terms, and expression parsing over those ids.

    Build it with :meth:`load`. Expressions are parsed by the ``license-expression`` package with
    a ``Licensing`` whose symbols are exactly our ids, so LicenseRefs parse and anything else is
    an unknown id.
    """

    def __init__(self, terms: dict[str, LicenseTerms], *, sources: dict[str, Path] | None = None):
        from license_expression import Licensing

        self._terms = dict(sorted(terms.items()))
        self.sources = dict(sources or {})
        self._licensing = Licensing(list(self._terms))
        # A dataset repeats a handful of expressions thousands of times; parse each once.
        self._parsed: dict[str, object] = {}

    @classmethod
    def load(cls, *, workspace_home: Path | None = None) -> "LicenseRegistry":
        """Read the repository's terms and agreements, plus the workspace's when given.

        Args:
            workspace_home: a workspace (``SOUNDSCAPE_HOME``) whose ``licenses/agreements/*.toml``
                (and ``licenses/terms/*.toml``) add to the repository's. None reads the repository
                only: pass ``Workspace.home`` wherever a studio's own agreements must be known.

        Raises:
            LicenseError: a bad file, or the same id defined twice (the message names both files).
        """
        roots = [require_data(LICENSES_DIR, "license data")]
        if workspace_home is not None:
            roots.append(Path(workspace_home) / "licenses")
        terms: dict[str, LicenseTerms] = {}
        sources: dict[str, Path] = {}
        for root in roots:
            for sub, reader in ((TERMS_DIR, read_terms_file), (AGREEMENTS_DIR, read_agreement_file)):
                folder = root / sub
                if not folder.is_dir():
                    continue
                for path in sorted(folder.glob("*.toml")):
                    entry = reader(path)
                    # A studio's file silently replacing a known licence would change clearance
                    # without anyone noticing; an agreement id is the contract's, so make it unique.
                    if entry.id in terms:
                        raise LicenseError(
                            f"license id '{entry.id}' is defined twice: {sources[entry.id]} and {path}"
                        )
                    terms[entry.id] = entry
                    sources[entry.id] = path
        return cls(terms, sources=sources)

    @property
    def ids(self) -> list[str]:
        """Every known license id, sorted."""
        return list(self._terms)

    def __contains__(self, license_id: str) -> bool:
        return license_id in self._terms

    def get(self, license_id: str) -> LicenseTerms:
        """The terms of ``license_id`` (exact id; see :meth:`canonical_id` for any case).

        Raises:
            LicenseError: an unknown id; the message lists the known ones.
        """
        try:
            return self._terms[license_id]
        except KeyError:
            pass
        canonical = self._licensing.known_symbols_lowercase.get(str(license_id).lower())
        if canonical is not None:
            return self._terms[canonical.key]
        raise LicenseError(f"unknown license id '{license_id}' (known: {', '.join(self._terms)})")

    def _parse(self, expression: str):
        cached = self._parsed.get(expression)
        if cached is not None:
            return cached
        parsed = self._parse_uncached(expression)
        self._parsed[expression] = parsed
        return parsed

    def _parse_uncached(self, expression: str):
        from license_expression import ExpressionError

        if expression is None or not str(expression).strip():
            raise LicenseError("empty license expression: give an SPDX id or expression such as CC0-1.0")
        try:
            parsed = self._licensing.parse(str(expression), strict=True)
        except ExpressionError as exc:
            raise LicenseError(f"malformed license expression '{expression}': {exc}") from None
        unknown = self._licensing.unknown_license_keys(parsed)
        if unknown:
            raise UnknownLicenseError(
                f"unknown license id{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(u) for u in unknown)} in '{expression}' (known: {', '.join(self._terms)})",
                unknown,
            )
        return parsed

    def parse(self, expression: str):
        """The parsed ``license_expression`` tree of ``expression`` (symbols are our ids).

        Raises:
            LicenseError: empty, malformed, or naming an unknown id.
        """
        return self._parse(expression)

    def normalize(self, expression: str) -> str:
        """``expression`` checked and written canonically: known ids in their own case, upper-case
        operators, parentheses only where needed (``cc0-1.0 and cc-by-4.0`` -> ``CC0-1.0 AND CC-BY-4.0``).

        Raises:
            LicenseError: empty, malformed, or naming an unknown id; one line.
        """
        return self._parse(expression).render("{symbol.key}")

    def ids_in(self, expression: str) -> list[str]:
        """The distinct ids in ``expression``, in order of first appearance.

        Raises:
            LicenseError: as :meth:`normalize`.
        """
        parsed = self._parse(expression)
        return [symbol.key for symbol in self._licensing.license_symbols(parsed, unique=True)]

    def canonical_id(self, license_id: str) -> str:
        """``license_id`` in its registry spelling (ids match case-insensitively, as in SPDX)."""
        return self.get(license_id).id

    def attribution_line(
        self,
        license_id: str,
        *,
        title: str | None = None,
        author: str | None = None,
        source: str | None = None,
        attribution: str | None = None,
    ) -> str:
        """The credit line for a work under ``license_id``, from the license's template.

        The work is named by ``attribution`` when given (the credit its licensor asked for, used
        verbatim), else as ``"title" by author (source)`` from the parts that are known. Licenses
        that require no attribution still give a courtesy line; an empty template gives "".

        Raises:
            LicenseError: an unknown id.
        """
        terms = self.get(license_id)
        if not terms.attribution_template:
            return ""
        if attribution and attribution.strip():
            work = attribution.strip()
        else:
            parts = [f'"{title}"' if title else "Untitled work"]
            if author:
                parts.append(f"by {author}")
            if source:
                parts.append(f"({source})")
            work = " ".join(parts)
        agreement = terms.agreement
        values = {
            "work": work,
            "title": title or "",
            "author": author or "",
            "source": source or "",
            "id": terms.id,
            "name": terms.name,
            "url": terms.url,
            "licensor": agreement.licensor if agreement else "",
            "agreement_id": agreement.agreement_id if agreement else "",
        }
        return terms.attribution_template.format_map(values)


# -- base models ------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _base_models(workspace_home: Path | None = None
                 ) -> tuple[tuple[BaseModelInfo, tuple[str, ...], bool, frozenset[str]], ...]:
    """Every base-model entry: the repository's, then the workspace's own file when it has one.

    Each entry is ``(info, aliases, is_pattern, published file sha256s)``.
    """
    paths = [require_data(LICENSES_DIR, "license data") / BASE_MODELS_FILE]
    if workspace_home is not None and (Path(workspace_home) / "licenses" / BASE_MODELS_FILE).is_file():
        paths.append(Path(workspace_home) / "licenses" / BASE_MODELS_FILE)
    entries = []
    for path in paths:
        data = _read_toml(path)
        defaults = data.get("defaults", {})
        for raw in data.get("model", []):
            name = _need(path, raw, "name", str)
            info = BaseModelInfo(
                name=name,
                license=raw.get("license", defaults.get("license", "")),
                source=raw.get("source", defaults.get("source", "")),
                notes=raw.get("notes", ""),
            )
            if not info.license:
                raise LicenseError(f"{path}: model '{name}' has no license")
            hashes = raw.get("sha256", [])
            if not isinstance(hashes, list) or not all(
                    isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes):
                raise LicenseError(f"{path}: model '{name}': sha256 must be a list of "
                                   f"64-digit lower-case hex digests")
            aliases = tuple(a.lower() for a in raw.get("aliases", ()))
            entries.append((info, aliases, bool(raw.get("pattern", False)), frozenset(hashes)))
    return tuple(entries)


def base_model_by_content(file_sha256s, *, workspace_home: Path | None = None
                          ) -> BaseModelInfo | None:
    """The published base model one of these checkpoint files is, by its sha256.

    A renamed or copied folder of released weights keeps its files' hashes, so it is still
    recognised (and labelled with its licence) whatever it is called. None when no file is a
    published one.
    """
    wanted = {str(h).lower() for h in file_sha256s if h}
    for info, _aliases, _pattern, hashes in _base_models(workspace_home):
        if wanted & hashes:
            return info
    return None


def _candidate_names(name_or_path: str) -> tuple[list[str], list[str]]:
    """Hub ids and bare folder names that ``name_or_path`` may stand for (lower case)."""
    text = str(name_or_path).strip().rstrip("/\\")
    hub_ids: list[str] = []
    folders: list[str] = []
    parts = PurePath(text).parts
    # A Hugging Face cache path: .../models--facebook--musicgen-small/snapshots/<hash>
    for part in parts:
        if part.startswith("models--"):
            hub_ids.append(part[len("models--"):].replace("--", "/").lower())
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        hub_ids.append(text.lower())
    if parts:
        folders.append(parts[-1].lower())
    return hub_ids, folders


def base_model_license(name_or_path: str, *, workspace_home: Path | None = None
                       ) -> BaseModelInfo | None:
    """The license of a published base model, from its hub id or a local folder's name.

    Matches ``facebook/musicgen-small``, a folder named ``musicgen-small`` (any parent path),
    and a Hugging Face cache folder ``models--facebook--musicgen-small/snapshots/<hash>``.
    None when the model is not one we have a record of (a studio's own model, say).
    """
    hub_ids, folders = _candidate_names(name_or_path)
    entries = _base_models(workspace_home)
    # Exact entries first, so the catch-all pattern never hides a listed model's own notes.
    for info, aliases, is_pattern, _hashes in entries:
        if is_pattern:
            continue
        hub = info.name.lower()
        short = hub.rsplit("/", 1)[-1]
        if hub in hub_ids or short in folders or any(a in folders or a in hub_ids for a in aliases):
            return info
    for info, _aliases, is_pattern, _hashes in entries:
        if not is_pattern:
            continue
        for hub in hub_ids:
            if fnmatch.fnmatchcase(hub, info.name.lower()):
                return replace(info, name=hub)
    return None
