"""The license registry: terms data, SPDX expressions, studio agreements, base-model licenses."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from soundscape.config import LICENSES_DIR
from soundscape.errors import LicenseError
from soundscape.rights.licenses import (
    Agreement,
    LicenseRegistry,
    LicenseTerms,
    UnknownLicenseError,
    base_model_license,
)

REQUIRED_IDS = [
    "CC0-1.0",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0",
    "LicenseRef-CC-Sampling-Plus-1.0",
    "MIT",
    "Apache-2.0",
    "LicenseRef-Stability-AI-Community",
]


@pytest.fixture(scope="module")
def registry() -> LicenseRegistry:
    return LicenseRegistry.load()


def write_agreement(home: Path, agreement_id: str, body: str) -> Path:
    folder = home / "licenses" / "agreements"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{agreement_id}.toml"
    path.write_text(f'agreement_id = "{agreement_id}"\nlicensor = "Acme Music"\n{body}')
    return path


def test_registry_holds_every_required_license(registry):
    assert set(REQUIRED_IDS) <= set(registry.ids)
    for license_id in REQUIRED_IDS:
        terms = registry.get(license_id)
        assert isinstance(terms, LicenseTerms)
        assert terms.id == license_id
        assert terms.name and terms.url.startswith("https://")
        # A license that asks for credit must say how to print it.
        if terms.attribution_required:
            assert "{work}" in terms.attribution_template


@pytest.mark.parametrize(
    ("license_id", "commercial", "derivatives", "share_alike", "attribution"),
    [
        ("CC0-1.0", True, True, False, False),
        ("CC-BY-4.0", True, True, False, True),
        ("CC-BY-SA-4.0", True, True, True, True),
        ("CC-BY-NC-4.0", False, True, False, True),
        ("CC-BY-NC-SA-4.0", False, True, True, True),
        ("CC-BY-ND-4.0", True, False, False, True),
        ("CC-BY-NC-ND-4.0", False, False, False, True),
    ],
)
def test_creative_commons_flags_match_the_license_names(registry, license_id, commercial, derivatives, share_alike, attribution):
    terms = registry.get(license_id)
    assert (terms.commercial_use, terms.derivatives_allowed, terms.share_alike, terms.attribution_required) == (
        commercial,
        derivatives,
        share_alike,
        attribution,
    )


def test_unknown_id_names_it_and_lists_the_known(registry):
    with pytest.raises(LicenseError, match=r"unknown license id 'GPL-9\.9' \(known: .*CC0-1\.0"):
        registry.get("GPL-9.9")


def test_ids_match_case_insensitively(registry):
    assert registry.get("cc-by-4.0").id == "CC-BY-4.0"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("CC-BY-4.0 AND CC0-1.0", "CC-BY-4.0 AND CC0-1.0"),
        ("cc-by-4.0 and cc0-1.0", "CC-BY-4.0 AND CC0-1.0"),
        ("CC0-1.0 OR (CC-BY-4.0 AND MIT)", "CC0-1.0 OR (CC-BY-4.0 AND MIT)"),
        ("LicenseRef-CC-Sampling-Plus-1.0", "LicenseRef-CC-Sampling-Plus-1.0"),
        ("LicenseRef-Stability-AI-Community OR Apache-2.0", "LicenseRef-Stability-AI-Community OR Apache-2.0"),
        ("LicenseRef-Agreement-EXAMPLE-0001 AND CC0-1.0", "LicenseRef-Agreement-EXAMPLE-0001 AND CC0-1.0"),
    ],
)
def test_normalize_accepts_known_ids_and_license_refs(registry, expression, expected):
    assert registry.normalize(expression) == expected


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("GPL-9.9", "unknown license id 'GPL-9.9'"),
        ("CC-BY-4.0 AND LicenseRef-Nope", "unknown license id 'LicenseRef-Nope'"),
        ("CC-BY-4.0 AND", "malformed license expression"),
        ("(CC0-1.0 OR CC-BY-4.0", "malformed license expression"),
        ("CC0-1.0 CC-BY-4.0", "malformed license expression"),
        ("CC0-1.0 AND OR MIT", "malformed license expression"),
        ("CC-BY-4.0 WITH CC0-1.0", "malformed license expression"),
        ("", "empty license expression"),
        ("   ", "empty license expression"),
    ],
)
def test_normalize_rejects_unknown_ids_and_malformed_expressions(registry, expression, fragment):
    with pytest.raises(LicenseError) as caught:
        registry.normalize(expression)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_ids_are_reported_as_such(registry):
    with pytest.raises(UnknownLicenseError) as caught:
        registry.normalize("GPL-9.9 OR CC0-1.0 OR FOO")
    assert caught.value.ids == ["GPL-9.9", "FOO"]


def test_ids_in_lists_distinct_ids_in_order(registry):
    assert registry.ids_in("CC0-1.0 OR (cc-by-4.0 AND CC0-1.0)") == ["CC0-1.0", "CC-BY-4.0"]


def test_attribution_line_names_title_author_source_and_license(registry):
    line = registry.attribution_line(
        "CC-BY-4.0", title="rain_03.wav", author="Jane Doe", source="https://freesound.org/s/1234"
    )
    assert line == (
        '"rain_03.wav" by Jane Doe (https://freesound.org/s/1234), licensed under CC BY 4.0 '
        "(https://creativecommons.org/licenses/by/4.0/legalcode)"
    )


def test_attribution_line_uses_the_licensors_own_credit_verbatim(registry):
    line = registry.attribution_line("CC-BY-3.0", title="x.wav", author="ignored", attribution="Rain by J. Doe / Field Tapes")
    assert line.startswith("Rain by J. Doe / Field Tapes, licensed under CC BY 3.0")
    assert "ignored" not in line


def test_example_agreement_is_a_license_ref_with_its_terms(registry):
    terms = registry.get("LicenseRef-Agreement-EXAMPLE-0001")
    assert terms.agreement == Agreement(
        agreement_id="EXAMPLE-0001",
        licensor="Example Music Library Ltd",
        start=date(2026, 1, 1),
        end=date(2028, 12, 31),
        territories=("BE", "CH", "FR", "LU"),
        media=("online", "streaming", "tv"),
    )
    assert "Example Music Library Ltd" in registry.attribution_line(terms.id, title="Deep Blue")


def test_workspace_agreement_joins_the_registry(tmp_path):
    write_agreement(
        tmp_path,
        "ACME-2027-004",
        'start = 2027-01-01\nterritories = ["gb", "IE"]\nmedia = ["TV", "streaming"]\n',
    )
    assert "LicenseRef-Agreement-ACME-2027-004" not in LicenseRegistry.load()
    registry = LicenseRegistry.load(workspace_home=tmp_path)
    terms = registry.get("LicenseRef-Agreement-ACME-2027-004")
    assert terms.agreement.end is None  # perpetual
    assert terms.agreement.territories == ("GB", "IE")
    assert terms.agreement.media == ("streaming", "tv")
    assert (terms.commercial_use, terms.derivatives_allowed, terms.share_alike) == (True, True, False)
    assert registry.normalize("licenseref-agreement-acme-2027-004 AND CC0-1.0") == (
        "LicenseRef-Agreement-ACME-2027-004 AND CC0-1.0"
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('start = 2027-01-01\nterritories = ["UK"]\nmedia = ["tv"]\n', "GB"),
        ('start = 2027-01-01\nterritories = ["FR"]\nmedia = ["telepathy"]\n', "unknown medium 'telepathy'"),
        ('start = 2027-01-01\nend = 2026-01-01\nterritories = ["FR"]\nmedia = ["tv"]\n', "before start"),
        ('start = 2027-01-01\nterritories = ["FR"]\nmedia = ["tv"]\nderivative_allowed = true\n', "unknown key"),
        ('territories = ["FR"]\nmedia = ["tv"]\n', "missing 'start'"),
        ('start = "soon"\nterritories = ["FR"]\nmedia = ["tv"]\n', "'start' must be date"),
        ('start = 2027-01-01\nterritories = []\nmedia = ["tv"]\n', "at least one"),
        ('start = 2027-01-01\nterritories = ["FR"]\nmedia = ["tv"]\nattribution_template = "{who}"\n', "unknown field"),
    ],
)
def test_bad_agreement_files_are_refused_naming_the_file(tmp_path, body, fragment):
    path = write_agreement(tmp_path, "BAD-1", body)
    with pytest.raises(LicenseError) as caught:
        LicenseRegistry.load(workspace_home=tmp_path)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_an_id_defined_twice_is_refused(tmp_path):
    folder = tmp_path / "licenses" / "agreements"
    folder.mkdir(parents=True)
    shutil.copy(LICENSES_DIR / "agreements" / "EXAMPLE-0001.toml", folder / "copy.toml")
    with pytest.raises(LicenseError, match="defined twice"):
        LicenseRegistry.load(workspace_home=tmp_path)


@pytest.mark.parametrize(
    ("name_or_path", "expected_name"),
    [
        ("facebook/musicgen-small", "facebook/musicgen-small"),
        ("facebook/musicgen-medium", "facebook/musicgen-medium"),
        ("facebook/musicgen-large", "facebook/musicgen-large"),
        ("facebook/musicgen-melody", "facebook/musicgen-melody"),
        ("facebook/musicgen-stereo-small", "facebook/musicgen-stereo-small"),
        ("facebook/musicgen-stereo-melody-large", "facebook/musicgen-stereo-melody-large"),
        ("facebook/encodec_32khz", "facebook/encodec_32khz"),
        ("musicgen-small", "facebook/musicgen-small"),
        ("/srv/models/musicgen-large/", "facebook/musicgen-large"),
        ("/home/me/.cache/huggingface/hub/models--facebook--musicgen-melody/snapshots/0123abc", "facebook/musicgen-melody"),
        ("facebook/musicgen-style", "facebook/musicgen-style"),
    ],
)
def test_meta_musicgen_weights_are_cc_by_nc(name_or_path, expected_name):
    info = base_model_license(name_or_path)
    assert info is not None
    assert info.name == expected_name
    assert info.license == "CC-BY-NC-4.0"
    assert "audiocraft" in info.source and "LICENSE_weights" in info.source


@pytest.mark.parametrize("name_or_path", ["studio/ambient-v2", "/srv/models/my-musicgen", "musicgen-ambient-v2", ""])
def test_models_we_have_no_record_of_are_none(name_or_path):
    assert base_model_license(name_or_path) is None


def test_base_model_licenses_are_registry_ids(registry):
    assert registry.get(base_model_license("facebook/musicgen-small").license).commercial_use is False
