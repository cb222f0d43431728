"""The sample-library layer: picks a few library files for the cue and fits them to it.

Pitched samples are transposed to the cue's key by resampling (the nearest shift, at most a
tritone); pads, drones and textures loop under the music through the crossfading looper;
bells and phrases are placed as sparse events. A missing or empty library means no layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal

from soundscape.engines.composer.synth import SAMPLE_RATE
from soundscape.engines.composer.textures import Looper
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
    """Plays fitted samples across a bed: loops for sustained kinds, sparse hits for the rest.

    A pad or phrase sample holds one chord (the key's tonic), so it follows ``on_tonic``, a 0..1
    gate per sample (1 where the bed's chord is the tonic); drones and textures fit any chord.
    """

    def __init__(self, fitted: list[FittedSample], *, total: int, rng: np.random.Generator,
                 loop_period: int | None = None, on_tonic=None):
        self.loopers: list[tuple[Looper, bool]] = []
        self.events: list[tuple[int, np.ndarray]] = []
        for fs in fitted:
            chordal = fs.kind in ("pad", "phrase")
            if fs.kind in LOOPED_KINDS or fs.audio.shape[-1] > 20 * SAMPLE_RATE:
                self.loopers.append((Looper(fs.audio, total, rng, segment_seconds=(5.0, 10.0),
                                            xfade_seconds=1.5), chordal))
            else:
                # One placement every 20-40 s, quieter than the loops: a colour, not a lead.
                t = float(rng.uniform(2.0, 12.0))
                while t * SAMPLE_RATE < total:
                    start = int(t * SAMPLE_RATE)
                    if chordal and on_tonic is not None and not on_tonic(t):
                        t += float(rng.uniform(4.0, 8.0))  # wait for the tonic chord
                        continue
                    self.events.append((start, 0.6 * fs.audio))
                    if loop_period:  # wrap tails over the loop point (see arrangement)
                        self.events.append((start - loop_period, 0.6 * fs.audio))
                    t += float(rng.uniform(20.0, 40.0))

    def add_to(self, out: np.ndarray, start: int, gain: np.ndarray | float,
               tonic_gate: np.ndarray | float = 1.0) -> None:
        n = out.shape[-1]
        for looper, chordal in self.loopers:
            g = gain * SAMPLE_LAYER_LEVEL / np.sqrt(len(self.loopers))
            looper.add_to(out, start, g * tonic_gate if chordal else g)
        for pos, audio in self.events:
            if pos >= start + n or pos + audio.shape[-1] <= start:
                continue
            a, b = max(pos, start), min(pos + audio.shape[-1], start + n)
            if a < b:
                g = gain if np.isscalar(gain) else gain[a - start: b - start]
                out[:, a - start: b - start] += audio[:, a - pos: b - pos] * g * SAMPLE_LAYER_LEVEL
