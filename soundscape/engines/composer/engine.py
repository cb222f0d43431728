"""The composer engine: routes each cue to the bed or jingle renderer and records lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from soundscape.engines.base import ProgressFn
from soundscape.engines.composer.arrangement import render_bed
from soundscape.engines.composer.jingle import render_jingle
from soundscape.engines.composer.samplelayer import fit_samples, open_library
from soundscape.engines.composer.synth import SAMPLE_RATE
from soundscape.render import Lineage, Render
from soundscape.spec import CueSpec

# Bump whenever the same spec would render different audio.
VERSION = "1.0.0"
# The sample library's picks get their own seed stream, apart from the composer's layers.
SAMPLE_STREAM = 7919


class ComposerEngine:
    """Procedural ambient beds and jingles, rendered directly at 48 kHz stereo.

    Args:
        samples_dir: the sample library folder; None means ``soundscape.config.SAMPLES_DIR``.
    """

    name = "composer"
    version = VERSION

    def __init__(self, samples_dir: str | Path | None = None):
        if samples_dir is None:
            from soundscape.config import SAMPLES_DIR

            samples_dir = SAMPLES_DIR
        self.samples_dir = Path(samples_dir)
        self._library = None
        self._library_loaded = False

    @property
    def library(self):
        """The sample library, opened on first use (None when absent or empty)."""
        if not self._library_loaded:
            self._library = open_library(self.samples_dir)
            self._library_loaded = True
        return self._library

    def render(self, specs: Sequence[CueSpec], *, progress: ProgressFn | None = None) -> list[Render]:
        """Render each spec in order; ``progress`` gets the fraction of the whole call done."""
        renders = []
        count = max(len(specs), 1)
        for i, spec in enumerate(specs):
            def part(fraction: float, i: int = i) -> None:
                if progress is not None:
                    progress(min(1.0, (i + fraction) / count))

            renders.append(self.render_one(spec, progress=part))
        if progress is not None:
            progress(1.0)
        return renders

    def render_one(self, spec: CueSpec, *, progress: ProgressFn | None = None) -> Render:
        """Render one cue."""
        fitted = []
        if spec.kind == "bed" and self.library is not None:
            rng = np.random.default_rng(np.random.SeedSequence([spec.seed, SAMPLE_STREAM]))
            fitted = fit_samples(self.library, spec, rng)
        if spec.kind == "bed":
            audio, details = render_bed(spec, fitted, progress=progress)
            tail = 0.0
        else:
            audio, details, tail = render_jingle(spec, progress=progress)
        details["samples"] = [f.use.id for f in fitted]
        lineage = Lineage(engine=self.name, engine_version=self.version,
                          samples=tuple(f.use for f in fitted))
        return Render(spec=spec, audio=audio, sample_rate=SAMPLE_RATE, lineage=lineage,
                      details=details, tail_seconds=tail)
