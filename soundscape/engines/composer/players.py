"""Players: who turns a part into a stem — a sampled preset, or the composer's own synth voice.

:func:`make_players` gives each part the first installed preset of its instrument (through
FluidSynth) and the built-in synth voice where no bank has one, and reports which presets were
played: those are ingredients of the output, like library samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from soundscape.engines.composer import synth
from soundscape.engines.composer.palette import INSTRUMENTS
from soundscape.engines.composer.score import CONTROL_RATE, Note, Part
from soundscape.engines.composer.space import pan_gains

log = logging.getLogger(__name__)


class Player(Protocol):
    def render(self, n: int) -> np.ndarray:
        """The next ``n`` samples of each of its parts: ``(parts, 2, n)`` float32."""
        ...


@dataclass
class Players:
    """The player of a render's parts, and what it played."""

    player: Player
    presets: list[dict]
    kind: str                       # "sampled", "synth" or "sampled+synth"
    closers: list = field(default_factory=list)

    def render(self, n: int) -> np.ndarray:
        return self.player.render(n)

    def close(self) -> None:
        for close in self.closers:
            close()


class _Silent:
    def render(self, n: int) -> np.ndarray:
        return np.zeros((0, 2, n), dtype=np.float32)


class _Combined:
    """Parts split between a sampled player and a synth player, stems back in part order."""

    def __init__(self, parts: list[Part], sampled, sampled_parts: list[str], synthetic,
                 synth_parts: list[str]):
        self.order = [p.name for p in parts]
        self.sampled, self.sampled_parts = sampled, sampled_parts
        self.synthetic, self.synth_parts = synthetic, synth_parts

    def render(self, n: int) -> np.ndarray:
        # One player for every part, in order (the usual case): its stems as they are.
        for player, names in ((self.sampled, self.sampled_parts), (self.synthetic, self.synth_parts)):
            if player is not None and names == self.order:
                return player.render(n)
        out = np.empty((len(self.order), 2, n), dtype=np.float32)
        for player, names in ((self.sampled, self.sampled_parts), (self.synthetic, self.synth_parts)):
            if player is None or not names:
                continue
            stems = player.render(n)
            for name, stem in zip(names, stems):
                out[self.order.index(name)] = stem
        return out


def preset_ingredient(part: Part, choice) -> dict:
    """What the ledger records of a played preset."""
    bank = choice.bank
    return {
        "id": f"soundbank:{bank.info.id}:{choice.midi_bank}:{choice.program}",
        "sha256": bank.sha256,
        "instrument": part.instrument,
        "bank": bank.info.id,
        "bank_title": bank.info.title,
        "bank_file": str(bank.path),
        "midi_bank": choice.midi_bank,
        "program": choice.program,
        "preset": choice.name,
        "license": bank.info.license,
        "credit": bank.info.credit,
        "copyright": bank.info.copyright,
        "source": bank.info.url or f"Debian package {bank.info.package}",
        "sample_credit": bank.preset_credit(choice.midi_bank, choice.program),
    }


def make_players(banks: list, parts: list[Part], *, seconds: float, rng: np.random.Generator,
                 sample_rate: int) -> Players:
    """The player of a render: each part's first installed preset, or the synth voice."""
    from soundscape.engines.composer import fluid

    if not parts:
        return Players(_Silent(), [], "none")
    choices = {}
    if banks:
        for part in parts:
            choice = fluid.choose_preset(INSTRUMENTS[part.instrument], banks)
            if choice is not None:
                choices[part.name] = choice
    sampled_parts = [p for p in parts if p.name in choices]
    synth_parts = [p for p in parts if p.name not in choices]
    presets, closers, kinds = [], [], []
    sampled = synthetic = None
    if sampled_parts:
        sampled = fluid.FluidPlayer(banks, sampled_parts, choices, rng, sample_rate=sample_rate,
                                    seconds=seconds)
        closers.append(sampled.close)
        presets = [preset_ingredient(p, choices[p.name]) for p in sampled_parts]
        kinds.append("sampled")
    if synth_parts:
        synthetic = SynthPlayer(synth_parts, rng, sample_rate=sample_rate)
        kinds.append("synth")
    player = _Combined(parts, sampled, [p.name for p in sampled_parts], synthetic,
                       [p.name for p in synth_parts])
    return Players(player, presets, "+".join(kinds), closers)


