"""The LR schedule: linear warm-up, then half a cosine to the floor, at chosen steps."""

from __future__ import annotations

import math

import pytest

from soundscape.engines.musicgen.schedule import CosineSchedule, make_schedule
from soundscape.errors import ParameterError


def test_warmup_then_cosine_at_chosen_steps():
    # 10 warm-up steps, then 101 decay steps: the cosine's progress is (step - 11) / 100.
    s = CosineSchedule(total=111, warmup=10)
    assert s.factor(1) == pytest.approx(0.1)
    assert s.factor(5) == pytest.approx(0.5)
    assert s.factor(10) == pytest.approx(1.0)
    assert s.factor(11) == pytest.approx(1.0)                  # cosine at 0
    assert s.factor(36) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # a quarter in
    assert s.factor(61) == pytest.approx(0.5)                  # half way
    assert s.factor(111) == pytest.approx(0.0, abs=1e-12)      # the end
    assert s.lr(3e-4, 61) == pytest.approx(1.5e-4)
    decay = [s.factor(k) for k in range(11, 112)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_floor_constant_and_defaults():
    s = CosineSchedule(total=21, warmup=0, floor=0.1)
    assert s.factor(1) == pytest.approx(1.0)
    assert s.factor(11) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s.factor(21) == pytest.approx(0.1)
    constant = make_schedule("constant", total=50, warmup=4)
    assert [constant.factor(k) for k in (2, 4, 5, 50)] == pytest.approx([0.5, 1.0, 1.0, 1.0])
    assert make_schedule(None, total=50).factor(50) == 1.0          # no warm-up: constant
    assert make_schedule(None, total=50, warmup=5).factor(50) == pytest.approx(0.0, abs=1e-12)


def test_bad_schedules_are_refused():
    with pytest.raises(ParameterError, match="below the run"):
        CosineSchedule(total=10, warmup=10)
    with pytest.raises(ParameterError, match="unknown LR schedule"):
        make_schedule("linear", total=10)
    with pytest.raises(ParameterError, match="count from 1"):
        CosineSchedule(total=10).factor(0)
