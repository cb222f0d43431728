"""Sampled instruments through FluidSynth: a score's parts become stereo stems, block by block.

One FluidSynth synthesiser per process holds every installed bank (loaded once; its SF3 banks
from their decoded copies). A render assigns each part an audio group, so one pass of
``fluid_synth_process`` yields a separate stem per part. Sustained notes each get a MIDI channel
of their own, so each can drift in pitch (pitch bend) and colour (the filter cut-off, through
``fluid_synth_set_gen``) on its own random walk, as players do; struck parts spread their notes
over a few channels panned across the part's width. FluidSynth's own reverb and chorus are off:
the room is the mixer's.

FluidSynth (LGPL-2.1) is loaded dynamically through pyfluidsynth's ctypes binding (MIT); the
calls pyfluidsynth does not wrap are bound here with its ``cfunc`` helper.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import logging
import os
from dataclasses import dataclass

import numpy as np

from soundscape.engines.composer.palette import INSTRUMENTS, Instrument
from soundscape.engines.composer.score import Part
from soundscape.engines.composer.soundbank import SoundBank, cache_dir

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
MAX_PARTS = 12            # audio groups (stereo stems) per render
MIDI_CHANNELS = 128       # FluidSynth 2.3 crashed on a pan change on channel 255 (seen here)
STRUCK_CHANNELS = 4       # fixed pan positions a struck part's notes are spread over
DRIFT_STEP = 0.8          # seconds between a sustained note's drift updates (its walk is slower)
DRIFT_CENTS = 4.0         # standard deviation of the slow pitch wander
DRIFT_TIMESCALE = 3.0     # seconds: how fast the wander moves
COLOUR_CENTS = 250.0      # standard deviation of the filter's wander
CHANNEL_REST = 8.0        # seconds a sustained note's channel rests after release (its tail)
BEND_RANGE_CENTS = 200.0  # General MIDI default pitch-bend range: +-2 semitones
GEN_FILTERFC = 8          # SoundFont generator: initial filter cut-off (cents)
DARKEST_CENTS = -3600.0   # brightness 0: the filter three octaves lower than the preset's own
CALIBRATION_SECONDS = 0.6   # a struck note is measured over its first 0.6 s
HELD_CALIBRATION = (1.5, 3.0)  # a held one over the level it holds at (some swell, then settle)
LOW_END_HZ = 160.0
DRUM_BANK = 128           # General MIDI percussion kits
CHANNEL_TYPE_DRUM = 1     # FluidSynth's CHANNEL_TYPE_DRUM
PROCESS_MAX = 4096         # frames per fluid_synth_process call at most
DYNAMIC_LOADING = 1
POLYPHONY = 256           # voices at once; the busiest bed uses under 60


class FluidUnavailable(RuntimeError):
    """FluidSynth or its Python binding cannot be loaded on this machine."""


def binding():
    """pyfluidsynth, with the few extra C functions this module needs bound once."""
    try:
        # pyfluidsynth prints where it found the library to stdout when CI is set in the
        # environment; stdout carries our JSON and audio pipes, so that line is swallowed.
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth
    except (ImportError, OSError) as exc:  # OSError: the shared library is missing or broken
        raise FluidUnavailable(str(exc)) from None
    if not hasattr(fluidsynth, "_soundscape_bound"):
        c_void_p, c_int, c_float = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        fluidsynth._ss_process = fluidsynth.cfunc(
            "fluid_synth_process", c_int, ("synth", c_void_p, 1), ("len", c_int, 1),
            ("nfx", c_int, 1), ("fx", c_void_p, 1), ("nout", c_int, 1), ("out", c_void_p, 1))
        fluidsynth._ss_set_gen = fluidsynth.cfunc(
            "fluid_synth_set_gen", c_int, ("synth", c_void_p, 1), ("chan", c_int, 1),
            ("param", c_int, 1), ("value", c_float, 1))
        fluidsynth._ss_log = fluidsynth.cfunc(
            "fluid_set_log_function", c_void_p, ("level", c_int, 1), ("fun", c_void_p, 1),
            ("data", c_void_p, 1))
        fluidsynth._ss_channel_type = fluidsynth.cfunc(
            "fluid_synth_set_channel_type", c_int, ("synth", c_void_p, 1), ("chan", c_int, 1),
            ("type", c_int, 1))
        fluidsynth._ss_version = fluidsynth.cfunc("fluid_version_str", ctypes.c_char_p)
        fluidsynth._ss_interp = fluidsynth.cfunc(
            "fluid_synth_set_interp_method", c_int, ("synth", c_void_p, 1), ("chan", c_int, 1),
            ("interp", c_int, 1))
        for level in range(5):  # FluidSynth's own messages would break our one-line errors
            fluidsynth._ss_log(level, None, None)
        fluidsynth._soundscape_bound = True
    return fluidsynth


@dataclass(frozen=True)
class PresetChoice:
    """The sampled preset a part plays: which bank, which General MIDI address."""

    bank: SoundBank
    midi_bank: int
    program: int
    name: str


def choose_preset(instrument: Instrument, banks: list[SoundBank]) -> PresetChoice | None:
    """The instrument's first preset found in the installed banks (None: no bank has it)."""
    by_id = {b.info.id: b for b in banks}
    for bank_id, midi_bank, program in instrument.presets:
        bank = by_id.get(bank_id)
        if bank is not None and bank.preset_name(midi_bank, program):
            return PresetChoice(bank, midi_bank, program, bank.preset_name(midi_bank, program))
    # A bank outside the instrument's list may still have the General MIDI program.
    for bank in banks:
        for _, midi_bank, program in instrument.presets:
            if bank.preset_name(midi_bank, program):
                return PresetChoice(bank, midi_bank, program, bank.preset_name(midi_bank, program))
    return None


