"""What to make: the cue specification and the musical intent read from a prompt.

A prompt is read against a small vocabulary of moods, textures, instruments, tempo words and
key names; explicit controls (``--key``, ``--bpm``, ``--mood``, ``--intensity``) always win over
what the prompt says. Everything here is plain, validated data: engines receive a
:class:`CueSpec` and need not parse anything.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from soundscape.errors import ParameterError
from soundscape.production import (CUE_PARAMS_KEY, MAX_PROMPT_CHARS, MAX_TITLE_CHARS, CueFacts,
                                   check_length)

Kind = Literal["bed", "jingle", "sting"]
KINDS: tuple[str, ...] = ("bed", "jingle", "sting")

# Duration limits in seconds: beds from 10 s to 3 hours, jingles and stings 2-30 s.
DURATION_LIMITS: dict[str, tuple[float, float]] = {
    "bed": (10.0, 3 * 3600.0),
    "jingle": (2.0, 30.0),
    "sting": (2.0, 30.0),
}
BPM_LIMITS = (30.0, 240.0)

PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")

# Scale steps (semitones above the tonic) of each mode the composer knows.
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
}
MODE_ALIASES = {
    "maj": "major", "ionian": "major", "major": "major",
    "min": "minor", "m": "minor", "aeolian": "minor", "minor": "minor",
    "dorian": "dorian", "phrygian": "phrygian", "lydian": "lydian",
    "mixolydian": "mixolydian", "harmonic minor": "harmonic minor",
}


@dataclass(frozen=True)
class MoodProfile:
    """Defaults a mood brings: its modes, a fitting key, tempo range and overall intensity.

    Without a key or tempo from the flags or the prompt, the seed picks the tonic (any of the
    twelve), the mode (among ``modes``) and the tempo (within ``bpm_range``); without a seed the
    mood's own ``tonic`` and ``bpm`` are used.
    """

    mode: str
    tonic: str
    bpm: float
    intensity: float
    modes: tuple[str, ...] = ()
    bpm_range: tuple[float, float] = (0.0, 0.0)


# Common film/ambient practice (see COMPOSER-NOTES.md): mode, tempo feel and energy per mood.
MOODS: dict[str, MoodProfile] = {
    "calm": MoodProfile("major", "F", 60, 0.35, ("major", "major", "lydian"), (52, 68)),
    "warm": MoodProfile("major", "D", 64, 0.45, ("major", "mixolydian"), (58, 72)),
    "hopeful": MoodProfile("major", "C", 80, 0.55, ("major",), (70, 92)),
    "dreamy": MoodProfile("lydian", "F", 58, 0.4, ("lydian", "major"), (50, 66)),
    "melancholic": MoodProfile("minor", "A", 64, 0.45, ("minor", "minor", "dorian"), (54, 74)),
    "dark": MoodProfile("minor", "D", 56, 0.5, ("minor", "phrygian"), (46, 62)),
    "tense": MoodProfile("phrygian", "E", 72, 0.65, ("phrygian", "harmonic minor"), (62, 84)),
    "mysterious": MoodProfile("harmonic minor", "B", 66, 0.5, ("harmonic minor", "dorian"), (56, 72)),
    "epic": MoodProfile("minor", "D", 90, 0.8, ("minor", "dorian"), (80, 100)),
    "playful": MoodProfile("mixolydian", "G", 108, 0.6, ("mixolydian", "major"), (96, 120)),
}
MOOD_SYNONYMS = {
    "peaceful": "calm", "serene": "calm", "relaxing": "calm", "relaxed": "calm", "gentle": "calm",
    "soft": "calm", "tranquil": "calm", "still": "calm", "quiet": "calm", "meditative": "calm",
    "cozy": "warm", "cosy": "warm", "tender": "warm", "intimate": "warm", "romantic": "warm",
    "uplifting": "hopeful", "bright": "hopeful", "optimistic": "hopeful", "inspiring": "hopeful",
    "triumphant": "epic", "heroic": "epic", "cinematic": "epic", "grand": "epic", "majestic": "epic",
    "ethereal": "dreamy", "floating": "dreamy", "hazy": "dreamy", "magical": "dreamy",
    "sad": "melancholic", "nostalgic": "melancholic", "wistful": "melancholic",
    "lonely": "melancholic", "sorrowful": "melancholic", "bittersweet": "melancholic",
    "ominous": "dark", "gloomy": "dark", "brooding": "dark", "sinister": "dark", "bleak": "dark",
    "eerie": "mysterious", "curious": "mysterious", "enigmatic": "mysterious", "haunting": "mysterious",
    "suspense": "tense", "suspenseful": "tense", "anxious": "tense", "urgent": "tense", "uneasy": "tense",
    "fun": "playful", "quirky": "playful", "whimsical": "playful", "happy": "playful",
    "cheerful": "playful", "bouncy": "playful",
}

TEXTURES: tuple[str, ...] = ("rain", "wind", "ocean", "forest", "city", "fire", "vinyl", "snow",
                             "storm", "harbour", "dripping", "insects", "crowd")
TEXTURE_WORDS = {
    "rain": "rain", "rainy": "rain", "drizzle": "rain", "downpour": "rain", "rainfall": "rain",
    "raindrops": "rain", "showers": "rain",
    "storm": "storm", "stormy": "storm", "thunder": "storm", "thunderstorm": "storm",
    "lightning": "storm", "tempest": "storm",
    "wind": "wind", "windy": "wind", "breeze": "wind", "gust": "wind", "gusts": "wind",
    "ocean": "ocean", "sea": "ocean", "waves": "ocean", "surf": "ocean", "shore": "ocean",
    "underwater": "ocean", "tide": "ocean", "beach": "ocean",
    "forest": "forest", "woods": "forest", "birds": "forest", "birdsong": "forest", "jungle": "forest",
    "city": "city", "urban": "city", "traffic": "city", "hum": "city", "street": "city",
    "fire": "fire", "fireplace": "fire", "campfire": "fire", "hearth": "fire",
    "vinyl": "vinyl", "crackle": "vinyl", "lofi": "vinyl", "lo-fi": "vinyl", "record": "vinyl",
    "snow": "snow", "snowfall": "snow", "snowy": "snow", "winter": "snow", "blizzard": "snow",
    "harbour": "harbour", "harbor": "harbour", "port": "harbour", "dock": "harbour", "docks": "harbour",
    "pier": "harbour", "quay": "harbour", "marina": "harbour", "gull": "harbour", "gulls": "harbour",
    "seagull": "harbour", "seagulls": "harbour", "boats": "harbour",
    "dripping": "dripping", "drip": "dripping", "drips": "dripping", "dripping water": "dripping",
    "cave": "dripping", "leak": "dripping", "leaking": "dripping", "droplets": "dripping",
    "insects": "insects", "insect": "insects", "crickets": "insects", "cricket": "insects",
    "cicadas": "insects", "bees": "insects", "bee": "insects", "buzzing": "insects",
    "meadow": "insects",
    "crowd": "crowd", "crowds": "crowd", "murmur": "crowd", "chatter": "crowd", "cafe": "crowd",
    "café": "crowd", "restaurant": "crowd", "market": "crowd", "people": "crowd",
}

# The composer's instruments (see engines/composer/palette.py) and families it picks within.
INSTRUMENTS: tuple[str, ...] = (
    "pad", "drone", "piano", "electric piano", "bells", "strings", "violin", "cello", "harp",
    "guitar", "pluck", "kalimba", "pizzicato", "celesta", "glockenspiel", "music box",
    "vibraphone", "marimba", "tubular bells", "flute", "clarinet", "oboe", "choir", "voices",
    "organ", "horns", "contrabass", "warm pad", "halo pad", "glass pad", "synth")
INSTRUMENT_WORDS = {
    "pad": "pad", "pads": "pad", "swell": "pad", "swelling": "pad", "swells": "pad",
    "synth": "synth", "synths": "synth", "synthesizer": "synth", "synthesiser": "synth",
    "warm pad": "warm pad", "halo pad": "halo pad", "glass pad": "glass pad", "glassy": "glass pad",
    "drone": "drone", "drones": "drone", "bass": "drone", "sub": "drone",
    "double bass": "contrabass", "contrabass": "contrabass", "upright bass": "contrabass",
    "piano": "piano", "pianos": "piano", "keys": "piano", "grand piano": "piano",
    "rhodes": "electric piano", "electric piano": "electric piano", "e-piano": "electric piano",
    "bell": "bells", "bells": "bells", "chime": "bells", "chimes": "bells",
    "tubular bells": "tubular bells",
    "glockenspiel": "glockenspiel", "glock": "glockenspiel",
    "celesta": "celesta", "celeste": "celesta", "music box": "music box", "musicbox": "music box",
    "vibraphone": "vibraphone", "vibraphones": "vibraphone", "vibes": "vibraphone",
    "marimba": "marimba", "marimbas": "marimba", "xylophone": "marimba",
    "strings": "strings", "string": "strings", "orchestral": "strings", "orchestra": "strings",
    "string section": "strings",
    "violin": "violin", "violins": "violin", "fiddle": "violin", "viola": "violin",
    "solo violin": "violin",
    "cello": "cello", "cellos": "cello", "solo cello": "cello",
    "pluck": "pluck", "plucks": "pluck", "plucked": "pluck", "plucky": "pluck",
    "harp": "harp", "harps": "harp",
    "guitar": "guitar", "guitars": "guitar", "nylon guitar": "guitar", "acoustic guitar": "guitar",
    "kalimba": "kalimba", "thumb piano": "kalimba", "mbira": "kalimba",
    "pizzicato": "pizzicato", "pizz": "pizzicato",
    "flute": "flute", "flutes": "flute", "woodwind": "flute", "woodwinds": "flute",
    "clarinet": "clarinet", "clarinets": "clarinet", "oboe": "oboe", "oboes": "oboe",
    "choir": "choir", "choral": "choir", "chorus": "choir", "choirs": "choir",
    "voice": "voices", "voices": "voices", "vocal": "voices", "vocals": "voices", "oohs": "voices",
    "humming": "voices",
    "organ": "organ", "organs": "organ", "harmonium": "organ",
    "horn": "horns", "horns": "horns", "french horn": "horns", "french horns": "horns",
    "brass": "horns", "soft brass": "horns",
}

# Words about colour: a bright bed is voiced and mixed brighter, a dark one duller.
BRIGHT_WORDS = frozenset("bright brighter airy shimmering shimmer sparkling sparkly crisp glittering "
                         "clear light luminous".split())
DARK_WORDS = frozenset("dark darker muffled murky mellow dull deep".split())

# Words a prompt may use that say what kind of cue it is, or join the others: understood,
# though they choose nothing.
UNDERSTOOD_WORDS = frozenset("""
    a an the and with of in on at by for to from into over under through some little very
    ambient ambience atmosphere atmospheric background bed beds music musical track cue cues
    score soundtrack soundscape loop loops looping seamless jingle jingles sting stings logo
    sonic intro outro theme tune melody melodic harmony layer layers texture textures tone tones
    sound sounds noise soft gentle slow distant far faint subtle light deep low high lush rich
    full sparse minimal airy warm bright dark quiet loud long short
    major minor key bpm tempo beat beats
    night evening morning dusk dawn sunset sunrise summer autumn spring day
