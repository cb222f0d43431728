"""Mastering: a render becomes a 48 kHz stereo master at a broadcast loudness.

Steps: resample to 48 kHz and make stereo; shape the ends (seamless loop, bed fades, or a
jingle's short tail fade); normalise integrated loudness to the preset (ITU-R BS.1770-4 gating)
and keep the true peak under the preset's ceiling with a look-ahead true-peak limiter; then
measure the result. Measurements stream in chunks, so three-hour beds fit in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from soundscape.audio import loudness as meter
from soundscape.errors import AudioError, ParameterError
from soundscape.render import LOOP_OVERLAP_SECONDS, AudioStore, Render, is_store

# EBU R 128 and common broadcast practice deliver at 48 kHz.
MASTER_SAMPLE_RATE = 48000


@dataclass(frozen=True)
class Preset:
    """A delivery loudness target; None means "leave as is"."""

    name: str
    target_lufs: float | None
    true_peak_dbtp: float | None
    description: str


PRESETS: dict[str, Preset] = {
    # EBU R 128 (2020): programme loudness -23.0 LUFS, maximum true peak -1 dBTP.
    "ebu-r128": Preset("ebu-r128", -23.0, -1.0, "EBU R 128 broadcast: -23 LUFS, true peak <= -1 dBTP"),
    # Netflix sound mix specifications: -24 LKFS integrated (dialogue-gated for programmes; our
    # music has no dialogue, so the full-programme BS.1770 measure), true peak <= -2 dBTP.
    "netflix": Preset("netflix", -24.0, -2.0, "Netflix delivery: -24 LKFS, true peak <= -2 dBTP"),
    # Music streaming services' playback normalisation (Spotify, YouTube, Tidal): -14 LUFS, -1 dBTP.
    "streaming": Preset("streaming", -14.0, -1.0, "Streaming platforms: -14 LUFS, true peak <= -1 dBTP"),
    "none": Preset("none", None, None, "No loudness change: 48 kHz stereo, fades or loop only"),
}

# How close to the target the gain loop stops (the requirement is +-0.5 LU).
LOUDNESS_TOLERANCE_LU = 0.01
# The limiter aims this far under the ceiling: other meters interpolate with other filters
# (ffmpeg's ebur128 read 0.07 dB above ours on full-band clicks), and its gain, though smooth,
# moves a little across the interpolation filter's reach. The measurement has the last word.
LIMITER_MARGIN_DB = 0.1
LIMITER_ATTACK_SECONDS = 0.003   # look-ahead: gain falls linearly (in dB) over 3 ms before a peak
LIMITER_HOLD_SECONDS = 0.010     # held across a few cycles of a bass note, to avoid ripple
LIMITER_RELEASE_SECONDS = 0.100  # exponential recovery (time constant, in dB)
_RELEASE_SPAN = 12               # release time constants kept (the reduction left is < 1e-5 of it)
_MAX_PASSES = 5

BED_FADE_IN_SECONDS = (0.5, 1.0)    # 1 % of the duration, within these bounds
BED_FADE_OUT_SECONDS = (2.0, 10.0)  # 10 % of the duration, within these bounds
JINGLE_FADE_IN_SECONDS = 0.005      # just enough to avoid a click at the first sample
JINGLE_TAIL_FADE_SECONDS = 0.08     # only the last 80 ms of the natural decay
JINGLE_MIN_TAIL_FADE_SECONDS = 0.02
SEAM_CONTEXT_SECONDS = 0.05         # steps either side of the loop seam that it is compared with
SEAM_SEARCH_SECONDS = 0.01          # the loop point may move this far to land on a gentle step
SEAM_PERCENTILE = 99.0

_LOUDNESS_CHUNK = 2 * MASTER_SAMPLE_RATE  # K-weighting chunk (whole 100 ms sub-blocks)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ParameterError names the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ParameterError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None


@dataclass
class Mastered:
    """A finished master and what was measured on it (float32 (2, N) at 48 kHz)."""

    audio: np.ndarray
    sample_rate: int
    preset: str
    loudness_lufs: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    loop: bool
    seam_ratio: float | None
    gain_db: float
    limiter_reduction_db: float
    loudness_range_lu: float | None = None
    max_momentary_lufs: float | None = None
    max_short_term_lufs: float | None = None
    # K-weighted mean square per channel per 100 ms sub-block (loudness.subblock_energies) of
    # ``audio``: marking updates the loudness figures from it instead of measuring again.
    energies: np.ndarray | None = field(default=None, repr=False)
    # Per 128-sample chunk, an upper bound on its true peak (measured where it could hold the
    # maximum): marking checks only the chunks near the top again.
    chunk_true_peaks: np.ndarray | None = field(default=None, repr=False)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def describe(self) -> dict:
        """JSON-ready mastering facts for the sidecar (infinite levels become None)."""
        preset = get_preset(self.preset)
        return {
            "preset": self.preset,
            "target_lufs": preset.target_lufs,
            "true_peak_limit_dbtp": preset.true_peak_dbtp,
            "loudness_lufs": _json_number(self.loudness_lufs),
            "true_peak_dbtp": _json_number(self.true_peak_dbtp),
            "sample_peak_dbfs": _json_number(self.sample_peak_dbfs),
            "loudness_range_lu": _json_number(self.loudness_range_lu),
            "max_momentary_lufs": _json_number(self.max_momentary_lufs),
            "max_short_term_lufs": _json_number(self.max_short_term_lufs),
            "loop": self.loop,
            "seam_ratio": _json_number(self.seam_ratio, 4),
            "gain_db": _json_number(self.gain_db),
            "limiter_reduction_db": _json_number(self.limiter_reduction_db),
        }


def _json_number(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def master(render: Render, preset: str = "ebu-r128", *, loop: bool | None = None,
           in_place: bool = False) -> Mastered:
    """Master a render for delivery.

    Args:
        render: the engine's output; ``render.spec`` gives kind, duration and loop.
        preset: a key of :data:`PRESETS`.
        loop: make a seamless loop; None follows ``render.spec.loop``. A looping render must be
            ``LOOP_OVERLAP_SECONDS`` longer than the spec's duration.
        in_place: master in the render's own array (its audio is then the master's, or part of
            it): what delivery does, as the render is not needed after; it saves a copy the size
            of the bed. A spilled render is always mastered in its file.

    Returns:
        The master, exactly ``round(duration * 48000)`` samples long for beds.
    """
    chosen = get_preset(preset)
    spec = render.spec
    loop = bool(spec.loop if loop is None else loop)
    audio = to_master_format(render.audio, render.sample_rate, in_place=in_place)
    sr = MASTER_SAMPLE_RATE
    n_out = int(round(spec.duration * sr))

    seam_ratio = None
    if loop:
        audio = make_loop(audio, n_out)
    elif spec.kind == "bed":
        if audio.shape[-1] > n_out:
            audio = audio.view(0, n_out) if is_store(audio) else audio[:, :n_out]
        fade_bed(audio, sr)
    else:
        fade_jingle(audio, sr, tail_seconds=render.tail_seconds)

    if chosen.target_lufs is not None:
        result = normalise(audio, target_lufs=chosen.target_lufs, ceiling_dbtp=chosen.true_peak_dbtp,
                           circular=loop)
    else:
        peaks, bound = meter.chunk_peaks(audio)
        tp, chunk_tp = meter.chunk_true_peak_bounds(audio, peaks=peaks, bound=bound)
        result = Normalised(audio, 0.0, 0.0, meter.subblock_energies(audio, sr), tp,
                            float(peaks.max()), chunk_tp)
    audio = result.audio
    stats = meter.loudness_stats(result.energies)
    if loop:
        seam_ratio = loop_seam_ratio(audio, sr)
    return Mastered(
        audio=audio, sample_rate=sr, preset=chosen.name, loudness_lufs=stats.integrated,
        true_peak_dbtp=_db(result.true_peak), sample_peak_dbfs=_db(result.sample_peak),
        loop=loop, seam_ratio=seam_ratio, gain_db=result.gain_db, limiter_reduction_db=result.reduction_db,
        loudness_range_lu=stats.loudness_range, max_momentary_lufs=stats.max_momentary,
        max_short_term_lufs=stats.max_short_term, energies=result.energies,
        chunk_true_peaks=result.chunk_true_peaks,
    )


def _db(amplitude: float) -> float:
    return 20.0 * math.log10(amplitude) if amplitude > 0 else float("-inf")


# --- format ---------------------------------------------------------------------------------

def to_master_format(audio: np.ndarray, sample_rate: int, *, in_place: bool = False) -> np.ndarray:
    """A new float32 (2, n) C-ordered array at 48 kHz: mono is duplicated, other rates resampled.

    Exactly one array the size of the output is made (the render itself is never changed), so
    a bed needs its own size again, not more. A long render spilled to an :class:`AudioStore`
    (48 kHz stereo, as the composer makes it) is mastered in its file, in place.
    """
    if is_store(audio):
        if sample_rate != MASTER_SAMPLE_RATE or audio.shape[0] != 2:
            raise AudioError("a spilled render must be 48 kHz stereo")
        return audio
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[np.newaxis, :]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise AudioError(f"expected mono or stereo audio shaped (channels, samples), got {audio.shape}")
    if audio.shape[-1] == 0:
        raise AudioError("the render is empty")
    owned = False
    if sample_rate != MASTER_SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = math.gcd(int(sample_rate), MASTER_SAMPLE_RATE)
        audio = resample_poly(audio.astype(np.float32, copy=False), MASTER_SAMPLE_RATE // g,
                              int(sample_rate) // g, axis=-1)
        owned = True
    if audio.shape[0] == 1:
        out = np.repeat(audio.astype(np.float32, copy=False), 2, axis=0)
    elif (owned or in_place) and audio.dtype == np.float32 and audio.flags.c_contiguous:
        out = audio
    else:
        out = np.array(audio, dtype=np.float32, order="C")
    if not np.isfinite(out.sum(dtype=np.float64)):
        raise AudioError("the render contains NaN or infinite samples")
    return out


# --- ends: loops and fades --------------------------------------------------------------------

def make_loop(audio: np.ndarray, n_out: int) -> np.ndarray:
    """Fold the render's extra tail over its start so the file loops without a seam (in place).

    The loop is ``n_out`` samples of the render from a start point s; the samples after it
    (about ``LOOP_OVERLAP_SECONDS``) are crossfaded over its beginning. At the loop's first
    sample only the continuation of its last sample is heard, so the joint is the signal's own
    next step; s (within the first 10 ms) is chosen where that step is gentlest. The crossfade
    is equal-power, corrected for the measured correlation of the two layers (equal-gain when
    they are alike).

    Returns:
        A C-ordered (2, n_out) view into ``audio``'s memory (no copy of a long bed).
    """
    sr = MASTER_SAMPLE_RATE
    extra = audio.shape[-1] - n_out
    if extra < int(0.1 * sr):
        raise AudioError(f"a loop needs the render {LOOP_OVERLAP_SECONDS:g} s longer than its duration "
                         f"(got {audio.shape[-1] / sr:.3f} s for {n_out / sr:.3f} s)")
    start = _gentlest_seam(audio, n_out, sr, search=min(int(SEAM_SEARCH_SECONDS * sr), extra // 2))
    overlap = extra - start
    head = audio[:, start:start + overlap].astype(np.float64)
    tail = audio[:, start + n_out:].astype(np.float64)
    denom = math.sqrt(float((head * head).sum()) * float((tail * tail).sum()))
    rho = min(max(float((head * tail).sum()) / denom, 0.0), 1.0) if denom > 0 else 0.0
    u = np.arange(overlap) / overlap
    fade_in, fade_out = np.sin(0.5 * np.pi * u), np.cos(0.5 * np.pi * u)
    # Power of the sum of two layers with correlation rho: a^2 + b^2 + 2 rho a b.
    norm = np.sqrt(fade_in ** 2 + fade_out ** 2 + 2.0 * rho * fade_in * fade_out)
    audio[:, start:start + overlap] = ((head * fade_in + tail * fade_out) / norm).astype(np.float32)
    if is_store(audio):
        return audio.view(start, n_out)  # a window of the file: nothing to move
    return _compact(audio, start, n_out)


def _compact(audio: np.ndarray, start: int, n: int) -> np.ndarray:
    """Move each row's [start, start + n) to the front of a C-ordered buffer, in place, and
    return the (rows, n) C-ordered view (blockwise forward moves: no full-size temporary)."""
    rows, width = audio.shape
    flat = audio.reshape(-1)
    block = 1 << 20
    for row in range(rows):  # row 0 first: row 1's destination overlaps row 0's source
        src, dst = row * width + start, row * n
        if src == dst:
            continue
        for i in range(0, n, block):
            m = min(block, n - i)
            flat[dst + i:dst + i + m] = flat[src + i:src + i + m]
    return flat[:rows * n].reshape(rows, n)


def _local_step_scale(audio: np.ndarray, sr: int) -> np.ndarray:
    """Per channel: the 99th percentile of |step| within 50 ms either side of the seam."""
    ctx = int(SEAM_CONTEXT_SECONDS * sr)
    around = np.concatenate([audio[:, -ctx:], audio[:, :ctx]], axis=-1)
    steps = np.abs(np.diff(around, axis=-1))
    steps = np.delete(steps, ctx - 1, axis=-1)  # leave the seam itself out
    return np.percentile(steps, SEAM_PERCENTILE, axis=-1)


def _gentlest_seam(audio: np.ndarray, n_out: int, sr: int, *, search: int) -> int:
    """The loop start s in [0, search) whose joint (audio[s + n_out - 1] to audio[s + n_out])
    is the smallest step relative to the ordinary steps around it."""
    ctx = int(SEAM_CONTEXT_SECONDS * sr)
    around = audio[:, max(n_out - ctx, 0):n_out + ctx].astype(np.float64)
    scale = np.percentile(np.abs(np.diff(around, axis=-1)), SEAM_PERCENTILE, axis=-1)
    scale = np.where(scale > 0, scale, 1.0)
    joints = np.abs(np.diff(audio[:, n_out - 1:n_out + search].astype(np.float64), axis=-1)) / scale[:, None]
    return int(np.argmin(joints.max(axis=0)))


def loop_seam_ratio(audio: np.ndarray, sr: int) -> float:
    """|step from the last sample to the first| over the 99th percentile of the ordinary steps
    within 50 ms either side (max over channels); <= 1 means the seam is not an outlier."""
    scale = _local_step_scale(audio, sr)
    seam = np.abs(audio[:, 0].astype(np.float64) - audio[:, -1])
    ratios = np.where(scale > 0, seam / np.where(scale > 0, scale, 1.0), np.where(seam > 0, np.inf, 0.0))
    return float(ratios.max())


def multiply(audio: "np.ndarray | AudioStore", start: int, stop: int, gain) -> None:
    """``audio[:, start:stop] *= gain`` in place, for an array or a spilled render alike."""
    if is_store(audio):
        audio.scale(start, stop, gain)
    else:
        audio[:, start:stop] *= gain


def _raised_cosine(n: int) -> np.ndarray:
    """0 -> 1 over n samples with zero slope at both ends."""
    return (0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n - 1, 1))).astype(np.float32)


def fade_bed(audio: np.ndarray, sr: int) -> None:
    """Short fade-in and a musical fade-out, in place; lengths scale with the duration."""
    seconds = audio.shape[-1] / sr
    n_in = int(sr * min(max(0.01 * seconds, BED_FADE_IN_SECONDS[0]), BED_FADE_IN_SECONDS[1]))
    n_out = int(sr * min(max(0.1 * seconds, BED_FADE_OUT_SECONDS[0]), BED_FADE_OUT_SECONDS[1]))
    n_in, n_out = min(n_in, audio.shape[-1] // 4), min(n_out, audio.shape[-1] // 3)
    multiply(audio, 0, n_in, _raised_cosine(n_in))
    # cos^4: starts gently (zero slope), is 12 dB down half-way and falls faster as it goes,
    # which the ear hears as an even fade; it ends at exactly zero.
    u = np.arange(n_out) / max(n_out - 1, 1)
    n = audio.shape[-1]
    multiply(audio, n - n_out, n, (np.cos(0.5 * np.pi * u) ** 4).astype(np.float32))


def fade_jingle(audio: np.ndarray, sr: int, *, tail_seconds: float) -> None:
    """A few-ms fade-in and a short fade over the very end of the natural decay, in place.

    Only the last 80 ms (or the whole tail, if the engine reported a shorter one) are faded, so
    the music is never touched; the last sample is digital silence.
    """
    n = audio.shape[-1]
    n_in = min(int(JINGLE_FADE_IN_SECONDS * sr), n // 4)
    tail = JINGLE_TAIL_FADE_SECONDS if tail_seconds <= 0 else min(tail_seconds, JINGLE_TAIL_FADE_SECONDS)
    n_tail = min(int(max(tail, JINGLE_MIN_TAIL_FADE_SECONDS) * sr), n // 4)
    multiply(audio, 0, n_in, _raised_cosine(n_in))
    multiply(audio, n - n_tail, n, _raised_cosine(n_tail)[::-1])


# --- loudness and true-peak limiting --------------------------------------------------------

class Normalised(NamedTuple):
    """The result of :func:`normalise`: the audio and what was measured on it (linear peaks)."""

    audio: np.ndarray
    gain_db: float
    reduction_db: float
    energies: np.ndarray
    true_peak: float
    sample_peak: float
    chunk_true_peaks: np.ndarray | None = None   # per 128-sample chunk, an upper bound


def normalise(audio: np.ndarray, *, target_lufs: float, ceiling_dbtp: float | None,
              circular: bool = False) -> Normalised:
    """Gain to the target loudness, true-peak limited under the ceiling, in place.

    The K-weighted energies of the input are measured once; a gain scales them exactly, and
    after limiting only the 2 s chunks the limiter touched are measured again. Gain and limiter
    are iterated until the loudness is within 0.01 LU of the target, then the true peak of the
    result is measured and any residual overshoot is limited again.
    """
    sr = MASTER_SAMPLE_RATE
    base = _ChunkedEnergy(audio)
    loudness = meter.gated_loudness(base.energies)
    if not math.isfinite(loudness):
        raise AudioError("the render is silent (no 400 ms block above -70 LUFS): nothing to normalise")
    gain_db = target_lufs - loudness
    peaks, steps = meter.chunk_levels(audio, circular=circular)
    bound = meter.interpolation_bound(peaks, steps, circular=circular)
    envelopes = EnvelopeCache(audio, circular=circular)
    regions: list[tuple[int, np.ndarray]] = []
    energies = base.energies
    if ceiling_dbtp is not None:
        aim = 10.0 ** ((ceiling_dbtp - LIMITER_MARGIN_DB) / 20.0)
        previous = None
        for attempt in range(_MAX_PASSES):
            gain = 10.0 ** (gain_db / 20.0)
            regions = limiter_gain(audio, gain, aim, bound=bound, circular=circular, envelopes=envelopes)
            energies = base.with_gain(gain, regions)
            measured = meter.gated_loudness(energies)
            error = target_lufs - measured
            if abs(error) <= LOUDNESS_TOLERANCE_LU or not regions or attempt == _MAX_PASSES - 1:
                break
            # Secant step: with a limiter working, each dB of gain buys less than a dB of loudness.
            slope = 1.0
            if previous is not None and gain_db != previous[0]:
                slope = min(max((measured - previous[1]) / (gain_db - previous[0]), 0.1), 1.0)
            previous = (gain_db, measured)
            gain_db += error / slope
    else:
        energies = base.energies * 10.0 ** (gain_db / 10.0)
    gain = np.float32(10.0 ** (gain_db / 20.0))
    multiply(audio, 0, audio.shape[-1], gain)
    reduction = 0.0
    for start, g in regions:
        multiply(audio, start, start + g.size, g)
        reduction = max(reduction, -20.0 * math.log10(float(g.min())))
    # Bound the result from the input's chunk levels and the gain curve instead of scanning it
    # again: rigorous, within float rounding (the 1e-5 margin). The first and last chunks are
    # always measured, since a file (unlike a loop) has silence beyond its ends.
    gain_max, gain_step = _gain_curve_levels(regions, peaks.size)
    bound = meter.interpolation_bound(peaks, steps, circular=circular, gain_max=gain_max,
                                      gain_step=gain_step) * (float(gain) * (1.0 + 1e-5))
    bound[0] = bound[-1] = np.inf
    sample_peak = float(gain * (peaks[gain_max >= 1.0].astype(np.float32)).max(initial=0.0))
    for start, g in regions:
        sample_peak = max(sample_peak, float(np.abs(audio[:, start:start + g.size]).max()))
    peaks = np.where(gain_max >= 1.0, float(gain) * peaks, 0.0)  # a lower bound, as true_peak needs
    true_peak, chunk_tp = meter.chunk_true_peak_bounds(audio, peaks=peaks, bound=bound)
    # The measurement decides: a slowly moving gain still shifts inter-sample peaks a little.
    if ceiling_dbtp is not None:
        ceiling = 10.0 ** (ceiling_dbtp / 20.0)
        for _ in range(_MAX_PASSES):
            if true_peak <= ceiling:
                break
            for start, g in limiter_gain(audio, 1.0, aim, circular=circular):
                multiply(audio, start, start + g.size, g)
                reduction = max(reduction, -20.0 * math.log10(float(g.min())))
            energies = None
            peaks, bound = meter.chunk_peaks(audio)
            sample_peak = float(peaks.max())
            true_peak, chunk_tp = meter.chunk_true_peak_bounds(audio, peaks=peaks, bound=bound)
    if energies is None:
        energies = meter.subblock_energies(audio, sr)
    return Normalised(audio, float(gain_db), reduction, energies, true_peak, sample_peak, chunk_tp)


def _gain_curve_levels(regions: list[tuple[int, np.ndarray]], n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 128-sample chunk: the largest gain and the largest gain step of the limiter's curve
    (1 and 0 where it does not act); steps into and out of each region included."""
    C = meter.TP_CHUNK
    gain_max = np.ones(n_chunks)
    gain_step = np.zeros(n_chunks)
    for start, g in regions:
        first = start // C
        count = -(-(start + g.size) // C) - first
        curve = np.ones(count * C + 2, dtype=np.float32)
        offset = start - first * C + 1
        curve[offset:offset + g.size] = g
        top = curve[1:-1].reshape(count, C).max(axis=1)
        steps = np.abs(np.diff(curve))
        step = np.maximum(steps[:-1].reshape(count, C).max(axis=1), steps[1:].reshape(count, C).max(axis=1))
        stop = min(first + count, n_chunks)
        # A chunk only partly inside a region keeps top = 1 (the gain outside it), so the
        # minimum over regions is the chunk's largest gain, or 1 where regions share it.
        gain_max[first:stop] = np.minimum(gain_max[first:stop], top[:stop - first])
        gain_step[first:stop] = np.maximum(gain_step[first:stop], step[:stop - first])
    return gain_max, gain_step


class _ChunkedEnergy:
    """K-weighted sub-block energies of a signal, with the filter state at each 2 s chunk,
    so that a gained-and-limited version is measured again only where the limiter acted."""

    def __init__(self, audio: np.ndarray):
        self.audio = audio
        self.kw = meter.KWeightedEnergy(MASTER_SAMPLE_RATE, audio.shape[0])
        self.states, parts = [], []
        for start in range(0, audio.shape[-1], _LOUDNESS_CHUNK):
            self.states.append(self.kw.state.copy())
            parts.append(self.kw.feed(audio[:, start:start + _LOUDNESS_CHUNK]))
        self.per_chunk = _LOUDNESS_CHUNK // self.kw.subblock
        self.energies = np.concatenate(parts, axis=-1)

    def with_gain(self, gain: float, regions: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """Energies of ``audio * gain * (limiter regions)``."""
        energies = self.energies * gain * gain
        if not regions:
            return energies
        n = self.audio.shape[-1]
        # The K-filter's memory of a gain change dies away within ~0.1 s (its slowest pole is
        # 0.995 per sample): mark the chunk after a region as touched when the region ends late.
        settle = int(0.5 * MASTER_SAMPLE_RATE)
        touched = set()
        for start, g in regions:
            touched.update(range(start // _LOUDNESS_CHUNK, min(start + g.size + settle, n - 1) // _LOUDNESS_CHUNK + 1))
        state = None
        for chunk in sorted(touched):
            a = chunk * _LOUDNESS_CHUNK
            b = min(a + _LOUDNESS_CHUNK, n)
            segment = self.audio[:, a:b] * np.float32(gain)
            for start, g in regions:
                lo, hi = max(a, start), min(b, start + g.size)
                if lo < hi:
                    segment[:, lo - a:hi - a] *= g[lo - start:hi - start]
            # Continue the filter through a run of touched chunks; start a run from the
            # unlimited signal's state scaled by the gain (exact: the filter is linear).
            if state is None or chunk - 1 not in touched:
                state = self.states[chunk] * gain
            part = self.kw.feed(segment, state=state)
            state = self.kw.state
            energies[:, chunk * self.per_chunk:chunk * self.per_chunk + part.shape[-1]] = part
        return energies


class EnvelopeCache:
    """4x-oversampled peak envelopes of a signal's chunks, computed once each: the gain loop
    asks for the same chunks again at other gains, and the envelope scales with the gain."""

    def __init__(self, audio: np.ndarray, *, circular: bool = False):
        self.audio, self.circular = audio, circular
        self.rows: dict[int, int] = {}
        self.store = np.empty((0, meter.TP_CHUNK), dtype=np.float32)

    def get(self, chunks: np.ndarray) -> np.ndarray:
        missing = np.array([c for c in chunks.tolist() if c not in self.rows], dtype=np.int64)
        if missing.size:
            fresh = meter.chunk_envelopes(self.audio, missing, circular=self.circular)
            base = self.store.shape[0]
            self.store = np.concatenate([self.store, fresh])
            self.rows.update(zip(missing.tolist(), range(base, base + missing.size)))
        return self.store[[self.rows[c] for c in chunks.tolist()]]


def limiter_gain(audio: np.ndarray, gain: float, ceiling: float, *, bound: np.ndarray | None = None,
                 circular: bool = False, envelopes: EnvelopeCache | None = None) -> list[tuple[int, np.ndarray]]:
    """Gain curves that keep the true peak of ``audio * gain`` under ``ceiling``.

    Only 128-sample chunks whose bound (:func:`loudness.chunk_peaks`) could exceed the ceiling
    are examined; there the 4x-oversampled peak envelope gives the reduction each
    sample needs. That need is held with an exponential release (100 ms, in dB), held 10 ms,
    and approached by a 3 ms look-ahead ramp; every step keeps the reduction at or above the
    need, so no interpolated peak is left over the ceiling.

    Args:
        bound: :func:`loudness.chunk_peaks` of ``audio`` (second value), when already known.
        envelopes: a cache of ``audio``'s chunk envelopes, kept across calls.
        circular: the audio is a loop: ramps that run past one end continue at the other.

    Returns:
        [(start, float32 gains)] over disjoint sample ranges; gains <= 1 multiply both channels.
    """
    sr = MASTER_SAMPLE_RATE
    n = audio.shape[-1]
    C = meter.TP_CHUNK
    if bound is None:
        bound = meter.chunk_peaks(audio, circular=circular)[1]
    suspects = np.flatnonzero(bound * gain > ceiling)
    if suspects.size == 0:
        return []
    if envelopes is None:
        envelopes = EnvelopeCache(audio, circular=circular)
    env = envelopes.get(suspects).astype(np.float64) * gain
    with np.errstate(divide="ignore"):
        need = np.maximum(20.0 * np.log10(env / ceiling), 0.0)
    hot = need.max(axis=-1) > 0
    suspects, need = suspects[hot], need[hot]
    if suspects.size == 0:
        return []
    attack = int(LIMITER_ATTACK_SECONDS * sr)
    hold = int(LIMITER_HOLD_SECONDS * sr)
    span_after = attack + hold + int(_RELEASE_SPAN * LIMITER_RELEASE_SECONDS * sr)
    # Regions: the hot chunks with room for the ramps around them, merged where they meet.
    starts = suspects * C - attack - 1
    stops = suspects * C + C + span_after
    if not circular:
        starts, stops = np.maximum(starts, 0), np.minimum(stops, n)
    new_region = np.concatenate([[True], starts[1:] > stops[:-1]])
    firsts = np.flatnonzero(new_region)
    lasts = np.append(firsts[1:] - 1, suspects.size - 1)
    log_alpha = -1.0 / (LIMITER_RELEASE_SECONDS * sr)
    result = []
    for i, j in zip(firsts, lasts):
        a, b = int(starts[i]), int(stops[j])
        want = np.zeros(b - a)
        for chunk, row in zip(suspects[i:j + 1], need[i:j + 1]):
            lo = chunk * C - a
            want[lo:lo + C] = row[: max(0, min(C, b - a - lo))]
        reduction = _shape_reduction(want, attack=attack, hold=hold, log_alpha=log_alpha)
        g = (10.0 ** (-reduction / 20.0)).astype(np.float32)
        if circular:
            # A region that runs past the loop point continues at the other end of the file.
            for lo, hi in ((a, min(b, 0)), (max(a, 0), min(b, n)), (max(a, n), b)):
                if lo < hi:
                    result.append((lo % n, g[lo - a:hi - a]))
        else:
            result.append((a, g))
    return _merge_regions(result)


def _shape_reduction(need: np.ndarray, *, attack: int, hold: int, log_alpha: float) -> np.ndarray:
    """A smooth reduction curve (dB) that is never less than ``need`` at any sample."""
    # Release: r[n] = max_k need[k] * alpha^(n - k), computed in the log domain as a running max.
    k = np.arange(need.size)
    with np.errstate(divide="ignore"):
        log_need = np.log(need)
    released = np.exp(np.maximum.accumulate(log_need - k * log_alpha) + k * log_alpha)
    # Hold plus look-ahead: the max over the last attack + hold samples, then a moving average
    # over the next `attack` samples. Every averaged value covers sample n, so the result >= need.
    width = attack + hold
    held = maximum_filter1d(released, size=width, origin=(width - 1) // 2, mode="constant")
    smooth = uniform_filter1d(held, size=attack, origin=-(attack // 2), mode="constant")
    return np.maximum(smooth, released)  # guards the origin conventions at the region's ends


def _merge_regions(regions: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    """Combine overlapping gain regions by taking the lower gain where they overlap."""
    if len(regions) < 2:
        return regions
    regions.sort(key=lambda r: r[0])
    merged = [regions[0]]
    for start, g in regions[1:]:
        last_start, last = merged[-1]
        if start < last_start + last.size:
            stop = max(last_start + last.size, start + g.size)
            combined = np.ones(stop - last_start, dtype=np.float32)
            combined[:last.size] = last
            view = combined[start - last_start:start - last_start + g.size]
            np.minimum(view, g, out=view)
            merged[-1] = (last_start, combined)
        else:
            merged.append((start, g))
    return merged
