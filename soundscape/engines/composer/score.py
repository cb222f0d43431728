"""The score: what the composer decided to play, before any sound is made.

A :class:`Score` is parts of notes plus slow control curves. The arranger (beds) and the jingle
writer produce one; a player (sampled instruments through FluidSynth, or the built-in synth
voices) turns each part into a stereo stem, and the mixer turns the stems into the render.
Times are seconds from the start of the render; curves are sampled at :data:`CONTROL_RATE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CONTROL_RATE = 50  # Hz: levels, brightness and intensity are planned at this rate


@dataclass(frozen=True)
class Note:
    """One note: struck at ``start``, released at ``end`` (seconds), at a MIDI velocity 1-127.

    ``pan`` (-1 left .. 1 right) places a sustained note of its own; struck parts spread their
    notes over a few fixed positions instead (see the players).
    """

    start: float
    end: float
    midi: int
    velocity: int
    pan: float = 0.0


@dataclass
class Curve:
    """A control signal: one value per control step from time 0 (held after its end)."""

    values: np.ndarray

    @classmethod
    def constant(cls, value: float, seconds: float) -> "Curve":
        return cls(np.full(int(np.ceil(seconds * CONTROL_RATE)) + 2, value, dtype=np.float32))

    def at(self, seconds: float) -> float:
        i = min(max(int(seconds * CONTROL_RATE), 0), self.values.size - 1)
        return float(self.values[i])

    def window(self, start: int, n: int, sample_rate: int) -> np.ndarray:
        """The curve over samples ``start .. start + n``, linearly interpolated (float32)."""
        hop = sample_rate / CONTROL_RATE
        t = (start + np.arange(n, dtype=np.float64)) / hop
        k = np.arange(self.values.size, dtype=np.float64)
        return np.interp(t, k, self.values).astype(np.float32)


@dataclass
class Part:
    """One player's line.

    Args:
        name: unique in its score ("pad", "bass", "melody" ...), the stem's name.
        instrument: an instrument of :data:`soundscape.engines.composer.palette.INSTRUMENTS`.
        sustained: held voices (pads, strings, choir, drones): each note drifts in pitch and
            colour on its own, as players do; struck and plucked parts ring out instead.
        level: linear gain of the stem after the instrument's own level is evened out.
        pan: the part's place (-1 .. 1); ``width`` spreads struck notes around it.
        reverb: how much of the stem goes to the room (0 .. 1).
        mono: fold the stem to mono (bass and drones, so the low end is centred).
        expression: the dynamics curve (0 .. 1, multiplied into the stem as a level in dB).
        brightness: the colour curve (0 dark .. 1 open), the instrument's filter.
        pedal: sustain-pedal spans (down, up) in seconds, for piano-like parts.
        low_end: level the part by its energy under 160 Hz rather than in full (the bass: a
            drone and a contrabass then weigh the same in the low end, whatever their timbre).
    """

    name: str
    instrument: str
    notes: list[Note]
    sustained: bool = False
    level: float = 1.0
    pan: float = 0.0
    width: float = 0.0
    reverb: float = 0.3
    mono: bool = False
    expression: Curve | None = None
    brightness: Curve | None = None
    pedal: list[tuple[float, float]] = field(default_factory=list)
    low_end: bool = False

    def sorted_notes(self) -> list[Note]:
        return sorted(self.notes, key=lambda n: (n.start, n.midi))


@dataclass
class Score:
    """Everything to be played, over ``seconds`` (tails may ring a little past it)."""

    parts: list[Part]
    seconds: float
    seed: int
    envelope: "Curve | None" = None  # the form's swell and close, a linear gain on every part
    colour: float = 0.0               # -1 dark .. 1 bright: the mix's presence and air

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)


def control_window(values: np.ndarray, start: int, n: int, hop: int) -> np.ndarray:
    """Control values (one per ``hop`` samples) linearly interpolated over samples
    ``start .. start + n`` (float32; held flat past the last value)."""
    k0 = start // hop
    k1 = (start + n) // hop + 2
    idx = np.minimum(np.arange(k0, k1 + 1), values.size - 1)
    v = values[idx].astype(np.float32)
    ramp = (np.arange(hop, dtype=np.float32) / hop)[None, :]
    full = (v[:-1, None] + (v[1:] - v[:-1])[:, None] * ramp).ravel()
    offset = start - k0 * hop
    return full[offset:offset + n]


def expression_gain(values: np.ndarray, *, floor_db: float = -18.0) -> np.ndarray:
    """Expression 0..1 as a linear gain: 1 is full level, 0 is ``floor_db`` (a quiet player is
    still heard), in between even steps in dB."""
    values = np.clip(values, 0.0, 1.0)
    return (10.0 ** (floor_db * (1.0 - values) / 20.0)).astype(np.float32)
