"""Long renders spill to a file: the store reads and writes like an array, and a spilled render
masters and writes exactly as one held in memory."""

from __future__ import annotations

import numpy as np
import pytest

from soundscape.audio.io import audio_sha256, write_audio
from soundscape.audio.master import master
from soundscape.render import AudioStore, Lineage, Render, is_store
from soundscape.spec import CueSpec, resolve_intent

SR = 48_000


def test_store_reads_writes_scales_and_views(rng):
    x = rng.standard_normal((2, 5000)).astype(np.float32)
    store = AudioStore(2, 5000)
    store.write(0, x)
    assert np.array_equal(store[:, :], x)
    assert np.array_equal(store[1, 100:200], x[1, 100:200])
    assert np.array_equal(store[:, -1], x[:, -1])
    assert store[:, 4990:9999].shape == (2, 10)  # clipped like a slice of an array
    store.scale(1000, 2000, np.float32(0.5))
    x[:, 1000:2000] *= np.float32(0.5)
    ramp = np.linspace(0, 1, 500, dtype=np.float32)
    store.scale(3000, 3500, ramp)
    x[:, 3000:3500] *= ramp
    assert np.array_equal(store.read(0, 5000), x)
    view = store.view(250, 1000)
    assert view.shape == (2, 1000) and np.array_equal(view[:, :], x[:, 250:1250])
    view[:, 0:10] = 0.0
    assert np.all(store[:, 250:260] == 0.0)
    with pytest.raises(ValueError):
        store.write(4990, x[:, :20])


def _render(audio: np.ndarray, *, loop: bool) -> Render:
    duration = 40.0
    spec = CueSpec(prompt="test", kind="bed", duration=duration, seed=1,
                   intent=resolve_intent("calm"), loop=loop)
    return Render(spec=spec, audio=audio, sample_rate=SR, lineage=Lineage("composer", "test"))


@pytest.mark.parametrize("loop", [False, True])
def test_a_spilled_render_masters_like_one_in_memory(rng, tmp_path, loop):
    from scipy.signal import lfilter

    n = int((40.0 + (3.0 if loop else 0.0)) * SR)
    t = np.arange(n) / SR
    audio = (0.05 * lfilter([1.0], [1.0, -0.97], rng.standard_normal((2, n)), axis=-1)
             + 0.2 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    audio[:, SR * 10:SR * 10 + 64] += 0.9  # a hot transient, so the limiter has work to do
    held = master(_render(audio.copy(), loop=loop), "streaming")
    store = AudioStore(2, n)
    store.write(0, audio)
    spilled = master(_render(store, loop=loop), "streaming")
    assert is_store(spilled.audio) and spilled.audio.shape == held.audio.shape
    assert np.abs(spilled.audio[:, :] - held.audio).max() < 1e-6
    assert spilled.loudness_lufs == pytest.approx(held.loudness_lufs, abs=1e-6)
    assert spilled.true_peak_dbtp == pytest.approx(held.true_peak_dbtp, abs=1e-6)
    assert spilled.true_peak_dbtp <= -1.0
    assert spilled.seam_ratio == held.seam_ratio
    a = write_audio(tmp_path / "held.wav", held.audio, SR)
    b = write_audio(tmp_path / "spilled.wav", spilled.audio, SR)
    assert a == b == audio_sha256(tmp_path / "spilled.wav")


def test_the_composer_spills_a_long_bed(monkeypatch, tmp_path, banks_or_synth):
    from soundscape.engines.composer import ComposerEngine, bed

    monkeypatch.setattr(bed, "SPILL_SECONDS", 20.0)
    spec = CueSpec(prompt="calm pad with rain", kind="bed", duration=30.0, seed=2,
                   intent=resolve_intent("calm pad with rain"))
    r = ComposerEngine(samples_dir=tmp_path, banks=banks_or_synth).render([spec])[0]
    assert is_store(r.audio) and r.audio.shape == (2, 30 * SR)
    m = master(r, "ebu-r128")
    assert m.loudness_lufs == pytest.approx(-23.0, abs=0.05)


@pytest.fixture
def banks_or_synth():
    from soundscape.engines.composer.soundbank import installed_banks

    found, _ = installed_banks()
    return None if found else []