""".split())
TEMPO_WORDS = {
    "very slow": 48, "glacial": 44, "slow": 60, "unhurried": 62, "relaxed": 70, "moderate": 88,
    "medium": 88, "walking": 96, "upbeat": 116, "lively": 118, "driving": 124, "fast": 132,
}


@dataclass(frozen=True)
class Key:
    """A tonic pitch class (0 = C) and a mode name from :data:`MODES`."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        # Db, Eb, Ab and Bb are spelt with flats (the usual spelling); F# keeps its sharp.
        names = FLAT_NAMES if self.tonic in (1, 3, 8, 10) else SHARP_NAMES
        return f"{names[self.tonic]} {self.mode}"

    @property
    def scale(self) -> tuple[int, ...]:
        """Pitch classes of the scale, tonic first."""
        return tuple((self.tonic + step) % 12 for step in MODES[self.mode])

    @property
    def is_minor(self) -> bool:
        """True when the third above the tonic is minor (minor, dorian, phrygian, harmonic minor)."""
        return MODES[self.mode][2] == 3


@dataclass(frozen=True)
class IntensityCurve:
    """Piecewise-linear intensity over time: ``((seconds, level), ...)`` with levels in 0..1."""

    points: tuple[tuple[float, float], ...]

    def at(self, seconds):
        """Intensity at the given time(s); held flat before the first and after the last point."""
        import numpy as np

        times = [p[0] for p in self.points]
        levels = [p[1] for p in self.points]
        return np.interp(seconds, times, levels)

    def __str__(self) -> str:
        return ",".join(f"{t:g}:{v:g}" for t, v in self.points)


