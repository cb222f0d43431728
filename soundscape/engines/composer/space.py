"""Space: the room's impulse response (decaying filtered noise), and equal-power panning."""

from __future__ import annotations

import numpy as np
import scipy.signal

from soundscape.engines.composer.synth import SAMPLE_RATE

# RT60: the time a reverb takes to fall by 60 dB (ISO 3382); exp(-t/tau) falls 60 dB at 6.91 tau.
RT60_PER_TAU = 3.0 * np.log(10.0)


def impulse_response(rng: np.random.Generator, *, rt60: float, brightness: float = 0.5,
                     predelay: float = 0.012, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A stereo impulse response ``(2, n)``: independent noise per channel, decaying as ``rt60``.

    High frequencies die faster than low ones (air and wall absorption), made by fading between
    a bright and a dark filtered copy of the noise; the early part is sparse, like reflections.
    """
    n = int((rt60 * 1.1 + predelay) * sample_rate)
    t = np.arange(n) / sample_rate
    tau = rt60 / RT60_PER_TAU
    noise = rng.standard_normal((2, n))
    dark_cut = 1500.0 + 4000.0 * brightness
    sos_dark = scipy.signal.butter(2, dark_cut, fs=sample_rate, output="sos")
    sos_bright = scipy.signal.butter(2, min(16000.0, 3 * dark_cut), fs=sample_rate, output="sos")
    dark = scipy.signal.sosfilt(sos_dark, noise, axis=-1)
    bright = scipy.signal.sosfilt(sos_bright, noise, axis=-1)
    mix = np.clip(t / (rt60 * 0.5), 0.0, 1.0)  # the tail darkens as it decays
    ir = (bright * (1 - mix) + dark * mix) * np.exp(-t / tau)
    # Sparse early reflections fade into the dense tail over the first 80 ms.
    early = np.clip(t / 0.08, 0.0, 1.0)
    sparse = (rng.random((2, n)) < 0.004) * rng.standard_normal((2, n)) * 4.0
    ir = ir * early + sparse * (1 - early) * np.exp(-t / tau)
    ir[:, t < predelay] = 0.0
    ir /= np.sqrt(np.sum(ir ** 2, axis=-1, keepdims=True))
    sos_dc = scipy.signal.butter(1, 60.0, btype="highpass", fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos_dc, ir, axis=-1).astype(np.float32)


def pan_gains(pan: float) -> tuple[float, float]:
    """Equal-power (-3 dB centre) left/right gains for ``pan`` in -1 (left) .. 1 (right)."""
    angle = (pan + 1.0) * np.pi / 4.0
    return float(np.cos(angle)), float(np.sin(angle))
