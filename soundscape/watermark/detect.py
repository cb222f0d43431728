"""Find the mark in any audio: search the block grid, decide on the sync, decode the payload.

The detector never needs the original. It takes the log-magnitude of the marked bins, removes
what is slow in time (the music's own spectrum, gain, codecs' band levels) and what is common
to all bins in a frame (a limiter's gain), folds every block onto one (soft-combining them),
and correlates the fold with the sync pattern at each of the 256 frame phases and two sub-frame
offsets. The decision is on that correlation, normalised so that under no mark it is a
Rademacher sum bounded by Hoeffding's inequality: above one threshold alone, or above a lower
one with a payload that passes its CRC (docs/watermark.md derives both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import uniform_filter1d

from soundscape.watermark import ecc
from soundscape.watermark import payload as payload_module
from soundscape.watermark.layout import (BIN_HIGH, BIN_LOW, BLOCK_FRAMES, CHIP_BINS, CHIP_FRAMES,
                                         HOP, N_BINS, N_CODE, N_COLS, N_FFT, SAMPLE_RATE, frames,
                                         pattern, window)
from soundscape.watermark.payload import PAYLOAD_BITS, Payload

# The detector listens at 12 kHz: the marked band ends at 3.98 kHz, and a quarter of the rate
# is a quarter of the transform (a 256-point frame on the same 46.875 Hz bins).
DECIMATION = 4
DETECT_RATE = SAMPLE_RATE // DECIMATION
D_FFT, D_HOP = N_FFT // DECIMATION, HOP // DECIMATION
SUB_OFFSETS = (0, D_HOP // 2)   # the grid is then at most 128 samples (at 48 kHz) off
N_TESTS = BLOCK_FRAMES * len(SUB_OFFSETS)              # phases searched: the union bound's count
FALSE_POSITIVE = 1e-6
# Two ways to be called marked, their false-positive chances adding to FALSE_POSITIVE
# (docs/watermark.md derives both): the sync alone, or a lower sync score whose decoded payload
# passes its CRC (in unmarked audio the decoded payload is uniformly distributed and
# independent of the sync score, so its CRC passes with probability 2^-8).
# A third way, when the workspace's ledger says which marks could be there (its records'
# payloads): the data cells alone match one of those codewords (:func:`match_known`).
SYNC_SHARE = 0.85
CRC_SHARE = 0.10
KNOWN_SHARE = 0.05
# Hoeffding: P(z >= t) <= exp(-t^2 / 2) per test, so N_TESTS * exp(-t^2/2) = 0.85e-6 gives t.
THRESHOLD = math.sqrt(2.0 * math.log(N_TESTS / (SYNC_SHARE * FALSE_POSITIVE)))     # 6.36
CRC_PASS = 2.0 ** -payload_module.CRC_BITS
CRC_THRESHOLD = math.sqrt(2.0 * math.log(N_TESTS * CRC_PASS
                                         / (CRC_SHARE * FALSE_POSITIVE)))           # 5.80
KNOWN_CHUNK = 4096      # candidate codewords scored at once
SMOOTH_FRAMES = 17      # the moving average taken out of each bin: 96 ms either side
CLIP_DB = 12.0          # features clipped, so one loud onset cannot outvote a block
WEIGHT_FRAMES = 17
WEIGHT_FLOOR = 0.25
CHUNK_FRAMES = 8192
MIN_SECONDS = 1.0


@dataclass(frozen=True)
class Detection:
    """What the detector found. ``payload`` is None when no mark is present or it did not decode."""

    present: bool
    z: float                 # the sync correlation, in standard deviations of a no-mark sum
    p_value: float           # bound on the chance that unmarked audio scores this high
    payload: Payload | None
    data_z: float | None     # agreement of the data cells with the decoded codeword
    blocks: float            # how many blocks' worth of audio were combined
    offset: int              # sample offset of the block grid found
    # "sync", "sync+crc" (the two blind paths) or "known" (matched to one of the marks the
    # caller listed); None when no mark was found
    via: str | None = None
    known: int = 0           # how many candidate marks were tried (the known path's union bound)
    known_threshold: float | None = None

    def describe(self) -> dict:
        return {"present": self.present, "z": round(self.z, 2), "threshold": round(THRESHOLD, 2),
                "p_value": float(f"{self.p_value:.3g}"),
                "payload": self.payload.hex if self.payload else None,
                "data_z": None if self.data_z is None else round(self.data_z, 2),
                "blocks": round(self.blocks, 2), "offset": self.offset, "via": self.via,
                "known_candidates": self.known,
                "known_threshold": (None if self.known_threshold is None
                                    else round(self.known_threshold, 2))}


def features(mono: np.ndarray, offset: int) -> np.ndarray:
    """High-passed, clipped log-magnitudes of the marked bins: ``(frames, N_BINS)``."""
    win = window(D_FFT)
    fr = frames(mono, offset, size=D_FFT, hop=D_HOP)
    out = np.empty((fr.shape[0], N_BINS), dtype=np.float32)
    for k in range(0, fr.shape[0], CHUNK_FRAMES):
        spec = sfft.rfft(fr[k:k + CHUNK_FRAMES] * win, axis=1)[:, BIN_LOW:BIN_HIGH]
        out[k:k + CHUNK_FRAMES] = spec.real ** 2 + spec.imag ** 2
    out += np.float32(1e-12)
    np.log10(out, out=out)
    out *= np.float32(10.0)
    out -= uniform_filter1d(out, SMOOTH_FRAMES, axis=0, mode="nearest")
    out -= out.mean(axis=1, keepdims=True)
    np.clip(out, -CLIP_DB, CLIP_DB, out=out)
    if WEIGHT_FRAMES:
        # Each feature weighted by the inverse of its neighbourhood's power (same bin, +-WEIGHT
        # frames): a bin between a chord's partials is noisy, one on a held partial is not.
        local = uniform_filter1d(out * out, WEIGHT_FRAMES, axis=0, mode="nearest")
        local += np.float32(WEIGHT_FLOOR)
        out /= np.sqrt(local, out=local)
    return out


def fold(z: np.ndarray) -> np.ndarray:
    """Every block of frames summed onto one: ``(BLOCK_FRAMES, N_BINS)``."""
    n = z.shape[0]
    padded = np.zeros((-(-n // BLOCK_FRAMES) * BLOCK_FRAMES, N_BINS), dtype=np.float64)
    padded[:n] = z
    return padded.reshape(-1, BLOCK_FRAMES, N_BINS).sum(axis=0)


def _cells(folded: np.ndarray) -> np.ndarray:
    """Each possible cell's feature: frames j .. j + CHIP_FRAMES - 1 of the fold summed
    (circularly)."""
    rows = sum(np.roll(folded, -k, axis=0) for k in range(CHIP_FRAMES))
    cols = rows[:, :N_COLS * CHIP_BINS].reshape(BLOCK_FRAMES, N_COLS, CHIP_BINS)
    return cols.sum(axis=2)


def _sync_frames() -> np.ndarray:
    p = pattern()
    s = np.zeros((BLOCK_FRAMES, N_COLS))
    s[::CHIP_FRAMES] = np.where(p.role < 0, p.sign, 0)
    return s


def sync_scores(cells: np.ndarray) -> np.ndarray:
    """The normalised sync correlation at every frame phase: ``(BLOCK_FRAMES,)``."""
    s = _sync_frames()
    fs, fc, fc2 = np.fft.rfft(s, axis=0), np.fft.rfft(cells, axis=0), np.fft.rfft(cells ** 2, axis=0)
    num = np.fft.irfft(np.conj(fs) * fc, n=BLOCK_FRAMES, axis=0).sum(axis=1)
    den = np.fft.irfft(np.conj(np.fft.rfft(np.abs(s), axis=0)) * fc2, n=BLOCK_FRAMES, axis=0).sum(axis=1)
    return num / np.sqrt(np.maximum(den, 1e-12))


def soft_bits(cells: np.ndarray, phase: int) -> tuple[np.ndarray, np.ndarray]:
    """Per code bit, the sum of its cells times their signs (positive: bit 0); and the cells."""
    p = pattern()
    rows = (np.arange(p.role.shape[0]) * CHIP_FRAMES + phase) % BLOCK_FRAMES
    at = cells[rows]                     # (BLOCK_ROWS, N_BINS): the cells at this phase
    code = p.role >= 0
    soft = np.zeros(N_CODE)
    np.add.at(soft, p.role[code], (p.sign * at)[code])
    return soft, at


def to_mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The mid of ``audio`` at :data:`DETECT_RATE` (12 kHz)."""
    from scipy.signal import resample_poly

    audio = np.asarray(audio, dtype=np.float32)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    g = math.gcd(int(sample_rate), DETECT_RATE)
    mono = resample_poly(mono, DETECT_RATE // g, int(sample_rate) // g)
    return np.ascontiguousarray(mono, dtype=np.float32)


def known_thresholds(n_candidates: int) -> tuple[float, float]:
    """The data-only scores one of ``n_candidates`` listed marks must reach: at the phase the
    sync chose (a union over the candidates alone), and at the best of every phase and offset
    (a union over both). Hoeffding's bound per test; each way has half of KNOWN_SHARE
    (docs/watermark.md derives both)."""
    share = KNOWN_SHARE / 2 * FALSE_POSITIVE
    n = max(n_candidates, 1)
    return (math.sqrt(2.0 * math.log(n / share)),
            math.sqrt(2.0 * math.log(N_TESTS * n / share)))


# A ledger's marks share its key id, so the first 32 code bits (the encoder's first 16 steps
# see only key bits) are the same in all of them: they say "a mark of this ledger", not which.
# The known path scores the code bits that depend on the mark id alone.
IDENTITY_BITS = np.arange(2 * payload_module.KEY_ID_BITS, N_CODE)


@lru_cache(maxsize=1)
def _masks() -> tuple[np.ndarray, np.ndarray]:
    """Per code bit, its cells' signs laid on the block's frames, as spectra along the frames
    (``(N_CODE, BLOCK_FRAMES // 2 + 1, N_COLS)``); and the spectrum of the identity bits'
    cells' places."""
    p = pattern()
    m = np.zeros((N_CODE, BLOCK_FRAMES, N_COLS))
    rows, cols = np.nonzero(p.role >= 0)
    m[p.role[rows, cols], rows * CHIP_FRAMES, cols] = p.sign[rows, cols]
    places = np.abs(m[IDENTITY_BITS]).sum(axis=0)
    return np.fft.rfft(m, axis=1), np.fft.rfft(places, axis=0)


def bit_scores(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every code bit's soft value at every frame phase (``(N_CODE, BLOCK_FRAMES)``, what
    :func:`soft_bits` gives at one phase), and the identity bits' cells' energy at each phase."""
    bits_f, places_f = _masks()
    fc = np.fft.rfft(cells, axis=0)
    soft = np.fft.irfft((np.conj(bits_f) * fc[None]).sum(axis=2), n=BLOCK_FRAMES, axis=1)
    energy = np.fft.irfft(np.conj(places_f) * np.fft.rfft(cells ** 2, axis=0), n=BLOCK_FRAMES,
                          axis=0).sum(axis=1)
    return soft, np.maximum(energy, 1e-12)


@lru_cache(maxsize=1)
def _generator() -> np.ndarray:
    """The code's generator matrix over the 48 key and mark id bits: ``(48, N_CODE)``.

    CRC-8 from a zero register and the convolutional code from state zero are both linear over
    GF(2), so a payload's 124 code bits are the XOR of the rows of its set bits.
    """
    n = payload_module.KEY_ID_BITS + payload_module.MARK_ID_BITS
    rows = []
    for i in range(n):
        value = 1 << (n - 1 - i)
        unit = Payload(value >> payload_module.MARK_ID_BITS,
                       value & ((1 << payload_module.MARK_ID_BITS) - 1))
        rows.append(ecc.encode(unit.bits()))
    return np.array(rows, dtype=np.float32)


def codeword_signs(candidates: Sequence[Payload]) -> np.ndarray:
    """Each candidate's identity code bits as +-1 (+1 for bit 0):
    ``(len(candidates), len(IDENTITY_BITS))``."""
    generator = _generator()
    n = generator.shape[0]
    values = np.array([(c.key_id << payload_module.MARK_ID_BITS) | c.mark_id
                       for c in candidates], dtype=np.uint64).reshape(-1, 1)
    shifts = np.arange(n - 1, -1, -1, dtype=np.uint64)
    data = ((values >> shifts) & np.uint64(1)).astype(np.float32)
    code = np.mod(data @ generator[:, IDENTITY_BITS], 2.0)   # exact: sums of at most 48 ones
    return 1.0 - 2.0 * code.astype(np.float64)


def match_known(per_offset: list[tuple[int, np.ndarray]], signs: np.ndarray,
                at: tuple[int, int]):
    """The best identity score of any candidate codeword: at the sync's offset and phase
    ``at``, and at any phase and offset.

    ``per_offset`` holds (sub-frame offset, its folded cells) pairs, ``signs`` the candidates'
    identity code signs. A candidate's score at a phase is the correlation of its identity
    bits' cells with its codeword, normalised like the sync score: in audio that carries none of
    this ledger's marks those cells' signs are independent of the audio and of the sync cells'
    signs (which chose ``at``), so it too is a Rademacher sum under Hoeffding's bound.
    Returns ``(here, anywhere)``: ``(score, candidate)`` at ``at`` and
    ``(score, candidate, offset, phase)`` over all, each with the soft bits there.
    """
    best = (-np.inf, -1, 0, 0, None)
    here = (-np.inf, -1, None)
    for o, cells in per_offset:
        soft, energy = bit_scores(cells)
        ident = soft[IDENTITY_BITS] / np.sqrt(energy)
        for lo in range(0, signs.shape[0], KNOWN_CHUNK):
            z = signs[lo:lo + KNOWN_CHUNK] @ ident   # (chunk, BLOCK_FRAMES)
            k, phase = np.unravel_index(int(np.argmax(z)), z.shape)
            if z[k, phase] > best[0]:
                best = (float(z[k, phase]), lo + int(k), o, int(phase), soft[:, phase])
            if o == at[0]:
                k = int(np.argmax(z[:, at[1]]))
                if z[k, at[1]] > here[0]:
                    here = (float(z[k, at[1]]), lo + k, soft[:, at[1]])
    return here, best


def _contradicted(soft: np.ndarray, candidate: Payload) -> bool:
    """Whether the unconstrained decode at this phase reads another payload that passes its
    CRC: then the audio carries that mark, and the candidate only shares bits with it."""
    read = Payload.from_bits(ecc.decode(soft, PAYLOAD_BITS))
    return read is not None and read != candidate


def detect(audio: np.ndarray, sample_rate: int = SAMPLE_RATE,
           known: Sequence[Payload] = ()) -> Detection:
    """Look for a soundscape mark in ``audio`` ((channels, samples) or (samples,)).

    ``known``: the marks that could be there (the payloads of a ledger's records). When the
    blind search finds no payload that passes its CRC, the data cells are matched against each
    of them; a match above :func:`known_threshold` is a third way to be called marked, and names
    that candidate.
    """
    mono = to_mono(audio, sample_rate)
    best = (-np.inf, 0, 0, None, 0)
    per_offset = []
    for offset in SUB_OFFSETS:
        z = features(mono, offset)
        if z.shape[0] < 2:
            continue
        cells = _cells(fold(z))
        per_offset.append((offset, cells))
        scores = sync_scores(cells)
        phase = int(np.argmax(scores))
        if scores[phase] > best[0]:
            best = (float(scores[phase]), offset, phase, cells, z.shape[0])
    score, offset, phase, cells, n_frames = best
    blocks = n_frames / BLOCK_FRAMES
    if cells is None:
        return Detection(False, 0.0, 1.0, None, None, 0.0, 0, known=len(known))
    tail = math.exp(-score * score / 2.0) if score > 0 else 1.0
    p_value = min(1.0, N_TESTS * tail)
    present = score >= THRESHOLD
    via = "sync" if present else None
    payload, data_z = None, None
    if score >= CRC_THRESHOLD:
        soft, at = soft_bits(cells, phase)
        bits = ecc.decode(soft, PAYLOAD_BITS)
        payload = Payload.from_bits(bits)
        if payload is not None:
            # a payload that passes its CRC is evidence too: the chance of that and this
            # score in unmarked audio
            if not present:
                via = "sync+crc"
            present = True
            p_value = min(p_value, N_TESTS * CRC_PASS * tail)
        if present:
            code = pattern().role >= 0
            values = pattern().cell_values(ecc.encode(bits))
            data_z = float((values * at)[code].sum() / math.sqrt(max((at[code] ** 2).sum(), 1e-12)))
    grid = (offset * DECIMATION + phase * HOP) % (BLOCK_FRAMES * HOP)
    limits = known_thresholds(len(known)) if known else None
    if payload is None and known:
        (hz, hk, hsoft), (kz, k, o, kphase, ksoft) = match_known(
            per_offset, codeword_signs(known), (offset, phase))
        for zk, cand, soft, searched in ((hz, hk, hsoft, False), (kz, k, ksoft, True)):
            if zk < limits[searched] or _contradicted(soft, known[cand]):
                continue
            tests = len(known) * (N_TESTS if searched else 1)
            p_known = min(1.0, tests * math.exp(-zk * zk / 2.0))
            if searched:
                grid = (o * DECIMATION + kphase * HOP) % (BLOCK_FRAMES * HOP)
            return Detection(True, score, min(p_value, p_known) if present else p_known,
                             known[cand], zk, blocks, grid, via="known", known=len(known),
                             known_threshold=limits[searched])
    return Detection(present, score, p_value, payload, data_z, blocks, grid, via=via,
                     known=len(known), known_threshold=None if limits is None else limits[0])