@dataclass(frozen=True)
class MusicalIntent:
    """The musical reading of a prompt plus explicit controls, as the engines consume it.

    ``sources`` says for each of key, bpm, mood and intensity whether it came from a flag,
    the prompt, or the mood's default, so that the printed intent explains itself.
    """

    mood: str
    key: Key
    bpm: float
    intensity: IntensityCurve
    textures: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    colour: float = 0.0  # -1 dark .. 1 bright, from the prompt's colour words

    def describe(self) -> dict:
        """A JSON-ready description (for the summary, sidecar and ledger)."""
        return {
            "mood": self.mood,
            "key": self.key.name,
            "bpm": self.bpm,
            "intensity": str(self.intensity),
            "textures": list(self.textures),
            "instruments": list(self.instruments),
            "sources": dict(self.sources),
            "colour": self.colour,
            "unknown_words": list(self.unknown),
        }


@dataclass(frozen=True)
class CueSpec:
    """Everything an engine needs to render one cue, already validated.

    ``params`` holds engine-specific settings (top_k, temperature... for musicgen) and is
    recorded with the output. ``production``, ``episode``, ``cue_id`` and the cue-sheet facts
    ``cue`` are set by batches and go to the ledger; engines ignore them.
    ``allow_unknown_lineage`` lets a model of unknown lineage render (``--allow-unknown-lineage``).
    """

    prompt: str
    kind: Kind
    duration: float
    seed: int
    intent: MusicalIntent
    loop: bool = False
    motif: tuple[int, ...] | None = None
    variant: int = 0
    engine: str = "composer"
    model: str | None = None
    params: dict = field(default_factory=dict)
    production: str | None = None
    episode: str | None = None
    cue_id: str | None = None
    cue: CueFacts | None = None
    allow_unknown_lineage: bool = False

    def describe(self) -> dict:
        """All parameters as JSON-ready data (the sidecar's and the ledger's ``parameters``).

        The cue facts and the unknown-lineage flag are recorded inside ``params`` (as
        ``params.cue`` and ``params.allow_unknown_lineage``), where sidecars have always had them.
        """
        data = asdict(self)
        del data["cue"], data["allow_unknown_lineage"]
        if self.allow_unknown_lineage:
            data["params"]["allow_unknown_lineage"] = True
        if self.cue is not None:
            data["params"][CUE_PARAMS_KEY] = self.cue.to_params()
        data["intent"] = self.intent.describe()
        data["motif"] = [midi_to_name(n) for n in self.motif] if self.motif else None
        return data


