"""Fixtures every test may use: one seeded random generator, as librosa's tests keep one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


# -- ledger backends ---------------------------------------------------------------------------
# The ledger's tests run on SQLite and on PostgreSQL. The server is private to this test run
# (tests/pgserver.py: initdb into a temporary folder, a unix socket only, an unprivileged user),
# started once on first use and stopped at the end; each test gets a database of its own.

@pytest.fixture(scope="session")
def pg_server():
    """The run's PostgreSQL server; skips (with the reason) where none can be started."""
    from pgserver import PgServer, Unavailable

    try:
        server = PgServer()
    except Unavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def ledger_backend(request):
    """Each test that takes this runs twice: on SQLite, then on PostgreSQL."""
    from ledger_backends import Backend

    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    backend = Backend("postgresql", request.getfixturevalue("pg_server"))
    yield backend
    backend.close()


# A private workspace and a runner for the real program (command-line and corpus tests).

@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh workspace folder, also set as SOUNDSCAPE_HOME for in-process calls."""
    path = tmp_path / "home"
    monkeypatch.setenv("SOUNDSCAPE_HOME", str(path))
    return path


@pytest.fixture
def soundscape(home):
    """Run the installed ``soundscape`` program as a user would; returns CompletedProcess."""

    def run(*args, check=False, timeout=300):
        env = dict(os.environ, SOUNDSCAPE_HOME=str(home), COLUMNS="200")
        proc = subprocess.run([sys.executable, "-m", "soundscape", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"soundscape {' '.join(map(str, args))} failed:\n{proc.stderr}")
        return proc

    return run
