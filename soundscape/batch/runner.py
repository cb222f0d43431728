"""Run an episode's cue list: plan the outputs, decide what each needs, and send them through.

The driver (this process) is the single ledger writer. It reconciles what an earlier crash left,
plans every output with its content key, records what is complete but unrecorded, and hands
the rest to :func:`soundscape.pipeline.run` with a local worker pool or Ray
(:mod:`soundscape.batch.executors`); a cue that fails is reported and the others go on.

Resuming: an output whose file, sidecar and ledger record all match its content key is skipped;
one whose file and sidecar match but whose record is missing is recorded without rendering;
anything else renders again (over the old file). Nothing is ever recorded twice: the ledger's
``record_output`` is idempotent on (audio_sha256, path).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from soundscape import pipeline
from soundscape.audio.io import audio_sha256
from soundscape.batch.cuelist import AUDIO_FORMAT, Cue, CueList
from soundscape.batch.executors import LocalPool, RayCluster
from soundscape.canonical import canonical_json
from soundscape.config import Workspace
from soundscape.delivery import Delivery, record_delivery, sidecar_path_for
from soundscape.errors import OutputError, ParameterError, SoundscapeError
from soundscape.journal import Journal
from soundscape.models import engine_identity
from soundscape.rights.clearance import LineageReader
from soundscape.rights.ledger import Ledger

EXECUTORS = ("local", "ray")
# Bump when the content key's recipe changes, so every output is checked afresh.
CONTENT_KEY_VERSION = 1

RENDER, RECORD, SKIP = "render", "record", "skip"


@dataclass(frozen=True)
class Output:
    """One planned output file of a batch: a cue (or one variant of it) and what to do with it.

    ``action`` is ``render`` (new or changed), ``record`` (file and sidecar complete and current,
    but not in the ledger) or ``skip`` (up to date); ``reason`` says why in a few words.
    """

    cue: Cue
    variant: int
    job: pipeline.Job
    engine: dict
    action: str
    reason: str
    record_id: str | None = None

    @property
    def label(self) -> str:
        """The cue id, with the variant number when the cue has several."""
        return self.cue.id if len(self.cue.specs) == 1 else f"{self.cue.id}-v{self.variant + 1}"


@dataclass
class Result:
    """What became of one output: ``rendered``, ``recorded``, ``skipped`` or ``failed``."""

    output: Output
    status: str
    delivery: Delivery | None = None
    verdict: object | None = None
    error: str | None = None
    seconds: float = 0.0


class Reporter:
    """Progress callbacks from :func:`run_batch`; the defaults do nothing (the CLI draws bars)."""

    def planned(self, outputs: Sequence[Output]) -> None:
        """Called once with the whole plan, before anything is sent out."""

    def started(self, output: Output) -> None:
        """An output was sent to a worker."""

    def progress(self, output: Output, fraction: float) -> None:
        """A worker reports how far its output is (0..1)."""

    def finished(self, result: Result) -> None:
        """An output is done (recorded, skipped or failed)."""


@dataclass
class BatchReport:
    """The outcome of a batch, outputs in cue-list order."""

    cuelist: CueList
    out_dir: Path
    results: list[Result] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "failed"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts


# --- content keys and the plan --------------------------------------------------------------

def content_key(job: pipeline.Job, engine: dict) -> str:
    """SHA-256 of everything that decides an output's audio and its rights facts.

    The resolved spec (prompt, intent, seed, duration, loop, motif, variant, production, episode,
    cue), the preset and format, the engine's name and version, the model and its checkpoint hash,
    the air date and territories (they go into the sidecar and the record).
    """
    data = {
        "v": CONTENT_KEY_VERSION,
        "spec": job.spec.describe(),
        "preset": job.preset,
        "format": job.fmt,
        "engine": engine,
        "air_date": job.air_date,
        "territories": list(job.territories),
    }
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def plan(cuelist: CueList, out_dir: str | Path, *, ledger: Ledger | None = None) -> list[Output]:
    """Every output of the cue list, with its content key and whether it needs rendering.

    Args:
        cuelist: the validated cue list (restricted with ``select`` for ``--only``).
        out_dir: the folder the files go to.
        ledger: the open ledger, to find existing records and model hashes; None plans without
            it (every complete output then shows as ``record``).
    """
    out_dir = Path(out_dir)
    production = cuelist.production
    engines: dict[tuple, dict] = {}
    outputs: list[Output] = []
    for cue in cuelist.cues:
        for variant, (spec, name) in enumerate(zip(cue.specs, cue.files)):
            ident = (spec.engine, spec.model)
            if ident not in engines:
                engines[ident] = engine_identity(spec.engine, spec.model, ledger=ledger).describe()
            job = pipeline.Job(spec=spec, path=out_dir / name, preset=production.preset,
                               fmt=AUDIO_FORMAT, overwrite=True, air_date=production.air_date,
                               territories=production.territory)
            key = content_key(job, engines[ident])
            job = pipeline.Job(spec=spec, path=job.path, preset=job.preset, fmt=job.fmt,
                               overwrite=True, air_date=job.air_date,
                               territories=job.territories, content_key=key)
            action, reason, record_id = _state(job, ledger)
            outputs.append(Output(cue=cue, variant=variant, job=job, engine=engines[ident],
                                  action=action, reason=reason, record_id=record_id))
    return outputs


def _state(job: pipeline.Job, ledger: Ledger | None) -> tuple[str, str, str | None]:
    """What an output needs: (action, reason, record id when up to date)."""
    if not job.path.is_file():
        return RENDER, "new", None
    sidecar = read_sidecar(sidecar_path_for(job.path))
    if sidecar is None:
        return RENDER, "no sidecar", None
    if sidecar.get("content_key") != job.content_key:
        return RENDER, "changed", None
    try:
        actual = audio_sha256(job.path)
    except Exception:  # noqa: BLE001 - any decode failure means the file must be made again
        return RENDER, "file does not decode", None
    if actual != sidecar.get("audio_sha256"):
        return RENDER, "file differs from its sidecar", None
    if ledger is None:
        return RECORD, "complete, not checked against the ledger", None
    # The ledger knows an output by (audio_sha256, path). When a change of parameters leaves the
    # audio identical (a tempo a pad does not use), the first record stands for it.
    path = str(job.path.resolve())
    for record in ledger.find_outputs(audio_sha256=actual):
        if record.path == path:
            return SKIP, "up to date", record.id
    return RECORD, "complete but not in the ledger", None


def remove_stale_temp_files(outputs: Sequence[Output], ledger: Ledger | None) -> list[Path]:
    """Delete hidden temp files a killed run left beside the outputs; return what went.

    Atomic writes leave ``.<name>.<random>.part`` (audio) or ``.<name>.tmp<random>`` (sidecars)
    when killed mid-write. The ledger's reconcile removes the ones it knows by its own pattern;
    this catches every ``.<name>.*`` of the batch's outputs, except beside an output that a live
    process is still writing (its pending entry survived reconcile).
    """
    busy = Journal.of(ledger).busy() if ledger is not None else set()
    removed = []
    for output in outputs:
        path = output.job.path
        if str(path.resolve()) in busy:
            continue
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*"):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def read_sidecar(path: Path) -> dict | None:
    """A sidecar's JSON, or None when missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- the batch ------------------------------------------------------------------------------

