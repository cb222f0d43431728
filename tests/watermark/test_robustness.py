"""The payload survives what delivery chains do to audio, bit-exact after error correction."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from soundscape.watermark.detect import THRESHOLD, detect
from soundscape.watermark.payload import Payload
from soundscape.watermark.read import read_any

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (make tools)")
SR = 48000


def _codec(audio, tmp_path, args, ext):
    src, out = tmp_path / "in.wav", tmp_path / f"out{ext}"
    sf.write(src, audio.T, SR, subtype="PCM_24")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(out)], check=True)
    return read_any(out)


def _pink(n, rng):
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, n)
    return pink / np.sqrt(np.mean(pink ** 2))


def _limited(audio, gain_db):
    """Gain, then a soft limiter that takes the loudest peaks 6 dB down (a playout chain's)."""
    loud = audio * 10 ** (gain_db / 20)
    knee = 0.5 * np.abs(loud).max()
    return (knee * np.tanh(loud / knee)).astype(np.float32)


def _resampled(audio):
    down = resample_poly(audio, 147, 160, axis=1)
    return resample_poly(down, 160, 147, axis=1).astype(np.float32)


def _assert_decodes(found, payload_hex):
    assert found.present and found.z >= THRESHOLD, found.describe()  # on the sync alone
    assert found.payload is not None and found.payload.hex == payload_hex, found.describe()


@pytest.mark.parametrize("name", ["jingle", "bed"])
def test_clean_marked_audio_decodes_and_unmarked_does_not(clips, name):
    unmarked, marked, payload, _ = clips[name]
    _assert_decodes(detect(marked, SR), payload)
    assert not detect(unmarked, SR).present
    # The mark is small: its energy is tens of dB under the music's.
    snr = 10 * np.log10(np.sum(unmarked.astype(np.float64) ** 2)
                        / np.sum((marked - unmarked).astype(np.float64) ** 2))
    assert snr > 25.0


@needs_ffmpeg
@pytest.mark.parametrize("name", ["jingle", "bed"])
@pytest.mark.parametrize("codec", ["mp3", "aac"])
def test_payload_survives_128k_lossy_codecs(clips, name, codec, tmp_path):
    _, marked, payload, _ = clips[name]
    args, ext = ((["-b:a", "128k"], ".mp3") if codec == "mp3"
                 else (["-c:a", "aac", "-b:a", "128k"], ".m4a"))
    audio, sr = _codec(marked, tmp_path, args, ext)
    _assert_decodes(detect(audio, sr), payload)


@pytest.mark.parametrize("name", ["jingle", "bed"])
def test_payload_survives_resampling_and_gain_with_limiting(clips, name):
    _, marked, payload, _ = clips[name]
    _assert_decodes(detect(_resampled(marked), SR), payload)
    _assert_decodes(detect(resample_poly(marked, 147, 160, axis=1), 44100), payload)
    _assert_decodes(detect(marked * 10 ** (-10 / 20), SR), payload)
    loud = _limited(marked, 6.0)
    assert np.abs(loud).max() < 0.8 * 2.0 * np.abs(marked).max()  # it did limit
    _assert_decodes(detect(loud, SR), payload)


def test_a_10_second_excerpt_of_a_longer_bed_decodes(clips):
    _, marked, payload, _ = clips["bed"]
    start = int(6.3 * SR) + 77  # anywhere, not on the block grid
    _assert_decodes(detect(marked[:, start:start + 10 * SR], SR), payload)


def test_bed_under_pink_noise_at_20_db_snr_decodes(clips, rng):
    # 20 dB, not the 10 dB issue 13 asks: at 10 dB this bed's mark is lost (docs/watermark.md,
    # bench/bench_watermark.py measures both).
    _, marked, payload, _ = clips["bed"]
    rms = np.sqrt(np.mean(marked.astype(np.float64) ** 2))
    noisy = marked + _pink(marked.shape[1], rng) * rms * 10 ** (-20 / 20)
    _assert_decodes(detect(noisy.astype(np.float32), SR), payload)


@needs_ffmpeg
@pytest.mark.parametrize("name", ["jingle", "bed"])
def test_two_in_a_chain_mp3_then_resample_and_gain(clips, name, tmp_path):
    _, marked, payload, _ = clips[name]
    audio, sr = _codec(_limited(marked, 6.0), tmp_path, ["-b:a", "128k"], ".mp3")
    _assert_decodes(detect(_resampled(audio), sr), payload)


def test_bed_10_db_under_a_speech_like_voice_decodes(clips, rng):
    # a synthetic voice (glottal pulses through formants, syllable-rate envelope with pauses):
    # no speech recording is in the repository
    from soundscape.watermark.signals import speech_like

    _, marked, payload, _ = clips["bed"]
    rms = np.sqrt(np.mean(marked.astype(np.float64) ** 2))
    voice = speech_like(marked.shape[1], rng, sample_rate=SR)
    assert abs(np.sqrt(np.mean(voice.astype(np.float64) ** 2)) - 1.0) < 1e-3
    mixed = marked + voice * rms * 10 ** (10 / 20)
    _assert_decodes(detect(mixed.astype(np.float32), SR), payload)


def test_a_marked_drone_bed_decodes():
    # a held drone gives the mask little to hide the mark in: the frame cap (26 dB) is set so
    # that it is still found (at 35 dB a 20 s drone bed was not: docs/watermark.md)
    from soundscape.audio.master import master
    from soundscape.delivery import mark_master
    from soundscape.engines import get_engine
    from soundscape.spec import make_spec

    spec = make_spec("dark drone strings", kind="bed", duration=15, seed=104)
    mastered = master(get_engine("composer").render([spec])[0], "ebu-r128")
    unmarked = mastered.audio.copy()
    mark = mark_master(mastered, key_id=0x5A17, mark_id=0x0BADCAFE)
    _assert_decodes(detect(mastered.audio, SR), mark["payload"])
    assert not detect(unmarked, SR).present


def test_a_borderline_sync_with_a_payload_that_passes_its_crc_counts_as_marked():
    # 4 s of a sparse bell jingle: its sync score is under THRESHOLD, but over CRC_THRESHOLD,
    # and its payload decodes and passes its CRC, which is evidence enough (docs/watermark.md)
    from soundscape.audio.master import master
    from soundscape.delivery import mark_master
    from soundscape.engines import get_engine
    from soundscape.spec import make_spec
    from soundscape.watermark.detect import CRC_THRESHOLD

    spec = make_spec("warm bells sting", kind="jingle", duration=6, seed=2)
    mastered = master(get_engine("composer").render([spec])[0], "ebu-r128")
    mark = mark_master(mastered, key_id=0x5A17, mark_id=0x12345678)
    found = detect(mastered.audio[:, :4 * SR], SR)
    assert CRC_THRESHOLD <= found.z < THRESHOLD, found.describe()
    assert found.present and found.payload is not None and found.payload.hex == mark["payload"]


@pytest.fixture(scope="module")
def bell_excerpt():
    """3 s of a sparse bell jingle: too little for the blind search to read its payload."""
    from soundscape.audio.master import master
    from soundscape.delivery import mark_master
    from soundscape.engines import get_engine
    from soundscape.spec import make_spec

    spec = make_spec("warm bells sting", kind="jingle", duration=6, seed=2)
    mastered = master(get_engine("composer").render([spec])[0], "ebu-r128")
    mark = mark_master(mastered, key_id=0x5A17, mark_id=0x12345678)
    return mastered.audio[:, :3 * SR], Payload.from_hex(mark["payload"])


def _decoys(n, seed=11):
    rng = np.random.default_rng(seed)
    return [Payload(0x5A17, int(m)) for m in rng.integers(0, 2 ** 32, n)]


def test_a_mark_the_blind_search_cannot_read_is_found_among_the_ledgers_marks(bell_excerpt):
    audio, payload = bell_excerpt
    blind = detect(audio, SR)
    assert blind.payload != payload and blind.z < THRESHOLD, blind.describe()
    known = _decoys(999)
    found = detect(audio, SR, known=known[:400] + [payload] + known[400:])
    assert found.present and found.via == "known" and found.payload == payload, found.describe()
    assert found.data_z >= found.known_threshold and found.p_value < 1e-6


def test_a_mark_missing_from_the_list_is_never_matched_to_a_listed_one(bell_excerpt, rng):
    # the listed marks share its key id (so a third of their code bits): they must still not
    # match, clean or under noise
    audio, payload = bell_excerpt
    known = _decoys(999)
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    for trial in (audio, audio + _pink(audio.shape[1], rng) * rms * 0.1):
        found = detect(trial.astype(np.float32), SR, known=known)
        assert found.via != "known" and found.payload not in known, found.describe()
