"""The composer's sound, measured: every figure issue 9 asks of a bed, on two prompt sets.

The *tuned* prompts are the ones the composer was tuned on; the *held-out* prompts were written
before tuning began and never listened to (or looked at) while tuning. Figures that hold only on
the first set say nothing; the README reports both.

For each prompt (a 120 s bed, mastered to EBU R 128, seeded as ``soundscape generate`` seeds):
band shares (under 100 Hz, 2-8 kHz, over 8 kHz), left/right correlation under 200 Hz, the mono
fold-down's loss under 300 Hz, and the strongest literal repeat within 60 s. Per set: two seeds
of each prompt (mean per-second chroma correlation), the intensity curve 0.1 -> 1.0 -> 0.2 over
180 s (short-term loudness span and its correlation with the curve), minute 1 against minute 5
of 10-minute beds, textures alone (repeats), and the pitch wander of a held string note.
Spectrograms go to docs/images/ (``--no-images`` to skip).

    .venv/bin/python bench/bench_composer_sound.py [--quick] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soundscape.audio import analysis  # noqa: E402
from soundscape.audio.master import master  # noqa: E402
from soundscape.engines.composer import ComposerEngine  # noqa: E402
from soundscape.spec import make_spec  # noqa: E402

SR = 48_000
TUNED = [
    "calm piano bed with strings",
    "dark tense drone, city hum",
    "dreamy ambient pad with soft rain",
    "hopeful bright playful plucks",
    "melancholic cello and piano, slow",
    "epic cinematic strings and choir",
    "snowfall over a quiet harbour with gulls",
    "dripping water in a cave, music box",
    "warm guitar by the fireplace",
    "mysterious celesta and harp, night forest",
    "storm over the sea, low strings",
    "gentle marimba and flute, insects in a summer meadow",
]
# Written before tuning, never tuned on.
HELD_OUT = [
    "nostalgic vibraphone with vinyl crackle",
    "serene choir over ocean waves",
    "uneasy organ drone with wind",
    "whimsical kalimba and glockenspiel",
    "lonely solo violin at dawn",
    "cosy evening with a crowd murmur in a cafe, rhodes",
    "ethereal glass pad and harp",
    "heroic horns and timpani in a thunderstorm",
]
BANDS = ((20.0, 100.0), (2000.0, 8000.0), (8000.0, 24000.0))


def bed(engine, prompt: str, seconds: float, seed: int, **kw):
    spec = make_spec(prompt, duration=seconds, seed=seed, **kw)
    render = engine.render([spec])[0]
    return render, master(render, "ebu-r128")


def per_prompt(engine, prompt: str, seed: int, seconds: float) -> dict:
    render, mastered = bed(engine, prompt, seconds, seed)
    audio = mastered.audio
    low, presence, air = analysis.band_shares(audio, SR, BANDS)
    loss, wobble = analysis.mono_loss_db(audio, SR)
    repeat, lag = analysis.repeat_score(audio, SR, within=60.0)
    return {"prompt": prompt, "seed": seed, "key": render.details["key"], "bpm": render.details["bpm"],
            "orchestra": render.details["orchestra"], "voices": render.details["voices"],
            "unknown": list(render.spec.intent.unknown),
            "below_100": low, "presence_2_8k": presence, "air_8k": air,
            "low_corr_200": analysis.low_band_correlation(audio, SR),
            "mono_loss_300_db": loss, "mono_wobble_db": wobble, "repeat": repeat,
            "repeat_lag": lag, "lra": mastered.loudness_range_lu}


def seeds(engine, prompt: str, seconds: float) -> float:
    a = engine.render([make_spec(prompt, duration=seconds, seed=101)])[0].audio
    b = engine.render([make_spec(prompt, duration=seconds, seed=202)])[0].audio
    return analysis.chroma_similarity(a, b, SR)


def intensity(engine, prompt: str) -> tuple[float, float]:
    spec = make_spec(prompt, duration=180, seed=5, intensity="0:0.1,90:1.0,180:0.2")
    audio = master(engine.render([spec])[0], "ebu-r128").audio
    t, st = analysis.short_term_loudness(audio, SR)
    keep = (t > 5.0) & (t < 170.0)
    return float(st[keep].max() - st[keep].min()), float(np.corrcoef(st[keep], spec.intent.intensity.at(t[keep]))[0, 1])


def minutes(engine, prompt: str) -> dict:
    render, mastered = bed(engine, prompt, 600.0, 9)
    moved = analysis.minute_distance(mastered.audio, SR)
    moved["lra"] = mastered.loudness_range_lu
    moved["sections"] = [s["name"] for s in render.details["sections"]]
    return moved, mastered.audio, render.details["sections"]


def textures() -> dict:
    from soundscape.engines.composer.textures import TEXTURES, TextureBed

    out = {}
    seconds = 75.0
    n = int(seconds * SR)
    for name in TEXTURES:
        tb = TextureBed((name,), np.random.default_rng(4), seconds=seconds,
                        intensity=np.ones(int(seconds * 50) + 4, dtype=np.float32))
        audio, send = np.zeros((2, n), dtype=np.float32), np.zeros(n, dtype=np.float32)
        for start in range(0, n, 1 << 18):
            tb.add_to(audio[:, start:start + (1 << 18)], send[start:start + (1 << 18)], start)
        out[name] = analysis.repeat_score(audio, SR, within=60.0)[0]
    return out


def drift(engine) -> float | None:
    from soundscape.engines.composer import fluid
    from soundscape.engines.composer.palette import INSTRUMENTS
    from soundscape.engines.composer.score import Note, Part

    if not engine.banks:
        return None
    part = Part("pad", "strings", [Note(0.0, 20.0, 57, 90)], sustained=True)
    choice = fluid.choose_preset(INSTRUMENTS["strings"], engine.banks)
    player = fluid.FluidPlayer(engine.banks, [part], {"pad": choice}, np.random.default_rng(3),
                               sample_rate=24000, seconds=20.0)
    audio = np.concatenate([player.render(24000)[0] for _ in range(20)], axis=-1).mean(axis=0)
    player.close()
    cents = []
    for second in range(2, 18):
        seg = audio[second * 24000:(second + 1) * 24000] * np.hanning(24000)
        spec = np.abs(np.fft.rfft(seg, n=1 << 20))
        f = np.fft.rfftfreq(1 << 20, 1 / 24000)
        band = (f > 200) & (f < 240)
        cents.append(1200 * np.log2(f[band][np.argmax(spec[band])] / 220.0))
    return float(np.std(cents))


def spectrogram(audio: np.ndarray, path: Path, title: str, *, sections=(), curve=None) -> None:
    """A spectrogram over the short-term loudness, sections marked; ``curve`` (times, levels)
    is drawn on a second axis (an intensity curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mono = audio.mean(axis=0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5), gridspec_kw={"height_ratios": [3, 1.2]})
    top.specgram(mono, NFFT=4096, Fs=SR, noverlap=2048, cmap="magma", vmin=-140, vmax=-30)
    top.set_yscale("symlog", linthresh=200)
    top.set_ylim(30, 20000)
    top.set_ylabel("Hz")
    top.set_xlim(0, audio.shape[-1] / SR)
    top.set_title(title, fontsize=10, pad=14 if sections else 6)
    t, st = analysis.short_term_loudness(audio, SR)
    bottom.plot(t, st, lw=1, color="tab:blue")
    body = st[(t > 10) & (t < t[-1] - 10)] if t.size > 40 else st
    bottom.set_ylim(float(np.median(body)) - 18, float(body.max()) + 3)
    bottom.set_ylabel("LUFS (3 s)")
    bottom.set_xlim(0, audio.shape[-1] / SR)
    bottom.set_xlabel("seconds")
    for s in sections:
        for ax in (top, bottom):
            ax.axvline(s["start"], color="white" if ax is top else "grey", lw=0.6, alpha=0.6)
        top.text(s["start"] + 1, 22000, s["name"], fontsize=7, color="black", va="bottom")
    if curve is not None:
        twin = bottom.twinx()
        twin.plot(*curve, color="tab:orange", lw=1)
        twin.set_ylim(0, 1.1)
        twin.set_ylabel("intensity", color="tab:orange")
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def summarise(rows: list[dict]) -> dict:
    col = lambda k: np.array([r[k] for r in rows])  # noqa: E731
    return {"presence_mean": float(col("presence_2_8k").mean()),
            "presence_min": float(col("presence_2_8k").min()),
            "air_mean": float(col("air_8k").mean()),
            "below_100_range": [float(col("below_100").min()), float(col("below_100").max())],
            "low_corr_min": float(col("low_corr_200").min()),
            "mono_loss_max_db": float(col("mono_loss_300_db").max()),
            "repeat_max": float(col("repeat").max())}


