"""Raw composer render speed: a 10-minute stereo 48 kHz bed, one core (no mastering, no writing).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_composer_render.py [--minutes M]``.
"""

from __future__ import annotations

import argparse
import os
import time

# One core, as the performance target is stated; must be set before numpy loads its BLAS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from soundscape.engines.composer import ComposerEngine  # noqa: E402
from soundscape.spec import CueSpec, resolve_intent  # noqa: E402

PROMPT = "calm ambient pad with soft piano and rain, slow"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loop", action="store_true")
    args = parser.parse_args()
    seconds = args.minutes * 60.0
    intent = resolve_intent(args.prompt)
    spec = CueSpec(prompt=args.prompt, kind="bed", duration=seconds, seed=args.seed,
                   intent=intent, loop=args.loop)
    engine = ComposerEngine()
    start, cpu_start = time.perf_counter(), time.process_time()
    render = engine.render([spec])[0]
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"composer {engine.version}: {args.minutes:g}-minute bed ({render.audio.shape[1]} samples x "
          f"{render.audio.shape[0]} ch) rendered in {elapsed:.2f} s = {seconds / elapsed:.0f}x real time "
          f"(CPU {cpu:.2f} s = {seconds / cpu:.0f}x; wall time suffers when the machine is shared) "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); layers: "
          f"{', '.join(render.details['layers'])}")


if __name__ == "__main__":
    main()
