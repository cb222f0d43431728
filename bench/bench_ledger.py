"""Benchmark the rights ledger: appends per second (one per transaction, batched, by 1 or more
concurrent writers), verify time and proof time, on SQLite or PostgreSQL.

Run: ``.venv/bin/python bench/bench_ledger.py [--records 100000] [--batch 1000] [--single 300]
[--writers 4] [--url URL | --url temp-postgresql]``. Without ``--url`` the ledger is a SQLite
file in a temporary folder; ``--url postgresql://...`` names an empty database to fill (it is
left filled); ``--url temp-postgresql`` starts a private PostgreSQL server for the run
(tests/pgserver.py: initdb in a temporary folder, unix socket only, fsync on, removed after).
Records are output records shaped like real ones (a sidecar's fields, about 1.2 kB of JSON).
Targets (issue 3): batched appends >= 5,000 records/s; verify of 100,000 records <= 5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soundscape.canonical import jsonable  # noqa: E402
from soundscape.facts import OutputFacts  # noqa: E402
from soundscape.rights.ledger import Ledger  # noqa: E402
from soundscape.rights.store import utc_now  # noqa: E402


def entry(i: int) -> OutputFacts:
    """An output entry with the fields a composer bed's sidecar carries."""
    h = hashlib.sha256(str(i).encode()).hexdigest()
    return OutputFacts(
        audio_sha256=h, file_sha256=hashlib.sha256(h.encode()).hexdigest(),
        path=f"/srv/out/deep-water/S01E03/cue-{i:06d}.wav", engine="composer",
        engine_version="0.1.0", prompt="slow swelling strings, hopeful, D minor to F major",
        cue_kind="bed", seed=i, created=utc_now(), duration=90.0, format="wav", sample_rate=48000,
        bit_depth=24, channels=2,
        parameters={"duration": 90.0, "seed": i, "loop": False, "variant": 0, "key": "D minor",
                    "bpm": 72, "mood": "hopeful", "intensity": [[0, 0.2], [15, 0.9]]},
        intent={"mood": "hopeful", "key": "D minor", "bpm": 72, "textures": ["strings", "pad"]},
        mastering={"preset": "ebu-r128", "target_lufs": -23.0, "true_peak_limit_dbtp": -1.0,
                   "loudness_lufs": -23.01, "true_peak_dbtp": -1.4, "loop": False,
                   "seam_ratio": None},
        samples=[{"id": "pad_d_minor", "sha256": "7" * 64, "license": "CC0-1.0",
                  "path": "pad_d_minor.flac", "asset": "asset-000002"}],
        production="Deep Water", episode="S01E03", cue_id=f"{i}M1", air_date="2027-03-14",
        territories=["FR", "BE", "CH"], content_key=hashlib.sha256(f"k{i}".encode()).hexdigest())


def body(e: OutputFacts) -> dict:
    return jsonable(e.entry())


def append_batched(ledger: Ledger, start: int, count: int, batch: int) -> float:
    bodies = [body(entry(i)) for i in range(start, start + count)]
    t0 = time.perf_counter()
    for lo in range(0, count, batch):
        with ledger.store.batch() as b:
            for data in bodies[lo:lo + batch]:
                b.add("output", data, lookup=data["audio_sha256"], lookup2=data["content_key"])
    return time.perf_counter() - t0


def _writer(url: str, keys: str, start: int, count: int, batch: int, barrier, out) -> None:
    ledger = Ledger.open_url(url, keys)
    bodies = [body(entry(i)) for i in range(start, start + count)]
    barrier.wait()
    t0 = time.perf_counter()
    for lo in range(0, count, batch):
        with ledger.store.batch() as b:
            for data in bodies[lo:lo + batch]:
                b.add("output", data, lookup=data["audio_sha256"], lookup2=data["content_key"])
    out.put(time.perf_counter() - t0)
    ledger.close()


