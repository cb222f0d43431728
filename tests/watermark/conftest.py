"""Clips the watermark tests share: a composer jingle and bed, mastered, marked and unmarked."""

from __future__ import annotations

import numpy as np
import pytest

from soundscape.audio.master import master
from soundscape.delivery import mark_master
from soundscape.engines import get_engine
from soundscape.spec import make_spec

KEY_ID = 0x5A17


def _mastered(prompt: str, kind: str, duration: float, seed: int):
    spec = make_spec(prompt, kind=kind, duration=duration, seed=seed)
    return master(get_engine("composer").render([spec])[0], "ebu-r128")


@pytest.fixture(scope="session")
def clips():
    """``{name: (unmarked, marked, payload hex)}`` for a 6 s jingle and a 20 s bed."""
    out = {}
    # Fixed mark ids, so every run tests the same audio (a random one moved the margins).
    for name, prompt, kind, duration, seed, mark_id in (
            ("jingle", "bright upbeat logo", "jingle", 6, 7, 0x0C1A5501),
            ("bed", "warm ambient pad with soft piano", "bed", 20, 3, 0x0C1A5502)):
        m = _mastered(prompt, kind, duration, seed)
        unmarked = m.audio.copy()
        mark = mark_master(m, key_id=KEY_ID, mark_id=mark_id)
        out[name] = (unmarked, m.audio, mark["payload"], m)
    return out
