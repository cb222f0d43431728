"""Where the mark lives: the STFT grid, the marked bins, and each cell's role in a block.

A block is 256 STFT frames (2.73 s at 48 kHz) by 75 bins (516 Hz - 3.98 kHz, where music has
energy and codecs keep it). Its 3,200 cells are two frames by three bins (single-bin cells
lost most of the mark to window leakage between neighbours of opposite sign); 968 carry a
known sync pattern, the rest the 124 code bits, 18 cells each, scattered by a fixed
permutation so that no code bit lives in one band or one moment. Every block is the same, so
any stretch of blocks can be soft-combined by folding them onto one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from soundscape.watermark import ecc, payload

SAMPLE_RATE = 48000
N_FFT = 1024                      # 21.3 ms frames: short enough for the mask to follow onsets
HOP = N_FFT // 2                  # sqrt-Hann analysis and synthesis at 50 % overlap add to one
BIN_LOW, BIN_HIGH = 11, 86        # 515.6 Hz to 3984 Hz (bin width 46.875 Hz)
N_BINS = BIN_HIGH - BIN_LOW
CHIP_FRAMES = 2
CHIP_BINS = 3
BLOCK_FRAMES = 256
BLOCK_ROWS = BLOCK_FRAMES // CHIP_FRAMES
N_COLS = N_BINS // CHIP_BINS
N_CODE = ecc.coded_length(payload.PAYLOAD_BITS)  # 124
N_CELLS = BLOCK_ROWS * N_COLS
SYNC_SHARE = 0.3
CELLS_PER_BIT = int(N_CELLS * (1 - SYNC_SHARE)) // N_CODE
N_SYNC = N_CELLS - N_CODE * CELLS_PER_BIT
# The pattern's seed: fixed, so every soundscape install marks and detects alike. It is not a
# secret (docs/watermark.md: the mark proves origin to whoever reads it, it is no DRM).
PATTERN_SEED = 0x5EED_2026


@dataclass(frozen=True)
class Pattern:
    """The fixed block layout: per cell (row, bin), its sign and role (-1 sync, else code bit)."""

    sign: np.ndarray   # (BLOCK_ROWS, N_COLS) of +-1
    role: np.ndarray   # (BLOCK_ROWS, N_COLS): -1 for sync, 0..123 for a code bit

    def cell_values(self, code_bits: np.ndarray) -> np.ndarray:
        """Each cell's +-1 value for one codeword: the sign, times the bit's +-1 for code cells
        (``(BLOCK_ROWS, N_COLS)``)."""
        value = self.sign.astype(np.float32).copy()
        code = self.role >= 0
        value[code] *= (1.0 - 2.0 * code_bits[self.role[code]]).astype(np.float32)
        return value


@lru_cache(maxsize=1)
def pattern() -> Pattern:
    rng = np.random.default_rng(PATTERN_SEED)
    sign = rng.choice(np.array([-1, 1], dtype=np.int8), size=(BLOCK_ROWS, N_COLS))
    roles = np.full(N_CELLS, -1, dtype=np.int64)
    roles[:N_CODE * CELLS_PER_BIT] = np.repeat(np.arange(N_CODE), CELLS_PER_BIT)
    roles = rng.permutation(roles).reshape(BLOCK_ROWS, N_COLS)
    return Pattern(sign=sign, role=roles)


def window(size: int = N_FFT) -> np.ndarray:
    """The periodic sqrt-Hann window: analysis and synthesis with it reconstruct exactly."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)).astype(np.float32)


def frames(x: np.ndarray, offset: int = 0, *, size: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Frames of a mono signal, frame k starting at sample ``offset + k * hop`` (a view)."""
    x = x[offset:]
    n = 0 if x.size < size else 1 + (x.size - size) // hop
    if n == 0:
        return np.zeros((0, size), dtype=x.dtype)
    return np.lib.stride_tricks.as_strided(x, shape=(n, size),
                                           strides=(x.strides[0] * hop, x.strides[0]))
