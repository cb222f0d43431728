"""The mix bus: stems become one stereo bed, block by block, with the room around them.

Two buses meet here. Sustained parts (pads, strings, drones) are rendered at half rate, 24 kHz:
General MIDI samples of held voices carry almost nothing above 12 kHz, and this halves their
synthesis cost. Struck parts and textures, which do carry air, are rendered at 48 kHz. One FFT
per block and channel does the rest of the work at once:

- the half-rate bus is upsampled (its spectrum placed in the lower half of the full-rate one),
- its side signal is high-passed under ~200 Hz, so bass and drones stay centred and the bed
  keeps its low end when folded to mono (broadcast is checked in mono),
- a gentle presence and air lift brightens the instruments, and a rumble filter clears
  DC and sub-sonic drift,
- a convolution reverb (a stereo impulse response whose channels are identical below 200 Hz,
  so the room is wide but its low end mono) is added from a send of every part, at half rate.

The full-rate dry bus is added untouched. Everything is delayed by :data:`LATENCY` samples so
the zero-phase filters above become causal; :class:`Mixer` hides the delay from its caller.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

SAMPLE_RATE = 48_000
HALF_RATE = SAMPLE_RATE // 2
BLOCK = 1 << 18              # full-rate samples per block (5.5 s)
# Room for a block and an impulse response of up to 2.6 s. 3 * 2**17 rather than 2**19: its
# transforms fit the cache, and measured here they run 2.2 times faster.
FFT_SIZE = 3 << 17
ROOM_MAX = FFT_SIZE - BLOCK - 4096
LATENCY = 4096               # samples (85 ms): makes the zero-phase shaping causal
MONO_BELOW_HZ = 200.0        # side signal removed below this (4th-order slope)
ROOM_MONO_BELOW_HZ = 200.0   # the impulse response's channels are identical below this
SUBSONIC_HZ = 22.0           # the instruments' bus is high-passed here (2nd order)


def _freqs(n_fft: int) -> np.ndarray:
    return np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)


def side_highpass(freqs: np.ndarray, cutoff: float = MONO_BELOW_HZ, order: int = 4) -> np.ndarray:
    """Zero-phase magnitude of a Butterworth high-pass (what is kept of the side signal)."""
    with np.errstate(divide="ignore"):
        ratio = np.where(freqs > 0, cutoff / np.maximum(freqs, 1e-9), np.inf)
    return 1.0 / np.sqrt(1.0 + ratio ** (2 * order))


def shelf(freqs: np.ndarray, corner: float, gain_db: float) -> np.ndarray:
    """A smooth first-order high shelf: 0 dB well below ``corner``, ``gain_db`` well above."""
    g = 10.0 ** (gain_db / 20.0)
    x = (freqs / corner) ** 2
    return np.sqrt((1.0 + g * g * x) / (1.0 + x))


def fit_room(ir: np.ndarray, *, fade_seconds: float = 0.25) -> np.ndarray:
    """The impulse response cut to what the mixer holds, its end faded (a long room's last
    ~10 dB of decay, 50 dB down, are inaudible under the music)."""
    if ir.shape[-1] <= ROOM_MAX:
        return ir
    out = ir[:, :ROOM_MAX].copy()
    n = int(fade_seconds * SAMPLE_RATE)
    out[:, -n:] *= (0.5 + 0.5 * np.cos(np.pi * np.arange(n) / n)).astype(np.float32)
    return out


def mono_low_room(ir: np.ndarray, cutoff: float = ROOM_MONO_BELOW_HZ) -> np.ndarray:
    """The impulse response with its channels made identical (their mean) below ``cutoff``."""
    n = scipy.fft.next_fast_len(ir.shape[-1], real=True)
    spec = scipy.fft.rfft(ir.astype(np.float64), n=n, axis=-1)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    keep = side_highpass(f, cutoff, order=4)
    mid = spec.mean(axis=0)
    side = (spec[0] - spec[1]) / 2 * keep
    out = scipy.fft.irfft(np.stack([mid + side, mid - side]), n=n, axis=-1)[:, :ir.shape[-1]]
    return out.astype(np.float32)


def halve(x: np.ndarray, carry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decimate a full-rate block by two with a [1, 3, 3, 1] / 8 filter (a reverb send needs no
    more: the room is dark above 12 kHz). ``carry`` is the previous block's last sample."""
    padded = np.concatenate([carry, x])                 # x[-1] of the block before, then x
    y = (padded[:-1:2] + 3 * padded[1::2] + 3 * padded[2::2] + np.append(padded[3::2], x[-1])) / 8
    return y.astype(np.float32), x[-1:].copy()


