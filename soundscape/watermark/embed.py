"""Write the mark into mastered audio, in place, keeping the preset's true-peak ceiling.

Each marked STFT bin of each frame is scaled by ``10^(+-delta/20)``, its sign the cell's
value (the sync pattern's, or a code bit's), ``delta`` the mask's allowance. Only the change is
synthesised (sqrt-Hann overlap-add) and added, chunk by chunk, so a bed held in a file
(:class:`soundscape.render.AudioStore`) is marked in ranges. Where the mark would lift a true
peak over the ceiling, it is taken out again around that peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from soundscape.audio import loudness as meter
from soundscape.watermark import ecc
from soundscape.watermark.layout import (BIN_HIGH, BIN_LOW, BLOCK_FRAMES, CHIP_BINS, CHIP_FRAMES,
                                         HOP, N_BINS, N_FFT, frames, pattern, window)
from soundscape.watermark.mask import allowed_delta_db
from soundscape.watermark.payload import Payload

CHUNK_FRAMES = 4096          # 44 s of frames per pass: bounded memory for any length of bed
PEAK_GUARD_SAMPLES = 2048    # how far either side of an over-ceiling peak the mark is removed
SCHEME = "soundscape-ss1"


@dataclass(frozen=True)
class Embedded:
    """What marking did: the payload, the mark's level, and how much was taken out at peaks."""

    payload: Payload
    snr_db: float
    peaks_cleared: int
    true_peak: float = 0.0     # of the marked audio, linear (4x oversampled, per chunk)
    sample_peak: float = 0.0

    def describe(self) -> dict:
        return {"scheme": SCHEME, "payload": self.payload.hex, "key_id": f"{self.payload.key_id:04x}",
                "mark_id": f"{self.payload.mark_id:08x}",
                "snr_db": None if not math.isfinite(self.snr_db) else round(self.snr_db, 2),
                "peaks_cleared": self.peaks_cleared}


