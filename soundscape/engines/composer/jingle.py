"""Jingles and stings: a motif stated and answered over a pulse, a cadence, a final hit, a tail.

The motif (given, or composed from the seed alone) keeps its intervals and rhythm in every
variant; a variant changes the arrangement: lead instrument, register, cadence, accompaniment,
pulse and feel. Everything is written as a score and played by the same sampled instruments
(or synth voices) as the beds; the final hit lands on a beat on the tonic chord and rings out
through the room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from soundscape.engines.base import ProgressFn
from soundscape.engines.composer import harmony, mix, palette, space
from soundscape.engines.composer.motif import Motif, compose_motif, motif_for  # noqa: F401
from soundscape.engines.composer.performance import perform
from soundscape.engines.composer.score import Note, Part, Score
from soundscape.engines.composer.synth import SAMPLE_RATE, raised_cosine
from soundscape.spec import CueSpec, Key

PEAK_TARGET = 10 ** (-4.0 / 20)  # -4 dBFS: headroom for mastering's true-peak limiter
BEATS_PER_BAR = 4
LEADS = ("bells", "pluck", "piano", "brass", "marimba")
CADENCES = ("V-I", "IV-V-I", "ii-V-I")
ACCOMPANIMENTS = ("pad", "arpeggio", "stabs")
PULSES = ("tick", "shaker", "thump")
FEELS = ("straight", "half-time", "push")  # how the bass walks the beat
SLOW_BPM = 80.0  # below this, accompaniment keeps off the half-beats
REGISTERS = (0, 12, -12)
# The instruments behind each arrangement word (the seed picks among them).
LEAD_INSTRUMENTS = {"bells": ("celesta", "glockenspiel", "vibraphone", "music box"),
                    "pluck": ("harp", "guitar", "kalimba"), "piano": ("piano",),
                    "brass": ("horns",), "marimba": ("marimba",)}
PAD_INSTRUMENTS = ("strings", "warm pad", "voices")
ARP_INSTRUMENTS = ("harp", "guitar", "celesta")
# General MIDI percussion keys (channel 10): the pulse's sounds.
PULSE_KEYS = {"tick": (42, 37), "shaker": (70, 82), "thump": (36, 42)}
CRASH = 49


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


def _lead_instrument(spec: CueSpec, lead: str, rng: np.random.Generator) -> str:
    """The prompt's struck or solo instrument, when it names one; else the arrangement's."""
    for word in spec.intent.instruments:
        try:
            name = palette.resolve_family(word, rng)
        except KeyError:
            continue
        inst = palette.INSTRUMENTS[name]
        if not inst.sustained or name in ("flute", "clarinet", "oboe", "violin", "cello", "horns"):
            return name
    options = LEAD_INSTRUMENTS[lead]
    return options[int(rng.integers(len(options)))]


def _fit(midi: int, inst: palette.Instrument) -> int:
    """The note moved by octaves into the instrument's range."""
    while midi > inst.high:
        midi -= 12
    while midi < inst.low:
        midi += 12
    return midi


