"""Jingles and stings: a motif stated and answered over a pulse, a cadence, a final hit, a tail.

The motif (given, or composed from the seed alone) keeps its intervals and rhythm in every
variant; a variant changes the arrangement: lead timbre, register, cadence, accompaniment and
pulse. The final hit lands on a beat on the tonic chord and rings out through the reverb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from soundscape.engines.base import ProgressFn
from soundscape.engines.composer import harmony, synth
from soundscape.engines.composer.space import impulse_response, pan_gains, reverberate
from soundscape.engines.composer.synth import SAMPLE_RATE, raised_cosine
from soundscape.spec import MODES, CueSpec, Key

PEAK_TARGET = 10 ** (-4.0 / 20)  # -4 dBFS: headroom for mastering's true-peak limiter
BEATS_PER_BAR = 4

# Rhythm cells in beats: every note but the last sums to whole beats, so the landing is on a beat.
RHYTHMS: dict[int, list[tuple[float, ...]]] = {
    2: [(1.0, 2.0), (0.5, 2.0)],
    3: [(1.0, 1.0, 2.0), (0.5, 0.5, 2.0), (1.5, 0.5, 2.0), (0.75, 0.25, 2.0)],
    4: [(0.5, 0.5, 1.0, 2.0), (0.75, 0.25, 1.0, 2.0), (1.0, 0.5, 0.5, 2.0), (1.5, 0.5, 1.0, 2.0)],
    5: [(0.5, 0.5, 0.5, 0.5, 2.0), (1.0, 0.5, 0.5, 1.0, 2.0), (0.75, 0.25, 0.5, 0.5, 2.0)],
    6: [(0.5, 0.5, 0.5, 0.5, 1.0, 2.0), (0.75, 0.25, 0.5, 0.5, 1.0, 2.0),
        (0.5, 0.5, 1.0, 0.5, 0.5, 2.0)],
}
LEADS = ("bells", "pluck", "piano", "brass", "marimba")
CADENCES = ("V-I", "IV-V-I", "ii-V-I")
ACCOMPANIMENTS = ("pad", "arpeggio", "stabs")
PULSES = ("tick", "shaker", "thump")
FEELS = ("straight", "half-time", "push")  # how the bass walks the beat
SLOW_BPM = 80.0  # below this, accompaniment keeps off the half-beats
REGISTERS = (0, 12, -12)


@dataclass(frozen=True)
class Motif:
    notes: tuple[int, ...]      # MIDI
    rhythm: tuple[float, ...]   # beats per note


def _rhythm_for(count: int, rng: np.random.Generator) -> tuple[float, ...]:
    if count in RHYTHMS:
        cells = RHYTHMS[count]
        return cells[int(rng.integers(len(cells)))]
    rhythm = [0.5] * (count - 1) + [2.0]
    if sum(rhythm[:-1]) % 1:
        rhythm[0] = 1.0
    return tuple(rhythm)


def compose_motif(key: Key, seed: int) -> Motif:
    """A 3-6 note motif in ``key`` from the seed alone (never the variant): stable start and end."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    count = int(rng.integers(3, 7))
    rhythm = _rhythm_for(count, rng)
    steps = MODES[key.mode]
    tonic_midi = 72 + (key.tonic - 72) % 12
    if tonic_midi > 77:
        tonic_midi -= 12
    degree = int(rng.choice([0, 2, 4]))
    degrees = [degree]
    for i in range(count - 2):
        move = int(rng.choice([-2, -1, 1, 2, 3, -3, 4], p=[.12, .2, .22, .18, .12, .08, .08]))
        degree = int(np.clip(degree + move, -3, 9))
        if degree == degrees[-1]:
            degree += 1
        degrees.append(degree)
    if count > 1:
        # Land on a stable tone (root, third, fifth, octave), nearest to where the line is.
        stable = [d for d in (0, 2, 4, 7) if d != degrees[-1]]
        degrees.append(min(stable, key=lambda d: abs(d - degrees[-1])))
    if len(set(degrees)) == 1:
        degrees[-1] += 2
    if count > 2 and max(abs(b - a) for a, b in zip(degrees, degrees[1:])) < 2:
        degrees[1] = degrees[0] + 2  # at least one leap (a third): steps alone sound like a scale
    if count > 2 and degrees[-2] == degrees[-1]:
        degrees[-2] += 1
    notes = tuple(tonic_midi + 12 * (d // 7) + steps[d % 7] for d in degrees)
    return Motif(notes, rhythm)


def motif_for(spec: CueSpec) -> Motif:
    """The spec's motif (with a seed-chosen rhythm) or one composed from the seed."""
    if spec.motif:
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(1)[0])
        return Motif(tuple(spec.motif), _rhythm_for(len(spec.motif), rng))
    return compose_motif(spec.intent.key, spec.seed)


def _nearest_tonic(key: Key, midi: int) -> int:
    return harmony.nearest_midi(key.tonic, midi)


@dataclass
class Arrangement:
    lead: str
    register: int
    cadence: str
    accompaniment: str
    pulse: str
    feel: str


def arrangement_for(spec: CueSpec) -> Arrangement:
    """The variant's arrangement: each lever steps with the variant so variants always differ."""
    base = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(2)[1]).integers(0, 60, 5)
    v = int(spec.variant)
    return Arrangement(lead=LEADS[(base[0] + v) % len(LEADS)],
                       register=REGISTERS[(v // 2 + (base[1] if v else 0)) % len(REGISTERS)]
                       if v else 0,
                       cadence=CADENCES[(base[2] + v) % len(CADENCES)],
                       accompaniment=ACCOMPANIMENTS[(base[3] + v) % len(ACCOMPANIMENTS)],
                       pulse=PULSES[(base[4] + v) % len(PULSES)],
                       feel=FEELS[v % len(FEELS)])


def _chord_plan(key: Key, cadence: str, final_beat: float,
                melody: list[tuple[float, int, float]]) -> list[tuple[float, float, harmony.Chord]]:
    """Chords as (start beat, end beat, chord): the melody harmonised bar by bar, then the cadence.

    Each bar before the cadence takes the tonic, submediant or subdominant chord that holds most
    of the melody sounding in it (the tonic opens and wins ties), so the motif and its chords
    agree; the cadence (V-I, IV-V-I or ii-V-I) lands on the final beat.
    """
    minor = key.is_minor
    tonic = "i" if minor else "I"
    pre = {"V-I": None, "IV-V-I": "iv" if minor else "IV", "ii-V-I": "iidim" if minor else "ii"}[cadence]
    options = [tonic, "VI" if minor else "vi", "iv" if minor else "IV"]
    plan: list[tuple[float, float, str]] = []
    f = final_beat
    v_len = 2.0 if f >= 4 else 1.0
    cadence_start = f - v_len
    plan.append((cadence_start, f, "V"))  # a major dominant, in minor too (raised leading tone)
    if pre and cadence_start >= 2:
        plan.insert(0, (cadence_start - 2.0, cadence_start, pre))
        cadence_start -= 2.0
    t, head, previous = 0.0, [], None
    while t < cadence_start:
        end = min(t + BEATS_PER_BAR, cadence_start)
        scores = []
        for rank, roman in enumerate(options):
            pcs = harmony.parse_roman(roman, key).pitch_classes
            held = sum(max(0.0, min(b + length, end) - max(b, t))
                       for b, m, length in melody if m % 12 in pcs)
            # Prefer a change of chord between bars (movement), the tonic first.
            scores.append((held + (0.25 if roman != previous else 0.0) - 0.01 * rank, roman))
        choice = tonic if t == 0 else max(scores)[1]
        head.append((t, end, choice))
        t, previous = end, choice
    plan = head + plan + [(f, f + 64.0, tonic)]
    return [(a, b, harmony.parse_roman(r, key)) for a, b, r in plan]


def _note(voice: str, midi: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    if voice == "brass":
        return synth.brass_swell(midi, seconds=seconds, swell=0.06)
    return synth.struck_note(midi, voice, seconds=seconds, rng=rng)


def _add(out: np.ndarray, sig: np.ndarray, at: float, *, gain: float, pan: float) -> None:
    i0 = int(round(at * SAMPLE_RATE))
    if i0 >= out.shape[-1] or i0 < 0:
        return
    m = min(sig.size, out.shape[-1] - i0)
    gl, gr = pan_gains(pan)
    out[0, i0:i0 + m] += sig[:m] * (gain * gl)
    out[1, i0:i0 + m] += sig[:m] * (gain * gr)


def _pulse_hit(kind: str, accent: bool, rng: np.random.Generator) -> np.ndarray:
    n = int(0.25 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind == "thump":
        f = 50 + 90 * np.exp(-t / 0.03)
        sig = np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * np.exp(-t / 0.09)
        gain = 0.9 if accent else 0.6
    else:
        noise = rng.standard_normal(n)
        tau = 0.012 if kind == "tick" else 0.035
        sig = np.diff(noise, prepend=0.0) * np.exp(-t / tau) * raised_cosine(t / 0.002)
        if kind == "shaker":
            sig = np.diff(sig, prepend=0.0)
        sig /= np.max(np.abs(sig))
        gain = 0.5 if accent else 0.32
    return (sig * gain).astype(np.float32)


def render_jingle(spec: CueSpec, *, progress: ProgressFn | None = None) -> tuple[np.ndarray, dict, float]:
    """Render a jingle or sting; returns audio ``(2, n)``, details and the tail length in seconds."""
    intent = spec.intent
    key = intent.key
    duration = spec.duration
    n = int(round(duration * SAMPLE_RATE))
    beat = 60.0 / intent.bpm
    motif = motif_for(spec)
    arr = arrangement_for(spec)
    seeds = np.random.SeedSequence(spec.seed).spawn(3)[2].spawn(spec.variant + 1)[spec.variant]
    r_lead, r_acc, r_pulse, r_ir = [np.random.default_rng(s) for s in seeds.spawn(4)]

    # Form: statement + answer (a sting: the statement alone) before a tail of about a third of
    # the cue. Short cues play the rhythm at double speed; long ones at half speed (the pulse
    # keeps the bpm), then repeat the pair, then add bars of introduction.
    tail_target = float(np.clip(0.32 * duration, 0.9, 4.0))
    if spec.kind == "sting":
        tail_target = float(np.clip(0.4 * duration, 0.8, 3.0))
    available = (duration - tail_target) / beat  # beats before the landing

    def form(scale: float, repeats: int, answer: bool) -> tuple[float, float, float]:
        """(phrase length, final beat, body) in beats for a rhythm scale and repeat count."""
        body = sum(r * scale for r in motif.rhythm[:-1])
        phrase = math.ceil((body + max(motif.rhythm[-1] * scale, 1.0)) / BEATS_PER_BAR) * BEATS_PER_BAR
        if not answer:
            return phrase, body, body
        return phrase, 2 * phrase * (repeats - 1) + phrase + body, body

    # A sting states its motif once; one long enough to hold more gets a jingle's form.
    answer = spec.kind != "sting" or duration > 8.0
    scale, repeats = 1.0, 1
    while form(scale, 1, answer)[1] > available and scale > 0.3:
        scale *= 0.5
    if answer and form(scale, 1, True)[1] > available:
        answer = False
    while scale < 4 and form(scale * 2, 1, answer)[1] <= min(available, 24):
        scale *= 2
    while answer and repeats < 4 and form(scale, repeats + 1, True)[1] <= available:
        repeats += 1
    phrase, final_beat, body = form(scale, repeats, answer)
    rhythm = [r * scale for r in motif.rhythm]
    final_beat = max(final_beat, 1.0)
    spare_bars = int((available - final_beat) // BEATS_PER_BAR)
    intro_beats = float(min(max(spare_bars, 0), 4) * BEATS_PER_BAR)
    final_beat = float(math.ceil(final_beat + intro_beats - 1e-9))  # the landing sits on a beat
    t_final = final_beat * beat
    tail = duration - t_final

    # Melody: each statement, each answer (the last one lands on the tonic on the final beat).
    notes = [m + arr.register for m in motif.notes]
    while max(notes) > 96 and min(notes) - 12 >= 48:
        notes = [m - 12 for m in notes]
    while min(notes) < 55 and max(notes) + 12 <= 96:
        notes = [m + 12 for m in notes]
    # A motif wider than the playable range folds its outliers by octaves.
    notes = [m - 12 * math.ceil((m - 96) / 12) if m > 96 else
             m + 12 * math.ceil((48 - m) / 12) if m < 48 else m for m in notes]
    onsets = np.concatenate([[0.0], np.cumsum(rhythm[:-1])])
    lead_events: list[tuple[float, int, float]] = []  # (beat, midi, length in beats)
    landing = notes[-1]
    if answer:
        landing = _nearest_tonic(key, notes[-1])
        for k in range(repeats):
            start = intro_beats + 2 * phrase * k
            for b, m, r in zip(onsets, notes, rhythm):
                lead_events.append((start + b, m, r))
            last = k == repeats - 1
            for b, m, r in zip(onsets, notes[:-1] if last else notes[:-1] + [landing], rhythm):
                lead_events.append((start + phrase + b, m, r))
    else:
        for b, m in zip(onsets[:-1], notes[:-1]):
            lead_events.append((intro_beats + b, m, 1.0))
        if landing % 12 not in harmony.tonic_chord(key).pitch_classes:
            landing = _nearest_tonic(key, landing)
    dry = np.zeros((2, n), dtype=np.float32)
    for b, m, length in lead_events:
        _add(dry, _note(arr.lead, m, min(2.5, length * beat + 1.2), r_lead), b * beat,
             gain=0.55, pan=0.1)
    if progress:
        progress(0.3)

    # Harmony: pad or stabs or arpeggio, a bass on the beats, the pulse.
    chords = _chord_plan(key, arr.cadence, final_beat, lead_events)
    voicing = None
    period = 4.0
    pad_waves: dict[int, np.ndarray] = {}
    t_idx = np.arange(n) / SAMPLE_RATE
    for start_b, end_b, chord in chords:
        voicing = harmony.voice_chord(chord, voicing)
        t0, t1 = start_b * beat, min(end_b * beat, duration)
        is_final = start_b >= final_beat
        if arr.accompaniment == "pad" or is_final:
            a, b = int(t0 * SAMPLE_RATE), n
            rel = 0.25 if not is_final else max(tail * 0.45, 0.3)
            tt = t_idx[a:b] - t0
            env = raised_cosine(tt / 0.08) * np.where(
                tt < t1 - t0, 1.0, np.exp(-(tt - (t1 - t0)) / rel))
            if is_final:
                env = raised_cosine(tt / 0.03) * np.exp(-tt / rel)
            for m in voicing[1:]:
                if m not in pad_waves:
                    pad_waves[m] = synth.periodic_note(m, synth.PAD, r_acc, period_seconds=period)
                seg = np.zeros((2, b - a), dtype=np.float32)
                synth.add_periodic(seg, pad_waves[m][0], a, (env * 0.12).astype(np.float32))
                synth.add_periodic(seg, pad_waves[m][1], a, (env * 0.06).astype(np.float32))
                dry[:, a:b] += seg
        elif arr.accompaniment == "stabs":
            for bb in np.arange(start_b, end_b, 2.0):
                for m in voicing[1:]:
                    _add(dry, synth.struck_note(m, "piano", seconds=1.2, rng=r_acc), bb * beat,
                         gain=0.22, pan=-0.2)
        else:  # arpeggio across the chord tones: eighths, or quarters when the tempo is slow
            tones = list(voicing[1:]) + [voicing[1] + 12]
            # Slow eighths would read as the beat itself (a tempo heard twice as fast).
            step = 0.5 if intent.bpm >= SLOW_BPM else 1.0
            for j, bb in enumerate(np.arange(start_b, end_b, step)):
                on_beat = bb == int(bb)
                _add(dry, synth.struck_note(tones[j % len(tones)], "pluck", seconds=0.8, rng=r_acc),
                     bb * beat, gain=0.2 if on_beat else 0.12, pan=-0.35 + 0.7 * (j % 2))
        if not is_final:
            step = 2.0 if arr.feel == "half-time" else 1.0
            for bb in np.arange(start_b, end_b, step):
                _add(dry, synth.struck_note(voicing[0] - 12, "pluck", seconds=0.6 * step, rng=r_acc),
                     bb * beat, gain=0.5, pan=0.0)
                if arr.feel == "push" and intent.bpm >= SLOW_BPM and bb + 1.5 < end_b and (bb + 1) % BEATS_PER_BAR == BEATS_PER_BAR - 1:
                    # An eighth-note anticipation before each downbeat pushes the line forward.
                    _add(dry, synth.struck_note(voicing[0] - 12 + 7, "pluck", seconds=0.3, rng=r_acc),
                         (bb + 1.5) * beat, gain=0.25, pan=0.0)
    for bb in np.arange(0.0, final_beat, 1.0):
        accent = bb % BEATS_PER_BAR == 0
        _add(dry, _pulse_hit(arr.pulse, accent, r_pulse), bb * beat,
             gain=0.7, pan=0.15 if arr.pulse != "thump" else 0.0)
        if arr.pulse == "thump":  # a thump alone is too dull an onset to carry the beat
            _add(dry, _pulse_hit("tick", accent, r_pulse), bb * beat, gain=0.5, pan=-0.15)

    # The final hit on the tonic: the lead's landing, a bell chord or brass swell, a low boom.
    tonic = harmony.tonic_chord(key)
    hit_len = min(tail + 0.5, 6.0)
    _add(dry, _note(arr.lead, landing, hit_len, r_lead), t_final, gain=0.6, pan=0.1)
    hit_voice = "brass" if arr.lead in ("brass", "piano") else "bells"
    top = _nearest_tonic(key, landing - 12)
    for m, pan in ((top, -0.3), (top + (tonic.intervals[1]), 0.3), (top + 7, 0.0)):
        # Every hit starts with a struck attack, so the landing is the clearest onset of all.
        _add(dry, synth.struck_note(m, "bells", seconds=hit_len, rng=r_lead), t_final,
             gain=0.25 if hit_voice == "bells" else 0.15, pan=pan)
        if hit_voice == "brass":
            _add(dry, synth.brass_swell(m, seconds=hit_len, swell=0.05), t_final, gain=0.2, pan=-pan)
    # A soft cymbal-like impact marks the landing (a filtered noise burst, fast then slow decay).
    m = int(min(hit_len, 3.0) * SAMPLE_RATE)
    tt = np.arange(m) / SAMPLE_RATE
    impact = np.diff(r_pulse.standard_normal(m), prepend=0.0) * (
        0.7 * np.exp(-tt / 0.04) + 0.3 * np.exp(-tt / (0.25 * tail + 0.1))) * raised_cosine(tt / 0.002)
    _add(dry, (impact / np.max(np.abs(impact))).astype(np.float32), t_final, gain=0.3, pan=0.0)
    boom_root = 36 + (key.tonic % 12)
    _add(dry, synth.struck_note(boom_root, "piano", seconds=hit_len, rng=r_lead), t_final,
         gain=0.6, pan=0.0)
    if progress:
        progress(0.7)

    # Space: a reverb whose decay fits the tail, then a gentle closing fade as a guarantee.
    rt60 = float(np.clip(tail * 0.55, 0.6, 2.8))
    ir = impulse_response(r_ir, rt60=rt60, brightness=0.5)
    out = reverberate(dry, ir, wet=0.35)[:, :n]
    out -= out.mean(axis=-1, keepdims=True)
    # The tail dies away within the cue: after a short hold, an exponential decay reaching about
    # -35 dB at the end (a room's decay, shortened for short stings), and a closing fade over
    # the last part so nothing is ever cut off.
    i_final = int(round(t_final * SAMPLE_RATE))
    hold = 0.15 * tail
    tau = max((tail - hold) / 4.0, 1e-3)
    after = np.arange(n - i_final, dtype=np.float32) / SAMPLE_RATE
    out[:, i_final:] *= np.exp(-np.maximum(after - hold, 0.0) / tau).astype(np.float32)
    fade_len = min(int(0.4 * tail * SAMPLE_RATE), n)
    out[:, n - fade_len:] *= raised_cosine(np.arange(fade_len, 0, -1) / fade_len)
    peak = float(np.max(np.abs(out))) or 1.0
    out = (out * (PEAK_TARGET / peak)).astype(np.float32)
    if progress:
        progress(1.0)
    details = {
        "key": key.name,
        "bpm": intent.bpm,
        "motif": [harmony.note_name(m, key) for m in motif.notes],
        "motif_rhythm_beats": list(motif.rhythm),
        "variant": spec.variant,
        "arrangement": arr.__dict__,
        "form": (f"(statement+answer)x{repeats}" if repeats > 1 else "statement+answer")
        if answer else "statement",
        "rhythm_scale": scale,
        "intro_beats": intro_beats,
        "final_hit_seconds": round(t_final, 4),
        "final_beat": final_beat,
        "landing": harmony.note_name(landing, key),
        "chords": [{"roman": c.roman, "name": harmony.chord_name(c, key), "start_beat": a,
                    "end_beat": min(b, final_beat + 8)}
                   for a, b, c in chords],
        "cadence": arr.cadence,
        "sections": [{"name": "motif", "start": 0.0, "end": round(t_final, 3)},
                     {"name": "tail", "start": round(t_final, 3), "end": duration}],
        "layers": [f"lead:{arr.lead}", f"accompaniment:{arr.accompaniment}", f"pulse:{arr.pulse}",
                   f"hit:{hit_voice}", "bass", "reverb"],
    }
    return out, details, float(tail)
