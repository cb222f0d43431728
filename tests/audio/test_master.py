"""Mastering: each property is measured on the delivered file, read back."""

import json
import re
import subprocess

import numpy as np
import pytest
import soundfile as sf

from soundscape.audio import loudness as meter
from soundscape.audio.io import read_audio, write_audio
from soundscape.audio.master import PRESETS, get_preset, master
from soundscape.errors import AudioError, ParameterError

SR = 48000


def deliver(mastered, tmp_path, name="out.wav"):
    path = tmp_path / name
    write_audio(path, mastered.audio, mastered.sample_rate)
    audio, sr = read_audio(path)
    return path, audio, sr


def ebur128(ffmpeg, path):
    """Integrated loudness and true peak as ffmpeg's ebur128 filter reports them."""
    out = subprocess.run([ffmpeg, "-nostats", "-hide_banner", "-i", str(path), "-filter_complex",
                          "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    summary = out[out.rindex("Summary:"):]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return integrated, peak


@pytest.mark.parametrize("preset", ["ebu-r128", "netflix", "streaming"])
@pytest.mark.parametrize("signal", ["ambient", "hot"])
def test_preset_loudness_and_true_peak_of_the_file(make_render, tmp_path, preset, signal):
    target = get_preset(preset)
    mastered = master(make_render("bed", 12.0, signal=signal), preset)
    _, audio, sr = deliver(mastered, tmp_path)
    assert sr == SR
    assert meter.integrated_loudness(audio, sr) == pytest.approx(target.target_lufs, abs=0.05)
    assert meter.true_peak_dbtp(audio, sr) <= target.true_peak_dbtp + 1e-3
    assert mastered.loudness_lufs == pytest.approx(meter.integrated_loudness(audio, sr), abs=0.01)


@pytest.mark.needs_tool
@pytest.mark.parametrize("preset", ["ebu-r128", "streaming"])
def test_ffmpeg_ebur128_agrees(make_render, tmp_path, ffmpeg, preset):
    target = get_preset(preset)
    path, _, _ = deliver(master(make_render("bed", 12.0, signal="hot"), preset), tmp_path)
    integrated, peak = ebur128(ffmpeg, path)
    assert integrated == pytest.approx(target.target_lufs, abs=0.5)
    # ffmpeg interpolates with another filter and prints one decimal: it must show the ceiling.
    assert peak <= target.true_peak_dbtp + 0.05


def test_hot_input_is_limited_not_clipped(make_render, tmp_path):
    render = make_render("bed", 12.0, signal="hot")
    gained = render.audio * 10 ** ((-14.0 - meter.integrated_loudness(render.audio, SR)) / 20)
    assert meter.true_peak_dbtp(gained, SR) > -1.0  # gain alone would overshoot the ceiling
    mastered = master(render, "streaming")
    _, audio, sr = deliver(mastered, tmp_path)
    assert mastered.limiter_reduction_db > 1.0
    assert meter.true_peak_dbtp(audio, sr) <= -1.0 + 1e-3
    assert meter.sample_peak_dbfs(audio) < -1.0
    assert meter.integrated_loudness(audio, sr) == pytest.approx(-14.0, abs=0.05)


@pytest.mark.parametrize("loop", [False, True])
def test_the_render_is_left_unchanged(make_render, loop):
    render = make_render("bed", 10.0, loop=loop)
    before = render.audio.copy()
    master(render, "ebu-r128")
    np.testing.assert_array_equal(render.audio, before)


def test_none_preset_keeps_the_level(make_render):
    render = make_render("bed", 10.0)
    mastered = master(render, "none")
    assert mastered.gain_db == 0.0 and mastered.limiter_reduction_db == 0.0
    body = slice(SR * 2, SR * 6)  # between the fades
    np.testing.assert_array_equal(mastered.audio[:, body], render.audio[:, body])


def test_32k_mono_becomes_48k_stereo_of_the_asked_length(make_render, tmp_path):
    mastered = master(make_render("bed", 10.0, sr=32000, channels=1), "ebu-r128")
    path, audio, sr = deliver(mastered, tmp_path)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (48000, 2, "PCM_24", 10 * SR)
    np.testing.assert_array_equal(audio[0], audio[1])
    assert meter.integrated_loudness(audio, sr) == pytest.approx(-23.0, abs=0.05)


def seam_step_ratio(audio, sr):
    """Measured here, independently of master(): the step from the last sample to the first
    against the 99th percentile of ordinary steps within 50 ms either side."""
    ctx = int(0.05 * sr)
    ratios = []
    for ch in audio.astype(np.float64):
        ordinary = np.concatenate([np.abs(np.diff(ch[-ctx:])), np.abs(np.diff(ch[:ctx]))])
        ratios.append(abs(ch[0] - ch[-1]) / np.percentile(ordinary, 99))
    return max(ratios)


@pytest.mark.parametrize("preset", ["ebu-r128", "streaming"])
def test_loop_is_seamless(make_render, tmp_path, preset):
    mastered = master(make_render("bed", 12.0, loop=True, signal="hot" if preset == "streaming" else "ambient"), preset)
    _, audio, sr = deliver(mastered, tmp_path)
    assert audio.shape[-1] == 12 * SR and mastered.audio.flags.c_contiguous
    assert mastered.loop and mastered.seam_ratio is not None and mastered.seam_ratio <= 1.0
    assert seam_step_ratio(audio, sr) <= 1.0
    # Played round the seam, the loop has no click: the high-passed level there is ordinary.
    twice = np.concatenate([audio, audio], axis=-1)
    hf = np.abs(np.diff(twice, n=2, axis=-1)).max(axis=0)
    seam = hf[audio.shape[-1] - 4:audio.shape[-1] + 2].max()
    assert seam <= np.percentile(hf, 99.9)


def test_loop_crossfade_keeps_the_level(make_render):
    mastered = master(make_render("bed", 12.0, loop=True), "ebu-r128")
    momentary = meter._to_lufs(meter._block_power(meter.subblock_energies(mastered.audio, SR), 4))
    # The 3 s crossfade at the start against the rest of the loop (0.1 s hop).
    assert abs(np.median(momentary[:26]) - np.median(momentary[30:])) < 1.5


def test_bed_starts_and_ends_quietly(make_render, tmp_path):
    mastered = master(make_render("bed", 12.0), "ebu-r128")
    _, audio, sr = deliver(mastered, tmp_path)
    rms = lambda x: 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)  # noqa: E731
    body = rms(audio[:, 4 * sr:8 * sr])
    assert np.all(audio[:, 0] == 0) and np.all(audio[:, -1] == 0)
    assert rms(audio[:, : sr // 100]) < body - 30       # first 10 ms
    assert rms(audio[:, -sr // 10:]) < body - 40        # last 100 ms: faded to silence
    assert rms(audio[:, -sr:]) < body - 12              # the fade-out spans seconds, not a cut
    assert rms(audio[:, sr: 2 * sr]) > body - 3         # and the music is full by 1 s


def test_jingle_tail_is_not_faded_before_its_last_100_ms(make_render, tmp_path):
    render = make_render("jingle", 4.0, tail_seconds=1.5)
    mastered = master(render, "ebu-r128")
    _, audio, sr = deliver(mastered, tmp_path)
    assert mastered.limiter_reduction_db == 0.0
    expected = render.audio * np.float32(10 ** (mastered.gain_db / 20))
    lsb = 2.0 ** -23
    untouched = slice(int(0.005 * sr), audio.shape[-1] - int(0.1 * sr))
    assert np.abs(audio[:, untouched] - expected[:, untouched]).max() <= 2 * lsb
    assert np.all(audio[:, -1] == 0)                   # ends at digital silence
    assert np.abs(audio[:, -int(0.1 * sr):]).max() > 0  # the natural tail is still there


def test_describe_is_json_ready(make_render):
    facts = master(make_render("bed", 10.0, loop=True), "netflix").describe()
    json.dumps(facts, allow_nan=False)
    assert facts["preset"] == "netflix" and facts["target_lufs"] == -24.0
    assert facts["true_peak_limit_dbtp"] == -2.0 and facts["loop"] is True
    for key in ("loudness_lufs", "true_peak_dbtp", "seam_ratio", "gain_db", "limiter_reduction_db"):
        assert isinstance(facts[key], float)


def test_presets_and_errors(make_render):
    assert set(PRESETS) == {"ebu-r128", "netflix", "streaming", "none"}
    with pytest.raises(ParameterError, match="unknown preset 'loud': choose one of ebu-r128"):
        master(make_render("bed", 10.0), "loud")
    silent = make_render("bed", 10.0)
    silent.audio[:] = 0
    with pytest.raises(AudioError, match="silent"):
        master(silent, "ebu-r128")
    short = make_render("bed", 10.0)  # asked to loop without the extra overlap
    with pytest.raises(AudioError, match="longer than its duration"):
        master(short, "ebu-r128", loop=True)


def test_limiter_gain_is_smooth_with_look_ahead_and_release(rng):
    from soundscape.audio.master import limiter_gain

    t = np.arange(2 * SR) / SR
    audio = np.stack([0.1 * np.sin(2 * np.pi * 110 * t)] * 2).astype(np.float32)
    click = SR  # one full-scale click at 1 s
    audio[:, click:click + 48] += np.float32(0.9) * np.hanning(48).astype(np.float32)
    ceiling = 10 ** (-6 / 20)
    (start, g), = limiter_gain(audio, 1.0, ceiling)
    gain = np.ones(audio.shape[-1])
    gain[start:start + g.size] = g
    limited = audio * gain.astype(np.float32)
    assert meter.true_peak(limited) <= ceiling * (1 + 1e-4)
    db = 20 * np.log10(gain)
    assert np.abs(np.diff(db)).max() < 0.1                  # no gain jumps: at most 0.1 dB a sample
    assert db[: click - int(0.004 * SR)].min() > -1e-6     # untouched until the 3 ms look-ahead
    assert db[click - int(0.002 * SR)] < -0.5                # the ramp is under way before the click
    deepest = db.min()
    after = db[click + 48 + int(0.010 * SR) + int(0.100 * SR)]  # hold, then one release time constant
    assert deepest * 0.6 < after < deepest * 0.2              # exponential recovery (1/e ~ 0.37)
    assert db[click + int(0.8 * SR)] > -0.01                 # and back to unity well within a second
