"""End-to-end composer speed: a 10-minute stereo 48 kHz bed on sampled instruments, rendered,
mastered to EBU R 128, written as 24-bit BWF with its sidecar and recorded in a fresh ledger, on
one core.

Prints the multiple of real time (target >= 100x) measured two ways: in a warm process
(pipeline.run; imports excluded) and as a cold `soundscape generate` command (everything
included). Also the wall time of `soundscape --help`.

    .venv/bin/python bench/bench_generate.py [--seconds 600]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one core means one BLAS thread too
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

PROMPT = "calm dreamy pad with soft rain and distant bells"


def warm(seconds: float, folder: Path, *, runs: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of ``runs`` end-to-end renders of the same cue in one process."""
    from soundscape import pipeline
    from soundscape.config import open_workspace
    from soundscape.spec import make_spec

    workspace = open_workspace(folder / "home-warm")
    # Warm up imports and caches on a short bed of the same cue first (same instruments, so
    # their samples are loaded), so the figure is the render's own.
    pipeline.run([pipeline.Job(spec=make_spec(PROMPT, duration=20, seed=2),
                               path=folder / "warmup.wav")], workspace=workspace)
    out = []
    for i in range(runs):
        job = pipeline.Job(spec=make_spec(PROMPT, duration=seconds, seed=2),
                           path=folder / f"warm{i}.wav")
        wall, cpu = time.perf_counter(), time.process_time()
        pipeline.run([job], workspace=workspace)
        out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def cold(seconds: float, folder: Path) -> tuple[float, float]:
    env = dict(os.environ, SOUNDSCAPE_HOME=str(folder / "home-cold"))
    cmd = [sys.executable, "-m", "soundscape", "generate", PROMPT, "--duration", str(seconds),
           "--seed", "3", "--out", str(folder / "cold.wav")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def help_time(runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "soundscape", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--runs", type=int, default=3, help="warm renders (median and best printed)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core; children inherit it
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = warm(args.seconds, folder, runs=args.runs)
        cpus = sorted(c for _, c in runs)
        wall = statistics.median(w for w, _ in runs)
        cpu, best = statistics.median(cpus), cpus[0]
        print(f"composer end to end, warm process ({args.runs} runs): {args.seconds:.0f} s bed in "
              f"{wall:.2f} s wall median ({args.seconds / wall:.0f}x real time), {cpu:.2f} s CPU "
              f"median ({args.seconds / cpu:.0f}x), best {best:.2f} s CPU ({args.seconds / best:.0f}x)")
        cold_wall, cold_cpu = cold(args.seconds, folder)
        print(f"composer end to end, cold `soundscape generate`: {cold_wall:.2f} s wall "
              f"({args.seconds / cold_wall:.0f}x real time), {cold_cpu:.2f} s CPU "
              f"({args.seconds / cold_cpu:.0f}x)")
    print(f"`soundscape --help`: {help_time() * 1000:.0f} ms (median of 7)")


if __name__ == "__main__":
    main()
