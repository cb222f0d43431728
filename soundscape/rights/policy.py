"""Clearance: judge everything behind an output or a model against a policy, with every reason.

A policy is a TOML file in ``licenses/policies/`` (or ``<SOUNDSCAPE_HOME>/policies/``, which wins
on a name clash) saying which license properties it accepts, plus explicit allow and deny lists.
:func:`evaluate` turns a list of :class:`LicensedItem` into a :class:`Verdict`: cleared or not,
every reason, and the attribution lines to credit.

Three things are never cleared, whatever a policy says: an item with no license, a license id the
registry does not know, and unknown model lineage (what such a model learnt from cannot be
checked, so its outputs are never CLEARED). They are rules of the ledger, not choices of a
studio, so they are not policy settings.
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
    LicenseRegistry,
    LicenseTerms,
    UnknownLicenseError,
    normalize_medium,
    normalize_territory,
)

POLICIES_DIR = "policies"
ROLES = ("sample", "ingredient", "sound-bank", "training-data", "base-model", "model")
"""What an item is to the thing being cleared."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_TOP_KEYS = {"description", "allow_only", "require", "accept", "allow", "deny"}
_REQUIRE_KEYS = {"commercial_use", "derivatives"}
_ACCEPT_KEYS = {"share_alike", "attribution", "agreements"}


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
    """

    role: str
    name: str
    license: str | None
    attribution: str | None = None
    author: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of clearing a lineage under one policy.

    ``reasons`` lists every reason it is not cleared, each naming the item, its role and its
    license; when cleared it holds notes instead (which OR option was chosen, what was not
    checked). ``obligations`` are the distinct attribution lines to credit. Both sorted.
    """

    policy: str
    cleared: bool
    reasons: tuple[str, ...]
    obligations: tuple[str, ...]

    @property
    def status(self) -> str:
        """``CLEARED`` or ``NOT CLEARED``, as printed."""
        return "CLEARED" if self.cleared else "NOT CLEARED"

    def describe(self) -> dict:
        """A JSON-ready dict of the verdict."""
        return {
            "policy": self.policy,
            "status": self.status,
            "cleared": self.cleared,
            "reasons": list(self.reasons),
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
    share_alike_allowed: bool = False
    attribution_allowed: bool = True
    agreements_allowed: bool = True
    allow_only: bool = False
    allow: Mapping[str, str] = field(default_factory=dict)
    deny: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None

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
            },
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


def _flag(path: Path, table: dict, section: str, key: str) -> bool:
    if key not in table:
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
        share_alike_allowed=_flag(path, accept, "accept", "share_alike"),
        attribution_allowed=_flag(path, accept, "accept", "attribution"),
        agreements_allowed=_flag(path, accept, "accept", "agreements"),
        allow_only=allow_only,
        allow=allow,
        deny=deny,
        path=path,
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


@dataclass(frozen=True)
class _Context:
    policy: Policy
    registry: LicenseRegistry
    air_date: date | None
    territories: tuple[str, ...]
    medium: str | None
    today: date


def _property_problems(policy: Policy, terms: LicenseTerms) -> list[str]:
    problems = []
    if policy.commercial_use_required and not terms.commercial_use:
        problems.append("non-commercial use only")
    if policy.derivatives_required and not terms.derivatives_allowed:
        problems.append("no derivatives allowed, and every use here adapts the work")
    if not policy.share_alike_allowed and terms.share_alike:
        problems.append(
            "share-alike: anything made from it must carry the same license, which this policy does not accept"
        )
    if not policy.attribution_allowed and terms.attribution_required:
        problems.append("requires attribution, which this policy does not accept")
    if terms.agreement is not None and not policy.agreements_allowed:
        problems.append("studio agreements are not accepted by this policy")
    return problems


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
    if ctx.medium is not None:
        if not agreement.covers_medium(ctx.medium):
            covered = ", ".join(agreement.media)
            problems.append(f"{label} does not cover medium '{ctx.medium}' (it covers {covered})")
    else:
        notes.append(f"no medium given: media of {label} not checked")
    return problems, notes


def _judge_id(license_id: str, item: LicensedItem, subject: str, ctx: _Context) -> _Outcome:
    policy = ctx.policy
    terms = ctx.registry.get(license_id)
    problems: list[str] = []
    notes: list[str] = []
    if license_id in policy.deny:
        problems.append(f"denied by policy '{policy.name}': {policy.deny[license_id]}")
    elif policy.allow_only and license_id not in policy.allow:
        problems.append(f"policy '{policy.name}' accepts only {', '.join(sorted(policy.allow))}")
    elif license_id not in policy.allow:
        problems.extend(_property_problems(policy, terms))
    if terms.agreement is not None and not problems:
        agreement_problems, notes = _agreement_check(terms, ctx)
        problems.extend(agreement_problems)
    if problems:
        return _Outcome(False, reasons=[f"{subject}: {p}" for p in problems])
    obligations = []
    if terms.attribution_required:
        line = ctx.registry.attribution_line(
            license_id, title=item.name, author=item.author, source=item.source, attribution=item.attribution
        )
        if line:
            obligations.append(line)
    return _Outcome(True, notes=[f"{subject}: {n}" for n in notes], obligations=obligations)


