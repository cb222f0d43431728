"""Conditioning works: a tiny model trained on two classes of corpus clips answers to each.

Two classes the composer renders very differently (steady rain, a noise-like texture; struck
bells, tonal and sparse) make a small corpus. A tiny attribute-conditioned MusicGen learns it;
under each class's condition ("Rain." / "bells", neither the clips' own description) it must
generate, for several seeds, audio nearer that class.

Two models are trained here:

* In code space (``trained``): the codec is untrained, its codebooks seeded by k-means on the
  corpus (audiocraft's ``kmeans_init``), so codes tell the clips' frames apart; the code
  histograms the LM generates under each condition are judged.
* In audio (``heard``): the codec stage trains the codec first (its data-dependent start and
  reconstruction steps, then k-means codebooks from the trained encoder), the LM is trained on
  its codes, and the generations are decoded by that codec and measured (spectral centroid and
  flatness) against each class's clips.
"""

from __future__ import annotations

import numpy as np
import pytest

from soundscape.audio.analysis import spectral_centroid
from soundscape.corpus import ClipPlan

SECONDS = 10.0
SEEDS = (1, 2, 3, 4)
CLASSES = {"rain": (("rain",), ()), "bells": ((), ("bells",))}
PROMPTS = {"rain": "Rain.", "bells": "bells"}


def class_condition(name: str):
    """A class's condition: its clips' labels, with a description the model never saw."""
    from soundscape.engines.musicgen.conditioning import condition_from_facts

    textures, instruments = CLASSES[name]
    return condition_from_facts(description=PROMPTS[name], mood="calm", key="C major", bpm=60.0,
                                textures=textures, instruments=instruments)
FFT = 2048


def _flatness(audio: np.ndarray) -> float:
    """Spectral flatness (geometric over arithmetic mean power), averaged over 2048-sample frames:
    near 1 for noise, near 0 for a few partials."""
    mono = audio.reshape(-1)[: audio.size // FFT * FFT].reshape(-1, FFT)
    power = np.abs(np.fft.rfft(mono * np.hanning(FFT), axis=1)) ** 2 + 1e-12
    return float(np.mean(np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)))


def _features(audio: np.ndarray, sr: int) -> np.ndarray:
    return np.array([np.log(spectral_centroid(audio, sr)), np.log(_flatness(audio))])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, torch_one_thread):
    return train_two_classes(tmp_path_factory.mktemp("conditioning"))


def train_two_classes(root, *, steps: int = 150, lr: float = 3e-3, batch_size: int = 8):
    """The corpus, the codec seeded from it, the LM trained; and each class's features."""
    import soundfile as sf
    import torch
    from audiocraft.data.audio_utils import convert_audio

    from soundscape.config import open_workspace
    from soundscape.corpus import make_corpus
    from soundscape.engines.musicgen.builders import build_model, export_model
    from soundscape.engines.musicgen.checkpoint import load_model
    from soundscape.engines.musicgen.train import train
    from soundscape.rights.ledger import Ledger

    ws = open_workspace(root / "home")
    plans = [ClipPlan(index=i, seed=100 + i, seconds=SECONDS, mood="calm", key="C major",
                      bpm=60.0, textures=CLASSES[name][0], instruments=CLASSES[name][1])
             for i, name in enumerate(["rain", "rain", "bells", "bells"])]
    with Ledger.open(ws) as ledger:
        report = make_corpus(ledger, ws, hours=0.01, dataset="two-classes", plans=plans)
    paths = [report.folder / clip["file"] for clip in report.clips]
    waves = []
    for path in paths:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        waves.append(convert_audio(torch.from_numpy(data.T.copy()), rate, 32000, 1))

    compression_model, lm = build_model("tiny", seed=440, conditioning="attributes",
                                        overrides={"rvq.kmeans_init": True})
    compression_model.train()
    # audiocraft's k-means draws its starting centroids from the global RNG: seeded here, so
    # the codebooks do not depend on which tests ran before.
    torch.manual_seed(440)
    with torch.no_grad():  # the quantizer seeds its codebooks by k-means on this batch
        compression_model(torch.stack(waves))
    compression_model.eval()
    export_model(compression_model, lm, lm.cfg, root / "base")
    result = train(root / "base", [{"path": str(p)} for p in paths], steps=steps,
                   batch_size=batch_size, lr=lr, out_dir=root / "trained", segment_seconds=2.0, seed=1,
                   allow_untrained_codec=True)  # seeded by k-means above, not trained: see the docstring
    model = load_model(root / "trained", device="cpu")
    class_codes: dict[str, list[int]] = {name: [] for name in CLASSES}
    with torch.inference_mode():
        for wave, plan in zip(waves, plans):
            codes, _ = model.compression_model.encode(wave[None])
            class_codes["rain" if plan.textures else "bells"] += codes[0, 0].tolist()
    refs = {name: np.mean([_features(w.numpy(), 32000) for w, (n, _) in
                           zip(waves, [(p, 0) for p in ["rain", "rain", "bells", "bells"]])
                           if n == name], axis=0) for name in CLASSES}
    model.class_codes = class_codes
    return model, result, refs


