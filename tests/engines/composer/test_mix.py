"""The mix a sound designer keeps: measured on rendered beds, as the bench measures them.

Mono compatibility, presence and air, intensity you can hear, seeds that change the music, a
low end fixed by register, no literal repeats, and held voices that drift.
"""

from __future__ import annotations

import numpy as np
import pytest

from soundscape.audio import analysis
from soundscape.audio.master import master

from composer_cues import SR, cue, render

PROMPTS = ["calm piano bed with strings", "dark tense drone, city hum",
           "dreamy ambient pad with soft rain", "melancholic cello and piano, slow",
           "hopeful bright playful plucks"]


@pytest.fixture(scope="module")
def beds(composer):
    """Five mastered 45 s beds of different moods (seeded as `generate` seeds them)."""
    out = {}
    for i, prompt in enumerate(PROMPTS):
        r = render(composer, cue(prompt, duration=45.0, seed=40 + i, seeded_intent=True))
        out[prompt] = master(r, "ebu-r128").audio
    return out


def test_mono_fold_down_keeps_the_low_end(beds):
    for prompt, audio in beds.items():
        corr = analysis.low_band_correlation(audio, SR, below=200.0)
        loss, _ = analysis.mono_loss_db(audio, SR, below=300.0)
        assert corr >= 0.8, (prompt, corr)
        assert loss <= 1.0, (prompt, loss)


def test_presence_and_air(beds):
    shares = np.array([analysis.band_shares(a, SR, ((2000, 8000), (8000, 24000))) for a in beds.values()])
    assert shares[:, 0].min() >= 0.015, dict(zip(beds, shares[:, 0]))
    assert shares[:, 0].mean() >= 0.03
    assert shares[:, 1].mean() >= 0.003, dict(zip(beds, shares[:, 1]))


@pytest.mark.parametrize("prompt", ["calm piano bed with strings", "dark drone with wind"])
def test_intensity_curve_is_heard(composer, prompt):
    # 0.1 -> 1.0 -> 0.2 over three minutes: at least 6 LU of short-term loudness, tracking it.
    spec = cue(prompt, duration=180.0, seed=5, intensity="0:0.1,90:1.0,180:0.2")
    audio = master(render(composer, spec), "ebu-r128").audio
    t, short_term = analysis.short_term_loudness(audio, SR)
    keep = (t > 5.0) & (t < 170.0)  # the fades at the ends are the master's, not the curve's
    span = short_term[keep].max() - short_term[keep].min()
    r = np.corrcoef(short_term[keep], spec.intent.intensity.at(t[keep]))[0, 1]
    assert span >= 6.0, span
    assert r >= 0.8, r


def test_two_seeds_make_different_music(composer):
    prompt = "calm ambient pad with piano"
    a = render(composer, cue(prompt, duration=60.0, seed=1, seeded_intent=True))
    b = render(composer, cue(prompt, duration=60.0, seed=2, seeded_intent=True))
    assert a.details["key"] != b.details["key"] or a.details["bpm"] != b.details["bpm"]
    assert analysis.chroma_similarity(a.audio, b.audio, SR) <= 0.7


@pytest.mark.parametrize("key", ["C major", "F# major", "A minor", "Eb minor"])
def test_drone_sits_in_40_to_80_hz_whatever_the_key(composer, key):
    from soundscape.engines.composer.arrangement import plan_bed
    from soundscape.engines.composer.synth import midi_to_hz

    spec = cue("ambient drone bed", key=key, duration=40.0, seed=3)
    bass = plan_bed(spec).score.part("bass")
    lowest = min(midi_to_hz(n.midi) for n in bass.notes)
    assert 40.0 <= lowest <= 80.0
    audio = render(composer, spec).audio
    share = analysis.band_shares(audio, SR, ((20, 100),))[0]
    assert 0.02 <= share <= 0.3, share  # the low end does not come and go with the key


def test_nothing_repeats_literally_within_a_minute(composer):
    r = render(composer, cue("calm pad with rain and a fire", duration=130.0, seed=8))
    score, lag = analysis.repeat_score(r.audio, SR, within=60.0)
    assert score < 0.9, (score, lag)


@pytest.mark.parametrize("name", ["rain", "fire", "ocean", "wind"])
def test_textures_are_never_a_loop(name):
    from soundscape.engines.composer.textures import TextureBed

    seconds = 75.0
    bed = TextureBed((name,), np.random.default_rng(4), seconds=seconds,
                     intensity=np.ones(int(seconds * 50) + 4, dtype=np.float32))
    n = int(seconds * SR)
    out, send = np.zeros((2, n), dtype=np.float32), np.zeros(n, dtype=np.float32)
    for start in range(0, n, 1 << 18):
        bed.add_to(out[:, start:start + (1 << 18)], send[start:start + (1 << 18)], start)
    score, lag = analysis.repeat_score(out, SR, within=60.0)
    assert score < 0.5, (score, lag)


def test_held_voices_drift_in_pitch(banks_installed):
    """A string note held for 20 s wanders a few cents, as a player's does; it is not a
    straight line (the old composer's sustained partials were)."""
    if not banks_installed:
        pytest.skip("no sound bank installed")
    from soundscape.engines.composer import fluid
    from soundscape.engines.composer.palette import INSTRUMENTS
    from soundscape.engines.composer.score import Note, Part
    from soundscape.engines.composer.soundbank import installed_banks

    banks, _ = installed_banks()
    part = Part("pad", "strings", [Note(0.0, 20.0, 57, 90)], sustained=True)
    choice = fluid.choose_preset(INSTRUMENTS["strings"], banks)
    player = fluid.FluidPlayer(banks, [part], {"pad": choice}, np.random.default_rng(3),
                               sample_rate=24000, seconds=20.0)
    audio = np.concatenate([player.render(24000)[0] for _ in range(20)], axis=-1).mean(axis=0)
    player.close()
    cents = []
    for second in range(2, 18):  # the fundamental's frequency, second by second (zero-padded FFT)
        seg = audio[second * 24000:(second + 1) * 24000] * np.hanning(24000)
        spec = np.abs(np.fft.rfft(seg, n=1 << 20))
        f = np.fft.rfftfreq(1 << 20, 1 / 24000)
        band = (f > 200) & (f < 240)
        cents.append(1200 * np.log2(f[band][np.argmax(spec[band])] / 220.0))
    spread = float(np.std(cents))
    assert 0.5 < spread < 20.0, cents
