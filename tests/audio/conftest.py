"""Shared fixtures for the audio tests: seeded signals that stand in for engine renders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.signal import lfilter

from soundscape.render import LOOP_OVERLAP_SECONDS, Lineage, Render
from soundscape.spec import CueSpec, resolve_intent


def ambient(rng, seconds: float, sr: int = 48000, channels: int = 2, level: float = 0.1) -> np.ndarray:
    """A bed-like signal: low-passed noise plus a swelling drone chord, float32 (channels, n)."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    noise = lfilter([0.04], [1.0, -0.96], rng.standard_normal((channels, n)), axis=-1)
    chord = sum(a * np.sin(2 * np.pi * f * t + p) for f, a, p in
                ((98.0, 1.0, 0.0), (146.8, 0.6, 1.0), (196.0, 0.4, 2.0), (587.3, 0.15, 0.5)))
    swell = 0.7 + 0.3 * np.sin(2 * np.pi * t / 5.3)
    return (level * (noise + 0.5 * chord * swell)).astype(np.float32)


def hot(rng, seconds: float, sr: int = 48000) -> np.ndarray:
    """A quiet pad with squared-off, nearly full-scale clicks: far more peak than loudness."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    pad = 0.05 * np.clip(3.0 * np.sin(2 * np.pi * 220.0 * t), -1.0, 1.0)
    x = np.stack([pad, 0.9 * pad])
    click = 0.95 * np.sign(np.sin(2 * np.pi * 3000.0 * t[:96])) * np.exp(-t[:96] * 1000.0)
    for start in range(0, n - 96, sr // 2):
        x[:, start:start + 96] += click
    x += 0.002 * rng.standard_normal(x.shape)
    return x.astype(np.float32)


def make_spec(kind: str = "bed", duration: float = 12.0, loop: bool = False) -> CueSpec:
    prompt = "calm rain over a soft pad"
    return CueSpec(prompt=prompt, kind=kind, duration=duration, seed=440,
                   intent=resolve_intent(prompt, kind=kind), loop=loop)


@pytest.fixture
def make_render(rng):
    """Factory: make_render(kind="bed", duration=12, loop=False, sr=48000, channels=2, signal=...)."""

    def build(kind: str = "bed", duration: float = 12.0, *, loop: bool = False, sr: int = 48000,
              channels: int = 2, signal: str = "ambient", tail_seconds: float = 0.0) -> Render:
        seconds = duration + (LOOP_OVERLAP_SECONDS if loop else 0.0)
        audio = hot(rng, seconds, sr) if signal == "hot" else ambient(rng, seconds, sr, channels)
        if channels == 1:
            audio = audio[0]
        return Render(spec=make_spec(kind, duration, loop), audio=audio, sample_rate=sr,
                      lineage=Lineage("test", "0"), tail_seconds=tail_seconds)

    return build


@pytest.fixture
def ffmpeg():
    path = shutil.which("ffmpeg")
    if path is None:
        pytest.skip("ffmpeg is not on PATH (make tools installs it where it may)")
    return path


@pytest.fixture
def ambient_audio(rng):
    """Factory: ambient_audio(seconds, sr=48000, channels=2) -> float32 (channels, n)."""
    return lambda seconds, sr=48000, channels=2: ambient(rng, seconds, sr, channels)
