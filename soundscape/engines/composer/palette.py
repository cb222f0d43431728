"""The composer's instruments: what each is called, where its sampled preset lives, how it plays.

Every instrument names General MIDI presets in order of preference (``(bank id, MIDI bank,
program)``; both Debian banks follow the General MIDI layout), the register it plays in, whether
it sustains or rings out, and the built-in synth voice that stands in when no bank has it.
Moods choose their ensembles from :data:`MOOD_PALETTES`, and the seed picks within them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MS, FL = "musescore-general", "fluid-r3-gm"


@dataclass(frozen=True)
class Instrument:
    """One instrument of the composer's orchestra.

    Args:
        name: the instrument's name in the prompt vocabulary and in lineage.
        presets: ``(bank id, MIDI bank, program)`` candidates; the first installed one plays.
        low, high: the MIDI range it is written in.
        sustained: a held voice (drifts as players do) rather than a struck or plucked one.
        synth: the built-in voice used when no bank has a preset (see ``synth.py``).
        level: a trim in dB applied after levels are evened out (a harp is heard as a colour,
            a pad as a bed).
        velocity: the velocity range it is usually played at (brightness follows velocity).
        pedal: whether a sustain pedal joins its phrases (piano-like).
    """

    name: str
    presets: tuple[tuple[str, int, int], ...]
    low: int
    high: int
    sustained: bool
    synth: str
    level: float = 0.0
    velocity: tuple[int, int] = (60, 100)
    pedal: bool = False


def _gm(program: int, *, bank: int = 0, ms_bank: int | None = None,
        fluid_first: bool = False) -> tuple[tuple[str, int, int], ...]:
    """MuseScore_General first (VSCO strings, its mono remakes), then Fluid R3; or Fluid R3
    first where its samples are measurably brighter at the velocities beds use (piano 3.7 %
    of its energy in 2-8 kHz against 0.4 %, cello 12.9 % against 1.8 %, music box, guitar,
    clarinet, vibraphone)."""
    ms, fl = (MS, bank if ms_bank is None else ms_bank, program), (FL, bank, program)
    return (fl, ms) if fluid_first else (ms, fl)


INSTRUMENTS: dict[str, Instrument] = {i.name: i for i in (
    Instrument("piano", _gm(0, fluid_first=True), 36, 96, False, "piano", velocity=(50, 96), pedal=True),
    Instrument("electric piano", _gm(4), 40, 88, False, "piano", velocity=(50, 96), pedal=True),
    Instrument("harp", _gm(46), 36, 96, False, "pluck", level=1.0, velocity=(55, 105)),
    Instrument("guitar", _gm(24, fluid_first=True), 40, 84, False, "pluck", velocity=(55, 100)),
    Instrument("kalimba", _gm(108), 60, 96, False, "bells", level=-1.0, velocity=(60, 100)),
    Instrument("pizzicato", _gm(45), 43, 88, False, "pluck", velocity=(60, 105)),
    Instrument("celesta", _gm(8), 60, 103, False, "bells", level=-2.0, velocity=(60, 100)),
    Instrument("glockenspiel", _gm(9), 72, 103, False, "bells", level=-6.0, velocity=(55, 95)),
    Instrument("music box", _gm(10, fluid_first=True), 64, 100, False, "bells", level=-4.0, velocity=(60, 100)),
    Instrument("vibraphone", _gm(11, fluid_first=True), 53, 89, False, "bells", level=-1.0, velocity=(55, 100)),
    Instrument("marimba", _gm(12), 45, 91, False, "marimba", velocity=(60, 105)),
    Instrument("tubular bells", _gm(14), 60, 79, False, "bells", level=-5.0, velocity=(55, 95)),
    Instrument("strings", _gm(49), 36, 91, True, "strings", velocity=(55, 100)),
    Instrument("violin", _gm(40, ms_bank=8), 55, 96, True, "strings", level=-1.0),
    Instrument("cello", _gm(42, fluid_first=True), 36, 76, True, "strings"),
    Instrument("choir", _gm(52), 48, 79, True, "pad", level=-1.0),
    Instrument("voices", _gm(53), 48, 79, True, "pad", level=-1.0),
    Instrument("flute", _gm(73), 60, 96, True, "pad", level=-2.0, velocity=(55, 95)),
    Instrument("clarinet", _gm(71, fluid_first=True), 50, 89, True, "pad", level=-2.0, velocity=(55, 95)),
    Instrument("oboe", _gm(68), 58, 91, True, "pad", level=-3.0, velocity=(55, 95)),
    Instrument("horns", _gm(60), 41, 77, True, "strings", level=-2.0, velocity=(50, 95)),
    Instrument("organ", _gm(20), 36, 84, True, "pad", level=-3.0),
    # MuseScore_General's Warm Pad dies away after about 10 s of holding; Fluid R3's holds.
    Instrument("warm pad", _gm(89, fluid_first=True), 36, 84, True, "pad"),
    Instrument("halo pad", _gm(94), 40, 84, True, "pad"),
    Instrument("glass pad", _gm(92), 43, 88, True, "pad", level=-1.0),
    Instrument("space pad", _gm(91), 40, 84, True, "pad", level=-1.0),
    # The drone's body is sampled strings and pads in their lowest octave; its fundamental is
    # placed by absolute pitch (40-80 Hz), never by the tonic's octave.
    Instrument("drone", _gm(89, fluid_first=True), 24, 52, True, "drone", velocity=(70, 95)),
    Instrument("contrabass", _gm(43), 24, 52, True, "drone", velocity=(65, 95)),
    Instrument("timpani", _gm(47), 36, 60, False, "piano", velocity=(60, 110)),
    # The General MIDI drum kit (bank 128): notes are percussion keys, not pitches.
    Instrument("percussion", ((MS, 128, 0), (FL, 128, 0)), 27, 87, False, "percussion",
               velocity=(50, 110)),
)}
PERCUSSION = "percussion"

# Generic words of the prompt that name a family: the seed picks the member.
FAMILIES: dict[str, tuple[str, ...]] = {
    "pad": ("warm pad", "halo pad", "glass pad", "space pad", "strings", "voices"),
    "pluck": ("harp", "guitar", "kalimba", "pizzicato"),
    "bells": ("celesta", "glockenspiel", "music box", "vibraphone", "tubular bells"),
    "synth": ("warm pad", "halo pad", "glass pad", "space pad"),
    "brass": ("horns",),
}

ROLES = ("bass", "pad", "pad2", "melody", "arp", "shimmer", "swell")


@dataclass(frozen=True)
class Palette:
    """Instruments a mood draws on for each role, with weights."""

    pad: dict[str, float]
    melody: dict[str, float]
    arp: dict[str, float]
    shimmer: dict[str, float]
    swell: dict[str, float]
    bass: dict[str, float]


def _p(**roles: dict[str, float]) -> Palette:
    # The drone carries every bed's low end unless the prompt asks for a double bass: the
    # contrabass samples' fundamental comes and goes with the key (measured under 100 Hz: 1 %
    # of a bed's energy in A minor, 15 % in C), the drone's holds steady (7-12 %).
    base = {"bass": {"drone": 1.0}, "swell": {"horns": 1.0},
            "shimmer": {"celesta": 0.4, "glockenspiel": 0.35, "music box": 0.25}}
    base.update(roles)
    return Palette(**base)


MOOD_PALETTES: dict[str, Palette] = {
    "calm": _p(pad={"strings": .3, "warm pad": .25, "voices": .2, "halo pad": .15, "organ": .1},
               melody={"piano": .35, "harp": .15, "vibraphone": .12, "guitar": .12, "celesta": .1,
                       "flute": .08, "kalimba": .08},
               arp={"harp": .35, "guitar": .25, "piano": .25, "kalimba": .15}),
    "warm": _p(pad={"strings": .4, "horns": .2, "voices": .2, "warm pad": .2},
               melody={"piano": .3, "guitar": .2, "cello": .15, "clarinet": .15, "vibraphone": .1,
                       "electric piano": .1},
               arp={"guitar": .4, "harp": .3, "piano": .3}),
    "hopeful": _p(pad={"strings": .45, "choir": .2, "horns": .2, "warm pad": .15},
                  melody={"piano": .3, "flute": .2, "violin": .15, "celesta": .15, "glockenspiel": .1,
                          "harp": .1},
                  arp={"harp": .3, "guitar": .25, "piano": .25, "marimba": .2}),
    "dreamy": _p(pad={"halo pad": .25, "glass pad": .2, "voices": .2, "space pad": .15, "strings": .2},
                 melody={"celesta": .25, "music box": .15, "vibraphone": .2, "harp": .2, "kalimba": .1,
                         "piano": .1},
                 arp={"harp": .45, "celesta": .25, "kalimba": .3}),
    "melancholic": _p(pad={"strings": .5, "choir": .2, "organ": .15, "warm pad": .15},
                      melody={"piano": .4, "cello": .2, "violin": .15, "clarinet": .15, "oboe": .1},
                      arp={"harp": .35, "guitar": .3, "piano": .35}),
    "dark": _p(pad={"strings": .35, "choir": .25, "glass pad": .15, "organ": .1, "horns": .15},
               melody={"cello": .3, "piano": .3, "clarinet": .2, "vibraphone": .2},
               arp={"pizzicato": .35, "harp": .35, "piano": .3}),
    "tense": _p(pad={"strings": .4, "glass pad": .2, "choir": .2, "space pad": .2},
                melody={"piano": .3, "marimba": .2, "vibraphone": .25, "cello": .25},
                arp={"pizzicato": .4, "marimba": .3, "piano": .3}),
    "mysterious": _p(pad={"voices": .3, "glass pad": .25, "halo pad": .2, "strings": .25},
                     melody={"celesta": .3, "vibraphone": .3, "harp": .2, "flute": .2},
                     arp={"harp": .4, "celesta": .3, "marimba": .3}),
    "epic": _p(pad={"strings": .5, "choir": .3, "horns": .2},
               melody={"horns": .35, "violin": .25, "piano": .2, "cello": .2},
               arp={"harp": .3, "piano": .3, "pizzicato": .4},
               shimmer={"glockenspiel": .5, "celesta": .3, "tubular bells": .2}),
    "playful": _p(pad={"strings": .4, "warm pad": .3, "electric piano": .0001, "voices": .3},
                  melody={"marimba": .3, "glockenspiel": .15, "kalimba": .2, "pizzicato": .15,
                          "flute": .1, "clarinet": .1},
                  arp={"marimba": .35, "pizzicato": .3, "guitar": .2, "kalimba": .15},
                  shimmer={"glockenspiel": .5, "celesta": .5}),
}


# Instruments whose samples carry presence (measured share of 2-8 kHz in their notes above
# 2 %), and dull ones (under 0.5 %): a bright prompt leans on the first, a dark one the second.
BRIGHT = frozenset({"glockenspiel", "music box", "celesta", "tubular bells", "violin", "clarinet",
                    "cello", "glass pad", "strings", "kalimba", "pizzicato", "organ", "oboe",
                    "piano"})
DULL = frozenset({"warm pad", "voices", "horns", "marimba", "vibraphone", "electric piano",
                  "halo pad", "space pad", "flute"})


def choose(weights: dict[str, float], rng: np.random.Generator, *,
           exclude: tuple[str, ...] = (), colour: float = 0.0) -> str:
    """One instrument of a role by weight (names in ``exclude`` are passed over); a bright
    ``colour`` (> 0) makes dull instruments four times less likely, a dark one bright ones."""
    names = [n for n in weights if n not in exclude] or list(weights)
    lean = DULL if colour > 0 else BRIGHT if colour < 0 else frozenset()
    p = np.array([weights[n] * (0.25 if n in lean else 1.0) for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def resolve_family(name: str, rng: np.random.Generator) -> str:
    """A prompt's instrument word as an instrument: a family word becomes one of its members."""
    if name in INSTRUMENTS:
        return name
    members = FAMILIES.get(name)
    if not members:
        raise KeyError(name)
    return members[int(rng.integers(len(members)))]
