"""Benchmark on a CUDA GPU, in one call: MusicGen generation, then LM training throughput in bf16.

1. Generation: ``bench_musicgen.run("cuda", ...)``: a MusicGen-small-sized LM with EnCodec 32 kHz,
   random weights (nothing downloaded): audiocraft's one-cue-at-a-time generate against
   soundscape's batched render, frames/s and seconds of audio per second.
2. Training: ``bench_train.run``: the ``--arch`` LM (default small: dim 1024 x 24 layers) trained
   on the bundled samples with bf16 autocast, at 1 process (and ``--nprocs`` more when the machine
   has that many GPUs, NCCL), steps/s and audio hours per hour.

On a machine without CUDA it prints one line saying so and exits 0, having run nothing.

Run: .venv/bin/python bench/bench_gpu.py [--arch small] [--steps 30] [--cues 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cues", type=int, default=16, help="cues in the batched render")
    parser.add_argument("--baseline-cues", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each cue")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--arch", default="small", help="model size for the training run")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--nprocs", default=None, help="process counts (default: 1, and the GPU "
                        "count when above 1)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU on this machine: nothing measured (run it where "
              "torch.cuda.is_available() is true)")
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_musicgen
    import bench_train

    started = time.perf_counter()
    name = torch.cuda.get_device_name(0)
    print(f"[cuda] {name}, {torch.cuda.device_count()} GPU(s), torch {torch.__version__}, "
          f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}", flush=True)
    print("== generation ==", flush=True)
    bench_musicgen.run("cuda", cues=args.cues, baseline_cues=args.baseline_cues,
                       seconds=args.seconds, repeats=args.repeats)
    print("== training ==", flush=True)
    gpus = torch.cuda.device_count()
    nprocs = args.nprocs or ("1" if gpus < 2 else f"1,{gpus}")
    bench_train.run(argparse.Namespace(arch=args.arch, steps=args.steps,
                                       batch_size=args.batch_size,
                                       segment_seconds=args.segment_seconds, nprocs=nprocs,
                                       threads=1, device="cuda", hours=0, batches=0,
                                       skip_ram=True))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