class Mixer:
    """Sums the buses of a render, one :data:`BLOCK` at a time.

    The room is played at half rate (its impulse response is dark above 12 kHz anyway): the
    full-rate send is halved and joins the half-rate one, so each block costs one FFT of the
    half-rate bus and one inverse FFT per output channel.

    Args:
        room: the stereo impulse response (48 kHz) the sends play into; at most
            :data:`ROOM_MAX` samples (:func:`fit_room` cuts a longer one).
        presence_db, air_db: the lift of the half-rate bus above 2.5 kHz and above 8 kHz.
    """

    def __init__(self, room: np.ndarray, *, presence_db: float = 1.5, air_db: float = 1.5):
        if room.shape[-1] > ROOM_MAX:
            raise ValueError("impulse response too long for the mixer's FFT (see fit_room)")
        n = FFT_SIZE
        f = _freqs(n)
        self.half_bins = n // 4 + 1          # bins of the half-rate spectrum (FFT of n / 2)
        fh = f[:self.half_bins]
        delay = np.exp(-2j * np.pi * fh * LATENCY / SAMPLE_RATE)
        # A gentle rumble filter too: samples can carry DC and sub-sonic drift, which eat
        # headroom and no speaker plays.
        shape = shelf(fh, 2500.0, presence_db) * shelf(fh, 8000.0, air_db) * \
            side_highpass(fh, SUBSONIC_HZ, order=2)
        self.low_keep = (shape * delay * 2.0).astype(np.complex64)  # x2: upsampling gain
        self.low_keep[-1] *= 0.5  # the half-rate Nyquist bin is shared by +f and -f
        self.side_keep = side_highpass(fh).astype(np.float32)
        padded = np.zeros((2, n), dtype=np.float64)
        padded[:, LATENCY:LATENCY + room.shape[-1]] = mono_low_room(room)
        # The room's response below the half-rate Nyquist, with the same upsampling gain.
        self.room = (scipy.fft.rfft(padded, axis=-1)[:, :self.half_bins] * 2.0).astype(np.complex64)
        self.room[:, -1] *= 0.5
        self.tail = np.zeros((2, n - BLOCK), dtype=np.float32)
        self.dry_tail = np.zeros((2, LATENCY), dtype=np.float32)
        self.carry = np.zeros(1, dtype=np.float32)
        self.spec = np.zeros((2, n // 2 + 1), dtype=np.complex64)

    def process(self, low: np.ndarray, low_send: np.ndarray, full: np.ndarray,
                full_send: np.ndarray) -> np.ndarray:
        """One block in, one block out (``LATENCY`` samples late; see :attr:`latency`).

        Args:
            low: ``(2, BLOCK // 2)`` half-rate dry bus (sustained parts).
            low_send: ``(BLOCK // 2,)`` half-rate reverb send.
            full: ``(2, BLOCK)`` full-rate dry bus (struck parts, textures).
            full_send: ``(BLOCK,)`` full-rate reverb send.
        """
        n = FFT_SIZE
        send, self.carry = halve(full_send, self.carry)
        send += low_send
        half = scipy.fft.rfft(np.stack([low[0], low[1], send]), n=n // 2, axis=-1)
        mid = (half[0] + half[1]) * 0.5
        side = (half[0] - half[1]) * (0.5 * self.side_keep)
        spec = self.spec  # bins above the half-rate band stay zero
        h = self.half_bins
        np.multiply(half[2][None, :], self.room, out=spec[:, :h])
        spec[0, :h] += (mid + side) * self.low_keep
        spec[1, :h] += (mid - side) * self.low_keep
        wet = scipy.fft.irfft(spec, n=n, axis=-1)
        out = wet[:, :BLOCK]
        # Overlap-add: the last blocks' room rings on into this one.
        held = min(BLOCK, self.tail.shape[-1])
        out[:, :held] += self.tail[:, :held]
        rest = self.tail.shape[-1] - held
        self.tail[:, :rest] = self.tail[:, held:]
        self.tail[:, rest:] = 0.0
        self.tail += wet[:, BLOCK:]
        # The dry full-rate bus, delayed by LATENCY like everything else.
        out[:, :LATENCY] += self.dry_tail
        out[:, LATENCY:] += full[:, :BLOCK - LATENCY]
        self.dry_tail[:] = full[:, BLOCK - LATENCY:]
        return out

    latency = LATENCY
