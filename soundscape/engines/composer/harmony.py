"""Harmony: roman-numeral chords in a key, progressions by mood, and voice leading.

Numerals are read against the major scale in major-family keys and the natural minor scale in
minor-family keys (the usual convention: "VI" in D minor is B-flat major, "bVII" in C is B-flat).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from soundscape.spec import FLAT_NAMES, MODES, SHARP_NAMES, Key

_NUMERALS = {"I": 0, "II": 1, "III": 2, "IV": 3, "V": 4, "VI": 5, "VII": 6}
_ROMAN_RE = re.compile(r"^(b|#)?(VII|VI|IV|V|III|II|I|vii|vi|iv|v|iii|ii|i)(.*)$")

# Progressions per mood and key family (COMPOSER-NOTES.md, "Harmony by mood").
PROGRESSIONS: dict[str, dict[str, list[list[str]]]] = {
    "calm": {"major": [["I", "V", "vi", "IV"], ["I", "IV", "I", "IV"], ["Imaj7", "IVmaj7"],
                       ["I", "iii", "IV", "I"], ["I", "vi", "IV", "V"]],
             "minor": [["i", "VI", "III", "VII"], ["i", "iv", "i", "VI"]]},
    "warm": {"major": [["Imaj7", "IVmaj7"], ["I", "vi", "IV", "V"], ["I", "iii", "IV", "I"],
                       ["I", "IV", "vi", "V"], ["Iadd9", "vi", "IVmaj7", "I"]],
             "minor": [["i", "VI", "III", "VII"]]},
    "hopeful": {"major": [["I", "V", "vi", "IV"], ["IV", "V", "vi", "I"], ["vi", "IV", "I", "V"],
                          ["I", "iii", "vi", "IV"], ["I", "IV", "ii", "V"]],
                "minor": [["i", "VI", "III", "VII"]]},
    "dreamy": {"major": [["Imaj7", "II", "Imaj7"], ["Iadd9", "iii", "IV"], ["Imaj7", "IVmaj7"],
                         ["I", "II", "vi", "I"], ["Iadd9", "II", "IVmaj7", "Imaj7"]],
               "minor": [["i", "VI", "i", "III"]]},
    "melancholic": {"major": [["vi", "IV", "I", "V"]],
                    "minor": [["i", "VI", "III", "VII"], ["i", "iv", "VI", "v"], ["i", "VII", "VI", "v"],
                              ["i", "iv", "i", "VI"], ["i", "III", "iv", "VI"]]},
    "dark": {"major": [["I", "bVI", "iv", "I"]],
             "minor": [["i", "bII", "i"], ["i", "VI", "iv", "i"], ["i", "i", "VI", "iv"],
                       ["i", "iv", "bII", "i"], ["i", "VI", "bII", "i"]]},
    "tense": {"major": [["I", "bII", "I"]],
              "minor": [["i", "bII", "i"], ["isus2", "bII", "i", "isus4"], ["i", "VI", "bII", "v"],
                        ["i", "iv", "bII", "VI"]]},
    "mysterious": {"major": [["I", "bII", "I", "bVI"]],
                   "minor": [["i", "bII", "i", "VI"], ["isus2", "VI", "i", "bII"], ["i", "III", "bII", "i"],
                             ["i", "VI", "iv", "bII"]]},
    "epic": {"major": [["I", "V", "vi", "IV"], ["I", "bVII", "IV", "I"]],
             "minor": [["i", "VI", "III", "VII"], ["i", "VII", "VI", "VII"], ["i", "VI", "VII", "i"],
                       ["i", "iv", "VI", "VII"]]},
    "playful": {"major": [["I", "bVII", "IV", "I"], ["I", "vi", "ii", "V"], ["I", "IV", "V", "IV"],
                          ["I", "ii", "IV", "V"]],
                "minor": [["i", "iv", "VII", "III"]]},
}
# Progressions for contrasting sections: they start away from the tonic.
CONTRAST_PROGRESSIONS = {
    "major": [["IV", "vi", "ii", "V"], ["vi", "iii", "IV", "V"], ["ii", "IV", "vi", "V"],
              ["IV", "I", "vi", "V"], ["vi", "IV", "ii", "V"]],
    "minor": [["VI", "III", "VII", "v"], ["iv", "VI", "VII", "III"], ["VI", "iv", "VII", "v"],
              ["III", "VII", "iv", "v"]],
}
DEFAULT_PROGRESSIONS = {
    "major": [["I", "V", "vi", "IV"], ["I", "IV", "vi", "V"]],
    "minor": [["i", "VI", "III", "VII"], ["i", "iv", "VI", "v"]],
}


@dataclass(frozen=True)
class Chord:
    """A chord as a root pitch class and intervals above it, with the numeral it came from."""

    roman: str
    root: int
    intervals: tuple[int, ...]

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def name(self) -> str:
        names = FLAT_NAMES if self.root in (1, 3, 8, 10) else SHARP_NAMES
        return names[self.root] + self.quality

    @property
    def quality(self) -> str:
        """The name's suffix: "", "m", "dim", "sus2", "maj7", "m7", "add9"..."""
        iv = set(self.intervals)
        if 3 in iv and 6 in iv:
            quality = "dim"
        elif 3 in iv:
            quality = "m"
        elif 2 in iv and 4 not in iv:
            quality = "sus2"
        elif 5 in iv and 4 not in iv:
            quality = "sus4"
        else:
            quality = ""
        if 11 in iv:
            quality += "maj7"
        elif 10 in iv:
            quality += "7"
        if 14 in iv:
            quality += "add9"
        return quality


