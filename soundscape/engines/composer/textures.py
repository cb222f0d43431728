"""Noise textures (rain, wind, ocean, forest, city, fire, vinyl) and the looper that plays them.

Each texture is rendered once as a short stereo *pool* (about 20 s, independent noise per
channel), then played back for any length as a chain of randomly placed pool segments joined
by equal-power crossfades. Slow control signals (gusts, swells) are applied on playback, so the
result never repeats and costs a copy and a multiply per sample however long the bed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.signal

from soundscape.engines.composer.synth import SAMPLE_RATE, slow_walk, upsample_linear

POOL_SECONDS = 20.0


def _sos(kind: str, freq, *, order: int = 2):
    return scipy.signal.butter(order, freq, btype=kind, fs=SAMPLE_RATE, output="sos")


def _filt(sos, x: np.ndarray) -> np.ndarray:
    return scipy.signal.sosfilt(sos, x, axis=-1).astype(np.float32)


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    # Uniform noise is much cheaper to draw than Gaussian and just as white.
    return rng.random((2, n), dtype=np.float32) * 2.0 - 1.0


def _impulses(rng: np.random.Generator, n: int, rate: float, *, sharp: float = 1.0) -> np.ndarray:
    """Poisson-timed impulses with random (heavy-tailed) amplitudes, per channel."""
    out = np.zeros((2, n), dtype=np.float32)
    for ch in range(2):  # draw only the hits, not a random number per sample
        count = rng.poisson(rate * n / SAMPLE_RATE)
        at = rng.integers(0, n, size=count)
        np.add.at(out[ch], at, (rng.exponential(1.0, size=count) ** sharp).astype(np.float32))
    return out


def _norm(x: np.ndarray, *, max_crest_db: float | None = None) -> np.ndarray:
    """Scale to unit RMS, or lower when the peak would then stand more than ``max_crest_db`` up."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    if max_crest_db is not None:
        rms = max(rms, float(np.max(np.abs(x))) / 10 ** (max_crest_db / 20))
    return (x / rms).astype(np.float32)


# Pools are normalised so that no texture's peaks stand more than this above unit RMS.
POOL_CREST_DB = 20.0


def _tame(x: np.ndarray, *, crest_db: float = 20.0) -> np.ndarray:
    """Soft-clip peaks above ``crest_db`` over the RMS: a rare huge click would otherwise set the
    whole bed's level when it is normalised."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    ceiling = rms * 10 ** (crest_db / 20)
    return (np.tanh(x / ceiling) * ceiling).astype(np.float32)


def _chirps(rng: np.random.Generator, n: int, *, phrases_per_second: float) -> np.ndarray:
    """Birdsong-like chirps: short sine sweeps in little phrases, panned at random."""
    out = np.zeros((2, n), dtype=np.float32)
    count = rng.poisson(phrases_per_second * n / SAMPLE_RATE)
    for _ in range(count):
        t0 = rng.uniform(0, n / SAMPLE_RATE - 1.5)
        base = rng.uniform(2500, 5500)
        pan = rng.uniform(0.15, 0.85)
        amp = rng.uniform(0.3, 1.0)
        for k in range(int(rng.integers(2, 6))):
            dur = rng.uniform(0.05, 0.14)
            m = int(dur * SAMPLE_RATE)
            t = np.arange(m) / SAMPLE_RATE
            sweep = base * (1 + rng.uniform(-0.3, 0.4) * t / dur)
            phase = 2 * np.pi * np.cumsum(sweep) / SAMPLE_RATE
            env = np.sin(np.pi * t / dur) ** 2
            chirp = (amp * env * np.sin(phase)).astype(np.float32)
            i0 = int((t0 + k * rng.uniform(0.12, 0.22)) * SAMPLE_RATE)
            if i0 + m <= n:
                out[0, i0:i0 + m] += chirp * np.sqrt(1 - pan)
                out[1, i0:i0 + m] += chirp * np.sqrt(pan)
    return out


def _walk_audio(rng: np.random.Generator, n: int, *, timescale: float, low: float, high: float
                ) -> np.ndarray:
    hop = 480
    ctrl = slow_walk(rng, n // hop + 2, step_seconds=timescale / 3, control_rate=SAMPLE_RATE / hop,
                     timescale=timescale, low=low, high=high)
    return upsample_linear(ctrl, hop)[:n]


def texture_pool(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Stereo pools ``(2, n)`` of about unit RMS that together make the texture (one per strand)."""
    return [_norm(p, max_crest_db=POOL_CREST_DB) for p in _raw_pool(name, rng)]


