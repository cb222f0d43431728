"""The starter corpus: hours of labelled, studio-owned clips rendered by the composer, as a dataset.

A studio that owns no catalogue yet still needs licensed, labelled audio to train a model on.
``soundscape corpus`` renders it with the built-in composer: each clip gets a mood, key, tempo,
textures and instruments drawn from the seed (so the same seed gives the same corpus), is
mastered to EBU R 128 loudness, and is written as FLAC with a sidecar that records those labels
and the clip's lineage (the library samples and sound-bank presets it played). The clips are
then registered as one dataset version, each under ``LicenseRef-Studio-Owned`` AND the licenses
its ingredients carry, so the rights of every training clip are on record.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from soundscape.atomic import write_json_atomic
from soundscape.config import Workspace
from soundscape.errors import ParameterError
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import check_name
from soundscape.spec import INSTRUMENTS, MOODS, TEXTURES, Key, make_spec

STUDIO_LICENSE = "LicenseRef-Studio-Owned"
CORPUS_FOLDER = "corpus"
# Clip lengths: long enough for a texture and a phrase to be heard, short enough that a model's
# training window (10-30 s) sees whole clips.
CLIP_SECONDS = (10.0, 30.0)
# The largest corpus one command renders (at about 20x real time on one core, a day's work).
MAX_HOURS = 1000.0
# A stream of its own for the corpus plan, apart from every rendering stream (spec seeds).
PLAN_STREAM = 20261202
# Instruments the composer's beds voice well as a clip's lead colour (all in spec.INSTRUMENTS).
LEAD_INSTRUMENTS = ("pad", "piano", "bells", "strings", "harp", "guitar", "kalimba", "celesta",
                    "music box", "vibraphone", "marimba", "flute", "choir", "organ", "horns",
                    "cello", "electric piano", "drone", "glass pad", "warm pad")
AUTHOR = "the studio (rendered by soundscape's composer)"

ProgressFn = Callable[[int, int], None]
"""Called after each clip with (clips done, clips planned)."""


@dataclass(frozen=True)
class ClipPlan:
    """One corpus clip before it is rendered: its labels, length and seed."""

    index: int
    seed: int
    seconds: float
    mood: str
    key: str
    bpm: float
    textures: tuple[str, ...]
    instruments: tuple[str, ...]

    @property
    def prompt(self) -> str:
        """A prompt the composer's parser reads back to the same textures and instruments."""
        voices = " and ".join(self.instruments)
        text = f"{self.mood} {voices}"
        if self.textures:
            text += " with " + " and ".join(self.textures)
        return f"{text} in {self.key}, {self.bpm:g} bpm"


@dataclass
class CorpusReport:
    """What ``soundscape corpus`` made."""

    dataset: object  # DatasetRecord
    folder: Path
    clips: list[dict] = field(default_factory=list)  # each clip's sidecar
    seconds_of_audio: float = 0.0
    render_seconds: float = 0.0
    licenses: dict = field(default_factory=dict)


def plan_corpus(hours: float, *, seed: int = 0) -> list[ClipPlan]:
    """The clips of an ``hours``-long corpus: labels and lengths drawn from ``seed``.

    Each clip draws from its own stream (seed, index), so a longer corpus with the same seed
    starts with the same clips. The last clip is cut to what remains (never under the shortest
    clip length), so the total is ``hours`` or a little more.

    Raises:
        ParameterError: hours not a positive number up to :data:`MAX_HOURS`, or a bad seed.
    """
    import numpy as np

    try:
        hours = float(hours)
    except (TypeError, ValueError):
        raise ParameterError(f"--hours {hours!r} is not a number") from None
    if not 0 < hours <= MAX_HOURS:
        raise ParameterError(f"--hours {hours:g} must be more than 0 and at most {MAX_HOURS:g}")
    if not 0 <= seed < 2 ** 31:
        raise ParameterError(f"--seed {seed} is out of range: 0 to 2**31-1")
    target, total, plans = hours * 3600.0, 0.0, []
    moods = tuple(MOODS)
    while total < target - 1e-6:
        index = len(plans)
        rng = np.random.default_rng(np.random.SeedSequence([seed, PLAN_STREAM, index]))
        seconds = float(round(rng.uniform(*CLIP_SECONDS)))
        seconds = max(CLIP_SECONDS[0], min(seconds, round(target - total, 3)))
        left = round(target - total - seconds, 3)
        if 0 < left < CLIP_SECONDS[0] and seconds + left <= CLIP_SECONDS[1]:
            seconds += left  # no clip shorter than the shortest length just to fill the end
        mood = moods[int(rng.integers(len(moods)))]
        profile = MOODS[mood]
        modes = profile.modes or (profile.mode,)
        key = Key(int(rng.integers(12)), modes[int(rng.integers(len(modes)))]).name
        bpm = float(round(rng.uniform(*profile.bpm_range)))
        n_textures = int(rng.choice(3, p=(0.25, 0.5, 0.25)))
        textures = tuple(sorted(rng.choice(len(TEXTURES), n_textures, replace=False)))
        n_instruments = 1 + int(rng.random() < 0.4)
        instruments = tuple(LEAD_INSTRUMENTS[i] for i in
                            rng.choice(len(LEAD_INSTRUMENTS), n_instruments, replace=False))
        plans.append(ClipPlan(index=index, seed=int(rng.integers(2 ** 31)), seconds=seconds,
                              mood=mood, key=key, bpm=bpm,
                              textures=tuple(TEXTURES[i] for i in textures),
                              instruments=instruments))
        total += seconds
    assert all(i in INSTRUMENTS for p in plans for i in p.instruments)
    return plans


