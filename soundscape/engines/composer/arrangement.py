"""Ambient beds: plans harmony, voices, textures and movement, then renders them block by block.

Everything slow (chords, note envelopes, random walks, the intensity curve) is planned up front
at a low control rate; audio is then made in blocks of a few seconds into one float32 buffer,
so peak memory stays near the size of the output even for three-hour beds.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from soundscape.engines.base import ProgressFn
from soundscape.engines.composer import harmony, synth, textures
from soundscape.engines.composer.samplelayer import FittedSample, SampleLayer
from soundscape.engines.composer.space import Reverb, impulse_response, pan_gains
from soundscape.engines.composer.synth import SAMPLE_RATE, raised_cosine, slow_walk, upsample_linear
from soundscape.render import LOOP_OVERLAP_SECONDS
from soundscape.spec import CueSpec

CONTROL_RATE = 50                      # Hz: control signals (gains, brightness, density)
HOP = SAMPLE_RATE // CONTROL_RATE      # samples per control step
BLOCK = 5 * SAMPLE_RATE                # audio block: a few MB, so a block's layers stay in cache
# Periods of the sustained-note waves: powers of two samples (the fastest FFT sizes), about
# 11 s for the pad (its beating repeats at 0.09 Hz, under chord changes) and 22 s for the drone.
PAD_PERIOD_SECONDS = 2 ** 19 / SAMPLE_RATE
DRONE_PERIOD_SECONDS = 2 ** 20 / SAMPLE_RATE
PEAK_TARGET = 10 ** (-4.0 / 20)        # -4 dBFS: headroom for mastering's true-peak limiter
PAD_ATTACK, PAD_RELEASE = 2.5, 4.5      # seconds (COMPOSER-NOTES: attack 1-4 s, release 2-6 s)
STRINGS_ATTACK, STRINGS_RELEASE = 4.0, 5.0
CHORD_CACHE = 12                       # summed waves of held-note sets kept (8 MB each for pads)
MELODY_VOICES = ("piano", "bells", "pluck")
MELODY_BASE_RATE = 1 / 6.0             # phrases per second at full density
MELODY_LEVEL = 1.8                     # struck notes sit clearly above the pad, as a lead


def layer_weights(instruments: tuple[str, ...]) -> dict[str, float]:
    """How much of each voice: the prompt's instruments lead, pad and drone always anchor."""
    if not instruments:
        return {"pad": 1.0, "drone": 0.8, "strings": 0.0, "piano": 0.7, "bells": 0.45, "pluck": 0.0}
    w = {"pad": 0.6, "drone": 0.6, "strings": 0.0, "piano": 0.15, "bells": 0.15, "pluck": 0.0}
    for name in instruments:
        w[name] = 1.0
    return w


@dataclass(frozen=True)
class NoteSpan:
    """One sustained note: held from ``start`` to ``end`` seconds, then released."""

    midi: int
    start: float
    end: float
    gain: float
    attack: float
    release: float

    def pieces(self, a: int, b: int) -> list[tuple[int, int, np.ndarray | float]]:
        """Envelope over absolute samples ``a..b`` as (from, to, env) pieces; steady parts are 1.0.

        Only the attack and release ramps are computed sample by sample; ``gain`` is left to the
        caller (it is baked into the note's wave).
        """
        s, e = int(self.start * SAMPLE_RATE), int(self.end * SAMPLE_RATE)
        att, rel = max(int(self.attack * SAMPLE_RATE), 1), max(int(self.release * SAMPLE_RATE), 1)
        out: list[tuple[int, int, np.ndarray | float]] = []
        bounds = ((s, min(s + att, e)), (min(s + att, e), e), (e, e + rel))
        for kind, (p0, p1) in zip(("attack", "steady", "release"), bounds):
            p0, p1 = max(p0, a), min(p1, b)
            if p0 >= p1:
                continue
            if kind == "steady":
                out.append((p0, p1, 1.0))
                continue
            if kind == "attack":
                ramp = _rise(att)[p0 - s:p1 - s]
            else:
                ramp = _rise(rel, falling=True)[p0 - e:p1 - e]
                if e - s < att:  # released before the attack ended: fall from where it got
                    ramp = ramp * _rise(att)[e - s]
            out.append((p0, p1, ramp))
        return out


