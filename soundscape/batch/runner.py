"""Run an episode's cue list: plan the outputs, render them in worker processes or on Ray, record them.

The driver (this process) is the single ledger writer. It reconciles what an earlier crash left,
plans every output with its content key, journals each output it will render as pending
(:func:`soundscape.pipeline.begin`), sends the rendering out (workers run
:func:`soundscape.pipeline.produce`, which touches files only) and records each result as it
comes back (:func:`soundscape.pipeline.finish`).

Resuming: an output whose file, sidecar and ledger record all match its content key is skipped;
one whose file and sidecar match but whose record is missing is recorded without rendering;
anything else renders again (over the old file). Nothing is ever recorded twice: the ledger's
``record_output`` is idempotent on (audio_sha256, path).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from soundscape import pipeline
from soundscape.canonical import canonical_json
from soundscape.batch.cuelist import AUDIO_FORMAT, Cue, CueList
from soundscape.errors import ParameterError, SoundscapeError

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
    delivery: pipeline.Delivery | None = None
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


def engine_identity(name: str, model: str | None, *, ledger=None) -> dict:
    """Name, version, model and model hash of the engine a cue renders with.

    Raises:
        ParameterError: a musicgen model the ledger does not know.
    """
    if name == "composer":
        from soundscape.engines.composer import ComposerEngine

        return {"name": "composer", "version": ComposerEngine.version, "model": None,
                "model_sha256": None}
    if name == "musicgen":
        from soundscape.engines.musicgen.engine import engine_version

        record = ledger.get_model(model) if ledger is not None and model else None
        if record is None:
            raise ParameterError(f"model {model!r} is not registered in the ledger "
                                 f"(see 'soundscape model list')")
        return {"name": "musicgen", "version": engine_version(), "model": model,
                "model_sha256": _model_sha256(record)}
    raise ParameterError(f"unknown engine {name!r}")


def _model_sha256(record) -> str | None:
    if record.lm_sha256 and record.compression_sha256:
        from soundscape.engines.musicgen.checkpoint import combined_sha256

        return combined_sha256(record.lm_sha256, record.compression_sha256)
    return record.lm_sha256


def plan(cuelist: CueList, out_dir: str | Path, *, ledger=None) -> list[Output]:
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
                engines[ident] = engine_identity(spec.engine, spec.model, ledger=ledger)
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


def _state(job: pipeline.Job, ledger) -> tuple[str, str, str | None]:
    """What an output needs: (action, reason, record id when up to date)."""
    from soundscape.audio.io import audio_sha256
    from soundscape.delivery import sidecar_path_for

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


def remove_stale_temp_files(outputs: Sequence[Output], ledger) -> list[Path]:
    """Delete hidden temp files a killed run left beside the outputs; return what went.

    Atomic writes leave ``.<name>.<random>.part`` (audio) or ``.<name>.tmp<random>`` (sidecars)
    when killed mid-write. The ledger's reconcile removes the ones it knows by its own pattern;
    this catches every ``.<name>.*`` of the batch's outputs, except beside an output that a live
    process is still writing (its pending entry survived reconcile).
    """
    import glob

    busy = {entry.get("audio") for entry in ledger.pending_entries()} if ledger is not None else set()
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


# --- tasks ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Task:
    """Outputs rendered by one ``pipeline.produce`` call: one composer cue, or every musicgen cue
    of one model (the engine batches those sharing a duration into one forward pass)."""

    index: int
    outputs: tuple[Output, ...]

    @property
    def jobs(self) -> list[pipeline.Job]:
        return [o.job for o in self.outputs]

    @property
    def wants_gpu(self) -> bool:
        return self.outputs[0].job.spec.engine == "musicgen"


def make_tasks(outputs: Sequence[Output]) -> list[_Task]:
    """Group the outputs to render into tasks (musicgen by model, composer one per output)."""
    tasks: list[_Task] = []
    by_model: dict[str, list[Output]] = {}
    for output in outputs:
        if output.action != RENDER:
            continue
        spec = output.job.spec
        if spec.engine == "musicgen":
            by_model.setdefault(spec.model or "", []).append(output)
        else:
            tasks.append(_Task(len(tasks), (output,)))
    for group in by_model.values():
        tasks.append(_Task(len(tasks), tuple(group)))
    # The longest work first, so the pool's last task is a short one.
    tasks.sort(key=lambda t: -sum(o.job.spec.duration for o in t.outputs))
    return [_Task(i, t.outputs) for i, t in enumerate(tasks)]


# Set in each local worker process: where progress goes back to the driver.
_PROGRESS_QUEUE = None


# Imported once by the fork server, so each worker starts as a fork of it instead of paying for
# numpy, scipy and the composer again (seconds per worker on a busy machine). torch is left out:
# only musicgen workers need it, and a process should not fork after torch has started threads.
WORKER_PRELOAD = ["soundscape.batch.runner", "soundscape.delivery", "soundscape.audio.io",
                  "soundscape.audio.master", "soundscape.engines.composer", "soundscape.config"]


def _worker_init(queue, driver_pid: int) -> None:
    """Local worker start-up: report progress through ``queue``; die with the driver.

    A batch killed with ``kill -9`` must not leave workers writing files behind the rerun's
    back. Nothing else would stop them: a worker's parent is the fork server, which lives as long
    as any worker does, and its task queue never reports end-of-file (each worker holds both
    ends). So a watcher thread kills the worker the moment the driver is gone.
    """
    import threading

    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue
    threading.Thread(target=_die_with, args=(driver_pid,), name="die-with-driver",
                     daemon=True).start()


def _die_with(pid: int) -> None:
    """Block until process ``pid`` has exited, then SIGKILL this process."""
    import select
    import signal

    try:
        # A pidfd turns readable the instant the process exits (Linux 5.3+), zombie or not.
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    except (AttributeError, OSError):
        fd = -1
    if fd is not None and fd >= 0:
        select.select([fd], [], [])
    elif fd == -1:
        while _alive(pid):
            time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _produce_local(task_index: int, jobs: list[pipeline.Job], home: str | None) -> list[dict]:
    """Worker side: render, master and write the task's files; return their sidecars."""
    from soundscape.config import open_workspace

    def progress(stage: str, fraction: float) -> None:
        if _PROGRESS_QUEUE is not None:
            _PROGRESS_QUEUE.put((task_index, fraction))

    return pipeline.produce(jobs, workspace=open_workspace(home) if home else None,
                            progress=progress)


