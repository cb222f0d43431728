"""A long composer bed from the command line: peak memory and time (target: 3 hours in <= 2 GB).

Runs `soundscape generate --duration SECONDS` in a fresh workspace, as a user would, and prints
the child's peak resident memory (``ru_maxrss``), its wall time and its user and system CPU
seconds, and the size of the WAV it wrote.

    .venv/bin/python bench/bench_long_bed.py [--seconds 10800]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "calm dreamy pad with soft rain and distant bells"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10800.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "long.wav"
        env = dict(os.environ, SOUNDSCAPE_HOME=str(folder / "home"))
        cmd = [sys.executable, "-m", "soundscape", "generate", PROMPT, "--duration",
               str(args.seconds), "--seed", "5", "--out", str(out)]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        size = out.stat().st_size
    peak_gb = usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux
    print(f"composer bed of {args.seconds / 3600:.2f} h via `soundscape generate`: peak memory "
          f"{peak_gb:.2f} GB, {wall:.0f} s wall ({args.seconds / wall:.0f}x real time), "
          f"{usage.ru_utime:.0f} s user + {usage.ru_stime:.0f} s system CPU, WAV {size / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
