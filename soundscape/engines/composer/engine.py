"""The composer engine: routes each cue to the bed or jingle renderer and records lineage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from soundscape.engines.base import ProgressFn
from soundscape.engines.composer.bed import render_bed
from soundscape.engines.composer.jingle import render_jingle
from soundscape.engines.composer.samplelayer import fit_samples, open_library
from soundscape.engines.composer.synth import SAMPLE_RATE
from soundscape.render import Lineage, PresetUse, Render
from soundscape.spec import CueSpec

log = logging.getLogger(__name__)

# Bump whenever the same spec would render different audio.
VERSION = "2.0.0"
# The sample library's picks get their own seed stream, apart from the composer's layers.
SAMPLE_STREAM = 7919
_NOTICED: set[str] = set()


def _notice(text: str) -> None:
    """A one-line notice, once per process (a batch of a hundred cues says it once)."""
    if text not in _NOTICED:
        _NOTICED.add(text)
        log.warning(text)


def open_banks(ids: list[str] | None = None) -> list:
    """The installed sound banks FluidSynth can play, saying in one line what is missing."""
    from soundscape.engines.composer import soundbank

    try:
        found, missing = soundbank.installed_banks(ids)
    except ValueError as exc:
        _notice(f"{exc}; the composer uses its synth voices")
        return []
    if found:
        from soundscape.engines.composer import fluid

        try:
            fluid.binding()
        except fluid.FluidUnavailable as exc:
            _notice(f"FluidSynth is not available ({exc}); install libfluidsynth3 to play the "
                    f"sound banks. The composer uses its synth voices")
            return []
    for info in missing:
        other = f"its instruments come from {found[0].info.title}" if found else \
            "the composer uses its synth voices"
        _notice(f"sound bank {info.title} is not installed (Debian package {info.package}); {other}")
    return found


class ComposerEngine:
    """Procedural ambient beds and jingles, rendered directly at 48 kHz stereo.

    Args:
        samples_dir: the sample library folder; None means ``soundscape.config.SAMPLES_DIR``.
        banks: sound-bank ids in order of preference; None means every installed bank
            (``$SOUNDSCAPE_SOUNDBANKS`` narrows it), [] means the built-in synth voices only.
    """

    name = "composer"
    version = VERSION

    def __init__(self, samples_dir: str | Path | None = None, banks: list[str] | None = None):
        if samples_dir is None:
            from soundscape.config import SAMPLES_DIR

            samples_dir = SAMPLES_DIR
        self.samples_dir = Path(samples_dir)
        self._bank_ids = banks
        self._banks = None
        self._library = None
        self._library_loaded = False

    @property
    def library(self):
        """The sample library, opened on first use (None when absent or empty)."""
        if not self._library_loaded:
            self._library = open_library(self.samples_dir)
            self._library_loaded = True
        return self._library

    @property
    def banks(self) -> list:
        """The sound banks this engine plays (found on first use)."""
        if self._banks is None:
            self._banks = open_banks(self._bank_ids) if self._bank_ids != [] else []
        return self._banks

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
            audio, details, presets = render_bed(spec, self.banks, fitted, progress=progress)
            tail = 0.0
        else:
            audio, details, tail, presets = render_jingle(spec, self.banks, progress=progress)
        details["samples"] = [f.use.id for f in fitted]
        details["presets"] = [f"{p['bank']}:{p['midi_bank']}:{p['program']} {p['preset']}"
                              for p in presets]
        lineage = Lineage(engine=self.name, engine_version=self.version,
                          samples=tuple(f.use for f in fitted),
                          presets=tuple(PresetUse(**p) for p in _unique(presets)))
        return Render(spec=spec, audio=audio, sample_rate=SAMPLE_RATE, lineage=lineage,
                      details=details, tail_seconds=tail)


def _unique(presets: list[dict]) -> list[dict]:
    """One entry per preset (a preset playing two parts is one ingredient)."""
    seen, out = set(), []
    for p in presets:
        key = (p["bank"], p["midi_bank"], p["program"])
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
