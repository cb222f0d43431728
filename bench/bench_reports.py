"""Report time for a 200-cue season in each format (CSV, JSON, HTML and PDF with waveforms).

The season is written straight into a fresh ledger through its API (no rendering): half the cues
from the composer with CC0 samples, half from a registered musicgen model trained on a CC-BY
dataset, each with a short real audio file for its waveform. Then ``soundscape report``'s own path
(open the ledger, build the cue sheet, render, write atomically) is timed per format.
Targets (issue 6): CSV and JSON under 2 s, HTML and PDF under 30 s.

Run: ``.venv/bin/python bench/bench_reports.py [--cues 200] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from soundscape.config import SAMPLES_DIR, open_workspace  # noqa: E402
from soundscape.facts import OutputFacts  # noqa: E402
from soundscape.rights.ingest import ensure_sample_library  # noqa: E402
from soundscape.rights.records import ModelEntry  # noqa: E402

TARGETS = {"csv": 2.0, "json": 2.0, "html": 30.0, "pdf": 30.0}
EPISODE = "S01"  # the whole season as one cue sheet: the largest report a studio makes


def _audio(path: Path, seconds: float, seed: int) -> Path:
    """A short stereo 24-bit file: a slow chord swell over a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(48000 * seconds)) / 48000
    tone = sum(np.sin(2 * np.pi * f * t) for f in (110 * (1 + seed % 5), 165, 220)) / 3
    env = np.sin(np.pi * t / seconds) ** 2
    mono = 0.4 * env * tone + 0.02 * rng.standard_normal(t.size)
    sf.write(path, np.stack([mono, mono * 0.9], axis=1), 48000, subtype="PCM_24")
    return path


def build_season(root: Path, *, cues: int, seconds: float):
    """A workspace whose ledger holds ``cues`` outputs of one season; returns the workspace."""
    from soundscape.audio.io import audio_sha256
    from soundscape.rights.ingest import AssetEntry, add_entries
    from soundscape.rights.ledger import Ledger

    home, folder, data = root / "home", root / "season", root / "training"
    folder.mkdir(parents=True)
    data.mkdir()
    workspace = open_workspace(home)
    samples = [json.loads(line) for line in (SAMPLES_DIR / "manifest.jsonl").read_text().splitlines()
               if line.strip()]
    with Ledger.open(workspace) as ledger:
        ensure_sample_library(ledger)
        add_entries(ledger, [AssetEntry(path=_audio(data / f"rec{i:03d}.wav", 0.25, i),
                                        license="CC-BY-4.0" if i % 5 else "CC0-1.0",
                                        author=f"Recordist {i % 7}") for i in range(40)],
                    dataset="field-recordings")
        ledger.register_model(ModelEntry(name="tides-v1", engine="musicgen", lm_sha256="c3" * 32,
                                         datasets=["field-recordings"], license="CC-BY-4.0"))
        for i in range(cues):
            path = _audio(folder / f"{EPISODE}_{i + 1:03d}M1.wav", seconds, i)
            composer = i % 2 == 0
            used = [{k: s[k] for k in ("id", "sha256", "license", "path")}
                    for s in samples[i % len(samples):i % len(samples) + 3]] if composer else []
            start = i * 30
            ledger.record_output(OutputFacts(
                audio_sha256=audio_sha256(path), file_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                path=str(path), engine="composer" if composer else "musicgen",
                engine_version="1.0.0" if composer else "1.3.0",
                model=None if composer else "tides-v1",
                model_sha256=None if composer else "c3" * 32, prompt=f"cue {i}", cue_kind="bed",
                duration=seconds, samples=used,
                parameters={"kind": "bed", "params": {"cue": {
                    "title": f"Cue {i + 1}", "usage": "BI" if i % 10 else "MT",
                    "timecode_in": f"{start // 3600:02d}:{start // 60 % 60:02d}:{start % 60:02d}:00",
                    "frame_rate": 25, "episode_title": "Season one", "company": "Abyss Films",
                    "publisher": "Abyss Music"}}},
                production="Deep Water", episode=EPISODE, cue_id=f"{i + 1}M1",
                air_date="2027-03-14", territories=["FR", "BE"]))
    return workspace


def time_report(workspace, fmt: str, out: Path) -> tuple[float, float, float]:
    """Wall seconds for the whole report (ledger open to file written), for building the cue
    sheet model, and the CPU seconds of the whole report (shows how busy the machine was)."""
    from soundscape import reports
    from soundscape.reports.cuesheet import build_cuesheet
    from soundscape.rights.ledger import Ledger

    start, cpu = time.perf_counter(), time.process_time()
    with Ledger.open(workspace) as ledger:
        sheet = build_cuesheet(ledger, EPISODE, workspace=workspace)
        built = time.perf_counter() - start
        reports.write_report(sheet, fmt, out)
    return time.perf_counter() - start, built, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each cue's audio file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        workspace = build_season(root, cues=args.cues, seconds=args.seconds)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        print(f"setup: {args.cues} output records and {args.seconds:g}-second files in "
              f"{time.perf_counter() - start:.1f} s (not part of the figures)")
        # Warm imports once so each figure is the report's own cost, as in a long-lived process;
        # a cold `soundscape report` adds about a second of imports.
        time_report(workspace, "csv", root / "warm.csv")
        failed = []
        for fmt in ("csv", "json", "html", "pdf"):
            out = root / f"season.{fmt}"
            total, built, cpu = time_report(workspace, fmt, out)
            ok = total <= TARGETS[fmt]
            failed += [] if ok else [fmt]
            print(f"{fmt:>4}: {total:6.2f} s for {args.cues} cues (CPU {cpu:.2f} s; cue sheet model "
                  f"{built:.2f} s; {out.stat().st_size / 1e6:.2f} MB)  target < {TARGETS[fmt]:g} s  "
                  f"{'ok' if ok else 'MISSED'}")
    if failed:
        raise SystemExit(f"missed the target for {', '.join(failed)}")


if __name__ == "__main__":
    main()
