"""Command: ``train``: train a registered MusicGen model on a registered dataset, with lineage.

A thin call into :func:`soundscape.models.train_model`, with a progress bar that shows the loss.
``--nproc N`` re-invokes this same command as N ranks (the environment torchrun sets), so
``torchrun ... -m soundscape train`` across machines takes the same path; rank 0 alone prints,
checkpoints, exports and registers.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soundscape.cli.common import console, workspace
from soundscape.cli.ledger import open_ledger, say
# Library services are imported inside each command: `soundscape --help` loads none of them.


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("train")(train)


def train(
    model: Annotated[str, typer.Option(help="The registered model to start from.")],
    dataset: Annotated[str, typer.Option(help="The registered dataset to train on (NAME or "
                                              "NAME@VERSION).")],
    out: Annotated[str, typer.Option(help="Name of the new model (saved in the workspace).")],
    stage: Annotated[str, typer.Option(help="lm (the language model) or codec (EnCodec).")] = "lm",
    steps: Annotated[int, typer.Option(help="Optimiser steps in all.")] = 100,
    batch_size: Annotated[int, typer.Option(help="Segments per micro-batch, per process.")] = 4,
    lr: Annotated[Optional[float], typer.Option(
        help="Peak learning rate (default 1e-4 LM, 1e-3 LoRA, 3e-4 codec).")] = None,
    lora: Annotated[Optional[int], typer.Option(
        help="Train rank-N low-rank adapters only (LM stage), merged at export.")] = None,
    policy: Annotated[Optional[str], typer.Option(
        help="Refuse up front any asset this clearance policy rejects.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint of --out.")] = False,
    segment_seconds: Annotated[Optional[float], typer.Option(
        help="Training segment length (default 10 s LM, 1 s codec).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cuda or cpu (default: cuda when "
                                                       "available).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for batch sampling and adapters.")] = 0,
    validate_every: Annotated[Optional[int], typer.Option(
        help="Codec stage: held-out reconstruction every N steps (always before and at the "
             "end); LM stage: loss on held-out clips (10% of the dataset) every N steps.")] = None,
    allow_untrained_codec: Annotated[bool, typer.Option(
        help="LM stage: train on a codec that was never trained (for tests and experiments: "
             "its codes carry almost nothing).")] = False,
    nproc: Annotated[int, typer.Option(
        help="Processes on this machine (torch.distributed: NCCL on GPUs, gloo on CPUs).")] = 1,
    accumulate: Annotated[int, typer.Option(
        help="Micro-batches per optimiser step (gradient accumulation).")] = 1,
    warmup: Annotated[int, typer.Option(help="Steps of linear LR warm-up.")] = 0,
    schedule: Annotated[Optional[str], typer.Option(
        help="LR schedule: cosine or constant (default cosine with --warmup, else constant).")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(
        help="Checkpoint every N steps (default a quarter of the run).")] = None,
    checkpoint_minutes: Annotated[Optional[float], typer.Option(
        help="Also checkpoint whenever this many minutes passed since the last.")] = None,
    encode_workers: Annotated[int, typer.Option(
        help="Processes that pre-encode the dataset's codes into shards.")] = 1,
    reconstruction_steps: Annotated[int, typer.Option(
        help="Codec stage: the first N steps train on reconstruction alone (waveform L1 and "
             "multi-scale mel); the adversary joins after them.")] = 0,
) -> None:
    """Train a model on a dataset and register the result with its lineage and licenses."""
    from soundscape.engines.musicgen.distributed import env_world

    _, world, _ = env_world()
    if nproc > 1 and world == 1:
        from soundscape.engines.musicgen.train import check_scale_options

        check_scale_options(stage=stage, steps=steps, accumulate=accumulate, warmup=warmup,
                            schedule=schedule, validate_every=validate_every,
                            checkpoint_minutes=checkpoint_minutes,
                            encode_workers=encode_workers, world_size=nproc)
        _launch(nproc, model=model, dataset=dataset, out=out, stage=stage, steps=steps,
                batch_size=batch_size, lr=lr, lora=lora, policy=policy, resume=resume,
                segment_seconds=segment_seconds, device=device, seed=seed,
                accumulate=accumulate, warmup=warmup, schedule=schedule,
                validate_every=validate_every, checkpoint_every=checkpoint_every,
                checkpoint_minutes=checkpoint_minutes, encode_workers=encode_workers,
                allow_untrained_codec=allow_untrained_codec)
        return
    if nproc < 1:
        from soundscape.errors import ParameterError

        raise ParameterError(f"--nproc {nproc} must be 1 or more")
    from soundscape.engines.musicgen.distributed import init_from_env

    dist = init_from_env(device=device)
    options = dict(model=model, dataset=dataset, out=out, stage=stage, steps=steps,
                   batch_size=batch_size, lr=lr, lora_rank=lora, policy=policy, resume=resume,
                   device=device, segment_seconds=segment_seconds, seed=seed, dist=dist,
                   accumulate=accumulate, warmup=warmup, schedule=schedule,
                   validate_every=validate_every, checkpoint_every=checkpoint_every,
                   checkpoint_minutes=checkpoint_minutes, encode_workers=encode_workers,
                   allow_untrained_codec=allow_untrained_codec,
                   **({"reconstruction_steps": reconstruction_steps} if reconstruction_steps else {}))
    try:
        if not dist.is_main:
            _quiet_rank(dist, options)
            return
        outcome = _main_rank(steps, stage, options)
    finally:
        dist.close()
    _report(outcome)


def _launch(nproc: int, **params) -> None:
    """Run this command as ``nproc`` ranks and exit with the job's code."""
    from soundscape.cli.common import STATE
    from soundscape.engines.musicgen.distributed import launch

    argv = ["train"]
    for name, value in params.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        argv += [flag] if value is True else [flag, str(value)]
    # A --home given before `train` is not in argv: the ranks get it as SOUNDSCAPE_HOME.
    code = launch(argv, nproc, env={"SOUNDSCAPE_HOME": str(STATE.home)} if STATE.home else None)
    if code:
        raise typer.Exit(code=code)


