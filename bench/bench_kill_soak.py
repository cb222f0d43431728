"""Kill -9 soak of the ledger's batched appends: nothing committed is lost, nothing is doubled.

Run: ``.venv/bin/python bench/bench_kill_soak.py [--cycles 30] [--batch 1000] [--prefill N]
[--url temp-postgresql]``. A child process appends batches of output records (each body
carries its ordinal ``n``; a restarted child goes on from the number of records it finds) and
prints each committed size; the parent kill -9s it at a random moment, ``--cycles`` times, then
checks that the ledger holds records ``n = 0, 1, 2, ...`` once each in order, at least as many
as the child reported committed, a whole number of batches (no half-written batch), and that a
full ``verify`` passes. ``--prefill`` first appends that many records (the soak then runs at
scale). Without ``--url`` the ledger is a new SQLite file; ``temp-postgresql`` starts a private
PostgreSQL server (tests/pgserver.py, fsync on). Not a test of the suite: it takes minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from soundscape.rights.ledger import Ledger  # noqa: E402


def record(n: int) -> dict:
    """Record ``n``: an output-shaped body whose lookups are derived from ``n``."""
    audio = hashlib.sha256(f"soak-audio-{n}".encode()).hexdigest()
    return {"n": n, "audio_sha256": audio,
            "content_key": hashlib.sha256(f"soak-key-{n}".encode()).hexdigest(),
            "path": f"/srv/soak/cue-{n:07d}.wav", "engine": "composer", "pad": "x" * 1000}


def child(url: str, keys: str, batch: int, limit: int) -> None:
    """Append batches until ``limit`` records, printing the size after each commit."""
    ledger = Ledger.open_url(url, Path(keys), home=Path(keys).parent)
    n = ledger.store.count()
    while n < limit:
        with ledger.store.batch() as b:
            for i in range(n, min(n + batch, limit)):
                data = record(i)
                b.add("output", data, lookup=data["audio_sha256"], lookup2=data["content_key"])
        n = b.checkpoint.size
        try:
            print(n, flush=True)
        except BrokenPipeError:
            return  # the parent is gone: nothing to report to


def prefill(url: str, keys: Path, count: int, batch: int) -> None:
    ledger = Ledger.open_url(url, keys, home=keys.parent)
    for lo in range(ledger.store.count(), count, batch):
        with ledger.store.batch() as b:
            for i in range(lo, min(lo + batch, count)):
                data = record(i)
                b.add("output", data, lookup=data["audio_sha256"], lookup2=data["content_key"])
    ledger.close()


def soak(url: str, keys: Path, *, cycles: int, batch: int, start: int, seed: int) -> dict:
    rng = random.Random(seed)
    reported = start
    kills = clean_exits = 0
    limit = 10 ** 9
    t0 = time.perf_counter()
    for _ in range(cycles):
        proc = subprocess.Popen([sys.executable, __file__, "--child", url, str(keys),
                                 str(batch), str(limit)], stdout=subprocess.PIPE, text=True)
        # Open, catch-up and a few batches: kill anywhere in the first seconds of the run.
        deadline = time.monotonic() + rng.uniform(0.3, 4.0)
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
            for line in proc.stdout:
                reported = max(reported, int(line))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        else:
            clean_exits += 1
        proc.wait()
        for line in proc.stdout:
            reported = max(reported, int(line))
        proc.stdout.close()
    soak_s = time.perf_counter() - t0
    ledger = Ledger.open_url(url, keys, home=keys.parent)
    ns = [json.loads(r.text)["n"] for r in ledger.store.iter_records()]
    report = ledger.verify()
    ledger.close()
    return {"cycles": cycles, "kills": kills, "clean_exits": clean_exits, "soak_s": soak_s,
            "records": len(ns), "reported": reported,
            "in_order_once": ns == list(range(len(ns))),
            "whole_batches": (len(ns) - start) % batch == 0,
            "lost": max(0, reported - len(ns)), "verify_s": report.seconds,
            "verified": report.records}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--url", choices=["temp-postgresql"], default=None)
    args = parser.parse_args()
    server = None
    if args.url:
        sys.path.insert(0, str(ROOT / "tests"))
        from pgserver import PgServer

        server = PgServer(durable=True)
    try:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            home = Path(tmp)
            url = (server.create_database("soak") if server
                   else f"sqlite:///{home / 'ledger.sqlite'}")
            keys = home / "keys"
            label = "PostgreSQL (private server, fsync on)" if server else "SQLite (WAL, FULL)"
            print(f"== kill -9 soak, {label}: {args.cycles} cycles, batches of {args.batch}, "
                  f"prefill {args.prefill:,}; load average {os.getloadavg()[0]:.1f} on "
                  f"{os.cpu_count()} cores", flush=True)
            if args.prefill:
                prefill(url, keys, args.prefill, args.batch)
            r = soak(url, keys, cycles=args.cycles, batch=args.batch, start=args.prefill,
                     seed=args.seed)
            ok = r["in_order_once"] and r["whole_batches"] and not r["lost"] and \
                r["verified"] == r["records"]
            print(f"{r['kills']} kill -9s and {r['clean_exits']} clean exits in "
                  f"{r['soak_s']:.0f} s; "
                  f"{r['records']:,} records in the ledger, {r['reported']:,} reported committed "
                  f"by the children; lost {r['lost']}, each n once and in order: "
                  f"{r['in_order_once']}, whole batches only: {r['whole_batches']}; full verify "
                  f"{r['verify_s']:.2f} s ({r['verified']:,} records): "
                  f"{'OK' if ok else 'FAILED'}; load average {os.getloadavg()[0]:.1f}")
            if not ok:
                sys.exit(1)
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
