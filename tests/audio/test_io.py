"""Delivery files: BWF chunks read back by an independent reader, PCM exactness, hashes, atomicity."""

import json
import os
import struct
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import soundfile as sf
from wavinfo import WavInfoReader

from soundscape.audio import io
from soundscape.audio.io import (BextInfo, audio_sha256, check_output_path, file_sha256, make_ixml,
                                 read_audio, read_bext, read_ixml, write_audio)
from soundscape.errors import AudioError, OutputError, ParameterError

SR = 48000
HISTORY = "A=PCM,F=48000,W=24,M=stereo,T=soundscape 0.1.0\r\n"


@pytest.fixture
def audio(ambient_audio):
    return ambient_audio(2.0)


def bext(**changes):
    fields = dict(description="calm rain over a soft pad, D minor", originator="soundscape",
                  originator_reference="SSC-0001", origination_date="2026-11-25",
                  origination_time="19:04:05", time_reference=48000 * 3600, loudness_value=-23.0,
                  loudness_range=4.5, max_true_peak_level=-1.2, max_momentary_loudness=-18.3,
                  max_short_term_loudness=-20.1, coding_history=HISTORY)
    fields.update(changes)
    return BextInfo(**fields)


def quantised(x):
    return (np.clip(np.rint(x.astype(np.float64) * 2 ** 23), -2 ** 23, 2 ** 23 - 1) / 2 ** 23).astype(np.float32)


def test_wav_is_48k_24bit_stereo_pcm(audio, tmp_path):
    path = tmp_path / "bed.wav"
    write_audio(path, audio, SR, bext=bext(), ixml=make_ixml({"note": "x"}))
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 2, "PCM_24", "WAV")
    assert info.frames == audio.shape[-1]
    with open(path, "rb") as handle:
        head = handle.read(12)
    assert head[:4] == b"RIFF" and head[8:] == b"WAVE"
    assert struct.unpack("<I", head[4:8])[0] == path.stat().st_size - 8


def test_bext_read_back_by_wavinfo_and_by_us(audio, tmp_path):
    path = tmp_path / "bed.wav"
    info = bext()
    write_audio(path, audio, SR, bext=info, ixml=make_ixml({"project": "Evening News"}))
    theirs = WavInfoReader(str(path)).bext
    assert theirs.description == info.description
    assert theirs.originator == "soundscape"
    assert theirs.originator_ref == "SSC-0001"
    assert (theirs.originator_date, theirs.originator_time) == ("2026-11-25", "19:04:05")
    assert theirs.time_reference == 48000 * 3600
    assert theirs.version == 2
    assert theirs.coding_history == HISTORY
    assert theirs.loudness_value == -23.0 and theirs.max_true_peak == -1.2
    assert theirs.loudness_range == 4.5 and theirs.max_momentary_loudness == -18.3
    ours = read_bext(path)
    assert ours == info


def test_bext_text_is_folded_to_ascii_and_cut_to_size(audio, tmp_path):
    path = tmp_path / "bed.wav"
    write_audio(path, audio, SR, bext=bext(description="Café — “rêverie” " + "x" * 300, loudness_range=None,
                                           coding_history="A=PCM\nT=soundscape"))
    theirs = WavInfoReader(str(path)).bext
    assert theirs.description.startswith('Cafe - "reverie" xxx') and len(theirs.description) == 256
    assert theirs.coding_history == "A=PCM\r\nT=soundscape\r\n"
    assert read_bext(path).loudness_range is None  # unset fields hold 0x7FFF


def test_bad_bext_dates_are_refused(audio, tmp_path):
    with pytest.raises(ParameterError, match="YYYY-MM-DD"):
        write_audio(tmp_path / "a.wav", audio, SR, bext=bext(origination_date="25/11/2026"))
    assert list(tmp_path.iterdir()) == []