class FluidSynthesizer:
    """A FluidSynth synthesiser with the installed banks loaded, made fresh for each render.

    FluidSynth's output depends on its history (a sample's first playing differs from later
    ones), so a render that must repeat bit for bit gets a synthesiser of its own; making one
    costs about 0.2 s, most of it loading the samples of the presets the render selects.

    Args:
        banks: the installed banks, all loaded (only selected presets' samples are read).
        sample_rate: the output rate (the mixer takes sustained parts at half rate).
        groups: stereo stems rendered per pass (one per part).
    """

    def __init__(self, banks: list[SoundBank], *, sample_rate: int = SAMPLE_RATE, groups: int = 1):
        fs = binding()
        self.fs = fs
        self.sample_rate = sample_rate
        self.groups = max(1, min(groups, MAX_PARTS))
        settings = fs.new_fluid_settings()
        for name, value in (("synth.audio-groups", self.groups), ("synth.audio-channels", self.groups),
                            ("synth.midi-channels", MIDI_CHANNELS), ("synth.polyphony", POLYPHONY),
                            ("synth.reverb.active", 0), ("synth.chorus.active", 0),
                            ("synth.dynamic-sample-loading", DYNAMIC_LOADING), ("synth.cpu-cores", 1),
                            ("synth.threadsafe-api", 0)):
            fs.fluid_settings_setint(settings, name.encode(), value)
        fs.fluid_settings_setnum(settings, b"synth.sample-rate", float(sample_rate))
        fs.fluid_settings_setnum(settings, b"synth.gain", 1.0)
        self.settings = settings
        self.synth = fs.new_fluid_synth(settings)
        if sample_rate < SAMPLE_RATE:
            # Held voices at half rate are dark and change slowly: linear interpolation is
            # transparent there, and cheaper than the default fourth-order.
            fs._ss_interp(self.synth, -1, 1)
        self.sfont_ids: dict[str, int] = {}
        for bank in banks:
            sfid = fs.fluid_synth_sfload(self.synth, str(bank.loadable_path()).encode(), 0)
            if sfid < 0:
                self.close()
                raise FluidUnavailable(f"FluidSynth could not load {bank.path}")
            self.sfont_ids[bank.info.id] = sfid
        # Output buffers at fixed addresses: one pointer array serves every call.
        self._out = np.zeros((self.groups * 2, PROCESS_MAX), dtype=np.float32)
        self._ptrs = (ctypes.c_void_p * (self.groups * 2))(
            *[self._out[i].ctypes.data for i in range(self.groups * 2)])

    def close(self) -> None:
        if getattr(self, "synth", None):
            self.fs.delete_fluid_synth(self.synth)
            self.synth = None
        if getattr(self, "settings", None):
            self.fs.delete_fluid_settings(self.settings)
            self.settings = None

    def __del__(self):
        try:
            self.close()
        except TypeError:  # at interpreter exit the binding may already be torn down
            pass

    def select(self, channel: int, choice: PresetChoice) -> None:
        if choice.midi_bank == DRUM_BANK:  # a drum kit plays on a channel of percussion type
            self.fs._ss_channel_type(self.synth, channel, CHANNEL_TYPE_DRUM)
        self.fs.fluid_synth_program_select(self.synth, channel, self.sfont_ids[choice.bank.info.id],
                                           choice.midi_bank, choice.program)

    def process(self, n: int) -> np.ndarray:
        """Render ``n <= PROCESS_MAX`` frames: a ``(groups * 2, n)`` view (valid until the next call)."""
        out = self._out[:, :n]
        out.fill(0.0)  # fluid_synth_process mixes into what the buffers hold
        self.fs._ss_process(self.synth, n, 0, None, self.groups * 2, self._ptrs)
        return out

    def process_into(self, rows: list[int], offset: int, n: int) -> None:
        """Render ``n`` frames straight into zeroed float32 rows whose data addresses are
        ``rows`` (one per output channel), from frame ``offset`` of each: no copy."""
        pointers = (ctypes.c_void_p * len(rows))(*[address + 4 * offset for address in rows])
        self.fs._ss_process(self.synth, n, 0, None, len(rows), pointers)


