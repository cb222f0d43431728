"""Metadata DAWs and asset managers read: bext TimeReference, iXML SPEED/TRACK_LIST/FILE_UID,
INAM, and FLAC comments, seek table and padding, checked by reading the files back."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from soundscape import delivery, pipeline
from soundscape.audio import flacmeta
from soundscape.audio.io import read_audio, read_bext, read_ixml, riff_chunks
from soundscape.production import CueFacts
from soundscape.render import Lineage, Render
from soundscape.spec import make_spec

SR = 48000


def _render(rng, *, seconds: float = 3.0, cue: CueFacts | None = None) -> Render:
    spec = make_spec("calm pad", kind="jingle", duration=seconds, seed=3, production="Tides",
                     episode="S01E02", cue_id="1M3", cue=cue)
    t = np.arange(int(SR * seconds)) / SR
    left = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
    right = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.01 * rng.standard_normal(t.size)
    return Render(spec=spec, audio=np.stack([left, right]).astype(np.float32), sample_rate=SR,
                  lineage=Lineage(engine="composer", engine_version="test"))


def _deliver(tmp_path, rng, *, fmt="wav", cue=None, seconds=3.0):
    rendered = _render(rng, seconds=seconds, cue=cue)
    tmp_path.mkdir(parents=True, exist_ok=True)
    job = pipeline.Job(spec=rendered.spec, path=tmp_path / f"cue.{fmt}", fmt=fmt)
    delivery.write_delivery(rendered, job)
    return job.path


@pytest.mark.parametrize("timecode, rate, seconds", [
    ("01:00:00:00", 25.0, 3600.0),
    ("10:02:03:12", 25.0, 10 * 3600 + 2 * 60 + 3 + 12 / 25),
    # Drop-frame labels keep pace with the clock: 01:00:00;00 is 3600 s less 3.6 ms.
    ("01:00:00;00", 29.97, 107892 * 1001 / 30000),
])
def test_time_reference_is_the_cue_start_in_samples_since_midnight(tmp_path, rng, timecode, rate, seconds):
    path = _deliver(tmp_path, rng, cue=CueFacts(title="Harbour at dawn", timecode_in=timecode, frame_rate=rate))
    expected = round(seconds * SR)
    assert read_bext(path).time_reference == expected
    speed = ET.fromstring(read_ixml(path)).find("SPEED")
    stamp = (int(speed.findtext("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI")) << 32) | int(
        speed.findtext("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO"))
    assert stamp == expected and speed.findtext("TIMESTAMP_SAMPLE_RATE") == str(SR)
    exact = Fraction(speed.findtext("TIMECODE_RATE"))
    assert abs(float(exact) - rate) < 0.01
    assert speed.findtext("TIMECODE_FLAG") == ("DF" if ";" in timecode else "NDF")


def test_a_cue_without_timecode_starts_at_zero(tmp_path, rng):
    assert read_bext(_deliver(tmp_path, rng)).time_reference == 0


def test_ixml_has_track_list_file_uid_and_inam_is_the_cue_title(tmp_path, rng):
    first = _deliver(tmp_path / "a", rng, cue=CueFacts(title="Harbour at dawn"))
    second = _deliver(tmp_path / "b", rng, cue=CueFacts(title="Harbour at dawn"))
    root = ET.fromstring(read_ixml(first))
    names = [t.findtext("NAME") for t in root.find("TRACK_LIST").findall("TRACK")]
    assert root.find("TRACK_LIST").findtext("TRACK_COUNT") == "2" and names == ["L", "R"]
    uid = root.findtext("FILE_UID")
    assert len(uid) == 32 and uid != ET.fromstring(read_ixml(second)).findtext("FILE_UID")
    start, size = riff_chunks(first)[b"LIST"]
    info = first.read_bytes()[start:start + size]
    at = info.index(b"INAM")
    length = struct.unpack("<I", info[at + 4:at + 8])[0]
    assert info[at + 8:at + 8 + length].rstrip(b"\0") == b"Harbour at dawn"


def test_ffprobe_reads_the_time_reference(tmp_path, rng):
    probe = shutil.which("ffprobe")
    if probe is None:
        pytest.skip("ffprobe is not on PATH (make tools installs it where it may)")
    path = _deliver(tmp_path, rng, cue=CueFacts(timecode_in="00:59:58:00", frame_rate=25.0))
    shown = json.loads(subprocess.run([probe, "-v", "error", "-show_format", "-of", "json", str(path)],
                                      capture_output=True, text=True, check=True).stdout)
    assert int(shown["format"]["tags"]["time_reference"]) == (3600 - 2) * SR


def test_flac_has_our_comments_gains_padding_and_a_seek_table_that_lands_on_frames(tmp_path, rng):
    path = _deliver(tmp_path, rng, fmt="flac", seconds=25.0,
                    cue=CueFacts(title="Harbour at dawn", timecode_in="01:00:00:00", frame_rate=25.0))
    meta = flacmeta.read_metadata(path)
    comments = {k: v[0] for k, v in meta["comments"].items()}
    assert comments["TITLE"] == "Harbour at dawn" and comments["CUE_ID"] == "1M3"
    assert comments["EPISODE"] == "S01E02" and comments["PRODUCTION"] == "Tides"
    assert int(comments["TIME_REFERENCE"]) == 3600 * SR
    # The gains follow the loudness measured into the file: ReplayGain to -18 LUFS, R128 to -23.
    with sf.SoundFile(path) as handle:
        assert handle.title == "Harbour at dawn"  # libsndfile reads our upper-case names
    from soundscape.audio.loudness import integrated_loudness
    audio, rate = read_audio(path)
    measured = integrated_loudness(audio.astype(np.float64), rate)
    assert abs(float(comments["REPLAYGAIN_TRACK_GAIN"].split()[0]) - (-18.0 - measured)) < 0.05
    assert abs(int(comments["R128_TRACK_GAIN"]) / 256 - (-23.0 - measured)) < 0.05
    assert meta["padding"] == flacmeta.PADDING_BYTES
    points = meta["seektable"]
    assert [p[0] for p in points][:3] == [0, 4096 * 118, 4096 * 235]  # first frame at or after 0, 10, 20 s
    # Independent check: ffmpeg's FLAC decoder, given the stream from each seek point's byte
    # offset alone, gives the samples that start there.
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not on PATH (make tools installs it where it may)")
    data = path.read_bytes()
    total = audio.shape[1]
    for sample, offset, _ in points[1:]:
        streaminfo = bytearray(data[8:8 + 34])
        packed = int.from_bytes(streaminfo[10:18], "big")
        packed = (packed & ~((1 << 36) - 1)) | (total - sample)  # the samples from here on...
        streaminfo[10:18] = packed.to_bytes(8, "big")
        streaminfo[18:34] = bytes(16)  # ...and no MD5, since the stream starts part-way
        part = tmp_path / "part.flac"
        part.write_bytes(b"fLaC" + bytes([0x80]) + (34).to_bytes(3, "big") + bytes(streaminfo)
                         + data[meta["first_frame"] + offset:])
        raw = subprocess.run([ffmpeg, "-v", "error", "-i", str(part), "-f", "s32le", "-"],
                             capture_output=True, check=True).stdout
        tail = (np.frombuffer(raw, "<i4").reshape(-1, 2).T / 2.0 ** 31).astype(np.float32)
        assert tail.shape[1] == total - sample
        np.testing.assert_array_equal(tail, audio[:, sample:])