def run_batch(cuelist: CueList, out_dir: str | Path, *, workspace: Workspace,
              executor: str = "local", workers: int | None = None,
              ray_address: str | None = None, reporter: Reporter | None = None) -> BatchReport:
    """Render every cue that needs it, record each output, and clear it under the production's policy.

    Args:
        cuelist: the validated cue list (already restricted for ``--only``).
        out_dir: the output folder (created when missing).
        workspace: the workspace whose ledger records the outputs.
        executor: ``local`` (a pool of worker processes) or ``ray``.
        workers: worker processes (local) or CPUs asked of a local Ray; default the CPU count.
        ray_address: a Ray cluster to join (``ray://...`` or ``auto``); None starts Ray locally.
        reporter: progress callbacks.

    Returns:
        The report; a failed cue is reported there and does not stop the others.
    """
    if executor not in EXECUTORS:
        raise ParameterError(f"unknown executor {executor!r}: choose {' or '.join(EXECUTORS)}")
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ParameterError(f"--workers {workers} must be 1 or more")
    reporter = reporter or Reporter()
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {exc.strerror}") from None
    started = time.perf_counter()
    report = BatchReport(cuelist=cuelist, out_dir=out_dir)
    ledger = pipeline.open_ledger(workspace)
    try:
        outputs = plan(cuelist, out_dir, ledger=ledger)
        to_render = [o for o in outputs if o.action == RENDER]
        pipeline.check_jobs([o.job for o in to_render], workspace=workspace, models=False)
        remove_stale_temp_files(outputs, ledger)
        reporter.planned(outputs)
        recorder = _Recorder(ledger, cuelist, reporter)
        results = {id(o): recorder.existing(o) for o in outputs if o.action != RENDER}
        pool = (LocalPool(workers) if executor == "local"
                else RayCluster(workers, address=ray_address))
        watcher = _Watcher(to_render, recorder, results)
        pipeline.run([o.job for o in to_render], workspace=workspace, executor=pool,
                     ledger=ledger, check=False, watcher=watcher)
        report.results = [results[id(o)] for o in outputs]
    finally:
        ledger.close()
    report.wall_seconds = time.perf_counter() - started
    return report


