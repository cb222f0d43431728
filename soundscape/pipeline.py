"""The one way through: spec -> engine -> master -> deliver -> ledger.

``generate``, ``jingle`` and ``batch`` all come here. Each stage is a plain call with plain
data; this module is the only place that knows the order, and the only one that touches
both audio files and the ledger.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from soundscape import spec as specs_mod
from soundscape.errors import ParameterError
from soundscape.spec import CueSpec

DEFAULT_DURATIONS = {"bed": 60.0, "jingle": 8.0, "sting": 4.0}
MAX_VARIANTS = 12


@dataclass(frozen=True)
class Job:
    """One cue to render and where its file goes."""

    spec: CueSpec
    path: Path
    preset: str = "ebu-r128"
    fmt: str = "wav"
    overwrite: bool = False
    air_date: str | None = None
    territories: tuple[str, ...] = ()
    content_key: str | None = None


@dataclass
class Delivery:
    """A delivered, recorded output: what the summary and reports show."""

    spec: CueSpec
    path: Path
    sidecar_path: Path
    audio_sha256: str
    duration: float
    loudness_lufs: float
    true_peak_dbtp: float
    preset: str
    record_id: str | None = None
    samples: list[str] = field(default_factory=list)


def make_spec(prompt: str, *, kind: str = "bed", duration: float | None = None,
              seed: int | None = None, key: str | None = None, bpm: float | None = None,
              mood: str | None = None, intensity: str | None = None, motif: str | None = None,
              loop: bool = False, variant: int = 0, engine: str = "composer",
              model: str | None = None, params: dict | None = None,
              production: str | None = None, episode: str | None = None,
              cue_id: str | None = None) -> CueSpec:
    """Validate user input into a :class:`CueSpec` (every mistake is a ParameterError)."""
    if not prompt or not prompt.strip():
        raise ParameterError("the prompt is empty: describe the music, e.g. 'calm pad with rain'")
    if kind not in specs_mod.KINDS:
        raise ParameterError(f"unknown kind {kind!r}: choose one of {', '.join(specs_mod.KINDS)}")
    duration = specs_mod.check_duration(kind, DEFAULT_DURATIONS[kind] if duration is None else duration)
    if loop and kind != "bed":
        raise ParameterError("--loop applies to beds only; jingles and stings have an ending")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    if not 0 <= seed < 2**63:
        raise ParameterError(f"seed {seed} is out of range: 0 to 2**63-1")
    intent = specs_mod.resolve_intent(prompt, key=key, bpm=bpm, mood=mood, intensity=intensity,
                                      kind=kind, seed=seed)
    return CueSpec(prompt=prompt.strip(), kind=kind, duration=duration, seed=seed, intent=intent,
                   loop=loop, motif=specs_mod.parse_motif(motif) if motif is not None else None,
                   variant=variant, engine=engine, model=model, params=dict(params or {}),
                   production=production, episode=episode, cue_id=cue_id)


def variant_paths(path: Path, count: int) -> list[Path]:
    """``logo.wav`` -> ``[logo.wav]`` for one variant, ``[logo-v1.wav, logo-v2.wav ...]`` for more."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-v{i + 1}{path.suffix}") for i in range(count)]


def output_path(out: str | Path, fmt: str) -> Path:
    """The output file: ``--out`` as given, with the format's extension added when it has none."""
    path = Path(out).expanduser()
    if path.suffix.lower() not in (".wav", ".flac"):
        path = path.with_name(path.name + f".{fmt}")
    elif path.suffix.lower() != f".{fmt}":
        raise ParameterError(f"--out {out} ends in {path.suffix} but --format is {fmt}")
    return path


def run(jobs: Sequence[Job], *, workspace=None, progress: Callable[[str, float], None] | None = None,
        record: bool = True) -> list[Delivery]:
    """Render, master, deliver and record every job; return the deliveries in order.

    Output paths are checked before anything renders, and each output is journalled as
    pending before its file is written. ``progress(stage, fraction)`` reports overall progress.
    """
    check_jobs(jobs, workspace=workspace)
    ledger = open_ledger(workspace) if record else None
    try:
        tokens = begin(jobs, ledger)
        sidecars = produce(jobs, workspace=workspace, progress=progress)
        return [finish(job, sidecar, token, ledger) for job, sidecar, token in zip(jobs, sidecars, tokens)]
    finally:
        if ledger is not None:
            ledger.close()