# --- parsing -------------------------------------------------------------------------------

_NOTE_RE = re.compile(r"^([A-Ga-g])([#b]?)(-?\d)$")
_TONIC_RE = r"([A-Ga-g])(#|b|♯|♭|-sharp|-flat| sharp| flat)?"


def _tonic_pc(letter: str, accidental: str | None) -> int:
    pc = PITCH_CLASSES[letter.upper()]
    if accidental and ("#" in accidental or "♯" in accidental or "sharp" in accidental):
        pc += 1
    elif accidental and accidental.strip() in ("b", "♭", "-flat", "flat"):
        pc -= 1
    return pc % 12


def parse_key(text: str) -> Key:
    """Parse "D minor", "F# major", "Bb dorian", "Am" or "C" (major) into a :class:`Key`."""
    raw = text.strip()
    m = re.fullmatch(_TONIC_RE + r"\s*(.*)", raw)
    if not m:
        raise ParameterError(f"unknown key {text!r}: expected a tonic A-G with optional # or b, "
                             f"then a mode, e.g. 'D minor' or 'F# major'")
    letter, accidental, mode_text = m.group(1), m.group(2), m.group(3).strip().lower()
    if letter.islower() and not mode_text:
        mode_text = "minor"  # lower-case tonic alone ("d") is the usual shorthand for minor
    mode = MODE_ALIASES.get(mode_text or "major")
    if mode is None:
        raise ParameterError(f"unknown key {text!r}: mode {mode_text!r} is not one of "
                             f"{', '.join(MODES)}")
    return Key(_tonic_pc(letter, accidental), mode)


