"""Running one training job over several processes: the process group, the launcher, preemption.

``soundscape train --nproc N`` re-invokes the same command N times with the environment torchrun
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), so one code path
serves both: ``--nproc`` on one machine and ``torchrun --nnodes M --nproc-per-node N -m soundscape
train ...`` across machines. Each process joins a ``torch.distributed`` group (NCCL on GPUs, gloo
on CPUs); rank 0 alone writes (checkpoints, the export, the ledger), the others wait at barriers.

Preemption: a SIGTERM (what schedulers and torchrun send) sets a flag that the training loop reads
after each step; the ranks agree on it in the step's one all-reduce, so all stop at the same step.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from soundscape.errors import ParameterError, TrainingStopped

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Rank 0 encodes the whole catalogue while the others wait at a barrier: allow it hours, not the
# 30-minute default of torch.distributed.
GROUP_TIMEOUT = timedelta(hours=6)


@dataclass
class DistContext:
    """Where this process stands in its job. A lone process is rank 0 of 1 and needs no group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False
    _stop: dict = field(default_factory=lambda: {"requested": False, "signal": None})

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, requested: str | None = None):
        """This rank's device: its own GPU (``cuda:LOCAL_RANK``) when CUDA is used, else the CPU."""
        import torch

        wanted = requested or ("cuda" if torch.cuda.is_available() else "cpu")
        if torch.device(wanted).type == "cuda":
            if not torch.cuda.is_available():
                raise ParameterError("--device cuda asked for, but this machine has no CUDA GPU")
            if self.distributed:
                return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device(wanted)

    # --- collectives (each a no-op in a lone process) ---

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def mean_and_stop(self, value: float, device) -> tuple[float, bool]:
        """The mean of ``value`` over ranks, and whether any rank was asked to stop (one call)."""
        stop = self._stop["requested"]
        if not self.distributed:
            return value, stop
        import torch
        import torch.distributed as dist

        t = torch.tensor([value, 1.0 if stop else 0.0], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t[0]) / self.world_size, bool(t[1] > 0)

    # --- preemption ---

    @property
    def stop_signal(self) -> str | None:
        return self._stop["signal"]

    @contextmanager
    def stop_on_sigterm(self):
        """While inside: a SIGTERM asks the loop to stop after its step instead of killing it."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_term(signum, frame):
            self._stop.update(requested=True, signal=signal.Signals(signum).name)

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the environment torchrun sets; (0, 1, 0) without it."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ParameterError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
    if world < 1 or not 0 <= rank < world:
        raise ParameterError(f"RANK {rank} must lie in [0, WORLD_SIZE {world})")
    return rank, world, local


def init_from_env(*, device: str | None = None) -> DistContext:
    """Join the job's process group when the environment names one (else a lone rank 0).

    Args:
        device: the requested device; NCCL serves CUDA, gloo the CPU.
    """
    rank, world, local = env_world()
    if world == 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ParameterError(f"WORLD_SIZE is {world} but {name} is not set: start the job "
                                 f"with torchrun or soundscape train --nproc")
    ctx = DistContext(rank=rank, world_size=world, local_rank=local)
    use_cuda = ctx.device(device).type == "cuda"
    ctx.backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(ctx.device(device))
    if not dist.is_initialized():
        dist.init_process_group(backend=ctx.backend, init_method="env://", rank=rank,
                                world_size=world, timeout=GROUP_TIMEOUT)
        ctx.owns_group = True
    return ctx


# --- the launcher -----------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port free on this machine now, for rank 0's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(argv: list[str], nproc: int, *, env: dict[str, str] | None = None) -> int:
    """Run ``soundscape ARGV`` as ``nproc`` ranks on this machine and wait for them.

    ``env`` adds variables for every rank (the workspace a ``--home`` option chose).

    A SIGTERM or Ctrl-C here is passed on to every rank (each finishes its step and checkpoints);
    when one rank fails, the others are stopped. Returns the job's exit code: rank 0's, or the
    first failing rank's.
    """
    if nproc < 1:
        raise ParameterError(f"--nproc {nproc} must be 1 or more")
    port = free_port()
    procs = []
    base = {**{k: v for k, v in os.environ.items() if k not in ENV_VARS}, **(env or {})}
    for rank in range(nproc):
        env = {**base, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-m", "soundscape", *argv], env=env))

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    on_main = threading.current_thread() is threading.main_thread()
    previous = {}
    if on_main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, forward)
    try:
        codes: dict[int, int] = {}
        failed = None
        while len(codes) < nproc:
            for rank, p in enumerate(procs):
                if rank in codes:
                    continue
                try:
                    rc = p.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
                codes[rank] = rc
                if rc not in (0, TrainingStopped.exit_code) and failed is None:
                    failed = rank
                    if rank:  # rank 0 reports its own errors; the others are quiet
                        print(f"error: rank {rank} of {nproc} failed (exit code {rc}); "
                              f"stopping the job", file=sys.stderr, flush=True)
                    # A rank that died leaves the others blocked in a collective, where a
                    # SIGTERM would only set their stop flag: kill them.
                    for q in procs:
                        if q.poll() is None:
                            q.kill()
        return codes[failed] if failed is not None else codes[0]
    finally:
        if on_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        for p in procs:
            if p.poll() is None:
                p.kill()