def test_ixml_read_back_by_wavinfo_and_by_us(audio, tmp_path):
    params = {"prompt": "rain & <wind>", "seed": 7, "intent": {"key": "D minor", "bpm": 60.0}}
    doc = make_ixml({"project": "Evening News", "scene": "ep12", "take": "3", "note": "rain & <wind>",
                     "sample_rate": SR, "bit_depth": 24, "channels": 2, "parameters": params})
    path = tmp_path / "bed.wav"
    write_audio(path, audio, SR, bext=bext(), ixml=doc + " ")  # odd length: a pad byte follows
    ixml = WavInfoReader(str(path)).ixml
    assert (ixml.project, ixml.scene, ixml.take) == ("Evening News", "ep12", "3")
    assert [t.name for t in ixml.track_list] == ["L", "R"]
    root = ET.fromstring(read_ixml(path))
    assert root.tag == "BWFXML" and root.findtext("IXML_VERSION") == io.IXML_VERSION
    assert root.findtext("NOTE") == "rain & <wind>"
    assert root.findtext("SPEED/FILE_SAMPLE_RATE") == "48000"
    attrs = {a.findtext("NAME"): a.findtext("VALUE") for a in root.iter("ATTR")}
    assert attrs["intent.key"] == "D minor" and attrs["seed"] == "7" and attrs["prompt"] == "rain & <wind>"
    assert json.loads(root.findtext("USER"))["parameters"] == params
    assert sf.info(str(path)).frames == audio.shape[-1]  # the pad byte did not confuse libsndfile


def test_24bit_round_trip_is_exact(audio, tmp_path):
    audio = audio.copy()
    audio[0, :3] = [1.5, -1.5, 2 ** -24 * 3]  # clipping and rounding at the edges
    path = tmp_path / "bed.wav"
    write_audio(path, audio, SR)
    back, sr = read_audio(path)
    assert sr == SR and back.dtype == np.float32
    np.testing.assert_array_equal(back, quantised(audio))
    # Writing the decoded file again changes nothing.
    write_audio(tmp_path / "again.wav", back, SR)
    np.testing.assert_array_equal(read_audio(tmp_path / "again.wav")[0], back)


def test_audio_hash_ignores_container_and_metadata(audio, tmp_path):
    wav, other, flac = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "a.flac"
    write_audio(wav, audio, SR, bext=bext())
    write_audio(other, audio, SR, bext=bext(description="something else"), ixml=make_ixml({"take": "9"}))
    write_audio(flac, audio, SR, fmt="flac", bext=bext())
    assert audio_sha256(wav) == audio_sha256(other) == audio_sha256(flac)
    assert file_sha256(wav) != file_sha256(other)
    write_audio(tmp_path / "c.wav", audio * np.float32(0.5), SR)
    assert audio_sha256(tmp_path / "c.wav") != audio_sha256(wav)


@pytest.mark.parametrize("fmt, bit_depth", [("wav", 24), ("wav", 16), ("flac", 24), ("flac", 16)])
def test_hash_returned_while_writing_equals_the_hash_read_back(audio, tmp_path, fmt, bit_depth):
    path = tmp_path / f"a.{fmt}"
    returned = write_audio(path, audio, SR, fmt=fmt, bit_depth=bit_depth)
    assert returned == audio_sha256(path)


def test_flac_carries_tags_and_exact_samples(audio, tmp_path):
    path = tmp_path / "bed.flac"
    write_audio(path, audio, SR, fmt="flac", bext=bext(description="Café rain"), tags={"title": "Bed 1"})
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_24", SR, 2)
    with sf.SoundFile(str(path)) as handle:
        assert (handle.comment, handle.title, handle.date) == ("Café rain", "Bed 1", "2026-11-25")
        assert handle.software.startswith("soundscape")  # libsndfile appends its own name
    np.testing.assert_array_equal(read_audio(path)[0], quantised(audio))
    assert read_bext(path) is None and read_ixml(path) is None


def test_16bit_is_dithered_pcm(audio, tmp_path):
    path = tmp_path / "bed.wav"
    write_audio(path, audio, SR, bit_depth=16)
    assert sf.info(str(path)).subtype == "PCM_16"
    error = read_audio(path)[0].astype(np.float64) - audio
    assert np.abs(error).max() <= 1.5 / 2 ** 15 and abs(error.mean()) < 1e-5


