"""The sample-library layer: picks a few library files for the cue and fits them to it.

Pitched samples are transposed to the cue's key by resampling (the nearest shift, at most a
tritone) and placed as sparse, faded events (see :class:`SampleLayer`). A missing or empty
library means no layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal

from soundscape.engines.composer.synth import SAMPLE_RATE
from soundscape.spec import PITCH_CLASSES, CueSpec

log = logging.getLogger(__name__)

# Level of the library layer under the synthesis (the music bus is about unit RMS).
SAMPLE_LAYER_LEVEL = 0.3
LOOPED_KINDS = ("pad", "drone", "texture")


@dataclass
class FittedSample:
    """A library sample made ready for a cue: transposed audio and how it is played."""

    use: SampleUse
    kind: str
    audio: np.ndarray  # (2, n) float32 at 48 kHz, unit RMS
    shift: int          # semitones it was transposed by


def open_library(samples_dir: Path | None):
    """The sample library, or None when the module, folder or manifest is not there."""
    try:
        from soundscape.samples import SampleLibrary
    except ImportError:
        return None
    try:
        library = SampleLibrary.load(samples_dir)
    except Exception as exc:  # a broken library must not stop the music
        log.warning("sample library unavailable (%s); rendering without it", exc)
        return None
    return library if getattr(library, "entries", None) else None


def _key_tonic(text: str | None) -> int | None:
    if not text:
        return None
    letter = text.strip()[:1].upper()
    if letter not in PITCH_CLASSES:
        return None
    pc = PITCH_CLASSES[letter]
    rest = text.strip()[1:2]
    return (pc + (1 if rest == "#" else -1 if rest == "b" else 0)) % 12


def transpose(audio: np.ndarray, semitones: int) -> np.ndarray:
    """Shift pitch (and length) by resampling: up a semitone plays 2**(1/12) faster."""
    if semitones == 0:
        return audio
    ratio = 2.0 ** (semitones / 12.0)
    n_out = max(16, int(round(audio.shape[-1] / ratio)))
    return scipy.signal.resample(audio, n_out, axis=-1).astype(np.float32)


def fit_samples(library, spec: CueSpec, rng: np.random.Generator, *, limit: int = 2
                ) -> list[FittedSample]:
    """Choose up to ``limit`` samples for the cue and transpose pitched ones to its key."""
    intent = spec.intent
    # transpose=True: we repitch, so samples on another tonic (same mode) are welcome too.
    entries = library.select(mood=intent.mood, key=intent.key, textures=tuple(intent.textures),
                             instruments=tuple(intent.instruments), rng=rng, limit=limit,
                             transpose=True)
    fitted = []
    for entry in entries:
        try:
            audio = np.asarray(library.read(entry), dtype=np.float32)
        except Exception as exc:
            log.warning("cannot read sample %s (%s); skipping it", getattr(entry, "id", "?"), exc)
            continue
        if audio.ndim == 1:
            audio = audio[None, :]
        if audio.shape[0] == 1:
            audio = np.concatenate([audio, audio])
        audio = audio[:2]
        source_pc = entry.root_note % 12 if entry.root_note is not None else _key_tonic(entry.key)
        shift = 0
        if source_pc is not None and entry.kind != "texture":
            shift = (intent.key.tonic - source_pc) % 12
            shift = shift - 12 if shift > 6 else shift
        audio = transpose(audio, shift)
        audio = audio - audio.mean(axis=-1, keepdims=True)
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1.0
        use = entry.as_use()
        fitted.append(FittedSample(use=use, kind=entry.kind, audio=audio / rms, shift=shift))
    return fitted


class SampleLayer:
    """Library samples placed across a bed as sparse, faded excerpts: a colour, not a loop.

    Each sample is heard at most once a minute (so nothing repeats within 60 s): long ones
    (pads, drones, textures) as an excerpt of 8-16 s from a random place in the file with long
    fades, short ones (bells, phrases, plucks) whole. A pad or phrase holds one chord (the key's
    tonic), so it waits for a tonic chord (``on_tonic(seconds)``).

    Args:
        fitted: the samples chosen and transposed for the cue.
        total: samples of the render.
        rng: the layer's random stream.
        loop_period: a loop's cycle in samples (placements repeat around the seam), or None.
        offset: samples of render before the cycle begins (a loop's pre-roll).
        on_tonic: whether the bed's chord at a time of the cycle (seconds) is the tonic.
    """

    def __init__(self, fitted: list[FittedSample], *, total: int, rng: np.random.Generator,
                 loop_period: int | None = None, offset: int = 0, on_tonic=None):
        self.events: list[tuple[int, np.ndarray]] = []
        cycle = loop_period or total
        for fs in fitted:
            chordal = fs.kind in ("pad", "phrase")
            long = fs.kind in LOOPED_KINDS or fs.audio.shape[-1] > 20 * SAMPLE_RATE
            t = float(rng.uniform(3.0, 20.0))
            while t * SAMPLE_RATE < cycle - 4 * SAMPLE_RATE:
                if chordal and on_tonic is not None and not on_tonic(t):
                    t += float(rng.uniform(3.0, 6.0))  # wait for the tonic chord
                    continue
                clip = self._excerpt(fs.audio, rng) if long else fs.audio * np.float32(0.6)
                start = int(t * SAMPLE_RATE) + offset
                self.events.append((start, clip))
                if loop_period:  # heard again on either side of the seam
                    self.events.append((start - loop_period, clip))
                    self.events.append((start + loop_period, clip))
                t += float(rng.uniform(60.0, 90.0))
        self.events.sort(key=lambda e: e[0])

    @staticmethod
    def _excerpt(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = audio.shape[-1]
        length = min(n, int(rng.uniform(8.0, 16.0) * SAMPLE_RATE))
        start = int(rng.integers(0, max(n - length, 1)))
        clip = audio[:, start:start + length].copy()
        fade = min(int(2.5 * SAMPLE_RATE), length // 3)
        ramp = np.sin(0.5 * np.pi * np.arange(fade) / max(fade, 1)).astype(np.float32) ** 2
        clip[:, :fade] *= ramp
        clip[:, length - fade:] *= ramp[::-1]
        return clip

    def add_to(self, out: np.ndarray, start: int, gain: float = 1.0) -> None:
        n = out.shape[-1]
        for pos, audio in self.events:
            if pos >= start + n:
                break
            if pos + audio.shape[-1] <= start:
                continue
            a, b = max(pos, start), min(pos + audio.shape[-1], start + n)
            out[:, a - start: b - start] += audio[:, a - pos: b - pos] * np.float32(gain * SAMPLE_LAYER_LEVEL)