_LEVELS: dict[tuple, float] = {}
_KEEPERS: dict[tuple, tuple[FluidSynthesizer, dict]] = {}


def keep_loaded(banks: list[SoundBank], choice: PresetChoice, *, sample_rate: int) -> None:
    """Hold a preset's samples in FluidSynth's sample cache for the rest of the process.

    A fresh synthesiser per render (see :class:`FluidSynthesizer`) would otherwise read every
    preset's samples again (0.18 s for the strings alone): a synthesiser that never plays keeps
    each preset selected on a channel of its own, so later loads share its samples. The audio
    is the same either way (measured bit for bit).
    """
    key = (tuple(b.sha256 for b in banks), sample_rate)
    if key not in _KEEPERS:
        _KEEPERS[key] = (FluidSynthesizer(banks, sample_rate=sample_rate), {})
    keeper, held = _KEEPERS[key]
    preset = (choice.bank.info.id, choice.midi_bank, choice.program)
    if preset not in held and len(held) < MIDI_CHANNELS:
        keeper.select(len(held), choice)
        held[preset] = len(held)


def preset_level(banks: list[SoundBank], choice: PresetChoice, *, midi: int,
                 sample_rate: int = SAMPLE_RATE, sustained: bool = False,
                 low_end: bool = False) -> float:
    """RMS of a preset's reference note at velocity 100, to even parts out: a struck note over
    its first 0.6 s, a held one over 1.5-3 s (the level it holds at: bowed glass swells and
    then settles 14 dB lower, and a pad played at its attack's level would be lost).
    ``low_end`` measures only what lies under 160 Hz (how a bass part is levelled: a drone
    and a contrabass then weigh about the same in the low end, whatever their timbre and key).

    Measured once per process, each on a synthesiser of its own: FluidSynth remembers what it
    played, so a shared one would make a level depend on which presets were measured before
    (and a cue sound different alone and in a batch). Kept on disk between processes.
    """
    key = (choice.bank.sha256, choice.midi_bank, choice.program, midi, sample_rate,
           ("held" if sustained else "struck") + ("-low" if low_end else ""))
    if key not in _LEVELS:
        _LEVELS.update(_stored_levels())
    if key not in _LEVELS:
        start, stop = HELD_CALIBRATION if sustained else (0.0, CALIBRATION_SECONDS)
        synth = FluidSynthesizer(banks, sample_rate=sample_rate)
        try:
            synth.select(0, choice)
            synth.fs.fluid_synth_noteon(synth.synth, 0, midi, 100)
            n = int(stop * sample_rate)
            parts = [synth.process(min(PROCESS_MAX, n - i))[:2].copy()
                     for i in range(0, n, PROCESS_MAX)]
        finally:
            synth.close()
        audio = np.concatenate(parts, axis=-1)[:, int(start * sample_rate):].astype(np.float64)
        if low_end:  # the low end alone: fundamental and octave of any drone in 40-80 Hz
            spectrum = np.fft.rfft(audio, axis=-1)
            spectrum[:, np.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate) > LOW_END_HZ] = 0.0
            audio = np.fft.irfft(spectrum, n=audio.shape[-1], axis=-1)
        rms = float(np.sqrt(np.mean(audio ** 2)))
        _LEVELS[key] = rms if rms > 1e-6 else 1e-3
        _store_levels()
    return _LEVELS[key]


def _levels_file():
    version = (binding()._ss_version() or b"?").decode(errors="replace")
    return cache_dir() / f"preset-levels-v2-fluidsynth-{version}.json"


