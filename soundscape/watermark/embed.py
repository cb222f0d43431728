"""Write the mark into mastered audio, in place, keeping the preset's true-peak ceiling.

Each marked STFT bin of each frame is scaled by ``10^(+-delta/20)``, its sign the cell's
value (the sync pattern's, or a code bit's), ``delta`` the mask's allowance. The mark lives
under 4 kHz, so it is worked out at 12 kHz, where the detector listens: the channels' mid is
decimated by four and analysed with 256-point frames (the same 46.875 Hz bins as 1024 points
at 48 kHz, a quarter of the work). Only the change is synthesised, at 48 kHz (the same bins
in a 1024-point inverse transform, sqrt-Hann overlap-add), and added, chunk by chunk, so a
bed held in a file (:class:`soundscape.render.AudioStore`) is marked in ranges. Where the mark could lift a true
peak over the ceiling, it is checked and taken out again around that peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy.signal import firwin, resample_poly, sosfreqz

from soundscape.audio import loudness as meter
from soundscape.watermark import ecc
from soundscape.watermark.layout import (BIN_HIGH, BIN_LOW, BLOCK_FRAMES, CHIP_BINS, CHIP_FRAMES,
                                         HOP, N_FFT, SAMPLE_RATE, frames, pattern, window)
from soundscape.watermark.mask import allowed_delta_db
from soundscape.watermark.payload import Payload

DECIMATION = 4                      # 48 kHz -> 12 kHz, as the detector
E_FFT, E_HOP = N_FFT // DECIMATION, HOP // DECIMATION    # 256 and 128 samples at 12 kHz
CHUNK_FRAMES = 4096          # 44 s of frames per pass: bounded memory for any length of bed
# The 48 -> 12 kHz filter for the analysis: flat to 4 kHz (within 0.02 dB over the marked
# band), -46 dB at 8 kHz and -60 dB from 9 kHz (what would alias into the band: music that is
# quieter there to begin with); 33 taps, 40 % of resample_poly's default, for 40 % of the cost.
# It reaches 16 samples either side: context of 256 makes a chunk's decimated mid equal the
# whole file's.
LOWPASS = firwin(33, 6000.0, fs=SAMPLE_RATE, window=("kaiser", 4.1)).astype(np.float32)
DECIMATE_CONTEXT = 256
PEAK_GUARD_SAMPLES = 2048    # how far either side of an over-ceiling peak the mark is removed
SUBBLOCK = int(SAMPLE_RATE * meter.SUBBLOCK_SECONDS)     # 4,800: BS.1770's 100 ms sub-block
SCHEME = "soundscape-ss1"


@dataclass(frozen=True)
class Embedded:
    """What marking did: the payload, the mark's level, and how much was taken out at peaks."""

    payload: Payload
    snr_db: float
    peaks_cleared: int
    true_peak: float = 0.0     # of the marked audio, linear (4x oversampled)
    sample_peak: float = 0.0
    # The K-weighted energy the mark adds per 100 ms sub-block, summed over channels (mean
    # square, as :func:`soundscape.audio.loudness.subblock_energies`), from the spectra.
    energy_change: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def describe(self) -> dict:
        return {"scheme": SCHEME, "payload": self.payload.hex, "key_id": f"{self.payload.key_id:04x}",
                "mark_id": f"{self.payload.mark_id:08x}",
                "snr_db": None if not math.isfinite(self.snr_db) else round(self.snr_db, 2),
                "peaks_cleared": self.peaks_cleared}