@functools.lru_cache(maxsize=16)
def _rise(length: int, *, falling: bool = False) -> np.ndarray:
    """A raised-cosine ramp of ``length`` samples (0 -> 1, or 1 -> 0), made once per length."""
    ramp = raised_cosine(np.arange(length, dtype=np.float64) / length)
    ramp = 1.0 - ramp if falling else ramp
    ramp.flags.writeable = False  # shared between notes
    return ramp


def note_spans(spans: list[harmony.ChordSpan], voices: slice, *, gains: list[float],
               attack: float, release: float, transpose: int = 0, first_attack: float | None = None
               ) -> list[NoteSpan]:
    """Merge the voicings' notes into sustained spans: a common tone is held, not re-struck."""
    out: list[NoteSpan] = []
    open_notes: dict[int, list] = {}
    for span in spans:
        notes = [n + transpose for n in span.voicing[voices]]
        for midi in list(open_notes):
            if midi not in notes:
                m, st, g = open_notes.pop(midi)
                out.append(NoteSpan(m, st, span.start, g, attack, release))
        for i, midi in enumerate(notes):
            if midi not in open_notes:
                open_notes[midi] = [midi, span.start, gains[min(i, len(gains) - 1)]]
    end = spans[-1].end
    for m, st, g in open_notes.values():
        out.append(NoteSpan(m, st, end + 60.0, g, attack, release))
    if first_attack is not None:
        out = [NoteSpan(n.midi, n.start, n.end, n.gain, first_attack if n.start == 0 else n.attack,
                        n.release) for n in out]
    return out


class SustainedLayer:
    """Sustained notes from periodic waves with a dark/bright pair for filter movement.

    Between changes (every note of the chord held, none rising or fading) the sounding set is
    one periodic wave too: its sum is made once and added as a single wave, so a held chord
    costs one add per bus however many voices it has.
    """

    def __init__(self, notes: list[NoteSpan], timbre: synth.Timbre, rng: np.random.Generator, *,
                 period: float):
        self.notes = notes
        waves = {m: synth.periodic_note(m, timbre, rng, period_seconds=period)
                 for m in sorted({n.midi for n in notes})}
        # Each note's level is baked into its wave, so a held note is a plain add per block
        # (scaled in place for a pitch's first level, copied only for another level).
        self.waves: dict[tuple[int, float], np.ndarray] = {}
        for key in sorted({(n.midi, n.gain) for n in notes}):
            wave = waves[key[0]]
            if any(k[0] == key[0] for k in self.waves):
                wave = wave.copy()
            wave *= np.float32(key[1])
            self.waves[key] = wave
        self._chords: OrderedDict[frozenset, np.ndarray] = OrderedDict()
        self._starts = np.array([nt.start for nt in notes]) * SAMPLE_RATE
        self._ends = np.array([nt.end + nt.release for nt in notes]) * SAMPLE_RATE
        # Times where some note changes state (starts, ends its attack, starts or ends its release).
        edges = set()
        for nt in notes:
            s, e = int(nt.start * SAMPLE_RATE), int(nt.end * SAMPLE_RATE)
            edges.update((s, s + max(int(nt.attack * SAMPLE_RATE), 1), e,
                          e + max(int(nt.release * SAMPLE_RATE), 1)))
        self._edges = np.array(sorted(edges), dtype=np.int64)
        self._dark = self._extra = self._scratch = None
        self.period = int(round(period * SAMPLE_RATE))

    def _segment_length(self, at: int) -> int:
        """Samples from ``at`` to the next change of any note's state."""
        i = int(np.searchsorted(self._edges, at, side="right"))
        return int(self._edges[i] - at) if i < len(self._edges) else 1 << 62

    def _chord_wave(self, held: list[int], length: int) -> np.ndarray | None:
        """The summed wave of the held notes (kept for the few most recent sets), or None when
        summing a whole period would cost more than adding the notes over ``length`` samples."""
        key = frozenset((self.notes[i].midi, self.notes[i].gain) for i in held)
        if key in self._chords:
            self._chords.move_to_end(key)
        elif length < self.period // 2:
            return None
        else:
            self._chords[key] = sum(self.waves[k] for k in sorted(key))
            if len(self._chords) > CHORD_CACHE:
                self._chords.popitem(last=False)
        return self._chords[key]

    def add_to(self, out: np.ndarray, start: int, bright_gain: np.ndarray, gain: np.ndarray) -> None:
        """Add the block at absolute sample ``start``: ``gain * (dark + bright * extra)``, given
        ``gain`` and ``bright_gain`` (= bright * gain) per sample."""
        n = out.shape[-1]
        end = start + n
        # Only the notes sounding in this block (a three-hour bed has thousands).
        live = np.flatnonzero((self._starts < end) & (self._ends > start))
        # Reused scratch buffers: fresh block-sized arrays would cost page faults every block.
        if self._dark is None or self._dark.shape[-1] < n:
            self._dark = np.empty((2, n), dtype=np.float32)
            self._extra = np.empty((2, n), dtype=np.float32)
            self._scratch = np.empty((2, n), dtype=np.float32)
        dark, extra = self._dark[:, :n], self._extra[:, :n]
        dark.fill(0.0)
        extra.fill(0.0)
        lo = int(np.searchsorted(self._edges, start, side="right"))
        hi = int(np.searchsorted(self._edges, end, side="left"))
        cuts = [start, *self._edges[lo:hi].tolist(), end]
        for a, b in zip(cuts[:-1], cuts[1:]):
            if a >= b:
                continue
            pieces = [(i, self.notes[i].pieces(a, b)) for i in live]
            pieces = [(i, p) for i, p in pieces if p]
            if not pieces:
                continue
            # Notes held through the whole segment are added as one summed wave; only the
            # rising and fading ones go one by one.
            held = [i for i, p in pieces if len(p) == 1 and np.isscalar(p[0][2])]
            wave = self._chord_wave(held, self._segment_length(a)) if len(held) > 1 else None
            if wave is not None:
                synth.add_periodic(dark[:, a - start:b - start], wave[0], a, 1.0)
                synth.add_periodic(extra[:, a - start:b - start], wave[1], a, 1.0)
                pieces = [(i, p) for i, p in pieces if i not in held]
            for i, plist in pieces:
                wave = self.waves[(self.notes[i].midi, self.notes[i].gain)]
                for p0, p1, env in plist:
                    for bus, version in ((dark, wave[0]), (extra, wave[1])):
                        synth.add_periodic(bus[:, p0 - start:p1 - start], version, p0, env,
                                           scratch=self._scratch)
        dark *= gain
        extra *= bright_gain
        out += dark
        out += extra


