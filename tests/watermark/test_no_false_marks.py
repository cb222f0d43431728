"""Unmarked audio is never called marked: noise, the sample library, renders made unmarked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundscape.delivery import Job, write_delivery
from soundscape.engines import get_engine
from soundscape.spec import make_spec
from soundscape.watermark import ecc
from soundscape.watermark.detect import (CRC_PASS, CRC_THRESHOLD, KNOWN_SHARE, N_TESTS,
                                         THRESHOLD, detect, known_thresholds)
from soundscape.watermark.payload import PAYLOAD_BITS, Payload
from soundscape.watermark.read import read_any

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.mark.parametrize("candidates", [1, 1000, 1_000_000])
def test_threshold_keeps_the_union_bound_under_one_in_a_million(candidates):
    sync_alone = N_TESTS * np.exp(-THRESHOLD ** 2 / 2)
    with_crc = N_TESTS * CRC_PASS * np.exp(-CRC_THRESHOLD ** 2 / 2)
    at_sync, searched = known_thresholds(candidates)
    known = candidates * (np.exp(-at_sync ** 2 / 2) + N_TESTS * np.exp(-searched ** 2 / 2))
    assert known == pytest.approx(KNOWN_SHARE * 1e-6, rel=1e-9)
    assert sync_alone + with_crc + known == pytest.approx(1e-6, rel=1e-9)
    assert CRC_THRESHOLD < THRESHOLD and at_sync < searched


def test_a_payload_decoded_from_sign_symmetric_noise_passes_its_crc_one_time_in_256(rng):
    # The second path's bound rests on this: soft values whose signs are symmetric (what an
    # unmarked file gives, whatever its features) decode to a uniform payload, whose CRC-8
    # passes with probability 2^-8. 2,000 decodes: 7.8 passes expected; over 25 has odds
    # under 1e-6 if the rate is 2^-8, and would be likely at four times that rate.
    passes = 0
    for _ in range(2000):
        soft = rng.standard_normal(124) * rng.choice([0.1, 1.0, 10.0], 124)
        passes += Payload.from_bits(ecc.decode(soft, PAYLOAD_BITS)) is not None
    assert passes <= 25, passes


def test_noise_and_silence_are_unmarked(rng):
    scores = []
    for _ in range(6):
        white = rng.standard_normal((2, 48000 * 8)).astype(np.float32) * 0.05
        found = detect(white, 48000)
        assert not found.present and found.payload is None
        scores.append(found.z)
    assert max(scores) < THRESHOLD
    assert not detect(np.zeros((2, 48000 * 4), dtype=np.float32), 48000).present


def test_unmarked_audio_matches_none_of_a_thousand_listed_marks(rng):
    # the known path (a ledger's marks listed) has its own share of the one-in-a-million
    known = [Payload(0x5A17, int(m)) for m in rng.integers(0, 2 ** 32, 1000)]
    clips = [rng.standard_normal((2, 48000 * 6)).astype(np.float32) * 0.05]
    clips += [read_any(path)[0] for path in sorted(SAMPLES.glob("*.flac"))[:6]]
    for audio in clips:
        found = detect(audio, 48000, known=known)
        assert not found.present and found.payload is None, found.describe()
        assert found.known == 1000


def test_the_sample_library_is_unmarked():
    files = sorted(SAMPLES.glob("*.flac"))
    assert len(files) >= 10
    for path in files:
        audio, sr = read_any(path)
        found = detect(audio, sr)
        assert not found.present, (path.name, found.describe())


def test_a_render_delivered_with_marking_off_is_unmarked(tmp_path):
    spec = make_spec("dark drone strings", kind="bed", duration=12, seed=11)
    job = Job(spec=spec, path=tmp_path / "plain.wav", watermark=False)
    sidecar = write_delivery(get_engine("composer").render([spec])[0], job)
    assert sidecar["watermark"] is None
    audio, sr = read_any(job.path)
    found = detect(audio, sr)
    assert not found.present and found.z < THRESHOLD
