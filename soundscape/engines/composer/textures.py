"""Textures of nature and places, made of events where nature is made of events.

Rain is drops, fire is crackles, a harbour is lapping water, gulls and a distant bell. Each
texture is layers of two kinds, both rendered block by block and never from a loop:

- :class:`NoiseLayer`: coloured noise synthesised afresh for every frame (random spectrum,
  shaped, inverse FFT; frames joined by equal-power crossfades), identical in both channels
  below 200 Hz so the low end survives a mono fold-down, under a slowly moving gain;
- :class:`EventLayer`: short sounds placed at random times (Poisson, or the rhythm of a
  source such as a dripping tap), each drawn from a bank of varied takes and panned.

A loop's events are planned over one cycle and played again on either side of the seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from soundscape.engines.composer.score import CONTROL_RATE, control_window
from soundscape.engines.composer.synth import slow_walk

SAMPLE_RATE = 48_000
FRAME = 1 << 15             # noise frame (0.68 s)
CROSSFADE = 2048            # samples of equal-power crossfade between frames
MONO_BELOW_HZ = 200.0
TAKES = 24                  # varied takes of each event sound


# --- noise -----------------------------------------------------------------------------------

def band(low: float | None, high: float | None, *, order: int = 2, tilt_db: float = 0.0):
    """A magnitude response: Butterworth band edges (None: open) and a tilt in dB per octave
    around 1 kHz (negative is darker, like pink noise at -3)."""
    def response(f: np.ndarray) -> np.ndarray:
        g = np.ones_like(f)
        safe = np.maximum(f, 1.0)
        if low is not None:
            g *= 1.0 / np.sqrt(1.0 + (low / safe) ** (2 * order))
        if high is not None:
            g *= 1.0 / np.sqrt(1.0 + (safe / high) ** (2 * order))
        if tilt_db:
            g *= 10.0 ** (tilt_db * np.log2(safe / 1000.0) / 20.0)
        g[0] = 0.0
        return g
    return response


class NoiseLayer:
    """Fresh coloured noise under a gain curve, rendered in order, block after block."""

    def __init__(self, response, gain: np.ndarray, rng: np.random.Generator, *, level: float):
        f = np.fft.rfftfreq(FRAME, 1.0 / SAMPLE_RATE)
        shape = response(f)
        shape /= np.sqrt(np.mean(shape ** 2)) or 1.0
        # Parts uniform in -0.5..0.5 have variance 1/12; sqrt(6 * FRAME) makes unit-RMS noise.
        self.shape = (shape * np.sqrt(6.0 * FRAME)).astype(np.float32)
        self.common = f < MONO_BELOW_HZ
        self.gain = gain.astype(np.float32)
        self.level = np.float32(level)
        self.rng = rng
        hop = FRAME - CROSSFADE
        self.hop = hop
        u = (np.arange(CROSSFADE) + 0.5) / CROSSFADE
        self.fade_in = np.sin(0.5 * np.pi * u).astype(np.float32)
        self.fade_out = np.cos(0.5 * np.pi * u).astype(np.float32)
        self.buffer = np.zeros((2, 0), dtype=np.float32)
        self.carry = None         # the previous frame's last CROSSFADE samples
        self.pos = 0              # samples handed out so far

    def mean_square(self, seconds: float) -> float:
        """Expected mean square per channel over ``seconds`` (the noise has unit RMS)."""
        n = min(self.gain.size, int(seconds * CONTROL_RATE) + 1)
        return float(self.level) ** 2 * float(np.mean(self.gain[:n].astype(np.float64) ** 2))

    def _frame(self) -> np.ndarray:
        # Uniform real and imaginary parts: each output sample sums thousands of them, so the
        # noise is Gaussian all the same, and uniform numbers cost a quarter of normal ones.
        bins = self.shape.size
        parts = self.rng.random((2, 2, bins), dtype=np.float32)
        parts -= np.float32(0.5)
        parts[1, :, self.common] = parts[0, :, self.common]   # the same noise below 200 Hz
        spectrum = np.empty((2, bins), dtype=np.complex64)
        spectrum.real = parts[:, 0]
        spectrum.imag = parts[:, 1]
        spectrum *= self.shape
        return scipy.fft.irfft(spectrum, n=FRAME, axis=-1)

    def _more(self) -> None:
        frame = self._frame()
        if self.carry is not None:
            frame[:, :CROSSFADE] = frame[:, :CROSSFADE] * self.fade_in + self.carry * self.fade_out
        self.carry = frame[:, self.hop:].copy()
        self.buffer = np.concatenate([self.buffer, frame[:, :self.hop]], axis=-1)

    def add_to(self, out: np.ndarray, start: int, weight: float = 1.0, *,
               gain_start: int | None = None) -> None:
        """Add the next ``out.shape[-1]`` samples (``start`` must follow on from the last call).

        ``gain_start`` is where the gain curve is read from (default: ``start``, the curve
        covers the whole render; 0: the curve was made for this block alone)."""
        n = out.shape[-1]
        if start != self.pos:
            raise ValueError("noise layers render in order")
        while self.buffer.shape[-1] < n:
            self._more()
        piece, self.buffer = self.buffer[:, :n], self.buffer[:, n:]
        self.pos += n
        g = control_window(self.gain, start if gain_start is None else gain_start, n,
                           SAMPLE_RATE // CONTROL_RATE)
        out += piece * (g * (self.level * np.float32(weight)))


# --- events ----------------------------------------------------------------------------------

@dataclass
class EventLayer:
    """Short sounds at given times: ``times`` (samples), a bank of ``takes``, per-event take
    index, gain and pan. Placed block by block."""

    times: np.ndarray
    takes: list[np.ndarray]
    which: np.ndarray
    gains: np.ndarray
    pans: np.ndarray
    level: float

    def __post_init__(self) -> None:
        order = np.argsort(self.times, kind="stable")
        self.times = self.times[order].astype(np.int64)
        self.which, self.gains, self.pans = self.which[order], self.gains[order], self.pans[order]
        self.longest = max((t.size for t in self.takes), default=0)
        angle = (np.clip(self.pans, -1.0, 1.0) + 1.0) * (np.pi / 4.0)  # equal power, as pan_gains
        self.pan_l = np.cos(angle).astype(np.float32)
        self.pan_r = np.sin(angle).astype(np.float32)

    def mean_square(self, seconds: float) -> float:
        """Mean square per channel of the events over ``seconds`` (energy over time)."""
        if self.times.size == 0 or seconds <= 0:
            return 0.0
        energy = np.array([float(np.sum(t.astype(np.float64) ** 2)) for t in self.takes])
        inside = (self.times >= 0) & (self.times < seconds * SAMPLE_RATE)
        per_event = energy[self.which[inside]] * (self.gains[inside].astype(np.float64) ** 2)
        return float(self.level) ** 2 * float(per_event.sum()) / 2 / (seconds * SAMPLE_RATE)

    def add_to(self, out: np.ndarray, start: int, weight: float = 1.0) -> None:
        n = out.shape[-1]
        lo = int(np.searchsorted(self.times, start - self.longest))
        hi = int(np.searchsorted(self.times, start + n))
        if hi <= lo:
            return
        # Per-event numbers as Python lists: tens of thousands of events go through this loop.
        times = self.times[lo:hi].tolist()
        which = self.which[lo:hi].tolist()
        scale = float(self.level * weight)
        left = (self.gains[lo:hi] * self.pan_l[lo:hi] * scale).tolist()
        right = (self.gains[lo:hi] * self.pan_r[lo:hi] * scale).tolist()
        takes, end = self.takes, start + n
        out_l, out_r = out[0], out[1]
        for t, w, gl, gr in zip(times, which, left, right):
            take = takes[w]
            a, b = max(t, start), min(t + take.size, end)
            if a >= b:
                continue
            piece = take[a - t:b - t]
            out_l[a - start:b - start] += piece * gl
            out_r[a - start:b - start] += piece * gr


def _decay(n: int, tau: float, *, attack: float = 0.0005) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    env = np.exp(-t / tau) * np.clip(t / max(attack, 1e-6), 0.0, 1.0)
    return env.astype(np.float32)


def _normalise(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) or 1.0
    return (x / peak).astype(np.float32)


def _filtered_burst(rng, n: int, low: float, high: float, tau: float) -> np.ndarray:
    """A short noise burst through a band-pass (made by FFT, as a take is short)."""
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec = np.fft.rfft(rng.standard_normal(n)) * band(low, high, order=2)(f)
    return _normalise(np.fft.irfft(spec, n=n) * _decay(n, tau))


def drop_takes(rng) -> list[np.ndarray]:
    """Rain drops on leaves and stone: a tick, then a short resonance that glides up."""
    takes = []
    for _ in range(TAKES):
        n = int(rng.uniform(0.012, 0.045) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.uniform(1800, 5500)
        glide = f0 * (1 + rng.uniform(0.05, 0.5) * t / t[-1])
        tone = np.sin(2 * np.pi * np.cumsum(glide) / SAMPLE_RATE) * _decay(n, rng.uniform(0.003, 0.012))
        tick = _filtered_burst(rng, n, 2500, 14000, 0.0015)
        takes.append(_normalise(0.7 * tone + rng.uniform(0.4, 1.0) * tick))
    return takes


def drip_takes(rng) -> list[np.ndarray]:
    """Water drips (a bubble's resonance, rising in pitch as it closes: Minnaert's bubble)."""
    takes = []
    for _ in range(TAKES):
        n = int(rng.uniform(0.05, 0.12) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.uniform(600, 1800)
        f = f0 * (1 + rng.uniform(0.6, 1.6) * (t / t[-1]) ** 1.5)
        tone = np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * _decay(n, rng.uniform(0.012, 0.03), attack=0.001)
        # The tick of the drop meeting the water, then the bubble's ring.
        takes.append(_normalise(tone + 0.35 * _filtered_burst(rng, n, 3000, 12000, 0.001)))
    return takes


def crackle_takes(rng) -> list[np.ndarray]:
    """Fire crackles: a few clustered, bright micro-bursts."""
    takes = []
    for _ in range(TAKES):
        n = int(rng.uniform(0.004, 0.03) * SAMPLE_RATE)
        x = np.zeros(n)
        for _ in range(int(rng.integers(1, 5))):
            at = int(rng.integers(0, max(n - 64, 1)))
            m = min(int(rng.uniform(0.0008, 0.004) * SAMPLE_RATE), n - at)
            x[at:at + m] += _filtered_burst(rng, m, rng.uniform(1500, 4000), 16000, 0.0008)[:m] * rng.uniform(0.3, 1.0)
        takes.append(_normalise(x))
    return takes


def pop_takes(rng) -> list[np.ndarray]:
    """Larger pops of a fire (resin, a log settling): lower and longer."""
    return [_filtered_burst(rng, int(rng.uniform(0.03, 0.09) * SAMPLE_RATE), rng.uniform(300, 700),
                            rng.uniform(2500, 5000), rng.uniform(0.006, 0.02)) for _ in range(TAKES)]


def click_takes(rng) -> list[np.ndarray]:
    """Vinyl clicks and ticks."""
    return [_filtered_burst(rng, int(rng.uniform(0.001, 0.004) * SAMPLE_RATE), 2000, 15000, 0.0005)
            for _ in range(TAKES)]


def chirp_takes(rng) -> list[np.ndarray]:
    """Birdsong: phrases of 2-6 short sweeps."""
    takes = []
    for _ in range(TAKES):
        base = rng.uniform(2500, 5500)
        parts = []
        for _ in range(int(rng.integers(2, 7))):
            m = int(rng.uniform(0.04, 0.14) * SAMPLE_RATE)
            t = np.arange(m) / SAMPLE_RATE
            sweep = base * (1 + rng.uniform(-0.35, 0.45) * t / t[-1])
            env = np.sin(np.pi * t / t[-1]) ** 2
            parts.append(np.sin(2 * np.pi * np.cumsum(sweep) / SAMPLE_RATE) * env)
            parts.append(np.zeros(int(rng.uniform(0.03, 0.12) * SAMPLE_RATE)))
        takes.append(_normalise(np.concatenate(parts)))
    return takes


def gull_takes(rng) -> list[np.ndarray]:
    """Gull calls: harmonic cries whose pitch leaps up then falls ("kee-ow"), in twos and threes."""
    takes = []
    for _ in range(TAKES):
        parts = []
        for _ in range(int(rng.integers(1, 4))):
            m = int(rng.uniform(0.25, 0.5) * SAMPLE_RATE)
            t = np.arange(m) / SAMPLE_RATE
            x = t / t[-1]
            f = rng.uniform(900, 1300) * (1 + 0.5 * np.sin(np.pi * np.minimum(x * 1.6, 1.0))) * (1 - 0.3 * x)
            phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
            tone = sum((0.7 ** h) * np.sin(h * phase) for h in range(1, 7))
            env = np.sin(np.pi * x) ** 0.6 * (1 + 0.3 * np.sin(2 * np.pi * 28 * t))
            parts.append(tone * env)
            parts.append(np.zeros(int(rng.uniform(0.08, 0.25) * SAMPLE_RATE)))
        takes.append(_normalise(np.concatenate(parts)))
    return takes


def cricket_takes(rng) -> list[np.ndarray]:
    """Cricket chirps: 3-5 pulses of a 4-5 kHz tone at ~30 pulses per second."""
    takes = []
    for _ in range(TAKES):
        carrier = rng.uniform(4000, 5200)
        pulses = int(rng.integers(3, 6))
        pulse = int(0.018 * SAMPLE_RATE)
        gap = int(rng.uniform(0.012, 0.02) * SAMPLE_RATE)
        n = pulses * (pulse + gap)
        t = np.arange(n) / SAMPLE_RATE
        env = np.zeros(n)
        for k in range(pulses):
            a = k * (pulse + gap)
            env[a:a + pulse] = np.sin(np.pi * np.arange(pulse) / pulse)
        takes.append(_normalise(np.sin(2 * np.pi * carrier * t) * env))
    return takes


def bee_takes(rng) -> list[np.ndarray]:
    """Bees passing: a buzzing harmonic tone with wing-beat wobble, swelling and fading."""
    takes = []
    for _ in range(TAKES // 3):
        m = int(rng.uniform(2.5, 6.0) * SAMPLE_RATE)
        t = np.arange(m) / SAMPLE_RATE
        f = rng.uniform(190, 250) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
                                     + 0.02 * np.sin(2 * np.pi * 0.4 * t))
        phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
        tone = sum(np.sin(h * phase) / h for h in range(1, 16))
        env = np.sin(np.pi * t / t[-1]) ** 2
        takes.append(_normalise(tone * env))
    return takes


def thunder_takes(rng) -> list[np.ndarray]:
    """Thunder: a crack, then a long rolling rumble under 300 Hz."""
    takes = []
    for _ in range(6):
        m = int(rng.uniform(5.0, 9.0) * SAMPLE_RATE)
        f = np.fft.rfftfreq(m, 1.0 / SAMPLE_RATE)
        rumble = np.fft.irfft(np.fft.rfft(rng.standard_normal(m)) * band(25, 300, order=2)(f), n=m)
        t = np.arange(m) / SAMPLE_RATE
        roll = np.exp(-t / rng.uniform(1.5, 3.0)) * (1 + 0.6 * np.abs(np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t)))
        crack = np.fft.irfft(np.fft.rfft(rng.standard_normal(m)) * band(400, 6000)(f), n=m) * np.exp(-t / 0.15)
        env = np.clip(t / 0.05, 0, 1)
        takes.append(_normalise((rumble * roll + 0.3 * crack * rng.uniform(0.3, 1.0)) * env))
    return takes


def bell_buoy_takes(rng) -> list[np.ndarray]:
    """A distant harbour bell: inharmonic partials with long decays."""
    takes = []
    for _ in range(6):
        m = int(4.0 * SAMPLE_RATE)
        t = np.arange(m) / SAMPLE_RATE
        f0 = rng.uniform(350, 520)
        tone = sum(a * np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 6.3)) * np.exp(-t / d)
                   for r, a, d in ((1.0, 1.0, 2.5), (2.0, 0.5, 1.8), (2.76, 0.35, 1.2), (5.4, 0.15, 0.6)))
        takes.append(_normalise(tone * np.clip(t / 0.003, 0, 1)))
    return takes


def lap_takes(rng) -> list[np.ndarray]:
    """Water lapping against a hull or quay: a soft low splash."""
    takes = []
    for _ in range(TAKES):
        m = int(rng.uniform(0.4, 1.2) * SAMPLE_RATE)
        f = np.fft.rfftfreq(m, 1.0 / SAMPLE_RATE)
        x = np.fft.irfft(np.fft.rfft(rng.standard_normal(m)) * band(150, rng.uniform(1200, 3000))(f), n=m)
        t = np.arange(m) / SAMPLE_RATE
        env = (t / t[-1]) ** 0.3 * np.exp(-t / (0.35 * t[-1]))
        takes.append(_normalise(x * env))
    return takes


def crunch_takes(rng) -> list[np.ndarray]:
    """Ice crystals in snowfall: faint high glints."""
    takes = []
    for _ in range(TAKES):
        m = int(rng.uniform(0.05, 0.15) * SAMPLE_RATE)
        t = np.arange(m) / SAMPLE_RATE
        tone = np.sin(2 * np.pi * rng.uniform(5000, 9000) * t) * _decay(m, rng.uniform(0.01, 0.04))
        takes.append(_normalise(tone))
    return takes


def car_takes(rng) -> list[np.ndarray]:
    """A car passing in the distance: band noise swelling and fading over a few seconds."""
    takes = []
    for _ in range(8):
        m = int(rng.uniform(3.0, 7.0) * SAMPLE_RATE)
        f = np.fft.rfftfreq(m, 1.0 / SAMPLE_RATE)
        x = np.fft.irfft(np.fft.rfft(rng.standard_normal(m)) * band(120, 1800, tilt_db=-3)(f), n=m)
        t = np.arange(m) / SAMPLE_RATE
        takes.append(_normalise(x * np.exp(-((t - t[-1] / 2) / (t[-1] / 5)) ** 2)))
    return takes


# --- textures ------------------------------------------------------------------------------

def _poisson_times(rng, rate: float, seconds: float, *, density: np.ndarray | None = None) -> np.ndarray:
    """Event times (samples) of a Poisson process of ``rate`` per second, thinned by ``density``
    (0..1 at the control rate) when given."""
    count = rng.poisson(rate * seconds)
    times = np.sort(rng.uniform(0.0, seconds, size=count))
    if density is not None and times.size:
        idx = np.minimum((times * CONTROL_RATE).astype(int), density.size - 1)
        times = times[rng.random(times.size) < density[idx]]
    return (times * SAMPLE_RATE).astype(np.int64)


def _events(rng, times, takes, *, level: float, gain_spread: float = 0.6,
            pan: tuple[float, float] = (-0.8, 0.8)) -> EventLayer:
    n = times.size
    return EventLayer(times=times, takes=takes, which=rng.integers(0, len(takes), size=n),
                      gains=(rng.uniform(1.0 - gain_spread, 1.0, size=n) ** 2).astype(np.float32),
                      pans=rng.uniform(pan[0], pan[1], size=n).astype(np.float32), level=level)


def _rhythmic_times(rng, seconds: float, *, sources: int, period: tuple[float, float],
                    jitter: float) -> np.ndarray:
    """Times of a few sources each repeating at its own period, a little irregular (drips)."""
    out = []
    for _ in range(sources):
        p = rng.uniform(*period)
        t = rng.uniform(0.0, p)
        while t < seconds:
            out.append(t)
            t += p * (1.0 + rng.normal(0.0, jitter))
            p *= float(np.exp(rng.normal(0.0, 0.02)))  # the tap runs slowly faster or slower
    return (np.array(sorted(out)) * SAMPLE_RATE).astype(np.int64)


# Each texture's level under the music (the instruments' bus is about unit RMS): clearly
# there, a few dB under the music.
TEXTURE_LEVEL = {"rain": 0.5, "wind": 0.75, "ocean": 0.7, "forest": 0.55, "city": 0.65,
                 "fire": 0.7, "vinyl": 0.4, "snow": 0.5, "storm": 0.75, "harbour": 0.65,
                 "dripping": 0.6, "insects": 0.35, "crowd": 0.6}
TEXTURE_SEND = 0.15  # textures sit in the room a little


class TextureBed:
    """All of a cue's textures; ``add_to`` mixes the next block into the dry bus and the send.

    Args:
        names: texture names (see :data:`TEXTURE_LEVEL`).
        rng: the textures' random stream.
        seconds: the render's length.
        intensity: the bed's intensity (storms grow with it; quiet textures do not care).
        loop_period: a loop's cycle (events then repeat around the seam), or None.
        offset: seconds of render before the cycle begins (a loop's pre-roll).
    """

    def __init__(self, names, rng: np.random.Generator, *, seconds: float, intensity: np.ndarray,
                 loop_period: float | None = None, offset: float = 0.0):
        self.layers: list = []
        self.seconds = seconds
        self.period = loop_period
        self.offset = offset
        plan_seconds = loop_period if loop_period else seconds
        n_ctrl = int(np.ceil(seconds * CONTROL_RATE)) + 4
        self.n_ctrl = n_ctrl
        for name in names:
            first = len(self.layers)
            getattr(self, f"_{name}")(rng, plan_seconds, 1.0, intensity)
            # Each texture is brought to its level as a whole, its layers keeping their balance.
            mine = self.layers[first:]
            rms = float(np.sqrt(sum(layer.mean_square(plan_seconds) for layer in mine)))
            scale = TEXTURE_LEVEL[name] / rms if rms > 0 else 1.0
            for layer in mine:
                layer.level = np.float32(layer.level * scale)

    # helpers ----------------------------------------------------------------------------------

    def _walk(self, rng, timescale: float, low: float, high: float) -> np.ndarray:
        periodic = self.period is not None
        n = int(np.ceil((self.period or self.seconds) * CONTROL_RATE)) + 2
        w = slow_walk(rng, n, step_seconds=timescale / 4, control_rate=CONTROL_RATE,
                      timescale=timescale, low=low, high=high, periodic=periodic)
        return self._on_render_axis(w)

    def _on_render_axis(self, cycle: np.ndarray) -> np.ndarray:
        """A control curve of the cycle as the render sees it (shifted by the pre-roll,
        repeated around a loop)."""
        if self.period is None:
            out = np.empty(self.n_ctrl, dtype=np.float32)
            out[:min(cycle.size, self.n_ctrl)] = cycle[:self.n_ctrl]
            out[cycle.size:] = cycle[-1]
            return out
        n_period = int(round(self.period * CONTROL_RATE))
        idx = (np.arange(self.n_ctrl) - int(round(self.offset * CONTROL_RATE))) % n_period
        return cycle[np.minimum(idx, cycle.size - 1)].astype(np.float32)

    def _noise(self, rng, response, gain: np.ndarray, level: float) -> None:
        self.layers.append(NoiseLayer(response, gain, rng, level=level))

    def _placed(self, rng, times: np.ndarray, takes, *, level: float, **kw) -> None:
        """Events planned over the cycle, shifted onto the render's axis (and, for a loop,
        repeated one cycle before and after)."""
        shift = int(self.offset * SAMPLE_RATE)
        if self.period is not None:
            p = int(self.period * SAMPLE_RATE)
            times = np.concatenate([times - p, times, times + p])
        times = times + shift
        keep = (times > -int(10 * SAMPLE_RATE)) & (times < int(self.seconds * SAMPLE_RATE))
        self.layers.append(_events(rng, times[keep], takes, level=level, **kw))

    def _density(self, rng, timescale: float, low: float, high: float) -> np.ndarray:
        """A density curve for event thinning, on the cycle's own axis."""
        n = int(np.ceil((self.period or self.seconds) * CONTROL_RATE)) + 2
        return slow_walk(rng, n, step_seconds=timescale / 4, control_rate=CONTROL_RATE,
                         timescale=timescale, low=low, high=high, periodic=self.period is not None)

    # the textures -----------------------------------------------------------------------------

    def _rain(self, rng, seconds, level, intensity, *, heavy: float = 1.0) -> None:
        density = self._density(rng, 40.0, 0.45, 1.0)
        # Rain's hiss is soft and pink-ish: its drops carry the detail (a bright hiss reads as
        # static, and measured above 8 kHz it outweighed everything a produced mix holds there).
        self._noise(rng, band(500, 11000, tilt_db=-3.5), self._walk(rng, 25.0, 0.6, 1.0), level * 0.6 * heavy)
        self._placed(rng, _poisson_times(rng, 110.0 * heavy, seconds, density=density),
                     drop_takes(rng), level=level * 0.55)
        self._placed(rng, _poisson_times(rng, 5.0 * heavy, seconds, density=density),
                     drip_takes(rng), level=level * 0.35)

    def _storm(self, rng, seconds, level, intensity) -> None:
        self._rain(rng, seconds, level, intensity, heavy=1.6)
        self._wind(rng, seconds, level * 0.8, intensity)
        times = np.array(sorted(rng.uniform(3.0, max(seconds - 6.0, 4.0),
                                            size=max(1, int(seconds / rng.uniform(25, 45))))))
        self._placed(rng, (times * SAMPLE_RATE).astype(np.int64), thunder_takes(rng), level=level * 1.6,
                     gain_spread=0.5, pan=(-0.3, 0.3))

    def _wind(self, rng, seconds, level, intensity) -> None:
        for low, high, timescale in ((90, 380, 6.0), (300, 1100, 4.5), (900, 3200, 3.5)):
            self._noise(rng, band(low, high, order=2), self._walk(rng, timescale, 0.08, 1.0),
                        level * 0.75)

    def _ocean(self, rng, seconds, level, intensity) -> None:
        swell = _wave_envelope(rng, self.period or self.seconds)
        roar = self._on_render_axis(0.35 + 0.65 * swell)
        wash = self._on_render_axis(0.08 + 0.92 * swell ** 3)
        self._noise(rng, band(30, 500, order=2), roar, level)
        self._noise(rng, band(800, 9000, tilt_db=-1.0), wash, level * 0.8)

    def _forest(self, rng, seconds, level, intensity) -> None:
        self._noise(rng, band(1200, 7000), self._walk(rng, 3.0, 0.3, 1.0), level * 0.35)
        self._noise(rng, band(60, 400), self._walk(rng, 8.0, 0.4, 1.0), level * 0.25)
        density = self._density(rng, 30.0, 0.2, 1.0)
        self._placed(rng, _poisson_times(rng, 0.45, seconds, density=density), chirp_takes(rng),
                     level=level * 0.9)

    def _city(self, rng, seconds, level, intensity) -> None:
        self._noise(rng, band(25, 180, order=4), self._walk(rng, 10.0, 0.6, 1.0), level * 0.9)
        self._noise(rng, band(200, 2500, tilt_db=-2), self._walk(rng, 5.0, 0.25, 1.0), level * 0.5)
        self._placed(rng, _poisson_times(rng, 0.12, seconds), car_takes(rng), level=level * 0.8)

    def _fire(self, rng, seconds, level, intensity) -> None:
        self._noise(rng, band(30, 250), self._walk(rng, 4.0, 0.5, 1.0), level * 0.7)
        self._noise(rng, band(1500, 9000, tilt_db=-2), self._walk(rng, 2.0, 0.2, 1.0), level * 0.15)
        density = self._density(rng, 6.0, 0.15, 1.0)
        self._placed(rng, _poisson_times(rng, 35.0, seconds, density=density), crackle_takes(rng),
                     level=level * 0.9, pan=(-0.5, 0.5))
        self._placed(rng, _poisson_times(rng, 1.5, seconds), pop_takes(rng), level=level * 0.6,
                     pan=(-0.4, 0.4))

    def _vinyl(self, rng, seconds, level, intensity) -> None:
        self._noise(rng, band(2500, 12000), self._walk(rng, 30.0, 0.8, 1.0), level * 0.4)
        self._noise(rng, band(20, 90), self._walk(rng, 20.0, 0.7, 1.0), level * 0.25)
        self._placed(rng, _poisson_times(rng, 5.0, seconds), click_takes(rng), level=level * 0.9,
                     pan=(-0.3, 0.3))

    def _snow(self, rng, seconds, level, intensity) -> None:
        self._noise(rng, band(80, 2500, tilt_db=-3), self._walk(rng, 12.0, 0.4, 1.0), level * 0.7)
        self._noise(rng, band(3000, 12000, tilt_db=-2), self._walk(rng, 9.0, 0.2, 0.7), level * 0.2)
        self._placed(rng, _poisson_times(rng, 0.8, seconds), crunch_takes(rng), level=level * 0.25)

    def _harbour(self, rng, seconds, level, intensity) -> None:
        swell = _wave_envelope(rng, self.period or self.seconds, period=(3.0, 6.0))
        self._noise(rng, band(40, 700), self._on_render_axis(0.4 + 0.6 * swell), level * 0.6)
        self._placed(rng, _poisson_times(rng, 0.9, seconds), lap_takes(rng), level=level * 0.6,
                     pan=(-0.6, 0.6))
        self._placed(rng, _poisson_times(rng, 0.09, seconds), gull_takes(rng), level=level * 0.55)
        self._placed(rng, _poisson_times(rng, 0.04, seconds), bell_buoy_takes(rng),
                     level=level * 0.3, pan=(-0.5, 0.5))

    def _dripping(self, rng, seconds, level, intensity) -> None:
        self._noise(rng, band(60, 1500, tilt_db=-3), self._walk(rng, 15.0, 0.5, 1.0), level * 0.12)
        self._placed(rng, _rhythmic_times(rng, seconds, sources=3, period=(0.7, 2.8), jitter=0.06),
                     drip_takes(rng), level=level * 1.6, pan=(-0.7, 0.7))

    def _insects(self, rng, seconds, level, intensity) -> None:
        self._noise(rng, band(2000, 9000), self._walk(rng, 6.0, 0.2, 0.6), level * 0.1)
        for _ in range(3):  # a few crickets, each at its own rate
            times = _rhythmic_times(rng, seconds, sources=1, period=(0.45, 1.2), jitter=0.08)
            self._placed(rng, times, cricket_takes(rng), level=level * 0.45, pan=(-0.9, 0.9))
        self._placed(rng, _poisson_times(rng, 0.08, seconds), bee_takes(rng), level=level * 0.5)

    def _crowd(self, rng, seconds, level, intensity) -> None:
        # Voices too many to follow: speech-band noise whose level moves at syllable rate, in
        # several strands so the murmur never beats as one.
        for _ in range(4):
            syllables = self._walk(rng, 0.35, 0.1, 1.0) * self._walk(rng, 6.0, 0.5, 1.0)
            self._noise(rng, band(250, 3200, tilt_db=-2), syllables, level * 0.45)
        self._noise(rng, band(80, 400), self._walk(rng, 10.0, 0.6, 1.0), level * 0.3)

    # mixing -----------------------------------------------------------------------------------

    def add_to(self, dry: np.ndarray, send: np.ndarray, start: int) -> None:
        """Add the textures' block at render sample ``start`` into ``dry`` (2, n) and ``send``."""
        if not self.layers:
            return
        block = np.zeros_like(dry)
        for layer in self.layers:
            layer.add_to(block, start)
        dry += block
        send += (block[0] + block[1]) * np.float32(0.5 * TEXTURE_SEND)


def _wave_envelope(rng, seconds: float, *, period: tuple[float, float] = (6.0, 12.0)) -> np.ndarray:
    """Swells of waves arriving every 6-12 s (each its own height), at the control rate."""
    n = int(np.ceil(seconds * CONTROL_RATE)) + 2
    t = np.arange(n) / CONTROL_RATE
    swell = np.zeros(n)
    t0 = -rng.uniform(0, period[0])
    while t0 < t[-1] + period[1]:
        p = rng.uniform(*period)
        height = rng.uniform(0.5, 1.0)
        i0 = max(int(np.ceil(t0 * CONTROL_RATE)), 0)
        i1 = min(int((t0 + p) * CONTROL_RATE) + 1, n)
        if i0 < i1:
            x = (t[i0:i1] - t0) / p
            swell[i0:i1] = np.maximum(swell[i0:i1], height * np.sin(np.pi * x) ** 2)
        t0 += p * rng.uniform(0.55, 0.8)
    return swell.astype(np.float32)


TEXTURES = tuple(TEXTURE_LEVEL)
__all__ = ["TEXTURES", "TEXTURE_LEVEL", "TextureBed"]
