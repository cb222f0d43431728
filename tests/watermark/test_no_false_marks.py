"""Unmarked audio is never called marked: noise, the sample library, renders made unmarked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundscape.delivery import Job, write_delivery
from soundscape.engines import get_engine
from soundscape.spec import make_spec
from soundscape.watermark.detect import N_TESTS, THRESHOLD, detect
from soundscape.watermark.read import read_any

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_threshold_keeps_the_union_bound_under_one_in_a_million():
    assert N_TESTS * np.exp(-THRESHOLD ** 2 / 2) == pytest.approx(1e-6, rel=1e-9)


def test_noise_and_silence_are_unmarked(rng):
    scores = []
    for _ in range(6):
        white = rng.standard_normal((2, 48000 * 8)).astype(np.float32) * 0.05
        found = detect(white, 48000)
        assert not found.present and found.payload is None
        scores.append(found.z)
    assert max(scores) < THRESHOLD
    assert not detect(np.zeros((2, 48000 * 4), dtype=np.float32), 48000).present


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