def _quiet_rank(dist, options: dict) -> None:
    """A rank other than 0: it reads the ledger, trains its share and writes nothing."""
    from soundscape.errors import SoundscapeError
    from soundscape.models import train_model

    try:
        with open_ledger(reconcile=False) as ledger:  # reconcile writes: rank 0's job
            train_model(ledger, workspace(), **options)
    except SoundscapeError as exc:
        # Rank 0 meets the same refusal and says it once; the others leave with its code
        # quietly (the launcher names a rank that fails alone).
        raise typer.Exit(code=exc.exit_code) from None


def _main_rank(steps: int, stage: str, options: dict):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from soundscape.models import check_codec_trained, train_model

    ws = workspace()
    with open_ledger() as ledger:  # refused before the progress bar draws anything
        check_codec_trained(ledger, model=options["model"], dataset=options["dataset"],
                            stage=stage, allow_untrained_codec=options["allow_untrained_codec"])
    with open_ledger(reconcile=True) as ledger, Progress(
            TextColumn("[bold]train[/] {task.fields[stage]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
            console=console, transient=False) as bar:
        task = bar.add_task("train", total=steps, stage=stage, loss="-")

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, loss=f"{loss:.4f}")

        def on_validation(figures: dict) -> None:
            bar.console.print(f"  held-out at step {figures['step']}: mel distance "
                              f"{figures['mel_distance']:.4f}, SI-SNR {figures['si_snr_db']:.2f} dB")

        return train_model(ledger, ws, progress=on_step, on_validation=on_validation, **options)


def _report(outcome) -> None:
    result, record = outcome.result, outcome.record
    losses = result.losses
    head = sum(losses[:5]) / max(1, len(losses[:5]))
    tail = sum(losses[-5:]) / max(1, len(losses[-5:]))
    ranks = f" on {result.world_size} processes" if result.world_size > 1 else ""
    say(f"trained {record.name} ({record.id}) from {outcome.base.name} on "
        f"{outcome.dataset.name}@{outcome.dataset.version}: {result.steps} steps "
        f"({result.start_step} resumed){ranks}, loss {head:.4f} -> {tail:.4f} (mean of "
        f"first/last 5), {result.seconds:.1f} s")
    if result.val_losses:
        step, value = result.val_losses[-1]
        say(f"  validation loss {value:.4f} at step {step} (held-out clips)")
    say(f"  {record.path}; license {record.license}; base {record.base_model} "
        f"({record.base_model_license})")
    if result.validation:
        first, last = result.validation[0], result.validation[-1]
        say(f"  held-out reconstruction ({result.settings['codec']['heldout']['clips']} clips): "
            f"mel distance {first['mel_distance']:.4f} -> {last['mel_distance']:.4f}, SI-SNR "
            f"{first['si_snr_db']:.2f} -> {last['si_snr_db']:.2f} dB (untrained -> step "
            f"{last['step']})")
    for note in result.notes:
        say(f"  note: {note}")
