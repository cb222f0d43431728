"""Benchmark of ``soundscape batch``: a 24-cue episode with the composer on 1 and 2 workers, and the
tiny MusicGen model rendering cues batched in one forward pass against one cue at a time.

Run: ``.venv/bin/python bench/bench_batch.py`` (``make bench`` runs every benchmark). Prints the
figures; ``--json FILE`` also writes them. Each composer run starts from an empty workspace and
output folder, so every cue renders (nothing is skipped), and the whole batch is timed: planning,
worker start-up, rendering, mastering, delivery, ledger records and clearance verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

# A 24-cue episode: titles, beds of 30 s to 2 min (some looping), transitions and stings.
EPISODE_HEADER = """\
production:
  title: "Bench Water"
  episode: "B01E01"
  air_date: 2027-03-14
  territory: [FR]
  policy: broadcast-commercial
  preset: ebu-r128
cues:
"""
BEDS = [("calm pad with rain", 60, False), ("dark drone with ocean", 90, True),
        ("dreamy bells and pad", 45, False), ("tense strings pulse", 30, False),
        ("warm piano and strings", 120, True), ("mysterious pluck and drone", 60, False),
        ("hopeful strings", 75, False), ("melancholic piano", 45, True),
        ("epic strings and bells", 30, False), ("ethereal pad with wind", 90, False),
        ("calm ocean waves pad", 60, True), ("dark brooding drone", 45, False)]
STINGS = ["tense hit", "eerie pluck", "bright bell", "epic reveal", "mysterious swell", "warm chime"]
TRANSITIONS = ["hopeful bumper", "mysterious act out", "tense act out", "warm next time"]


def episode_yaml() -> str:
    cues = ['  - {id: "1M1", kind: jingle, usage: MT, duration: 20, prompt: "hopeful strings main title", motif: "D4 F4 A4 D5"}',
            '  - {id: "9M9", kind: jingle, usage: ET, duration: 20, prompt: "warm strings end title", motif: "D4 F4 A4 D5"}']
    cues += [f'  - {{id: "B{i + 1}", kind: bed, usage: BI, duration: {d}, prompt: "{p}", loop: {str(loop).lower()}}}'
             for i, (p, d, loop) in enumerate(BEDS)]
    cues += [f'  - {{id: "S{i + 1}", kind: sting, usage: BI, duration: {3 + i % 3}, prompt: "{p}"}}'
             for i, p in enumerate(STINGS)]
    cues += [f'  - {{id: "T{i + 1}", kind: jingle, usage: BI, duration: {6 + 2 * i}, prompt: "{p}"}}'
             for i, p in enumerate(TRANSITIONS)]
    assert len(cues) == 24
    return EPISODE_HEADER + "\n".join(cues) + "\n"


def bench_composer(root: Path, workers: int, *, repeat: int) -> dict:
    """The 24-cue episode from scratch with ``workers`` workers; the best of ``repeat`` runs."""
    from soundscape.batch import runner
    from soundscape.batch.cuelist import load_cuelist
    from soundscape.config import open_workspace

    cues = root / "episode.yaml"
    cues.write_text(episode_yaml(), encoding="utf-8")
    episode = load_cuelist(cues)
    walls = []
    for attempt in range(repeat):
        workspace = open_workspace(root / f"home-{workers}-{attempt}")
        report = runner.run_batch(episode, root / f"out-{workers}-{attempt}", workspace=workspace,
                                  workers=workers)
        assert not report.failed, [r.error for r in report.failed]
        assert all(r.status == "rendered" for r in report.results)
        walls.append(report.wall_seconds)
    best = min(walls)
    audio_seconds = sum(r.delivery.duration for r in report.results)
    return {"workers": workers, "cues": len(report.results), "wall_s": round(best, 2),
            "runs_s": [round(w, 2) for w in walls],
            "cues_per_min": round(60 * len(report.results) / best, 1),
            "audio_s": round(audio_seconds, 1), "realtime_factor": round(audio_seconds / best, 1)}


def bench_musicgen_batch(root: Path, cues: int, duration: float) -> dict:
    """The same musicgen cues through ``run_batch`` end to end: one task, one forward pass."""
    from soundscape.batch import runner
    from soundscape.batch.cuelist import load_cuelist
    from soundscape.config import open_workspace

    path = root / "musicgen.yaml"
    path.write_text(EPISODE_HEADER.replace("preset: ebu-r128", "preset: ebu-r128\n  engine: musicgen\n"
                                           "  model: bench-tiny") + "".join(
        f'  - {{id: "M{i + 1}", kind: sting, usage: BI, duration: {duration:g}, '
        f'prompt: "ambient sting number {i}", seed: {100 + i}}}\n' for i in range(cues)))
    workspace = open_workspace(root / "home-musicgen")
    report = runner.run_batch(load_cuelist(path), root / "out-musicgen", workspace=workspace, workers=2)
    assert not report.failed, [r.error for r in report.failed]
    return {"cues": cues, "wall_s": round(report.wall_seconds, 2),
            "cues_per_min": round(60 * cues / report.wall_seconds, 1)}


def bench_musicgen(root: Path, cues: int, duration: float) -> dict:
    """Tiny MusicGen: ``cues`` cues of ``duration`` s rendered in one call, then one call per cue."""
    import torch

    from soundscape.config import open_workspace
    from soundscape.models import create_model, engine_for_model
    from soundscape.rights.ledger import Ledger
    from soundscape.spec import make_spec

    torch.set_num_threads(1)
    workspace = open_workspace(root / "home-musicgen")
    with Ledger.open(workspace) as ledger:
        create_model(ledger, workspace, "bench-tiny", "tiny", seed=440)
    started = time.perf_counter()
    engine = engine_for_model("bench-tiny", workspace=workspace, device="cpu")
    load_s = time.perf_counter() - started
    specs = [make_spec(f"ambient sting number {i}", kind="sting", duration=duration,
                       seed=100 + i, engine="musicgen", model="bench-tiny")
             for i in range(cues)]
    engine.render(specs[:1])  # warm-up: first-call allocations and kernels
    started = time.perf_counter()
    batched = engine.render(specs)
    batched_s = time.perf_counter() - started
    started = time.perf_counter()
    single = [engine.render([spec])[0] for spec in specs]
    per_cue_s = time.perf_counter() - started
    # The engine promises each cue sounds the same alone or in a batch; count the ones that do.
    same = sum(bool((a.audio == b.audio).all()) for a, b in zip(batched, single))
    return {"cues": cues, "cue_duration_s": duration, "model_load_s": round(load_s, 2),
            "batched_s": round(batched_s, 2), "per_cue_s": round(per_cue_s, 2),
            "speedup": round(per_cue_s / batched_s, 2), "identical_to_per_cue": f"{same}/{cues}",
            "device": engine.device}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--musicgen-cues", type=int, default=8)
    parser.add_argument("--musicgen-duration", type=float, default=3.0)
    parser.add_argument("--skip-musicgen", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="composer runs per worker count (best kept)")
    args = parser.parse_args(argv)
    figures: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
                     "composer": [], "musicgen": None}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        for workers in (1, 2):
            result = bench_composer(root, workers, repeat=args.repeat)
            figures["composer"].append(result)
            print(f"composer, 24-cue episode, {workers} worker{'s' if workers > 1 else ''}: "
                  f"{result['wall_s']:.1f} s wall (best of {result['runs_s']}), "
                  f"{result['cues_per_min']:.1f} cues/min, {result['audio_s']:.0f} s of audio "
                  f"({result['realtime_factor']:.0f}x real time)")
        one, two = figures["composer"]
        print(f"composer, 2 workers vs 1: {one['wall_s'] / two['wall_s']:.2f}x faster")
        if not args.skip_musicgen:
            result = bench_musicgen(root, args.musicgen_cues, args.musicgen_duration)
            figures["musicgen"] = result
            print(f"musicgen tiny ({result['device']}), {result['cues']} cues of "
                  f"{result['cue_duration_s']:g} s: batched {result['batched_s']:.2f} s, per cue "
                  f"{result['per_cue_s']:.2f} s ({result['speedup']:.2f}x); model load "
                  f"{result['model_load_s']:.2f} s; cues whose batched audio equals the per-cue render: "
                  f"{result['identical_to_per_cue']}")
            result = bench_musicgen_batch(root, args.musicgen_cues, args.musicgen_duration)
            figures["musicgen_batch"] = result
            print(f"musicgen tiny through soundscape batch (one task, worker start-up, mastering, "
                  f"delivery, ledger): {result['cues']} cues in {result['wall_s']:.1f} s, "
                  f"{result['cues_per_min']:.1f} cues/min")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