def note_to_midi(text: str) -> int:
    """Scientific pitch name to MIDI number: "C4" -> 60, "F#5" -> 78, "Bb3" -> 58."""
    m = _NOTE_RE.match(text.strip())
    if not m:
        raise ParameterError(f"malformed note {text!r}: expected a name such as C5, F#4 or Bb3")
    letter, accidental, octave = m.groups()
    midi = 12 * (int(octave) + 1) + PITCH_CLASSES[letter.upper()]
    midi += 1 if accidental == "#" else -1 if accidental == "b" else 0
    if not 21 <= midi <= 108:
        raise ParameterError(f"note {text!r} is outside the piano range A0-C8")
    return midi


def midi_to_name(midi: int) -> str:
    return f"{SHARP_NAMES[midi % 12]}{midi // 12 - 1}"


def parse_motif(text: str) -> tuple[int, ...]:
    """A motif of 2-8 notes separated by spaces or commas: "C5 E5 G5 C6"."""
    notes = [n for n in re.split(r"[\s,]+", text.strip()) if n]
    if not 2 <= len(notes) <= 8:
        raise ParameterError(f"malformed motif {text!r}: give 2 to 8 notes, e.g. 'C5 E5 G5 C6'")
    return tuple(note_to_midi(n) for n in notes)


def parse_intensity(text: str) -> IntensityCurve:
    """Parse "0:0.3,60:0.8,120:0.4" (seconds:level, times increasing, levels 0..1)."""
    points: list[tuple[float, float]] = []
    for part in [p for p in text.replace(" ", "").split(",") if p]:
        try:
            t_text, v_text = part.split(":")
            t, v = float(t_text), float(v_text)
            if not (math.isfinite(t) and math.isfinite(v)):
                raise ValueError
        except ValueError:
            raise ParameterError(f"malformed intensity curve {text!r}: expected seconds:level "
                                 f"pairs such as '0:0.3,60:0.8'") from None
        if t < 0 or not 0.0 <= v <= 1.0:
            raise ParameterError(f"malformed intensity curve {text!r}: times must be >= 0 and "
                                 f"levels between 0 and 1")
        if points and t <= points[-1][0]:
            raise ParameterError(f"malformed intensity curve {text!r}: times must increase")
        points.append((t, v))
    if not points:
        raise ParameterError(f"malformed intensity curve {text!r}: no points")
    return IntensityCurve(tuple(points))


def parse_mood(text: str) -> str:
    word = text.strip().lower()
    mood = word if word in MOODS else MOOD_SYNONYMS.get(word)
    if mood is None:
        raise ParameterError(f"unknown mood {text!r}: choose one of {', '.join(MOODS)}")
    return mood


def check_duration(kind: str, duration: float) -> float:
    if kind not in DURATION_LIMITS:
        raise ParameterError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")
    low, high = DURATION_LIMITS[kind]
    if not (math.isfinite(duration) and low <= duration <= high):
        raise ParameterError(f"duration {duration!r} s is out of range for a {kind}: "
                             f"{low:g} to {high:g} s")
    return float(duration)


def check_bpm(bpm: float) -> float:
    if not BPM_LIMITS[0] <= bpm <= BPM_LIMITS[1]:
        raise ParameterError(f"bpm {bpm:g} is out of range: {BPM_LIMITS[0]:g} to {BPM_LIMITS[1]:g}")
    return float(bpm)


def _words(prompt: str) -> str:
    return " " + re.sub(r"[^a-z0-9#\- ]+", " ", prompt.lower()) + " "