class _Recorder:
    """Driver side: records outputs, reads existing ones, and asks for each clearance verdict."""

    def __init__(self, ledger: Ledger, cuelist: CueList, reporter: Reporter):
        self.ledger, self.production, self.reporter = ledger, cuelist.production, reporter

    def verdict(self, record_id: str | None):
        if record_id is None:
            return None
        try:
            record = self.ledger.get_output(record_id)
            return LineageReader(self.ledger, [record]).verdict(
                record, self.production.policy, air_date=self.production.air_date,
                territories=self.production.territory or None)
        except SoundscapeError as exc:
            return f"not checked: {exc}"

    def existing(self, output: Output) -> Result:
        """An output that needs no rendering: up to date, or complete and only to be recorded."""
        sidecar = read_sidecar(sidecar_path_for(output.job.path))
        if output.action == RECORD:
            delivery = pipeline.finish(output.job, sidecar, None, self.ledger)
            status = "recorded"
        else:
            delivery = record_delivery(sidecar, output.job)
            delivery.record_id = output.record_id
            status = "skipped"
        return self.finished(Result(output, status, delivery=delivery,
                                    verdict=self.verdict(delivery.record_id)))

    def finished(self, result: Result) -> Result:
        self.reporter.finished(result)
        return result


class _Watcher(pipeline.Watcher):
    """The pipeline's per-job events, as the batch's outputs and results."""

    def __init__(self, outputs: Sequence[Output], recorder: _Recorder, results: dict):
        self.output_of = {id(o.job): o for o in outputs}
        self.recorder, self.results = recorder, results

    def started(self, job: pipeline.Job) -> None:
        self.recorder.reporter.started(self.output_of[id(job)])

    def progress(self, job: pipeline.Job, fraction: float) -> None:
        self.recorder.reporter.progress(self.output_of[id(job)], fraction)

    def finished(self, job: pipeline.Job, delivery: Delivery | None, error: str | None,
                 seconds: float) -> None:
        output = self.output_of[id(job)]
        if delivery is None:
            result = Result(output, "failed", error=error, seconds=seconds)
        else:
            result = Result(output, "rendered", delivery=delivery,
                            verdict=self.recorder.verdict(delivery.record_id), seconds=seconds)
        self.results[id(output)] = self.recorder.finished(result)