def check_jobs(jobs: Sequence[Job], *, workspace=None, models: bool = True) -> None:
    """Fail before any rendering on an unknown preset, an unwritable or duplicate output path,
    a signing set-up that cannot sign (outputs are signed after they are delivered and recorded,
    so it must be refused up front), or (unless ``models`` is False) a musicgen model that is
    unknown or may not be used.

    Batches pass ``models=False``: their cue list was checked against the ledger's models
    already, and a model that fails to load must fail its own cues in a worker, not the
    whole batch in the driver (which need not have a GPU, nor load every model)."""
    from soundscape.audio.io import check_output_path
    from soundscape.audio.master import get_preset
    from soundscape.config import open_workspace
    from soundscape.rights.credentials import check_signing

    check_signing(workspace or open_workspace())
    seen: set[Path] = set()
    for job in jobs:
        get_preset(job.preset)
        check_output_path(job.path, overwrite=job.overwrite)
        if job.path.resolve() in seen:
            raise ParameterError(f"two cues would write the same file {job.path}")
        seen.add(job.path.resolve())
    for engine_name, model, allow in {(j.spec.engine, j.spec.model, _allow_unknown(j.spec))
                                      for j in jobs}:
        if engine_name == "musicgen" and models:
            from soundscape.engines.musicgen import engine_for_model

            engine_for_model(model, workspace=workspace, allow_unknown_lineage=allow)


def _allow_unknown(spec: CueSpec) -> bool:
    return bool(spec.params.get("allow_unknown_lineage"))


def open_ledger(workspace):
    """Open the workspace's ledger and record any output a crash left unrecorded."""
    from soundscape.config import open_workspace
    from soundscape.rights.ledger import Ledger

    from soundscape.delivery import reconcile

    ledger = Ledger.open(workspace or open_workspace())
    reconcile(ledger)
    return ledger


def begin(jobs: Sequence[Job], ledger) -> list:
    """Journal every output as pending before its file is written (the ledger's crash net)."""
    from soundscape.delivery import sidecar_path_for

    if ledger is None:
        return [None] * len(jobs)
    return [ledger.pending_begin(job.path, sidecar_path_for(job.path)) for job in jobs]


def finish(job: Job, sidecar: dict, token, ledger) -> Delivery:
    """Record one written output and close its pending entry."""
    from soundscape.delivery import record_delivery

    delivery = record_delivery(sidecar, job, ledger=ledger)
    if ledger is not None:
        ledger.pending_end(token)
    return delivery


def produce(jobs: Sequence[Job], *, workspace=None,
            progress: Callable[[str, float], None] | None = None) -> list[dict]:
    """Render, master and write every job (no ledger); return their sidecars in order.

    Jobs are grouped per engine and model so that an engine can batch them. This is what
    batch workers run; it touches files only.
    """
    from soundscape.delivery import write_delivery

    results: dict[int, dict] = {}
    groups: dict[tuple, list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault((job.spec.engine, job.spec.model, _allow_unknown(job.spec)), []).append(index)
    done = 0
    for (engine_name, model_name, allow), indexes in groups.items():
        engine = engine_for(engine_name, model_name, workspace=workspace, allow_unknown_lineage=allow)
        group_jobs = [jobs[i] for i in indexes]

        def engine_progress(fraction: float, _n=len(group_jobs), _done=done) -> None:
            if progress:
                progress("render", (_done + fraction * _n) / len(jobs))

        renders = engine.render([j.spec for j in group_jobs], progress=engine_progress)
        for index, job, rendered in zip(indexes, group_jobs, renders):
            results[index] = write_delivery(rendered, job)
            done += 1
            if progress:
                progress("deliver", done / len(jobs))
    return [results[i] for i in range(len(jobs))]


def engine_for(name: str, model: str | None, *, workspace=None, allow_unknown_lineage: bool = False):
    """The engine for a cue; musicgen models are looked up in the ledger by name."""
    from soundscape.engines import get_engine

    if name == "composer":
        return get_engine("composer")
    from soundscape.engines.musicgen import engine_for_model

    return engine_for_model(model, workspace=workspace, allow_unknown_lineage=allow_unknown_lineage)
