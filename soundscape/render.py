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


class AudioStore:
    """A long render's audio, ``(channels, frames)`` float32, kept in a temporary file.

    A three-hour stereo bed is 4 GB of float32: held in memory twice (render, then master) it
    would not fit a small machine, so long renders spill here and every stage after works on
    ranges of it. Frames are interleaved on disk, so a time range is one contiguous read.
    Slicing reads like a 2-D array (``store[:, a:b]``, ``store[ch, a:b]``, ``store[:, i]``
    return arrays); :meth:`write` and :meth:`scale` change it. The file is unlinked as soon as
    it is made, so it vanishes when the store is closed or the process dies, whatever happens.

    Args:
        channels, frames: the shape.
        folder: where the temporary file goes (default: the system's temporary folder).
    """

    ndim = 2

    def __init__(self, channels: int, frames: int, *, folder: str | None = None,
                 _fd: int | None = None, _offset: int = 0):
        import os
        import tempfile

        self.channels, self.frames = int(channels), int(frames)
        self._offset = int(_offset)
        if _fd is None:
            fd, name = tempfile.mkstemp(prefix="soundscape-render-", suffix=".f32", dir=folder)
            os.unlink(name)
            os.ftruncate(fd, self.channels * self.frames * 4)
            self._fd, self._owner = fd, True
        else:
            self._fd, self._owner = _fd, False

    @property
    def shape(self) -> tuple[int, int]:
        return (self.channels, self.frames)

    @property
    def dtype(self):
        import numpy as np

        return np.dtype(np.float32)

    def _bytes(self, frame: int) -> int:
        return (self._offset + frame) * self.channels * 4

    def read(self, start: int, stop: int):
        """Frames ``start .. stop`` (clipped to the store) as a new ``(channels, m)`` array."""
        import os

        import numpy as np

        start, stop = max(0, start), min(self.frames, stop)
        if stop <= start:
            return np.zeros((self.channels, 0), dtype=np.float32)
        raw = os.pread(self._fd, (stop - start) * self.channels * 4, self._bytes(start))
        frames = np.frombuffer(raw, dtype="<f4").reshape(stop - start, self.channels)
        return np.ascontiguousarray(frames.T)

    def write(self, start: int, block) -> None:
        """Write ``block`` ``(channels, m)`` at frame ``start``."""
        import os

        import numpy as np

        block = np.asarray(block, dtype=np.float32)
        if start < 0 or start + block.shape[-1] > self.frames:
            raise ValueError("write outside the store")
        os.pwrite(self._fd, np.ascontiguousarray(block.T).astype("<f4", copy=False).tobytes(),
                  self._bytes(start))

    def scale(self, start: int, stop: int, gain, *, block: int = 1 << 20) -> None:
        """Multiply frames ``start .. stop`` by ``gain``: a scalar, one gain per frame ``(m,)``
        or per channel and frame ``(channels, m)``."""
        import numpy as np

        gain = np.asarray(gain, dtype=np.float32)
        for a in range(start, stop, block):
            b = min(a + block, stop)
            piece = self.read(a, b)
            piece *= gain if gain.ndim == 0 else gain[..., a - start:b - start]
            self.write(a, piece)

    def view(self, start: int, frames: int) -> "AudioStore":
        """Frames ``start .. start + frames`` as a store of their own (the same file)."""
        if start < 0 or start + frames > self.frames:
            raise ValueError("view outside the store")
        view = AudioStore(self.channels, frames, _fd=self._fd, _offset=self._offset + start)
        view._parent = self  # keeps the file open while the view is used
        return view

    def __getitem__(self, key):
        import numpy as np

        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(cols, slice):
            start, stop, step = cols.indices(self.frames)
            if step != 1:
                raise IndexError("an audio store is read in steps of one frame")
            data = self.read(start, stop)
        else:
            index = int(cols) + (self.frames if int(cols) < 0 else 0)
            if not 0 <= index < self.frames:
                raise IndexError("frame index out of range")
            data = self.read(index, index + 1)[:, 0]
        return data[rows] if not (isinstance(rows, slice) and rows == slice(None)) else data

    def __setitem__(self, key, value) -> None:
        import numpy as np

        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if not (isinstance(rows, slice) and rows == slice(None)) or not isinstance(cols, slice):
            raise IndexError("an audio store is written a range of frames at a time")
        start, stop, _ = cols.indices(self.frames)
        value = np.broadcast_to(np.asarray(value, dtype=np.float32), (self.channels, stop - start))
        self.write(start, value)

    def close(self) -> None:
        import os

        if self._owner and self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except (OSError, TypeError):
            pass


def is_store(audio) -> bool:
    """True for an :class:`AudioStore` (or a view of one) rather than an array."""
    return isinstance(audio, AudioStore)
