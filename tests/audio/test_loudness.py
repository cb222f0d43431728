"""The meters against the standards' own test signals and against independent references."""

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from soundscape.audio import loudness as meter

SR = 48000


def sine(freq, seconds, dbfs, *, sr=SR, phase=0.0):
    t = np.arange(int(seconds * sr)) / sr
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def test_ebu_tech_3341_sine_reads_its_level():
    # EBU Tech 3341 case 1: a stereo 1 kHz sine at -23 dBFS reads -23.0 LUFS (+-0.1).
    tone = sine(997.0, 20.0, -23.0)
    assert meter.integrated_loudness(np.stack([tone, tone]), SR) == pytest.approx(-23.0, abs=0.02)


@pytest.mark.parametrize("sr", [48000, 44100, 32000])
def test_streamed_loudness_agrees_with_pyloudnorm(ambient_audio, sr):
    audio = ambient_audio(15.0, sr)
    audio[:, : sr * 3] *= 0.05  # a quiet opening exercises both gates
    ours = meter.integrated_loudness(audio, sr)
    # pyloudnorm's "DeMan" filter is BS.1770's own K-weighting; its default differs slightly.
    exact = pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(audio.T.astype(np.float64))
    default = pyloudnorm.Meter(sr).integrated_loudness(audio.T.astype(np.float64))
    assert ours == pytest.approx(exact, abs=0.01)
    if sr != 32000:  # pyloudnorm's own filter drifts further from BS.1770 at low rates
        assert ours == pytest.approx(default, abs=0.05)


def test_chunk_size_does_not_change_the_measurement(ambient_audio):
    audio = ambient_audio(13.05, SR)
    whole = meter.gated_loudness(meter.subblock_energies(audio, SR, chunk_seconds=60.0))
    small = meter.gated_loudness(meter.subblock_energies(audio, SR, chunk_seconds=0.3))
    assert small == pytest.approx(whole, abs=1e-9)


def test_gates_ignore_silence(ambient_audio):
    audio = ambient_audio(10.0, SR)
    padded = np.concatenate([np.zeros((2, 10 * SR), np.float32), audio], axis=-1)
    # Only the three 400 ms blocks that straddle the silence/music boundary may differ.
    assert meter.integrated_loudness(padded, SR) == pytest.approx(meter.integrated_loudness(audio, SR), abs=0.1)
    assert meter.integrated_loudness(np.zeros((2, SR), np.float32), SR) == float("-inf")


def test_loudness_range_of_two_levels():
    # EBU Tech 3342 case 1: 20 s at -20 dBFS then 20 s at -30 dBFS (1 kHz stereo): LRA 10 LU (+-1).
    tone = np.concatenate([sine(1000.0, 20.0, -20.0), sine(1000.0, 20.0, -30.0)])
    stats = meter.loudness_stats(meter.subblock_energies(np.stack([tone, tone]), SR))
    assert stats.loudness_range == pytest.approx(10.0, abs=1.0)
    assert stats.max_momentary == pytest.approx(-20.0, abs=0.1)
    assert stats.max_short_term == pytest.approx(-20.0, abs=0.1)


def test_true_peak_finds_the_peak_between_samples():
    # A sine at fs/4 sampled 45 degrees off its crest: samples at 0.707, the wave reaches 1.0.
    tone = sine(SR / 4, 1.0, 0.0, phase=np.pi / 4) * np.float32(0.5)
    ramp = np.sin(np.linspace(0, np.pi / 2, 480)).astype(np.float32) ** 2  # no edge overshoot
    tone[:480] *= ramp
    tone[-480:] *= ramp[::-1]
    assert meter.sample_peak_dbfs(tone) == pytest.approx(20 * np.log10(0.5 * np.sqrt(0.5)), abs=0.01)
    assert meter.true_peak_dbtp(tone, SR) == pytest.approx(20 * np.log10(0.5), abs=0.05)


def test_true_peak_agrees_with_an_independent_resampler(ambient_audio):
    audio = ambient_audio(5.0, SR)
    reference = max(np.abs(resample_poly(ch.astype(np.float64), 4, 1)).max() for ch in audio)
    assert meter.true_peak_dbtp(audio, SR) == pytest.approx(20 * np.log10(reference), abs=0.05)


def test_true_peak_fast_path_equals_full_computation(ambient_audio):
    audio = ambient_audio(3.0, SR)
    audio[:, 50_000:50_200] *= 4.0  # a local burst the skip test must not miss
    full = float(meter.oversampled_peaks(audio, 0, audio.shape[-1]).max())
    # Same filter, another summation order (a matrix product): equal to float precision.
    assert meter.true_peak(audio) == pytest.approx(full, rel=1e-6)


@pytest.mark.parametrize("circular", [False, True])
def test_chunk_bounds_hold_for_every_kind_of_signal(rng, circular):
    n = 128 * 300 + 77  # a ragged last chunk
    t = np.arange(n) / SR
    signals = [
        rng.standard_normal((2, n)),                                   # white noise
        np.stack([np.sin(2 * np.pi * 23_900 * t), np.cos(2 * np.pi * 11_000 * t)]),  # near Nyquist
        np.sign(np.sin(2 * np.pi * 3_000 * t))[None].repeat(2, 0),     # square wave
        np.where(rng.random((2, n)) < 0.001, 1.0, 0.0),                # isolated clicks
    ]
    for audio in signals:
        audio = audio.astype(np.float32)
        if circular:  # a loop joins its last sample to its first: bound that step too
            audio[:, -1] = -audio[:, 0]
        _, bound = meter.chunk_peaks(audio, circular=circular)
        env = meter.chunk_envelopes(audio, np.arange(bound.size), circular=circular)
        assert np.all(env.max(axis=-1) <= bound * (1 + 1e-6))
