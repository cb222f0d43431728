"""Fixtures for the composer's tests: engines with and without sound banks, and a cue maker."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundscape.engines.composer import ComposerEngine
from soundscape.engines.composer.soundbank import installed_banks

@pytest.fixture(scope="session")
def banks_installed() -> bool:
    found, _ = installed_banks()
    return bool(found)


@pytest.fixture(scope="session")
def composer(tmp_path_factory, banks_installed) -> ComposerEngine:
    """The composer with the installed sound banks and no sample library (an empty folder)."""
    if not banks_installed:
        pytest.skip("no sound bank installed (make test installs fluid-soundfont-gm and "
                    "musescore-general-soundfont as root)")
    return ComposerEngine(samples_dir=tmp_path_factory.mktemp("no-samples"))


@pytest.fixture(scope="session")
def synth_only(tmp_path_factory) -> ComposerEngine:
    """The composer with its own synth voices only (no bank, no library)."""
    return ComposerEngine(samples_dir=tmp_path_factory.mktemp("no-samples"), banks=[])


@pytest.fixture(scope="session")
def library_dir() -> Path:
    from soundscape.config import SAMPLES_DIR

    return Path(SAMPLES_DIR)
