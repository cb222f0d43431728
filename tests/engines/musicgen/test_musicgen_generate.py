"""Batched generation: a seed per cue, sliding-window extension, loops, continuation, OOM splits."""

from __future__ import annotations

import numpy as np
import pytest

from soundscape.render import LOOP_OVERLAP_SECONDS
from soundscape.errors import ModelError, ParameterError


def test_render_shape_lineage_and_version(tiny_engine, make_spec):
    [render] = tiny_engine.render([make_spec("calm pad", seed=3, duration=2.0)])
    assert render.audio.dtype == np.float32
    assert render.audio.shape == (1, 2 * 32000)
    assert render.sample_rate == 32000
    assert np.isfinite(render.audio).all() and np.abs(render.audio).max() > 0
    lineage = render.lineage
    assert lineage.engine == "musicgen" and lineage.model == "studio-tiny"
    assert lineage.model_sha256 == tiny_engine.model_sha256 and len(lineage.model_sha256) == 64
    assert lineage.ingredients == ()
    assert tiny_engine.version.startswith("1.0.0+audiocraft-1.3.0")


def test_same_seed_same_audio_alone_and_inside_a_batch(tiny_engine, make_spec):
    alone = tiny_engine.render([make_spec("calm pad over rain", seed=11)])[0].audio
    batch = tiny_engine.render([make_spec("epic strings", seed=5),
                                make_spec("calm pad over rain", seed=11),
                                make_spec("dark drone", seed=99)])
    assert [r.details["batch_size"] for r in batch] == [3, 3, 3]
    assert np.array_equal(batch[1].audio, alone)
    again = tiny_engine.render([make_spec("calm pad over rain", seed=11)])[0].audio
    assert np.array_equal(again, alone)
    other = tiny_engine.render([make_spec("calm pad over rain", seed=12)])[0].audio
    assert not np.array_equal(other, alone)
    assert not np.array_equal(batch[0].audio, batch[2].audio)


def test_specs_group_by_duration_and_params_and_keep_order(tiny_engine, make_spec):
    specs = [make_spec("a", seed=1, duration=2.0), make_spec("b", seed=2, duration=3.0),
             make_spec("c", seed=3, duration=2.0, top_k=50), make_spec("d", seed=4, duration=2.0)]
    renders = tiny_engine.render(specs)
    assert [r.spec.prompt for r in renders] == ["a", "b", "c", "d"]
    assert [r.details["batch_size"] for r in renders] == [2, 1, 1, 2]
    assert [r.audio.shape[-1] for r in renders] == [64000, 96000, 64000, 64000]
    assert renders[2].details["sampling"]["top_k"] == 50


def test_sliding_window_extension_gives_the_asked_duration(tiny_engine, make_spec):
    assert tiny_engine.window_seconds == 20.0
    [render] = tiny_engine.render([make_spec("slow ambient bed", seed=2, duration=27.5, kind="bed")])
    assert render.details["extended"] is True
    assert render.audio.shape == (1, int(27.5 * 32000))
    # The extension is generated, not padded: the last second carries signal.
    assert np.abs(render.audio[:, -32000:]).max() > 0


def test_loop_renders_the_overlap_too(tiny_engine, make_spec):
    [render] = tiny_engine.render([make_spec("calm", seed=1, duration=2.0, loop=True)])
    assert render.duration == pytest.approx(2.0 + LOOP_OVERLAP_SECONDS)


def test_unsensible_duration_and_bad_params_are_parameter_errors(tiny_engine, make_spec):
    with pytest.raises(ParameterError, match="beyond what musicgen"):
        tiny_engine.render([make_spec("long", duration=601.0, kind="bed")])
    with pytest.raises(ParameterError, match="top_p"):
        tiny_engine.render([make_spec("x", top_p=1.5)])
    with pytest.raises(ParameterError, match="malformed"):
        tiny_engine.render([make_spec("x", temperature="hot")])


def test_sampling_parameters_change_the_draw(tiny_engine, make_spec):
    base = tiny_engine.render([make_spec("calm", seed=4)])[0].audio
    greedy = tiny_engine.render([make_spec("calm", seed=4, temperature=0.0)])
    greedy_other_seed = tiny_engine.render([make_spec("calm", seed=5, temperature=0.0)])
    assert np.array_equal(greedy[0].audio, greedy_other_seed[0].audio)  # argmax ignores the seed
    assert not np.array_equal(base, greedy[0].audio)
    top_p = tiny_engine.render([make_spec("calm", seed=4, top_p=0.5)])[0].audio
    assert not np.array_equal(base, top_p)