def render_jingle(spec: CueSpec, banks=(), *, progress: ProgressFn | None = None
                  ) -> tuple[np.ndarray, dict, float, list]:
    """Render a jingle or sting.

    Returns:
        ``(audio (2, n), details, tail seconds, presets played)``.
    """
    intent = spec.intent
    key = intent.key
    duration = spec.duration
    n = int(round(duration * SAMPLE_RATE))
    beat = 60.0 / intent.bpm
    motif = motif_for(spec)
    arr = arrangement_for(spec)
    seeds = np.random.SeedSequence(spec.seed).spawn(3)[2].spawn(spec.variant + 1)[spec.variant]
    r_lead, r_acc, r_play, r_room = [np.random.default_rng(s) for s in seeds.spawn(4)]

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
    lead = _lead_instrument(spec, arr.lead, r_lead)
    lead_inst = palette.INSTRUMENTS[lead]
    lead_notes = []
    for b, m, length in lead_events:
        t0 = b * beat
        hold = max(length * beat * (0.95 if lead_inst.sustained else 0.8), 0.12)
        lead_notes.append(Note(t0, t0 + hold, _fit(m, lead_inst), _velocity(lead_inst, 0.8, r_lead)))
    if progress:
        progress(0.2)

    # Harmony: pad or stabs or arpeggio, a bass on the beats, the pulse.
    chords = _chord_plan(key, arr.cadence, final_beat, lead_events)
    acc_name = {"pad": PAD_INSTRUMENTS, "arpeggio": ARP_INSTRUMENTS, "stabs": ("piano",)}[arr.accompaniment]
    acc_name = acc_name[int(r_acc.integers(len(acc_name)))]
    acc_inst = palette.INSTRUMENTS[acc_name]
    acc_notes, bass_notes, pulse_notes = [], [], []
    bass_inst = palette.INSTRUMENTS["pizzicato"]
    voicing = None
    for start_b, end_b, chord in chords:
        voicing = harmony.voice_chord(chord, voicing)
        if start_b >= final_beat:
            continue  # the final chord is the hit's
        t0, t1 = start_b * beat, min(end_b, final_beat) * beat
        if arr.accompaniment == "pad":
            for m in voicing[1:]:
                acc_notes.append(Note(t0, t1 + 0.1, _fit(m, acc_inst), _velocity(acc_inst, 0.55, r_acc)))
        elif arr.accompaniment == "stabs":
            for bb in np.arange(start_b, min(end_b, final_beat), 2.0):
                for m in voicing[1:]:
                    acc_notes.append(Note(bb * beat, bb * beat + 0.6, _fit(m, acc_inst),
                                          _velocity(acc_inst, 0.5, r_acc)))
        else:  # arpeggio across the chord tones: eighths, or quarters when the tempo is slow
            tones = list(voicing[1:]) + [voicing[1] + 12]
            # Slow eighths would read as the beat itself (a tempo heard twice as fast).
            step = 0.5 if intent.bpm >= SLOW_BPM else 1.0
            for j, bb in enumerate(np.arange(start_b, min(end_b, final_beat), step)):
                on_beat = bb == int(bb)
                acc_notes.append(Note(bb * beat, bb * beat + 0.5, _fit(tones[j % len(tones)], acc_inst),
                                      _velocity(acc_inst, 0.55 if on_beat else 0.4, r_acc)))
        step = 2.0 if arr.feel == "half-time" else 1.0
        for bb in np.arange(start_b, min(end_b, final_beat), step):
            root = _fit(voicing[0] - 12, bass_inst)
            bass_notes.append(Note(bb * beat, bb * beat + 0.5 * step * beat, root,
                                   _velocity(bass_inst, 0.8, r_acc)))
            if arr.feel == "push" and intent.bpm >= SLOW_BPM and bb + 1.5 < end_b \
                    and (bb + 1) % BEATS_PER_BAR == BEATS_PER_BAR - 1:
                # An eighth-note anticipation before each downbeat pushes the line forward.
                bass_notes.append(Note((bb + 1.5) * beat, (bb + 1.5) * beat + 0.2 * beat,
                                       _fit(root + 7, bass_inst), _velocity(bass_inst, 0.5, r_acc)))
    keys = PULSE_KEYS[arr.pulse]
    for bb in np.arange(0.0, final_beat, 1.0):
        accent = bb % BEATS_PER_BAR == 0
        pulse_notes.append(Note(bb * beat, bb * beat + 0.1, keys[0], 100 if accent else 72))
        if arr.pulse == "thump" or accent:  # a thump alone is too dull an onset to carry the beat
            pulse_notes.append(Note(bb * beat, bb * beat + 0.1, keys[1], 80 if accent else 60))

    # The final hit on the tonic: the lead's landing, a bell chord or horns, a low boom, a crash.
    t_final = final_beat * beat
    tonic = harmony.tonic_chord(key)
    ring = max(tail + 0.5, 1.0)
    lead_notes.append(Note(t_final, t_final + ring, _fit(landing, lead_inst), _velocity(lead_inst, 0.95, r_lead)))
    hit_voice = "brass" if arr.lead in ("brass", "piano") else "bells"
    hit_name = "horns" if hit_voice == "brass" else ("tubular bells" if lead != "tubular bells" and arr.register < 0
                                                    else "celesta" if lead != "celesta" else "vibraphone")
    hit_inst = palette.INSTRUMENTS[hit_name]
    top = _nearest_tonic(key, landing - 12)
    hit_notes = [Note(t_final, t_final + ring, _fit(m, hit_inst), _velocity(hit_inst, 0.9, r_lead))
                 for m in (top, top + tonic.intervals[1], top + 7)]
    boom_inst = palette.INSTRUMENTS["piano"]
    boom = [Note(t_final, t_final + ring, _fit(36 + key.tonic % 12, boom_inst), 100),
            Note(t_final, t_final + ring, _fit(48 + key.tonic % 12, boom_inst), 80)]
    pulse_notes.append(Note(t_final, t_final + ring, CRASH, 58))
    parts = [
        Part("lead", lead, lead_notes, sustained=lead_inst.sustained, level=1.0, pan=0.1, width=0.2,
             reverb=0.35),
        Part("accompaniment", acc_name, acc_notes, sustained=acc_inst.sustained, level=0.5,
             pan=-0.2, width=0.5, reverb=0.3),
        Part("bass", "pizzicato", bass_notes, level=0.75, mono=True, reverb=0.1),
        Part("pulse", "percussion", pulse_notes, level=0.45, pan=0.1, width=0.3, reverb=0.15),
        Part("hit", hit_name, hit_notes, sustained=hit_inst.sustained, level=0.6, width=0.6,
             reverb=0.5),
        Part("boom", "piano", boom, level=0.55, mono=True, reverb=0.3),
    ]
    parts = [p for p in parts if p.notes]
    score = Score(parts, duration, spec.seed, colour=intent.colour)
    if progress:
        progress(0.4)

    # Space: a room whose decay fits the tail, then a decay shaped so nothing is ever cut off.
    rt60 = float(np.clip(tail * 0.55, 0.6, 2.8))
    room = mix.fit_room(space.impulse_response(r_room, rt60=rt60, brightness=0.5))
    out, players, _ = perform(score, list(banks), rng=r_play, room=room, n_out=n)
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
        "layers": [f"lead:{lead}", f"accompaniment:{acc_name}", f"pulse:{arr.pulse}",
                   f"hit:{hit_name}", "bass:pizzicato", "boom:piano", "reverb"],
        "voices": players.kind,
    }
    return out, details, float(tail), players.presets


def _velocity(inst: palette.Instrument, level: float, rng: np.random.Generator) -> int:
    low, high = inst.velocity
    return int(np.clip(round(low + (high - low) * level + rng.normal(0.0, 4.0)), 1, 127))