# --- the built-in voices ---------------------------------------------------------------------

TABLE_SIZE = 4096
DRIFT_CENTS = 4.0


def _table(timbre: synth.Timbre, f0: float, sample_rate: int, brightness: float) -> np.ndarray:
    """One cycle of a band-limited wave for a pitch: partials under 0.45 of the sample rate."""
    limit = min(synth.MAX_PARTIAL_HZ, 0.45 * sample_rate)
    h = np.arange(1, max(2, int(limit / f0)) + 1)
    if timbre.odd_only:
        h = h[h % 2 == 1]
    cut = (timbre.dark_hz + brightness * (timbre.bright_hz - timbre.dark_hz)) * (f0 / 261.63) ** timbre.track
    amps = h.astype(float) ** -timbre.slope * synth.lowpass_gain(h * f0, cut)
    phase = np.arange(TABLE_SIZE) / TABLE_SIZE
    wave = (amps[:, None] * np.sin(2 * np.pi * h[:, None] * phase[None, :])).sum(axis=0)
    wave /= np.sqrt(np.mean(wave ** 2)) or 1.0
    return np.append(wave, wave[0]).astype(np.float32)


SUSTAINED_TIMBRES = {"pad": synth.PAD, "strings": synth.STRINGS, "drone": synth.DRONE}