def append_concurrently(url: str, keys: Path, count: int, batch: int, writers: int) -> float:
    """``writers`` processes append ``count`` records between them; seconds from the common
    start to the last one's end."""
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(writers + 1), ctx.Queue()
    share = count // writers
    procs = [ctx.Process(target=_writer, args=(url, str(keys), w * share, share, batch, barrier,
                                               out)) for w in range(writers)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise SystemExit("a writer failed")
    return time.perf_counter() - t0


@contextlib.contextmanager
def ledger_url(requested: str | None, home: Path):
    """The URL to fill: a temporary SQLite file, a private PostgreSQL server, or the user's."""
    if requested is None:
        yield f"sqlite:///{home / 'ledger.sqlite'}", "SQLite (WAL, synchronous=FULL)"
    elif requested == "temp-postgresql":
        sys.path.insert(0, str(ROOT / "tests"))
        from pgserver import PgServer

        server = PgServer(durable=True)
        try:
            yield server.create_database("bench"), "PostgreSQL (private server, fsync on)"
        finally:
            server.stop()
    else:
        yield requested, "the given database"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=300,
                        help="records appended one per transaction through record_output")
    parser.add_argument("--writers", type=int, default=1,
                        help="processes appending the batched records at once")
    parser.add_argument("--url", default=None,
                        help="ledger URL (an empty database), or temp-postgresql")
    parser.add_argument("--per-record", type=int, default=20_000,
                        help="size of a second ledger with one signed checkpoint per record "
                             "(SQLite only; 0 skips it)")
    args = parser.parse_args()
    if args.writers < 1:
        raise SystemExit("--writers must be at least 1")

    with tempfile.TemporaryDirectory() as tmp, ledger_url(args.url, Path(tmp)) as (url, what):
        home = Path(tmp)
        print(f"== {what}, {args.records:,} records, {args.writers} writer(s)")
        ledger = Ledger.open_url(url, home / "keys", home=home)
        if ledger.store.count():
            raise SystemExit(f"{url}: the ledger already holds records; give an empty database")
        ledger.record_output(entry(-1))  # key and schema made outside the timing

        t0 = time.perf_counter()
        for i in range(args.single):
            ledger.record_output(entry(10_000_000 + i))
        single = time.perf_counter() - t0
        print(f"one per transaction (record_output, own signed checkpoint each): "
              f"{args.single / single:,.0f} records/s ({single / args.single * 1000:.2f} ms each)")

        n = (args.records - args.single - 1) // args.writers * args.writers
        ledger.close()  # no connection crosses the fork
        seconds = append_concurrently(url, home / "keys", n, args.batch, args.writers)
        print(f"batched ({args.batch} per transaction, {args.writers} writer(s) at once): "
              f"{n / seconds:,.0f} records/s ({n:,} records in {seconds:.2f} s)   "
              "target >= 5,000/s")

        ledger = Ledger.open_url(url, home / "keys", home=home)
        size = (f"db {os.path.getsize(home / 'ledger.sqlite') / 1e6:.0f} MB"
                if url.startswith("sqlite") else _pg_size(ledger))
        report = ledger.verify()
        print(f"verify, every signature: {report.records:,} records, {report.checkpoints:,} "
              f"checkpoints in {report.seconds:.2f} s   target <= 5 s   ({size})")
        quick = ledger.verify(all_signatures=False)
        print(f"verify --quick (latest signature only): {quick.seconds:.2f} s")
        t0 = time.perf_counter()
        ledger.prove("out-000150")
        print(f"prove one record at size {report.records:,}: {time.perf_counter() - t0:.2f} s")
        ledger.close()

    if args.per_record and args.url is None:
        per_record(args.per_record, args.records)


def _pg_size(ledger) -> str:
    with ledger.store.read() as conn:
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return f"db {size / 1e6:.0f} MB"


def per_record(count: int, target: int) -> None:
    """Verify cost when every record is its own transaction (a checkpoint per output)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ledger = Ledger.open_url(f"sqlite:///{home / 'ledger.sqlite'}", home / "keys", home=home)
        bodies = [body(entry(i)) for i in range(count)]
        t0 = time.perf_counter()
        for data in bodies:
            with ledger.store.batch() as b:
                b.add("output", data, lookup=data["audio_sha256"], lookup2=data["content_key"])
        build = time.perf_counter() - t0
        full = ledger.verify().seconds
        quick = ledger.verify(all_signatures=False).seconds
        scale = target / count
        print(f"a checkpoint per record ({count:,} records, appended at {count / build:,.0f}/s): "
              f"verify {full:.2f} s (every signature), {quick:.2f} s (--quick); "
              f"scaled to {target:,}: {full * scale:.1f} s and {quick * scale:.1f} s")
        ledger.close()


if __name__ == "__main__":
    main()
