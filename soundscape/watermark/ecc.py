"""The payload's error-correcting code: the rate-1/2, constraint-length-7 convolutional code
(generators 133 and 171 octal, the NASA / IEEE 802.11 code) with a soft-decision Viterbi decoder."""

from __future__ import annotations

import numpy as np

CONSTRAINT = 7
GENERATORS = (0o133, 0o171)
TAIL = CONSTRAINT - 1  # zero bits that bring the encoder back to state 0
_STATES = 1 << (CONSTRAINT - 1)


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x >>= 1
    return out


# For each state (the last 6 input bits) and input bit: the next state and the two code bits.
_reg = (np.arange(_STATES)[:, None] << 1 | np.arange(2)[None, :])  # 7-bit register, newest low
_NEXT = _reg & (_STATES - 1)
_OUT = np.stack([_parity(_reg & g) for g in GENERATORS], axis=-1)  # (states, 2, 2)


def coded_length(n_bits: int) -> int:
    return 2 * (n_bits + TAIL)


def encode(bits) -> np.ndarray:
    """Code bits (0/1) followed by the zero tail: ``2 * (len(bits) + 6)`` code bits."""
    state = 0
    out = []
    for b in list(bits) + [0] * TAIL:
        out.extend(_OUT[state, int(b)])
        state = _NEXT[state, int(b)]
    return np.array(out, dtype=np.uint8)


def decode(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """The most likely ``n_bits`` message bits given soft values (positive means bit 0).

    The metric is the correlation of the soft values with each path's code bits, which is the
    maximum-likelihood metric for Gaussian noise whatever the soft values' scale.
    """
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, 2)
    steps = n_bits + TAIL
    signs = 1.0 - 2.0 * _OUT  # (states, input, 2): +1 for code bit 0
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    back = np.zeros((steps, _STATES), dtype=np.int64)  # chosen (previous state, input) per state
    prev_state = np.repeat(np.arange(_STATES), 2)
    inputs = np.tile(np.arange(2), _STATES)
    nexts = _NEXT.reshape(-1)
    for t in range(steps):
        branch = (signs * soft[t]).sum(axis=-1).reshape(-1)  # per (state, input)
        if t >= n_bits:
            branch = np.where(inputs == 0, branch, -np.inf)  # the tail is known to be zeros
        cand = metric[prev_state] + branch
        new = np.full(_STATES, -np.inf)
        choice = np.zeros(_STATES, dtype=np.int64)
        order = np.argsort(cand, kind="stable")  # later writes win: the best candidate last
        new[nexts[order]] = cand[order]
        choice[nexts[order]] = order
        metric, back[t] = new, choice
    state, bits = 0, []
    for t in range(steps - 1, -1, -1):
        k = back[t, state]
        bits.append(inputs[k])
        state = prev_state[k]
    return np.array(bits[::-1][:n_bits], dtype=np.uint8)