@dataclass
class MelodyEvent:
    start: int
    midi: int
    voice: str
    gain: float
    pan: float


def _grain(voice: str, midi: int, reverb: Reverb, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    seconds = {"bells": 3.5, "piano": 3.0, "pluck": 1.5}[voice]
    dry = synth.struck_note(midi, voice, seconds=seconds, rng=rng)
    wet = reverb.wet(dry)
    wet *= np.float32(0.55)
    return dry, wet


def plan_melody(spans: list[harmony.ChordSpan], spec: CueSpec, rng: np.random.Generator, *,
                density: np.ndarray, weights: dict[str, float], until: float) -> list[MelodyEvent]:
    """Sparse phrases of 1-4 notes from a clash-free pentatonic pool, density from the controls."""
    key = spec.intent.key
    voices = [v for v in MELODY_VOICES if weights.get(v, 0) > 0]
    voices = sorted(voices, key=lambda v: -weights[v])[:2]  # two timbres keep the bed coherent
    if not voices:
        return []
    probs = np.array([weights[v] for v in voices])
    probs /= probs.sum()
    steps = (0, 3, 5, 7, 10) if key.is_minor else (0, 2, 4, 7, 9)
    penta = {(key.tonic + s) % 12 for s in steps}
    low = 67 + (key.tonic - 67) % 12 - 12 if (key.tonic - 67) % 12 > 5 else 67 + (key.tonic - 67) % 12
    beat = 60.0 / spec.intent.bpm
    rate_max = MELODY_BASE_RATE * float(density.max() if density.size else 1.0) + 1e-9
    events: list[MelodyEvent] = []
    t = float(rng.exponential(1 / rate_max))
    chord_starts = np.array([s.start for s in spans])
    last = None
    while t < until:
        d = density[min(int(t * CONTROL_RATE), density.size - 1)]
        if rng.random() < d * MELODY_BASE_RATE / rate_max:
            span = spans[max(int(np.searchsorted(chord_starts, t, side="right")) - 1, 0)]
            pool = [m for m in harmony.melody_pool(span.chord, key, low=low, high=low + 17)
                    if m % 12 in penta] or [low]
            voice = voices[int(rng.choice(len(voices), p=probs))]
            pan = float(rng.uniform(-0.6, 0.6))
            idx = int(np.argmin([abs(m - last) for m in pool])) if last else int(rng.integers(len(pool)))
            tn = t
            for _ in range(int(rng.integers(2, 6))):
                idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(pool) - 1))
                if tn >= until:
                    break
                events.append(MelodyEvent(int(tn * SAMPLE_RATE), pool[idx], voice,
                                          float(rng.uniform(0.5, 1.0)), pan))
                last = pool[idx]
                tn += beat * float(rng.choice([1.0, 1.5, 2.0, 3.0]))
            t = tn
        t += float(rng.exponential(1 / rate_max))
    return events


