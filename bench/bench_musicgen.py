"""Benchmark: soundscape's batched MusicGen against audiocraft's own generate, one cue at a time.

Model: a MusicGen-small-sized LM (dim 1024, 24 layers, 16 heads, 4 codebooks x 2048) with the
EnCodec 32 kHz compression model, random weights from soundscape's builder (nothing downloaded).
Same model, same settings (top_k 250, cfg_coef 3, 1 s cues = 50 frames), same machine, one run:

- audiocraft: ``MusicGen.generate([prompt])`` once per cue (measured on a few cues);
- soundscape: ``MusicGenEngine.render`` of 16 cues in one batch, and of 1 cue.

Prints generated frames per second for each, the ratio (target >= 8x on CPU), and seconds of
audio per second at batch 1 and 16; then the same on the GPU when CUDA is available.

Like the other benchmarks it measures one core unless told otherwise (``--threads N``; the
Makefile's OMP_NUM_THREADS is the default). One cue at a time is bound by reading the weights
from memory and a batch by arithmetic, so more threads widen the gap in favour of batching.
Run: .venv/bin/python bench/bench_musicgen.py [--cues 16] [--baseline-cues 3] [--threads N]
"""

from __future__ import annotations

import os
import argparse
import time
import warnings

PROMPTS = ["calm pad over rain", "dark drone with distant bells", "hopeful strings at dawn",
           "tense pulse, low synth", "dreamy piano in F lydian", "wind through a forest",
           "warm rhodes, slow", "epic swell, cinematic"]


def _specs(n: int, seconds: float):
    from soundscape.spec import CueSpec, resolve_intent

    return [CueSpec(prompt=PROMPTS[i % len(PROMPTS)], kind="jingle", duration=seconds, seed=1000 + i,
                    intent=resolve_intent(PROMPTS[i % len(PROMPTS)], kind="jingle"),
                    engine="musicgen", params={"top_k": 250, "cfg_coef": 3.0})
            for i in range(n)]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(device: str, *, cues: int, baseline_cues: int, seconds: float) -> dict:
    import torch

    from soundscape.engines.musicgen import MusicGenEngine
    from soundscape.engines.musicgen.builders import build_model, count_parameters, to_musicgen

    t0 = time.perf_counter()
    compression_model, lm = build_model("small", seed=0, device=device)
    built = time.perf_counter() - t0
    engine = MusicGenEngine.from_modules(compression_model, lm, model_name="bench-small",
                                         max_batch=cues)
    theirs = to_musicgen(compression_model, lm, name="bench-small")
    theirs.set_generation_params(duration=seconds, top_k=250, cfg_coef=3.0)
    frames = int(round(seconds * engine.model.frame_rate))
    print(f"[{device}] model: LM {count_parameters(lm) / 1e6:.0f}M parameters "
          f"(dim {lm.dim}, {len(lm.transformer.layers)} layers), EnCodec "
          f"{count_parameters(compression_model) / 1e6:.1f}M; built in {built:.1f} s; "
          f"torch threads {torch.get_num_threads()}; cues of {seconds:g} s = {frames} frames",
          flush=True)

    # Warm-up: first calls allocate and pick kernels.
    engine.render(_specs(1, 0.2))
    theirs.set_generation_params(duration=0.2, top_k=250, cfg_coef=3.0)
    theirs.generate([PROMPTS[0]])
    theirs.set_generation_params(duration=seconds, top_k=250, cfg_coef=3.0)
    _sync(device)

    t0 = time.perf_counter()
    for i in range(baseline_cues):
        torch.manual_seed(1000 + i)
        theirs.generate([PROMPTS[i % len(PROMPTS)]])
    _sync(device)
    t_base = time.perf_counter() - t0
    fps_base = baseline_cues * frames / t_base

    t0 = time.perf_counter()
    engine.render(_specs(1, seconds))
    _sync(device)
    t_one = time.perf_counter() - t0

    t0 = time.perf_counter()
    renders = engine.render(_specs(cues, seconds))
    _sync(device)
    t_batch = time.perf_counter() - t0
    assert len(renders) == cues and all(r.details["batch_size"] == cues for r in renders)
    fps_batch = cues * frames / t_batch
    fps_one = frames / t_one

    print(f"[{device}] audiocraft generate, 1 cue per call: {baseline_cues} cues in "
          f"{t_base:.2f} s -> {fps_base:.1f} frames/s, {baseline_cues * seconds / t_base:.3f} "
          f"s of audio per s")
    print(f"[{device}] soundscape batch 1:  1 cue in {t_one:.2f} s -> {fps_one:.1f} frames/s, "
          f"{seconds / t_one:.3f} s of audio per s")
    print(f"[{device}] soundscape batch {cues}: {cues} cues in {t_batch:.2f} s -> "
          f"{fps_batch:.1f} frames/s, {cues * seconds / t_batch:.3f} s of audio per s")
    print(f"[{device}] ratio soundscape batch {cues} / audiocraft per cue: "
          f"{fps_batch / fps_base:.1f}x (target >= 8x); batch {cues} / batch 1: "
          f"{fps_batch / fps_one:.1f}x", flush=True)
    del engine, theirs, compression_model, lm
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"fps_base": fps_base, "fps_one": fps_one, "fps_batch": fps_batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cues", type=int, default=16, help="cues in the batched render")
    parser.add_argument("--baseline-cues", type=int, default=3,
                        help="cues for audiocraft's one-at-a-time baseline")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each cue")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 1),
                        help="torch CPU threads (default: OMP_NUM_THREADS, else 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: the CPU, then the GPU when CUDA is available")
    args = parser.parse_args()

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, args.threads))
    started = time.perf_counter()
    devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("[cuda] not available: GPU figures skipped")
            continue
        cues, base = args.cues, args.baseline_cues
        run(device, cues=cues, baseline_cues=base, seconds=args.seconds)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