def _produce_bytes(jobs: list[pipeline.Job], home: str | None) -> list[tuple[dict, bytes]]:
    """Ray worker side: render into a private folder and send back each file's bytes and sidecar.

    A Ray worker may run on another machine with no view of the output folder; the driver puts
    the files in place, so only the driver writes there.
    """
    from dataclasses import replace

    from soundscape.config import open_workspace

    with tempfile.TemporaryDirectory(prefix="soundscape-batch-") as tmp:
        local = [replace(job, path=Path(tmp) / job.path.name) for job in jobs]
        sidecars = pipeline.produce(local, workspace=open_workspace(home) if home else None)
        return [(sidecar, job.path.read_bytes()) for sidecar, job in zip(sidecars, local)]


def _place(job: pipeline.Job, sidecar: dict, data: bytes) -> None:
    """Driver side of a Ray result: the audio renamed into place complete, then its sidecar."""
    from soundscape.atomic import write_bytes_atomic, write_json_atomic
    from soundscape.delivery import sidecar_path_for

    write_bytes_atomic(job.path, data)
    write_json_atomic(sidecar_path_for(job.path), sidecar)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, SoundscapeError):
        return str(exc)
    cause = getattr(exc, "cause", None)  # Ray wraps the worker's exception
    if isinstance(cause, BaseException):
        return _describe_error(cause)
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return last.splitlines()[-1] if last else type(exc).__name__


# --- the batch ------------------------------------------------------------------------------

def run_batch(cuelist: CueList, out_dir: str | Path, *, workspace, executor: str = "local",
              workers: int | None = None, ray_address: str | None = None,
              reporter: Reporter | None = None) -> BatchReport:
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
        from soundscape.errors import OutputError

        raise OutputError(f"cannot create the output folder {out_dir}: {exc.strerror}") from None
    started = time.perf_counter()
    report = BatchReport(cuelist=cuelist, out_dir=out_dir)
    ledger = pipeline.open_ledger(workspace)
    try:
        outputs = plan(cuelist, out_dir, ledger=ledger)
        pipeline.check_jobs([o.job for o in outputs if o.action == RENDER], workspace=workspace,
                            models=False)
        remove_stale_temp_files(outputs, ledger)
        reporter.planned(outputs)
        results: dict[int, Result] = {}
        index_of = {id(o): i for i, o in enumerate(outputs)}
        recorder = _Recorder(ledger, cuelist, reporter)
        for i, output in enumerate(outputs):
            if output.action != RENDER:
                results[i] = recorder.existing(output)
        tasks = make_tasks(outputs)
        tokens = dict(zip((id(o) for t in tasks for o in t.outputs),
                          pipeline.begin([o.job for t in tasks for o in t.outputs], ledger)))
        home = str(workspace.home) if workspace is not None else None
        run = _run_local if executor == "local" else _run_ray

        def on_result(task: _Task, payload, error: BaseException | None, seconds: float,
                      placed: bool) -> None:
            for n, output in enumerate(task.outputs):
                token = tokens[id(output)]
                if error is None:
                    try:
                        sidecar = payload[n]
                        if not placed:
                            sidecar, data = sidecar
                            _place(output.job, sidecar, data)
                        results[index_of[id(output)]] = recorder.rendered(output, sidecar, token,
                                                                          seconds)
                        continue
                    except SoundscapeError as exc:
                        # Left pending: the next run's reconcile records the file or cleans it up.
                        result = Result(output, "failed", error=str(exc), seconds=seconds)
                else:
                    ledger.pending_end(token)  # nothing was written (files appear atomically)
                    result = Result(output, "failed", error=_describe_error(error), seconds=seconds)
                reporter.finished(result)
                results[index_of[id(output)]] = result

        run(tasks, on_result, reporter=reporter, workers=workers, home=home,
            ray_address=ray_address)
        report.results = [results[i] for i in range(len(outputs))]
    finally:
        ledger.close()
    report.wall_seconds = time.perf_counter() - started
    return report


