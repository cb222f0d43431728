"""The learning-rate schedule of an LM run: linear warm-up, then cosine decay to a floor.

MusicGen's recipe (audiocraft ``config/solver/musicgen/default.yaml``: ``lr_scheduler: cosine``,
``warmup: 4000``, ``lr_min_ratio: 0.0``, ``cycle_length: 1.0``) warms up linearly from zero and
then follows half a cosine over the remaining steps. The factor here multiplies the base LR, so a
resumed run recomputes it from the step number alone and needs no scheduler state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from soundscape.errors import ParameterError

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class CosineSchedule:
    """LR factor per optimiser step (1-based): ``warmup`` linear steps, then cosine to ``floor``.

    Args:
        total: the run's total optimiser steps.
        warmup: steps of linear warm-up (0: start at the full rate).
        floor: the factor the cosine ends on, as a fraction of the base rate.
        decay: False holds the full rate after warm-up (the "constant" schedule).
    """

    total: int
    warmup: int = 0
    floor: float = 0.0
    decay: bool = True

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ParameterError("a schedule needs 1 step or more")
        if not 0 <= self.warmup < self.total:
            raise ParameterError(f"--warmup {self.warmup} must be 0 or more and below the "
                                 f"run's {self.total} steps")
        if not 0.0 <= self.floor <= 1.0:
            raise ParameterError(f"the schedule's floor {self.floor:g} must lie in [0, 1]")

    def factor(self, step: int) -> float:
        """The multiplier on the base LR for optimiser step ``step`` (1 is the first)."""
        if step < 1:
            raise ParameterError(f"schedule steps count from 1, not {step}")
        if step <= self.warmup:
            return step / self.warmup
        if not self.decay:
            return 1.0
        span = self.total - self.warmup
        # Progress runs 0 -> 1 from the first step after warm-up to the last step of the run.
        progress = 0.0 if span <= 1 else min(1.0, (step - self.warmup - 1) / (span - 1))
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def lr(self, base_lr: float, step: int) -> float:
        """The learning rate for ``step``."""
        return base_lr * self.factor(step)


def make_schedule(name: str | None, *, total: int, warmup: int = 0) -> CosineSchedule:
    """The schedule called ``name``; None means cosine with a warm-up, constant without one."""
    name = name or ("cosine" if warmup else "constant")
    if name not in SCHEDULES:
        raise ParameterError(f"unknown LR schedule {name!r}: choose {' or '.join(SCHEDULES)}")
    return CosineSchedule(total=total, warmup=warmup, decay=name == "cosine")
