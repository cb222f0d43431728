"""A ledger a team shares on PostgreSQL: two workspaces (two studios' machines) pointing
``ledger_url`` at one database, several processes each, appending at once; and writers killed
with SIGKILL in the middle of a transaction."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soundscape.config import open_workspace
from soundscape.facts import OutputFacts
from soundscape.rights.ledger import Ledger
from soundscape.rights.store import load_or_create_key

pytestmark = pytest.mark.postgresql

PROJECT = Path(__file__).resolve().parents[2]
PROCESSES = 4
RECORDS_EACH = 15


def output(studio: str, worker: int, i: int) -> OutputFacts:
    audio = hashlib.sha256(f"{studio} {worker} {i}".encode()).hexdigest()
    return OutputFacts(audio_sha256=audio, file_sha256=audio[::-1],
                       path=f"/{studio}/out/cue-{worker}-{i:03d}.wav", engine="composer",
                       engine_version="1.0", prompt=f"{studio} cue {worker}.{i}", cue_kind="bed",
                       parameters={"duration": 30.0, "seed": i}, seed=worker * 1000 + i)


def shared_workspaces(tmp_path, server, names=("studio-a", "studio-b")) -> tuple[str, list[Path]]:
    """Workspaces whose soundscape.toml names one database, each holding the ledger's key pair
    (the ledger does not exist yet: the first writer makes it)."""
    url = server.create_database()
    keys = tmp_path / "shared-keys"
    load_or_create_key(keys)
    homes = []
    for name in names:
        home = tmp_path / name
        shutil.copytree(keys, home / "keys")
        (home / "soundscape.toml").write_text(f'ledger_url = "{url}"\n')
        homes.append(home)
    return url, homes


def _append(home: str, studio: str, worker: int, count: int, barrier) -> None:
    barrier.wait(timeout=120)  # all at once, before the ledger's tables exist
    with Ledger.open(open_workspace(home)) as ledger:
        for i in range(count):
            ledger.record_output(output(studio, worker, i))


def test_two_workspaces_times_four_processes_append_every_record_once(tmp_path, pg_server):
    url, homes = shared_workspaces(tmp_path, pg_server)
    # fork: the parent holds no database connection, and eight interpreters starting from
    # scratch would cost more than the appends on two cores.
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(homes) * PROCESSES)
    procs = [ctx.Process(target=_append, args=(str(home), home.name, w, RECORDS_EACH, barrier))
             for home in homes for w in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    total = len(homes) * PROCESSES * RECORDS_EACH
    for home in homes:  # each studio sees, and verifies, the same tree
        with Ledger.open(open_workspace(home)) as ledger:
            report = ledger.verify()
            assert (report.records, report.checkpoints) == (total, total)
            records = list(ledger.records("output"))
            assert [r.seq for r in records] == list(range(1, total + 1))
            assert [r.id for r in records] == [f"out-{n:06d}" for n in range(1, total + 1)]
            landed = sorted(r.body["path"] for r in records)
            assert landed == sorted(output(h.name, w, i).path for h in homes
                                    for w in range(PROCESSES) for i in range(RECORDS_EACH))
            roots = {ledger.store.latest_checkpoint().root}
    assert len(roots) == 1


WRITER = """
import sys
from soundscape.rights.store import Store

url, keys, done, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = Store(url, keys)
n = 0
while True:
    with store.batch() as b:
        for _ in range(batch):
            n += 1
            h = f"{n:064x}"
            b.add("asset", {"audio_sha256": h, "file_sha256": h, "license": "CC0-1.0",
                            "pad": "x" * 800}, lookup=h, lookup2=h)
    with open(done, "a") as f:  # after the commit: every id listed here must survive
        f.write(f"{b.checkpoint.size}\\n")
"""
BATCH = 400
KILLS = 3


def _writer_in_transaction(server, name: str) -> bool:
    with server.admin() as con:
        row = con.execute("SELECT state, xact_start IS NOT NULL FROM pg_stat_activity "
                          "WHERE application_name = %s", (name,)).fetchone()
    return bool(row and row[1] and row[0] in ("active", "idle in transaction"))


def test_a_writer_killed_mid_transaction_loses_and_half_writes_nothing(tmp_path, pg_server):
    name = "soundscape-killed-writer"
    url = pg_server.create_database() + f"&application_name={name}"
    keys = tmp_path / "keys"
    done = tmp_path / "committed.txt"
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    mid_transaction = 0
    for cycle in range(KILLS):
        before = len(done.read_text().split()) if done.exists() else 0
        proc = subprocess.Popen([sys.executable, "-c", WRITER, url, str(keys), str(done),
                                 str(BATCH)], env=env, cwd=PROJECT)
        try:
            deadline = time.monotonic() + 120
            # Let it commit a batch of its own, then catch it inside the next transaction.
            while (len(done.read_text().split()) if done.exists() else 0) <= before:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            while not _writer_in_transaction(pg_server, name):
                assert proc.poll() is None and time.monotonic() < deadline
            proc.send_signal(signal.SIGKILL)
            mid_transaction += 1
        finally:
            proc.kill()
            proc.wait(timeout=60)
        committed = [int(s) for s in done.read_text().split()]
        with Ledger.open_url(url, keys) as ledger:
            report = ledger.verify()
            size = report.records
            # Nothing half-written: whole batches only, every one under its signed checkpoint.
            assert size % BATCH == 0 and report.checkpoints == size // BATCH
            # Nothing lost: every batch the writer saw committed is there (it may have been
            # killed between a commit and noting it, so the ledger can hold one batch more).
            assert committed[-1] <= size <= committed[-1] + BATCH
            ids = {r.id for r in ledger.records("asset")}
            assert ids == {f"asset-{n:06d}" for n in range(1, size + 1)}
    assert mid_transaction == KILLS
