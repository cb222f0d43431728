"""Test signals to mix with marked audio (bench/bench_watermark.py, tests/watermark): no speech
recording ships with soundscape and nothing is fetched, so speech is synthesised."""

from __future__ import annotations

import numpy as np


def speech_like(n: int, rng: np.random.Generator, *, sample_rate: int = 48000) -> np.ndarray:
    """A synthetic voice (no speech recording ships with soundscape, and nothing is fetched): a
    glottal pulse train (f0 gliding around 110-220 Hz with jitter) through three formant
    resonators that jump to a new vowel every syllable, at a syllable rate of about 4 Hz with
    pauses, unit RMS. Not speech, but it has speech's spectrum and its rhythm of level."""
    from scipy.signal import lfilter

    t = np.arange(n) / sample_rate
    f0 = 165 + 55 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6)) + rng.normal(0, 2, n)
    phase = np.cumsum(f0 / sample_rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)          # one impulse per glottal period
    source = lfilter([1.0], [1.0, -0.97], pulses)            # a glottal pulse's spectral tilt
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]
    syllable = int(0.25 * sample_rate)
    out = np.zeros(n)
    for start in range(0, n, syllable):
        seg = source[start:start + syllable]
        y = np.zeros_like(seg)
        for f, bw in zip(vowels[rng.integers(len(vowels))], (80, 100, 120)):
            r = np.exp(-np.pi * bw / sample_rate)
            y += lfilter([1.0 - r], [1.0, -2 * r * np.cos(2 * np.pi * f / sample_rate), r * r], seg)
        envelope = np.sin(np.pi * np.arange(seg.size) / seg.size) ** 2
        out[start:start + seg.size] = y * envelope * (rng.random() > 0.2)
    return (out / np.sqrt(np.mean(out ** 2) + 1e-20)).astype(np.float32)