def _stored_levels() -> dict:
    """Levels measured by earlier processes (same FluidSynth, same bank files: same numbers)."""
    try:
        rows = json.loads(_levels_file().read_text())
        return {tuple(row[:6]): float(row[6]) for row in rows}
    except (OSError, ValueError, TypeError, IndexError):
        return {}


def _store_levels() -> None:
    path = _levels_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}.{os.getpid()}.part")
        temp.write_text(json.dumps([[*key, value] for key, value in sorted(_LEVELS.items())]))
        os.replace(temp, path)
    except OSError:
        pass  # an unwritable cache only costs the measurement next time


def _walk(rng: np.random.Generator, steps: int, *, sigma: float, timescale: float,
          step: float) -> np.ndarray:
    """A seeded Ornstein-Uhlenbeck walk (stationary, standard deviation ``sigma``)."""
    a = float(np.exp(-step / timescale))
    shocks = rng.standard_normal(steps) * sigma * np.sqrt(1 - a * a)
    out = np.empty(steps)
    x = float(rng.standard_normal() * sigma)
    for i in range(steps):  # a few hundred steps per note
        x = a * x + shocks[i]
        out[i] = x
    return out


class FluidPlayer:
    """Plays parts through a synthesiser of their own, ``render(n)`` samples at a time.

    Args:
        banks: the installed banks.
        parts: the parts to play (at most :data:`MAX_PARTS`); each becomes one stem.
        presets: the preset each part plays, by part name.
        rng: the source of the players' drift (one stream per player, so renders repeat).
        sample_rate: the rate of the stems.
        seconds: how long the score lasts (colour updates run to its end).
        start: the first sample rendered (a loop's pre-roll starts before zero).
    """

    def __init__(self, banks: list[SoundBank], parts: list[Part], presets: dict[str, PresetChoice],
                 rng: np.random.Generator, *, sample_rate: int = SAMPLE_RATE, seconds: float,
                 start: int = 0):
        if len(parts) > MAX_PARTS:
            raise ValueError(f"a player takes at most {MAX_PARTS} parts")
        self.sample_rate = sample_rate
        self.parts = list(parts)
        self.seconds = seconds
        self.pos = start
        self._by_name = {p.name: p for p in self.parts}
        gains = []
        for part in self.parts:
            inst = INSTRUMENTS[part.instrument]
            ref = int(np.clip(np.median([n.midi for n in part.notes]) if part.notes else 60,
                              inst.low, inst.high))
            gains.append(part.level / preset_level(banks, presets[part.name], midi=ref,
                                                   sample_rate=sample_rate,
                                                   sustained=part.sustained,
                                                   low_end=part.low_end))
        self.gains = np.array(gains, dtype=np.float32)
        self.synth = FluidSynthesizer(banks, sample_rate=sample_rate, groups=len(self.parts))
        events: list[tuple[int, int, int, tuple]] = []  # (sample, order, kind, args)
        groups = self.synth.groups
        for group, part in enumerate(self.parts):
            channels = [c for c in range(group, MIDI_CHANNELS, groups) if c % 16 != 9]
            if part.sustained:
                part_events = self._sustained_events(part, channels, rng)
            else:
                part_events = self._struck_events(part, channels)
            # Only the channels the part's notes use are given its preset (selecting loads samples).
            keep_loaded(banks, presets[part.name], sample_rate=sample_rate)
            for ch in sorted({e[3][0] for e in part_events}):
                self.synth.select(ch, presets[part.name])
            events += part_events
        events.sort(key=lambda e: (e[0], e[1]))
        self.events = events
        self.next_event = 0
        while self.next_event < len(events) and events[self.next_event][0] < start:
            self.next_event += 1  # a loop's copies that end before the pre-roll are never heard

    def close(self) -> None:
        self.synth.close()

    # -- planning events -----------------------------------------------------------------------

    def _at(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    def _sustained_events(self, part: Part, channels: list[int], rng: np.random.Generator) -> list:
        """One channel per note: pan, drift in pitch and colour, note on, note off."""
        events = []
        free_at = {ch: -1e9 for ch in channels}
        for note in part.sorted_notes():
            ch = min(channels, key=lambda c: (free_at[c] > note.start, free_at[c]))
            if free_at[ch] > note.start:
                log.debug("part %s: more overlapping notes than channels", part.name)
            free_at[ch] = note.end + CHANNEL_REST
            pan = int(np.clip(round(64 + 63 * np.clip(part.pan + note.pan, -1, 1)), 0, 127))
            t0 = self._at(note.start)
            events.append((t0, 0, 1, (ch, 10, pan)))                           # CC10 pan
            steps = int((note.end - note.start + CHANNEL_REST * 0.5) / DRIFT_STEP) + 2
            bend = _walk(rng, steps, sigma=DRIFT_CENTS, timescale=DRIFT_TIMESCALE, step=DRIFT_STEP)
            colour = _walk(rng, steps, sigma=COLOUR_CENTS, timescale=5.0, step=DRIFT_STEP)
            for k in range(steps):
                t = t0 + self._at(k * DRIFT_STEP)
                events.append((t, 1, 2, (ch, 8192 + int(round(bend[k] / BEND_RANGE_CENTS * 8192)))))
                events.append((t, 1, 3, (ch, float(colour[k]), part.name)))
            events.append((t0, 2, 4, (ch, note.midi, note.velocity)))           # note on
            events.append((self._at(note.end), 3, 5, (ch, note.midi)))          # note off
        return events

    def _struck_events(self, part: Part, channels: list[int]) -> list:
        """Notes over a few channels panned across the part's width; pedal on all of them."""
        pool = channels[:STRUCK_CHANNELS]
        spread = np.linspace(-1.0, 1.0, len(pool)) * part.width
        events = []
        for ch, offset in zip(pool, spread):
            pan = int(np.clip(round(64 + 63 * np.clip(part.pan + offset, -1, 1)), 0, 127))
            events.append((0, 0, 1, (ch, 10, pan)))
        # The part's colour follows its brightness curve (read when each update is applied).
        if part.brightness is not None:
            for t in np.arange(0.0, self.seconds + 1.0, 0.5):
                for ch in pool:
                    events.append((self._at(t), 1, 3, (ch, 0.0, part.name)))
        inst = INSTRUMENTS[part.instrument]
        for note in part.sorted_notes():
            # Lower notes to the left of the part's place, higher to the right (as a piano sits).
            slot = int(np.clip((note.midi - inst.low) / max(inst.high - inst.low, 1) * len(pool),
                               0, len(pool) - 1))
            ch = pool[slot]
            events.append((self._at(note.start), 2, 4, (ch, note.midi, note.velocity)))
            events.append((self._at(note.end), 3, 5, (ch, note.midi)))
        for down, up in part.pedal:
            for ch in pool:
                events.append((self._at(down), 1, 1, (ch, 64, 127)))
                events.append((self._at(up), 1, 1, (ch, 64, 0)))
        return events

    # -- rendering -----------------------------------------------------------------------------

    def _apply(self, kind: int, args: tuple) -> None:
        fs, synth = self.synth.fs, self.synth.synth
        if kind == 1:
            fs.fluid_synth_cc(synth, *args)
        elif kind == 2:
            fs.fluid_synth_pitch_bend(synth, *args)
        elif kind == 3:
            ch, wander, part_name = args
            fs._ss_set_gen(synth, ch, GEN_FILTERFC, float(self._brightness_cents(part_name) + wander))
        elif kind == 4:
            fs.fluid_synth_noteon(synth, *args)
        elif kind == 5:
            fs.fluid_synth_noteoff(synth, *args)

    def _brightness_cents(self, part_name: str) -> float:
        part = self._by_name[part_name]
        if part.brightness is None:
            return 0.0
        value = part.brightness.at(self.pos / self.sample_rate)
        return DARKEST_CENTS * (1.0 - min(max(value, 0.0), 1.0))  # scalars: np.clip costs 20x

    def render(self, n: int) -> np.ndarray:
        """The next ``n`` samples of every part: ``(parts, 2, n)`` float32, levels evened out."""
        count = len(self.parts)
        out = np.zeros((count, 2, n), dtype=np.float32)  # FluidSynth adds into what it is given
        flat = out.reshape(count * 2, n)
        rows = [flat[i].ctypes.data for i in range(count * 2)]
        done = 0
        end = self.pos + n
        events = self.events
        while done < n:
            # Apply every event due now, then render up to the next one.
            while self.next_event < len(events) and events[self.next_event][0] <= self.pos:
                _, _, kind, args = events[self.next_event]
                self._apply(kind, args)
                self.next_event += 1
            upcoming = events[self.next_event][0] if self.next_event < len(events) else end
            step = int(min(max(upcoming - self.pos, 1), end - self.pos, PROCESS_MAX))
            self.synth.process_into(rows, done, step)
            done += step
            self.pos += step
        out *= self.gains[:, None, None]
        return out


__all__ = ["FluidPlayer", "FluidSynthesizer", "FluidUnavailable", "PresetChoice", "choose_preset",
           "preset_level"]
