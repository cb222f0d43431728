"""What an engine hands back: the raw audio of one cue and what it is made from (data only).

Engines produce a :class:`Render`; mastering consumes it. Audio travels as float32 NumPy arrays
shaped ``(channels, samples)`` (the librosa and audiocraft convention), nominally within -1..1;
mastering sets the final level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from soundscape.spec import CueSpec

if TYPE_CHECKING:  # only named in annotations: this module never needs numpy itself
    import numpy as np

# A looping bed is rendered this much longer than asked; mastering crossfades the extra over the
# start, so the loop point joins without a click and the file is exactly the asked duration.
LOOP_OVERLAP_SECONDS = 3.0


@dataclass(frozen=True)
class SampleUse:
    """One sample-library file (or registered asset) that went into a render."""

    id: str
    sha256: str
    license: str
    path: str = ""


@dataclass(frozen=True)
class PresetUse:
    """A sound-bank preset that played in a render: an ingredient, like a library sample.

    ``id`` names it in the ledger (``soundbank:<bank>:<midi bank>:<program>``) and ``sha256``
    is the bank file's: the preset is part of that file. ``license`` is the bank's licence (its
    terms file decides what rendered audio owes), ``credit`` the bank's credit line, and
    ``sample_credit`` the bank's own note on where the preset's samples come from, when it
    publishes one.
    """

    id: str
    sha256: str
    license: str
    bank: str
    bank_title: str
    bank_file: str
    midi_bank: int
    program: int
    preset: str
    credit: str
    copyright: str = ""
    source: str = ""
    instrument: str = ""
    sample_credit: str | None = None


@dataclass(frozen=True)
class Lineage:
    """What a render is made from, as the engine knows it; the ledger adds the rest.

    ``model`` names a registered model (musicgen) or is None (composer). ``samples`` are the
    library files used; ``ingredients`` are other registered assets (a continuation prompt);
    ``presets`` the sound-bank presets that played.
    """

    engine: str
    engine_version: str
    model: str | None = None
    model_sha256: str | None = None
    samples: tuple[SampleUse, ...] = ()
    ingredients: tuple[SampleUse, ...] = ()
    presets: tuple[PresetUse, ...] = ()

    def describe(self) -> dict:
        return {
            "engine": self.engine,
            "engine_version": self.engine_version,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "samples": [s.__dict__ for s in self.samples],
            "ingredients": [s.__dict__ for s in self.ingredients],
            "presets": [p.__dict__ for p in self.presets],
        }


@dataclass
class Render:
    """An engine's raw output for one cue, before mastering.

    ``details`` carries engine facts worth keeping in the sidecar (chords, motif, sections).
    ``tail_seconds`` is how much of the end is a natural decay (jingles): mastering must not
    fade over the music before it.
    """

    spec: CueSpec
    audio: np.ndarray
    sample_rate: int
    lineage: Lineage
    details: dict = field(default_factory=dict)
    tail_seconds: float = 0.0

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate
