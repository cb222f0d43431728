"""Motifs: a few notes with a rhythm, composed from the seed or given, shared by jingles and beds.

Every note but the last sums to whole beats, so a motif's landing falls on a beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soundscape.spec import MODES, CueSpec, Key

# Rhythm cells in beats: every note but the last sums to whole beats, so the landing is on a beat.
RHYTHMS: dict[int, list[tuple[float, ...]]] = {
    2: [(1.0, 2.0), (0.5, 2.0)],
    3: [(1.0, 1.0, 2.0), (0.5, 0.5, 2.0), (1.5, 0.5, 2.0), (0.75, 0.25, 2.0)],
    4: [(0.5, 0.5, 1.0, 2.0), (0.75, 0.25, 1.0, 2.0), (1.0, 0.5, 0.5, 2.0), (1.5, 0.5, 1.0, 2.0)],
    5: [(0.5, 0.5, 0.5, 0.5, 2.0), (1.0, 0.5, 0.5, 1.0, 2.0), (0.75, 0.25, 0.5, 0.5, 2.0)],
    6: [(0.5, 0.5, 0.5, 0.5, 1.0, 2.0), (0.75, 0.25, 0.5, 0.5, 1.0, 2.0),
        (0.5, 0.5, 1.0, 0.5, 0.5, 2.0)],
}


@dataclass(frozen=True)
class Motif:
    """Notes (MIDI) and how many beats each lasts."""

    notes: tuple[int, ...]
    rhythm: tuple[float, ...]


def _rhythm_for(count: int, rng: np.random.Generator) -> tuple[float, ...]:
    if count in RHYTHMS:
        cells = RHYTHMS[count]
        return cells[int(rng.integers(len(cells)))]
    rhythm = [0.5] * (count - 1) + [2.0]
    if sum(rhythm[:-1]) % 1:
        rhythm[0] = 1.0
    return tuple(rhythm)


def compose_motif(key: Key, seed: int) -> Motif:
    """A 3-6 note motif in ``key`` from the seed alone (never the variant): stable start and end."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    count = int(rng.integers(3, 7))
    rhythm = _rhythm_for(count, rng)
    steps = MODES[key.mode]
    tonic_midi = 72 + (key.tonic - 72) % 12
    if tonic_midi > 77:
        tonic_midi -= 12
    degree = int(rng.choice([0, 2, 4]))
    degrees = [degree]
    for i in range(count - 2):
        move = int(rng.choice([-2, -1, 1, 2, 3, -3, 4], p=[.12, .2, .22, .18, .12, .08, .08]))
        degree = int(np.clip(degree + move, -3, 9))
        if degree == degrees[-1]:
            degree += 1
        degrees.append(degree)
    if count > 1:
        # Land on a stable tone (root, third, fifth, octave), nearest to where the line is.
        stable = [d for d in (0, 2, 4, 7) if d != degrees[-1]]
        degrees.append(min(stable, key=lambda d: abs(d - degrees[-1])))
    if len(set(degrees)) == 1:
        degrees[-1] += 2
    if count > 2 and max(abs(b - a) for a, b in zip(degrees, degrees[1:])) < 2:
        degrees[1] = degrees[0] + 2  # at least one leap (a third): steps alone sound like a scale
    if count > 2 and degrees[-2] == degrees[-1]:
        degrees[-2] += 1
    notes = tuple(tonic_midi + 12 * (d // 7) + steps[d % 7] for d in degrees)
    return Motif(notes, rhythm)


def motif_for(spec: CueSpec) -> Motif:
    """The spec's motif (with a seed-chosen rhythm) or one composed from the seed."""
    if spec.motif:
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(1)[0])
        return Motif(tuple(spec.motif), _rhythm_for(len(spec.motif), rng))
    return compose_motif(spec.intent.key, spec.seed)


