"""The musical measurements, checked on synthetic signals whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from soundscape.audio import analysis
from soundscape.spec import parse_key

SR = 22_050


def tone(midis, seconds, *, sr=SR, harmonics=4):
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for m in midis:
        f = 440.0 * 2 ** ((m - 69) / 12)
        for h in range(1, harmonics + 1):
            y += np.sin(2 * np.pi * f * h * t) / h
    env = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (0.1 * y * env).astype(np.float32)


def test_d_minor_triads_estimate_as_d_minor():
    # i - iv - V - i in D minor: Dm, Gm, A, Dm.
    chords = [(50, 53, 57, 62), (55, 58, 62, 67), (57, 61, 64, 69), (50, 53, 57, 62)]
    y = np.concatenate([tone(c, 2.0) for c in chords])
    key, scores = analysis.estimate_key(y, SR)
    assert key == parse_key("D minor")
    assert len(scores) == 24 and max(scores, key=scores.get) == "D minor"


def test_f_sharp_major_scale_estimates_as_f_sharp_major():
    notes = [66, 68, 70, 71, 73, 75, 77, 78, 73, 70, 66]
    y = np.concatenate([tone((n, 54), 0.6) for n in notes])
    assert analysis.estimate_key(y, SR)[0] == parse_key("F# major")


def test_click_track_at_100_bpm(rng):
    y = np.zeros(int(20 * SR), dtype=np.float32)
    click = (rng.standard_normal(200) * np.exp(-np.arange(200) / 30)).astype(np.float32)
    for t in np.arange(0.5, 19.5, 0.6):
        i = int(t * SR)
        y[i:i + 200] += click
    assert analysis.estimate_tempo(y, SR) == pytest.approx(100.0, rel=0.03)


def test_final_chord_root_after_a_cadence():
    # G7 then C major (V-I in C) with its decay: the last chord's root is C.
    g = tone((43, 59, 62, 65), 1.0)
    c = tone((36, 55, 60, 64), 2.0) * np.exp(-np.arange(2 * SR) / SR).astype(np.float32)
    assert analysis.final_chord_root(np.concatenate([g, c]), SR) == 0


def test_level_envelope_of_a_sine():
    t = np.arange(SR) / SR
    y = 0.5 * np.sin(2 * np.pi * 440 * t)
    level = analysis.level_envelope_db(np.stack([y, y]), SR, hop_seconds=0.1)
    assert level.shape == (10,)
    assert np.allclose(level, 20 * np.log10(0.5 / np.sqrt(2)), atol=0.05)
    assert analysis.level_envelope_db(np.zeros(SR), SR, 0.1).max() == analysis.SILENCE_DB


def test_band_energy_and_centroid_follow_the_spectrum():
    t = np.arange(SR) / SR
    low, high = np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 5000 * t)
    assert analysis.band_energy_db(high, SR, 4000, 8000) > analysis.band_energy_db(low, SR, 4000, 8000) + 60
    assert analysis.spectral_centroid(low + high, SR) == pytest.approx(2600, rel=0.02)
