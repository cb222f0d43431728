"""Shared pieces for batch tests: a short episode cue list and a private workspace."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from soundscape.config import open_workspace
from soundscape.rights.records import ModelEntry

# Six short cues: beds of 10 s (the shortest a bed may be), stings of 3 s, one looping bed and a
# jingle with two variants, so the batch tests stay well under a minute on two cores.
SHORT_EPISODE = """\
production:
  title: "Deep Water"
  episode: "{episode}"
  episode_title: "Test Dive"
  air_date: 2027-03-14
  territory: [FR, BE]
  company: "Abyssal Films"
  publisher: "Abyssal Music Publishing"
  policy: broadcast-commercial
  preset: ebu-r128
  frame_rate: 25
cues:
  - id: "1M1"
    title: "Main Title"
    kind: jingle
    usage: MT
    timecode_in: "00:00:00:00"
    duration: 4
    prompt: "hopeful bells and strings"
    motif: "D5 F5 A5 D6"
  - id: "1M2"
    kind: bed
    usage: BI
    timecode_in: "00:00:10:00"
    duration: 10
    prompt: "calm pad with rain"
    seed: {seed}
  - id: "1M3"
    kind: sting
    usage: BI
    timecode_in: "00:01:00:00"
    duration: 3
    mood: tense
  - id: "2M1"
    kind: bed
    usage: BI
    timecode_in: "00:02:00:00"
    duration: 10
    prompt: "dark drone with ocean"
    loop: true
  - id: "2M2"
    kind: sting
    usage: BI
    timecode_in: "00:03:00:00"
    duration: 3
    prompt: "mysterious pluck"
  - id: "4M4"
    title: "End Title"
    kind: bed
    usage: ET
    timecode_in: "00:43:00:00"
    duration: 10
    prompt: "warm strings and piano"
    mood: hopeful
"""

PROJECT = Path(__file__).resolve().parents[2]


def write_episode(folder: Path, *, episode: str = "S01E03", seed: int = 1, extra: str = "") -> Path:
    """Write the short episode cue list into ``folder`` and return its path."""
    path = folder / f"{episode}.yaml"
    path.write_text(SHORT_EPISODE.format(episode=episode, seed=seed) + extra, encoding="utf-8")
    return path


@pytest.fixture
def workspace(tmp_path):
    return open_workspace(tmp_path / "home")


@pytest.fixture
def shared_workspace(tmp_path, ledger_backend):
    """A workspace whose ledger is on each backend in turn: its own SQLite file, then a
    database on the test run's PostgreSQL named by ``ledger_url`` in its soundscape.toml."""
    ledger_backend.use(tmp_path / "home")
    return open_workspace(tmp_path / "home")


@pytest.fixture
def episode_file(tmp_path) -> Path:
    return write_episode(tmp_path)


@pytest.fixture
def episode_with_broken_model(tmp_path, workspace) -> Path:
    """The short episode plus cue 9M9 on a registered model whose folder has lost its
    checkpoint files: that cue must fail in its worker while the others render."""
    from soundscape.rights.ledger import Ledger

    missing = tmp_path / "models" / "gone"
    missing.mkdir(parents=True)
    with Ledger.open(workspace) as ledger:
        ledger.register_model(ModelEntry(name="deep-water-ft", path=str(missing),
                                         lm_sha256="0" * 64, compression_sha256="1" * 64,
                                         license="LicenseRef-Studio-Owned"))
    return write_episode(tmp_path, extra="""\
  - id: "9M9"
    kind: bed
    usage: BI
    duration: 10
    prompt: "ambient drone"
    engine: musicgen
    model: deep-water-ft
""")


@pytest.fixture(name="write_episode")
def _write_episode_fixture():
    """:func:`write_episode`, for tests (test modules here are not a package)."""
    return write_episode


@pytest.fixture(name="run_cli")
def _run_cli_fixture():
    """:func:`run_cli`, for tests."""
    return run_cli


def run_cli(home: Path, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``soundscape`` program with ``home`` as its workspace."""
    env = dict(os.environ, SOUNDSCAPE_HOME=str(home), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "soundscape", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=PROJECT)
