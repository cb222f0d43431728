"""The codec stage: adversarial EnCodec training on streamed segments, held-out figures, the LM's refusal.

A tiny codec (``builders.py``'s ``tiny``, random weights) and a few short clips from samples/.
"""

from __future__ import annotations

import pytest

from soundscape.config import SAMPLES_DIR
from soundscape.errors import ModelError, ParameterError

# Five short mono clips of different kinds: a bell, a pluck, a drone, a texture, a phrase.
CLIPS = ("bell_c5", "pluck_a3", "drone_a", "texture_ocean", "phrase_c_major_72bpm")


@pytest.fixture(scope="module")
def clips():
    files = [SAMPLES_DIR / f"{name}.flac" for name in CLIPS]
    assert all(f.is_file() for f in files), "the sample library is missing"
    return [{"path": str(f)} for f in files]


def _state_hash(path):
    from soundscape.engines.musicgen.checkpoint import read_package, state_sha256

    return state_sha256(read_package(path)["best_state"])


@pytest.mark.slow
def test_codec_stage_lowers_heldout_reconstruction_error(tiny_model_dir, clips, tmp_path):
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes, codec_record, load_model
    from soundscape.engines.musicgen.codec_train import require_trained_codec
    from soundscape.engines.musicgen.train import train

    seen = []
    result = train(tiny_model_dir, clips, stage="codec", steps=30, batch_size=2, lr=3e-3,
                   out_dir=tmp_path / "codec", segment_seconds=0.4, seed=1, validate_every=15,
                   on_validation=seen.append)
    assert [v["step"] for v in result.validation] == [0, 15, 30] and seen == result.validation
    before, after = result.validation[0], result.validation[-1]
    # The codec as it came in against the codec after 30 steps, on a clip it never trained on.
    # (SI-SNR is recorded too, but a few dozen steps teach the codec the spectrum, not yet the
    # phase: it stays far below 0 dB and moves by chance, so it is not asserted on.)
    assert after["mel_distance"] < 0.92 * before["mel_distance"], result.validation

    # The export: the LM file is the base's, the codec changed and says it was trained.
    base = checkpoint_hashes(tiny_model_dir)
    assert result.hashes["lm"] == base["lm"] and result.hashes["compression"] != base["compression"]
    record = codec_record(tmp_path / "codec")
    assert record["trained"] is True and record["steps"] == 30
    assert record["heldout"]["clips"] == 1 and record["heldout"]["windows"] == 2
    assert record["heldout"]["untrained"]["mel_distance"] == pytest.approx(before["mel_distance"])
    assert record["heldout"]["trained"]["si_snr_db"] == pytest.approx(after["si_snr_db"])
    assert result.settings["codec"] == record
    assert codec_record(tiny_model_dir) == {"trained": False}
    require_trained_codec(tmp_path / "codec")  # the LM stage takes this one
    model = load_model(tmp_path / "codec", device="cpu")  # and audiocraft's loader reads it
    assert model.compression_model.frame_rate == 25


def test_resume_continues_exactly(tiny_model_dir, clips, tmp_path):
    from soundscape.engines.musicgen.train import train

    common = dict(stage="codec", batch_size=2, lr=3e-3, segment_seconds=0.2, seed=4)
    straight = train(tiny_model_dir, clips, steps=4, out_dir=tmp_path / "straight", **common)
    first = train(tiny_model_dir, clips, steps=2, out_dir=tmp_path / "resumed",
                  checkpoint_every=2, **common)
    resumed = train(tiny_model_dir, clips, steps=4, out_dir=tmp_path / "resumed", resume=True,
                    **common)
    assert resumed.start_step == 2 and resumed.losses[:2] == first.losses
    # Same batches, same codec, same discriminator and balancer state: the same losses.
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5, abs=1e-7)
    assert resumed.validation[-1]["mel_distance"] == pytest.approx(
        straight.validation[-1]["mel_distance"], rel=1e-5)
    assert (_state_hash(tmp_path / "resumed" / "compression_state_dict.bin")
            == _state_hash(tmp_path / "straight" / "compression_state_dict.bin"))
    with pytest.raises(ModelError, match="other lr"):
        train(tiny_model_dir, clips, steps=5, out_dir=tmp_path / "resumed", resume=True,
              **{**common, "lr": 1e-3})


def test_segments_are_streamed_crops_distinct_per_rank(clips, monkeypatch):
    import soundfile as sf

    from soundscape.engines.musicgen.segments import SegmentSampler

    reads = []
    real_read = sf.read

    def counting_read(path, *args, **kwargs):  # passes through; records what was asked for
        reads.append(kwargs.get("frames", -1))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(sf, "read", counting_read)
    paths = [c["path"] for c in clips]
    rank0 = SegmentSampler(paths, segment=3200, sample_rate=32000, channels=1, seed=7,
                           rank=0, world_size=2)
    rank1 = SegmentSampler(paths, segment=3200, sample_rate=32000, channels=1, seed=7,
                           rank=1, world_size=2)
    batch = rank0.batch(3, 4)
    assert batch.shape == (4, 1, 3200) and float(batch.abs().max()) > 0
    # Each crop read 0.1 s of 48 kHz audio (plus one frame), never a whole file.
    assert reads == [4801] * 4
    assert rank0.rows(3, 4) == rank0.rows(3, 4)
    assert rank0.rows(3, 4) != rank1.rows(3, 4)
    assert rank0.rows(3, 4) != rank0.rows(4, 4)
    with pytest.raises(ParameterError, match="rank 2"):
        SegmentSampler(paths, segment=3200, sample_rate=32000, channels=1, rank=2, world_size=2)


