"""Pre-encoded code shards: exact round trips, int16 memory maps, parallel encoding = serial."""

from __future__ import annotations

import numpy as np
import pytest

from soundscape.config import SAMPLES_DIR
from soundscape.engines.musicgen.shards import (CODE_DTYPE, Clip, CodeShards, add_to_index,
                                                encode_to_shards, read_index, write_shard)
from soundscape.errors import ModelError


def test_shards_round_trip_codes_exactly_as_int16_memmaps(tmp_path):
    rng = np.random.default_rng(440)
    # Three clips of different lengths, codes over the whole of a 2048-entry codebook.
    clips = {f"sha{n}": rng.integers(0, 2048, size=(4, length)) for n, length in
             enumerate((37, 1, 250))}
    clips["sha0"][:, 0] = 2047
    clips["sha0"][:, 1] = 0
    placed = write_shard(tmp_path, list(clips.values()))
    add_to_index(tmp_path, dict(zip(clips, placed)), 4)
    [shard] = {p.shard for p in placed}
    assert (tmp_path / shard).stat().st_size == 4 * (37 + 1 + 250) * 2  # 2 bytes per code

    order = ["sha2", "sha0", "sha1"]  # the reader's order need not be the writer's
    shards = CodeShards(tmp_path, order)
    assert shards.lengths.tolist() == [250, 37, 1]
    for i, sha in enumerate(order):
        got = shards.codes(i)
        assert got.dtype == CODE_DTYPE and got.shape == clips[sha].shape
        assert np.array_equal(got, clips[sha])
        assert isinstance(shards.shard(i), np.memmap)
    assert np.array_equal(shards.window(0, 100, 50), clips["sha2"][:, 100:150])
    with pytest.raises(ModelError, match="outside clip"):
        shards.window(1, 30, 8)


def test_bad_codes_and_torn_shards_are_refused(tmp_path):
    with pytest.raises(ModelError, match="int16"):
        write_shard(tmp_path, [np.full((4, 3), 2 ** 15)])
    placed = write_shard(tmp_path, [np.zeros((4, 10), dtype=np.int64)])
    add_to_index(tmp_path, {"a": placed[0]}, 4)
    with open(tmp_path / placed[0].shard, "ab") as fh:
        fh.write(b"\0")  # half a code: a torn write
    with pytest.raises(ModelError, match="torn"):
        CodeShards(tmp_path, ["a"])
    with pytest.raises(ModelError, match="no codes"):
        CodeShards(tmp_path, ["unknown"])


def test_parallel_encoding_matches_the_codec(tiny_model_dir, tmp_path):
    import torch

    from soundscape.engines.musicgen.checkpoint import load_modules
    from soundscape.engines.musicgen.shards import read_audio

    files = sorted(SAMPLES_DIR.glob("*.flac"))[:3]
    clips = [Clip(f, f"clip{n}") for n, f in enumerate(files)]
    store = tmp_path / "store"
    assert encode_to_shards(tiny_model_dir, clips, store=store, workers=2) == 0
    assert len(read_index(store)["clips"]) == 3
    assert len(list(store.glob("*.i16"))) == 2          # one shard per worker
    assert encode_to_shards(tiny_model_dir, clips, store=store, workers=2) == 3  # all cached

    codec, _, _ = load_modules(tiny_model_dir, device="cpu", dtype="float32")
    shards = CodeShards(store, [c.sha256 for c in clips])
    for i, f in enumerate(files):
        wav = read_audio(f, codec.sample_rate, codec.channels)
        with torch.no_grad():
            expected, _ = codec.encode(wav[None])
        assert np.array_equal(shards.codes(i), expected[0].numpy())