def test_an_error_mid_write_leaves_nothing(audio, tmp_path, monkeypatch):
    real_blocks = io._pcm_blocks

    def failing_blocks(*args):  # the disk fills after the first block
        blocks = real_blocks(*args)
        yield next(blocks)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "_FRAMES_PER_BLOCK", 4096)
    monkeypatch.setattr(io, "_pcm_blocks", failing_blocks)
    for fmt in ("wav", "flac"):
        with pytest.raises(OSError, match="No space"):
            write_audio(tmp_path / f"bed.{fmt}", audio, SR, fmt=fmt)
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_kept_unless_overwrite(audio, tmp_path):
    path = tmp_path / "bed.wav"
    path.write_bytes(b"precious")
    with pytest.raises(OutputError, match="exists; pass --overwrite to replace it"):
        write_audio(path, audio, SR)
    assert path.read_bytes() == b"precious"
    write_audio(path, audio, SR, overwrite=True)
    assert sf.info(str(path)).frames == audio.shape[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bed.wav"]


def test_output_path_checks(tmp_path):
    assert check_output_path(tmp_path / "a.wav", overwrite=False) == tmp_path / "a.wav"
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.wav", overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        check_output_path(tmp_path / "file" / "a.wav", overwrite=False)
    (tmp_path / "a.wav").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_output_path(tmp_path / "a.wav", overwrite=True)
    (tmp_path / "b.wav").write_text("x")
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        check_output_path(tmp_path / "b.wav", overwrite=False)
    assert check_output_path(tmp_path / "b.wav", overwrite=True) == tmp_path / "b.wav"
    with pytest.raises(ParameterError, match="unknown format"):
        check_output_path(tmp_path / "a.mp3", overwrite=False)
    with pytest.raises(ParameterError, match="suffix .wav but the format is flac"):
        check_output_path(tmp_path / "c.wav", overwrite=False, fmt="flac")
    assert list(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_the_sidecar_is_checked_with_the_audio(tmp_path):
    # Formerly a user's x.wav.json was silently replaced, and a folder named x.wav.json made
    # generate write x.wav, then die with a traceback, leaving it unrecorded and sidecar-less.
    (tmp_path / "x.wav.json").write_text('{"mine": true}')
    with pytest.raises(OutputError, match=r"x\.wav\.json exists; pass --overwrite"):
        check_output_path(tmp_path / "x.wav", overwrite=False)
    assert check_output_path(tmp_path / "x.wav", overwrite=True) == tmp_path / "x.wav"
    (tmp_path / "y.wav.json").mkdir()
    with pytest.raises(OutputError, match="is a folder where the sidecar must go"):
        check_output_path(tmp_path / "y.wav", overwrite=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output_path(locked / "a.wav", overwrite=False)
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_unwritable_filesystem_is_refused():
    # Even root cannot create files in /proc: the probe catches what permission bits do not.
    with pytest.raises(OutputError, match="not writable"):
        check_output_path("/proc/a.wav", overwrite=False)


def test_reading_garbage_is_an_audio_error(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AudioError):
        read_audio(junk)
    with pytest.raises(AudioError):
        audio_sha256(junk)
    assert read_bext(junk) is None


def test_wav_tags_go_to_list_info(audio, tmp_path):
    path = tmp_path / "bed.wav"
    write_audio(path, audio, SR, bext=bext(), tags={"title": "Bed – one", "comment": "rain"})
    info = WavInfoReader(str(path)).info
    assert (info.title, info.comment) == ("Bed - one", "rain")  # RIFF INFO text is ASCII too
    with sf.SoundFile(str(path)) as handle:
        assert handle.title == "Bed - one"
    with pytest.raises(ParameterError, match="unknown tag"):
        write_audio(tmp_path / "other.wav", audio, SR, tags={"mood": "calm"})
