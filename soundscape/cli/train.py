"""Command: ``train``: train a registered MusicGen model on a registered dataset, with lineage.

A thin call into :func:`soundscape.models.train_model`, with a progress bar
that shows the loss.
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
    batch_size: Annotated[int, typer.Option(help="Segments per step.")] = 4,
    lr: Annotated[Optional[float], typer.Option(
        help="Learning rate (default 1e-4 LM, 1e-3 LoRA, 3e-4 codec).")] = None,
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
        help="Codec stage: measure held-out reconstruction every N steps (always before and "
             "at the end).")] = None,
    allow_untrained_codec: Annotated[bool, typer.Option(
        help="LM stage: train on a codec that was never trained (for tests and experiments: "
             "its codes carry almost nothing).")] = False,
) -> None:
    """Train a model on a dataset and register the result with its lineage and licenses."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from soundscape.models import check_codec_trained, train_model

    ws = workspace()
    with open_ledger() as ledger:  # refused before the progress bar draws anything
        check_codec_trained(ledger, model=model, dataset=dataset, stage=stage,
                            allow_untrained_codec=allow_untrained_codec)
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

        outcome = train_model(ledger, ws, model=model, dataset=dataset, out=out, stage=stage,
                              steps=steps, batch_size=batch_size, lr=lr, lora_rank=lora,
                              policy=policy, resume=resume, progress=on_step, device=device,
                              segment_seconds=segment_seconds, seed=seed,
                              validate_every=validate_every, on_validation=on_validation,
                              allow_untrained_codec=allow_untrained_codec)
    result, record = outcome.result, outcome.record
    losses = result.losses
    head = sum(losses[:5]) / max(1, len(losses[:5]))
    tail = sum(losses[-5:]) / max(1, len(losses[-5:]))
    say(f"trained {record.name} ({record.id}) from {outcome.base.name} on "
        f"{outcome.dataset.name}@{outcome.dataset.version}: {result.steps} steps "
        f"({result.start_step} resumed), loss {head:.4f} -> {tail:.4f} (mean of first/last 5), "
        f"{result.seconds:.1f} s")
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
