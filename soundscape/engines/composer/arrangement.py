"""Beds as scores: the ensemble, the harmony of every section and the notes of every part.

Nothing here makes sound. :func:`plan_bed` reads the spec and the seed, plans the sections
(:mod:`.form`), chooses the players for each role from the mood's palette (the prompt's
instruments lead), lays chords over each section with its own progression and harmonic rhythm,
and writes the parts:

- ``bass``: the drone, its fundamental placed in 40-80 Hz whatever the key; it leaves the tonic
  pedal to follow the chord roots in developing sections;
- ``pad``: the chords, voice-led, common tones held; ``pad2`` doubles the upper voices an
  octave up with another instrument where the music opens out;
- ``melody``: a motif stated, varied (sequence, inversion, fragment, augmentation) and recalled;
- ``arp``: broken chords whose subdivision follows the intensity;
- ``shimmer``: sparse high chord tones on bells; ``swell``: horns rising into strong sections.

The intensity curve decides which of these play (a part enters above its threshold and leaves
below it), how dense their rhythm is, how bright (velocity and filter) and how loud.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from soundscape.engines.composer import form, harmony, palette
from soundscape.engines.composer.form import Section
from soundscape.engines.composer.motif import Motif, compose_motif
from soundscape.engines.composer.score import CONTROL_RATE, Curve, Note, Part, Score
from soundscape.spec import MODES, CueSpec, Key

# Drone register: the tonic's fundamental between E1 (41.2 Hz) and D#2 (77.8 Hz).
DRONE_LOW_MIDI = 28
BASS_LEVEL = 0.5        # the bass's energy under 160 Hz, against the other parts' whole
FIFTH_ABOVE = 0.5       # intensity from which the pedal's fifth joins it
# Intensity at which each part enters (it fades in over ENTRY_WIDTH above it).
ENTRY = {"bass": 0.0, "pad": 0.0, "melody": 0.22, "pad2": 0.5, "arp": 0.45, "shimmer": 0.62,
         "swell": 0.72}
ENTRY_WIDTH = 0.12
# Bars per chord for each kind of section (the seed picks one per chord).
HARMONIC_BARS = {"intro": (4, 6), "statement": (2, 3, 4), "development": (2, 3),
                 "contrast": (1, 2, 2, 4), "interlude": (4, 6, 8), "return": (2, 3, 4),
                 "close": (3, 4)}
CHORD_SECONDS = (5.0, 24.0)
MELODY_CENTRE = 72   # C5: where the melody sits before a section's register shift


@dataclass
class Plan:
    """A planned bed: its score and what the sidecar says about it."""

    score: Score
    sections: list[Section]
    chords: list[harmony.ChordSpan]
    intensity: np.ndarray
    orchestra: dict[str, str]
    motif: Motif
    details: dict = field(default_factory=dict)


def _rngs(seed: int, count: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 1009]).spawn(count)]


# --- the ensemble ----------------------------------------------------------------------------

def choose_orchestra(spec: CueSpec, rng: np.random.Generator) -> dict[str, str]:
    """Role -> instrument. The prompt's instruments take the lead roles; the mood's palette
    fills the rest, the seed choosing within it (and the prompt's colour words leaning it)."""
    pal = palette.MOOD_PALETTES.get(spec.intent.mood, palette.MOOD_PALETTES["calm"])
    colour = spec.intent.colour

    def pick(weights, exclude=()):
        return palette.choose(weights, rng, exclude=exclude, colour=colour)

    asked = []
    for word in spec.intent.instruments:
        try:
            asked.append(palette.resolve_family(word, rng))
        except KeyError:
            continue
    low_voices = ("drone", "contrabass")
    held = [a for a in asked if palette.INSTRUMENTS[a].sustained and a not in low_voices]
    struck = [a for a in asked if not palette.INSTRUMENTS[a].sustained]
    orchestra = {
        "bass": next((a for a in asked if a in low_voices), None) or pick(pal.bass),
        "pad": held[0] if held else pick(pal.pad),
    }
    orchestra["pad2"] = held[1] if len(held) > 1 else pick(pal.pad, (orchestra["pad"],))
    leads = struck + held[2:]
    soloists = ("flute", "clarinet", "oboe", "violin", "cello", "horns")
    if not struck and len(held) == 1 and held[0] in soloists:
        leads = [held[0]]  # a solo instrument asked for alone carries the tune
        orchestra["pad"] = pick(pal.pad, (held[0],))
        orchestra["pad2"] = pick(pal.pad, (held[0], orchestra["pad"]))
    orchestra["melody"] = leads[0] if leads else pick(pal.melody)
    orchestra["arp"] = leads[1] if len(leads) > 1 else pick(pal.arp, (orchestra["melody"],))
    orchestra["shimmer"] = pick(pal.shimmer, (orchestra["melody"], orchestra["arp"]))
    orchestra["swell"] = pick(pal.swell)
    return orchestra


# --- harmony ---------------------------------------------------------------------------------

def _bar_seconds(bpm: float) -> float:
    return 4 * 60.0 / bpm


def plan_harmony(key: Key, mood: str, sections: list[Section], *, bpm: float, loop: bool,
                 rng: np.random.Generator) -> tuple[list[harmony.ChordSpan], list[int]]:
    """Chords over every section, each section with its own progression and harmonic rhythm.

    Returns the chord spans (voiced) and, for each, the index of its section.
    """
    progs = harmony.progressions_for(mood, key)
    order = rng.permutation(len(progs))
    main = progs[int(order[0])]
    other = progs[int(order[1 % len(progs)])]
    contrast = harmony.contrast_progression(key, mood, rng)
    bar = _bar_seconds(bpm)
    tonic = harmony.tonic_chord(key)
    spans: list[tuple[harmony.Chord, float, float, int]] = []
    for index, section in enumerate(sections):
        if section.name == "intro":
            prog = [tonic]
        elif section.name == "close":
            prog = [harmony.cadence_chord(key, rng), tonic] if section.length > 14 else [tonic]
        elif section.name == "contrast":
            prog = contrast
        elif section.name == "development":
            prog = other if section.variation % 2 == 0 else main[1:] + main[:1]
        elif section.name == "interlude":
            prog = [tonic, contrast[0]] if len(contrast) else [tonic]
        else:
            prog = main
        t, i = section.start, 0
        while section.end - t > 1e-6:
            bars = HARMONIC_BARS[section.name]
            length = float(np.clip(bar * rng.choice(bars), *CHORD_SECONDS))
            if section.name == "close" and i == len(prog) - 1:
                length = section.end - t  # the close ends on its last chord, held
            if section.end - t - length < CHORD_SECONDS[0]:
                length = section.end - t  # no stub of a chord at the section's end
            spans.append((prog[i % len(prog)], t, t + length, index))
            t += length
            i += 1
    if not loop and spans[-1][0].root != key.tonic:
        last = spans[-1]
        spans[-1] = (tonic, last[1], last[2], last[3])
    if loop and len(spans) > 1 and spans[-1][0] == spans[0][0]:
        # A loop should not hold one chord across its seam for twice as long: change the last.
        last = spans[-1]
        spans[-1] = (harmony.cadence_chord(key, rng), last[1], last[2], last[3])
    voiced, previous = [], None
    for chord, start, end, index in spans:
        shift = sections[index].register
        previous = harmony.voice_chord(chord, previous, upper_low=55 + shift // 2,
                                       upper_high=77 + shift // 2)
        voiced.append(harmony.ChordSpan(chord, start, end, previous))
    return voiced, [s[3] for s in spans]


# --- parts -----------------------------------------------------------------------------------

MAX_HOLD = 20.0        # seconds a held note lasts before the player breathes (or re-bows)
BREATH = (11.0, 17.0)  # the length of each breath of a longer note
BREATH_OVERLAP = 2.0   # the next breath starts this long before the last one ends


def breathe(notes: list[Note], rng: np.random.Generator) -> list[Note]:
    """Long held notes as overlapping breaths, as a player re-bows or breathes (and as some
    sampled pads need: their notes die away after tens of seconds of holding)."""
    out = []
    for n in notes:
        if n.end - n.start <= MAX_HOLD:
            out.append(n)
            continue
        t = n.start
        while n.end - t > MAX_HOLD:
            length = float(rng.uniform(*BREATH))
            out.append(Note(t, t + length, n.midi, n.velocity, n.pan))
            t += length - BREATH_OVERLAP
        vel = int(np.clip(n.velocity + rng.integers(-6, 7), 1, 127))
        out.append(Note(t, n.end, n.midi, vel, n.pan))
    return out


def gate(intensity: np.ndarray, role: str) -> np.ndarray:
    """0..1: how much a role plays at each control step (a smooth step above its entry)."""
    x = (intensity - ENTRY[role]) / ENTRY_WIDTH
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _at(curve: np.ndarray, t: float) -> float:
    return float(curve[min(max(int(t * CONTROL_RATE), 0), curve.size - 1)])


def _velocity(inst: palette.Instrument, level: float, rng: np.random.Generator, *,
              spread: float = 6.0) -> int:
    """A velocity in the instrument's range for a level 0..1, with a player's variation."""
    low, high = inst.velocity
    v = low + (high - low) * level + rng.normal(0.0, spread)
    return int(np.clip(round(v), 1, 127))


def bass_part(chords, where, sections, key: Key, intensity, rng, *, instrument: str,
              total: float) -> Part:
    """The drone: tonic (and fifth) in the 40-80 Hz octave; following chord roots in
    development and contrast sections. Notes overlap as one breath hands over to the next."""
    inst = palette.INSTRUMENTS[instrument]
    low = DRONE_LOW_MIDI + (key.tonic - DRONE_LOW_MIDI) % 12
    notes: list[Note] = []
    for index, section in enumerate(sections):
        follow = section.name in ("development", "contrast")
        spans = [c for c, w in zip(chords, where) if w == index]
        if follow:
            for span in spans:
                root = DRONE_LOW_MIDI + (span.chord.root - DRONE_LOW_MIDI) % 12
                level = _at(intensity, span.start)
                notes.append(Note(span.start, span.end + 1.0, root, _velocity(inst, level, rng)))
        else:
            level = _at(intensity, section.start)
            end = section.end + 1.5
            notes.append(Note(section.start, end, low, _velocity(inst, level, rng)))
            if section.name in ("return", "statement") and level >= FIFTH_ABOVE:
                # The fifth joins the pedal where the music is full enough to carry it.
                notes.append(Note(section.start + 2.0, end, low + 7,
                                  max(1, _velocity(inst, level, rng) - 18)))
    notes = [Note(n.start, min(n.end, total), n.midi, n.velocity) for n in notes]
    expression = Curve(np.clip(0.62 + 0.38 * intensity, 0, 1).astype(np.float32))
    brightness = Curve(np.clip(0.35 + 0.5 * intensity, 0, 1).astype(np.float32))
    return Part("bass", instrument, notes, sustained=True, level=BASS_LEVEL, mono=True,
                reverb=0.12, expression=expression, brightness=brightness, low_end=True)


def pad_part(chords, where, sections, intensity, rng, *, instrument: str, total: float,
             name: str = "pad", octave: int = 0, voices: slice = slice(1, None),
             level: float = 1.0) -> Part:
    """Held chords: each upper voice of the voicing, common tones tied across changes."""
    inst = palette.INSTRUMENTS[instrument]
    notes: list[Note] = []
    open_notes: dict[int, tuple[float, int, float]] = {}
    pans = {}
    for span in chords:
        wanted = [m + 12 * octave for m in span.voicing[voices]]
        wanted = [m for m in wanted if inst.low - 12 <= m <= inst.high + 7]
        for midi in list(open_notes):
            if midi not in wanted:
                start, vel, pan = open_notes.pop(midi)
                notes.append(Note(start, span.start + 0.35, midi, vel, pan))
        for i, midi in enumerate(wanted):
            if midi not in open_notes:
                level_here = _at(intensity, span.start)
                vel = _velocity(inst, 0.35 + 0.5 * level_here, rng) - 6 * i
                pan = pans.setdefault(midi % 12, float(rng.uniform(-0.55, 0.55)))
                open_notes[midi] = (span.start, max(1, vel), pan)
    for midi, (start, vel, pan) in open_notes.items():
        notes.append(Note(start, total, midi, vel, pan))
    expression = Curve(np.clip(0.3 + 0.7 * intensity, 0, 1).astype(np.float32))
    brightness = Curve(np.clip(0.3 + 0.7 * intensity, 0, 1).astype(np.float32))
    return Part(name, instrument, notes, sustained=True, level=level, reverb=0.35,
                expression=expression, brightness=brightness)


def gated(part: Part, g: np.ndarray, *, threshold: float = 0.05) -> Part:
    """The part with its notes kept only where the gate is open, and the gate in its level."""
    keep = [n for n in part.notes if _at(g, n.start) > threshold]
    expression = part.expression.values if part.expression is not None else np.ones_like(g)
    n = min(expression.size, g.size)
    # A closed gate is silence, not the expression's quiet floor: the level curve goes to zero.
    values = np.where(g[:n] > 0, expression[:n], 0.0).astype(np.float32)
    part.notes = keep
    part.expression = Curve(values)
    return part


def _chord_at(chords: list[harmony.ChordSpan], starts: np.ndarray, t: float) -> harmony.ChordSpan:
    return chords[max(int(np.searchsorted(starts, t, side="right")) - 1, 0)]


def _consonant(midi: int, chord: harmony.Chord, key: Key) -> int:
    """The nearest scale tone that does not rub a semitone against the chord."""
    pool = [m for m in range(midi - 3, midi + 4) if m % 12 in key.scale]
    ok = [m for m in pool if all(min((m - c) % 12, (c - m) % 12) > 1 or (m - c) % 12 == 0
                                 for c in chord.pitch_classes)]
    return min(ok or pool or [midi], key=lambda m: (abs(m - midi), m))


def _degrees(motif: Motif, key: Key) -> list[int]:
    """The motif as scale degrees (0 = tonic) of the key, octave folded in."""
    steps = MODES[key.mode]
    out = []
    for m in motif.notes:
        rel = m - key.tonic
        octave, pc = divmod(rel, 12)
        degree = min(range(7), key=lambda d: abs(steps[d] - pc))
        out.append(7 * octave + degree)
    base = out[0]
    return [d - base for d in out]


def _from_degree(degree: int, key: Key, anchor: int) -> int:
    """MIDI note of a scale degree counted from the scale tone ``anchor``."""
    steps = MODES[key.mode]
    rel = (anchor - key.tonic) % 12
    start = min(range(7), key=lambda d: abs(steps[d] - rel))
    d = start + degree
    octave, idx = divmod(d, 7)
    return anchor - steps[start] + steps[idx] + 12 * octave


def variation(degrees: list[int], rhythm: list[float], kind: str) -> tuple[list[int], list[float]]:
    """A transformation of the motif: as stated, inverted, retrograde, fragment, augmented."""
    if kind == "inversion":
        return [-d for d in degrees], rhythm
    if kind == "retrograde":
        return list(reversed(degrees)), list(reversed(rhythm[:-1])) + [rhythm[-1]]
    if kind == "fragment":
        k = max(2, len(degrees) - 2)
        return degrees[:k] + degrees[:k][::-1][1:], rhythm[:k] + rhythm[:k - 1][::-1]
    if kind == "augmented":
        return degrees, [r * 2 for r in rhythm]
    if kind == "sequence":
        return degrees + [d + 1 for d in degrees], rhythm + rhythm
    return degrees, rhythm


# Which treatments of the motif each kind of section uses (the seed picks among them).
TREATMENTS = {"intro": ("fragment",), "statement": ("stated", "stated", "sequence"),
              "development": ("sequence", "inversion", "fragment", "augmented"),
              "contrast": ("inversion", "retrograde", "augmented"),
              "interlude": ("fragment", "augmented"),
              "return": ("stated", "augmented"), "close": ("fragment", "augmented")}


def melody_part(chords, sections, key: Key, bpm: float, motif: Motif, intensity, rng, *,
                instrument: str, until: float) -> tuple[Part, list[dict]]:
    """Phrases made of the motif, one treatment per phrase, rests between them by intensity."""
    inst = palette.INSTRUMENTS[instrument]
    beat = 60.0 / bpm
    # Slow tempos sing in beats, fast ones in half-time, so the tune stays a slow one.
    unit = beat if bpm < 80 else 2 * beat
    starts = np.array([c.start for c in chords])
    degrees0, rhythm0 = _degrees(motif, key), list(motif.rhythm)
    notes: list[Note] = []
    phrases: list[dict] = []
    t = float(rng.uniform(1.0, 3.0) * unit)
    while t < until - 2 * unit:
        level = _at(intensity, t)
        if level < ENTRY["melody"]:
            t += 2 * unit
            continue
        section = form.section_at(sections, t)
        kind = str(rng.choice(TREATMENTS[section.name]))
        degrees, rhythm = variation(degrees0, rhythm0, kind)
        chord = _chord_at(chords, starts, t).chord
        centre = MELODY_CENTRE + section.register
        tones = [m for m in range(centre - 6, centre + 7) if m % 12 in chord.pitch_classes]
        anchor = int(rng.choice(tones)) if tones else centre
        anchor = min(max(anchor, inst.low + 2), inst.high - 9)
        tn = t
        count = 0
        peak = len(degrees) // 2
        for i, (d, r) in enumerate(zip(degrees, rhythm)):
            if tn >= until:
                break
            here = _chord_at(chords, starts, tn).chord
            midi = _consonant(_from_degree(d, key, anchor), here, key)
            midi = min(max(midi, inst.low), inst.high)
            length = r * unit
            arch = 1.0 - 0.25 * abs(i - peak) / max(peak, 1)
            vel = _velocity(inst, (0.35 + 0.6 * level) * arch, rng)
            jitter = float(rng.normal(0.0, 0.012))
            hold = length * (1.0 if inst.sustained else 0.95) + (0.4 if inst.sustained else 0.6)
            notes.append(Note(max(tn + jitter, 0.0), tn + hold, midi, vel))
            tn += length
            count += 1
        phrases.append({"start": round(t, 2), "treatment": kind, "notes": count})
        # Rests between phrases: long when quiet, short when the music is full.
        rest_beats = float(rng.choice([2, 3, 4, 6, 8])) * (2.4 - 2.0 * level)
        t = tn + rest_beats * unit
    pedal = []
    if inst.pedal and notes:
        # The pedal is changed with the harmony and at least every other bar, as a pianist
        # does (it also keeps the ringing strings few).
        bar2 = 2 * _bar_seconds(bpm)
        for c in chords:
            t = c.start
            while t < c.end - 0.2:
                pedal.append((t + 0.05, min(t + bar2, c.end) - 0.05))
                t += bar2
    expression = Curve(np.clip(0.55 + 0.45 * intensity, 0, 1).astype(np.float32))
    brightness = Curve(np.clip(0.45 + 0.55 * intensity, 0, 1).astype(np.float32))
    part = Part("melody", instrument, notes, sustained=inst.sustained, level=0.85,
                pan=float(rng.uniform(-0.25, 0.25)), width=0.35, reverb=0.45,
                expression=expression, brightness=brightness, pedal=pedal)
    return part, phrases


ARP_SHAPES = ("up", "updown", "broken", "down")


def arp_part(chords, key: Key, bpm: float, intensity, rng, *, instrument: str,
             until: float) -> Part:
    """Broken chords: quarter notes entering, eighths and sixteenths as intensity rises."""
    inst = palette.INSTRUMENTS[instrument]
    beat = 60.0 / bpm
    shape = str(rng.choice(ARP_SHAPES))
    notes: list[Note] = []
    for span in chords:
        upper = sorted(span.voicing[1:])
        lift = 12 if upper[0] + 12 <= inst.high - 5 and upper[0] < 60 else 0
        tones = [m + lift for m in upper] + [upper[0] + lift + 12]
        tones = [m for m in tones if inst.low <= m <= inst.high] or [min(max(upper[0], inst.low), inst.high)]
        if shape == "updown":
            cycle = tones + tones[-2:0:-1]
        elif shape == "down":
            cycle = tones[::-1]
        elif shape == "broken":
            cycle = [tones[i] for i in (0, 2 % len(tones), 1 % len(tones), -1)]
        else:
            cycle = tones
        t = span.start
        j = 0
        while t < min(span.end, until):
            level = _at(intensity, t)
            if level < ENTRY["arp"]:
                t += beat
                continue
            sub = 1.0 if level < 0.62 else 0.5 if level < 0.84 or bpm > 92 else 0.25
            if rng.random() > 0.1:  # a player leaves the odd note out
                on_beat = abs((t - span.start) / beat - round((t - span.start) / beat)) < 1e-6
                vel = _velocity(inst, (0.25 + 0.6 * level) * (1.0 if on_beat else 0.85), rng)
                start = t + float(rng.normal(0.0, 0.008))
                notes.append(Note(max(start, 0.0), start + max(sub * beat * 1.6, 0.35),
                                  cycle[j % len(cycle)], vel))
            j += 1
            t += sub * beat
    expression = Curve(np.clip(0.5 + 0.5 * intensity, 0, 1).astype(np.float32))
    brightness = Curve(np.clip(0.4 + 0.6 * intensity, 0, 1).astype(np.float32))
    side = float(rng.choice([-1.0, 1.0]))
    return Part("arp", instrument, notes, sustained=False, level=0.55, pan=0.35 * side, width=0.4,
                reverb=0.4, expression=expression, brightness=brightness)


def shimmer_part(chords, bpm: float, intensity, rng, *, instrument: str, until: float) -> Part:
    """High chord tones on bells: one every two bars entering, one a bar when full."""
    inst = palette.INSTRUMENTS[instrument]
    bar = _bar_seconds(bpm)
    notes: list[Note] = []
    for span in chords:
        t = span.start + float(rng.uniform(0.0, bar))
        while t < min(span.end, until):
            level = _at(intensity, t)
            if level >= ENTRY["shimmer"] and rng.random() < 0.8:
                pcs = span.chord.pitch_classes
                pool = [m for m in range(inst.low + 5, inst.high - 3) if m % 12 in pcs]
                if pool:
                    midi = int(rng.choice(pool))
                    notes.append(Note(t, t + 2.5, midi, _velocity(inst, 0.4 + 0.5 * level, rng)))
            t += bar * (2.0 if level < 0.85 else 1.0)
    expression = Curve(np.clip(0.6 + 0.4 * intensity, 0, 1).astype(np.float32))
    return Part("shimmer", instrument, notes, sustained=False, level=0.38,
                pan=float(rng.uniform(-0.6, 0.6)), width=0.6, reverb=0.65, expression=expression)


def swell_part(chords, where, sections, intensity, rng, *, instrument: str) -> Part:
    """Horns holding root and fifth through the strongest sections, rising with each chord."""
    inst = palette.INSTRUMENTS[instrument]
    notes: list[Note] = []
    for span, index in zip(chords, where):
        if sections[index].name not in ("contrast", "return", "development"):
            continue
        if _at(intensity, span.start) < ENTRY["swell"]:
            continue
        root = 48 + (span.chord.root - 48) % 12
        for midi in (root, root + 7):
            if inst.low <= midi <= inst.high:
                notes.append(Note(span.start + 0.3, span.end + 0.3, midi,
                                  _velocity(inst, 0.6, rng)))
    values = np.clip(0.45 + 0.55 * intensity, 0, 1).astype(np.float32)
    return Part("swell", instrument, notes, sustained=True, level=0.5, pan=-0.15, reverb=0.5,
                expression=Curve(values), brightness=Curve(values.copy()))


# --- the whole ---------------------------------------------------------------------------------

def plan_bed(spec: CueSpec) -> Plan:
    """Plan a bed over its duration (a loop over one cycle; see :func:`unroll_loop`)."""
    intent = spec.intent
    duration = spec.duration
    r_form, r_orch, r_harm, r_bass, r_pad, r_pad2, r_mel, r_arp, r_shim, r_swell, r_motif = \
        _rngs(spec.seed, 11)
    sections = form.plan_sections(duration, loop=spec.loop, rng=r_form)
    intensity = form.intensity_curve(spec, sections, total=duration + 8.0)
    orchestra = choose_orchestra(spec, r_orch)
    chords, where = plan_harmony(intent.key, intent.mood, sections, bpm=intent.bpm, loop=spec.loop,
                                 rng=r_harm)
    motif = compose_motif(intent.key, int(r_motif.integers(2 ** 31)))
    until = duration if spec.loop else duration - 2.0
    parts = [
        bass_part(chords, where, sections, intent.key, intensity, r_bass,
                  instrument=orchestra["bass"], total=duration),
        pad_part(chords, where, sections, intensity, r_pad, instrument=orchestra["pad"],
                 total=duration),
    ]
    pad2 = pad_part(chords, where, sections, intensity, r_pad2, instrument=orchestra["pad2"],
                    total=duration, name="pad2", octave=1, voices=slice(2, None), level=0.55)
    parts.append(gated(pad2, gate(intensity, "pad2")))
    melody, phrases = melody_part(chords, sections, intent.key, intent.bpm, motif, intensity, r_mel,
                                  instrument=orchestra["melody"], until=until)
    parts.append(gated(melody, gate(intensity, "melody")))
    parts.append(gated(arp_part(chords, intent.key, intent.bpm, intensity, r_arp,
                                instrument=orchestra["arp"], until=until), gate(intensity, "arp")))
    parts.append(gated(shimmer_part(chords, intent.bpm, intensity, r_shim,
                                    instrument=orchestra["shimmer"], until=until),
                       gate(intensity, "shimmer")))
    parts.append(gated(swell_part(chords, where, sections, intensity, r_swell,
                                  instrument=orchestra["swell"]), gate(intensity, "swell")))
    parts = [p for p in parts if p.notes]
    r_breath = np.random.default_rng(np.random.SeedSequence([spec.seed, 1013]))
    for part in parts:
        if part.sustained:
            part.notes = breathe(part.notes, r_breath)
    if intent.colour:
        for part in parts:  # the prompt's colour words open or close every player's tone
            if part.brightness is not None:
                part.brightness = Curve(np.clip(part.brightness.values + 0.2 * intent.colour, 0, 1))
    envelope = form_envelope(sections, duration, loop=spec.loop)
    score = Score(parts, duration, spec.seed, colour=intent.colour, envelope=envelope)
    details = {
        "sections": [s.describe() for s in sections],
        "orchestra": {role: orchestra[role] for role in palette.ROLES if role in orchestra},
        "motif": [harmony.note_name(m, intent.key) for m in motif.notes],
        "motif_rhythm_beats": list(motif.rhythm),
        "phrases": phrases,
    }
    return Plan(score, sections, chords, intensity, orchestra, motif, details)


def form_envelope(sections: list[Section], total: float, *, loop: bool) -> Curve | None:
    """The bed's swell out of silence over its intro and its thinning over its close (a loop has
    neither: it is always already playing)."""
    if loop:
        return None
    n = int(np.ceil(total * CONTROL_RATE)) + 2
    t = np.arange(n) / CONTROL_RATE
    env = np.ones(n)
    intro = next((s for s in sections if s.name == "intro"), None)
    close = next((s for s in sections if s.name == "close"), None)
    if intro is not None:
        x = np.clip(t / max(intro.end, 1e-3), 0, 1)
        env *= 0.12 + 0.88 * (0.5 - 0.5 * np.cos(np.pi * x))
    if close is not None:
        x = np.clip((t - close.start) / max(close.length, 1e-3), 0, 1)
        env *= 1.0 - 0.8 * (0.5 - 0.5 * np.cos(np.pi * x))
    return Curve(env.astype(np.float32))


def unroll_loop(score: Score, *, period: float, before: float, after: float) -> Score:
    """A loop's score laid out for rendering ``-before .. period + after``, shifted to start at 0.

    The cycle is played with its end again before its start and its start again after its end,
    so tails ring across the seam; the render then drops the first ``before`` seconds. Held
    notes that meet across the seam at the same pitch become one note.
    """
    parts = []
    for part in score.parts:
        notes = list(part.notes)
        notes += [Note(n.start - period, n.end - period, n.midi, n.velocity, n.pan)
                  for n in part.notes if n.end - period > -before]
        notes += [Note(n.start + period, n.end + period, n.midi, n.velocity, n.pan)
                  for n in part.notes if n.start + period < period + after]
        if part.sustained:
            notes = _tie(notes)
        notes = [Note(max(n.start + before, 0.0), n.end + before, n.midi, n.velocity, n.pan)
                 for n in notes if n.end + before > 0]

        def cyclic(c: Curve | None) -> Curve | None:
            return None if c is None else Curve(_cyclic(c.values, period, before, after))

        pedal = [(max(a + k * period + before, 0.0), b + k * period + before)
                 for a, b in part.pedal for k in (-1, 0, 1) if b + k * period + before > 0]
        parts.append(Part(part.name, part.instrument, notes, part.sustained, part.level, part.pan,
                          part.width, part.reverb, part.mono, cyclic(part.expression),
                          cyclic(part.brightness), pedal))
    return Score(parts, before + period + after, score.seed, colour=score.colour)


def _cyclic(values: np.ndarray, period: float, before: float, after: float) -> np.ndarray:
    """A control curve of one cycle, indexed from ``-before``: the cycle repeated around."""
    n_period = int(round(period * CONTROL_RATE))
    total = int(np.ceil((before + period + after) * CONTROL_RATE)) + 2
    idx = (np.arange(total) - int(round(before * CONTROL_RATE))) % max(n_period, 1)
    return values[np.minimum(idx, values.size - 1)]


def _tie(notes: list[Note]) -> list[Note]:
    """Join a note ending within 0.5 s of where the same pitch starts again."""
    notes = sorted(notes, key=lambda n: (n.midi, n.start))
    out: list[Note] = []
    for n in notes:
        if out and out[-1].midi == n.midi and n.start - out[-1].end < 0.5 and n.start >= out[-1].start:
            prev = out[-1]
            out[-1] = Note(prev.start, max(prev.end, n.end), prev.midi, prev.velocity, prev.pan)
        else:
            out.append(n)
    return sorted(out, key=lambda n: (n.start, n.midi))
