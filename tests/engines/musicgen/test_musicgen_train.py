"""Training on the sample library: the loss falls (LM, LoRA), resumes continue, exports load.

These train the LM on the tiny model's untrained codec (``allow_untrained_codec``); the codec
stage has its own tests in test_codec_train.py.
"""

from __future__ import annotations

import shutil

import pytest

from soundscape.config import SAMPLES_DIR
from soundscape.errors import ModelError, ParameterError


@pytest.fixture(scope="module")
def sample_assets():
    """The samples/ library as training assets (descriptions come from the sidecars)."""
    files = sorted(SAMPLES_DIR.glob("*.flac"))
    assert len(files) >= 10, "the sample library is missing"
    return [{"path": str(f)} for f in files]


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.slow
def test_lm_stage_lowers_the_loss_and_exports_a_loadable_model(tiny_model_dir, sample_assets, tmp_path):
    from audiocraft.models import MusicGen

    from soundscape.engines.musicgen import MusicGenEngine
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes, load_model, state_sha256
    from soundscape.engines.musicgen.train import train

    seen = []
    result = train(tiny_model_dir, sample_assets, stage="lm", steps=30, batch_size=4, lr=3e-3,
                   out_dir=tmp_path / "trained", segment_seconds=2.0, seed=1,
                   allow_untrained_codec=True,
                   progress=lambda step, total, loss: seen.append((step, total)))
    assert len(result.losses) == 30 and seen[-1] == (30, 30)
    assert _mean(result.losses[-5:]) < 0.5 * _mean(result.losses[:5])

    base, new = checkpoint_hashes(tiny_model_dir), result.hashes
    assert new["compression"] == base["compression"]  # the codec is copied byte for byte
    assert new["lm"] != base["lm"]
    loaded = load_model(tmp_path / "trained", device="cpu")
    theirs = MusicGen.get_pretrained(str(tmp_path / "trained"), device="cpu")
    assert state_sha256(loaded.lm) == state_sha256(theirs.lm)
    assert loaded.lm.cfg.soundscape.training.stage == "lm"
    assert loaded.lm.cfg.soundscape.training.steps == 30

    engine = MusicGenEngine(model_dir=tmp_path / "trained", model_name="trained", device="cpu")
    from soundscape.spec import CueSpec, resolve_intent

    spec = CueSpec(prompt="Struck bell on C5 with a long shimmering decay.", kind="jingle",
                   duration=2.0, seed=3, intent=resolve_intent("bell", kind="jingle"))
    [render] = engine.render([spec])
    assert render.audio.shape == (1, 64000)

    # The codes were cached: a second run encodes nothing.
    again = train(tiny_model_dir, sample_assets, stage="lm", steps=2, batch_size=2, lr=3e-3,
                  out_dir=tmp_path / "again", segment_seconds=2.0, allow_untrained_codec=True)
    assert again.segments_from_cache == len(sample_assets)


def test_resume_continues_the_step_count_and_matches_a_straight_run(tiny_model_dir, sample_assets,
                                                                     tmp_path):
    from soundscape.engines.musicgen.train import train

    common = dict(stage="lm", batch_size=2, lr=3e-3, segment_seconds=1.0, seed=2,
                  allow_untrained_codec=True)
    straight = train(tiny_model_dir, sample_assets, steps=8, out_dir=tmp_path / "straight", **common)
    first = train(tiny_model_dir, sample_assets, steps=5, out_dir=tmp_path / "resumed",
                  checkpoint_every=5, **common)
    resumed = train(tiny_model_dir, sample_assets, steps=8, out_dir=tmp_path / "resumed",
                    resume=True, **common)
    assert first.start_step == 0 and resumed.start_step == 5
    assert len(resumed.losses) == 8
    assert resumed.losses[:5] == first.losses
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-4, abs=1e-5)
    with pytest.raises(ModelError, match="other lr"):
        train(tiny_model_dir, sample_assets, steps=9, out_dir=tmp_path / "resumed", resume=True,
              **{**common, "lr": 1e-3})
    with pytest.raises(ModelError, match="nothing to resume"):
        train(tiny_model_dir, sample_assets, steps=9, out_dir=tmp_path / "fresh", resume=True,
              **common)


