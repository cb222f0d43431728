"""Benchmark: soundscape's batched MusicGen against audiocraft's own generate, one cue at a time.

Model: a MusicGen-small-sized LM (dim 1024, 24 layers, 16 heads, 4 codebooks x 2048) with the
EnCodec 32 kHz compression model, random weights from soundscape's builder (nothing downloaded).
Same model, same settings (top_k 250, cfg_coef 3, 1 s cues = 50 frames), same machine, one run:

- audiocraft: ``MusicGen.generate([prompt])`` once per cue (measured on a few cues);
- soundscape: 16 cues in one batch (the two calls ``MusicGenEngine.render`` makes:
  ``generate_codes`` then ``decode_rows``, timed apart), and ``render`` of 1 cue.

Each side is measured ``--repeats`` times in turns and the best time kept, so that bursts of load
on a shared machine do not decide the ratio. Figures are given cue to audio (EnCodec decoding
included) and for the tokens alone.

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


def run(device: str, *, cues: int, baseline_cues: int, seconds: float, repeats: int) -> dict:
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

    from soundscape.engines.musicgen.generate import SamplingParams, decode_rows, generate_codes

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(cues)]
    seeds = [1000 + i for i in range(cues)]
    params = SamplingParams(top_k=250, cfg_coef=3.0)
    # Best of `repeats`, measured in turns, so that a burst of load from other users of a shared
    # machine does not land on one side only.
    t_base = t_base_tokens = t_one = t_batch = t_batch_tokens = float("inf")
    for _ in range(repeats):
        t0, tokens_time = time.perf_counter(), 0.0
        for i in range(baseline_cues):
            torch.manual_seed(1000 + i)
            # generate() in its two halves (audiocraft 1.3's own calls) to time the LM alone.
            attributes, _ = theirs._prepare_tokens_and_attributes([PROMPTS[i % len(PROMPTS)]], None)
            t1 = time.perf_counter()
            tokens = theirs._generate_tokens(attributes, None, False)
            _sync(device)
            tokens_time += time.perf_counter() - t1
            theirs.generate_audio(tokens)
        _sync(device)
        t_base = min(t_base, time.perf_counter() - t0)
        t_base_tokens = min(t_base_tokens, tokens_time)

        t0 = time.perf_counter()
        engine.render(_specs(1, seconds))
        _sync(device)
        t_one = min(t_one, time.perf_counter() - t0)

        # Batch 16: the engine's two calls (render() is these plus bookkeeping), timed apart.
        t0 = time.perf_counter()
        codes = generate_codes(engine.model, prompts, seeds, frames=frames, params=params)
        _sync(device)
        t1 = time.perf_counter()
        audio = decode_rows(engine.model, codes)
        _sync(device)
        t_batch = min(t_batch, time.perf_counter() - t0)
        t_batch_tokens = min(t_batch_tokens, t1 - t0)
        assert len(audio) == cues
    fps_base = baseline_cues * frames / t_base
    fps_base_tokens = baseline_cues * frames / t_base_tokens
    fps_batch = cues * frames / t_batch
    fps_one = frames / t_one

    print(f"[{device}] audiocraft generate, 1 cue per call: {baseline_cues} cues in "
          f"{t_base:.2f} s -> {fps_base:.1f} frames/s, {baseline_cues * seconds / t_base:.3f} "
          f"s of audio per s")
    print(f"[{device}] soundscape batch 1:  1 cue in {t_one:.2f} s -> {fps_one:.1f} frames/s, "
          f"{seconds / t_one:.3f} s of audio per s")
    print(f"[{device}] soundscape batch {cues}: {cues} cues in {t_batch:.2f} s -> "
          f"{fps_batch:.1f} frames/s, {cues * seconds / t_batch:.3f} s of audio per s")
    print(f"[{device}] ratio soundscape batch {cues} / audiocraft per cue, cue to audio: "
          f"{fps_batch / fps_base:.1f}x (target >= 8x); batch {cues} / batch 1: "
          f"{fps_batch / fps_one:.1f}x")
    fps_batch_tokens = cues * frames / t_batch_tokens
    print(f"[{device}] tokens only (the LM, no EnCodec decode): audiocraft "
          f"{fps_base_tokens:.1f} frames/s, soundscape batch {cues} {fps_batch_tokens:.1f} "
          f"frames/s, ratio {fps_batch_tokens / fps_base_tokens:.1f}x; EnCodec decoding took "
          f"{(t_batch - t_batch_tokens) / cues:.2f} s per cue (best of {repeats})", flush=True)
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
    parser.add_argument("--repeats", type=int, default=2, help="measure each side this many "
                        "times, in turns, and keep the best")
    # Both sides get the same threads; the default is every core (the figure is for
    # the whole 2-core machine), not OMP_NUM_THREADS, which `make bench` sets to 1 for the others.
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch CPU threads for both sides (default: all cores)")
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
        run(device, cues=cues, baseline_cues=base, seconds=args.seconds, repeats=args.repeats)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
