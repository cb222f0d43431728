"""The one way through: spec -> engine -> master -> deliver -> ledger.

``generate``, ``jingle`` and ``batch`` all come here. Each stage is a plain call with plain
data; this module is the only place that knows their order, and so the crash-safety order:

    check    every preset, output path, model and the signing set-up, before any render
    begin    each output noted in the pending journal                      (journal.py)
    produce  engine.render -> master -> audio file -> sidecar              (delivery.write_delivery)
    finish   ledger record -> sidecar stamp -> C2PA signature -> entry ends (delivery.record_delivery)

A crash between begin and finish leaves a journal entry that :func:`soundscape.journal.reconcile`
resolves. Where produce runs is an executor's choice: here (:class:`InProcess`), in worker
processes or on Ray (:mod:`soundscape.batch.executors`); finish always runs in this process, the
single ledger writer.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from soundscape.audio.io import check_output_path
from soundscape.audio.master import get_preset
from soundscape.config import Workspace, open_workspace
from soundscape.delivery import Delivery, Job, record_delivery, sidecar_path_for, write_delivery
from soundscape.engines import ENGINES, engine_info
from soundscape.errors import OutputError, ParameterError, SoundscapeError
from soundscape.journal import Journal, reconcile
from soundscape.models import open_engine
from soundscape.rights.credentials import check_signing
from soundscape.rights.ledger import Ledger
from soundscape.spec import MAX_VARIANTS, make_spec
from soundscape.watermark.audioseal import for_workspace as seal_weights

StageProgress = Callable[[str, float], None]
"""``progress(stage, fraction)``: "render" or "deliver", and the fraction of the run done."""


@dataclass(frozen=True)
class Task:
    """Jobs produced by one ``produce`` call: the cues an engine renders together."""

    index: int
    jobs: tuple[Job, ...]

    @property
    def wants_gpu(self) -> bool:
        return engine_info(self.jobs[0].spec.engine).wants_gpu


class Executor(Protocol):
    """Where tasks are produced. ``parallel`` executors get one task per cue where engines do
    not batch, so cues spread over workers; others get one task per engine and model."""

    parallel: bool

    def run(self, tasks: Sequence[Task], events: "TaskEvents", *,
            workspace: Workspace | None) -> None:
        """Produce every task (files and sidecars in place at each job's path), telling
        ``events`` as each one starts, progresses and is done."""
        ...


class TaskEvents(Protocol):
    """What an executor reports about each task, in the driver."""

    def started(self, task: Task) -> None: ...

    def progress(self, task: Task, stage: str, fraction: float) -> None: ...

    def done(self, task: Task, sidecars: list[dict] | None, error: BaseException | None,
             seconds: float) -> None: ...


class Watcher:
    """What :func:`run` reports about each job; the defaults do nothing.

    With a watcher, a job that fails is reported to :meth:`finished` and the others go on;
    without one, the first failure stops the run.
    """

    def started(self, job: Job) -> None:
        """The job's task began rendering."""

    def progress(self, job: Job, fraction: float) -> None:
        """How far the job's task is (0..1)."""

    def finished(self, job: Job, delivery: Delivery | None, error: str | None,
                 seconds: float) -> None:
        """The job is recorded (``delivery``) or failed (``error``)."""


class InProcess:
    """Produce every task here, one after another. A failure raises where it happened."""

    parallel = False

    def run(self, tasks: Sequence[Task], events: TaskEvents, *,
            workspace: Workspace | None) -> None:
        for task in tasks:
            events.started(task)
            started = time.perf_counter()
            sidecars = produce(task.jobs, workspace=workspace,
                               progress=lambda stage, f, _task=task: events.progress(_task, stage, f))
            events.done(task, sidecars, None, time.perf_counter() - started)


# --- the way through --------------------------------------------------------------------------

def run(jobs: Sequence[Job], *, workspace: Workspace | None = None,
        executor: Executor | None = None, ledger: Ledger | None = None, record: bool = True,
        check: bool = True, check_models: bool = True, progress: StageProgress | None = None,
        watcher: Watcher | None = None) -> list[Delivery | None]:
    """Render, master, deliver and record every job; return the deliveries in job order.

    Args:
        jobs: what to make.
        workspace: whose ledger and journal (default: ``$SOUNDSCAPE_HOME`` or the default one).
        executor: where rendering runs (default in this process).
        ledger: an open ledger to record into (a batch holds one); without it the workspace's
            ledger is opened, crash leftovers reconciled first, and closed at the end.
        record: record in the ledger (False: files and sidecars only).
        check: run :func:`check_jobs` first (a batch has, before recording what needs no
            rendering).
        check_models: let the check open every model (see :func:`check_jobs`).
        progress: overall progress, ``progress(stage, fraction)``.
        watcher: per-job events; with one, failed jobs are reported there and are None in
            the result.
    """
    executor = executor or InProcess()
    if check:
        check_jobs(jobs, workspace=workspace, models=check_models)
    own_ledger = ledger is None and record
    if own_ledger:
        ledger = open_ledger(workspace)
    try:
        journal = Journal.of(ledger) if ledger is not None else None
        tokens = begin(jobs, journal)
        results: list[Delivery | None] = [None] * len(jobs)
        events = _Events(jobs, tokens, results, ledger=ledger, journal=journal,
                         progress=progress, watcher=watcher)
        executor.run(make_tasks(jobs, split=executor.parallel), events, workspace=workspace)
        return results
    finally:
        if own_ledger:
            ledger.close()


def check_jobs(jobs: Sequence[Job], *, workspace: Workspace | None = None,
               models: bool = True) -> None:
    """Fail before any rendering on an unknown preset, an unwritable or duplicate output path,
    a signing set-up that cannot sign (outputs are signed after they are delivered and recorded,
    so it must be refused up front), or (unless ``models`` is False) a model that is unknown or
    may not be used.

    Batches pass ``models=False``: their cue list was checked against the ledger's models
    already, and a model that fails to load must fail its own cues in a worker, not the
    whole batch in the driver (which need not have a GPU, nor load every model)."""
    check_signing(workspace or open_workspace())
    if any(job.watermark for job in jobs):
        # A second marker's weights folder (AudioSeal) is loaded, so checked, before any render.
        seal_weights(workspace or open_workspace())
    seen: set[Path] = set()
    for job in jobs:
        get_preset(job.preset)
        check_output_path(job.path, overwrite=job.overwrite)
        if job.path.resolve() in seen:
            raise ParameterError(f"two cues would write the same file {job.path}")
        seen.add(job.path.resolve())
    for engine_name, model, allow in {(j.spec.engine, j.spec.model, j.spec.allow_unknown_lineage)
                                      for j in jobs}:
        if models and engine_info(engine_name).needs_model:
            open_engine(engine_name, model, workspace=workspace, allow_unknown_lineage=allow)


def open_ledger(workspace: Workspace | None) -> Ledger:
    """Open the workspace's ledger and record any output a crash left unrecorded."""
    ledger = Ledger.open(workspace or open_workspace())
    reconcile(ledger)
    return ledger


def begin(jobs: Sequence[Job], journal: Journal | None) -> list[str | None]:
    """Journal every output as pending before its file is written (the crash net)."""
    if journal is None:
        return [None] * len(jobs)
    return [journal.begin(job.path, sidecar_path_for(job.path)) for job in jobs]


def finish(job: Job, sidecar: dict, token: str | None, ledger: Ledger | None) -> Delivery:
    """Record one written output (record, stamp, sign) and close its pending entry."""
    delivery = record_delivery(sidecar, job, ledger=ledger)
    if ledger is not None:
        Journal.of(ledger).end(token)
    return delivery


def produce(jobs: Sequence[Job], *, workspace: Workspace | None = None,
            progress: StageProgress | None = None) -> list[dict]:
    """Render, master and write every job (no ledger); return their sidecars in order.

    Jobs are grouped per engine and model so that an engine can batch them. This is what
    batch workers run; it touches files only.
    """
    results: dict[int, dict] = {}
    key_id = mark_key_id(workspace or open_workspace())
    seal = None
    if any(job.watermark for job in jobs):
        seal = seal_weights(workspace or open_workspace())
    groups: dict[tuple, list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault((job.spec.engine, job.spec.model, job.spec.allow_unknown_lineage),
                          []).append(index)
    done = 0
    for (engine_name, model_name, allow), indexes in groups.items():
        engine = open_engine(engine_name, model_name, workspace=workspace,
                             allow_unknown_lineage=allow)
        group_jobs = [jobs[i] for i in indexes]

        def engine_progress(fraction: float, _n=len(group_jobs), _done=done) -> None:
            if progress:
                progress("render", (_done + fraction * _n) / len(jobs))

        renders = engine.render([j.spec for j in group_jobs], progress=engine_progress)
        for index, job, rendered in zip(indexes, group_jobs, renders):
            results[index] = write_delivery(rendered, job, key_id=key_id, seal=seal)
            done += 1
            if progress:
                progress("deliver", done / len(jobs))
    return [results[i] for i in range(len(jobs))]


def mark_key_id(workspace: Workspace) -> int:
    """The key id every mark made in ``workspace`` carries: from its ledger's public key
    (made here on first use, as the ledger would), so a detector can tell its ledger's marks."""
    from soundscape.rights.store.keys import load_or_create_key, public_pem
    from soundscape.watermark.payload import key_id_of

    return key_id_of(public_pem(load_or_create_key(workspace.keys_dir).public_key()))


def make_tasks(jobs: Sequence[Job], *, split: bool = True) -> list[Task]:
    """Group jobs into tasks.

    Split: cues of an engine that batches go together per model (one forward pass for many
    cues), every other cue is a task of its own; the longest work first, so the last task
    of a pool is a short one. Not split: one task per engine, model and lineage setting, in
    the order the jobs name them.
    """
    if not split:
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            groups.setdefault((job.spec.engine, job.spec.model, job.spec.allow_unknown_lineage),
                              []).append(job)
        return [Task(i, tuple(group)) for i, group in enumerate(groups.values())]
    tasks: list[Task] = []
    by_model: dict[tuple, list[Job]] = {}
    for job in jobs:
        spec = job.spec
        if engine_info(spec.engine).batches:
            by_model.setdefault((spec.engine, spec.model or ""), []).append(job)
        else:
            tasks.append(Task(len(tasks), (job,)))
    for group in by_model.values():
        tasks.append(Task(len(tasks), tuple(group)))
    tasks.sort(key=lambda t: -sum(j.spec.duration for j in t.jobs))
    return [Task(i, t.jobs) for i, t in enumerate(tasks)]


def describe_error(exc: BaseException) -> str:
    """One line for a failure that came back from a worker (its own message when it is ours)."""
    if isinstance(exc, SoundscapeError):
        return str(exc)
    cause = getattr(exc, "cause", None)  # Ray wraps the worker's exception
    if isinstance(cause, BaseException):
        return describe_error(cause)
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return last.splitlines()[-1] if last else type(exc).__name__


class _Events:
    """The driver's side of a run: each produced task's jobs are finished here, in order."""

    def __init__(self, jobs: Sequence[Job], tokens: list, results: list, *,
                 ledger: Ledger | None, journal: Journal | None,
                 progress: StageProgress | None, watcher: Watcher | None):
        self.index = {id(job): i for i, job in enumerate(jobs)}
        self.tokens, self.results = tokens, results
        self.ledger, self.journal = ledger, journal
        self.stage_progress, self.watcher = progress, watcher
        self.total = max(len(jobs), 1)
        self.jobs_done = 0

    def started(self, task: Task) -> None:
        if self.watcher is not None:
            for job in task.jobs:
                self.watcher.started(job)

    def progress(self, task: Task, stage: str, fraction: float) -> None:
        if self.watcher is not None:
            for job in task.jobs:
                self.watcher.progress(job, fraction)
        if self.stage_progress is not None:
            self.stage_progress(stage, (self.jobs_done + fraction * len(task.jobs)) / self.total)

    def done(self, task: Task, sidecars: list[dict] | None, error: BaseException | None,
             seconds: float) -> None:
        for n, job in enumerate(task.jobs):
            i = self.index[id(job)]
            if error is not None:
                if self.journal is not None:
                    self.journal.end(self.tokens[i])  # nothing was written (files appear whole)
                if self.watcher is None:
                    raise error
                self.watcher.finished(job, None, describe_error(error), seconds)
                continue
            try:
                self.results[i] = finish(job, sidecars[n], self.tokens[i], self.ledger)
            except SoundscapeError as exc:
                if self.watcher is None:
                    raise
                # Left pending: the next run's reconcile records the file or cleans it up.
                self.watcher.finished(job, None, str(exc), seconds)
                continue
            if self.watcher is not None:
                self.watcher.finished(job, self.results[i], None, seconds)
        self.jobs_done += len(task.jobs)


# --- jobs from a prompt ----------------------------------------------------------------------

def prompt_jobs(prompt: str, *, out: str, kind: str, variants: int = 1, preset: str = "ebu-r128",
                fmt: str = "wav", overwrite: bool = False, engine: str = "composer",
                model: str | None = None, allow_unknown_lineage: bool = False,
                engine_params: dict | None = None, workspace: Workspace | None = None,
                **controls) -> list[Job]:
    """The jobs of ``generate`` and ``jingle``: one per variant, every option checked first.

    Args:
        prompt: what the music should be.
        out: the output file as given (its extension is added from ``fmt`` when missing).
        kind: bed, jingle or sting.
        variants: arrangements of the same motif; they share the seed (so the motif too) and
            go to ``name-v1.wav``, ``name-v2.wav`` ...
        engine_params: the engine's own settings (``top_k`` ...), None for unset. A
            ``continue_from`` given as text (an asset id, or a file of a registered asset) is
            resolved against the workspace's ledger here, before any render.
        workspace: whose ledger resolves ``continue_from`` (default: the current workspace).
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
    if isinstance(params.get("continue_from"), (str, Path)):
        params["continue_from"] = continuation_source(str(params["continue_from"]),
                                                      workspace=workspace)
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


def continuation_source(value: str, *, workspace: Workspace | None = None) -> dict:
    """The registered asset a cue continues from, as the engine takes it (``{"id", "sha256",
    "license", "path"}``): ``value`` is an asset id (``asset-000041``) or a file whose decoded
    audio is a registered asset's. The license is the asset's as corrected in the ledger.

    Raises:
        ParameterError: no such asset, the asset has no license, or its file is gone.
    """
    from soundscape.audio.io import audio_sha256  # decodes audio: numpy and soundfile

    text = str(value).strip()
    if not text:
        raise ParameterError("--continue-from is empty: give a registered asset's id or file")
    file = Path(os.path.expanduser(text))
    with Ledger.open(workspace or open_workspace()) as ledger:
        if file.is_file():
            sha = audio_sha256(file)
            found = ledger.assets_by_sha(sha)
            asset = ledger.assets([found[0].id])[0] if found else None
            if asset is None:
                outputs = ledger.find_outputs(audio_sha256=sha)
                what = (f"it is soundscape output {outputs[0].id}, not a registered asset"
                        if outputs else "its audio matches no registered asset")
                raise ParameterError(
                    f"--continue-from {text}: {what}; register it first (`soundscape dataset "
                    "add NAME FOLDER --license EXPR`) so its license is on record")
            path = file.resolve()
        else:
            if re.fullmatch(r"[0-9a-fA-F]{64}", text):  # a decoded-audio sha256
                found = [a.id for a in ledger.assets_by_sha(text.lower())]
            else:
                found = [text] if text.startswith("asset-") else []
            found = ledger.assets(found[:1])
            if not found:
                raise ParameterError(
                    f"--continue-from {text}: neither a file nor a registered asset id "
                    "(asset-...) or audio sha256 (see `soundscape dataset show NAME`)")
            asset = found[0]
            path = Path(asset.path)
            if not path.is_file():
                raise ParameterError(f"--continue-from {text}: the asset's file {asset.path} is "
                                     "not there; give the file itself")
    if not asset.license:
        raise ParameterError(f"--continue-from {text}: asset {asset.id} has no license on record")
    return {"id": asset.id, "sha256": asset.audio_sha256, "license": asset.license,
            "path": str(path)}


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
