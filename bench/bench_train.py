"""Benchmark: LM training throughput at 1 and 2 processes, and RAM per hour of pre-encoded audio.

Throughput: the ``tiny`` architecture (or ``--arch``), random weights from soundscape's builder,
trained on the bundled sample library (``samples/``, encoded once into the int16 shard store),
``--steps`` optimiser steps of ``--batch-size`` segments of ``--segment-seconds`` per process,
float32 on the CPU (bf16 autocast on a GPU). Steps/s is timed from the end of the first step to
the end of the last (model loading, encoding and export excluded); audio hours per hour is the
audio the step consumed across all processes (segments x seconds x processes) per second of wall
time. The 2-process run uses torch.distributed over gloo, as ``soundscape train --nproc 2`` does.

RAM: a fresh process opens a shard store holding ``--hours`` of codes (EnCodec 32 kHz: 50 frames/s
x 4 codebooks, synthetic values; the codes' contents do not change the memory), draws ``--batches``
training batches from it and reports the resident memory it gained (VmRSS; anonymous and file-backed
apart), against the same codes held as int64 tensors in RAM, as training held them before.

Run: .venv/bin/python bench/bench_train.py [--steps 20] [--hours 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

FRAME_RATE = 50      # EnCodec 32 kHz, hop 640 (MusicGen's codec)
CODEBOOKS = 4
CLIP_SECONDS = 60.0  # the synthetic catalogue's clip length


def _rss() -> dict[str, int]:
    """This process's resident memory in bytes: total, anonymous, file-backed (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


# --- throughput ---------------------------------------------------------------------------------

def _assets():
    from soundscape.config import SAMPLES_DIR

    return [{"path": str(f)} for f in sorted(SAMPLES_DIR.glob("*.flac"))]


def _train_once(model_dir, work, *, steps, batch_size, segment_seconds, device, dist=None):
    from soundscape.engines.musicgen.train import train

    marks = []
    result = train(model_dir, _assets(), steps=steps, batch_size=batch_size, lr=1e-3,
                   segment_seconds=segment_seconds, out_dir=Path(work) / f"out-{time.time_ns()}",
                   cache_dir=Path(work) / "codes", device=device, dist=dist,
                   # a builder's fresh codec: throughput does not depend on what it learnt
                   allow_untrained_codec=True,
                   progress=lambda step, total, loss: marks.append(time.perf_counter()))
    return result, marks


def _rank_main(rank: int, world: int, port: int, model_dir: str, work: str, opts: dict, out: str):
    import torch

    from soundscape.engines.musicgen.distributed import init_from_env

    torch.set_num_threads(opts["threads"])
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    warnings.filterwarnings("ignore")
    dist = init_from_env(device=opts["device"])
    try:
        result, marks = _train_once(model_dir, work, steps=opts["steps"],
                                    batch_size=opts["batch_size"],
                                    segment_seconds=opts["segment_seconds"],
                                    device=opts["device"], dist=dist)
    finally:
        dist.close()
    if rank == 0:
        Path(out).write_text(json.dumps({"marks": marks, "segment_seconds": result.settings[
            "segment_seconds"], "precision": result.settings["precision"]}))


def throughput(nproc: int, model_dir: str, work: str, opts: dict) -> dict:
    """Steps/s and audio hours per hour of ``nproc`` processes training together."""
    out = Path(work) / f"marks-{nproc}.json"
    if nproc == 1:
        result, marks = _train_once(model_dir, work, steps=opts["steps"],
                                    batch_size=opts["batch_size"],
                                    segment_seconds=opts["segment_seconds"], device=opts["device"])
        seg, precision = result.settings["segment_seconds"], result.settings["precision"]
    else:
        import torch.multiprocessing as mp

        from soundscape.engines.musicgen.distributed import free_port

        mp.spawn(_rank_main, args=(nproc, free_port(), model_dir, work, opts, str(out)),
                 nprocs=nproc, join=True)
        data = json.loads(out.read_text())
        marks, seg, precision = data["marks"], data["segment_seconds"], data["precision"]
    timed = len(marks) - 1
    seconds = marks[-1] - marks[0]
    steps_per_s = timed / seconds
    audio_per_s = steps_per_s * opts["batch_size"] * nproc * seg
    return {"nproc": nproc, "steps_per_s": steps_per_s, "audio_hours_per_hour": audio_per_s,
            "segment_seconds": seg, "precision": precision}


# --- RAM ------------------------------------------------------------------------------------------

def _make_store(folder: Path, hours: float) -> list[str]:
    import numpy as np

    from soundscape.engines.musicgen.shards import add_to_index, write_shard

    frames = int(CLIP_SECONDS * FRAME_RATE)
    clips = int(round(hours * 3600 / CLIP_SECONDS))
    rng = np.random.default_rng(0)
    entries, batch = {}, []
    for n in range(clips):
        batch.append((f"clip{n:06d}", rng.integers(0, 2048, size=(CODEBOOKS, frames),
                                                   dtype=np.int16)))
        if len(batch) == 200 or n == clips - 1:
            placed = write_shard(folder, [c for _, c in batch])
            entries.update({sha: w for (sha, _), w in zip(batch, placed)})
            batch = []
    add_to_index(folder, entries, CODEBOOKS)
    return list(entries)


