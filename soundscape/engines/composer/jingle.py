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


@dataclass
class JingleForm:
    """Where the motif sits in the cue, in beats."""

    answer: bool  # statement and answer (a jingle), or the statement alone (a sting)
    scale: float  # the motif's rhythm is played at this multiple of its written lengths
    repeats: int  # times the statement+answer pair is played
    phrase: float  # one statement's length, whole bars
    intro_beats: float  # bars of accompaniment before the first statement
    final_beat: float  # the landing: the final hit sits on this beat
    rhythm: list[float]  # the motif's note lengths, scaled

    @property
    def name(self) -> str:
        if not self.answer:
            return "statement"
        return f"(statement+answer)x{self.repeats}" if self.repeats > 1 else "statement+answer"


def plan_form(spec: CueSpec, motif: Motif, beat: float) -> JingleForm:
    """Statement + answer (a sting: the statement alone) before a tail of about a third of the cue.

    Short cues play the rhythm at double speed, long ones at half speed (the pulse keeps the
    bpm), then repeat the pair, then add bars of introduction.
    """
    duration = spec.duration
    tail_target = float(np.clip(0.32 * duration, 0.9, 4.0))
    if spec.kind == "sting":
        tail_target = float(np.clip(0.4 * duration, 0.8, 3.0))
    available = (duration - tail_target) / beat  # beats before the landing

    def landing(scale: float, repeats: int, answer: bool) -> tuple[float, float]:
        """(phrase length, final beat) in beats for a rhythm scale and repeat count."""
        body = sum(r * scale for r in motif.rhythm[:-1])
        phrase = math.ceil((body + max(motif.rhythm[-1] * scale, 1.0)) / BEATS_PER_BAR) * BEATS_PER_BAR
        if not answer:
            return phrase, body
        return phrase, 2 * phrase * (repeats - 1) + phrase + body

    # A sting states its motif once; one long enough to hold more gets a jingle's form.
    answer = spec.kind != "sting" or duration > 8.0
    scale, repeats = 1.0, 1
    while landing(scale, 1, answer)[1] > available and scale > 0.3:
        scale *= 0.5
    if answer and landing(scale, 1, True)[1] > available:
        answer = False
    while scale < 4 and landing(scale * 2, 1, answer)[1] <= min(available, 24):
        scale *= 2
    while answer and repeats < 4 and landing(scale, repeats + 1, True)[1] <= available:
        repeats += 1
    phrase, final_beat = landing(scale, repeats, answer)
    final_beat = max(final_beat, 1.0)
    spare_bars = int((available - final_beat) // BEATS_PER_BAR)
    intro_beats = float(min(max(spare_bars, 0), 4) * BEATS_PER_BAR)
    final_beat = float(math.ceil(final_beat + intro_beats - 1e-9))  # the landing sits on a beat
    return JingleForm(answer, scale, repeats, phrase, intro_beats, final_beat,
                      [r * scale for r in motif.rhythm])


def melody_events(motif: Motif, arr: Arrangement, form: JingleForm, key: Key
                  ) -> tuple[list[tuple[float, int, float]], int]:
    """The lead's notes as (beat, midi, length in beats), and the note it lands on.

    Each statement, then each answer; the last answer ends on the tonic at the final beat.
    """
    notes = [m + arr.register for m in motif.notes]
    while max(notes) > 96 and min(notes) - 12 >= 48:
        notes = [m - 12 for m in notes]
    while min(notes) < 55 and max(notes) + 12 <= 96:
        notes = [m + 12 for m in notes]
    # A motif wider than the playable range folds its outliers by octaves.
    notes = [m - 12 * math.ceil((m - 96) / 12) if m > 96 else
             m + 12 * math.ceil((48 - m) / 12) if m < 48 else m for m in notes]
    rhythm = form.rhythm
    onsets = np.concatenate([[0.0], np.cumsum(rhythm[:-1])])
    events: list[tuple[float, int, float]] = []
    landing = notes[-1]
    if form.answer:
        landing = _nearest_tonic(key, notes[-1])
        for k in range(form.repeats):
            start = form.intro_beats + 2 * form.phrase * k
            for b, m, r in zip(onsets, notes, rhythm):
                events.append((start + b, m, r))
            last = k == form.repeats - 1
            for b, m, r in zip(onsets, notes[:-1] if last else notes[:-1] + [landing], rhythm):
                events.append((start + form.phrase + b, m, r))
    else:
        for b, m in zip(onsets[:-1], notes[:-1]):
            events.append((form.intro_beats + b, m, 1.0))
        if landing % 12 not in harmony.tonic_chord(key).pitch_classes:
            landing = _nearest_tonic(key, landing)
    return events, landing


def accompany(chords: list[tuple[float, float, harmony.Chord]], arr: Arrangement, bpm: float,
              final_beat: float, rng: np.random.Generator) -> tuple[str, list[Note], list[Note]]:
    """The accompaniment (pad, stabs or arpeggio) and the bass, chord by chord up to the landing.

    Returns ``(accompaniment instrument, its notes, bass notes)``.
    """
    beat = 60.0 / bpm
    options = {"pad": PAD_INSTRUMENTS, "arpeggio": ARP_INSTRUMENTS, "stabs": ("piano",)}[arr.accompaniment]
    acc_name = options[int(rng.integers(len(options)))]
    acc_inst = palette.INSTRUMENTS[acc_name]
    bass_inst = palette.INSTRUMENTS["pizzicato"]
    acc_notes, bass_notes = [], []
    voicing = None
    for start_b, end_b, chord in chords:
        voicing = harmony.voice_chord(chord, voicing)
        if start_b >= final_beat:
            continue  # the final chord is the hit's
        t0, t1 = start_b * beat, min(end_b, final_beat) * beat
        if arr.accompaniment == "pad":
            for m in voicing[1:]:
                acc_notes.append(Note(t0, t1 + 0.1, _fit(m, acc_inst), _velocity(acc_inst, 0.55, rng)))
        elif arr.accompaniment == "stabs":
            for bb in np.arange(start_b, min(end_b, final_beat), 2.0):
                for m in voicing[1:]:
                    acc_notes.append(Note(bb * beat, bb * beat + 0.6, _fit(m, acc_inst),
                                          _velocity(acc_inst, 0.5, rng)))
        else:  # arpeggio across the chord tones: eighths, or quarters when the tempo is slow
            tones = list(voicing[1:]) + [voicing[1] + 12]
            # Slow eighths would read as the beat itself (a tempo heard twice as fast).
            step = 0.5 if bpm >= SLOW_BPM else 1.0
            for j, bb in enumerate(np.arange(start_b, min(end_b, final_beat), step)):
                on_beat = bb == int(bb)
                acc_notes.append(Note(bb * beat, bb * beat + 0.5, _fit(tones[j % len(tones)], acc_inst),
                                      _velocity(acc_inst, 0.55 if on_beat else 0.4, rng)))
        step = 2.0 if arr.feel == "half-time" else 1.0
        for bb in np.arange(start_b, min(end_b, final_beat), step):
            root = _fit(voicing[0] - 12, bass_inst)
            bass_notes.append(Note(bb * beat, bb * beat + 0.5 * step * beat, root,
                                   _velocity(bass_inst, 0.8, rng)))
            if arr.feel == "push" and bpm >= SLOW_BPM and bb + 1.5 < end_b \
                    and (bb + 1) % BEATS_PER_BAR == BEATS_PER_BAR - 1:
                # An eighth-note anticipation before each downbeat pushes the line forward.
                bass_notes.append(Note((bb + 1.5) * beat, (bb + 1.5) * beat + 0.2 * beat,
                                       _fit(root + 7, bass_inst), _velocity(bass_inst, 0.5, rng)))
    return acc_name, acc_notes, bass_notes


def pulse(arr: Arrangement, final_beat: float, beat: float) -> list[Note]:
    """The General MIDI percussion pulse on every beat, accented on the downbeats."""
    keys = PULSE_KEYS[arr.pulse]
    notes = []
    for bb in np.arange(0.0, final_beat, 1.0):
        accent = bb % BEATS_PER_BAR == 0
        notes.append(Note(bb * beat, bb * beat + 0.1, keys[0], 100 if accent else 72))
        if arr.pulse == "thump" or accent:  # a thump alone is too dull an onset to carry the beat
            notes.append(Note(bb * beat, bb * beat + 0.1, keys[1], 80 if accent else 60))
    return notes


def hit_instrument(arr: Arrangement, lead: str) -> str:
    """The final hit's voice: horns after brass or piano, else a bell the lead is not."""
    if arr.lead in ("brass", "piano"):
        return "horns"
    if lead != "tubular bells" and arr.register < 0:
        return "tubular bells"
    return "celesta" if lead != "celesta" else "vibraphone"


def shape_tail(out: np.ndarray, t_final: float, tail: float) -> None:
    """Let the tail die away within the cue (in place).

    After a short hold, an exponential decay reaching about -35 dB at the end (a room's decay,
    shortened for short stings), and a closing fade over the last part so nothing is ever cut off.
    """
    n = out.shape[-1]
    i_final = int(round(t_final * SAMPLE_RATE))
    hold = 0.15 * tail
    tau = max((tail - hold) / 4.0, 1e-3)
    after = np.arange(n - i_final, dtype=np.float32) / SAMPLE_RATE
    out[:, i_final:] *= np.exp(-np.maximum(after - hold, 0.0) / tau).astype(np.float32)
    fade_len = min(int(0.4 * tail * SAMPLE_RATE), n)
    out[:, n - fade_len:] *= raised_cosine(np.arange(fade_len, 0, -1) / fade_len)


def render_jingle(spec: CueSpec, banks=(), *, progress: ProgressFn | None = None
                  ) -> tuple[np.ndarray, dict, float, list]:
    """Render a jingle or sting.

    Returns:
        ``(audio (2, n), details, tail seconds, presets played)``.
    """
    intent = spec.intent
    key = intent.key
    n = int(round(spec.duration * SAMPLE_RATE))
    beat = 60.0 / intent.bpm
    motif = motif_for(spec)
    arr = arrangement_for(spec)
    seeds = np.random.SeedSequence(spec.seed).spawn(3)[2].spawn(spec.variant + 1)[spec.variant]
    r_lead, r_acc, r_play, r_room = [np.random.default_rng(s) for s in seeds.spawn(4)]

    form = plan_form(spec, motif, beat)
    t_final = form.final_beat * beat
    tail = spec.duration - t_final
    lead_events, landing = melody_events(motif, arr, form, key)
    lead = _lead_instrument(spec, arr.lead, r_lead)
    lead_inst = palette.INSTRUMENTS[lead]
    lead_notes = []
    for b, m, length in lead_events:
        t0 = b * beat
        hold = max(length * beat * (0.95 if lead_inst.sustained else 0.8), 0.12)
        lead_notes.append(Note(t0, t0 + hold, _fit(m, lead_inst), _velocity(lead_inst, 0.8, r_lead)))
    if progress:
        progress(0.2)

    chords = _chord_plan(key, arr.cadence, form.final_beat, lead_events)
    acc_name, acc_notes, bass_notes = accompany(chords, arr, intent.bpm, form.final_beat, r_acc)
    pulse_notes = pulse(arr, form.final_beat, beat)

    # The final hit on the tonic: the lead's landing, a bell chord or horns, a low boom, a crash.
    tonic = harmony.tonic_chord(key)
    ring = max(tail + 0.5, 1.0)
    lead_notes.append(Note(t_final, t_final + ring, _fit(landing, lead_inst), _velocity(lead_inst, 0.95, r_lead)))
    hit_name = hit_instrument(arr, lead)
    hit_inst = palette.INSTRUMENTS[hit_name]
    top = _nearest_tonic(key, landing - 12)
    hit_notes = [Note(t_final, t_final + ring, _fit(m, hit_inst), _velocity(hit_inst, 0.9, r_lead))
                 for m in (top, top + tonic.intervals[1], top + 7)]
    boom_inst = palette.INSTRUMENTS["piano"]
    boom = [Note(t_final, t_final + ring, _fit(36 + key.tonic % 12, boom_inst), 100),
            Note(t_final, t_final + ring, _fit(48 + key.tonic % 12, boom_inst), 80)]
    pulse_notes.append(Note(t_final, t_final + ring, CRASH, 58))
    acc_inst = palette.INSTRUMENTS[acc_name]
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
    score = Score([p for p in parts if p.notes], spec.duration, spec.seed, colour=intent.colour)
    if progress:
        progress(0.4)

    # Space: a room whose decay fits the tail.
    rt60 = float(np.clip(tail * 0.55, 0.6, 2.8))
    room = mix.fit_room(space.impulse_response(r_room, rt60=rt60, brightness=0.5))
    out, players, _ = perform(score, list(banks), rng=r_play, room=room, n_out=n)
    out -= out.mean(axis=-1, keepdims=True)
    shape_tail(out, t_final, tail)
    peak = float(np.max(np.abs(out))) or 1.0
    out = (out * (PEAK_TARGET / peak)).astype(np.float32)
    if progress:
        progress(1.0)
    details = _details(spec, motif, arr, form, chords, landing, t_final,
                       [f"lead:{lead}", f"accompaniment:{acc_name}", f"pulse:{arr.pulse}",
                        f"hit:{hit_name}", "bass:pizzicato", "boom:piano", "reverb"])
    details["voices"] = players.kind
    return out, details, float(tail), players.presets


def _details(spec: CueSpec, motif: Motif, arr: Arrangement, form: JingleForm,
             chords: list[tuple[float, float, harmony.Chord]], landing: int, t_final: float,
             layers: list[str]) -> dict:
    """What the sidecar's ``details`` say about a jingle: its motif, form, chords and layers."""
    key = spec.intent.key
    return {
        "key": key.name,
        "bpm": spec.intent.bpm,
        "motif": [harmony.note_name(m, key) for m in motif.notes],
        "motif_rhythm_beats": list(motif.rhythm),
        "variant": spec.variant,
        "arrangement": arr.__dict__,
        "form": form.name,
        "rhythm_scale": form.scale,
        "intro_beats": form.intro_beats,
        "final_hit_seconds": round(t_final, 4),
        "final_beat": form.final_beat,
        "landing": harmony.note_name(landing, key),
        "chords": [{"roman": c.roman, "name": harmony.chord_name(c, key), "start_beat": a,
                    "end_beat": min(b, form.final_beat + 8)}
                   for a, b, c in chords],
        "cadence": arr.cadence,
        "sections": [{"name": "motif", "start": 0.0, "end": round(t_final, 3)},
                     {"name": "tail", "start": round(t_final, 3), "end": spec.duration}],
        "layers": layers,
    }


def _velocity(inst: palette.Instrument, level: float, rng: np.random.Generator) -> int:
    low, high = inst.velocity
    return int(np.clip(round(low + (high - low) * level + rng.normal(0.0, 4.0)), 1, 127))