def test_lora_trains_adapters_only_and_merges(tiny_model_dir, sample_assets, tmp_path):
    import torch

    from soundscape.engines.musicgen.checkpoint import load_modules, read_package
    from soundscape.engines.musicgen.lora import add_lora, base_parameters, lora_parameters, merge_lora
    from soundscape.engines.musicgen.train import lm_loss, train

    # The adapter mechanics on a live LM: only A and B move; the base stays put until merged.
    _, lm, _ = load_modules(tiny_model_dir, device="cpu", dtype="float32")
    before = {k: v.detach().clone() for k, v in lm.state_dict().items()}
    adapted = add_lora(lm, 4, generator=torch.Generator().manual_seed(0))
    assert len(adapted) == 4 * len(lm.transformer.layers) // 2 * 2  # self+cross, in+out, per layer
    adapters = lora_parameters(lm)
    assert {n for n, p in lm.named_parameters() if p.requires_grad} == set(adapters)
    optimizer = torch.optim.AdamW(adapters.values(), lr=1e-2)
    lm.train()
    codes = torch.randint(0, lm.card, (2, lm.n_q, 20), generator=torch.Generator().manual_seed(1))
    valid = torch.ones_like(codes, dtype=torch.bool)
    for _ in range(3):
        optimizer.zero_grad()
        lm_loss(lm, codes, valid, ["a", "b"]).backward()
        optimizer.step()
    for name, value in base_parameters(lm).items():
        assert torch.equal(value, before[name]), name
    assert merge_lora(lm) == len(adapted)
    after = lm.state_dict()
    assert set(after) == set(before)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == set(adapted)

    # Through train(): the loss falls, and the export differs from the base only where adapted.
    result = train(tiny_model_dir, sample_assets, stage="lm", steps=30, batch_size=4, lr=1e-2,
                   lora_rank=4, out_dir=tmp_path / "lora", segment_seconds=2.0, seed=1,
                   allow_untrained_codec=True)
    assert _mean(result.losses[-5:]) < 0.8 * _mean(result.losses[:5])
    base_state = read_package(tiny_model_dir / "state_dict.bin")["best_state"]
    new_state = read_package(tmp_path / "lora" / "state_dict.bin")["best_state"]
    assert set(new_state) == set(base_state)
    changed = {k for k in base_state if not torch.equal(base_state[k], new_state[k])}
    assert changed == set(adapted)


def test_codec_stage_needs_a_compression_config(tiny_model_dir, sample_assets, tmp_path):
    import torch

    from soundscape.engines.musicgen.train import train

    folder = tmp_path / "ref"
    shutil.copytree(tiny_model_dir, folder)
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"},
               folder / "compression_state_dict.bin")
    with pytest.raises(ModelError, match="no EnCodec config"):
        train(folder, sample_assets, stage="codec", steps=2, out_dir=tmp_path / "out")


def test_bad_training_input(tiny_model_dir, sample_assets, tmp_path):
    from soundscape.engines.musicgen.train import train

    with pytest.raises(ParameterError, match="no audio"):
        train(tiny_model_dir, [], steps=2, out_dir=tmp_path / "out")
    with pytest.raises(ParameterError, match="must differ"):
        train(tiny_model_dir, sample_assets, steps=2, out_dir=tiny_model_dir)
    with pytest.raises(ParameterError, match="LM stage only"):
        train(tiny_model_dir, sample_assets, stage="codec", lora_rank=4, steps=2, out_dir=tmp_path / "o")
    with pytest.raises(ParameterError, match="unknown training stage"):
        train(tiny_model_dir, sample_assets, stage="vocoder", steps=2, out_dir=tmp_path / "o")
