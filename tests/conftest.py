"""Fixtures every test may use: one seeded random generator, as librosa's tests keep one."""

from __future__ import annotations

import numpy as np
import pytest

# One seed for the noise in every test: a failure reproduces exactly.
RNG_SEED = 440


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator seeded with :data:`RNG_SEED`: every test draws the same numbers."""
    return np.random.default_rng(seed=RNG_SEED)


@pytest.fixture(scope="session")
def make_rng():
    """Fresh seeded generators for fixtures that outlive one test (module or session scope)."""
    return lambda: np.random.default_rng(seed=RNG_SEED)
