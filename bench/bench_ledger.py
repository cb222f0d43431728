"""Benchmark the rights ledger: appends per second (one per transaction, batched) and verify time.

Run: ``.venv/bin/python bench/bench_ledger.py [--records 100000] [--batch 1000] [--single 300]``.
Records are output records shaped like real ones (a sidecar's fields, about 1.2 kB of JSON).
Targets (issue 3): batched appends >= 5,000 records/s; verify of 100,000 records <= 5 s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=300,
                        help="records appended one per transaction through record_output")
    parser.add_argument("--per-record", type=int, default=20_000,
                        help="size of a second ledger with one signed checkpoint per record")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ledger = Ledger.open_url(f"sqlite:///{home / 'ledger.sqlite'}", home / "keys", home=home)
        ledger.record_output(entry(-1))  # key and schema made outside the timing

        t0 = time.perf_counter()
        for i in range(args.single):
            ledger.record_output(entry(10_000_000 + i))
        single = time.perf_counter() - t0
        print(f"one per transaction (record_output, own signed checkpoint each, "
              f"synchronous=FULL): {args.single / single:,.0f} records/s "
              f"({single / args.single * 1000:.2f} ms each)")

        n = args.records - args.single - 1
        seconds = append_batched(ledger, 0, n, args.batch)
        print(f"batched ({args.batch} per transaction): {n / seconds:,.0f} records/s "
              f"({n:,} records in {seconds:.2f} s)   target >= 5,000/s")

        size = os.path.getsize(home / "ledger.sqlite")
        report = ledger.verify()
        print(f"verify, every signature: {report.records:,} records, {report.checkpoints:,} "
              f"checkpoints in {report.seconds:.2f} s   target <= 5 s   (db {size / 1e6:.0f} MB)")
        quick = ledger.verify(all_signatures=False)
        print(f"verify --quick (latest signature only): {quick.seconds:.2f} s")
        t0 = time.perf_counter()
        ledger.prove("out-000150")
        print(f"prove one record at size {report.records:,}: {time.perf_counter() - t0:.2f} s")
        ledger.close()

    if args.per_record:
        per_record(args.per_record, args.records)


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