def cell_gains(n_frames: int, first_frame: int, values: np.ndarray) -> np.ndarray:
    """The +-1 value of each frame's marked bins, frames ``first_frame ..`` (block-periodic)."""
    rows = ((np.arange(first_frame, first_frame + n_frames) % BLOCK_FRAMES) // CHIP_FRAMES)
    per_bin = np.repeat(values[rows], CHIP_BINS, axis=1)
    return np.pad(per_bin, ((0, 0), (0, N_BINS - per_bin.shape[1])))


def mark_signal(audio: np.ndarray, first_frame: int, values: np.ndarray) -> np.ndarray:
    """The mark for ``audio`` (channels, samples), whose frame 0 is the block grid's
    ``first_frame``: ``(1, span)``, to be added to every channel.

    The mark is made from the channels' mid (their mean) and added to each channel alike: the
    detector listens to the mid, a mono fold-down keeps the mark whole, and one transform
    each way serves any number of channels (half the cost of marking each channel).
    """
    win = window()
    mid = np.ascontiguousarray(audio.mean(axis=0, dtype=np.float32))
    spec = sfft.rfft(frames(mid) * win, axis=1)
    n = spec.shape[0]
    delta = allowed_delta_db(spec.real ** 2 + spec.imag ** 2)
    gain = np.power(np.float32(10.0), delta * cell_gains(n, first_frame, values) / np.float32(20.0))
    gain -= np.float32(1.0)
    spec[:, :BIN_LOW] = 0       # the spectrum becomes the change: only marked bins move
    spec[:, BIN_HIGH:] = 0
    spec[:, BIN_LOW:BIN_HIGH] *= gain
    pieces = sfft.irfft(spec, n=N_FFT, axis=1)
    pieces *= win
    out = np.zeros((1, (n - 1) * HOP + N_FFT), dtype=np.float32)
    # overlap-add: frames alternate between two interleaved sequences that do not overlap, so
    # each is one reshaped view of the output (both always fit: (n - 1) * HOP + N_FFT samples)
    for parity in (0, 1):
        sel = pieces[parity::2]
        start = parity * HOP
        out[0, start:start + sel.shape[0] * N_FFT].reshape(sel.shape[0], N_FFT)[:] += sel
    return out


def embed(audio, payload: Payload, *, ceiling: float | None = None) -> Embedded:
    """Mark ``audio`` ((channels, samples) float32 at 48 kHz, an array or an AudioStore) in place.

    Args:
        payload: what the mark carries.
        ceiling: the true-peak ceiling (linear amplitude) the marked audio must stay under;
            None for the audio's own true peak before marking.
    """
    channels, n = audio.shape
    values = pattern().cell_values(ecc.encode(payload.bits()))
    if ceiling is None:
        ceiling = meter.true_peak(audio)
    host_energy = mark_energy = 0.0
    cleared = 0
    carry = np.zeros((1, HOP), dtype=np.float32)
    true_peak = sample_peak = 0.0
    n_frames = 0 if n < N_FFT else 1 + (n - N_FFT) // HOP
    for k0 in range(0, n_frames, CHUNK_FRAMES):
        k1 = min(k0 + CHUNK_FRAMES, n_frames)
        a, b = k0 * HOP, (k1 - 1) * HOP + N_FFT
        host = np.asarray(audio[:, a:b], dtype=np.float32)
        mark = mark_signal(host, k0, values)
        mark[:, :HOP] += carry
        last = k1 == n_frames
        keep = b - a if last else (k1 - k0) * HOP   # the tail overlaps the next chunk's first frame
        carry = mark[:, keep:keep + HOP].copy() if not last else carry
        places, peak, peaks, marked = _clear_peaks(host[:, :keep], mark[:, :keep], ceiling)
        cleared += places
        host_energy += sum(float(np.dot(c, c)) for c in host[:, :keep])
        mark_energy += channels * float(np.dot(mark[0, :keep], mark[0, :keep]))
        true_peak = max(true_peak, peak)
        sample_peak = max(sample_peak, peaks)
        audio[:, a:a + keep] = marked
    snr = 10 * math.log10(host_energy / mark_energy) if mark_energy > 0 else float("inf")
    return Embedded(payload=payload, snr_db=snr, peaks_cleared=cleared, true_peak=true_peak,
                    sample_peak=sample_peak)


def _clear_peaks(host: np.ndarray, mark: np.ndarray, ceiling: float):
    """Take the mark out (with a short fade) around every place it lifts a true peak over
    ``ceiling``: how many places, the marked audio's true and sample peaks, the marked audio."""
    cleared = 0
    for _ in range(4):
        marked = host + mark
        peaks, bound = meter.chunk_peaks(marked)
        peak = meter.true_peak(marked, peaks=peaks, bound=bound)
        if peak <= ceiling:
            return cleared, peak, float(peaks.max()) if peaks.size else 0.0, marked
        over = _over_ceiling(marked, ceiling)
        ramp = np.ones(marked.shape[1])
        for i in over:
            lo, hi = max(0, i - PEAK_GUARD_SAMPLES), min(ramp.size, i + PEAK_GUARD_SAMPLES)
            ramp[lo:hi] = 0.0
        # a 256-sample linear edge either side, so no step is added where the mark stops
        ramp = 1.0 - np.minimum(1.0, np.convolve(1.0 - ramp, np.ones(256) / 128.0, mode="same"))
        mark *= ramp.astype(np.float32)
        cleared += len(over)
    mark[:] = 0.0  # it would not come under: leave this stretch unmarked
    return cleared, meter.true_peak(host), float(np.abs(host).max()), host.copy()


def _over_ceiling(audio: np.ndarray, ceiling: float) -> list[int]:
    """Sample positions (coarse, per 512 samples) whose 4x-oversampled peak is over ceiling."""
    from scipy.signal import resample_poly

    hits = set()
    up = np.abs(resample_poly(audio, 4, 1, axis=1)).max(axis=0)
    for i in np.flatnonzero(up > ceiling):
        hits.add(int(i // 4) // 512 * 512 + 256)
    return sorted(hits)

