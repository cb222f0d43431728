"""A real ``soundscape batch`` killed with SIGKILL mid-batch, then run again: the complete set, once.

After the rerun every cue's file exists and decodes, each cue has exactly one output record whose
id its sidecar carries, no hidden temp file or pending entry is left, no worker of the killed run
lives on, and ``soundscape ledger verify`` passes.
"""

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from soundscape.audio.io import audio_sha256, read_audio
from soundscape.config import open_workspace
from soundscape.journal import Journal
from soundscape.rights.ledger import Ledger

CUES = ("1M1", "1M2", "1M3", "2M1", "2M2", "4M4")
DURATIONS = {"1M1": 4, "1M2": 10, "1M3": 3, "2M1": 10, "2M2": 3, "4M4": 10}


def descendants_of(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc): workers, the fork server, the resource tracker."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 4 (after the parenthesised command, which may hold spaces) is the parent id.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found.extend(frontier)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited; only its entry remains
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, *, timeout: float, proc) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the batch finished before the moment to kill it came:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail("the moment to kill the batch never came")
        time.sleep(0.005)


def first_audio(out: Path) -> bool:
    return any(p.suffix == ".wav" and not p.name.startswith(".") for p in _entries(out))


def a_temp_file(out: Path) -> bool:
    return any(p.name.startswith(".") for p in _entries(out))


def three_sidecars(out: Path) -> bool:
    return sum(p.name.endswith(".wav.json") for p in _entries(out)) >= 3


def _entries(out: Path):
    try:
        return list(out.iterdir())
    except FileNotFoundError:
        return []


MOMENTS = {
    "after the first output appears": first_audio,
    "while a file is half-written": a_temp_file,
    "after three outputs": three_sidecars,
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find workers")
@pytest.mark.parametrize("moment", [
    "after the first output appears",
    pytest.param("while a file is half-written", marks=pytest.mark.slow),
    pytest.param("after three outputs", marks=pytest.mark.slow),
])
def test_kill_9_mid_batch_then_rerun_leaves_the_complete_set(tmp_path, episode_file, run_cli, moment):
    import subprocess

    home, out = tmp_path / "home", tmp_path / "out"
    env = dict(os.environ, SOUNDSCAPE_HOME=str(home), COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "soundscape", "batch", str(episode_file),
                             "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # The moment counts only while the worker pool is up: the driver's own last sidecar
        # rewrite also makes a temp file, after the pool has gone, and killing then tests nothing.
        workers: list[int] = []

        def moment_with_workers() -> bool:
            if not MOMENTS[moment](out):
                return False
            workers[:] = descendants_of(proc.pid)
            return bool(workers)

        wait_for(moment_with_workers, timeout=240, proc=proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # The killed run's workers (and the fork server) die with it: nothing writes behind the rerun.
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers)
    done_before = sorted(p.name for p in out.glob("*.wav"))
    assert len(done_before) < len(CUES), "killed too late to test anything"

    rerun = run_cli(home, "batch", episode_file, "--out", out, "--workers", "1")
    assert rerun.returncode == 0, rerun.stderr

    names = sorted(p.name for p in out.iterdir())
    expected = [f"S01E03_{c}.wav" for c in CUES]
    assert names == sorted(expected + [n + ".json" for n in expected])  # no temp files, no orphans
    with Ledger.open(open_workspace(home)) as ledger:
        records = ledger.find_outputs()
        assert Journal.of(ledger).entries() == []
    assert Counter(r.cue_id for r in records) == Counter(CUES)  # exactly one record per cue
    by_cue = {r.cue_id: r for r in records}
    import json

    for cue in CUES:
        path = out / f"S01E03_{cue}.wav"
        audio, rate = read_audio(path)
        assert audio.shape == (2, DURATIONS[cue] * rate)
        sidecar = json.loads(path.with_name(path.name + ".json").read_text())
        assert sidecar["audio_sha256"] == audio_sha256(path) == by_cue[cue].audio_sha256
        assert sidecar["ledger"]["record_id"] == by_cue[cue].id
        assert by_cue[cue].path == str(path.resolve())

    verify = run_cli(home, "ledger", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # And a third run has nothing left to do.
    again = run_cli(home, "batch", episode_file, "--out", out, "--workers", "1")
    assert again.returncode == 0 and "6 skipped" in again.stdout, again.stdout


def test_stale_temp_files_go_unless_a_live_process_is_writing(tmp_path, episode_file):
    from soundscape.batch import runner
    from soundscape.batch.cuelist import load_cuelist

    out = tmp_path / "out"
    out.mkdir()
    outputs = runner.plan(load_cuelist(episode_file), out)
    stale = [out / ".S01E03_1M1.wav.0123456789ab.part", out / ".S01E03_1M1.wav.json.tmpx1y2"]
    busy = out / ".S01E03_1M2.wav.ba9876543210.part"
    other = out / ".unrelated"
    for path in [*stale, busy, other]:
        path.write_bytes(b"partial")
    with Ledger.open(open_workspace(tmp_path / "home")) as ledger:
        token = Journal.of(ledger).begin(out / "S01E03_1M2.wav", out / "S01E03_1M2.wav.json")
        removed = runner.remove_stale_temp_files(outputs, ledger)
        Journal.of(ledger).end(token)
    assert sorted(removed) == sorted(stale)
    assert busy.exists() and other.exists() and not any(p.exists() for p in stale)