class _Recorder:
    """Driver side: records outputs, reads existing ones, and asks for each clearance verdict."""

    def __init__(self, ledger, cuelist: CueList, reporter: Reporter):
        self.ledger, self.production, self.reporter = ledger, cuelist.production, reporter

    def verdict(self, record_id: str | None):
        if record_id is None:
            return None
        try:
            return self.ledger.clear(record_id, self.production.policy,
                                     air_date=self.production.air_date,
                                     territories=self.production.territory or None)
        except SoundscapeError as exc:
            return f"not checked: {exc}"

    def existing(self, output: Output) -> Result:
        """An output that needs no rendering: up to date, or complete and only to be recorded."""
        from soundscape.delivery import record_delivery, sidecar_path_for

        sidecar = read_sidecar(sidecar_path_for(output.job.path))
        if output.action == RECORD:
            delivery = pipeline.finish(output.job, sidecar, None, self.ledger)
            status = "recorded"
        else:
            delivery = record_delivery(sidecar, output.job)
            delivery.record_id = output.record_id
            status = "skipped"
        result = Result(output, status, delivery=delivery, verdict=self.verdict(delivery.record_id))
        self.reporter.finished(result)
        return result

    def rendered(self, output: Output, sidecar: dict, token, seconds: float) -> Result:
        delivery = pipeline.finish(output.job, sidecar, token, self.ledger)
        result = Result(output, "rendered", delivery=delivery,
                        verdict=self.verdict(delivery.record_id), seconds=seconds)
        self.reporter.finished(result)
        return result


OnResult = Callable[[_Task, object, "BaseException | None", float, bool], None]


def _run_local(tasks: list[_Task], on_result: OnResult, *, reporter: Reporter, workers: int,
               home: str | None, ray_address: str | None) -> None:
    """A pool of worker processes; results are recorded as each task finishes."""
    import multiprocessing
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    if not tasks:
        return
    # 'forkserver': workers fork from a clean server process that has only imported the
    # rendering modules, never from this one (no copied locks, threads or ledger connection).
    # 'spawn' where there is no fork server (macOS keeps it too; Windows has only spawn).
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(WORKER_PRELOAD)
    else:
        context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    begun: dict = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                             initializer=_worker_init,
                             initargs=(progress_queue, os.getpid())) as pool:
        futures = {}
        for task in tasks:
            futures[pool.submit(_produce_local, task.index, task.jobs, home)] = task
        by_index = {t.index: t for t in tasks}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            while True:
                try:
                    index, fraction = progress_queue.get_nowait()
                except queue_mod.Empty:
                    break
                task = by_index[index]
                if index not in begun:
                    begun[index] = time.perf_counter()
                    for output in task.outputs:
                        reporter.started(output)
                for output in task.outputs:
                    reporter.progress(output, fraction)
            for future in done:
                task = futures[future]
                seconds = time.perf_counter() - begun.get(task.index, time.perf_counter())
                try:
                    payload, error = future.result(), None
                except BaseException as exc:  # noqa: BLE001 - a failed cue must not stop the rest
                    payload, error = None, exc
                on_result(task, payload, error, seconds, True)
    progress_queue.close()


def _run_ray(tasks: list[_Task], on_result: OnResult, *, reporter: Reporter, workers: int,
             home: str | None, ray_address: str | None) -> None:
    """Each task a Ray task; musicgen tasks ask for a GPU when the cluster has one."""
    if not tasks:
        return
    try:
        import ray
    except ImportError:
        raise ParameterError("--executor ray needs Ray: pip install 'ray>=2.40'") from None
    started_here = False
    if not ray.is_initialized():
        if ray_address:
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
        else:
            # A private Ray on this machine's cores: no dashboard, bound to the loopback address,
            # and no usage statistics sent anywhere.
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, _node_ip_address="127.0.0.1")
        started_here = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        remote = ray.remote(_produce_bytes)
        refs = {}
        for task in tasks:
            options = {"num_cpus": 1, "max_retries": 0}
            if task.wants_gpu and gpus:
                options["num_gpus"] = 1
            refs[remote.options(**options).remote(task.jobs, home)] = task
            for output in task.outputs:
                reporter.started(output)
        submitted = time.perf_counter()
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for ref in done:
                task = refs[ref]
                try:
                    payload, error = ray.get(ref), None
                except BaseException as exc:  # noqa: BLE001 - a failed cue must not stop the rest
                    payload, error = None, exc
                on_result(task, payload, error, time.perf_counter() - submitted, False)
    finally:
        if started_here:
            ray.shutdown()
