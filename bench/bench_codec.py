"""Benchmark: the codec stage's reconstruction on held-out clips, and its training speed.

Model: soundscape's ``tiny`` EnCodec (32 kHz, 25 Hz frames, 4 codebooks of 256), random weights
from the builder (nothing downloaded), with its cut-down MS-STFT discriminator; or ``--arch
small`` for the 32 kHz EnCodec of the released MusicGen with audiocraft's full discriminator
(a GPU job). Data: the sample library (samples/*.flac, CC0), with the codec stage's own held-out
split (10 % of the clips by audio hash, at least one; two 1 s windows of each).

Prints, for the untrained codec and after ``--steps`` steps: held-out mel distance (log-mel L1,
audiocraft's ``mel`` settings; lower is better) and SI-SNR (dB; higher is better); then codec
steps per second (the training loop alone: streaming, both models' steps) and seconds of audio
seen per second.

Like the other benchmarks it measures one core unless told otherwise (``--threads N``).
Run: .venv/bin/python bench/bench_codec.py [--steps 60] [--batch-size 4] [--segment 0.5]
     [--reconstruction-steps N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--segment", type=float, default=0.5, help="segment seconds")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--validate-every", type=int, default=20)
    parser.add_argument("--reconstruction-steps", type=int, default=0,
                        help="first N steps as a plain autoencoder, then k-means codebooks")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()

    import torch

    from soundscape.config import SAMPLES_DIR
    from soundscape.engines.musicgen.builders import build_model, export_model
    from soundscape.engines.musicgen.train import train

    torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    files = sorted(SAMPLES_DIR.glob("*.flac"))
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        compression_model, lm = build_model(args.arch, seed=0)
        export_model(compression_model, lm, lm.cfg, base)
        del compression_model, lm
        marks: list[float] = []
        cpu: list[float] = []
        result = train(base, [{"path": str(f)} for f in files], stage="codec", steps=args.steps,
                       batch_size=args.batch_size, lr=args.lr, out_dir=Path(tmp) / "out",
                       segment_seconds=args.segment, seed=0, device=device,
                       validate_every=args.validate_every, checkpoint_every=args.steps,
                       reconstruction_steps=args.reconstruction_steps,
                       progress=lambda step, total, loss: (marks.append(time.perf_counter()),
                                                           cpu.append(time.process_time())))
    record = result.settings["codec"]
    held = record["heldout"]
    print(f"codec stage, arch {args.arch}, {device}, {args.threads} thread(s): {len(files)} clips, "
          f"{held['clips']} held out ({held['windows']} windows of {held['window_seconds']:g} s), "
          f"batch {args.batch_size} x {result.settings['segment_seconds']:g} s, lr {args.lr:g}, "
          f"{args.reconstruction_steps} reconstruction steps first")
    print(f"{'step':>6} {'mel distance':>13} {'SI-SNR dB':>10}")
    for entry in result.validation:
        print(f"{entry['step']:>6} {entry['mel_distance']:>13.4f} {entry['si_snr_db']:>10.2f}")
    first, last = result.validation[0], result.validation[-1]
    print(f"held-out mel distance {first['mel_distance']:.4f} -> {last['mel_distance']:.4f} "
          f"({100 * (1 - last['mel_distance'] / first['mel_distance']):.1f} % lower), SI-SNR "
          f"{first['si_snr_db']:.2f} -> {last['si_snr_db']:.2f} dB after {args.steps} steps")
    # The median time between steps: it leaves out the first step's warm-up and the pauses for
    # held-out measurement, and is steadier than the mean on a shared machine. Wall time says
    # what this run got; CPU time what a step costs on a core of its own.
    if len(marks) > 2:
        seconds = result.settings["segment_seconds"] * args.batch_size
        for name, times in (("wall", marks), ("CPU", cpu)):
            gaps = sorted(b - a for a, b in zip(times, times[1:]))
            step = gaps[len(gaps) // 2]
            print(f"{name:>4}: {1 / step:.3f} steps/s (median step {step:.3f} s), "
                  f"{seconds / step:.2f} s of audio per s")
        print(f"reconstruction loss (0.1 L1 + 2 msspec) {result.losses[0]:.3f} -> "
              f"{result.losses[-1]:.3f}")

if __name__ == "__main__":
    main()
