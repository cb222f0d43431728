"""Benchmark: MusicGen generation with autograd on, under ``torch.no_grad`` and under
``torch.inference_mode`` (what :func:`generate_codes` now uses).

Model: soundscape's builder, random weights, nothing downloaded (``--arch tiny`` by default;
``--arch small`` for MusicGen-small's shape). The same cues (batch ``--cues``, ``--seconds`` of
audio, top_k 250, cfg_coef 3) are generated in turns, ``--repeats`` times, and each mode's best
time is kept, so bursts of load on a shared machine do not decide the ratio. The undecorated
loop is reached through ``__wrapped__`` (the functions the decorators wrap) of
``generate_codes`` and of ``sample_window``, which it calls.

Prints frames generated per second in each mode and the ratios.
Run: .venv/bin/python bench/bench_inference_mode.py [--arch tiny] [--cues 4] [--seconds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="tiny")
    parser.add_argument("--cues", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from soundscape.engines.musicgen import generate
    from soundscape.engines.musicgen.builders import build_model, to_musicgen
    from soundscape.engines.musicgen.generate import SamplingParams, frames_for, generate_codes

    torch.set_num_threads(args.threads)
    compression_model, lm = build_model(args.arch, seed=0, conditioning="attributes")
    model = to_musicgen(compression_model, lm)
    frames = frames_for(args.seconds, model.frame_rate)
    prompts = ["calm bells with rain in D minor"] * args.cues
    seeds = list(range(args.cues))
    decorated_window = generate.sample_window

    def plain(*a, **k):
        # The loop and its window sampler without their inference_mode decorators.
        generate.sample_window = decorated_window.__wrapped__
        try:
            return generate_codes.__wrapped__(*a, **k)
        finally:
            generate.sample_window = decorated_window
    modes = {"autograd on": (plain, contextlib.nullcontext),
             "no_grad": (plain, torch.no_grad),
             "inference_mode": (generate_codes, contextlib.nullcontext)}
    best = {name: float("inf") for name in modes}
    for _ in range(args.repeats):
        for name, (fn, context) in modes.items():
            started = time.perf_counter()
            with context():
                fn(model, prompts, seeds, frames=frames, params=SamplingParams())
            best[name] = min(best[name], time.perf_counter() - started)
    total = frames * args.cues
    print(f"{args.arch}: {args.cues} cues x {args.seconds:g} s ({frames} frames each), "
          f"{args.threads} thread(s), best of {args.repeats}")
    for name, seconds in best.items():
        print(f"  {name:<15} {seconds:8.3f} s  {total / seconds:9.1f} frames/s")
    print(f"  inference_mode vs autograd on: {best['autograd on'] / best['inference_mode']:.2f}x; "
          f"vs no_grad: {best['no_grad'] / best['inference_mode']:.2f}x")


if __name__ == "__main__":
    main()
