"""The composer's own voices and control signals: what plays when no sound bank is installed.

Timbres of the held voices (read by ``players.SynthPlayer`` into band-limited wavetables),
struck and plucked notes made of decaying partials, and the seeded slow walks that move levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 48_000
# Highest partial any voice may carry: well under Nyquist, and above it little is audible in a bed.
MAX_PARTIAL_HZ = 14_000.0
A4_MIDI, A4_HZ = 69, 440.0  # ISO 16 concert pitch


def midi_to_hz(midi: float) -> float:
    return A4_HZ * 2.0 ** ((midi - A4_MIDI) / 12.0)


def lowpass_gain(freqs: np.ndarray, cutoff: float, *, order: int = 2) -> np.ndarray:
    """Magnitude of a Butterworth low-pass of the given order at ``freqs``."""
    return 1.0 / np.sqrt(1.0 + (np.asarray(freqs) / cutoff) ** (2 * order))


@dataclass(frozen=True)
class Timbre:
    """A sustained voice's recipe: partial roll-off, detuned copies, dark and bright cut-offs."""

    name: str
    slope: float          # partial h has amplitude h**-slope (1 = saw-like, 2 = soft)
    odd_only: bool        # square/triangle-like colours
    detune_cents: float   # spread of the detuned copies
    copies: int           # detuned oscillators per channel
    dark_hz: float        # cut-off of the dark version (relative to 1 kHz at middle C)
    bright_hz: float      # cut-off of the bright version
    track: float          # how much the cut-offs follow the pitch (0 = fixed, 1 = proportional)


PAD = Timbre("pad", 1.0, False, 9.0, 3, 700.0, 3200.0, 0.3)
STRINGS = Timbre("strings", 1.1, False, 6.0, 4, 1100.0, 4500.0, 0.5)
DRONE = Timbre("drone", 2.0, False, 4.0, 2, 350.0, 1200.0, 0.2)




def raised_cosine(x: np.ndarray) -> np.ndarray:
    """0 -> 1 smooth ramp over x in 0..1 (clipped outside)."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.float32(0.5) - np.float32(0.5) * np.cos(np.float32(np.pi) * x)



def slow_walk(rng: np.random.Generator, n: int, *, step_seconds: float, control_rate: float,
              timescale: float, low: float, high: float, periodic: bool = False) -> np.ndarray:
    """A seeded, mean-reverting random walk between ``low`` and ``high`` at the control rate.

    Knots every ``step_seconds`` follow an Ornstein-Uhlenbeck process with the given timescale
    (seconds); they are joined by cosine interpolation so the control has no corners.
    ``periodic`` bends the walk so that it ends where it began (looping beds).
    """
    knots = max(2, int(np.ceil(n / control_rate / step_seconds)) + 2)
    a = float(np.exp(-step_seconds / timescale))
    noise = rng.standard_normal(knots) * np.sqrt(1 - a * a)
    x = np.empty(knots)
    x[0] = rng.standard_normal()
    for i in range(1, knots):  # a few thousand knots at most, even for 3 hours
        x[i] = a * x[i - 1] + noise[i]
    t = np.arange(n) / control_rate
    idx = np.minimum((t / step_seconds).astype(int), knots - 2)
    frac = raised_cosine(t / step_seconds - idx)
    walk = x[idx] + (x[idx + 1] - x[idx]) * frac
    if periodic and n > 1:
        walk = walk - (walk[-1] - walk[0]) * (t / t[-1])
    # Map roughly +-2 sigma onto the range with a soft clip.
    return (low + (high - low) * (0.5 + 0.5 * np.tanh(walk / 1.5))).astype(np.float32)


# --- struck and plucked notes ---------------------------------------------------------------

# Partial ratios and relative decay rates of the struck voices (bell ratios after a tuned bar /
# church bell: hum, prime, tierce, quint, nominal approximations).
STRUCK = {
    "bells": dict(ratios=(1.0, 2.0, 2.76, 4.07, 5.4, 8.93), amps=(1.0, 0.55, 0.35, 0.2, 0.12, 0.06),
                  decay=3.2, decay_tilt=0.55, attack=0.002),
    "piano": dict(ratios=tuple(h * np.sqrt(1 + 0.0004 * h * h) for h in range(1, 9)),
                  amps=(1.0, 0.6, 0.3, 0.22, 0.12, 0.08, 0.05, 0.03), decay=2.6, decay_tilt=0.7,
                  attack=0.004),
    "pluck": dict(ratios=tuple(float(h) for h in range(1, 11)),
                  amps=tuple(1.0 / h ** 1.2 for h in range(1, 11)), decay=0.9, decay_tilt=1.0,
                  attack=0.002),
    "marimba": dict(ratios=(1.0, 3.93, 9.24), amps=(1.0, 0.25, 0.06), decay=0.7, decay_tilt=1.3,
                    attack=0.002),
}


def struck_note(midi: float, voice: str, *, seconds: float, rng: np.random.Generator | None = None,
                sample_rate: int = SAMPLE_RATE, brightness: float = 1.0) -> np.ndarray:
    """A mono struck/plucked note: partials with exponential decays (upper ones die faster)."""
    spec = STRUCK[voice]
    n = int(seconds * sample_rate)
    t = np.arange(n, dtype=np.float32) / sample_rate
    f0 = midi_to_hz(midi)
    out = np.zeros(n, dtype=np.float32)
    for i, (r, a) in enumerate(zip(spec["ratios"], spec["amps"])):
        f = f0 * r
        if f > 0.4 * sample_rate:
            break
        tau = spec["decay"] / (r ** spec["decay_tilt"]) * (440.0 / max(f0, 110.0)) ** 0.3
        phase = 0.0 if rng is None else float(rng.random() * 2 * np.pi)
        amp = a * (brightness ** i)
        out += (amp * np.exp(-t / tau) * np.sin(2 * np.pi * f * t + phase)).astype(np.float32)
    attack = raised_cosine(t / spec["attack"])
    # A short release at the very end so the note never stops with a step.
    fade = raised_cosine((t[-1] - t) / 0.05)
    return out * attack * fade
