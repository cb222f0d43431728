"""A performance: a score played by its players into the mix bus, block by block.

The instruments play at half rate (24 kHz): the General MIDI samples the composer uses carry
nothing measurable above 12 kHz (the glockenspiel 1.5 % of its energy, the rest under 0.06 %),
and half the rate is half the synthesis. Textures and library samples, which do carry air, are
made at 48 kHz and join as *extras*. :mod:`.mix` brings the two together. Each block of every
bus is made, mixed and handed on, so a render of any length needs memory for a few blocks plus
its output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from soundscape.engines.composer import mix
from soundscape.engines.composer.palette import INSTRUMENTS
from soundscape.engines.composer.players import Player, Players, make_players
from soundscape.engines.composer.score import CONTROL_RATE, Part, Score, control_window, expression_gain

SAMPLE_RATE = mix.SAMPLE_RATE
HALF_RATE = mix.HALF_RATE
AIR_LEVEL = 0.35  # air noise per unit of the instruments' presence


class Extra(Protocol):
    """Something played at full rate beside the instruments (textures, library samples)."""

    def add_to(self, dry: np.ndarray, send: np.ndarray, start: int) -> None: ...


@dataclass
class _Bus:
    """A player's stems summed with their levels into a dry bus and a mono reverb send."""

    player: Player
    parts: list[Part]
    rate: int
    gains: list[np.ndarray]

    @classmethod
    def of(cls, player: Player, parts: list[Part], rate: int, envelope=None) -> "_Bus":
        gains = []
        for p in parts:
            g = expression_gain(p.expression.values) if p.expression is not None \
                else np.ones(1, dtype=np.float32)
            g = g * np.float32(10.0 ** (INSTRUMENTS[p.instrument].level / 20.0))
            if envelope is not None:
                env = envelope.values
                n = max(g.size, env.size)
                g = np.pad(g, (0, n - g.size), mode="edge") * np.pad(env, (0, n - env.size), mode="edge")
            gains.append(g.astype(np.float32))
        return cls(player, parts, rate, gains)

    def render(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        dry = np.zeros((2, n), dtype=np.float32)
        send = np.zeros(n, dtype=np.float32)
        if not self.parts:
            return dry, send
        stems = self.player.render(n)
        hop = self.rate // CONTROL_RATE
        for stem, part, gain in zip(stems, self.parts, self.gains):
            stem *= control_window(gain, start, n, hop)
            if part.mono:
                stem[0] += stem[1]
                stem[0] *= np.float32(0.5)
                stem[1] = stem[0]
            dry += stem
            if part.reverb:
                send += (stem[0] + stem[1]) * np.float32(0.5 * part.reverb)
        return dry, send


class Air:
    """The air the samples lack: noise above 7 kHz that follows the instruments' presence.

    Real players make noise above 8 kHz (breath, bow, hammer, the room) that General MIDI
    samples, dark and band-limited, have lost. Each block, the instruments' presence (the RMS
    of their first difference, which leans on 2-12 kHz, per 20 ms) sets the level of fresh
    band noise, so the air swells with the attacks and rests with the music.
    """

    def __init__(self, rng: np.random.Generator, *, level: float = AIR_LEVEL):
        from soundscape.engines.composer.textures import NoiseLayer, band

        self.hop = HALF_RATE // CONTROL_RATE
        self.noise = NoiseLayer(band(7000, 16000, order=2), np.ones(1, dtype=np.float32), rng,
                                level=level)
        self.last = 0.0

    def add_to(self, dry: np.ndarray, instruments: np.ndarray, start: int) -> None:
        """Add the air for a full-rate block ``dry`` given the half-rate instruments' block."""
        diff = np.diff(instruments, axis=-1, prepend=instruments[:, :1])
        frames = diff.shape[-1] // self.hop
        power = np.square(diff[:, :frames * self.hop]).reshape(2, frames, self.hop).mean(axis=(0, 2))
        env = np.sqrt(power).astype(np.float32)
        # A little smoothing (a room does not switch on and off), continuing from the last block.
        smooth = np.empty_like(env)
        last = self.last
        for i, v in enumerate(env):  # a few hundred frames per block
            last = v if v > last else 0.85 * last + 0.15 * v
            smooth[i] = last
        self.last = last
        self.noise.gain = np.concatenate([smooth, smooth[-1:]]).astype(np.float32)
        block = np.zeros_like(dry)
        self.noise.add_to(block, start, gain_start=0)
        dry += block


def perform(score: Score, banks: list, *, rng: np.random.Generator, room: np.ndarray,
            n_out: int, preroll: int = 0, extras: tuple[Extra, ...] = (),
            progress=None, out=None, air: bool = True) -> tuple[np.ndarray, Players, float]:
    """Play ``score`` and return ``n_out`` samples of the mix, from sample ``preroll`` on.

    Args:
        score: the parts (played at half rate) and the form's envelope.
        banks: installed sound banks (empty: the built-in synth voices play everything).
        rng: the players' random stream (drift).
        room: the stereo impulse response of the room.
        n_out: samples of output wanted (48 kHz).
        preroll: samples played before the output begins (a loop's end before its start).
        extras: full-rate layers mixed beside the instruments.
        progress: called with the fraction done.
        out: where the mix goes: an array, or an :class:`~soundscape.render.AudioStore` for a
            render too long to hold (default: a new array).
        air: add :class:`Air` (beds whose textures carry their own air, rain or wind, do not
            need it).

    Returns:
        The mix (2, n_out) float32, the players (what they played is in ``.presets``) and the
        mix's sample peak.
    """
    players = make_players(banks, score.parts, seconds=score.seconds, rng=rng,
                           sample_rate=HALF_RATE)
    instruments = _Bus.of(players, score.parts, HALF_RATE, envelope=score.envelope)
    colour = float(score.colour)
    mixer = mix.Mixer(room, presence_db=1.5 + 2.5 * colour, air_db=1.5 + 2.0 * colour)
    air_rng = np.random.default_rng(rng.integers(2 ** 63))
    air = Air(air_rng, level=AIR_LEVEL * (1.0 + 0.8 * colour)) if air else None
    skip = preroll + mixer.latency
    if out is None:
        out = np.empty((2, n_out), dtype=np.float32)
    block = mix.BLOCK
    pos = written = 0
    peak = 0.0
    hi_dry = np.empty((2, block), dtype=np.float32)   # reused: fresh pages cost faults
    hi_send = np.empty(block, dtype=np.float32)
    try:
        while written < n_out:
            lo_dry, lo_send = instruments.render(pos // 2, block // 2)
            hi_dry.fill(0.0)
            hi_send.fill(0.0)
            if air is not None:
                air.add_to(hi_dry, lo_dry, pos)
            for extra in extras:
                extra.add_to(hi_dry, hi_send, pos)
            mixed = mixer.process(lo_dry, lo_send, hi_dry, hi_send)
            a, b = max(skip - pos, 0), min(block, skip + n_out - pos)
            if a < b:
                piece = mixed[:, a:b]
                peak = max(peak, float(piece.max()), -float(piece.min()))
                if isinstance(out, np.ndarray):
                    out[:, written:written + b - a] = piece
                else:
                    out.write(written, piece)
                written += b - a
            pos += block
            if progress is not None:
                progress(min(1.0, pos / (skip + n_out)))
    finally:
        players.close()
    return out, players, peak
