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

MEDIUM_ALIASES = {
    "broadcast": ("tv", "radio"),
    "television": ("tv",),
    "all media": (ALL_MEDIA,),
    "all-media": (ALL_MEDIA,),
}
"""Words agreements use for groups of media: "broadcast" is television and radio (the sense of
the UK Communications Act 2003 and the US Communications Act: transmission to the public over
the air or by cable), "all media" is every medium. Documented in licenses/README.md."""

STUDIO_OWNED = "LicenseRef-Studio-Owned"
"""What the studio holds every right in: it owes the studio nothing, so it never blocks the
studio's own policy (a policy may still list it under [deny] to refuse it on purpose)."""

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
    "derivatives_allowed", "attribution_template", "notes", "aliases", "revenue_limit_usd",
    "software", "retired",
}  # fmt: skip
_AGREEMENT_KEYS = (_TERMS_KEYS - {"id", "aliases"}) | {
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
    revenue_limit_usd: int | None = None
    """Commercial use is granted only to a licensee under this annual revenue (US dollars)."""
    software: bool = False
    """A software licence: its grant speaks of source and object code, not of recordings."""
    retired: bool = False
    """Its steward no longer recommends it (Creative Commons retired Sampling+ in 2011)."""
    aliases: tuple[str, ...] = ()
    """Other ids for the same licence (the license database's LicenseRef-scancode-... key)."""


@dataclass(frozen=True)
class KnownLicense:
    """A licence the license database knows but soundscape has no assessed terms for."""

    id: str
    category: str

    @property
    def name(self) -> str:
        return self.id


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


def expand_medium(medium: str) -> tuple[str, ...]:
    """The media ``medium`` stands for: itself when it is in :data:`MEDIA` (or ``all``), the
    media of an alias in :data:`MEDIUM_ALIASES` (``broadcast`` is tv and radio).

    Raises:
        LicenseError: an unknown medium.
    """
    value = " ".join(str(medium).strip().lower().split())
    if value == ALL_MEDIA or value in MEDIA:
        return (value,)
    if value in MEDIUM_ALIASES:
        return MEDIUM_ALIASES[value]
    aliases = ", ".join(f"{k} ({' and '.join(v)})" for k, v in MEDIUM_ALIASES.items())
    raise LicenseError(f"unknown medium '{medium}': choose one of {', '.join(MEDIA)} or "
                       f"{ALL_MEDIA}, or a word agreements use: {aliases}")


def normalize_medium(medium: str) -> str:
    """``medium`` lower-cased and checked against :data:`MEDIA` (or ``all``).

    Raises:
        LicenseError: an unknown medium, or an alias that stands for several media.
    """
    media = expand_medium(medium)
    if len(media) > 1:
        raise LicenseError(f"medium '{medium}' stands for {' and '.join(media)}: name one")
    return media[0]


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
    limit = data.get("revenue_limit_usd")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0):
        raise LicenseError(f"{path}: 'revenue_limit_usd' must be a positive whole number of US dollars")
    for key in ("software", "retired"):
        if not isinstance(data.get(key, False), bool):
            raise LicenseError(f"{path}: '{key}' must be true or false")
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and _IDSTRING.match(a) for a in aliases):
        raise LicenseError(f"{path}: 'aliases' must be a list of license ids")
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
        revenue_limit_usd=limit,
        software=data.get("software", False),
        retired=data.get("retired", False),
        aliases=tuple(aliases),
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
        media_t = tuple(sorted({x for m in media for x in expand_medium(m)}))
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


@lru_cache(maxsize=1)
def _database() -> tuple[tuple[str, tuple[str, ...], bool, str], ...]:
    """Every licence in ``license-expression``'s license database (ScanCode LicenseDB: every
    SPDX id, and a LicenseRef-scancode-... id for each licence SPDX does not list), as
    ``(id, other ids, is an exception, category)``. Read once, on the first id our terms lack."""
    from license_expression import get_license_index

    out = []
    for entry in get_license_index():
        key = entry.get("spdx_license_key")
        if not key:
            continue
        others = tuple(a for a in entry.get("other_spdx_license_keys") or () if a and a != key)
        out.append((key, others, bool(entry.get("is_exception")), entry.get("category") or ""))
    return tuple(out)


