"""Benchmark the rights ledger at scale: appends, proofs, full and incremental verify, size.

Run: ``.venv/bin/python bench/bench_ledger_scale.py [--records 100000 1000000] [--batch 1000]
[--url temp-postgresql]``. Without ``--url`` each size is a new SQLite file; ``temp-postgresql``
starts a private PostgreSQL server (tests/pgserver.py, fsync on) with a new database per size.
Records are output records shaped like real ones (a sidecar's fields, about 1.4 kB of JSON).
For each size: batched appends per second over the last tenth of the build (the rate *at*
that size), the time of an inclusion proof (median and worst of 25, from the tiles), a full
``verify`` (every leaf, root, frontier, tile and signature), an incremental
``verify --since-witness`` after 1,000 new records, and the database's bytes per record.
Targets (issue 12, on a quiet 2-core machine): appends >= 10,000/s at 1M; a proof <= 50 ms;
full verify of 1M <= 10 s; incremental verify of 1,000 new on 1M <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ledger import body, entry  # noqa: E402  (the same record shape as bench_ledger)
from soundscape.rights.ledger import Ledger  # noqa: E402


def append_batched(ledger: Ledger, start: int, count: int, batch: int) -> tuple[float, float]:
    """Append ``count`` records ``batch`` per transaction; the seconds spent inside the ledger,
    and the CPU seconds of this process among them."""
    spent = cpu = 0.0
    for lo in range(start, start + count, batch):
        bodies = [body(entry(i)) for i in range(lo, min(lo + batch, start + count))]
        t0, c0 = time.perf_counter(), time.process_time()
        with ledger.store.batch() as b:
            for data in bodies:
                b.add("output", data, lookup=data["audio_sha256"], lookup2=data["content_key"])
        spent += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return spent, cpu


def db_bytes(path: Path) -> int:
    """The database file's size once its write-ahead log is folded in."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return os.path.getsize(path)


def pg_bytes(ledger: Ledger) -> int:
    with ledger.store.read() as conn:
        return conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()


def measure(records: int, batch: int, server=None) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        home = Path(tmp)
        url = (server.create_database(f"scale{records}") if server
               else f"sqlite:///{home / 'ledger.sqlite'}")
        ledger = Ledger.open_url(url, home / "keys", home=home)
        ledger.record_output(entry(-1))  # key and schema made outside the timing
        n = records - 1
        tail = max(batch, n // 10)
        build, _ = append_batched(ledger, 0, n - tail, batch)
        at_size, at_size_cpu = append_batched(ledger, n - tail, tail, batch)
        print(f"{records:>9,} records: batched appends ({batch} per transaction) "
              f"{tail / at_size:,.0f} records/s over the last {tail:,} "
              f"({n / (build + at_size):,.0f}/s over the whole build; "
              f"{tail / at_size_cpu:,.0f}/s of this process's CPU time)   "
              "target >= 10,000/s")
        per_record = (pg_bytes(ledger) if server else db_bytes(home / "ledger.sqlite")) / records
        rng = random.Random(12)
        times = []
        for seq in rng.sample(range(1, records + 1), 25):
            t0 = time.perf_counter()
            proof = ledger.prove(f"out-{seq:06d}")  # every record here is an output
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{records:>9,} records: inclusion proof {statistics.median(times):.1f} ms median, "
              f"{max(times):.1f} ms worst of 25 ({len(proof.audit_path)} hashes)   target <= 50 ms")
        c0 = time.process_time()
        report = ledger.verify()
        print(f"{records:>9,} records: full verify {report.seconds:.2f} s ({report.records:,} "
              f"records, {report.checkpoints:,} checkpoints, {report.signatures_checked:,} "
              f"signatures; {time.process_time() - c0:.2f} s of this process's CPU, workers "
              "not counted)   target <= 10 s at 1M")
        append_batched(ledger, records, 1000, batch)
        inc = ledger.verify(since_witness=True)
        print(f"{records:>9,} records: verify --since-witness after 1,000 new: {inc.seconds:.3f} s "
              f"(records #{inc.checked_from + 1:,} to #{inc.records:,})   target <= 1 s")
        print(f"{records:>9,} records: {per_record:,.0f} bytes per record "
              f"({per_record * records / 1e6:,.0f} MB)")
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--url", choices=["temp-postgresql"], default=None,
                        help="run on a private PostgreSQL server instead of SQLite files")
    args = parser.parse_args()
    server = None
    if args.url:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from pgserver import PgServer

        server = PgServer(durable=True)
    print(f"== {'PostgreSQL (private server, fsync on)' if server else 'SQLite (WAL, synchronous=FULL)'}; "
          f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    try:
        for records in args.records:
            measure(records, args.batch, server)
            print(f"load average now: {os.getloadavg()[0]:.1f}")
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