def short_images(engine, images: Path) -> None:
    """Spectrograms of two 90 s beds and of the intensity curve's bed."""
    images.mkdir(parents=True, exist_ok=True)
    for prompt, stem in (("dreamy ambient pad with soft rain", "bed-dreamy-rain"),
                         ("epic cinematic strings and choir", "bed-epic")):
        render, mastered = bed(engine, prompt, 90.0, 1002)
        spectrogram(mastered.audio, images / f"{stem}.png", f"90 s bed: {prompt}",
                    sections=render.details["sections"])
    spec = make_spec("calm piano bed with strings", duration=180, seed=5,
                     intensity="0:0.1,90:1.0,180:0.2")
    times = np.linspace(0, 180, 181)
    spectrogram(master(engine.render([spec])[0], "ebu-r128").audio, images / "intensity.png",
                "intensity 0:0.1, 90:1.0, 180:0.2 (calm piano bed with strings)",
                curve=(times, spec.intent.intensity.at(times)))
    print(f"== spectrograms in {images.relative_to(ROOT)}/")


def long_image(engine, images: Path, prompt: str) -> None:
    moved, audio, sections = minutes(engine, prompt)
    images.mkdir(parents=True, exist_ok=True)
    spectrogram(audio, images / "bed-10min.png", f"10-minute bed: {prompt}", sections=sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s beds, fewer extras")
    parser.add_argument("--no-images", action="store_true")
    parser.add_argument("--images-only", action="store_true", help="draw the spectrograms, measure nothing")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    started = time.perf_counter()
    engine = ComposerEngine()
    print(f"voices: {'sampled (' + ', '.join(b.info.title for b in engine.banks) + ')' if engine.banks else 'synth'}")
    seconds = 60.0 if args.quick else 120.0
    results: dict = {"sets": {}}
    images = ROOT / "docs" / "images"
    if args.images_only:
        long_image(engine, images, TUNED[0])
        short_images(engine, images)
        return
    for name, prompts in (("tuned", TUNED), ("held-out", HELD_OUT)):
        rows = []
        print(f"\n== {name} prompts ({len(prompts)}), {seconds:.0f} s beds, EBU R 128")
        print(f"{'prompt':44s} {'key':12s} bpm  <100Hz  2-8kHz  >8kHz  r<200 monoloss repeat")
        for i, prompt in enumerate(prompts):
            row = per_prompt(engine, prompt, 1000 + i, seconds)
            rows.append(row)
            print(f"{prompt[:44]:44s} {row['key']:12s} {row['bpm']:3.0f} {100 * row['below_100']:6.1f}% "
                  f"{100 * row['presence_2_8k']:6.2f}% {100 * row['air_8k']:5.2f}% {row['low_corr_200']:5.2f} "
                  f"{row['mono_loss_300_db']:6.2f} dB {row['repeat']:5.2f}"
                  + (f"  (not understood: {', '.join(row['unknown'])})" if row["unknown"] else ""))
        summary = summarise(rows)
        sim = [seeds(engine, p, 45.0 if args.quick else 60.0) for p in prompts[:4 if args.quick else len(prompts)]]
        summary["seed_chroma_mean"] = float(np.mean(sim))
        summary["seed_chroma_max"] = float(np.max(sim))
        curves = [intensity(engine, p) for p in prompts[:2 if args.quick else 3]]
        summary["intensity_span_min_lu"] = min(c[0] for c in curves)
        summary["intensity_r_min"] = min(c[1] for c in curves)
        print(f"-- {name}: 2-8 kHz mean {100 * summary['presence_mean']:.2f}% (min "
              f"{100 * summary['presence_min']:.2f}%), >8 kHz mean {100 * summary['air_mean']:.2f}%, "
              f"<100 Hz {100 * summary['below_100_range'][0]:.1f}-{100 * summary['below_100_range'][1]:.1f}%; "
              f"L/R r<200 Hz min {summary['low_corr_min']:.2f}; mono loss <300 Hz max "
              f"{summary['mono_loss_max_db']:.2f} dB; literal repeat within 60 s max {summary['repeat_max']:.2f}")
        print(f"-- {name}: two seeds, mean per-second chroma correlation {summary['seed_chroma_mean']:.2f} "
              f"(max {summary['seed_chroma_max']:.2f}); intensity 0.1->1.0->0.2: span >= "
              f"{summary['intensity_span_min_lu']:.1f} LU, r >= {summary['intensity_r_min']:.2f}")
        if not args.quick:
            moved, audio, sections = minutes(engine, prompts[0])
            summary["minute_1_vs_5"] = moved
            print(f"-- {name}: 10-minute bed '{prompts[0]}': minute 1 vs 5 chroma {moved['chroma']:.2f}, "
                  f"brightness {moved['brightness']:.2f} oct, level {moved['level_db']:.1f} dB, onsets "
                  f"{moved['onsets_per_second']}/s; LRA {moved['lra']:.1f} LU; sections {', '.join(moved['sections'])}")
            if not args.no_images and name == "tuned":
                images.mkdir(parents=True, exist_ok=True)
                spectrogram(audio, images / "bed-10min.png", f"10-minute bed: {prompts[0]}",
                            sections=sections)  # the bed just measured: no second render
        results["sets"][name] = {"rows": rows, "summary": summary}
    tex = textures()
    results["textures_repeat"] = tex
    print("\n== textures alone, strongest literal repeat within 60 s: "
          + ", ".join(f"{k} {v:.2f}" for k, v in tex.items()))
    wander = drift(engine)
    results["held_note_wander_cents"] = wander
    if wander is not None:
        print(f"== a held string note wanders {wander:.1f} cents (standard deviation, second by second)")
    if not args.no_images:
        short_images(engine, images)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    print(f"\n(bench took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