class MelodyLayer:
    """Struck notes with their reverb baked in (one grain per voice and pitch, reused)."""

    def __init__(self, events: list[MelodyEvent], ir: np.ndarray, rng: np.random.Generator, *,
                 loop_period: int | None):
        self.grains: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        reverb = Reverb(ir)
        for ev in events:
            if (ev.voice, ev.midi) not in self.grains:
                self.grains[(ev.voice, ev.midi)] = _grain(ev.voice, ev.midi, reverb, rng)
        placed = list(events)
        if loop_period:
            # A loop repeats: tails that run past the loop point also ring at the start, and the
            # overlap after the end replays the start, so the crossfaded seam is seamless.
            placed += [MelodyEvent(e.start - loop_period, e.midi, e.voice, e.gain, e.pan)
                       for e in events]
            placed += [MelodyEvent(e.start + loop_period, e.midi, e.voice, e.gain, e.pan)
                       for e in events if e.start < LOOP_OVERLAP_SECONDS * SAMPLE_RATE]
        self.events = sorted(placed, key=lambda e: e.start)
        self.starts = np.array([e.start for e in self.events], dtype=np.int64)
        self.longest = max((w.shape[-1] for _, w in self.grains.values()), default=0)

    def add_to(self, out: np.ndarray, start: int, gain: float) -> None:
        n = out.shape[-1]
        lo = int(np.searchsorted(self.starts, start - self.longest))
        hi = int(np.searchsorted(self.starts, start + n))
        for ev in self.events[lo:hi]:
            dry, wet = self.grains[(ev.voice, ev.midi)]
            gl, gr = pan_gains(ev.pan)
            for ch, g in ((0, gl), (1, gr)):
                a, b = max(ev.start, start), min(ev.start + dry.size, start + n)
                if a < b:
                    out[ch, a - start: b - start] += dry[a - ev.start: b - ev.start] * (g * ev.gain * gain)
                a, b = max(ev.start, start), min(ev.start + wet.shape[-1], start + n)
                if a < b:
                    out[ch, a - start: b - start] += wet[ch, a - ev.start: b - ev.start] * (ev.gain * gain)


def _periodic(values: np.ndarray, period: int, total: int) -> np.ndarray:
    return values[np.arange(total) % period]


