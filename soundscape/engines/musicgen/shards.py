"""Pre-encoded codes on disk: int16 shards that training memory-maps instead of holding in RAM.

An LM run trains on the codec's codes, not on audio. Held as int64 tensors they cost 8 bytes per
code (50 frames/s x 4 codebooks: about 5.8 MB per hour of audio, 29 GB for 5,000 hours, in every
process). Here each clip's codes are written once, as int16 ``[frames, codebooks]`` rows (time
major, so a training window is one contiguous read) into shard files under a store folder keyed by
the compression model's hash, with ``index.json`` giving each clip's shard, offset and length.
Training opens the shards with ``numpy.memmap``: the OS pages in the windows a batch touches and
can drop them again, so resident memory no longer grows with the catalogue.

Encoding is spread over worker processes (each loads the codec once and writes its own shards);
only the caller writes the index, so there is one writer however many workers or ranks there are.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from soundscape.atomic import atomic_path
from soundscape.errors import AudioError, ModelError

INDEX_FILE = "index.json"
SHARD_SUFFIX = ".i16"
CODE_DTYPE = np.int16
# int16 holds codes below 2**15; EnCodec's codebooks have 2048 (MusicGen) or 1024 entries.
MAX_CARD = 2 ** 15
# Long files are encoded a minute at a time so a worker's memory stays bounded.
ENCODE_CHUNK_SECONDS = 60.0
# A worker closes a shard after this many frames (2**22 frames x 4 codebooks x 2 bytes = 32 MiB,
# about 23 hours of audio at 50 Hz), so no shard file grows without bound.
SHARD_FRAMES = 2 ** 22


@dataclass(frozen=True)
class Clip:
    """One clip to encode: its audio file and the sha256 that names its codes in the store."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class ClipCodes:
    """Where one clip's codes lie: ``frames`` rows from ``offset`` in ``shard``."""

    shard: str
    offset: int
    frames: int


def store_dir(cache_dir: str | Path, compression_sha256: str) -> Path:
    """The store for one codec: codes from another codec never mix with these."""
    return Path(cache_dir) / f"shards-{compression_sha256[:16]}"


def read_index(store: Path) -> dict:
    """The store's index (an empty one when the store is new)."""
    path = store / INDEX_FILE
    if not path.is_file():
        return {"version": 1, "n_q": None, "clips": {}}
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ModelError(f"the codes index {path} is unreadable ({exc}); delete {store} to "
                         f"encode again") from None


def _write_index(store: Path, index: dict) -> None:
    with atomic_path(store / INDEX_FILE) as tmp:
        Path(tmp).write_text(json.dumps(index, sort_keys=True))


def write_shard(store: Path, codes: Sequence[np.ndarray]) -> list[ClipCodes]:
    """Write clips' codes (each ``[K, T]``) into one new shard; return where each landed."""
    arrays = [np.asarray(c) for c in codes]
    n_q = {a.shape[0] for a in arrays}
    if len(n_q) != 1:
        raise ModelError(f"clips with different codebook counts {sorted(n_q)} in one shard")
    for a in arrays:
        if a.size and (a.min() < 0 or a.max() >= MAX_CARD):
            raise ModelError(f"codes outside [0, {MAX_CARD}) cannot be stored as int16")
    name = f"shard-{uuid.uuid4().hex[:16]}{SHARD_SUFFIX}"
    store.mkdir(parents=True, exist_ok=True)
    rows = np.concatenate([a.T for a in arrays], axis=0).astype(CODE_DTYPE, copy=False)
    with atomic_path(store / name) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(np.ascontiguousarray(rows).tobytes())
    placed, offset = [], 0
    for a in arrays:
        placed.append(ClipCodes(name, offset, int(a.shape[1])))
        offset += int(a.shape[1])
    return placed


def add_to_index(store: Path, entries: dict[str, ClipCodes], n_q: int) -> None:
    """Record new clips in the index (the single writer: the caller, never a worker)."""
    index = read_index(store)
    if index.get("n_q") not in (None, n_q):
        raise ModelError(f"{store} holds codes of {index['n_q']} codebooks, not {n_q}")
    index["n_q"] = n_q
    for sha, where in entries.items():
        index["clips"][sha] = {"shard": where.shard, "offset": where.offset,
                               "frames": where.frames}
    _write_index(store, index)


# --- encoding ---

def read_audio(path: Path, sample_rate: int, channels: int) -> "torch.Tensor":
    """A clip's audio ``[channels, samples]`` at the codec's rate and channel count."""
    import soundfile as sf
    import torch
    from audiocraft.data.audio_utils import convert_audio

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read training audio {path}: {exc}") from None
    if data.shape[0] == 0:
        raise AudioError(f"training audio {path} is empty")
    return convert_audio(torch.from_numpy(data.T.copy()), rate, sample_rate, channels)


_WORKER: dict = {}


def _worker_init(model_dir: str, device: str, threads: int | None) -> None:
    import torch

    from soundscape.engines.musicgen.checkpoint import load_compression_model

    if threads:  # a worker process: one thread each; in the caller's process, leave its own
        torch.set_num_threads(threads)
    model = load_compression_model(model_dir, device=device)
    model.eval()
    _WORKER.update(model=model, device=device)


def _encode_clip(model, path: Path, device) -> np.ndarray:
    import torch

    wav = read_audio(path, model.sample_rate, model.channels)
    step = int(ENCODE_CHUNK_SECONDS * model.sample_rate)
    pieces = []
    with torch.inference_mode():
        for start in range(0, wav.shape[-1], step):
            codes, _ = model.encode(wav[None, :, start:start + step].to(device))
            pieces.append(codes[0].cpu().numpy())
    return np.concatenate(pieces, axis=-1)


