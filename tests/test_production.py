"""The cue-sheet vocabulary: timecodes at broadcast frame rates, usage codes, safe names."""

from pathlib import Path

import pytest

from soundscape import production
from soundscape.errors import ParameterError
from soundscape.production import parse_timecode

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("text,rate,ok", [
    ("00:00:00:00", 25, True), ("09:59:59:24", 25, True), ("00:00:00:25", 25, False),
    ("00:60:00:00", 25, False), ("00:00:00:29", 29.97, True), ("00:01:00;02", 29.97, True),
    ("00:01:00;01", 29.97, False), ("00:10:00;00", 29.97, True), ("00:00:00;00", 25, False),
    ("0:00:00:00", 25, False), ("00:00:00", 25, False), ("00:00:00:23", 23.976, True),
    ("00:00:00:24", 24, False), ("00:00:00:59", 60, True),
])
def test_timecodes(text, rate, ok):
    if ok:
        parse_timecode(text, rate)
    else:
        with pytest.raises(ParameterError):
            parse_timecode(text, rate)


@pytest.mark.parametrize("text, rate, frames", [
    ("00:00:01:00", 25, 25), ("01:00:00:00", 25, 90000), ("00:00:00:23", 24, 23),
    ("00:01:00;02", 29.97, 1800), ("00:10:00;00", 29.97, 17982), ("00:00:59;29", 29.97, 1799),
])
def test_timecodes_round_trip(text, rate, frames):
    assert production.timecode_to_frames(text, rate) == frames
    assert production.frames_to_timecode(frames, rate, drop=";" in text) == text


def test_durations_in_frames_use_the_exact_rate():
    assert production.seconds_to_frames(10.0, 25) == 250
    assert production.seconds_to_frames(60.0, 29.97) == 1798  # 29.97 is 30000/1001 frames a second
    assert production.clock(59.6) == "01:00" and production.clock(3725) == "1:02:05"


def test_the_documented_usage_table_is_the_one_validation_uses():
    assert production.usage_table() in (EXAMPLES / "README.md").read_text(encoding="utf-8")
