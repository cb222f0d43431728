"""Clearance: the shipped policies over a table of lineages, and policies a studio edits."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from soundscape.config import LICENSES_DIR
from soundscape.errors import ParameterError
from soundscape.rights.licenses import LicenseRegistry
from soundscape.rights.policy import (
    CLEARED,
    NEEDS_REVIEW,
    NOT_CLEARED,
    LicensedItem,
    Verdict,
    evaluate,
    list_policies,
    load_policy,
)

POLICIES = ("broadcast-commercial", "internal-preproduction", "strict-cc0")
AIR_DATE = date(2026, 6, 1)
TERRITORIES = ("FR", "BE")
MEDIUM = "tv"

# Studio agreements the table clears against, written into a temporary workspace.
AGREEMENTS = {
    "FR-TV": 'start = 2025-01-01\nend = 2027-12-31\nterritories = ["FR", "BE", "CH"]\nmedia = ["tv", "streaming"]\n',
    "OLD": 'start = 2020-01-01\nend = 2024-12-31\nterritories = ["WORLD"]\nmedia = ["all"]\n',
    "US-ONLY": 'start = 2025-01-01\nterritories = ["US"]\nmedia = ["all"]\n',
    "RADIO": 'start = 2025-01-01\nterritories = ["WORLD"]\nmedia = ["radio"]\n',
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    folder = home / "licenses" / "agreements"
    folder.mkdir(parents=True)
    for agreement_id, body in AGREEMENTS.items():
        (folder / f"{agreement_id}.toml").write_text(
            f'agreement_id = "{agreement_id}"\nlicensor = "Acme Music"\n{body}'
        )
    return home


@pytest.fixture(scope="module")
def registry(workspace) -> LicenseRegistry:
    return LicenseRegistry.load(workspace_home=workspace)


def item(role: str, name: str, license: str | None, **kwargs) -> LicensedItem:
    return LicensedItem(role=role, name=name, license=license, **kwargs)


CC0 = item("sample", "wind_01.wav", "CC0-1.0")
CC_BY = item("sample", "bell_02.wav", "CC-BY-4.0", author="Jane Doe", source="https://freesound.org/s/42")
NC = item("training-data", "rain_03.wav", "CC-BY-NC-4.0", author="Rain Person")

# Each row: a lineage, whether its model's lineage is unknown, and for each policy the expected
# outcome and a fragment of a reason (or note) that must appear.
TABLE = [
    ("cc0-only", [CC0], False, {
        "broadcast-commercial": (True, ""),
        "internal-preproduction": (True, ""),
        "strict-cc0": (True, ""),
    }),
    ("cc-by", [CC_BY], False, {
        "broadcast-commercial": (True, '"bell_02.wav" by Jane Doe'),
        "internal-preproduction": (True, '"bell_02.wav" by Jane Doe'),
        "strict-cc0": (False, "sample 'bell_02.wav' is CC-BY-4.0: policy 'strict-cc0' accepts only CC0-1.0"),
    }),
    ("cc-by-nc", [NC], False, {
        "broadcast-commercial": (False, "training-data 'rain_03.wav' is CC-BY-NC-4.0: non-commercial use only"),
        "internal-preproduction": (True, "by Rain Person, licensed under CC BY-NC 4.0"),
        "strict-cc0": (False, "training-data 'rain_03.wav' is CC-BY-NC-4.0: policy 'strict-cc0' accepts only"),
    }),
    ("nd", [item("sample", "choir.wav", "CC-BY-ND-4.0")], False, {
        "broadcast-commercial": (False, "sample 'choir.wav' is CC-BY-ND-4.0: no derivatives allowed"),
        "internal-preproduction": (False, "sample 'choir.wav' is CC-BY-ND-4.0: no derivatives allowed"),
        "strict-cc0": (False, "sample 'choir.wav' is CC-BY-ND-4.0: policy 'strict-cc0' accepts only"),
    }),
    ("share-alike", [item("sample", "drone.wav", "CC-BY-SA-4.0")], False, {
        "broadcast-commercial": (False, "sample 'drone.wav' is CC-BY-SA-4.0: share-alike"),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("sampling-plus", [item("sample", "loop.wav", "LicenseRef-CC-Sampling-Plus-1.0")], False, {
        "broadcast-commercial": (False, "is LicenseRef-CC-Sampling-Plus-1.0: denied by policy 'broadcast-commercial'"),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("agreement-in-force", [item("sample", "lib_07.wav", "LicenseRef-Agreement-FR-TV")], False, {
        "broadcast-commercial": (True, ""),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "sample 'lib_07.wav' is LicenseRef-Agreement-FR-TV: policy 'strict-cc0' accepts only"),
    }),
    ("agreement-expired", [item("sample", "lib_08.wav", "LicenseRef-Agreement-OLD")], False, {
        "broadcast-commercial": (False, "agreement OLD with Acme Music expired on 2024-12-31, before the air date 2026-06-01"),
        "internal-preproduction": (False, "expired on 2024-12-31"),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("agreement-other-territory", [item("sample", "lib_09.wav", "LicenseRef-Agreement-US-ONLY")], False, {
        "broadcast-commercial": (False, "agreement US-ONLY with Acme Music does not cover territories BE, FR (it covers US)"),
        "internal-preproduction": (False, "does not cover territories BE, FR"),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("agreement-other-medium", [item("sample", "lib_10.wav", "LicenseRef-Agreement-RADIO")], False, {
        "broadcast-commercial": (False, "does not cover medium 'tv' (it covers radio)"),
        "internal-preproduction": (False, "does not cover medium 'tv'"),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("unknown-license", [item("sample", "mystery.wav", "LicenseRef-Mystery-2.0")], False, {
        policy: (False, "sample 'mystery.wav' is LicenseRef-Mystery-2.0: unknown license id "
                        "LicenseRef-Mystery-2.0, neither an SPDX id nor a LicenseRef the license "
                        "database knows") for policy in POLICIES
    }),
    # A software licence on audio: the shipped policies do not say whether they accept one.
    ("gpl-on-audio", [item("sample", "synth.wav", "GPL-3.0-only")], False, {
        "broadcast-commercial": (NEEDS_REVIEW, "sample 'synth.wav' is GPL-3.0-only: a software license on audio"),
        "internal-preproduction": (NEEDS_REVIEW, "a software license on audio"),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    # The deprecated SPDX spelling is the same licence (the license database's alias).
    ("gpl-deprecated-id", [item("sample", "synth.wav", "GPL-2.0")], False, {
        "broadcast-commercial": (NEEDS_REVIEW, "is GPL-2.0-only: a software license on audio"),
        "internal-preproduction": (NEEDS_REVIEW, "is GPL-2.0-only: a software license on audio"),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    # Known to the license database, no assessed terms here: a person must read it.
    ("known-unassessed", [item("sample", "pad.wav", "MPL-2.0")], False, {
        "broadcast-commercial": (NEEDS_REVIEW, "sample 'pad.wav' is MPL-2.0: a known license "
                                               "(license database category: Copyleft Limited) whose "
                                               "terms soundscape has not assessed"),
        "internal-preproduction": (NEEDS_REVIEW, "whose terms soundscape has not assessed"),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("public-domain-pddc", [item("sample", "old_78rpm.wav", "CC-PDDC")], False, {
        "broadcast-commercial": (True, ""),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("nc-sa-3", [item("sample", "loop.wav", "CC-BY-NC-SA-3.0")], False, {
        "broadcast-commercial": (False, "is CC-BY-NC-SA-3.0: non-commercial use only"),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("stability-base", [item("base-model", "stable-audio-open", "LicenseRef-Stability-AI-Community")], False, {
        "broadcast-commercial": (False, "denied by policy 'broadcast-commercial'"),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("missing-license", [CC0, item("sample", "nolicense.wav", None)], False, {
        policy: (False, "sample 'nolicense.wav' has no license") for policy in POLICIES
    }),
    ("mix-cc0-ccby-nc", [CC0, CC_BY, NC], False, {
        "broadcast-commercial": (False, "training-data 'rain_03.wav' is CC-BY-NC-4.0: non-commercial use only"),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "sample 'bell_02.wav' is CC-BY-4.0: policy 'strict-cc0' accepts only"),
    }),
    ("or-cc0-or-ccby", [item("sample", "dual.wav", "CC0-1.0 OR CC-BY-4.0", author="Dual Author")], False, {
        policy: (True, "sample 'dual.wav' is CC0-1.0 OR CC-BY-4.0: cleared under CC0-1.0") for policy in POLICIES
    }),
    ("or-nc-or-ccby", [item("sample", "either.wav", "CC-BY-NC-4.0 OR CC-BY-4.0", author="E. Ither")], False, {
        "broadcast-commercial": (True, "cleared under CC-BY-4.0"),
        "internal-preproduction": (True, "cleared under CC-BY-4.0"),
        "strict-cc0": (False, "sample 'either.wav' is CC-BY-NC-4.0 OR CC-BY-4.0; CC-BY-NC-4.0: policy 'strict-cc0'"),
    }),
    ("and-expression", [item("ingredient", "stem.wav", "CC0-1.0 AND CC-BY-NC-4.0")], False, {
        "broadcast-commercial": (False, "ingredient 'stem.wav' is CC0-1.0 AND CC-BY-NC-4.0; CC-BY-NC-4.0: non-commercial"),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "CC-BY-NC-4.0: policy 'strict-cc0' accepts only"),
    }),
    ("musicgen-fine-tune", [item("base-model", "facebook/musicgen-small", "CC-BY-NC-4.0"), CC0], False, {
        "broadcast-commercial": (False, "base-model 'facebook/musicgen-small' is CC-BY-NC-4.0: non-commercial use only"),
        "internal-preproduction": (True, ""),
        "strict-cc0": (False, "accepts only CC0-1.0"),
    }),
    ("model-from-scratch", [item("model", "ambient-v1", "LicenseRef-Studio-Owned"), CC0], False, {
        "broadcast-commercial": (True, ""),
        "internal-preproduction": (True, ""),
        # The studio's own model owes the studio nothing, even under CC0-only.
        "strict-cc0": (True, "model 'ambient-v1' is LicenseRef-Studio-Owned: the studio's own work, which owes the studio nothing"),
    }),
    ("unknown-lineage", [CC0], True, {
        policy: (False, "model lineage is unknown") for policy in POLICIES
    }),
]  # fmt: skip

CASES = [
    pytest.param(name, items, unknown, policy, *expected[policy], id=f"{name}-{policy}")
    for name, items, unknown, expected in TABLE
    for policy in POLICIES
]


@pytest.mark.parametrize(("lineage", "items", "lineage_unknown", "policy_name", "cleared", "fragment"), CASES)
def test_clearance_table(registry, workspace, lineage, items, lineage_unknown, policy_name, cleared, fragment):
    policy = load_policy(policy_name, workspace_home=workspace, registry=registry)
    verdict = evaluate(
        policy,
        items,
        registry=registry,
        air_date=AIR_DATE,
        territories=TERRITORIES,
        media=MEDIUM,
        lineage_unknown=lineage_unknown,
    )
    assert isinstance(verdict, Verdict)
    assert verdict.policy == policy_name
    state = {True: CLEARED, False: NOT_CLEARED}.get(cleared, cleared)
    assert verdict.state == state, (verdict.reasons, verdict.conditions)
    assert verdict.exit_code == {CLEARED: 0, NOT_CLEARED: 4, NEEDS_REVIEW: 5}[state]
    # When cleared, the fragment may be a note or a credit line owed; under review, a condition.
    said = verdict.reasons + (verdict.obligations if cleared is True else ()) + verdict.conditions
    assert not fragment or any(fragment in line for line in said), said
    if state == NEEDS_REVIEW:
        assert verdict.conditions and not verdict.cleared
    if cleared is False:
        assert verdict.reasons
        # Every reason names an item and its role, or is the lineage rule.
        for reason in verdict.reasons:
            assert reason.startswith("model lineage is unknown") or any(
                reason.startswith(f"{i.role} '{i.name}'") for i in items
            ), reason
    assert list(verdict.reasons) == sorted(verdict.reasons)
    assert list(verdict.obligations) == sorted(set(verdict.obligations))


def test_attribution_becomes_an_obligation_that_names_the_author(registry):
    verdict = evaluate(load_policy("broadcast-commercial", registry=registry), [CC_BY, CC0], registry=registry)
    assert verdict.cleared
    assert verdict.obligations == (
        '"bell_02.wav" by Jane Doe (https://freesound.org/s/42), licensed under CC BY 4.0 '
        "(https://creativecommons.org/licenses/by/4.0/legalcode)",
    )


def test_obligations_are_deduplicated_and_cc0_owes_none(registry):
    policy = load_policy("internal-preproduction", registry=registry)
    verdict = evaluate(policy, [CC_BY, CC_BY, NC, CC0], registry=registry)
    assert len(verdict.obligations) == 2
    assert any("Rain Person" in line and "CC BY-NC 4.0" in line for line in verdict.obligations)
    assert not any("wind_01.wav" in line for line in verdict.obligations)


def test_or_expression_takes_the_option_with_fewest_obligations(registry):
    policy = load_policy("broadcast-commercial", registry=registry)
    verdict = evaluate(policy, [item("sample", "dual.wav", "CC-BY-4.0 OR CC0-1.0", author="A")], registry=registry)
    assert verdict.cleared and verdict.obligations == ()
    assert "cleared under CC0-1.0" in verdict.reasons[0]


def test_verdict_does_not_depend_on_item_order(registry):
    policy = load_policy("broadcast-commercial", registry=registry)
    items = [CC0, CC_BY, NC, item("sample", "choir.wav", "CC-BY-ND-4.0"), item("model", "m", None)]
    first = evaluate(policy, items, registry=registry, air_date=AIR_DATE)
    second = evaluate(policy, list(reversed(items)), registry=registry, air_date=AIR_DATE)
    assert first == second
    assert len(first.reasons) == 3
    assert first.describe() == {
        "policy": "broadcast-commercial",
        "status": "NOT CLEARED",
        "cleared": False,
        "reasons": list(first.reasons),
        "conditions": [],
        "obligations": list(first.obligations),
    }


def test_without_an_air_date_agreements_are_checked_against_today_and_the_verdict_says_so(registry):
    policy = load_policy("broadcast-commercial", registry=registry)
    lineage = [item("sample", "lib_07.wav", "LicenseRef-Agreement-FR-TV")]
    in_force = evaluate(policy, lineage, registry=registry, today=date(2026, 2, 1))
    assert in_force.cleared
    assert any("no air date given" in note and "2026-02-01" in note for note in in_force.reasons)
    lapsed = evaluate(policy, lineage, registry=registry, today=date(2028, 2, 1))
    assert not lapsed.cleared
    assert any("expired on 2027-12-31, before today, 2028-02-01 (no air date given)" in r for r in lapsed.reasons)


def test_world_agreement_covers_any_territory_and_all_covers_any_medium(registry):
    policy = load_policy("broadcast-commercial", registry=registry)
    lineage = [item("sample", "old.wav", "LicenseRef-Agreement-OLD")]
    verdict = evaluate(policy, lineage, registry=registry, air_date=date(2023, 5, 1), territories=["JP", "br"], media="radio")
    assert verdict.cleared, verdict.reasons


def test_an_agreement_not_yet_in_force_is_rejected(registry):
    policy = load_policy("broadcast-commercial", registry=registry)
    lineage = [item("sample", "lib_07.wav", "LicenseRef-Agreement-FR-TV")]
    verdict = evaluate(policy, lineage, registry=registry, air_date=date(2024, 12, 31))
    assert not verdict.cleared
    assert any("starts 2025-01-01, after the air date 2024-12-31" in r for r in verdict.reasons)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"territories": ["UK"]}, "GB"),
        ({"media": "carrier-pigeon"}, "unknown medium"),
    ],
)
def test_bad_context_is_a_parameter_error(registry, kwargs, fragment):
    with pytest.raises(ParameterError, match=fragment):
        evaluate(load_policy("strict-cc0", registry=registry), [CC0], registry=registry, **kwargs)


def test_unknown_role_is_a_parameter_error(registry):
    with pytest.raises(ParameterError, match="unknown role 'sampel'"):
        evaluate(load_policy("strict-cc0", registry=registry), [item("sampel", "x.wav", "CC0-1.0")], registry=registry)


def test_shipped_policies_are_listed_and_unknown_names_are_refused():
    assert set(POLICIES) <= set(list_policies())
    with pytest.raises(ParameterError, match="unknown policy 'air-anything': choose one of broadcast-commercial"):
        load_policy("air-anything")
    with pytest.raises(ParameterError, match="unknown policy"):
        load_policy("../policies/strict-cc0")


def test_a_policy_copied_into_the_workspace_and_edited_is_the_one_loaded(tmp_path):
    shipped = LICENSES_DIR / "policies" / "broadcast-commercial.toml"
    (tmp_path / "policies").mkdir()
    copy = tmp_path / "policies" / "broadcast-commercial.toml"
    text = shipped.read_text()
    assert "share_alike = false" in text
    copy.write_text(text.replace("share_alike = false", "share_alike = true"))

    registry = LicenseRegistry.load(workspace_home=tmp_path)
    lineage = [item("sample", "drone.wav", "CC-BY-SA-4.0")]
    edited = load_policy("broadcast-commercial", workspace_home=tmp_path)
    original = load_policy("broadcast-commercial")
    assert edited.path == copy and original.path == shipped
    assert edited.share_alike_allowed and not original.share_alike_allowed
    assert evaluate(edited, lineage, registry=registry).cleared
    assert not evaluate(original, lineage, registry=registry).cleared


def test_a_new_workspace_policy_is_listed(tmp_path):
    (tmp_path / "policies").mkdir()
    shutil.copy(LICENSES_DIR / "policies" / "strict-cc0.toml", tmp_path / "policies" / "my-channel.toml")
    assert "my-channel" in list_policies(workspace_home=tmp_path)
    assert load_policy("my-channel", workspace_home=tmp_path).name == "my-channel"


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace("share_alike = false", "shareAlike = false"), "unknown key(s) shareAlike"),
        (lambda t: t.replace("derivatives = true", ""), "missing 'derivatives'"),
        (lambda t: t.replace("commercial_use = true", 'commercial_use = "yes"'), "must be true or false"),
        (lambda t: t + '\n[deny]\n"GPL-2.0" = "no"\n', "not valid TOML"),  # [deny] twice
        (lambda t: t.replace("[deny]", '[deny]\n"GPL-9.9" = "copyleft"'), "unknown license id 'GPL-9.9'"),
        (lambda t: t.replace("[deny]", '[deny]\n"CC0-1.0" = "no"'), "in both [allow] and [deny]"),
        (lambda t: "unknown_lineage = true\n" + t, "never cleared"),
        (lambda t: t.replace("[allow]\n\"CC0-1.0\"", "[allow]\n#"), "would clear nothing"),
    ],
)
def test_a_badly_edited_policy_is_refused_naming_the_file(tmp_path, edit, fragment):
    (tmp_path / "policies").mkdir()
    path = tmp_path / "policies" / "strict-cc0.toml"
    path.write_text(edit((LICENSES_DIR / "policies" / "strict-cc0.toml").read_text()))
    with pytest.raises(ParameterError) as caught:
        load_policy("strict-cc0", workspace_home=tmp_path)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_folder_named_like_a_policy_is_not_offered(tmp_path):
    # Formerly: "unknown policy 'draft': choose one of ..., draft, ..." for a folder draft.toml.
    (tmp_path / "policies" / "draft.toml").mkdir(parents=True)
    assert "draft" not in list_policies(workspace_home=tmp_path)
    with pytest.raises(ParameterError) as info:
        load_policy("draft", workspace_home=tmp_path)
    offered = [n.strip() for n in str(info.value).split("choose one of")[1].split(",")]
    assert "draft" not in offered and "strict-cc0" in offered


# --- the third state: conditions, and the policy facts that settle them -----------------------


def _policy_text(accept: str = "", studio: str = "") -> str:
    return ("description = \"t\"\n[require]\ncommercial_use = true\nderivatives = true\n"
            f"[accept]\nattribution = true\nagreements = true\n{accept}\n"
            + (f"[studio]\n{studio}\n" if studio else ""))


def _read(tmp_path, registry, name: str, text: str):
    from soundscape.rights.policy import read_policy_file

    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return read_policy_file(path, registry=registry)


def test_an_or_takes_the_option_with_nothing_to_review(registry, tmp_path):
    policy = _read(tmp_path, registry, "p", _policy_text())
    verdict = evaluate(policy, [item("sample", "dual.wav", "GPL-3.0-only OR CC-BY-4.0", author="A")],
                       registry=registry)
    assert verdict.state == CLEARED and verdict.conditions == ()
    assert "cleared under CC-BY-4.0" in verdict.reasons[0]


def test_a_with_exception_is_a_condition_naming_it(registry, tmp_path):
    policy = _read(tmp_path, registry, "p", _policy_text("share_alike = true\nsoftware_licenses = true"))
    verdict = evaluate(policy, [item("sample", "x.wav", "GPL-2.0-or-later WITH Classpath-exception-2.0")],
                       registry=registry)
    assert verdict.state == NEEDS_REVIEW
    assert any("the exception Classpath-exception-2.0" in c for c in verdict.conditions)


def test_a_refused_item_wins_over_an_open_condition(registry, tmp_path):
    policy = _read(tmp_path, registry, "p", _policy_text())
    verdict = evaluate(policy, [item("sample", "sa.wav", "CC-BY-SA-4.0"),
                                item("sample", "nc.wav", "CC-BY-NC-4.0")], registry=registry)
    assert verdict.state == NOT_CLEARED and verdict.exit_code == 4
    assert any("nc.wav" in r for r in verdict.reasons)
    assert any("sa.wav" in c and "share-alike" in c for c in verdict.conditions)


@pytest.mark.parametrize(("studio", "fragment"), [
    ("annual_revenue_usd = -5", "annual_revenue_usd must be a whole number"),
    ("annual_revenue_usd = \"1M\"", "annual_revenue_usd must be a whole number"),
    ("revenue = 5", "unknown key(s) revenue in studio"),
])
def test_bad_studio_facts_are_refused_naming_the_file(registry, tmp_path, studio, fragment):
    with pytest.raises(ParameterError, match=re.escape(fragment)):
        _read(tmp_path, registry, "bad", _policy_text("share_alike = false", studio))


def test_a_known_unassessed_id_can_be_allowed_or_denied_by_name(registry, tmp_path):
    allowed = _read(tmp_path, registry, "a", _policy_text("share_alike = false")
                    + '[allow]\n"MPL-2.0" = "reviewed by legal, RIGHTS-7"\n')
    denied = _read(tmp_path, registry, "d", _policy_text("share_alike = false")
                   + '[deny]\n"mpl-2.0" = "not for us"\n')
    lineage = [item("sample", "pad.wav", "MPL-2.0")]
    assert evaluate(allowed, lineage, registry=registry).state == CLEARED
    refused = evaluate(denied, lineage, registry=registry)
    assert refused.state == NOT_CLEARED and "not for us" in refused.reasons[0]