def _raw_pool(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    n = int(POOL_SECONDS * SAMPLE_RATE)
    if name == "rain":
        hiss = _filt(_sos("bandpass", (600, 11000)), _noise(rng, n))
        drops = _tame(_filt(_sos("bandpass", (1800, 7000)), _impulses(rng, n, 90.0, sharp=1.5)))
        heavy = _tame(_filt(_sos("bandpass", (700, 2500)), _impulses(rng, n, 6.0, sharp=2.0)))
        return [_norm(_norm(hiss) + 0.9 * _norm(drops) + 0.5 * _norm(heavy))]
    if name == "wind":
        noise = _noise(rng, n)
        bands = [(120, 380), (300, 900), (700, 2200)]
        mix = np.zeros((2, n), dtype=np.float32)
        for lo, hi in bands:
            gust = _walk_audio(rng, n, timescale=4.0, low=0.1, high=1.0)
            mix += _norm(_filt(_sos("bandpass", (lo, hi)), noise)) * gust
        return [_norm(mix)]
    if name == "ocean":
        noise = _noise(rng, n)
        roar = _filt(_sos("lowpass", 450.0), noise)
        wash = _filt(_sos("bandpass", (900, 7000)), noise[::-1].copy())
        return [_norm(roar), _norm(wash)]
    if name == "forest":
        air = _norm(_filt(_sos("bandpass", (1200, 6000)), _noise(rng, n)))
        air *= _walk_audio(rng, n, timescale=3.0, low=0.3, high=1.0)
        birds = _chirps(rng, n, phrases_per_second=0.35)
        return [_norm(0.5 * air + 1.2 * _tame(_norm(birds), crest_db=16.0))]
    if name == "city":
        noise = _noise(rng, n)
        rumble = _norm(_filt(_sos("lowpass", 180.0, order=4), noise))
        traffic = _norm(_filt(_sos("bandpass", (250, 2500)), noise[::-1].copy()))
        traffic *= _walk_audio(rng, n, timescale=5.0, low=0.2, high=1.0)
        return [_norm(0.7 * rumble + traffic)]
    if name == "fire":
        crackle = _tame(_filt(_sos("highpass", 1800.0), _impulses(rng, n, 25.0, sharp=2.5)))
        pops = _tame(_filt(_sos("bandpass", (400, 3000)), _impulses(rng, n, 2.0, sharp=2.0)))
        rumble = _filt(_sos("lowpass", 250.0), _noise(rng, n))
        return [_norm(_norm(crackle) + 0.6 * _norm(pops) + 0.7 * _norm(rumble))]
    if name == "vinyl":
        clicks = _tame(_filt(_sos("highpass", 2500.0), _impulses(rng, n, 4.0, sharp=2.0)), crest_db=24.0)
        hiss = _filt(_sos("bandpass", (3000, 11000)), _noise(rng, n))
        return [_norm(0.8 * _norm(clicks) + 0.45 * _norm(hiss))]
    raise ValueError(f"unknown texture {name!r}")


# Relative level of each texture under the music (the music bus is about unit RMS).
TEXTURE_LEVEL = {"rain": 0.45, "wind": 0.5, "ocean": 0.45, "forest": 0.3, "city": 0.4,
                 "fire": 0.45, "vinyl": 0.45}


@dataclass
class Looper:
    """Plays a pool for any length as random segments joined by equal-power crossfades."""

    pool: np.ndarray
    total: int
    rng: np.random.Generator
    segment_seconds: tuple[float, float] = (4.0, 8.0)
    xfade_seconds: float = 1.0
    starts: np.ndarray = field(init=False)
    offsets: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        plen = self.pool.shape[-1]
        self.xfade = min(int(self.xfade_seconds * SAMPLE_RATE), plen // 4)
        lo = min(int(self.segment_seconds[0] * SAMPLE_RATE), plen - self.xfade - 1)
        hi = min(int(self.segment_seconds[1] * SAMPLE_RATE), plen - self.xfade - 1)
        lo = max(lo, self.xfade + 1)
        hi = max(hi, lo + 1)
        count = self.total // lo + 2
        lengths = self.rng.integers(lo, hi, size=count)
        self.starts = np.concatenate([[0], np.cumsum(lengths)])
        max_off = np.maximum(plen - lengths - self.xfade, 1)
        self.offsets = (self.rng.random(count) * max_off).astype(np.int64)
        ramp = np.arange(self.xfade, dtype=np.float32) / max(self.xfade, 1)
        self.fade_in = np.sin(0.5 * np.pi * ramp).astype(np.float32)
        self.fade_out = np.cos(0.5 * np.pi * ramp).astype(np.float32)

    def add_to(self, out: np.ndarray, start: int, gain: np.ndarray | float = 1.0) -> None:
        """Add the looped pool for absolute samples ``start .. start + out.shape[-1]`` into ``out``.

        ``gain`` is a scalar, one gain per sample ``(n,)``, or one per channel and sample ``(2, n)``.
        """
        n = out.shape[-1]
        end = start + n
        scalar = np.isscalar(gain)
        if getattr(self, "_scratch", None) is None or self._scratch.shape[-1] < n:
            self._scratch = np.empty((2, n), dtype=np.float32)
        k = max(int(np.searchsorted(self.starts, start, side="right")) - 2, 0)
        while k < len(self.offsets) and self.starts[k] < end:
            s, e = int(self.starts[k]), int(self.starts[k + 1]) + self.xfade
            # Three pieces per segment: fade-in, steady, fade-out (the first segment has no
            # fade-in: the texture is already playing when the bed begins).
            fi = s + (self.xfade if k > 0 else 0)
            fo = e - self.xfade
            for p0, p1, fade in ((s, fi, self.fade_in), (fi, fo, None), (fo, e, self.fade_out)):
                a, b = max(p0, start), min(p1, end)
                if a >= b:
                    continue
                src = self.pool[:, self.offsets[k] + (a - s): self.offsets[k] + (b - s)]
                g = gain if scalar else gain[..., a - start: b - start]
                if fade is not None:
                    g = fade[a - p0: b - p0] * g
                tmp = self._scratch[:, : b - a]
                np.multiply(src, g, out=tmp)
                out[:, a - start: b - start] += tmp
            k += 1


def ocean_swell(rng: np.random.Generator, n_ctrl: int, control_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Gains for the ocean's roar and wash: waves every 6-12 s, the wash peaking at each crest."""
    t = np.arange(n_ctrl) / control_rate
    swell = np.zeros(n_ctrl)
    t0 = -rng.uniform(0, 6)
    while t0 < t[-1] + 12:
        period = rng.uniform(6.0, 12.0)
        height = rng.uniform(0.5, 1.0)
        i0 = max(int(np.ceil(t0 * control_rate)), 0)
        i1 = min(int((t0 + period) * control_rate) + 1, n_ctrl)
        if i0 < i1:  # only this wave's own stretch of the control signal
            x = (t[i0:i1] - t0) / period
            swell[i0:i1] = np.maximum(swell[i0:i1], height * np.sin(np.pi * x) ** 2)
        t0 += period * rng.uniform(0.55, 0.8)
    roar = 0.45 + 0.55 * swell
    wash = 0.1 + 0.9 * swell ** 3
    return roar.astype(np.float32), wash.astype(np.float32)


__all__ = ["Looper", "POOL_SECONDS", "TEXTURE_LEVEL", "ocean_swell", "texture_pool"]