def test_out_of_memory_splits_the_batch_and_goes_on(tiny_engine, make_spec, monkeypatch, caplog):
    from soundscape.engines.musicgen import generate

    specs = [make_spec(p, seed=s) for p, s in (("a", 1), ("b", 2), ("c", 3), ("d", 4))]
    expected = [r.audio for r in tiny_engine.render(specs)]
    real = generate.generate_codes
    sizes = []

    def tight_memory(model, descriptions, seeds, **kwargs):
        sizes.append(len(descriptions))
        if len(descriptions) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, descriptions, seeds, **kwargs)

    monkeypatch.setattr(generate, "generate_codes", tight_memory)
    with caplog.at_level("WARNING", logger="soundscape.engines.musicgen"):
        renders = tiny_engine.render(specs)
    assert sizes == [4, 2, 1, 1, 2, 1, 1]
    assert "out of memory on a batch of 4" in caplog.text
    assert all(np.array_equal(r.audio, e) for r, e in zip(renders, expected))


def test_out_of_memory_on_a_single_cue_is_a_model_error(tiny_engine, make_spec, monkeypatch):
    from soundscape.engines.musicgen import generate

    def no_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(generate, "generate_codes", no_memory)
    with pytest.raises(ModelError, match="out of memory rendering one"):
        tiny_engine.render([make_spec("x")])


def test_continuation_records_the_asset_as_an_ingredient(tiny_engine, make_spec, tmp_path, rng):
    import soundfile as sf

    path = tmp_path / "asset.wav"
    sf.write(path, (0.1 * rng.standard_normal((3 * 44100, 2))).astype(np.float32), 44100)
    source = {"id": "asset-7", "sha256": "ab" * 32, "license": "CC0-1.0", "path": str(path)}
    [render] = tiny_engine.render([make_spec("calm", seed=1, duration=3.0, continue_from=source)])
    assert render.audio.shape == (1, 3 * 32000)
    [ingredient] = render.lineage.ingredients
    assert (ingredient.id, ingredient.license, ingredient.path) == ("asset-7", "CC0-1.0", str(path))
    assert render.details["continued_from"]["prompt_seconds"] == pytest.approx(3.0)
    plain = tiny_engine.render([make_spec("calm", seed=1, duration=3.0)])[0].audio
    assert not np.array_equal(plain, render.audio)
    with pytest.raises(ParameterError, match="no license"):
        tiny_engine.render([make_spec("calm", continue_from={"id": "x", "path": str(path)})])


def test_progress_rises_to_one(tiny_engine, make_spec):
    seen = []
    tiny_engine.render([make_spec("a", seed=1), make_spec("b", seed=2, duration=3.0)],
                       progress=seen.append)
    assert seen[-1] == 1.0
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert len(seen) > 10


def test_changed_files_fail_the_registered_hash(tiny_model_dir):
    from soundscape.engines.musicgen import MusicGenEngine

    with pytest.raises(ModelError, match="no longer match"):
        MusicGenEngine(model_dir=tiny_model_dir, model_name="x", model_sha256="0" * 64, device="cpu")


def test_get_engine_builds_musicgen(tiny_model_dir):
    from soundscape.engines import get_engine

    engine = get_engine("musicgen", model_dir=tiny_model_dir, model_name="studio-tiny", device="cpu")
    assert engine.name == "musicgen" and engine.sample_rate == 32000


def test_greedy_tokens_match_audiocraft_generate(tiny_engine):
    """Our loop (with its preallocated caches) computes what audiocraft's LMModel.generate does."""
    import torch

    from soundscape.engines.musicgen.generate import SamplingParams, generate_codes

    model = tiny_engine.model
    model.set_generation_params(duration=2.0, use_sampling=False, cfg_coef=3.0)
    attributes, _ = model._prepare_tokens_and_attributes(["calm pad", "dark drone"], None)
    with torch.no_grad():
        theirs = model.lm.generate(None, attributes, max_gen_len=50, **model.generation_params)
    ours = generate_codes(model, ["calm pad", "dark drone"], [1, 2], frames=50,
                          params=SamplingParams(temperature=0.0))
    assert torch.equal(ours, theirs)


def test_cache_shortcuts_change_nothing(tiny_engine, monkeypatch):
    import torch

    from soundscape.engines.musicgen import generate

    args = dict(frames=60, params=generate.SamplingParams())
    fast = generate.generate_codes(tiny_engine.model, ["a", "b"], [3, 4], **args)
    monkeypatch.setattr(generate._PreallocatedKV, "__enter__", lambda self: self)
    plain = generate.generate_codes(tiny_engine.model, ["a", "b"], [3, 4], **args)
    assert torch.equal(fast, plain)
