"""Fixtures for the MusicGen engine tests: one tiny real model, built once per session.

Every test that needs a model gets it from :func:`tiny_model_dir` (an exported checkpoint folder
of the ``tiny`` architecture, random weights, no download), as audiocraft's own tests use
``get_pretrained('debug')``.
"""

from __future__ import annotations

import os

import pytest

# Two cores are shared by the whole team: keep torch to one thread, as the Makefile does.
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_SEED = 440


@pytest.fixture(scope="session")
def tiny_seed() -> int:
    return TINY_SEED


@pytest.fixture(scope="session")
def torch_one_thread():
    import torch

    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, torch_one_thread):
    """An exported tiny MusicGen checkpoint folder (state_dict.bin + compression_state_dict.bin)."""
    from soundscape.engines.musicgen.builders import build_model, export_model

    folder = tmp_path_factory.mktemp("models") / "studio-tiny"
    compression_model, lm = build_model("tiny", seed=TINY_SEED)
    export_model(compression_model, lm, lm.cfg, folder)
    return folder


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    """A MusicGenEngine over the tiny model, on the CPU."""
    from soundscape.engines.musicgen import MusicGenEngine

    return MusicGenEngine(model_dir=tiny_model_dir, model_name="studio-tiny", device="cpu")


@pytest.fixture
def make_spec():
    """Build a CueSpec for the musicgen engine: ``make_spec(prompt, seed, duration=2.0, **params)``."""
    from soundscape.spec import CueSpec, resolve_intent

    def make(prompt: str = "calm pad", seed: int = 1, duration: float = 2.0, *, loop: bool = False,
             kind: str = "jingle", **params) -> CueSpec:
        return CueSpec(prompt=prompt, kind=kind, duration=duration, seed=seed,
                       intent=resolve_intent(prompt, kind=kind), loop=loop, engine="musicgen",
                       model="studio-tiny", params=params)

    return make