def read_prompt(prompt: str) -> dict:
    """What the prompt itself says: mood, key, bpm, textures and instruments (each may be
    None/empty), and ``unknown``: the words the vocabulary does not know, in prompt order."""
    text = _words(prompt)
    found: dict = {"mood": None, "key": None, "bpm": None, "textures": [], "instruments": [],
                   "unknown": [], "colour": 0.0}
    known_spans: list[tuple[int, int]] = []
    # Moods: first mention wins (the prompt's leading adjective is usually its main colour).
    positions = []
    for word, mood in [(m, m) for m in MOODS] + list(MOOD_SYNONYMS.items()):
        idx = text.find(f" {word} ")
        if idx >= 0:
            positions.append((idx, mood))
            known_spans.append((idx + 1, idx + 1 + len(word)))
    if positions:
        found["mood"] = min(positions)[1]
    for table, slot in ((TEXTURE_WORDS, "textures"), (INSTRUMENT_WORDS, "instruments")):
        # Longest phrases first, so "dripping water" is one texture and "music box" one instrument.
        hits = []
        for w, v in sorted(table.items(), key=lambda kv: -len(kv[0])):
            start = text.find(f" {w} ")
            while start >= 0:
                span = (start + 1, start + 1 + len(w))
                if not any(a < span[1] and span[0] < b for a, b in known_spans):
                    known_spans.append(span)
                    hits.append((start, v))
                start = text.find(f" {w} ", start + 1)
        for _, value in sorted(hits):
            if value not in found[slot]:
                found[slot].append(value)
    m = re.search(r"(\d{2,3})\s*bpm", text)
    if m:
        found["bpm"] = float(m.group(1))
        known_spans.append((m.start(), m.end()))
    else:
        tempo_hits = sorted((text.find(f" {w} "), -len(w), bpm, w) for w, bpm in TEMPO_WORDS.items()
                            if f" {w} " in text)
        if tempo_hits:
            found["bpm"] = float(tempo_hits[0][2])
        for idx, _, _, w in tempo_hits:
            known_spans.append((idx + 1, idx + 1 + len(w)))
    # Keys in prose: "in D minor", "F# major", "Bb dorian" (the tonic must be followed by a mode).
    mode_words = "|".join(sorted((re.escape(m) for m in MODE_ALIASES if len(m) > 2), key=len,
                                 reverse=True))
    m = re.search(rf"(?<![a-z])([a-g])(#|b)?[ -]({mode_words})(?![a-z])", text)
    if m:
        found["key"] = parse_key(f"{m.group(1).upper()}{m.group(2) or ''} {m.group(3)}")
        known_spans.append((m.start(), m.end()))
    words = set(text.split())
    found["colour"] = float(max(-1, min(1, len(words & BRIGHT_WORDS) - len(words & DARK_WORDS))))
    for match in re.finditer(r"[a-z][a-z'\-]*", text):
        word = match.group(0)
        inside = any(a <= match.start() and match.end() <= b for a, b in known_spans)
        if not inside and word not in UNDERSTOOD_WORDS and word not in MODE_ALIASES \
                and word not in found["unknown"]:
            found["unknown"].append(word)
    return found