class SynthPlayer:
    """The composer's own voices, for parts no installed bank can play.

    Sustained notes are wavetable oscillators whose pitch wanders a few cents on a slow random
    walk (never a looped wave); struck notes are decaying partials (``synth.struck_note``),
    made once per pitch and velocity step and placed where they fall.
    """

    def __init__(self, parts: list[Part], rng: np.random.Generator, *, sample_rate: int):
        self.parts = parts
        self.rate = sample_rate
        self.pos = 0
        self.rng = rng
        self._grains: dict[tuple, np.ndarray] = {}
        self._notes = [sorted(p.notes, key=lambda n: n.start) for p in parts]
        self._state: list[dict[int, dict]] = [dict() for _ in parts]
        self._first = [0 for _ in parts]  # struck notes before this one have rung out

    def render(self, n: int) -> np.ndarray:
        out = np.zeros((len(self.parts), 2, n), dtype=np.float32)
        a, b = self.pos, self.pos + n
        for i, part in enumerate(self.parts):
            inst = INSTRUMENTS[part.instrument]
            if part.sustained:
                self._sustained(out[i], i, part, inst, a, b)
            else:
                self._struck(out[i], i, part, inst, a, b)
        self.pos = b
        return out

    def _sustained(self, out, index, part: Part, inst, a: int, b: int) -> None:
        timbre = SUSTAINED_TIMBRES.get(inst.synth, synth.PAD)
        attack, release = (2.5, 4.0) if inst.synth != "drone" else (4.0, 5.0)
        rate = self.rate
        for k, note in enumerate(self._notes[index]):
            s, e = int(note.start * rate), int((note.end + release) * rate)
            if e <= a or s >= b:
                continue
            state = self._state[index].get(k)
            if state is None:
                f0 = synth.midi_to_hz(note.midi)
                steps = int((note.end + release - note.start) * CONTROL_RATE) + 4
                walk = np.cumsum(self.rng.normal(0.0, 0.3, steps))
                walk = DRIFT_CENTS * np.tanh(walk / 6.0)
                bright = part.brightness.at(note.start) if part.brightness is not None else 0.5
                state = {"f0": f0, "walk": walk.astype(np.float32), "phase": float(self.rng.random()),
                         "table": _table(timbre, f0, rate, bright),
                         "gain": (note.velocity / 127.0) ** 1.5}
                self._state[index][k] = state
            lo, hi = max(s, a), min(e, b)
            t = (np.arange(lo, hi) - s) / rate
            hop = rate // CONTROL_RATE
            cents = np.interp(np.arange(lo - s, hi - s) / hop, np.arange(state["walk"].size), state["walk"])
            freq = state["f0"] * 2.0 ** (cents / 1200.0)
            phase = state["phase"] + np.cumsum(freq / rate)
            state["phase"] = float(phase[-1] % 1.0)
            pos = (phase % 1.0) * TABLE_SIZE
            idx = pos.astype(np.int64)
            frac = (pos - idx).astype(np.float32)
            table = state["table"]
            wave = table[idx] + (table[idx + 1] - table[idx]) * frac
            held = note.end - note.start
            env = np.clip(t / attack, 0, 1) * np.where(t < held, 1.0, np.exp(-(t - held) / (release / 4)))
            sig = (wave * env * state["gain"]).astype(np.float32)
            gl, gr = pan_gains(float(np.clip(part.pan + note.pan, -1, 1)))
            out[0, lo - a:hi - a] += sig * gl
            out[1, lo - a:hi - a] += sig * gr
            if e <= b:
                self._state[index].pop(k, None)

    def _grain(self, inst, note: Note) -> np.ndarray:
        step = int(note.velocity // 16)
        key = (inst.synth, note.midi, step)
        if key not in self._grains and inst.synth == "percussion":
            self._grains[key] = percussion_hit(note.midi, self.rng, sample_rate=self.rate) \
                * np.float32((step + 1) / 8.0)
        if key not in self._grains:
            voice = inst.synth if inst.synth in synth.STRUCK else "pluck"
            seconds = {"bells": 3.5, "piano": 3.0, "pluck": 1.6, "marimba": 1.2}.get(voice, 2.0)
            tone = synth.struck_note(note.midi, voice, seconds=seconds, rng=self.rng,
                                     sample_rate=self.rate, brightness=0.6 + 0.05 * step)
            self._grains[key] = tone * np.float32((step + 1) / 8.0)
        return self._grains[key]

    def _struck(self, out, index, part: Part, inst, a: int, b: int) -> None:
        rate = self.rate
        notes = self._notes[index]
        longest = int(3.6 * rate)  # the longest grain (bells)
        while self._first[index] < len(notes) and int(notes[self._first[index]].start * rate) + longest <= a:
            self._first[index] += 1
        for note in notes[self._first[index]:]:
            s = int(note.start * rate)
            if s >= b:
                break
            grain = self._grain(inst, note)
            if s + grain.size <= a:
                continue
            lo, hi = max(s, a), min(s + grain.size, b)
            spread = (note.midi - inst.low) / max(inst.high - inst.low, 1) * 2 - 1
            gl, gr = pan_gains(float(np.clip(part.pan + spread * part.width, -1, 1)))
            piece = grain[lo - s:hi - s]
            out[0, lo - a:hi - a] += piece * gl
            out[1, lo - a:hi - a] += piece * gr


def percussion_hit(key: int, rng: np.random.Generator, *, sample_rate: int) -> np.ndarray:
    """A synthesised stand-in for a General MIDI drum key: a kick (35-36), a cymbal (49-57),
    a shaker (69-70, 82) or a tick (anything else)."""
    n = int((1.5 if 49 <= key <= 57 else 0.25) * sample_rate)
    t = np.arange(n) / sample_rate
    if key in (35, 36):
        f = 50 + 90 * np.exp(-t / 0.03)
        sig = np.sin(2 * np.pi * np.cumsum(f) / sample_rate) * np.exp(-t / 0.09)
    else:
        noise = np.diff(rng.standard_normal(n), prepend=0.0)
        tau = 0.4 if 49 <= key <= 57 else 0.035 if key in (69, 70, 82) else 0.012
        sig = noise * np.exp(-t / tau) * np.clip(t / 0.002, 0, 1)
        if key in (69, 70, 82):
            sig = np.diff(sig, prepend=0.0)
    peak = float(np.max(np.abs(sig))) or 1.0
    return (sig / peak).astype(np.float32)
