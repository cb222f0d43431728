"""How loud the mark may be: a simultaneous-masking threshold per frame and critical band.

Johnston's model (IEEE JSAC 6(2), 1988): band energies on the Bark scale, spread with
Schroeder's spreading function, lowered by an offset that depends on how tonal the frame is
(14.5 + z dB under a tone, 5.5 dB under noise), tonality from the spectral flatness measure.
From it, the largest gain change in dB each marked bin may take so that the mark's energy
stays ``MARGIN_DB`` under the threshold of its band.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from soundscape.watermark.layout import BIN_HIGH, BIN_LOW, N_FFT, SAMPLE_RATE

BIN_HZ = SAMPLE_RATE / N_FFT   # 46.875 Hz

MARGIN_DB = 3.0        # the mark aims this far under the threshold
MAX_DELTA_DB = 1.5     # never more than this change, however loud the masker
FRAME_SNR_DB = 26.0    # and never more mark than this under the whole frame (see docs: at 35 dB short clips lose the mark)
SFM_TONAL_DB = -60.0   # Johnston: a spectral flatness of -60 dB is a pure tone
_EPS = 1e-12


def bark(hz: np.ndarray) -> np.ndarray:
    """Zwicker and Terhardt's Bark scale (JASA 68(5), 1980)."""
    return 13.0 * np.arctan(0.00076 * hz) + 3.5 * np.arctan((hz / 7500.0) ** 2)


@lru_cache(maxsize=4)
def _bands(n_bins: int):
    """Bark band tables for ``n_bins`` spectrum bins of BIN_HZ each: the 48 kHz 1024-point
    spectrum (513 bins) or the embedder's 12 kHz 256-point one (129 bins, the same bins up to
    6 kHz). The bands missing at 12 kHz (Bark 20 and up) lie 3 or more bands above the
    marked band's top one (Bark 17, to 3.98 kHz), where Schroeder's function is under -50 dB:
    leaving them out only lowers the threshold, and by a negligible amount)."""
    hz = np.arange(n_bins) * BIN_HZ
    band = np.floor(bark(hz)).astype(int)
    n = band.max() + 1
    dz = np.arange(n)[:, None] - np.arange(n)[None, :]   # maskee - masker, in Bark
    sf_db = 15.81 + 7.5 * (dz + 0.474) - 17.5 * np.sqrt(1.0 + (dz + 0.474) ** 2)
    starts = np.flatnonzero(np.diff(np.concatenate([[-1], band])))  # bands are runs of bins
    return n, starts, (10.0 ** (sf_db / 10.0)).astype(np.float32)


MARKED_BANDS = np.floor(bark(np.arange(BIN_LOW, BIN_HIGH) * BIN_HZ)).astype(int)


def band_energy(power: np.ndarray) -> np.ndarray:
    """Each frame's energy per Bark band: ``(frames, bands)``."""
    return np.add.reduceat(power, _bands(power.shape[1])[1], axis=1)


def threshold(power: np.ndarray) -> np.ndarray:
    """The masking threshold (energy per Bark band) of each frame: ``(frames, bands)``.

    Args:
        power: ``(frames, bins)`` power spectra on bins of BIN_HZ from 0 Hz.
    """
    n_bands, _, spread_fn = _bands(power.shape[1])
    energy = band_energy(power)
    spread = energy @ spread_fn.T
    marked = power[:, BIN_LOW:BIN_HIGH] + _EPS
    sfm_db = 10.0 * np.log10(np.exp(np.log(marked).mean(axis=1)) / marked.mean(axis=1))
    alpha = np.clip(sfm_db / SFM_TONAL_DB, 0.0, 1.0)[:, None]
    z = np.arange(n_bands)[None, :]
    offset_db = alpha * (14.5 + z) + (1.0 - alpha) * 5.5
    return spread * 10.0 ** (-offset_db / 10.0), energy


def allowed_delta_db(power: np.ndarray) -> np.ndarray:
    """The largest gain change (dB) each marked bin of each frame may take: ``(frames, bins)``.

    A bin scaled by ``g`` adds ``(g - 1)^2`` of its energy as mark; over a band that is
    ``(g - 1)^2`` of the band's energy, kept ``MARGIN_DB`` under the band's threshold, and
    under the neighbouring frames' thresholds too: 50 % overlap spreads a frame's mark into them,
    and before an onset the frame ahead is far quieter than the frame that leaks into it.
    """
    thr, energy = threshold(power)
    held_thr = thr.copy()
    held_thr[1:] = np.minimum(held_thr[1:], thr[:-1])
    held_thr[:-1] = np.minimum(held_thr[:-1], thr[1:])
    ratio = held_thr / (energy + _EPS) * 10.0 ** (-MARGIN_DB / 10.0)
    amp = np.sqrt(np.minimum(ratio, 1.0))
    delta = 20.0 * np.log10(1.0 + amp)[:, MARKED_BANDS]
    delta = np.minimum(delta, MAX_DELTA_DB)
    # The frame's mark energy is about sum(P * (ln10/20 * delta)^2); scale it under FRAME_SNR_DB.
    k = np.log(10.0) / 20.0
    mark = (power[:, BIN_LOW:BIN_HIGH] * (k * delta) ** 2).sum(axis=1)
    allowed = power.sum(axis=1) * 10.0 ** (-FRAME_SNR_DB / 10.0)
    delta = delta * np.sqrt(np.minimum(1.0, allowed / np.maximum(mark, 1e-30)))[:, None]
    return delta.astype(np.float32)


def margin_db(original: np.ndarray, marked: np.ndarray) -> tuple[float, float]:
    """How far the mark (``marked - original``, both ``(channels, samples)`` at 48 kHz) rises
    over the original's masking threshold: the largest and the 99.9th-percentile margin in dB,
    over every frame and marked band where the music is not silent (negative: under the mask)."""
    from scipy import fft as sfft

    from soundscape.watermark.layout import frames, window

    win = window()
    mono_o = np.ascontiguousarray(np.asarray(original, dtype=np.float32).mean(axis=0))
    mono_w = np.ascontiguousarray((np.asarray(marked, dtype=np.float32)
                                   - np.asarray(original, dtype=np.float32)).mean(axis=0))
    po = np.abs(sfft.rfft(frames(mono_o) * win, axis=1)) ** 2
    pw = np.abs(sfft.rfft(frames(mono_w) * win, axis=1)) ** 2
    thr, energy = threshold(po)
    bands = np.unique(MARKED_BANDS)
    audible = energy[:, bands] > 1e-10 * energy.max()
    ratio = 10 * np.log10((band_energy(pw)[:, bands] + 1e-30) / (thr[:, bands] + 1e-30))[audible]
    return float(ratio.max()), float(np.percentile(ratio, 99.9))
