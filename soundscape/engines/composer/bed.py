"""Rendering a bed: its planned score performed with its textures and library samples."""

from __future__ import annotations

import numpy as np

from soundscape.engines.composer import arrangement, mix, space
from soundscape.engines.composer.performance import perform
from soundscape.engines.composer.samplelayer import SampleLayer
from soundscape.engines.composer.textures import TextureBed
from soundscape.render import LOOP_OVERLAP_SECONDS, AudioStore
from soundscape.spec import CueSpec

SAMPLE_RATE = mix.SAMPLE_RATE
HALF_RATE = mix.HALF_RATE
PEAK_TARGET = 10 ** (-4.0 / 20)   # -4 dBFS: headroom for mastering's true-peak limiter
LOOP_PREROLL_SECONDS = 8.0        # a loop's end is played before its start, so tails cross the seam
ROOM_SECONDS = 4.2
SPILL_SECONDS = 20 * 60           # beds longer than this render into a temporary file
# Textures that carry their own air above 8 kHz (hiss, drops, crackle, chirps): with one of
# them the instruments' breath-and-bow air would only add noise to noise.
AIRY_TEXTURES = frozenset({"rain", "storm", "vinyl", "fire", "forest", "insects", "snow"})


class _SampleExtra:
    """The library layer as a full-rate extra (a little of it goes to the room)."""

    def __init__(self, layer: SampleLayer):
        self.layer = layer

    def add_to(self, dry: np.ndarray, send: np.ndarray, start: int) -> None:
        block = np.zeros_like(dry)
        self.layer.add_to(block, start)
        dry += block
        send += (block[0] + block[1]) * np.float32(0.5 * 0.3)


def render_bed(spec: CueSpec, banks: list, fitted: list | None = None, *, progress=None
               ) -> tuple[np.ndarray, dict, list]:
    """Render an ambient bed (plus the loop overlap when ``spec.loop``).

    Args:
        spec: the cue.
        banks: installed sound banks (empty: the built-in synth voices play everything).
        fitted: library samples chosen for the cue (see ``samplelayer.fit_samples``).

    Returns:
        ``(audio (2, n) float32 at 48 kHz, details for the sidecar, presets played)``.
    """
    plan = arrangement.plan_bed(spec)
    duration = spec.duration
    n_out = int(round((duration + (LOOP_OVERLAP_SECONDS if spec.loop else 0.0)) * SAMPLE_RATE))
    preroll = 0
    score = plan.score
    if spec.loop:
        score = arrangement.unroll_loop(score, period=duration, before=LOOP_PREROLL_SECONDS,
                                        after=LOOP_OVERLAP_SECONDS + 2.0)
        preroll = int(LOOP_PREROLL_SECONDS * SAMPLE_RATE)
    seeds = np.random.SeedSequence([spec.seed, 2017]).spawn(4)
    r_play, r_room, r_tex, r_samples = [np.random.default_rng(s) for s in seeds]
    textures = TextureBed(spec.intent.textures, r_tex, seconds=score.seconds,
                          intensity=plan.intensity, loop_period=duration if spec.loop else None,
                          offset=LOOP_PREROLL_SECONDS if spec.loop else 0.0)
    chord_starts = np.array([c.start for c in plan.chords])
    tonic = spec.intent.key.tonic

    def on_tonic(seconds: float) -> bool:
        span = plan.chords[max(int(np.searchsorted(chord_starts, seconds, side="right")) - 1, 0)]
        return span.chord.root == tonic

    samples = SampleLayer(fitted or [], total=int(score.seconds * SAMPLE_RATE), rng=r_samples,
                          loop_period=int(round(duration * SAMPLE_RATE)) if spec.loop else None,
                          offset=preroll, on_tonic=on_tonic) if fitted else None
    room = mix.fit_room(space.impulse_response(r_room, rt60=ROOM_SECONDS * 0.75, brightness=0.45))
    extras = (textures,) + ((_SampleExtra(samples),) if samples is not None else ())
    # A bed too long to hold twice in memory (render, then master) is rendered into a file.
    spill = AudioStore(2, n_out) if n_out > SPILL_SECONDS * SAMPLE_RATE else None
    airy = bool(set(spec.intent.textures) & AIRY_TEXTURES)
    out, players, peak = perform(score, banks, rng=r_play, room=room, n_out=n_out,
                                 preroll=preroll, extras=extras, progress=progress, out=spill,
                                 air=not airy)
    # Held renders peak at -4 dBFS; a spilled one is left at its own level (the master sets
    # the level anyway, and a pass over a file of gigabytes would cost seconds for nothing).
    gain = np.float32(PEAK_TARGET / (peak or 1.0)) if spill is None else np.float32(1.0)
    if spill is None:
        out *= gain
    details = dict(plan.details)
    details.update({
        "key": spec.intent.key.name,
        "bpm": spec.intent.bpm,
        "chords": [{"roman": s.chord.roman,
                    "name": arrangement.harmony.chord_name(s.chord, spec.intent.key),
                    "start": round(s.start, 2), "end": round(min(s.end, duration), 2),
                    "voicing": [arrangement.harmony.note_name(m, spec.intent.key) for m in s.voicing]}
                   for s in plan.chords],
        "layers": [f"{p.name}:{p.instrument}" for p in plan.score.parts]
        + [f"texture:{t}" for t in spec.intent.textures] + (["samples"] if samples else []),
        "melody_notes": len(next((p.notes for p in plan.score.parts if p.name == "melody"), [])),
        "textures": list(spec.intent.textures),
        "voices": players.kind,
        "loop_overlap_seconds": LOOP_OVERLAP_SECONDS if spec.loop else 0.0,
        "normalise_gain_db": round(float(20 * np.log10(gain)), 2),
    })
    if spec.loop:
        details["sections"] = [dict(s, name=f"loop:{s['name']}") for s in details["sections"]]
    return out, details, players.presets


__all__ = ["render_bed"]
