"""Voices of the composer: periodic band-limited tones, struck notes and control signals.

Sustained voices (pad, drone, strings) are built once per note as a *periodic* waveform made by
an inverse FFT: every partial sits exactly on a bin of the period, so the wave is perfectly
band-limited (no aliasing), loops without a seam, and a long bed only has to copy it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

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


def periodic_note(midi: float, timbre: Timbre, rng: np.random.Generator, *,
                  period_seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One note as periodic stereo waves: ``(2 versions [dark, bright-minus-dark], 2 channels, n)``.

    The two channels use different detunings and phases, so the note is wide but mono-safe.
    Adding ``bright_hz`` colour is ``dark + b * extra`` for any b in 0..1, a filter sweep for the
    price of one multiply.
    """
    n = int(round(period_seconds * sample_rate))
    n -= n % 2
    bin_hz = sample_rate / n
    f0 = midi_to_hz(midi)
    ratio = (f0 / 261.63) ** timbre.track
    dark_cut, bright_cut = timbre.dark_hz * ratio, timbre.bright_hz * ratio
    spectra = np.zeros((2, 2, n // 2 + 1), dtype=np.complex64)
    h_max = max(1, int(min(MAX_PARTIAL_HZ, 0.45 * sample_rate) / f0))
    harmonics = np.arange(1, h_max + 1)
    if timbre.odd_only:
        harmonics = harmonics[harmonics % 2 == 1]
    amps = harmonics.astype(float) ** -timbre.slope
    for ch in range(2):
        # Spread the copies evenly over +-detune, jittered, so neither channel sounds static.
        offsets = np.linspace(-1.0, 1.0, timbre.copies) if timbre.copies > 1 else np.zeros(1)
        offsets = offsets + rng.uniform(-0.3, 0.3, size=offsets.size)
        for off in offsets:
            f = f0 * 2.0 ** (off * timbre.detune_cents / 1200.0)
            freqs = harmonics * f
            bins = np.rint(freqs / bin_hz).astype(int)
            phases = np.exp(2j * np.pi * rng.random(harmonics.size))
            dark = amps * lowpass_gain(freqs, dark_cut)
            bright = amps * lowpass_gain(freqs, bright_cut)
            np.add.at(spectra[0, ch], bins, dark * phases)
            np.add.at(spectra[1, ch], bins, (bright - dark) * phases)
    spectra *= n / 2 / timbre.copies
    waves = scipy.fft.irfft(spectra, n=n, axis=-1)  # complex64 in, float32 out: half the work
    # Normalise so that a note's dark version has unit RMS whatever its pitch and timbre.
    rms = float(np.sqrt(np.vdot(waves[0], waves[0]) / waves[0].size)) or 1.0
    waves *= np.float32(1.0 / rms)
    return waves


def add_periodic(out: np.ndarray, wave: np.ndarray, start: int, gain: np.ndarray | float, *,
                 scratch: np.ndarray | None = None) -> None:
    """Add ``wave`` (periodic along its last axis) into ``out`` as heard from absolute sample ``start``.

    ``gain`` is a scalar or an array as long as ``out``'s last axis; ``scratch`` (at least
    ``out``'s shape) saves a temporary array when ``gain`` is an array.
    """
    period = wave.shape[-1]
    n = out.shape[-1]
    pos, done = start % period, 0
    while done < n:
        take = min(n - done, period - pos)
        seg = wave[..., pos:pos + take]
        dst = out[..., done:done + take]
        if np.isscalar(gain):
            dst += seg if gain == 1.0 else gain * seg
        elif scratch is not None:
            tmp = scratch[..., :take]
            np.multiply(seg, gain[done:done + take], out=tmp)
            dst += tmp
        else:
            dst += seg * gain[done:done + take]
        done += take
        pos = 0


def raised_cosine(x: np.ndarray) -> np.ndarray:
    """0 -> 1 smooth ramp over x in 0..1 (clipped outside)."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.float32(0.5) - np.float32(0.5) * np.cos(np.float32(np.pi) * x)


def upsample_linear(values: np.ndarray, hop: int) -> np.ndarray:
    """Linear interpolation of control points ``values`` (m+1) to ``m * hop`` samples (float32)."""
    v = np.asarray(values, dtype=np.float32)
    w = (np.arange(hop, dtype=np.float32) / hop)[None, :]
    return (v[:-1, None] + (v[1:] - v[:-1])[:, None] * w).ravel()


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


def brass_swell(midi: float, *, seconds: float, swell: float, sample_rate: int = SAMPLE_RATE
                ) -> np.ndarray:
    """A brass-like swell: harmonics whose brightness rises with the level, then a long decay."""
    n = int(seconds * sample_rate)
    t = np.arange(n, dtype=np.float32) / sample_rate
    f0 = midi_to_hz(midi)
    level = raised_cosine(t / swell) * np.exp(-np.maximum(t - swell, 0) / (0.35 * seconds))
    out = np.zeros(n, dtype=np.float32)
    for h in range(1, 13):
        if f0 * h > 0.4 * sample_rate:
            break
        # Upper harmonics grow faster than the fundamental as the note swells (brassy blare).
        out += (level ** (1 + 0.25 * h) / h) * np.sin(2 * np.pi * f0 * h * t).astype(np.float32)
    fade = raised_cosine((t[-1] - t) / 0.05)
    return (out * fade).astype(np.float32)