def cell_gains(n_frames: int, first_frame: int, values: np.ndarray) -> np.ndarray:
    """The +-1 value of each frame's marked bins, frames ``first_frame ..`` (block-periodic)."""
    rows = ((np.arange(first_frame, first_frame + n_frames) % BLOCK_FRAMES) // CHIP_FRAMES)
    return np.repeat(values[rows], CHIP_BINS, axis=1)


@lru_cache(maxsize=1)
def _k_weight() -> np.ndarray:
    """BS.1770's K-weighting, as a power gain on each marked bin."""
    hz = np.arange(BIN_LOW, BIN_HIGH) * SAMPLE_RATE / N_FFT
    _, h = sosfreqz(meter.k_weighting_sos(SAMPLE_RATE), worN=hz, fs=SAMPLE_RATE)
    return (np.abs(h) ** 2).astype(np.float32)


def mark_signal(mid: np.ndarray, first_frame: int, values: np.ndarray):
    """The mark (at 48 kHz) for ``mid`` (the channels' mean at 12 kHz), whose frame 0 is the
    block grid's ``first_frame``; and, per frame, the energy marking adds to one channel
    (K-weighted, in 12 kHz sample units).

    A bin ``X`` scaled by ``g`` becomes ``g X``, so each channel ``C`` that the change
    ``(g - 1) X`` is added to gains ``2 Re(C* (g - 1) X) + |(g - 1) X|^2``; averaged over the
    channels (whose mean is ``X``) that is ``(g^2 - 1) |X|^2``.
    """
    win = window(E_FFT)
    spec = sfft.rfft(frames(mid, size=E_FFT, hop=E_HOP) * win, axis=1)
    n = spec.shape[0]
    band = spec[:, BIN_LOW:BIN_HIGH]
    power = spec.real ** 2 + spec.imag ** 2
    delta = allowed_delta_db(power)
    gain = np.power(np.float32(10.0), delta * cell_gains(n, first_frame, values) / np.float32(20.0))
    # one-sided spectrum: each bin stands for itself and its mirror, over E_FFT points
    added = ((gain * gain - 1.0) * power[:, BIN_LOW:BIN_HIGH] * _k_weight()).sum(axis=1) * (2.0 / E_FFT)
    # The change goes straight to 48 kHz: the same bins in a 1024-point inverse transform
    # (four times the points, so four times the coefficients for the same amplitude) make the
    # band-limited 48 kHz version of each piece, with no interpolation filter and no images.
    # (irfft pads the bins above the band with zeros itself)
    change = np.zeros((n, BIN_HIGH), dtype=spec.dtype)
    change[:, BIN_LOW:] = band * ((gain - np.float32(1.0)) * np.float32(DECIMATION))
    pieces = sfft.irfft(change, n=N_FFT, axis=1)
    pieces *= window()
    out = np.zeros((n - 1) * HOP + N_FFT, dtype=np.float32)
    # overlap-add: frames alternate between two interleaved sequences that do not overlap, so
    # each is one reshaped view of the output
    for parity in (0, 1):
        sel = pieces[parity::2]
        start = parity * HOP
        out[start:start + sel.shape[0] * N_FFT].reshape(sel.shape[0], N_FFT)[:] += sel
    return out, added


def _mid_12k(audio, lo12: int, hi12: int) -> np.ndarray:
    """The channels' mid at 12 kHz, samples ``lo12 .. hi12`` of the whole file's decimation."""
    n = audio.shape[1]
    a = max(0, DECIMATION * lo12 - DECIMATE_CONTEXT)
    b = min(n, DECIMATION * hi12 + DECIMATE_CONTEXT)
    part = np.asarray(audio[:, a:b], dtype=np.float32)
    mid = part[0].copy() if part.shape[0] == 1 else np.add(part[0], part[1])
    for extra in part[2:]:
        mid += extra
    mid *= np.float32(1.0 / part.shape[0])
    low = resample_poly(mid, 1, DECIMATION, window=LOWPASS).astype(np.float32)
    skip = (DECIMATION * lo12 - a) // DECIMATION
    out = np.zeros(hi12 - lo12, dtype=np.float32)
    got = low[skip:skip + hi12 - lo12]
    out[:got.size] = got
    return out


def embed(audio, payload: Payload, *, ceiling: float | None = None,
          host_true_peak: float | None = None, host_chunk_peaks: np.ndarray | None = None) -> Embedded:
    """Mark ``audio`` ((channels, samples) float32 at 48 kHz, an array or an AudioStore) in place.

    Args:
        payload: what the mark carries.
        ceiling: the true-peak ceiling (linear amplitude) the marked audio must stay under;
            None for the audio's own true peak before marking.
        host_true_peak: the audio's true peak before marking (linear), when already measured
            (mastering does): where it plus the most the mark can add stays under the ceiling,
            no stretch needs checking.
        host_chunk_peaks: per 128-sample chunk, an upper bound on the audio's true peak before
            marking (mastering keeps one); with it, measuring the marked file's true peak
            looks again only at the chunks that could now hold it, and the file's samples are
            not scanned again for peak bounds.
    """
    channels, n = audio.shape
    values = pattern().cell_values(ecc.encode(payload.bits()))
    if host_true_peak is None:
        host_true_peak = meter.true_peak(audio)
    if ceiling is None:
        ceiling = host_true_peak
    host_energy = mark_energy = mark_peak = 0.0
    cleared = 0
    # whole 48 kHz frames; the 12 kHz frames on the same grid then lie inside the file too
    n_frames = 0 if n < N_FFT else 1 + (n - N_FFT) // HOP
    energy_change = np.zeros(n // SUBBLOCK)
    carry = np.zeros(HOP, dtype=np.float32)
    sample_peak = 0.0
    C = meter.TP_CHUNK                      # HOP is a whole number of these chunks
    n_chunks = -(-n // C)
    mark_peaks = np.zeros(n_chunks)         # the mark's sample peak per chunk
    for k0 in range(0, n_frames, CHUNK_FRAMES):
        k1 = min(k0 + CHUNK_FRAMES, n_frames)
        lo12, hi12 = k0 * E_HOP, (k1 - 1) * E_HOP + E_FFT
        mark, added = mark_signal(_mid_12k(audio, lo12, hi12), k0, values)
        # each frame's added energy to its 100 ms sub-block (by its centre), in 48 kHz mean square
        centre = (np.arange(k0, k1) * HOP + N_FFT // 2) // SUBBLOCK
        inside = centre < energy_change.size
        np.add.at(energy_change, centre[inside], channels * added[inside] / (SUBBLOCK / DECIMATION))
        mark[:HOP] += carry
        start = k0 * HOP
        last = k1 == n_frames
        keep = mark.size if last else (k1 - k0) * HOP  # the tail overlaps the next chunk's first frame
        if not last:
            carry = mark[keep:keep + HOP].copy()
        stop = start + keep
        host = np.asarray(audio[:, start:stop], dtype=np.float32)
        change = mark[:keep]
        # The 4x-interpolated peak of host + mark is at most the host's plus the filter's gain
        # bound times the mark's sample peak (the interpolation is linear): only a stretch
        # where that could pass the ceiling is checked and cleared.
        peak = float(np.abs(change).max(initial=0.0))
        if host_true_peak + meter.TRUE_PEAK_GAIN_BOUND * peak > ceiling:
            places, change = _clear_peaks(host, change, ceiling)
            cleared += places
            peak = float(np.abs(change).max(initial=0.0))
        mark_peak = max(mark_peak, peak)
        held = np.zeros(-(-change.size // C) * C, dtype=np.float32)
        np.abs(change, out=held[:change.size])
        mark_peaks[start // C:start // C + held.size // C] = held.reshape(-1, C).max(axis=1)
        host_energy += sum(float(np.dot(c, c)) for c in host)
        mark_energy += channels * float(np.dot(change, change))
        host += change
        sample_peak = max(sample_peak, float(np.abs(host).max(initial=0.0)))
        audio[:, start:stop] = host
    tail = 0 if n_frames == 0 else (n_frames - 1) * HOP + N_FFT   # past the last frame: unmarked
    if tail < n:
        sample_peak = max(sample_peak, float(np.abs(np.asarray(audio[:, tail:n])).max()))
    if host_chunk_peaks is not None and host_chunk_peaks.size == n_chunks:
        # Each chunk's interpolated values are at most the host's bound plus the filter's gain
        # bound times the mark's peak within reach (its own and its neighbours' samples); and
        # the marked audio's true peak is at least the host's, less what the mark can take off
        # where the host peaked. Only chunks whose bound reaches that are measured again.
        reach = mark_peaks.copy()
        reach[1:] = np.maximum(reach[1:], mark_peaks[:-1])
        reach[:-1] = np.maximum(reach[:-1], mark_peaks[1:])
        reach *= meter.TRUE_PEAK_GAIN_BOUND
        bound = host_chunk_peaks + reach
        top = host_chunk_peaks >= host_true_peak
        floor = host_true_peak - (float(reach[top].max()) if top.any()
                                  else meter.TRUE_PEAK_GAIN_BOUND * mark_peak)
        peaks = np.zeros_like(bound)    # a lower bound on the samples, as true_peak needs
    else:
        floor = host_true_peak - meter.TRUE_PEAK_GAIN_BOUND * mark_peak
        peaks, bound = meter.chunk_peaks(audio)
    true_peak = meter.true_peak(audio, peaks=peaks, bound=bound, at_least=floor) if n else 0.0
    true_peak = max(true_peak, sample_peak)
    snr = 10 * math.log10(host_energy / mark_energy) if mark_energy > 0 else float("inf")
    return Embedded(payload=payload, snr_db=snr, peaks_cleared=cleared, true_peak=true_peak,
                    sample_peak=sample_peak,
                    energy_change=energy_change)


def _clear_peaks(host: np.ndarray, mark: np.ndarray, ceiling: float):
    """Take the mark (``(samples,)``, added to every channel of ``host``) out, with a short
    fade, around every place it lifts a true peak over ``ceiling``: how many places, and the
    mark that is left."""
    cleared = 0
    for _ in range(4):
        marked = host + mark
        if meter.true_peak(marked) <= ceiling:
            return cleared, mark
        over = _over_ceiling(marked, ceiling)
        ramp = np.ones(marked.shape[1])
        for i in over:
            lo, hi = max(0, i - PEAK_GUARD_SAMPLES), min(ramp.size, i + PEAK_GUARD_SAMPLES)
            ramp[lo:hi] = 0.0
        # a 256-sample linear edge either side, so no step is added where the mark stops
        ramp = 1.0 - np.minimum(1.0, np.convolve(1.0 - ramp, np.ones(256) / 128.0, mode="same"))
        mark = mark * ramp.astype(np.float32)
        cleared += len(over)
    return cleared, np.zeros_like(mark)  # it would not come under: leave this stretch unmarked


def _over_ceiling(audio: np.ndarray, ceiling: float) -> list[int]:
    """Sample positions (coarse, per 512 samples) whose 4x-oversampled peak is over ceiling."""
    hits = set()
    up = np.abs(resample_poly(audio, 4, 1, axis=1)).max(axis=0)
    for i in np.flatnonzero(up > ceiling):
        hits.add(int(i // 4) // 512 * 512 + 256)
    return sorted(hits)