def _histogram(codes, card: int) -> np.ndarray:
    counts = np.bincount(np.asarray(codes).reshape(-1), minlength=card).astype(float)
    return counts / counts.sum()


def test_each_condition_generates_the_codes_of_its_own_class(trained):
    """What the LM learnt, in its own terms: under each class's condition the first codebook's
    code histogram (total-variation distance) is nearer that class's than the other's."""
    from soundscape.engines.musicgen.generate import SamplingParams, generate_codes

    model = trained[0]
    card = model.lm.card
    refs = {name: _histogram(codes, card) for name, codes in model.class_codes.items()}
    assert 0.5 * np.abs(refs["rain"] - refs["bells"]).sum() > 0.1  # the codes tell them apart
    for name in CLASSES:
        codes = generate_codes(model, [class_condition(name)] * len(SEEDS), list(SEEDS),
                               frames=100, params=SamplingParams())
        generated = _histogram(codes[:, 0].numpy(), card)
        distance = {other: 0.5 * float(np.abs(generated - ref).sum())
                    for other, ref in refs.items()}
        assert min(distance, key=distance.get) == name, (name, distance)


def test_the_two_classes_differ_and_the_loss_falls(trained):
    _, result, refs = trained
    # Rain is the noisier class, by far (flatness is the second feature, in log).
    assert refs["rain"][1] - refs["bells"][1] > 1.0
    assert np.mean(result.losses[-10:]) < 0.7 * np.mean(result.losses[:10])


CODEC_STEPS = 100   # reconstruction steps of the codec stage (about 80 s of CPU here)
LM_STEPS = 400
HEARD_CLIPS = ("rain", "bells") * 3  # one is held out of the codec stage: two of each remain


@pytest.fixture(scope="module")
def heard(tmp_path_factory, torch_one_thread):
    """A codec trained by the codec stage on the corpus, an LM trained on its codes."""
    import soundfile as sf
    import torch
    from audiocraft.data.audio_utils import convert_audio

    from soundscape.config import open_workspace
    from soundscape.corpus import make_corpus
    from soundscape.engines.musicgen.builders import build_model, export_model
    from soundscape.engines.musicgen.checkpoint import load_model
    from soundscape.engines.musicgen.train import train
    from soundscape.rights.ledger import Ledger

    root = tmp_path_factory.mktemp("heard")
    ws = open_workspace(root / "home")
    plans = [ClipPlan(index=i, seed=100 + i, seconds=SECONDS, mood="calm", key="C major",
                      bpm=60.0, textures=CLASSES[name][0], instruments=CLASSES[name][1])
             for i, name in enumerate(HEARD_CLIPS)]
    with Ledger.open(ws) as ledger:
        report = make_corpus(ledger, ws, hours=0.02, dataset="two-classes", plans=plans)
    paths = [report.folder / clip["file"] for clip in report.clips]
    refs = {}
    for path, name in zip(paths, HEARD_CLIPS):
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        wave = convert_audio(torch.from_numpy(data.T.copy()), rate, 32000, 1)
        refs.setdefault(name, []).append(_features(wave.numpy(), 32000))
    refs = {name: np.mean(features, axis=0) for name, features in refs.items()}
    # The tiny codec with 8 filters instead of 4: with 4, 100 steps left rain nearer bells.
    compression_model, lm = build_model("tiny", seed=440, conditioning="attributes",
                                        overrides={"seanet.n_filters": 8})
    export_model(compression_model, lm, lm.cfg, root / "base")
    items = [{"path": str(p)} for p in paths]
    train(root / "base", items, stage="codec", steps=CODEC_STEPS,
          reconstruction_steps=CODEC_STEPS, batch_size=8, lr=1e-3, out_dir=root / "codec",
          segment_seconds=1.0, seed=1)
    result = train(root / "codec", items, steps=LM_STEPS, batch_size=8, lr=3e-3,
                   out_dir=root / "trained", segment_seconds=2.0, seed=1)
    return load_model(root / "trained", device="cpu"), result, refs


def test_each_condition_generates_audio_nearer_its_own_class(heard):
    """Decoded by the trained codec, each seed's generation under a class's condition is nearer
    that class's clips (log centroid and flatness, L1) than the same seed's generation under
    the other condition is."""
    import torch

    from soundscape.engines.musicgen.generate import SamplingParams, generate_codes

    model, result, refs = heard
    assert np.mean(result.losses[-10:]) < 0.5 * np.mean(result.losses[:10])
    features = {}
    with torch.inference_mode():
        for name in CLASSES:
            codes = generate_codes(model, [class_condition(name)] * len(SEEDS), list(SEEDS),
                                   frames=50, params=SamplingParams())
            audio = model.compression_model.decode(codes, None)
            features[name] = [_features(a.numpy(), 32000) for a in audio]
    distance = {(cond, cls, i): float(np.abs(features[cond][i] - refs[cls]).sum())
                for cond in CLASSES for cls in CLASSES for i in range(len(SEEDS))}
    for i, seed in enumerate(SEEDS):
        for name, other in (("rain", "bells"), ("bells", "rain")):
            assert distance[(name, name, i)] < distance[(other, name, i)], (
                seed, name, {k: round(v, 2) for k, v in distance.items() if k[2] == i})