def test_heldout_split_is_deterministic_and_stable():
    from types import SimpleNamespace

    from soundscape.engines.musicgen.codec_train import heldout_split

    items = [SimpleNamespace(path=f"{i}.wav", sha256=f"{i:064x}") for i in range(40)]
    train_a, held_a = heldout_split(items, 0.1)
    train_b, held_b = heldout_split(list(reversed(items)), 0.1)
    assert {i.sha256 for i in held_a} == {i.sha256 for i in held_b}
    assert 1 <= len(held_a) < 40 and len(train_a) + len(held_a) == 40
    grown_train, grown_held = heldout_split(items + [SimpleNamespace(path="x", sha256="f" * 64)],
                                            0.1)
    assert {i.sha256 for i in held_a} <= {i.sha256 for i in grown_held}
    _, few = heldout_split(items[:3], 0.1)
    assert len(few) == 1  # at least one, whatever the fraction


def test_lm_stage_refuses_an_untrained_codec(tiny_model_dir, clips, tmp_path):
    from soundscape.engines.musicgen.train import train

    with pytest.raises(ModelError, match="codec was never trained") as caught:
        train(tiny_model_dir, clips, stage="lm", steps=2, out_dir=tmp_path / "lm",
              cache_dir=tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "lm").exists() and not (tmp_path / "cache").exists()


def test_cli_lm_refusal_is_one_line_and_writes_nothing(tmp_path, monkeypatch, torch_one_thread):
    from typer.testing import CliRunner

    from soundscape.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("SOUNDSCAPE_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "300")
    runner = CliRunner()
    assert runner.invoke(app, ["model", "new", "studio-tiny", "--arch", "tiny"]).exit_code == 0
    shown = runner.invoke(app, ["model", "show", "studio-tiny"])
    assert "codec: never trained" in shown.output
    result = runner.invoke(app, ["train", "--model", "studio-tiny", "--dataset",
                                 "soundscape-samples", "--out", "tiny-lm", "--steps", "2"])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert ("soundscape train --model studio-tiny --dataset soundscape-samples --stage codec "
            "--out studio-tiny-codec") in errors[0]
    assert "Traceback" not in result.output
    assert not (home / "models" / "tiny-lm").exists()
    assert not (home / "cache" / "codes").exists()
    listed = runner.invoke(app, ["model", "list"])
    assert "tiny-lm" not in listed.output


def test_dead_codes_are_revived_near_the_data_and_stay_there():
    """audiocraft's own replacement of dead codes is undone by the EMA update right after it;
    with soundscape's, a codebook far from the data moves onto it in one training step."""
    import torch
    from audiocraft.quantization.core_vq import EuclideanCodebook

    from soundscape.engines.musicgen.codec_train import revive_dead_codes_properly

    def after_one_step(fixed: bool) -> float:
        torch.manual_seed(0)
        codebook = EuclideanCodebook(dim=4, codebook_size=16, decay=0.99,
                                     threshold_ema_dead_code=2).train()
        if fixed:
            assert revive_dead_codes_properly(codebook) == 1
        data = 10.0 + torch.randn(256, 4)  # far from the codebook's uniform start in [-0.1, 0.1]
        codebook(data)
        # How far each code's row is from the nearest data vector, on average.
        return float(torch.cdist(codebook.embed, data).min(dim=1).values.mean())

    stock, revived = after_one_step(False), after_one_step(True)
    assert revived < 1.0 < stock, (stock, revived)


def test_a_fresh_codec_starts_from_its_data_and_reconstruction_steps_seed_its_codebooks(
        tiny_model_dir, clips, tmp_path):
    """A never-trained codec: latents scaled to the set RMS on the first batch, biases zeroed;
    after the reconstruction-only steps the codebooks are k-means of the trained latents, so
    the held-out clip's frames use many codes, and the held-out mel distance falls."""
    import torch

    from soundscape.engines.musicgen.builders import build_model
    from soundscape.engines.musicgen.checkpoint import load_model
    from soundscape.engines.musicgen.codec_train import INITIAL_LATENT_RMS, initialise_codec
    from soundscape.engines.musicgen.segments import read_window
    from soundscape.engines.musicgen.train import train

    codec, _ = build_model("tiny", seed=3)
    batch = torch.stack([read_window(c, 0, 12_800, sample_rate=32000, channels=1)
                         for c in _clip_infos(clips)])
    before = initialise_codec(codec, batch)
    with torch.no_grad():
        after = float(codec.encoder(batch).pow(2).mean().sqrt())
    assert after == pytest.approx(INITIAL_LATENT_RMS, rel=1e-3) and abs(before - after) > 0.05
    assert all(float(p.abs().max()) == 0 for n, p in codec.named_parameters() if n.endswith("bias")
               and (n.startswith("encoder") or n.startswith("decoder")))

    result = train(tiny_model_dir, clips, stage="codec", steps=12, reconstruction_steps=12,
                   batch_size=2, lr=1e-3, out_dir=tmp_path / "codec", segment_seconds=0.4, seed=1)
    assert result.settings["initialisation"]["kind"] == "data-dependent"
    assert result.validation[-1]["mel_distance"] < result.validation[0]["mel_distance"]
    model = load_model(tmp_path / "codec", device="cpu")
    wave = torch.stack([read_window(c, 0, 32000, sample_rate=32000, channels=1)
                        for c in _clip_infos(clips)])
    with torch.inference_mode():
        codes, _ = model.compression_model.encode(wave)
    # (A random tiny codec puts any audio on 4-5 of its 256 first-codebook codes.)
    assert len(set(codes[:, 0].reshape(-1).tolist())) >= 8, codes[:, 0]


def _clip_infos(clips):
    from soundscape.engines.musicgen.segments import clip_info

    return [clip_info(c["path"]) for c in clips]
