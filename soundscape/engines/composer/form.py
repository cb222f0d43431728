"""The form of a bed: sections with a purpose, and the intensity curve that drives them.

A bed is planned as sections of 30-120 s (intro, statement, development, contrast, interlude,
return, close), each changing at least two of orchestration, register, density and harmony, so that a
listener can tell minute five from minute one. A loop is a cycle of sections with no intro or
close, whose intensity ends where it begins. The intensity curve is the user's ``--intensity``
when given, else the mood's level shaped by the sections' arc.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soundscape.engines.composer.score import CONTROL_RATE
from soundscape.spec import CueSpec

# Energy of each kind of section relative to the mood's level: the arc a bed follows.
ARC = {"intro": -0.25, "statement": -0.03, "development": 0.1, "contrast": 0.25,
       "interlude": -0.15, "return": 0.03, "close": -0.25}
ARC_LIFT = 0.1  # beds sit a little above their mood's nominal level, so their layers open
# The register each kind of section moves the melody and pads by (semitones).
REGISTER = {"intro": 0, "statement": 0, "development": 2, "contrast": 5, "interlude": -2,
            "return": 0, "close": -3}
INTRO_SECONDS = (6.0, 24.0)
CLOSE_SECONDS = (6.0, 30.0)
SECTION_SECONDS = (30.0, 110.0)
RAMP_SECONDS = 6.0  # how long the intensity takes to move between sections


@dataclass(frozen=True)
class Section:
    """A stretch of the bed with one purpose.

    ``variation`` counts how often a kind of section has come back (a second statement
    is a varied one); ``energy`` is its level on the arc before the mood scales it.
    """

    name: str
    start: float
    end: float
    energy: float
    register: int
    variation: int = 0

    @property
    def length(self) -> float:
        return self.end - self.start

    def describe(self) -> dict:
        return {"name": self.name, "start": round(self.start, 2), "end": round(self.end, 2)}


def _body_names(count: int) -> list[str]:
    """Kinds of the body's sections: statement, then development / contrast / interlude /
    return in turn (an interlude only once the bed is long enough to need a breath)."""
    cycle = ["development", "contrast", "return"] if count < 6 else \
        ["development", "contrast", "interlude", "return"]
    names = ["statement"]
    while len(names) < count:
        names.append(cycle[(len(names) - 1) % len(cycle)])
    if count >= 3 and names[-1] == "development":
        names[-1] = "return"  # the body ends on the familiar material
    return names


def plan_sections(duration: float, *, loop: bool, rng: np.random.Generator) -> list[Section]:
    """Sections covering ``0 .. duration``: lengths vary with the seed, never tick evenly."""
    if loop:
        intro = close = 0.0
    else:
        intro = float(np.clip(0.12 * duration, *INTRO_SECONDS))
        close = float(np.clip(0.12 * duration, *CLOSE_SECONDS))
        if duration < 30.0:
            intro, close = 0.2 * duration, 0.25 * duration
    body = duration - intro - close
    count = max(1, int(round(body / rng.uniform(55.0, 80.0))))
    if loop:
        count = max(count, 2 if body >= 20.0 else 1)
    weights = rng.uniform(0.7, 1.3, size=count)
    lengths = body * weights / weights.sum()
    names = _body_names(count)
    sections = []
    t = 0.0
    if intro:
        sections.append(Section("intro", 0.0, intro, ARC["intro"], REGISTER["intro"]))
        t = intro
    seen: dict[str, int] = {}
    for name, length in zip(names, lengths):
        sections.append(Section(name, t, t + float(length), ARC[name], REGISTER[name],
                                variation=seen.get(name, 0)))
        seen[name] = seen.get(name, 0) + 1
        t += float(length)
    if close:
        sections.append(Section("close", t, duration, ARC["close"], REGISTER["close"]))
    last = sections[-1]
    sections[-1] = Section(last.name, last.start, duration, last.energy, last.register,
                           last.variation)
    return sections


def section_at(sections: list[Section], t: float) -> Section:
    for section in sections:
        if t < section.end:
            return section
    return sections[-1]


def intensity_curve(spec: CueSpec, sections: list[Section], *, total: float) -> np.ndarray:
    """Intensity 0..1 at :data:`CONTROL_RATE` over ``0 .. total`` seconds.

    A flag's curve is used as it is (the user asked for those levels); otherwise the mood's
    level is scaled by each section's energy and the steps are ramped over a few seconds.
    """
    n = int(np.ceil(total * CONTROL_RATE)) + 2
    t = np.arange(n) / CONTROL_RATE
    intent = spec.intent
    if intent.sources.get("intensity") == "flag":
        curve = np.asarray(intent.intensity.at(np.minimum(t, spec.duration)), dtype=np.float64)
        if spec.loop:
            curve = np.asarray(intent.intensity.at(np.mod(t, spec.duration)), dtype=np.float64)
        return np.clip(curve, 0.0, 1.0).astype(np.float32)
    base = float(intent.intensity.at(0.0))
    ends = np.array([s.end for s in sections])
    where = np.minimum(np.searchsorted(ends, np.mod(t, spec.duration) if spec.loop else t,
                                       side="right"), len(sections) - 1)
    steps = np.array([s.energy for s in sections])[where]
    width = max(1, int(RAMP_SECONDS * CONTROL_RATE))
    kernel = np.hanning(2 * width + 1)
    kernel /= kernel.sum()
    padded = np.concatenate([steps[-width:] if spec.loop else np.full(width, steps[0]), steps,
                             steps[:width] if spec.loop else np.full(width, steps[-1])])
    smooth = np.convolve(padded, kernel, mode="same")[width:width + n]
    return np.clip(base + ARC_LIFT + smooth, 0.05, 1.0).astype(np.float32)