class LicenseRegistry:
    """Every license id soundscape knows, with its terms, and expression parsing over those ids.

    Build it with :meth:`load`. Expressions are parsed by the ``license-expression`` package
    over our own ids first (the ones with assessed terms, and their ``aliases``); an id outside
    them is looked up in the package's license database, so every SPDX id and database
    LicenseRef parses, and only an id neither knows is unknown. A known id without terms here
    is not assessed: :meth:`assessed` says so and clearance asks for a review.
    """

    def __init__(self, terms: dict[str, LicenseTerms], *, sources: dict[str, Path] | None = None):
        from license_expression import LicenseSymbol, Licensing

        self._terms = dict(sorted(terms.items()))
        self.sources = dict(sources or {})
        self._own_symbols = [LicenseSymbol(k, aliases=t.aliases) for k, t in self._terms.items()]
        self._licensing = Licensing(self._own_symbols)
        self._own_names = {k.lower(): k for k in self._terms}
        self._own_names.update({a.lower(): k for k, t in self._terms.items() for a in t.aliases})
        self._full = None  # the own ids plus the database's, built on first need
        self._categories: dict[str, str] = {}
        # A dataset repeats a handful of expressions thousands of times; parse each once.
        self._parsed: dict[str, object] = {}

    def _full_licensing(self):
        """A ``Licensing`` over our ids and every database id; ours win on a clash (their
        database aliases join ours, so GPL-3.0 still means our GPL-3.0-only)."""
        if self._full is not None:
            return self._full
        from license_expression import LicenseSymbol, Licensing

        own = {k.lower(): k for k in self._terms}
        own.update({a.lower(): k for k, t in self._terms.items() for a in t.aliases})
        extra_aliases: dict[str, list[str]] = {k: [] for k in self._terms}
        taken = set(own)
        symbols = []
        for key, others, is_exception, category in _database():
            names = [key, *others]
            mine = next((own[n.lower()] for n in names if n.lower() in own), None)
            if mine is not None:
                extra_aliases[mine].extend(n for n in names if n.lower() not in taken)
                taken.update(n.lower() for n in names)
                continue
            fresh = [n for n in names if n.lower() not in taken]
            if not fresh:
                continue
            taken.update(n.lower() for n in fresh)
            self._categories[fresh[0]] = category
            symbols.append(LicenseSymbol(fresh[0], aliases=tuple(fresh[1:]), is_exception=is_exception))
        ours = [LicenseSymbol(k, aliases=(*t.aliases, *extra_aliases[k])) for k, t in self._terms.items()]
        self._full = Licensing(ours + symbols)
        return self._full

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
        """The terms of ``license_id`` (any case, or one of its aliases).

        Raises:
            LicenseError: an id without assessed terms; the message lists the assessed ones.
        """
        try:
            return self._terms[license_id]
        except KeyError:
            pass
        canonical = self._own_names.get(str(license_id).lower())
        if canonical is not None:
            return self._terms[canonical]
        symbol = self._resolve(license_id)
        if symbol is not None and symbol.key in self._terms:
            return self._terms[symbol.key]
        known = self.known(license_id)
        if known is not None:
            raise LicenseError(f"license '{known.id}' is known but its terms are not assessed "
                               f"(add licenses/terms/{known.id}.toml)")
        raise LicenseError(f"unknown license id '{license_id}' (known: {', '.join(self._terms)})")

    def _resolve(self, license_id: str):
        """The database's symbol for one id (aliases resolved: GPL-3.0 is GPL-3.0-only), or None."""
        from license_expression import ExpressionError, LicenseSymbol

        licensing = self._full_licensing()
        try:
            symbol = licensing.parse(str(license_id), strict=True)
        except ExpressionError:
            return None
        if not isinstance(symbol, LicenseSymbol) or licensing.unknown_license_keys(symbol):
            return None
        return symbol

    def assessed(self, license_id: str) -> bool:
        """Whether ``license_id`` has terms here (a terms file or a studio agreement), under
        its own id or any id the license database gives the same licence."""
        if str(license_id).lower() in self._own_names:
            return True
        symbol = self._resolve(license_id)
        return symbol is not None and symbol.key in self._terms

    def known(self, license_id: str) -> KnownLicense | None:
        """A licence the license database knows that has no assessed terms here, else None."""
        if str(license_id).lower() in self._own_names:
            return None
        symbol = self._resolve(license_id)
        if symbol is None or symbol.key in self._terms:
            return None
        return KnownLicense(symbol.key, self._categories.get(symbol.key, ""))

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
        licensing = self._licensing
        try:
            parsed = licensing.parse(str(expression), strict=True)
        except ExpressionError:
            parsed = None  # an exception id ours lack may be the cause
        if parsed is None or licensing.unknown_license_keys(parsed):
            # Only now pay for the database: most expressions use assessed ids alone.
            licensing = self._full_licensing()
            try:
                parsed = licensing.parse(str(expression), strict=True)
            except ExpressionError as exc:
                raise LicenseError(f"malformed license expression '{expression}': {exc}") from None
        unknown = licensing.unknown_license_keys(parsed)
        if unknown:
            raise UnknownLicenseError(
                f"unknown license id{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(u) for u in unknown)} in '{expression}': neither an SPDX id nor "
                f"a LicenseRef the license database knows (assessed here: {', '.join(self._terms)})",
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
        from license_expression import LicenseWithExceptionSymbol

        parsed = self._parse(expression)
        out = []
        for symbol in parsed.get_symbols():
            key = (symbol.license_symbol.key if isinstance(symbol, LicenseWithExceptionSymbol)
                   else symbol.key)
            if key not in out:
                out.append(key)
        return out

    def canonical_id(self, license_id: str) -> str:
        """``license_id`` in its registry spelling (ids match case-insensitively, as in SPDX);
        a database id without assessed terms in the database's spelling.

        Raises:
            LicenseError: an id neither here nor in the license database.
        """
        if self.assessed(license_id):
            return self.get(license_id).id
        known = self.known(license_id)
        if known is not None:
            return known.id
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