# Major keys written with flats (F, Bb, Eb, Ab, Db); the rest use sharps.
FLAT_MAJOR_TONICS = (5, 10, 3, 8, 1)


def uses_flats(key: Key) -> bool:
    """Whether the key is spelt with flats: that of its parent major scale (D minor: F major)."""
    scale = set(key.scale)
    for parent in range(12):
        if {(parent + s) % 12 for s in MODES["major"]} == scale:
            return parent in FLAT_MAJOR_TONICS
    return (key.tonic + 3) % 12 in FLAT_MAJOR_TONICS  # harmonic minor: as its natural minor


def note_name(midi: int, key: Key) -> str:
    """Scientific pitch name spelt for the key: "Bb4" in D minor, "A#4" in B major."""
    names = FLAT_NAMES if uses_flats(key) else SHARP_NAMES
    return f"{names[midi % 12]}{midi // 12 - 1}"


def chord_name(chord: "Chord", key: Key) -> str:
    """The chord's name spelt for the key ("Bb" rather than "A#" in D minor)."""
    names = FLAT_NAMES if uses_flats(key) else SHARP_NAMES
    return names[chord.root] + chord.name[len(chord.name) - len(chord.quality):]


def family(key: Key) -> str:
    return "minor" if key.is_minor else "major"


def parse_roman(roman: str, key: Key) -> Chord:
    """Read a numeral such as "IV", "bVII", "ii", "Imaj7", "isus2" or "Iadd9" in ``key``."""
    m = _ROMAN_RE.match(roman)
    if not m:
        raise ValueError(f"not a roman numeral: {roman!r}")
    accidental, numeral, suffix = m.groups()
    steps = MODES["minor" if key.is_minor else "major"]
    root = (key.tonic + steps[_NUMERALS[numeral.upper()]]
            + (-1 if accidental == "b" else 1 if accidental == "#" else 0)) % 12
    intervals = [0, 4, 7] if numeral.isupper() else [0, 3, 7]
    if "dim" in suffix:
        intervals = [0, 3, 6]
    if "sus2" in suffix:
        intervals[1] = 2
    if "sus4" in suffix:
        intervals[1] = 5
    if "maj7" in suffix:
        intervals.append(11)
    elif "7" in suffix:
        intervals.append(10)
    if "add9" in suffix:
        intervals.append(14)
    return Chord(roman, root, tuple(intervals))


