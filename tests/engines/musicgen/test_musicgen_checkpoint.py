"""Checkpoint folders: export -> reload round trips, safe loading, and clear refusals."""

from __future__ import annotations

import pickle
import shutil

import pytest

from soundscape.errors import ModelError


class _Payload:
    """Pickles to a call that writes a marker file: the shape of a malicious checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_export_reload_gives_identical_parameters_and_generation(tiny_seed, tmp_path):
    import torch

    from soundscape.engines.musicgen.builders import build_model, export_model, load_model, to_musicgen
    from soundscape.engines.musicgen.checkpoint import state_sha256
    from soundscape.engines.musicgen.generate import SamplingParams, generate_codes

    compression_model, lm = build_model("tiny", seed=tiny_seed)
    export_model(compression_model, lm, lm.cfg, tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu")
    assert state_sha256(loaded.lm) == state_sha256(lm)
    assert state_sha256(loaded.compression_model) == state_sha256(compression_model)

    fresh = to_musicgen(compression_model, lm)
    params = SamplingParams()
    before = generate_codes(fresh, ["warm strings"], [7], frames=25, params=params)
    after = generate_codes(loaded, ["warm strings"], [7], frames=25, params=params)
    assert torch.equal(before, after)
    assert torch.equal(fresh.compression_model.decode(before), loaded.compression_model.decode(after))


def test_audiocraft_get_pretrained_reads_the_exported_folder(tiny_model_dir):
    from audiocraft.models import MusicGen

    from soundscape.engines.musicgen.checkpoint import load_model, state_sha256

    theirs = MusicGen.get_pretrained(str(tiny_model_dir), device="cpu")
    ours = load_model(tiny_model_dir, device="cpu")
    assert state_sha256(theirs.lm) == state_sha256(ours.lm)
    assert theirs.max_duration == ours.max_duration == 20.0


def test_malicious_pickle_is_refused_without_running(tiny_model_dir, tmp_path):
    import torch

    from soundscape.engines.musicgen.checkpoint import load_model, read_package

    # The payload is live: plain unpickling runs it.
    live_marker = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(_Payload(live_marker)))
    assert live_marker.exists()

    folder = tmp_path / "evil"
    shutil.copytree(tiny_model_dir, folder)
    package = torch.load(folder / "state_dict.bin", weights_only=True)
    marker = tmp_path / "marker"
    package["xp.cfg"] = _Payload(marker)
    torch.save(package, folder / "state_dict.bin")

    with pytest.raises(ModelError, match="pickled objects other than tensors"):
        read_package(folder / "state_dict.bin")
    with pytest.raises(ModelError, match="refused"):
        load_model(folder, device="cpu")
    assert not marker.exists()


def test_not_a_checkpoint_folder(tmp_path):
    from soundscape.engines.musicgen.checkpoint import load_model

    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="not an audiocraft checkpoint folder: missing"):
        load_model(tmp_path, device="cpu")
    (tmp_path / "state_dict.bin").write_bytes(b"not a checkpoint")
    (tmp_path / "compression_state_dict.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable torch checkpoint"):
        load_model(tmp_path, device="cpu")


def test_hub_id_without_folder_says_how_to_register(tmp_path, monkeypatch):
    from soundscape.engines.musicgen.checkpoint import load_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="soundscape model add DIR"):
        load_model("facebook/musicgen-small", device="cpu")


def test_downloading_conditioner_and_pretrained_reference_are_refused(tiny_model_dir, tmp_path):
    import torch
    from omegaconf import OmegaConf

    from soundscape.engines.musicgen.checkpoint import load_model

    folder = tmp_path / "t5"
    shutil.copytree(tiny_model_dir, folder)
    package = torch.load(folder / "state_dict.bin", weights_only=True)
    cfg = OmegaConf.create(package["xp.cfg"])
    cfg.conditioners.description = {"model": "t5", "t5": {"name": "t5-base", "finetune": False}}
    package["xp.cfg"] = OmegaConf.to_yaml(cfg)
    torch.save(package, folder / "state_dict.bin")
    with pytest.raises(ModelError, match="T5"):
        load_model(folder, device="cpu")

    folder = tmp_path / "ref"
    shutil.copytree(tiny_model_dir, folder)
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"},
               folder / "compression_state_dict.bin")
    with pytest.raises(ModelError, match="refers to the pretrained compression model"):
        load_model(folder, device="cpu")


def test_hashes_change_with_either_file(tiny_model_dir, tmp_path):
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes

    first = checkpoint_hashes(tiny_model_dir)
    assert first == checkpoint_hashes(tiny_model_dir)
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, folder)
    with open(folder / "compression_state_dict.bin", "ab") as handle:
        handle.write(b"\0")
    second = checkpoint_hashes(folder)
    assert second["lm"] == first["lm"]
    assert second["compression"] != first["compression"]
    assert second["model"] != first["model"]