def _judge(node, item: LicensedItem, label: str, whole: str, ctx: _Context) -> _Outcome:
    from license_expression import AND, OR

    if isinstance(node, AND):
        parts = [_judge(arg, item, label, whole, ctx) for arg in node.args]
        return _Outcome(
            all(p.accepted for p in parts),
            reasons=[r for p in parts for r in p.reasons],
            notes=[n for p in parts for n in p.notes],
            obligations=[o for p in parts for o in p.obligations],
        )
    if isinstance(node, OR):
        options = [(arg.render("{symbol.key}"), _judge(arg, item, label, whole, ctx)) for arg in node.args]
        accepted = [(text, o) for text, o in options if o.accepted]
        if not accepted:
            return _Outcome(False, reasons=[r for _, o in options for r in o.reasons])
        # The licensee picks under a disjunctive licence: take the option that owes the least,
        # and break ties by the option's text so the verdict never depends on parse order.
        text, chosen = min(accepted, key=lambda pair: (len(set(pair[1].obligations)), len(pair[1].notes), pair[0]))
        count = len(set(chosen.obligations))
        choice = (
            f"{label} is {whole}: cleared under {text}, the accepted option with the fewest "
            f"obligations ({count} attribution line{'' if count == 1 else 's'})"
        )
        return _Outcome(True, notes=[choice, *chosen.notes], obligations=chosen.obligations)
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
    one option (the one with the fewest attribution obligations, named in the notes). A studio
    agreement must be in force on ``air_date`` (today when None, and the verdict says so), cover
    every territory asked (WORLD covers all) and the medium when given.

    Args:
        policy: the policy, from :func:`load_policy`.
        items: the licensed things in the lineage; order does not matter.
        registry: the license registry (load it with the same workspace as the policy).
        air_date: the first transmission date agreements are checked against.
        territories: ISO 3166-1 alpha-2 codes (or WORLD) where the programme airs.
        media: the medium it airs on (tv, radio, streaming, online, cinema, podcast, advertising).
        lineage_unknown: the model behind it has unknown lineage: never cleared.
        today: the date used when no air date is given (default: the system's date).

    Returns:
        The verdict; deterministic for the same arguments (reasons and obligations sorted).

    Raises:
        ParameterError: an unknown role, territory or medium.
    """
    try:
        asked = tuple(sorted({normalize_territory(t) for t in territories}))
        medium = normalize_medium(media) if media else None
    except LicenseError as exc:
        raise ParameterError(str(exc)) from None
    ctx = _Context(policy, registry, air_date, asked, medium, today or date.today())

    reasons: set[str] = set()
    notes: set[str] = set()
    obligations: set[str] = set()
    if lineage_unknown:
        reasons.add(
            "model lineage is unknown: what it was trained on cannot be traced, so its outputs are "
            "never cleared under any policy (register the model with --trained-on DATASET)"
        )
    for item in items:
        if item.role not in ROLES:
            raise ParameterError(f"unknown role '{item.role}' for '{item.name}': choose one of {', '.join(ROLES)}")
        label = f"{item.role} '{item.name}'"
        if item.license is None or not str(item.license).strip():
            reasons.add(f"{label} has no license: record one (SPDX id or expression) before it can clear")
            continue
        try:
            tree = registry.parse(item.license)
        except UnknownLicenseError as exc:
            reasons.add(
                f"{label} is {item.license}: unknown license id{'s' if len(exc.ids) > 1 else ''} "
                f"{', '.join(exc.ids)}, whose terms are not in the registry (add them under licenses/ "
                "or register the studio agreement)"
            )
            continue
        except LicenseError as exc:
            reasons.add(f"{label} has a license that cannot be read: {exc}")
            continue
        whole = tree.render("{symbol.key}")
        outcome = _judge(tree, item, label, whole, ctx)
        if outcome.accepted:
            notes.update(outcome.notes)
            obligations.update(outcome.obligations)
        else:
            reasons.update(outcome.reasons)
    if not items and not lineage_unknown:
        notes.add("nothing licensed in the lineage")
    cleared = not reasons
    return Verdict(
        policy=policy.name,
        cleared=cleared,
        reasons=tuple(sorted(reasons if not cleared else notes)),
        obligations=tuple(sorted(obligations)),
    )