def progressions_for(mood: str, key: Key) -> list[list[Chord]]:
    """The mood's progressions in the key's family, each starting on the tonic where it can."""
    fam = family(key)
    table = PROGRESSIONS.get(mood, {}).get(fam) or DEFAULT_PROGRESSIONS[fam]
    out = []
    for romans in table:
        chords = [parse_roman(r, key) for r in romans]
        # Rotate so that a tonic chord opens (and, cycled, closes) the bed: it anchors the key.
        for shift, chord in enumerate(chords):
            if chord.root == key.tonic:
                chords = chords[shift:] + chords[:shift]
                break
        out.append(chords)
    return out


def contrast_progression(key: Key, mood: str, rng: np.random.Generator) -> list[Chord]:
    """A progression for a contrasting section: away from home, leading back to it."""
    table = CONTRAST_PROGRESSIONS[family(key)]
    if mood in ("dark", "tense", "mysterious") and key.is_minor:
        table = table + [["bII", "VI", "iv", "v"]]
    return [parse_roman(r, key) for r in table[int(rng.integers(len(table)))]]


def cadence_chord(key: Key, rng: np.random.Generator) -> Chord:
    """The chord before the last tonic: the dominant or the subdominant (plagal, softer)."""
    options = ["iv", "v", "VII"] if key.is_minor else ["IV", "V", "ii"]
    return parse_roman(options[int(rng.integers(len(options)))], key)


def tonic_chord(key: Key) -> Chord:
    return parse_roman("i" if key.is_minor else "I", key)


def nearest_midi(pc: int, target: float) -> int:
    """The MIDI note of pitch class ``pc`` closest to ``target``."""
    base = int(round(target)) - ((int(round(target)) - pc) % 12)
    return base + 12 if target - base > 6 else base


def voice_chord(chord: Chord, previous: tuple[int, ...] | None, *, bass_centre: float = 48.0,
                upper_low: int = 55, upper_high: int = 77, upper_voices: int = 3) -> tuple[int, ...]:
    """Voice a chord as a bass root plus upper voices that move to the nearest tones.

    The first chord is spread open (root low, fifth, then third and colour tones above). Later
    chords keep common tones and move each upper voice the least distance; every voicing holds
    the chord's third (or its sus/colour tone) so the quality is never lost.
    """
    pcs = list(dict.fromkeys(chord.pitch_classes))
    # The bass keeps to one octave window around its centre, so it never wanders off.
    low = int(bass_centre) - 6
    bass = low + (chord.root - low) % 12
    colour = [pc for pc in pcs if pc != chord.root]
    if previous is None:
        tones = [(chord.root + 7) % 12] if (chord.root + 7) % 12 in pcs else []
        tones += [pc for pc in colour if pc not in tones]
        tones = (tones + [chord.root])[:upper_voices]
        upper, last = [], bass + 5
        for pc in tones:
            note = last + 1 + ((pc - (last + 1)) % 12)
            upper.append(note)
            last = note
        while max(upper) > upper_high:
            upper = [u - 12 if u == max(upper) else u for u in upper]
        return (bass, *sorted(upper))
    prev_upper = list(previous[1:])
    best, best_cost = None, float("inf")
    needed = set(colour) or {chord.root}
    for choice in itertools.product(pcs, repeat=len(prev_upper)):
        if not needed.issubset(set(choice) | {chord.root}) or len(set(choice)) < min(len(pcs), 2):
            continue
        notes = [nearest_midi(pc, p) for pc, p in zip(choice, prev_upper)]
        notes = [n + 12 if n < upper_low else n - 12 if n > upper_high else n for n in notes]
        if len(set(notes)) < len(notes):
            continue
        cost = sum(abs(n - p) for n, p in zip(notes, prev_upper))
        if cost < best_cost:
            best, best_cost = notes, cost
    if best is None:  # cannot happen for triads; keep the previous voicing's register
        best = [nearest_midi(pc, p) for pc, p in zip(itertools.cycle(pcs), prev_upper)]
    return (bass, *sorted(best))


@dataclass(frozen=True)
class ChordSpan:
    """A chord held from ``start`` to ``end`` seconds, with its voicing (MIDI, bass first)."""

    chord: Chord
    start: float
    end: float
    voicing: tuple[int, ...]