def corpus_folder(workspace: Workspace, dataset: str, seed: int) -> Path:
    """Where the clips of ``dataset`` made from ``seed`` live in the workspace."""
    return workspace.home / CORPUS_FOLDER / dataset / f"seed-{seed}"


def clip_license(ledger: Ledger, lineage) -> str:
    """The studio's own license AND every license the clip's ingredients carry."""
    ids = [STUDIO_LICENSE]
    for use in (*lineage.samples, *lineage.presets, *lineage.ingredients):
        if use.license and use.license not in ids:
            ids.append(use.license)
    return ledger.normalize_license(" AND ".join(f"({i})" if " " in i else i for i in ids),
                                    what="corpus clip")


def make_corpus(ledger: Ledger, workspace: Workspace, *, hours: float, dataset: str,
                seed: int = 0, progress: ProgressFn | None = None,
                engine=None, plans: list[ClipPlan] | None = None) -> CorpusReport:
    """``soundscape corpus``: render an ``hours``-long labelled corpus and register it as ``dataset``.

    Everything is rendered into a hidden staging folder first and moved into place whole; the
    dataset version is registered last, and a failure at any point leaves neither files nor
    records behind. ``plans`` replaces the seed's plan with clips of one's own choosing (a
    corpus of chosen classes, as the conditioning test makes).

    Raises:
        ParameterError: bad hours, seed or name, or a corpus of that name and seed already made.
    """
    from soundscape.rights.ingest import (AssetEntry, add_entries, ensure_sample_library,
                                          ensure_sound_banks)

    if not dataset or not dataset.strip() or "/" in dataset or "\\" in dataset \
            or dataset.startswith("."):
        raise ParameterError(f"dataset name {dataset!r} must be a plain name (no slashes)")
    check_name(dataset, "dataset name")
    plans = plans if plans is not None else plan_corpus(hours, seed=seed)
    folder = corpus_folder(workspace, dataset, seed)
    if folder.exists():
        raise ParameterError(f"{folder} already exists: a corpus {dataset} with seed {seed} was "
                             f"made before; choose another --seed or --dataset")
    staging = folder.with_name(f".{folder.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)  # a run that died before moving its clips into place
    staging.mkdir(parents=True)
    started = time.perf_counter()
    moved = False
    try:
        clips, rendered_seconds = _render_clips(ledger, plans, staging, engine=engine,
                                                progress=progress)
        render_seconds = time.perf_counter() - started
        staging.rename(folder)
        moved = True
        presets = [p for clip in clips for p in clip["lineage"]["presets"]]
        if any(clip["lineage"]["samples"] for clip in clips):
            ensure_sample_library(ledger)
        if presets:
            ensure_sound_banks(ledger, presets)
        entries = []
        for clip in clips:
            entries.append(AssetEntry(
                path=folder / clip["file"], license=clip["license"], author=AUTHOR,
                source=f"soundscape corpus --seed {seed}", title=Path(clip["file"]).stem,
                description=clip["description"], where=clip["file"]))
        report = add_entries(ledger, entries, dataset=dataset,
                             description=f"starter corpus: {len(clips)} composer clips, "
                                         f"{rendered_seconds / 3600:.3f} h, seed {seed}")
    except BaseException:
        shutil.rmtree(folder if moved else staging, ignore_errors=True)
        raise
    return CorpusReport(dataset=report.dataset, folder=folder, clips=clips,
                        seconds_of_audio=rendered_seconds, render_seconds=render_seconds,
                        licenses=report.license_counts)


def _render_clips(ledger: Ledger, plans: list[ClipPlan], staging: Path, *, engine, progress):
    """Render, master and write each clip (FLAC) with its sidecar (JSON) into ``staging``."""
    # The composer, mastering and libsndfile load here: `soundscape --help` never pays for them.
    import soundfile as sf

    from soundscape.audio.master import master
    from soundscape.engines.composer.engine import ComposerEngine

    engine = engine or ComposerEngine()
    clips, seconds = [], 0.0
    width = max(4, len(str(len(plans))))
    for plan in plans:
        spec = make_spec(plan.prompt, kind="bed", duration=plan.seconds, seed=plan.seed,
                         key=plan.key, bpm=plan.bpm, mood=plan.mood)
        render = engine.render_one(spec)
        mastered = master(render, "ebu-r128")
        name = f"clip-{plan.index:0{width}d}.flac"
        sf.write(str(staging / name), mastered.audio.T, mastered.sample_rate, format="FLAC",
                 subtype="PCM_16")
        lineage = render.lineage.describe()
        intent = spec.intent
        sidecar = {
            "file": name, "description": spec.prompt, "prompt": spec.prompt,
            "mood": intent.mood, "key": intent.key.name, "bpm": intent.bpm,
            "textures": list(intent.textures), "instruments": list(intent.instruments),
            "duration": round(mastered.audio.shape[-1] / mastered.sample_rate, 6),
            "sample_rate": mastered.sample_rate, "seed": spec.seed,
            "engine": {"name": render.lineage.engine, "version": render.lineage.engine_version},
            "lineage": lineage, "license": clip_license(ledger, render.lineage),
            "loudness_lufs": mastered.loudness_lufs,
            "corpus": {"index": plan.index, "plan": asdict(plan)},
        }
        write_json_atomic(staging / Path(name).with_suffix(".json").name, sidecar)
        clips.append(sidecar)
        seconds += sidecar["duration"]
        if progress is not None:
            progress(len(clips), len(plans))
    return clips, seconds


__all__ = ["ClipPlan", "CorpusReport", "STUDIO_LICENSE", "make_corpus", "plan_corpus"]
