"""Clearance: judge everything behind an output or a model against a policy, with every reason.

A policy is a TOML file in ``licenses/policies/`` (or ``<SOUNDSCAPE_HOME>/policies/``, which wins
on a name clash) saying which license properties it accepts, plus explicit allow and deny lists.
:func:`evaluate` turns a list of :class:`LicensedItem` into a :class:`Verdict`: cleared or not,
every reason, and the attribution lines to credit.

A verdict is one of three states: CLEARED, NEEDS REVIEW (cleared only once each named condition
is settled: share-alike material under a policy that has not said whether it accepts it, a
licence whose commercial grant stops at a revenue the policy does not state, a software licence
on audio, a licence the license database knows that has no assessed terms here) and NOT CLEARED.
A policy that states the studio's facts (``[accept] share_alike``, ``[accept] software_licenses``,
``[studio] annual_revenue_usd``) turns each condition into CLEARED or NOT CLEARED.

Three things are never cleared, whatever a policy says: an item with no license, a license id
neither the registry nor the license database knows, and unknown model lineage (what such a
model learnt from cannot be checked, so its outputs are never CLEARED). One thing always clears
unless a policy denies it by name: ``LicenseRef-Studio-Owned``, the studio's own work, which owes
the studio nothing. They are rules of the ledger, not choices of a studio, so they are not
policy settings.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Mapping, Sequence

from soundscape.config import LICENSES_DIR, require_data
from soundscape.errors import LicenseError, ParameterError
from soundscape.rights.licenses import (
    STUDIO_OWNED,
    LicenseRegistry,
    LicenseTerms,
    UnknownLicenseError,
    expand_medium,
    normalize_territory,
)

POLICIES_DIR = "policies"
ROLES = ("sample", "continuation-source", "ingredient", "sound-bank", "training-data",
         "base-model", "text-encoder", "model")
"""What an item is to the thing being cleared. ``continuation-source`` is the registered audio a
cue continues from (the ledger keeps it in an output's ``ingredients``); ``ingredient`` remains
for any other registered audio an engine names."""

_ROLE_WORDS = {"continuation-source": "continuation source", "text-encoder": "text encoder"}
"""How a role is printed in a reason, where its key is not already plain words."""

CLEARED = "CLEARED"
NEEDS_REVIEW = "NEEDS REVIEW"
NOT_CLEARED = "NOT CLEARED"
STATES = (CLEARED, NEEDS_REVIEW, NOT_CLEARED)
"""A verdict's states, as printed and as written in JSON and cue sheets."""

EXIT_CODES = {CLEARED: 0, NOT_CLEARED: 4, NEEDS_REVIEW: 5}
"""What ``soundscape clear`` (and ``batch`` with a policy) exits with in each state: 4 is
:class:`~soundscape.errors.NotClearedError`'s, 5 :class:`~soundscape.errors.NeedsReviewError`'s."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_TOP_KEYS = {"description", "allow_only", "require", "accept", "allow", "deny", "studio"}
_REQUIRE_KEYS = {"commercial_use", "derivatives"}
_ACCEPT_KEYS = {"share_alike", "attribution", "agreements", "software_licenses"}
_OPTIONAL_ACCEPT_KEYS = {"share_alike", "software_licenses"}
"""Left out, these are questions the policy has not answered: a verdict that meets them NEEDS
REVIEW rather than guessing."""
_STUDIO_KEYS = {"annual_revenue_usd"}


@dataclass(frozen=True)
class LicensedItem:
    """One thing in a lineage that carries a license.

    Args:
        role: one of :data:`ROLES` ("sample", "ingredient", "sound-bank", "training-data",
            "base-model", "model").
        name: what a person recognises it by (file name, model name).
        license: its SPDX id or expression; None or "" when none was recorded.
        attribution: the credit its licensor asked for, used verbatim in the obligation.
        author: its author, for the credit line when no ``attribution`` is given.
        source: where it came from (URL), for the credit line.
        record: its ledger record id (asset or model), named in reasons beside the title.
        path: its file or folder, named in reasons beside the title.
        credited: False when another item already credits the same licence for the same work
            (a model that *is* its base model's weights): its credit line is left out.
    """

    role: str
    name: str
    license: str | None
    attribution: str | None = None
    author: str | None = None
    source: str | None = None
    record: str | None = None
    path: str | None = None
    credited: bool = True

    @property
    def label(self) -> str:
        """How a reason names it: role, title, and where known its record id and path."""
        where = ", ".join(x for x in (self.record, self.path) if x)
        role = _ROLE_WORDS.get(self.role, self.role)
        return f"{role} '{self.name}'" + (f" ({where})" if where else "")


@dataclass(frozen=True)
class Verdict:
    """The outcome of clearing a lineage under one policy.

    ``state`` is one of :data:`STATES`. ``reasons`` lists every reason it is not cleared, each
    naming the item, its role and its license; otherwise it holds notes (which OR option was
    chosen, what was not checked). ``conditions`` are what must be settled before it clears
    (a NEEDS REVIEW verdict has at least one; a NOT CLEARED one lists those it also met).
    ``obligations`` are the distinct attribution lines to credit. All sorted.
    """

    policy: str
    state: str
    reasons: tuple[str, ...]
    obligations: tuple[str, ...]
    conditions: tuple[str, ...] = ()

    @property
    def cleared(self) -> bool:
        """True only for CLEARED (a verdict that needs review is not cleared yet)."""
        return self.state == CLEARED

    @property
    def status(self) -> str:
        """``CLEARED``, ``NEEDS REVIEW`` or ``NOT CLEARED``, as printed."""
        return self.state

    @property
    def exit_code(self) -> int:
        """The command line's exit code for this verdict (:data:`EXIT_CODES`)."""
        return EXIT_CODES[self.state]

    def describe(self) -> dict:
        """A JSON-ready dict of the verdict."""
        return {
            "policy": self.policy,
            "status": self.status,
            "cleared": self.cleared,
            "reasons": list(self.reasons),
            "conditions": list(self.conditions),
            "obligations": list(self.obligations),
        }


@dataclass(frozen=True)
class Policy:
    """A clearance policy, as read from its file.

    ``allow`` and ``deny`` map license ids to the reason they are listed; an allowed id skips the
    property checks (an agreement's dates, territories and media are still checked), a denied id
    is always rejected. With ``allow_only`` nothing outside ``allow`` is accepted.
    """

    name: str
    description: str
    commercial_use_required: bool = True
    derivatives_required: bool = True
    share_alike_allowed: bool | None = False
    attribution_allowed: bool = True
    agreements_allowed: bool = True
    allow_only: bool = False
    allow: Mapping[str, str] = field(default_factory=dict)
    deny: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None
    software_licenses_allowed: bool | None = None
    """Whether a software licence (GPL, MIT ...) on audio is judged by its flags (True),
    refused (False), or left to review (None: the policy has not said)."""
    annual_revenue_usd: int | None = None
    """The studio's annual revenue, for licences whose commercial grant stops at a ceiling."""

    def describe(self) -> dict:
        """A JSON-ready dict of the policy's settings."""
        return {
            "name": self.name,
            "description": self.description,
            "path": str(self.path) if self.path else None,
            "require": {"commercial_use": self.commercial_use_required, "derivatives": self.derivatives_required},
            "accept": {
                "share_alike": self.share_alike_allowed,
                "attribution": self.attribution_allowed,
                "agreements": self.agreements_allowed,
                "software_licenses": self.software_licenses_allowed,
            },
            "studio": {"annual_revenue_usd": self.annual_revenue_usd},
            "allow_only": self.allow_only,
            "allow": dict(self.allow),
            "deny": dict(self.deny),
        }


# -- loading ----------------------------------------------------------------------------------


def _policy_dirs(workspace_home: Path | None) -> list[Path]:
    # Workspace first: a studio's edited copy wins over the repository's file of the same name.
    dirs = [require_data(LICENSES_DIR / POLICIES_DIR, "policy folder")]
    if workspace_home is not None:
        dirs.insert(0, Path(workspace_home) / POLICIES_DIR)
    return dirs


def list_policies(*, workspace_home: Path | None = None) -> list[str]:
    """Names of every policy in the repository and the workspace, sorted."""
    names = {p.stem for d in _policy_dirs(workspace_home) if d.is_dir() for p in d.glob("*.toml")
             if p.is_file()}
    return sorted(names)


def policy_path(name: str, *, workspace_home: Path | None = None) -> Path:
    """The file that policy ``name`` is read from (the workspace's copy when there is one).

    Raises:
        ParameterError: no such policy; the message lists the known ones.
    """
    if _NAME.match(name):
        for folder in _policy_dirs(workspace_home):
            path = folder / f"{name}.toml"
            if path.is_file():
                return path
    known = ", ".join(list_policies(workspace_home=workspace_home))
    raise ParameterError(f"unknown policy '{name}': choose one of {known}")


def _flag(path: Path, table: dict, section: str, key: str, *, optional: bool = False) -> bool | None:
    if key not in table:
        if optional:
            return None
        raise ParameterError(f"{path}: [{section}] is missing '{key}' (true or false)")
    value = table[key]
    if not isinstance(value, bool):
        raise ParameterError(f"{path}: [{section}] {key} must be true or false, not {value!r}")
    return value


def _id_table(path: Path, data: dict, section: str, registry: LicenseRegistry) -> dict[str, str]:
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise ParameterError(f'{path}: [{section}] must be a table of "license-id" = "reason"')
    out = {}
    for license_id, why in table.items():
        if not isinstance(why, str):
            raise ParameterError(f'{path}: [{section}] "{license_id}" must map to a reason string')
        try:
            out[registry.canonical_id(license_id)] = why
        except LicenseError as exc:
            raise ParameterError(f"{path}: [{section}] {exc}") from None
    return out


def read_policy_file(path: Path, *, registry: LicenseRegistry) -> Policy:
    """Read a policy file; its name is the file's stem.

    Raises:
        ParameterError: bad TOML, an unknown or missing key, or an unknown license id.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read ({exc.strerror})") from None
    if "unknown_lineage" in data or "unknown_lineage" in data.get("accept", {}):
        raise ParameterError(
            f"{path}: 'unknown_lineage' is not a policy setting: outputs of a model with unknown "
            "lineage are never cleared; register the model with the datasets it was trained on"
        )
    # A misspelt key would silently leave a default in force; clearance must fail loudly instead.
    for section, table, allowed in (
        ("top level", data, _TOP_KEYS),
        ("require", data.get("require", {}), _REQUIRE_KEYS),
        ("accept", data.get("accept", {}), _ACCEPT_KEYS),
        ("studio", data.get("studio", {}), _STUDIO_KEYS),
    ):
        if not isinstance(table, dict):
            raise ParameterError(f"{path}: [{section}] must be a table")
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ParameterError(
                f"{path}: unknown key(s) {', '.join(unknown)} in {section}; allowed: {', '.join(sorted(allowed))}"
            )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ParameterError(f"{path}: description must be a string")
    allow_only = data.get("allow_only", False)
    if not isinstance(allow_only, bool):
        raise ParameterError(f"{path}: allow_only must be true or false, not {allow_only!r}")
    require = data.get("require", {})
    accept = data.get("accept", {})
    revenue = data.get("studio", {}).get("annual_revenue_usd")
    if revenue is not None and (not isinstance(revenue, int) or isinstance(revenue, bool) or revenue < 0):
        raise ParameterError(f"{path}: [studio] annual_revenue_usd must be a whole number of US "
                             f"dollars, not {revenue!r}")
    allow = _id_table(path, data, "allow", registry)
    deny = _id_table(path, data, "deny", registry)
    both = sorted(set(allow) & set(deny))
    if both:
        raise ParameterError(f"{path}: {', '.join(both)} is in both [allow] and [deny]")
    if allow_only and not allow:
        raise ParameterError(f"{path}: allow_only = true with an empty [allow] would clear nothing")
    return Policy(
        name=path.stem,
        description=description,
        commercial_use_required=_flag(path, require, "require", "commercial_use"),
        derivatives_required=_flag(path, require, "require", "derivatives"),
        share_alike_allowed=_flag(path, accept, "accept", "share_alike", optional=True),
        attribution_allowed=_flag(path, accept, "accept", "attribution"),
        agreements_allowed=_flag(path, accept, "accept", "agreements"),
        allow_only=allow_only,
        allow=allow,
        deny=deny,
        path=path,
        software_licenses_allowed=_flag(path, accept, "accept", "software_licenses", optional=True),
        annual_revenue_usd=revenue,
    )


def load_policy(
    name: str, *, workspace_home: Path | None = None, registry: LicenseRegistry | None = None
) -> Policy:
    """The policy called ``name``: ``<workspace_home>/policies/<name>.toml`` if present, else the
    repository's ``licenses/policies/<name>.toml``.

    Args:
        name: a policy name (``broadcast-commercial``).
        workspace_home: the workspace to look in first; None looks in the repository only.
        registry: the license registry that checks the ids the policy lists; by default the one
            loaded for ``workspace_home``.

    Raises:
        ParameterError: an unknown policy (the message lists the known ones) or a bad policy file.
    """
    path = policy_path(name, workspace_home=workspace_home)
    if registry is None:
        registry = LicenseRegistry.load(workspace_home=workspace_home)
    return read_policy_file(path, registry=registry)


# -- evaluation -------------------------------------------------------------------------------


@dataclass
class _Outcome:
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    obligations: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Context:
    policy: Policy
    registry: LicenseRegistry
    air_date: date | None
    territories: tuple[str, ...]
    media: tuple[str, ...]
    medium_word: str | None
    today: date


def _property_problems(policy: Policy, terms: LicenseTerms) -> list[str]:
    problems = []
    if policy.commercial_use_required and not terms.commercial_use:
        problems.append("non-commercial use only")
    if policy.derivatives_required and not terms.derivatives_allowed:
        problems.append("no derivatives allowed, and every use here adapts the work")
    if policy.share_alike_allowed is False and terms.share_alike:
        problems.append(
            "share-alike: anything made from it must carry the same license, which this policy does not accept"
        )
    if not policy.attribution_allowed and terms.attribution_required:
        problems.append("requires attribution, which this policy does not accept")
    if terms.agreement is not None and not policy.agreements_allowed:
        problems.append("studio agreements are not accepted by this policy")
    if (policy.commercial_use_required and terms.commercial_use and terms.revenue_limit_usd
            and policy.annual_revenue_usd is not None
            and policy.annual_revenue_usd >= terms.revenue_limit_usd):
        problems.append(
            f"commercial use only below US${terms.revenue_limit_usd:,} annual revenue, and the "
            f"policy states the studio's as US${policy.annual_revenue_usd:,}")
    return problems


def _property_conditions(policy: Policy, terms: LicenseTerms) -> tuple[list[str], list[str]]:
    """What the policy leaves open for these terms (conditions), and what it settled (notes)."""
    conditions, notes = [], []
    if policy.share_alike_allowed is None and terms.share_alike:
        conditions.append(
            "share-alike: anything adapted from it (music synced to picture is) must carry the "
            "same license, and the policy does not say whether it accepts that (set [accept] "
            "share_alike = true or false)")
    if policy.commercial_use_required and terms.commercial_use and terms.revenue_limit_usd:
        if policy.annual_revenue_usd is None:
            conditions.append(
                f"commercial use only for a licensee under US${terms.revenue_limit_usd:,} annual "
                "revenue, and the policy does not state the studio's (set [studio] "
                "annual_revenue_usd)")
        elif policy.annual_revenue_usd < terms.revenue_limit_usd:
            notes.append(
                f"commercial use granted below US${terms.revenue_limit_usd:,} annual revenue; "
                f"the policy states the studio's as US${policy.annual_revenue_usd:,}")
    return conditions, notes


_SOFTWARE_CONDITION = (
    "a software license on audio: its grant speaks of source code, object code and linking, "
    "none of which a recording has, so what it asks of a cue is untested (set [accept] "
    "software_licenses = true to judge it by its terms, false to refuse it)")


def _agreement_check(terms: LicenseTerms, ctx: _Context) -> tuple[list[str], list[str]]:
    """Problems and notes from checking an agreement's dates, territories and medium."""
    agreement = terms.agreement
    assert agreement is not None
    problems, notes = [], []
    label = f"agreement {agreement.agreement_id} with {agreement.licensor}"
    if ctx.air_date is not None:
        on, when = ctx.air_date, f"the air date {ctx.air_date}"
    else:
        on, when = ctx.today, f"today, {ctx.today} (no air date given)"
        notes.append(f"no air date given: {label} checked against today, {ctx.today}")
    if on < agreement.start:
        problems.append(f"{label} starts {agreement.start}, after {when}")
    elif agreement.end is not None and on > agreement.end:
        problems.append(f"{label} expired on {agreement.end}, before {when}")
    if ctx.territories:
        missing = agreement.missing_territories(ctx.territories)
        if missing:
            problems.append(
                f"{label} does not cover territor{'ies' if len(missing) > 1 else 'y'} {', '.join(missing)} "
                f"(it covers {', '.join(agreement.territories)})"
            )
    else:
        notes.append(f"no territory given: territories of {label} not checked")
    if ctx.media:
        uncovered = [m for m in ctx.media if not agreement.covers_medium(m)]
        if uncovered:
            covered = ", ".join(agreement.media)
            asked = ctx.medium_word
            # An alias (broadcast) names several media: say which of them are missing.
            extra = "" if asked in uncovered else f"{' and '.join(uncovered)} not covered; "
            problems.append(f"{label} does not cover medium '{asked}' ({extra}it covers {covered})")
    else:
        notes.append(f"no medium given: media of {label} not checked")
    return problems, notes


def _judge_known(license_id: str, subject: str, ctx: _Context) -> _Outcome:
    """A licence the license database knows without terms here: the policy's lists decide,
    else it needs a person to read it."""
    policy = ctx.policy
    known = ctx.registry.known(license_id)
    if license_id in policy.deny:
        return _Outcome(False, reasons=[f"{subject}: denied by policy '{policy.name}': {policy.deny[license_id]}"])
    if license_id in policy.allow:
        return _Outcome(True, notes=[f"{subject}: accepted by policy '{policy.name}': {policy.allow[license_id]}"])
    if policy.allow_only:
        return _Outcome(False, reasons=[f"{subject}: policy '{policy.name}' accepts only {', '.join(sorted(policy.allow))}"])
    category = f" (license database category: {known.category})" if known and known.category else ""
    return _Outcome(True, conditions=[
        f"{subject}: a known license{category} whose terms soundscape has not assessed: have it "
        f"reviewed, then add licenses/terms/{license_id}.toml or list it under the policy's "
        "[allow] or [deny]"])


def _judge_id(license_id: str, item: LicensedItem, subject: str, ctx: _Context) -> _Outcome:
    policy = ctx.policy
    if not ctx.registry.assessed(license_id):
        return _judge_known(license_id, subject, ctx)
    terms = ctx.registry.get(license_id)
    problems: list[str] = []
    notes: list[str] = []
    conditions: list[str] = []
    if license_id in policy.deny:
        problems.append(f"denied by policy '{policy.name}': {policy.deny[license_id]}")
    elif license_id == STUDIO_OWNED:
        # The studio's own work owes the studio nothing: no policy of its own can refuse it.
        notes.append("the studio's own work, which owes the studio nothing")
    elif policy.allow_only and license_id not in policy.allow:
        problems.append(f"policy '{policy.name}' accepts only {', '.join(sorted(policy.allow))}")
    elif license_id not in policy.allow:
        if terms.software and policy.software_licenses_allowed is None:
            conditions.append(_SOFTWARE_CONDITION)
        elif terms.software and policy.software_licenses_allowed is False:
            problems.append("a software license on audio, which this policy does not accept")
        else:
            problems.extend(_property_problems(policy, terms))
            more, settled = _property_conditions(policy, terms)
            conditions.extend(more)
            notes.extend(settled)
    if terms.retired and not problems:
        notes.append(f"{terms.name} is retired by its steward: no longer recommended for new work")
    if terms.agreement is not None and not problems:
        agreement_problems, agreement_notes = _agreement_check(terms, ctx)
        problems.extend(agreement_problems)
        notes.extend(agreement_notes)
    if problems:
        return _Outcome(False, reasons=[f"{subject}: {p}" for p in problems],
                        conditions=[f"{subject}: {c}" for c in conditions])
    obligations = []
    if terms.attribution_required and item.credited:
        line = ctx.registry.attribution_line(
            license_id, title=item.name, author=item.author, source=item.source, attribution=item.attribution
        )
        if line:
            obligations.append(line)
    return _Outcome(True, notes=[f"{subject}: {n}" for n in notes], obligations=obligations,
                    conditions=[f"{subject}: {c}" for c in conditions])


def _judge(node, item: LicensedItem, label: str, whole: str, ctx: _Context) -> _Outcome:
    from license_expression import AND, OR, LicenseWithExceptionSymbol

    if isinstance(node, AND):
        parts = [_judge(arg, item, label, whole, ctx) for arg in node.args]
        return _Outcome(
            all(p.accepted for p in parts),
            reasons=[r for p in parts for r in p.reasons],
            notes=[n for p in parts for n in p.notes],
            obligations=[o for p in parts for o in p.obligations],
            conditions=[c for p in parts for c in p.conditions],
        )
    if isinstance(node, OR):
        options = [(arg.render("{symbol.key}"), _judge(arg, item, label, whole, ctx)) for arg in node.args]
        accepted = [(text, o) for text, o in options if o.accepted]
        if not accepted:
            return _Outcome(False, reasons=[r for _, o in options for r in o.reasons])
        # The licensee picks under a disjunctive licence: take an option with nothing left to
        # review if there is one, then the one that owes the least, and break ties by the
        # option's text so the verdict never depends on parse order.
        text, chosen = min(accepted, key=lambda pair: (len(pair[1].conditions), len(set(pair[1].obligations)),
                                                       len(pair[1].notes), pair[0]))
        count = len(set(chosen.obligations))
        choice = (
            f"{label} is {whole}: cleared under {text}, the accepted option with the fewest "
            f"obligations ({count} attribution line{'' if count == 1 else 's'})"
        )
        return _Outcome(True, notes=[choice, *chosen.notes], obligations=chosen.obligations,
                        conditions=chosen.conditions)
    if isinstance(node, LicenseWithExceptionSymbol):
        license_id = node.license_symbol.key
        subject = f"{label} is {whole}"
        outcome = _judge_id(license_id, item, subject, ctx)
        if outcome.accepted:
            outcome.conditions.append(
                f"{subject}: the exception {node.exception_symbol.key} changes what "
                f"{license_id} asks, and soundscape has not assessed it")
        return outcome
    license_id = node.key
    subject = f"{label} is {license_id}" if whole == license_id else f"{label} is {whole}; {license_id}"
    return _judge_id(license_id, item, subject, ctx)


def evaluate(
    policy: Policy,
    items: Sequence[LicensedItem],
    *,
    registry: LicenseRegistry,
    air_date: date | None = None,
    territories: Sequence[str] = (),
    media: str | None = None,
    lineage_unknown: bool = False,
    today: date | None = None,
) -> Verdict:
    """Clear ``items`` (everything behind one output or model) under ``policy``.

    Every item must be accepted: an AND expression needs each part accepted, an OR expression
    one option (one with no condition if there is one, then the one with the fewest attribution
    obligations, named in the notes). A studio agreement must be in force on ``air_date``
    (today when None, and the verdict says so), cover every territory asked (WORLD covers all)
    and the medium when given (``broadcast`` asks for tv and radio).

    Args:
        policy: the policy, from :func:`load_policy`.
        items: the licensed things in the lineage; order does not matter.
        registry: the license registry (load it with the same workspace as the policy).
        air_date: the first transmission date agreements are checked against.
        territories: ISO 3166-1 alpha-2 codes (or WORLD) where the programme airs.
        media: the medium it airs on (tv, radio, streaming, online, cinema, podcast, advertising,
            or a word agreements use such as broadcast).
        lineage_unknown: the model behind it has unknown lineage: never cleared.
        today: the date used when no air date is given (default: the system's date).

    Returns:
        The verdict; deterministic for the same arguments (reasons, conditions and obligations
        sorted). NOT CLEARED when any item is rejected, else NEEDS REVIEW when a condition is
        open, else CLEARED.

    Raises:
        ParameterError: an unknown role, territory or medium.
    """
    try:
        asked = tuple(sorted({normalize_territory(t) for t in territories}))
        medium_list = expand_medium(media) if media else ()
    except LicenseError as exc:
        raise ParameterError(str(exc)) from None
    word = " ".join(str(media).strip().lower().split()) if media else None
    ctx = _Context(policy, registry, air_date, asked, medium_list, word, today or date.today())

    reasons: set[str] = set()
    notes: set[str] = set()
    obligations: set[str] = set()
    conditions: set[str] = set()
    if lineage_unknown:
        reasons.add(
            "model lineage is unknown: what it was trained on cannot be traced, so its outputs are "
            "never cleared under any policy (register the model with --trained-on DATASET)"
        )
    for item in items:
        if item.role not in ROLES:
            raise ParameterError(f"unknown role '{item.role}' for '{item.name}': choose one of {', '.join(ROLES)}")
        label = item.label
        if item.license is None or not str(item.license).strip():
            reasons.add(f"{label} has no license: record one (SPDX id or expression) before it can clear")
            continue
        try:
            tree = registry.parse(item.license)
        except UnknownLicenseError as exc:
            reasons.add(
                f"{label} is {item.license}: unknown license id{'s' if len(exc.ids) > 1 else ''} "
                f"{', '.join(exc.ids)}, neither an SPDX id nor a LicenseRef the license database "
                "knows (add its terms under licenses/ or register the studio agreement)"
            )
            continue
        except LicenseError as exc:
            reasons.add(f"{label} has a license that cannot be read: {exc}")
            continue
        whole = tree.render("{symbol.key}")
        outcome = _judge(tree, item, label, whole, ctx)
        conditions.update(outcome.conditions)
        if outcome.accepted:
            notes.update(outcome.notes)
            obligations.update(outcome.obligations)
        else:
            reasons.update(outcome.reasons)
    if not items and not lineage_unknown:
        notes.add("nothing licensed in the lineage")
    state = NOT_CLEARED if reasons else NEEDS_REVIEW if conditions else CLEARED
    return Verdict(
        policy=policy.name,
        state=state,
        reasons=tuple(sorted(reasons if reasons else notes)),
        obligations=tuple(sorted(obligations)),
        conditions=tuple(sorted(conditions)),
    )
