"""Fixtures for command-line tests: a private workspace and a runner for the real program."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


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
