"""Where a batch renders: a pool of local worker processes, or Ray tasks on a cluster.

Both are :class:`soundscape.pipeline.Executor` objects: workers run
:func:`soundscape.pipeline.produce` (files only) and the driver records each result as it comes
back, so the driver stays the single ledger writer. A Ray worker may run on another machine with
no view of the output folder: it renders into a private folder and the driver puts the files in
place.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
import select
import signal
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from soundscape import pipeline
from soundscape.atomic import write_bytes_atomic, write_json_atomic
from soundscape.config import Workspace, open_workspace
from soundscape.delivery import sidecar_path_for
from soundscape.errors import ParameterError

# Imported once by the fork server, so each worker starts as a fork of it instead of paying for
# numpy, scipy and the composer again (seconds per worker on a busy machine). torch is left out:
# only musicgen workers need it, and a process should not fork after torch has started threads.
WORKER_PRELOAD = ["soundscape.batch.executors", "soundscape.pipeline", "soundscape.delivery",
                  "soundscape.audio.io", "soundscape.audio.master", "soundscape.engines.composer",
                  "soundscape.config"]

# Set in each local worker process: where progress goes back to the driver.
_PROGRESS_QUEUE = None


class LocalPool:
    """A pool of worker processes on this machine; results are recorded as each task finishes.

    Args:
        workers: processes in the pool (at most one per task).
    """

    parallel = True

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, tasks: Sequence[pipeline.Task], events: pipeline.TaskEvents, *,
            workspace: Workspace | None) -> None:
        if not tasks:
            return
        home = str(workspace.home) if workspace is not None else None
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
        by_index = {t.index: t for t in tasks}
        with ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=context,
                                 initializer=_worker_init,
                                 initargs=(progress_queue, os.getpid())) as pool:
            futures = {pool.submit(_produce_local, task.index, task.jobs, home): task
                       for task in tasks}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        index, stage, fraction = progress_queue.get_nowait()
                    except queue_mod.Empty:
                        break
                    task = by_index[index]
                    if index not in begun:
                        begun[index] = time.perf_counter()
                        events.started(task)
                    events.progress(task, stage, fraction)
                for future in done:
                    task = futures[future]
                    seconds = time.perf_counter() - begun.get(task.index, time.perf_counter())
                    try:
                        sidecars, error = future.result(), None
                    except BaseException as exc:  # noqa: BLE001 - a failed cue must not stop the rest
                        sidecars, error = None, exc
                    events.done(task, sidecars, error, seconds)
        progress_queue.close()


class RayCluster:
    """Each task a Ray task; tasks of engines that want a GPU ask for one when there is one.

    Args:
        workers: CPUs asked of a Ray started here.
        address: a Ray cluster to join (``ray://...`` or ``auto``); None starts Ray locally.
    """

    parallel = True

    def __init__(self, workers: int, *, address: str | None = None):
        self.workers = workers
        self.address = address

    def run(self, tasks: Sequence[pipeline.Task], events: pipeline.TaskEvents, *,
            workspace: Workspace | None) -> None:
        if not tasks:
            return
        try:
            import ray  # optional, and seconds to import: only a Ray batch pays for it
        except ImportError:
            from soundscape.extras import missing_extra

            raise missing_extra("ray") from None
        home = str(workspace.home) if workspace is not None else None
        started_here = False
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                # A private Ray on this machine's cores: no dashboard, bound to the loopback
                # address, and no usage statistics sent anywhere.
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
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
                events.started(task)
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
                    sidecars = None
                    if error is None:
                        sidecars = [_place(job, sidecar, data)
                                    for job, (sidecar, data) in zip(task.jobs, payload)]
                    events.done(task, sidecars, error, time.perf_counter() - submitted)
        finally:
            if started_here:
                ray.shutdown()


# --- worker side ------------------------------------------------------------------------------

def _worker_init(progress_queue, driver_pid: int) -> None:
    """Local worker start-up: report progress through ``progress_queue``; die with the driver.

    A batch killed with ``kill -9`` must not leave workers writing files behind the rerun's
    back. Nothing else would stop them: a worker's parent is the fork server, which lives as long
    as any worker does, and its task queue never reports end-of-file (each worker holds both
    ends). So a watcher thread kills the worker the moment the driver is gone.
    """
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    threading.Thread(target=_die_with, args=(driver_pid,), name="die-with-driver",
                     daemon=True).start()


def _die_with(pid: int) -> None:
    """Block until process ``pid`` has exited, then SIGKILL this process."""
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


def _produce_local(task_index: int, jobs: Sequence[pipeline.Job], home: str | None) -> list[dict]:
    """Worker side: render, master and write the task's files; return their sidecars."""

    def progress(stage: str, fraction: float) -> None:
        if _PROGRESS_QUEUE is not None:
            _PROGRESS_QUEUE.put((task_index, stage, fraction))

    return pipeline.produce(list(jobs), workspace=open_workspace(home) if home else None,
                            progress=progress)


def _produce_bytes(jobs: Sequence[pipeline.Job], home: str | None) -> list[tuple[dict, bytes]]:
    """Ray worker side: render into a private folder and send back each file's sidecar and bytes."""
    with tempfile.TemporaryDirectory(prefix="soundscape-batch-") as tmp:
        local = [replace(job, path=Path(tmp) / job.path.name) for job in jobs]
        sidecars = pipeline.produce(local, workspace=open_workspace(home) if home else None)
        return [(sidecar, job.path.read_bytes()) for sidecar, job in zip(sidecars, local)]


def _place(job: pipeline.Job, sidecar: dict, data: bytes) -> dict:
    """Driver side of a Ray result: the audio renamed into place complete, then its sidecar."""
    write_bytes_atomic(job.path, data)
    write_json_atomic(sidecar_path_for(job.path), sidecar)
    return sidecar