def _ram_probe(kind: str, folder: str, batches: int, batch_size: int, segment: int) -> None:
    """In a fresh process: open the codes one way, draw batches, print the RSS it gained."""
    import numpy as np
    import torch

    from soundscape.engines.musicgen.shards import CodeShards, read_index
    from soundscape.engines.musicgen.train import _crop_batch, _lm_batch, batch_generator

    shas = sorted(read_index(Path(folder))["clips"])
    before = _rss()
    shards = CodeShards(Path(folder), shas)
    if kind == "int64":  # the old way: every clip's codes as an int64 tensor in RAM
        held = [torch.from_numpy(np.array(shards.codes(i), dtype=np.int64)) for i in range(len(shas))]
        del shards
    lengths = [int(n) for n in (held and [h.shape[-1] for h in held])] if kind == "int64" else \
        [int(n) for n in shards.lengths]
    items = [type("Item", (), {"description": "x"})()] * len(shas)
    for step in range(1, batches + 1):
        rows = _crop_batch(lengths, batch_size, segment, batch_generator(0, step))
        if kind == "int64":
            codes = torch.stack([held[i][:, s:s + n] for i, s, n in rows])
        else:
            codes, _, _ = _lm_batch(shards, items, rows, segment, torch.device("cpu"))
        assert codes.shape[0] == batch_size
    after = _rss()
    print(json.dumps({k: after[k] - before[k] for k in after}))


def ram_per_hour(hours: float, batches: int, batch_size: int, segment_seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-ram-") as tmp:
        folder = Path(tmp) / "store"
        _make_store(folder, hours)
        out = {"hours": hours, "disk_bytes": sum(p.stat().st_size for p in folder.glob("*.i16"))}
        for kind in ("memmap", "int64"):
            proc = subprocess.run([sys.executable, __file__, "--ram-probe", kind, str(folder),
                                   str(batches), str(batch_size),
                                   str(int(segment_seconds * FRAME_RATE))],
                                  capture_output=True, text=True, check=True)
            out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="tiny", help="model size to train (tiny, small, medium)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4, help="segments per step per process")
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--nprocs", default="1,2", help="process counts to measure")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--hours", type=float, default=20.0, help="hours of codes for the RAM probe")
    parser.add_argument("--batches", type=int, default=500, help="batches the RAM probe draws")
    parser.add_argument("--skip-ram", action="store_true")
    parser.add_argument("--ram-probe", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ram_probe:
        kind, folder, batches, batch_size, segment = args.ram_probe
        _ram_probe(kind, folder, int(batches), int(batch_size), int(segment))
        return
    run(args)


def run(args) -> dict:
    """Measure and print; returns the figures (bench_gpu.py calls this)."""
    import torch

    from soundscape.engines.musicgen.builders import build_model, export_model

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    figures: dict = {"throughput": []}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
        model_dir = Path(work) / f"model-{args.arch}"
        codec, lm = build_model(args.arch, seed=0)
        export_model(codec, lm, lm.cfg, model_dir)
        del codec, lm
        opts = {"steps": args.steps, "batch_size": args.batch_size,
                "segment_seconds": args.segment_seconds, "threads": args.threads,
                "device": args.device}
        # Encode the samples once, outside the timed runs (the shard store is then shared).
        _train_once(model_dir, work, steps=1, batch_size=1, segment_seconds=args.segment_seconds,
                    device=args.device)
        for nproc in [int(n) for n in args.nprocs.split(",")]:
            t = throughput(nproc, str(model_dir), work, opts)
            figures["throughput"].append(t)
            print(f"[{args.device} {args.arch} {t['precision']}] {nproc} process(es) x "
                  f"{args.threads} thread(s), batch {args.batch_size} x {t['segment_seconds']:.1f} s "
                  f"per process: {t['steps_per_s']:.2f} steps/s, "
                  f"{t['audio_hours_per_hour']:.1f} audio hours per hour", flush=True)
    if not args.skip_ram:
        r = ram_per_hour(args.hours, args.batches, args.batch_size * 4, args.segment_seconds * 5)
        figures["ram"] = r
        mb = 1024 * 1024
        for kind in ("memmap", "int64"):
            rss = r[kind]
            print(f"[ram] {kind}: {r['hours']:.0f} h of codes, {args.batches} batches drawn: "
                  f"+{rss['VmRSS'] / mb:.1f} MiB RSS ({rss['RssAnon'] / mb:.1f} anonymous, "
                  f"{rss['RssFile'] / mb:.1f} file-backed) = {rss['VmRSS'] / mb / r['hours']:.2f} "
                  f"MiB per hour of audio ({rss['RssAnon'] / mb / r['hours']:.3f} anonymous)")
        print(f"[ram] shards on disk: {r['disk_bytes'] / mb / r['hours']:.2f} MiB per hour of audio")
    return figures


if __name__ == "__main__":
    main()