def resolve_intent(prompt: str, *, key: str | None = None, bpm: float | None = None,
                   mood: str | None = None, intensity: str | None = None,
                   kind: str = "bed", seed: int | None = None) -> MusicalIntent:
    """Read the prompt, then let explicit controls win; fill the rest from the mood.

    With a ``seed``, what neither the flags nor the prompt fix is the seed's choice within the
    mood's character: the tonic, the mode among the mood's modes, and the tempo within its
    range (``sources`` then says "seed"). Without one, the mood's own key and tempo are used.
    """
    heard = read_prompt(prompt)
    sources: dict[str, str] = {}
    if mood is not None:
        mood_name, sources["mood"] = parse_mood(mood), "flag"
    elif heard["mood"]:
        mood_name, sources["mood"] = heard["mood"], "prompt"
    else:
        mood_name, sources["mood"] = ("hopeful" if kind != "bed" else "calm"), "default"
    profile = MOODS[mood_name]
    chooser = _seed_choices(seed) if seed is not None else None
    if key is not None:
        key_obj, sources["key"] = parse_key(key), "flag"
    elif heard["key"] is not None:
        key_obj, sources["key"] = heard["key"], "prompt"
    elif chooser is not None:
        modes = profile.modes or (profile.mode,)
        key_obj = Key(int(chooser.integers(12)), modes[int(chooser.integers(len(modes)))])
        sources["key"] = "seed"
    else:
        key_obj, sources["key"] = parse_key(f"{profile.tonic} {profile.mode}"), "mood"
    if bpm is not None:
        bpm_value, sources["bpm"] = check_bpm(float(bpm)), "flag"
    elif heard["bpm"] is not None:
        bpm_value, sources["bpm"] = check_bpm(heard["bpm"]), "prompt"
    elif chooser is not None and profile.bpm_range[1] > 0:
        low, high = profile.bpm_range
        if kind != "bed":
            low, high = max(low, 84.0), max(high, 96.0)  # a jingle needs a pulse you can feel
        bpm_value, sources["bpm"] = float(round(chooser.uniform(low, high))), "seed"
    else:
        bpm_value, sources["bpm"] = float(profile.bpm if kind == "bed" else max(profile.bpm, 84)), "mood"
    if intensity is not None:
        curve, sources["intensity"] = parse_intensity(intensity), "flag"
    else:
        curve, sources["intensity"] = IntensityCurve(((0.0, profile.intensity),)), "mood"
    return MusicalIntent(mood=mood_name, key=key_obj, bpm=bpm_value, intensity=curve,
                         textures=tuple(heard["textures"]), instruments=tuple(heard["instruments"]),
                         sources=sources, unknown=tuple(heard["unknown"]), colour=heard["colour"])


def _seed_choices(seed: int):
    """The seed's own stream for the intent's choices (apart from every rendering stream)."""
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence([seed, 4241]))


# --- making a spec from user input -------------------------------------------------------------

DEFAULT_DURATIONS = {"bed": 60.0, "jingle": 8.0, "sting": 4.0}
MAX_VARIANTS = 12


def make_spec(prompt: str, *, kind: str = "bed", duration: float | None = None,
              seed: int | None = None, key: str | None = None, bpm: float | None = None,
              mood: str | None = None, intensity: str | None = None, motif: str | None = None,
              loop: bool = False, variant: int = 0, engine: str = "composer",
              model: str | None = None, params: dict | None = None,
              production: str | None = None, episode: str | None = None,
              cue_id: str | None = None, cue: CueFacts | None = None,
              allow_unknown_lineage: bool = False) -> CueSpec:
    """Validate user input into a :class:`CueSpec` (every mistake is a ParameterError).

    A missing seed is drawn fresh (and recorded, so the cue can be made again).
    """
    if not prompt or not prompt.strip():
        raise ParameterError("the prompt is empty: describe the music, e.g. 'calm pad with rain'")
    check_length(prompt.strip(), "the prompt", MAX_PROMPT_CHARS)
    for value, what in ((production, "the production title"), (episode, "the episode"),
                        (cue_id, "the cue id")):
        check_length(value, what, MAX_TITLE_CHARS)
    if kind not in KINDS:
        raise ParameterError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")
    duration = check_duration(kind, DEFAULT_DURATIONS[kind] if duration is None else duration)
    if loop and kind != "bed":
        raise ParameterError("--loop applies to beds only; jingles and stings have an ending")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    if not 0 <= seed < 2**63:
        raise ParameterError(f"seed {seed} is out of range: 0 to 2**63-1")
    intent = resolve_intent(prompt, key=key, bpm=bpm, mood=mood, intensity=intensity, kind=kind,
                            seed=seed)
    return CueSpec(prompt=prompt.strip(), kind=kind, duration=duration, seed=seed, intent=intent,
                   loop=loop, motif=parse_motif(motif) if motif is not None else None,
                   variant=variant, engine=engine, model=model, params=dict(params or {}),
                   production=production, episode=episode, cue_id=cue_id, cue=cue,
                   allow_unknown_lineage=allow_unknown_lineage)