def _encode_group(store: str, clips: list[Clip]) -> tuple[int, dict[str, ClipCodes]]:
    """In a worker: encode ``clips``, write shards of at most SHARD_FRAMES, return the entries."""
    model, device = _WORKER["model"], _WORKER["device"]
    placed: dict[str, ClipCodes] = {}
    pending: list[tuple[str, np.ndarray]] = []
    frames = 0

    def flush():
        nonlocal frames
        if pending:
            where = write_shard(Path(store), [c for _, c in pending])
            placed.update({sha: w for (sha, _), w in zip(pending, where)})
            pending.clear()
            frames = 0

    n_q = 0
    for clip in clips:
        codes = _encode_clip(model, clip.path, device)
        n_q = int(codes.shape[0])
        pending.append((clip.sha256, codes))
        frames += codes.shape[1]
        if frames >= SHARD_FRAMES:
            flush()
    flush()
    return n_q, placed


def encode_to_shards(model_dir: str | Path, clips: Sequence[Clip], *, store: Path,
                     workers: int = 1, device: str = "cpu") -> int:
    """Encode every clip the store lacks, over ``workers`` processes; return how many were cached.

    Args:
        model_dir: the checkpoint folder whose compression model encodes.
        clips: the clips to have in the store.
        store: the store folder (see :func:`store_dir`).
        workers: encoding processes (1: encode in this process).
        device: where the codec runs.
    """
    index = read_index(store)
    known = index["clips"]
    missing, seen = [], set()
    for clip in clips:
        if clip.sha256 in known and (store / known[clip.sha256]["shard"]).is_file():
            continue
        if clip.sha256 not in seen:
            seen.add(clip.sha256)
            missing.append(clip)
    cached = len(clips) - sum(1 for c in clips if c.sha256 in seen)
    if not missing:
        return cached
    store.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers, len(missing)))
    # Round robin over the clips sorted by size, so each worker gets a like share of audio.
    order = sorted(missing, key=lambda c: -c.path.stat().st_size)
    groups = [order[w::workers] for w in range(workers)]
    entries: dict[str, ClipCodes] = {}
    n_q = None
    if workers == 1:
        _worker_init(str(model_dir), device, None)
        try:
            n_q, entries = _encode_group(str(store), groups[0])
        finally:
            _WORKER.clear()
    else:
        import multiprocessing

        # spawn, not fork: a forked copy of a process that has started torch's threads can hang.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init,
                                 initargs=(str(model_dir), device, 1)) as pool:
            for group_n_q, placed in pool.map(_encode_group, [str(store)] * workers, groups):
                n_q = group_n_q or n_q
                entries.update(placed)
    add_to_index(store, entries, int(n_q))
    return cached


# --- reading ----------------------------------------------------------------------------------

class CodeShards:
    """Read-only windows of clips' codes from the store's memory-mapped shards.

    Args:
        store: the store folder.
        shas: the clips to serve, in the order the sampler indexes them.
    """

    def __init__(self, store: Path, shas: Sequence[str]):
        index = read_index(store)
        clips = index["clips"]
        lacking = [s for s in shas if s not in clips]
        if lacking:
            raise ModelError(f"{len(lacking)} clip(s) have no codes in {store}: encode them first")
        self.store = store
        self.n_q = int(index["n_q"])
        self._maps: dict[str, np.memmap] = {}
        shard_ids, offsets, lengths = [], [], []
        names: list[str] = []
        for sha in shas:
            entry = clips[sha]
            if entry["shard"] not in self._maps:
                self._maps[entry["shard"]] = self._open(entry["shard"])
                names.append(entry["shard"])
            shard_ids.append(names.index(entry["shard"]))
            offsets.append(entry["offset"])
            lengths.append(entry["frames"])
        self._names = names
        self.shard_of = np.asarray(shard_ids, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)

    def _open(self, name: str) -> np.memmap:
        path = self.store / name
        if not path.is_file():
            raise ModelError(f"the codes shard {path} is missing; delete {self.store} to encode "
                             f"again")
        size = path.stat().st_size
        row = self.n_q * np.dtype(CODE_DTYPE).itemsize
        if size % row:
            raise ModelError(f"the codes shard {path} is torn ({size} bytes is not whole rows of "
                             f"{self.n_q} codebooks); delete {self.store} to encode again")
        return np.memmap(path, dtype=CODE_DTYPE, mode="r", shape=(size // row, self.n_q))

    def __len__(self) -> int:
        return len(self.lengths)

    def shard(self, clip: int) -> np.memmap:
        """The memory map holding clip number ``clip``."""
        return self._maps[self._names[int(self.shard_of[clip])]]

    def window(self, clip: int, start: int, frames: int) -> np.ndarray:
        """Codes ``[K, frames]`` (int16) of clip ``clip`` from frame ``start``."""
        length = int(self.lengths[clip])
        if start < 0 or start + frames > length:
            raise ModelError(f"window {start}+{frames} outside clip {clip} of {length} frames")
        base = int(self.offsets[clip]) + start
        return self.shard(clip)[base:base + frames].T

    def codes(self, clip: int) -> np.ndarray:
        """All of clip ``clip``'s codes ``[K, T]``."""
        return self.window(clip, 0, int(self.lengths[clip]))
