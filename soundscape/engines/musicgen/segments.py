"""Waveform segments streamed from disk: random crops read with soundfile, one crop at a time.

Nothing here holds a whole file, let alone a whole dataset, in memory. A :class:`SegmentSampler`
keeps each clip's path, length, rate and channel count (read from the file's header), and for
each crop reads only the frames it needs (``soundfile.read(start=..., frames=...)``), then
converts that crop to the model's rate and channels. Memory is a batch of segments, whatever
the size of the catalogue.

In a distributed run each process builds its own sampler with its ``rank`` and ``world_size``:
the crops are drawn from a generator seeded by (seed, step, rank), so every rank draws different
segments at every step, a run is reproducible step by step (a resume draws what an uninterrupted
run would have), and no rank needs to talk to another to sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from soundscape.errors import AudioError, ParameterError

# Mixing constants for the per-(seed, step, rank) generator seeds: two primes, so that nearby
# seeds, steps and ranks never land on the same stream.
_STEP_MIX = 1_000_003
_RANK_MIX = 8_191


@dataclass(frozen=True)
class Clip:
    """One audio file as the sampler knows it: where it is and how long (from its header)."""

    path: Path
    frames: int
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def clip_info(path: str | Path) -> Clip:
    """A clip's length, rate and channels from its header (no samples are read).

    Raises:
        AudioError: the file cannot be read as audio, or holds no samples.
    """
    import soundfile as sf

    path = Path(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read training audio {path}: {exc}") from None
    if info.frames <= 0:
        raise AudioError(f"training audio {path} is empty")
    return Clip(path=path, frames=int(info.frames), sample_rate=int(info.samplerate),
                channels=int(info.channels))


def read_window(clip: Clip, start_frame: int, length: int, *, sample_rate: int,
                channels: int) -> torch.Tensor:
    """``length`` samples at ``sample_rate`` from ``start_frame`` (in the clip's own frames).

    Reads just enough of the file to cover the window, converts it with audiocraft's
    ``convert_audio`` and zero-pads past the clip's end.

    Returns:
        A float32 tensor ``[channels, length]``.
    """
    import soundfile as sf
    from audiocraft.data.audio_utils import convert_audio

    # One source frame more than the window needs, so resampling never comes up short inside it.
    frames = math.ceil(length * clip.sample_rate / sample_rate) + 1
    try:
        data, _ = sf.read(str(clip.path), start=int(start_frame), frames=frames, dtype="float32",
                          always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read training audio {clip.path}: {exc}") from None
    out = torch.zeros((channels, length))
    if data.shape[0]:
        wav = convert_audio(torch.from_numpy(data.T.copy()), clip.sample_rate, sample_rate,
                            channels)
        n = min(length, wav.shape[-1])
        out[:, :n] = wav[:, :n]
    return out


class SegmentSampler:
    """Random fixed-length crops of a set of audio files, read from disk at each step.

    Clips are drawn in proportion to their duration (as audiocraft's ``AudioDataset`` samples on
    duration), and the crop's start uniformly within the clip; a clip shorter than a segment is
    zero-padded.

    Args:
        paths: the audio files.
        segment: samples per segment, at ``sample_rate``.
        sample_rate, channels: what the model takes.
        seed: the run's seed.
        rank, world_size: this process's place in a distributed run (default a single process).
    """

    def __init__(self, paths: Sequence[str | Path], *, segment: int, sample_rate: int,
                 channels: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ParameterError(f"rank {rank} must lie in 0..{world_size - 1} (world size "
                                 f"{world_size})")
        if segment < 1:
            raise ParameterError("a segment must hold at least one sample")
        if not paths:
            raise ParameterError("no audio to sample segments from")
        self.clips = [clip_info(p) for p in paths]
        self.segment, self.sample_rate, self.channels = segment, sample_rate, channels
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self._weights = torch.tensor([c.seconds for c in self.clips], dtype=torch.float64)

    def generator(self, step: int) -> torch.Generator:
        """The generator that draws step ``step``'s crops on this rank."""
        return torch.Generator().manual_seed(
            (self.seed * _STEP_MIX + step) * _RANK_MIX + self.rank)

    def rows(self, step: int, batch_size: int) -> list[tuple[int, int]]:
        """(clip index, start frame in the clip's own rate) for each segment of a step."""
        generator = self.generator(step)
        picks = torch.multinomial(self._weights, batch_size, replacement=True,
                                  generator=generator).tolist()
        rows = []
        for index in picks:
            clip = self.clips[index]
            span = math.ceil(self.segment * clip.sample_rate / self.sample_rate)
            spare = max(clip.frames - span, 0)
            rows.append((index, int(torch.randint(spare + 1, (1,), generator=generator))))
        return rows

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """This rank's ``batch_size`` segments for step ``step``: ``[batch, channels, segment]``."""
        return torch.stack([read_window(self.clips[i], start, self.segment,
                                        sample_rate=self.sample_rate, channels=self.channels)
                            for i, start in self.rows(step, batch_size)])
