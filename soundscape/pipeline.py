"""The one way through: spec -> engine -> master -> deliver -> ledger.

``generate``, ``jingle`` and ``batch`` all come here. Each stage is a plain call with plain
data; this module is the only place that knows the order, and the only one that touches
both audio files and the ledger.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from soundscape.engines import ENGINES, engine_info
from soundscape.errors import OutputError, ParameterError
from soundscape.spec import MAX_VARIANTS, CueSpec, make_spec


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


def prompt_jobs(prompt: str, *, out: str, kind: str, variants: int = 1, preset: str = "ebu-r128",
                fmt: str = "wav", overwrite: bool = False, engine: str = "composer",
                model: str | None = None, allow_unknown_lineage: bool = False,
                engine_params: dict | None = None, **controls) -> list[Job]:
    """The jobs of ``generate`` and ``jingle``: one per variant, every option checked first.

    Args:
        prompt: what the music should be.
        out: the output file as given (its extension is added from ``fmt`` when missing).
        kind: bed, jingle or sting.
        variants: arrangements of the same motif; they share the seed (so the motif too) and
            go to ``name-v1.wav``, ``name-v2.wav`` ...
        engine_params: the engine's own settings (``top_k`` ...), None for unset.
        **controls: duration, seed, key, bpm, mood, intensity, motif, loop (see ``make_spec``).

    Raises:
        ParameterError, OutputError: a bad option, naming it.
    """
    fmt, preset = fmt.lower(), preset.lower()  # as key and mood names, case is not a mistake
    if fmt not in ("wav", "flac"):
        raise ParameterError(f"unknown format {fmt!r}: choose wav or flac")
    if not 1 <= variants <= MAX_VARIANTS:
        raise ParameterError(f"--variants {variants} is out of range: 1 to {MAX_VARIANTS}")
    info = engine_info(engine)
    if info.needs_model and not model:
        raise ParameterError(f"--engine {engine} needs --model NAME (see 'soundscape model list')")
    params = {k: v for k, v in (engine_params or {}).items() if v is not None}
    if not info.needs_model and (model or params):
        options = (["--model"] if model else []) + [
            "--" + name.replace("_", "-") for name in params]
        with_models = " or ".join(f"--engine {name}" for name, other in ENGINES.items()
                                  if other.needs_model)
        raise ParameterError(f"{', '.join(options)} {'applies' if len(options) == 1 else 'apply'}"
                             f" only to {with_models}; the {engine} engine would ignore "
                             f"{'it' if len(options) == 1 else 'them'}")
    raw = os.path.expanduser(str(out))
    if not raw.strip():
        raise OutputError("--out is empty; give a file name, e.g. --out bed.wav")
    if raw.endswith(("/", os.sep)) or os.path.isdir(raw) or not Path(raw).name:
        raise OutputError(f"--out {out} is a folder; give a file name, e.g. "
                          f"{os.path.join(raw, 'cue.' + fmt)}")
    path = output_path(out, fmt)
    specs = []
    for variant in range(variants):
        spec = make_spec(prompt, kind=kind, variant=variant, engine=engine, model=model,
                         params=params, allow_unknown_lineage=allow_unknown_lineage, **controls)
        if variant == 0:
            controls["seed"] = spec.seed  # every variant shares the seed, so the motif is shared
        specs.append(spec)
    return [Job(spec=s, path=p, preset=preset, fmt=fmt, overwrite=overwrite)
            for s, p in zip(specs, variant_paths(path, variants))]


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
    for engine_name, model, allow in {(j.spec.engine, j.spec.model, j.spec.allow_unknown_lineage)
                                      for j in jobs}:
        if engine_name == "musicgen" and models:
            from soundscape.engines.musicgen import engine_for_model

            engine_for_model(model, workspace=workspace, allow_unknown_lineage=allow)


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
        groups.setdefault((job.spec.engine, job.spec.model, job.spec.allow_unknown_lineage),
                          []).append(index)
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