def render_bed(spec: CueSpec, fitted: list[FittedSample], *, progress: ProgressFn | None = None
               ) -> tuple[np.ndarray, dict]:
    """Render an ambient bed (plus the loop overlap when ``spec.loop``); returns audio and details."""
    intent = spec.intent
    duration = spec.duration
    total_s = duration + (LOOP_OVERLAP_SECONDS if spec.loop else 0.0)
    n_total = int(round(total_s * SAMPLE_RATE))
    period = int(round(duration * SAMPLE_RATE)) if spec.loop else None
    seeds = np.random.SeedSequence(spec.seed).spawn(12)
    (r_harm, r_pad, r_drone, r_strings, r_mel, r_grain, r_walk, r_tex, r_samp, r_ir, _, _) = [
        np.random.default_rng(s) for s in seeds]
    weights = layer_weights(intent.instruments)

    # Harmony: the chords cover the asked duration; a loop's overlap keeps the closing tonic.
    spans = harmony.plan_chords(intent.key, intent.mood, total=duration, bpm=intent.bpm, rng=r_harm)
    if spec.loop and spans[-1].chord == spans[0].chord:
        spans[-1] = harmony.ChordSpan(spans[-1].chord, spans[-1].start, spans[-1].end,
                                      spans[0].voicing)
    spans[-1] = harmony.ChordSpan(spans[-1].chord, spans[-1].start, total_s, spans[-1].voicing)

    # Control signals at CONTROL_RATE over the whole render.
    n_ctrl = n_total // HOP + 2
    n_period = (period // HOP + 1) if period else n_ctrl

    def walk(timescale: float, low: float, high: float) -> np.ndarray:
        w = slow_walk(r_walk, n_period, step_seconds=timescale / 4, control_rate=CONTROL_RATE,
                      timescale=timescale, low=low, high=high, periodic=bool(period))
        return _periodic(w, n_period - 1, n_ctrl) if period else w

    t = np.arange(n_ctrl) / CONTROL_RATE
    intensity = np.asarray(intent.intensity.at(np.minimum(t, duration)), dtype=np.float32)
    if spec.loop:
        intensity = _periodic(intensity, n_period - 1, n_ctrl)
        swell = np.ones(n_ctrl, dtype=np.float32)
        thin = np.ones(n_ctrl, dtype=np.float32)
        sections = [{"name": "loop", "start": 0.0, "end": duration}]
        intro = 0.0
    else:
        intro = min(20.0, 0.15 * duration)
        outro = min(30.0, 0.2 * duration)
        swell = raised_cosine(t / intro)
        thin = raised_cosine((duration - t) / outro)
        sections = [{"name": "intro", "start": 0.0, "end": round(intro, 2)},
                    {"name": "body", "start": round(intro, 2), "end": round(duration - outro, 2)},
                    {"name": "outro", "start": round(duration - outro, 2), "end": duration}]
    bright = np.clip((0.15 + 0.75 * intensity) * walk(40.0, 0.35, 1.0) * (0.4 + 0.6 * thin), 0, 1)
    pad_gain = (0.75 + 0.25 * intensity) * walk(30.0, 0.7, 1.0) * (0.7 + 0.3 * thin)
    drone_gain = walk(50.0, 0.6, 1.0) * (0.3 + 0.7 * raised_cosine(t / max(intro * 0.5, 1e-3)))
    strings_gain = walk(25.0, 0.4, 1.0) * swell * thin * (0.5 + 0.5 * intensity)
    density = walk(60.0, 0.35, 1.4) * (0.25 + 0.75 * intensity) * swell * thin
    density *= min(1.0, sum(weights[v] for v in MELODY_VOICES))

    # Voices.
    layers = []
    def sounding_at_start(notes: list[NoteSpan]) -> list[NoteSpan]:
        # A loop is already sounding at its start: no attack on the opening chord.
        if not spec.loop:
            return notes
        return [NoteSpan(n.midi, -10.0 if n.start == 0 else n.start, n.end, n.gain, n.attack,
                         n.release) for n in notes]

    pad = SustainedLayer(sounding_at_start(note_spans(
        spans, slice(0, None), gains=[0.8, 0.47], attack=PAD_ATTACK, release=PAD_RELEASE,
        first_attack=None if spec.loop else max(PAD_ATTACK, intro * 0.8))),
        synth.PAD, r_pad, period=PAD_PERIOD_SECONDS)
    layers.append("pad")
    tonic_low = 36 + (intent.key.tonic % 12)
    # The pedal never changes: root and fifth, at a fixed half brightness, become one wave.
    drone_waves = [synth.periodic_note(m, synth.DRONE, r_drone, period_seconds=DRONE_PERIOD_SECONDS)
                   for m in (tonic_low, tonic_low + 7)]
    drone_wave = sum(g * (w[0] + np.float32(0.5) * w[1])
                     for g, w in zip((np.float32(1.0), np.float32(0.5)), drone_waves))
    layers.append("drone")
    strings = None
    if weights["strings"] > 0:
        strings = SustainedLayer(sounding_at_start(note_spans(
            spans, slice(2, None), gains=[0.7, 0.8], transpose=12, attack=STRINGS_ATTACK,
            release=STRINGS_RELEASE)), synth.STRINGS, r_strings, period=PAD_PERIOD_SECONDS)
        layers.append("strings")
    ir = impulse_response(r_ir, rt60=3.2, brightness=0.35)
    events = plan_melody(spans, spec, r_mel, density=density, weights=weights,
                         until=duration if spec.loop else duration - 2.0)
    melody = MelodyLayer(events, ir, r_grain, loop_period=period)
    if events:
        layers.append("melody:" + "+".join(sorted({e.voice for e in events})))
    tex_players = []
    for name in intent.textures:
        pools = textures.texture_pool(name, r_tex)
        gains = [walk(20.0, 0.55, 1.0) * textures.TEXTURE_LEVEL[name]]
        if name == "ocean":
            roar, wash = textures.ocean_swell(r_tex, n_ctrl, CONTROL_RATE)
            gains = [gains[0] * roar, gains[0] * wash]
        # Slow panning: each texture drifts across the stereo field (equal power, +-35%).
        angle = (walk(45.0, -0.35, 0.35) + 1.0) * (np.pi / 4)
        pan = np.stack([np.cos(angle), np.sin(angle)]).astype(np.float32) * np.float32(np.sqrt(2))
        for pool, g in zip(pools, gains):
            tex_players.append((textures.Looper(pool, n_total, r_tex), g[None, :] * pan))
        layers.append(f"texture:{name}")
    # Where the chord is the tonic (a sampled pad holds that chord); ramps of 3 s between.
    chord_starts = np.array([s.start for s in spans])
    on_tonic = np.array([s.chord.root == intent.key.tonic for s in spans])
    span_at = np.clip(np.searchsorted(chord_starts, t, side="right") - 1, 0, len(spans) - 1)
    ramp = np.ones(3 * CONTROL_RATE) / (3 * CONTROL_RATE)
    tonic_gate = np.convolve(np.where(on_tonic[span_at], 1.0, 0.1), ramp, mode="same").astype(np.float32)
    tonic_gate[-ramp.size:] = tonic_gate[-ramp.size - 1]
    tonic_gate[:ramp.size] = np.where(on_tonic[span_at[:ramp.size]], 1.0, 0.1)
    sample_layer = SampleLayer(
        fitted, total=n_total, rng=r_samp, loop_period=period,
        on_tonic=lambda sec: bool(on_tonic[max(int(np.searchsorted(chord_starts, sec, "right")) - 1, 0)])
    ) if fitted else None
    if sample_layer:
        layers.append("samples")
    sample_gain = walk(35.0, 0.5, 1.0) * (0.6 + 0.4 * swell)

    # Level and brightness-times-level per layer, multiplied here at the control rate.
    pad_level = pad_gain * weights["pad"]
    pad_bright_gain = bright * pad_level
    strings_level = strings_gain * weights["strings"]
    strings_bright_gain = bright * strings_level
    out = np.zeros((2, n_total), dtype=np.float32)
    scratch = np.empty((2, min(BLOCK, n_total)), dtype=np.float32)
    n_blocks = (n_total + BLOCK - 1) // BLOCK
    peak = 0.0
    for bi in range(n_blocks):
        b0 = bi * BLOCK
        n = min(BLOCK, n_total - b0)
        k0, k1 = b0 // HOP, b0 // HOP + (n + HOP - 1) // HOP + 1

        def ctrl(c: np.ndarray) -> np.ndarray:
            if c.ndim == 2:
                return np.stack([upsample_linear(row[k0:k1], HOP)[:n] for row in c])
            return upsample_linear(c[k0:k1], HOP)[:n]

        mix = out[:, b0:b0 + n]  # a view: layers add straight into the output
        pad.add_to(mix, b0, ctrl(pad_bright_gain), ctrl(pad_level))
        synth.add_periodic(mix, drone_wave, b0, ctrl(drone_gain * weights["drone"] * 0.8),
                           scratch=scratch)
        if strings is not None:
            strings.add_to(mix, b0, ctrl(strings_bright_gain), ctrl(strings_level))
        melody.add_to(mix, b0, MELODY_LEVEL)
        for looper, g in tex_players:
            looper.add_to(mix, b0, ctrl(g))
        if sample_layer is not None:
            sample_layer.add_to(mix, b0, ctrl(sample_gain), ctrl(tonic_gate))
        # The peak is taken while the block is still in cache (a later pass would re-read it all).
        peak = max(peak, float(mix.max()), -float(mix.min()))
        if progress is not None:
            progress((bi + 1) / n_blocks)

    gain = np.float32(PEAK_TARGET / (peak or 1.0))
    for i in range(0, n_total, BLOCK):
        out[:, i:i + BLOCK] *= gain
    details = {
        "key": intent.key.name,
        "bpm": intent.bpm,
        "chords": [{"roman": s.chord.roman, "name": harmony.chord_name(s.chord, intent.key),
                    "start": round(s.start, 2), "end": round(min(s.end, total_s), 2),
                    "voicing": [harmony.note_name(m, intent.key) for m in s.voicing]}
                   for s in spans],
        "sections": sections,
        "layers": layers,
        "melody_notes": len(events),
        "melody_pitches": [harmony.note_name(m, intent.key) for m in sorted({e.midi for e in events})],
        "textures": list(intent.textures),
        "loop_overlap_seconds": LOOP_OVERLAP_SECONDS if spec.loop else 0.0,
        "normalise_gain_db": round(float(20 * np.log10(gain)), 2),
    }
    return out, details
