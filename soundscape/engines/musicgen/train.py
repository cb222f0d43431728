"""Training a MusicGen model on a registered dataset: the LM stage (full or LoRA) and the codec stage.

``stage="lm"`` encodes the dataset's audio with the model's own compression model into int16
memory-mapped shards (:mod:`.shards`, keyed by the audio's sha256 and the compression checkpoint's
hash, encoded by ``encode_workers`` processes), then trains
the language model with cross-entropy over the codebooks through ``LMModel.compute_predictions``,
conditioned on each asset's description (classifier-free-guidance dropout on, as MusicGen
trains). ``lora_rank`` trains low-rank adapters only and merges them at export.

``stage="codec"`` trains the compression model (EnCodec) itself, with audiocraft's adversarial
set-up, on segments streamed from disk, and reports reconstruction on held-out clips: see
:mod:`soundscape.engines.musicgen.codec_train`. Train the codec first, then the LM: an LM trained
on one codec's codes does not fit another's, and the LM stage refuses a codec never trained
(``allow_untrained_codec`` is for tests and experiments).

The LM stage runs on one process or many (:mod:`.distributed`: DDP, each rank its own batches,
rank 0 the only writer), with gradient accumulation, a warm-up and cosine LR schedule
(:mod:`.schedule`), bf16 autocast on GPUs, and validation on held-out clips.

Both stages save a resumable checkpoint every ``checkpoint_every`` steps (and every
``checkpoint_minutes``, and on SIGTERM) and export the result as
an audiocraft checkpoint folder with its config (the training settings included under
``soundscape.training``), which ``MusicGen.get_pretrained(out_dir)`` loads.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from soundscape.atomic import atomic_path
from soundscape.engines.musicgen import codec_train
from soundscape.engines.musicgen.checkpoint import (COMPRESSION_FILE, check_model_dir,
                                                    checkpoint_hashes, export_model, file_sha256,
                                                    load_modules, package_config, read_package)
from soundscape.engines.musicgen.conditioning import (Condition, condition_for_clip,
                                                       read_sidecar, to_attributes)
from soundscape.engines.musicgen.distributed import DistContext
from soundscape.engines.musicgen.lora import add_lora, lora_parameters, merge_lora
from soundscape.engines.musicgen.schedule import make_schedule
from soundscape.engines.musicgen.shards import (Clip, CodeShards, encode_to_shards, read_audio,
                                                store_dir)
from soundscape.errors import AudioError, ModelError, ParameterError, TrainingStopped

STAGES = ("lm", "codec")
# Defaults per stage: learning rates as audiocraft's recipes use them for full training
# (MusicGen 1e-4, EnCodec 3e-4); adapters learn faster, at 1e-3.
DEFAULT_LR = {"lm": 1e-4, "lora": 1e-3, "codec": 3e-4}
DEFAULT_SEGMENT_SECONDS = {"lm": 10.0, "codec": codec_train.DEFAULT_SEGMENT_SECONDS}
WORK_DIR = ".training"
STATE_FILE = "last.pt"
# Validation holds out this share of the clips (at least one), chosen by their audio hash so the
# same catalogue always gives the same split, whatever order the ledger lists it in.
HOLDOUT_FRACTION = 0.1

ProgressFn = Callable[[int, int, float], None]
"""Called after each step with (step, total steps, loss)."""


@dataclass
class TrainResult:
    """What a training run did.

    ``losses`` has one value per step from the first (earlier runs' included when resumed);
    ``start_step`` is how many steps were already done when this call began.
    """

    out_dir: Path
    stage: str
    steps: int
    start_step: int
    losses: list[float]
    hashes: dict[str, str]
    settings: dict
    assets: int
    segments_from_cache: int = 0
    seconds: float = 0.0
    lora_rank: int | None = None
    notes: list[str] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    world_size: int = 1
    is_main: bool = True
    # Per rank, in rank order: a hash of the batches it drew and of its final parameters.
    rank_batches_sha256: list[str] = field(default_factory=list)
    rank_params_sha256: list[str] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)
    """Codec stage: held-out reconstruction ``{"step", "mel_distance", "si_snr_db"}``, step 0
    being the codec as it came in."""


# --- the dataset ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Item:
    path: Path
    sha256: str
    description: Condition


def _field(asset, name: str, default=None):
    if isinstance(asset, dict):
        return asset.get(name, default)
    return getattr(asset, name, default)


def _items(dataset_assets: Sequence) -> list[_Item]:
    """Each asset's audio path, audio hash and text (its description, else its sidecar's)."""
    items = []
    for asset in dataset_assets:
        path = Path(str(_field(asset, "path") or ""))
        if not path.is_file():
            raise AudioError(f"training audio {path} is missing")
        sha = _field(asset, "audio_sha256") or _field(asset, "sha256") or file_sha256(path)
        # The clip's condition: its description (else its sidecar's, else its title) and, for
        # models with attribute conditioners, the mood, key, tempo, textures and instruments its
        # sidecar records (a corpus clip's) or the prompt parser reads in its text.
        sidecar = read_sidecar(path)
        text = _field(asset, "description") or sidecar.get("description") or _field(asset, "title")
        items.append(_Item(path, str(sha), condition_for_clip(sidecar, str(text).strip() if text
                                                              else None)))
    if not items:
        raise ParameterError("the dataset has no audio to train on")
    return items


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def batch_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator one rank draws one step's segments from: a function of seed, rank and step
    alone, so ranks draw different segments and a resumed run draws the same ones again."""
    import numpy as np

    # SeedSequence mixes the three into independent streams (no seed*K + step collisions).
    state = np.random.SeedSequence([seed, rank, step]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _crop_batch(lengths: list[int], batch_size: int, segment: int, generator: torch.Generator):
    """(item index, start, valid length) for each row: a random item, a random window in it."""
    rows = []
    for _ in range(batch_size):
        index = int(torch.randint(len(lengths), (1,), generator=generator))
        spare = max(lengths[index] - segment, 0)
        start = int(torch.randint(spare + 1, (1,), generator=generator))
        rows.append((index, start, min(segment, lengths[index] - start)))
    return rows


# --- the steps --------------------------------------------------------------------------------

def lm_loss(lm, codes: torch.Tensor, valid: torch.Tensor, descriptions: list):
    """MusicGen's training loss: cross-entropy per codebook over valid steps, averaged over K."""
    conditions = to_attributes(lm, descriptions)
    output = lm.compute_predictions(codes, conditions)
    mask = output.mask & valid
    total = codes.new_zeros((), dtype=torch.float32)
    for k in range(codes.shape[1]):
        logits_k = output.logits[:, k][mask[:, k]]
        total = total + F.cross_entropy(logits_k.float(), codes[:, k][mask[:, k]])
    return total / codes.shape[1]


def _lm_batch(shards: CodeShards, items, rows, segment, device):
    K = shards.n_q
    codes = torch.zeros((len(rows), K, segment), dtype=torch.long)
    valid = torch.zeros((len(rows), K, segment), dtype=torch.bool)
    texts = []
    for r, (index, start, length) in enumerate(rows):
        # int16 from the memory map, widened to int64 only for the rows of this batch.
        codes[r, :, :length] = torch.from_numpy(shards.window(index, start, length).astype("int64"))
        valid[r, :, :length] = True
        texts.append(items[index].description)
    return codes.to(device), valid.to(device), texts


# --- the run ----------------------------------------------------------------------------------

def train(model_dir: str | Path, dataset_assets: Sequence, *, stage: str = "lm", steps: int = 100,
          batch_size: int = 4, lr: float | None = None, lora_rank: int | None = None,
          out_dir: str | Path, resume: bool = False, progress: ProgressFn | None = None,
          device: str | None = None, seed: int = 0, segment_seconds: float | None = None,
          checkpoint_every: int | None = None, cache_dir: str | Path | None = None,
          extra_config: dict | None = None, allow_untrained_codec: bool = False,
          validate_every: int | None = None,
          on_validation: Callable[[dict], None] | None = None, accumulate: int = 1,
          warmup: int = 0, checkpoint_minutes: float | None = None, encode_workers: int = 1,
          schedule: str | None = None, dist: DistContext | None = None,
          reconstruction_steps: int = 0) -> TrainResult:
    """Train ``model_dir`` on ``dataset_assets`` and export the result to ``out_dir``.

    Args:
        model_dir: the base model's audiocraft checkpoint folder (never modified).
        dataset_assets: the dataset's assets (ledger ``AssetRecord``s or dicts with ``path``,
            ``audio_sha256`` and ``description``; a missing description is read from the
            sidecar JSON next to the audio).
        stage: "lm" or "codec".
        steps: total optimiser steps (with ``resume``, counting the steps already done).
        batch_size: segments per micro-batch, per process.
        lr: peak learning rate (default per stage, see :data:`DEFAULT_LR`).
        lora_rank: LM stage only: train rank-``lora_rank`` adapters instead of all weights.
        out_dir: the folder to export to (also holds ``.training/`` for resuming).
        resume: continue from ``out_dir/.training/last.pt``.
        progress: called with (step, steps, loss) after every step (on rank 0 only).
        device: default cuda when available, else cpu (each rank takes its own GPU).
        seed: seeds batch sampling (per rank and step, so a resumed run draws the same batches).
        segment_seconds: training segment length (default 10 s for the LM, capped at the
            model's window; 1 s for the codec).
        checkpoint_every: steps between resumable checkpoints (default a quarter of the run).
        cache_dir: where the pre-encoded code shards live (default ``out_dir/../.codes-cache``).
        extra_config: recorded under ``soundscape.training`` in the exported config.
        allow_untrained_codec: LM stage: train on a codec never trained (tests, experiments).
        validate_every: codec stage: steps between held-out measurements; LM stage: every this
            many steps, the loss on held-out clips.
        on_validation: codec stage: called with each held-out measurement.
        accumulate: LM stage: micro-batches whose gradients add up to one optimiser step (the
            step sees ``accumulate * batch_size`` segments per process).
        warmup: LM stage: steps of linear LR warm-up.
        schedule: LM stage: "cosine" (decay to zero by the last step) or "constant"; default
            cosine with a warm-up, constant without.
        checkpoint_minutes: LM stage: also checkpoint whenever this much wall time passed.
        reconstruction_steps: codec stage: the first this many steps train on reconstruction
            alone; the adversary joins after them.
        encode_workers: processes that pre-encode the dataset's codes.
        dist: this process's place in a multi-process job (default: a lone process).

    Raises:
        ParameterError: a bad setting or an empty dataset.
        ModelError: an unloadable base model, a codec stage on a model without a compression
            config, an LM stage on a codec never trained, or a resume that does not match the
            checkpoint found.
        TrainingStopped: a SIGTERM arrived; the step finished and the checkpoint was saved.
    """
    dist = dist or DistContext()
    # From here, not just in the loop: a SIGTERM while the model loads or codes are encoded
    # stops the run after its first step, with a checkpoint, instead of killing it.
    with dist.stop_on_sigterm():
        return _train(model_dir, dataset_assets, stage=stage, steps=steps, batch_size=batch_size,
                      lr=lr, lora_rank=lora_rank, out_dir=out_dir, resume=resume,
                      progress=progress, device=device, seed=seed,
                      segment_seconds=segment_seconds, checkpoint_every=checkpoint_every,
                      cache_dir=cache_dir, extra_config=extra_config, accumulate=accumulate,
                      warmup=warmup, validate_every=validate_every,
                      checkpoint_minutes=checkpoint_minutes, encode_workers=encode_workers,
                      schedule=schedule, dist=dist, allow_untrained_codec=allow_untrained_codec,
                      on_validation=on_validation, reconstruction_steps=reconstruction_steps)


def _train(model_dir, dataset_assets, *, stage, steps, batch_size, lr, lora_rank, out_dir, resume,
           progress, device, seed, segment_seconds, checkpoint_every, cache_dir, extra_config,
           accumulate, warmup, validate_every, checkpoint_minutes, encode_workers, schedule,
           dist: DistContext, allow_untrained_codec, on_validation,
           reconstruction_steps) -> TrainResult:
    started = time.perf_counter()
    if stage not in STAGES:
        raise ParameterError(f"unknown training stage {stage!r}: choose lm or codec")
    if steps < 1 or batch_size < 1:
        raise ParameterError("steps and batch size must be 1 or more")
    if lora_rank is not None and (stage != "lm" or lora_rank < 1):
        raise ParameterError("LoRA adapters (rank 1 or more) apply to the LM stage only")
    lr_schedule = check_scale_options(stage=stage, steps=steps, accumulate=accumulate,
                                      warmup=warmup, schedule=schedule,
                                      validate_every=validate_every,
                                      checkpoint_minutes=checkpoint_minutes,
                                      encode_workers=encode_workers,
                                      world_size=dist.world_size)
    model_dir = check_model_dir(model_dir)
    out_dir = Path(out_dir)
    if out_dir.resolve() == model_dir.resolve():
        raise ParameterError("the output folder must differ from the base model's folder")
    lr = float(lr if lr is not None else DEFAULT_LR["lora" if lora_rank else stage])
    if not lr > 0:
        raise ParameterError(f"learning rate {lr:g} must be positive")
    device = dist.device(device)
    items = _items(dataset_assets)
    if stage == "lm" and not allow_untrained_codec:
        codec_train.require_trained_codec(model_dir)
    if reconstruction_steps and stage != "codec":
        raise ParameterError("--reconstruction-steps applies to the codec stage")
    if stage == "codec":
        # The codec stage has a loop of its own (discriminator, balancer, held-out figures).
        done = codec_train.train_codec(
            model_dir, items, steps=steps, batch_size=batch_size, lr=lr, out_dir=out_dir,
            resume=resume, progress=progress, device=device, seed=seed,
            segment_seconds=segment_seconds, checkpoint_every=checkpoint_every,
            validate_every=validate_every, on_validation=on_validation,
            extra_config=extra_config, reconstruction_steps=reconstruction_steps)
        return TrainResult(out_dir=out_dir, stage=stage, steps=steps, start_step=done.start_step,
                           losses=done.losses, hashes=done.hashes, settings=done.settings,
                           assets=len(items), seconds=time.perf_counter() - started,
                           notes=done.notes, validation=done.validation)
    holdout: list[_Item] = []
    if validate_every:
        items, holdout = _split_holdout(items)
    base_hashes = checkpoint_hashes(model_dir)
    work_dir = out_dir / WORK_DIR
    settings = {"stage": stage, "batch_size": batch_size, "lr": lr, "lora_rank": lora_rank,
                "seed": seed, "base_model_sha256": base_hashes["model"],
                "base_lm_sha256": base_hashes["lm"],
                "base_compression_sha256": base_hashes["compression"],
                "assets": sorted(i.sha256 for i in items)}
    if stage == "lm":
        # Only where they differ from a plain run, so older checkpoints still resume.
        settings.update({k: v for k, v in (("accumulate", accumulate), ("warmup", warmup),
                                           ("holdout", sorted(i.sha256 for i in holdout)))
                         if v not in (1, 0, [])})
        if lr_schedule.decay:
            # A cosine is planned over the whole run: resuming to another length would bend it.
            settings.update(schedule="cosine", schedule_steps=steps)
    state = _load_state(work_dir, settings) if resume else None
    if resume and state is None:
        raise ModelError(f"nothing to resume: no training checkpoint in {work_dir}")
    cache = Path(cache_dir) if cache_dir else out_dir.parent / ".codes-cache"
    run = _LMRun(model_dir, items, device=device, lr=lr, lora_rank=lora_rank, seed=seed,
                 segment_seconds=segment_seconds, cache_dir=cache,
                 compression_sha256=base_hashes["compression"], dist=dist,
                 accumulate=accumulate, holdout=holdout, encode_workers=encode_workers)
    losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    start_step = 0
    if state is not None:
        run.restore(state)
        losses = [float(x) for x in state["losses"]]
        val_losses = [(int(a), float(b)) for a, b in state.get("val_losses", torch.zeros(0, 2))]
        start_step = int(state["step"])
    every = checkpoint_every or max(1, math.ceil(steps / 4))
    last_save = time.monotonic()

    def save(step: int) -> None:
        nonlocal last_save
        if dist.is_main:
            _save_state(work_dir, run.state(), step=step, losses=losses, settings=settings,
                        val_losses=val_losses)
        last_save = time.monotonic()

    with dist.stop_on_sigterm():
        for step in range(start_step + 1, steps + 1):
            if stage == "lm":
                run.set_lr(lr_schedule.lr(lr, step))
            loss = run.step(step, batch_size)
            loss, stop = dist.mean_and_stop(loss, device)
            if not math.isfinite(loss):
                raise ModelError(f"training diverged at step {step} (loss {loss}); lower the "
                                 f"learning rate (now {lr:g})")
            losses.append(loss)
            if progress is not None and dist.is_main:
                progress(step, steps, loss)
            if validate_every and (step % validate_every == 0 or step == steps):
                val_losses.append((step, run.validate()))
            timed = (checkpoint_minutes is not None
                     and time.monotonic() - last_save >= checkpoint_minutes * 60)
            if stop or timed or step % every == 0 or step == steps:
                save(step)
            if stop:
                dist.barrier()  # no rank exits before rank 0's checkpoint is on disk
                raise TrainingStopped(
                    f"stopped by {dist.stop_signal or 'SIGTERM'} after step {step} of {steps}; "
                    f"checkpoint saved in {work_dir / STATE_FILE}: run the same command with "
                    f"--resume to continue")
    training = {**{k: v for k, v in settings.items() if k not in ("assets", "holdout")},
                "steps": steps, "assets": len(items), "final_loss": losses[-1] if losses else None,
                "segment_seconds": run.segment_seconds, "world_size": dist.world_size,
                "precision": getattr(run, "precision", "float32"),
                "segments_per_step": batch_size * accumulate * dist.world_size,
                # Flat scalars: the ledger reads these back from the exported config.
                **({"validate_every": validate_every, "validation_clips": len(holdout),
                    "validation_loss": val_losses[-1][1] if val_losses else None}
                   if validate_every else {}),
                **(extra_config or {})}
    batches = dist.gather(getattr(run, "batches_sha256", lambda: "")())
    params = dist.gather(getattr(run, "params_sha256", lambda: "")())
    if dist.distributed:
        # The proof DDP kept the ranks in step: every rank ended on the same weights.
        training["ranks_params_equal"] = len(set(params)) == 1
    hashes = run.export(out_dir, training) if dist.is_main else None
    hashes = dist.broadcast(hashes)  # the other ranks wait here while rank 0 writes
    if dist.distributed:
        # For the ledger's record of the run (JSON there; the exported config keeps the flag).
        training.update(rank_params_sha256=params, rank_batches_sha256=batches)
    notes = list(run.notes)
    return TrainResult(out_dir=out_dir, stage=stage, steps=steps, start_step=start_step,
                       losses=losses, hashes=hashes, settings=training, assets=len(items),
                       segments_from_cache=run.cache_hits, seconds=time.perf_counter() - started,
                       lora_rank=lora_rank, notes=notes, val_losses=val_losses,
                       world_size=dist.world_size, is_main=dist.is_main,
                       rank_batches_sha256=batches, rank_params_sha256=params)


def check_scale_options(*, stage: str, steps: int, accumulate: int = 1, warmup: int = 0,
                        schedule: str | None = None, validate_every: int | None = None,
                        checkpoint_minutes: float | None = None, encode_workers: int = 1,
                        world_size: int = 1):
    """Refuse bad multi-process and schedule options before any work (the launcher calls this
    too, so a mistake is one line from one process); returns the LR schedule."""
    if accumulate < 1 or encode_workers < 1 or world_size < 1:
        raise ParameterError("--nproc, --accumulate and --encode-workers must be 1 or more")
    if validate_every is not None and validate_every < 1:
        raise ParameterError("--validate-every must be 1 or more")
    if checkpoint_minutes is not None and not checkpoint_minutes > 0:
        raise ParameterError("--checkpoint-minutes must be positive")
    if stage == "codec" and (world_size > 1 or accumulate > 1 or warmup or schedule
                             or checkpoint_minutes):
        raise ParameterError("--nproc, --accumulate, --warmup, --schedule and "
                             "--checkpoint-minutes apply to the LM stage; the codec stage runs in "
                             "one process")
    return make_schedule(schedule if stage == "lm" else "constant", total=max(1, steps),
                         warmup=warmup)


def _split_holdout(items: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """(training clips, held-out clips): the held-out ones are those with the lowest hashes."""
    distinct = sorted({i.sha256 for i in items})
    if len(distinct) < 2:
        raise ParameterError("--validate-every needs 2 clips or more: one to train on, one to "
                             "hold out")
    held = set(distinct[:max(1, round(len(distinct) * HOLDOUT_FRACTION))])
    return [i for i in items if i.sha256 not in held], [i for i in items if i.sha256 in held]


def _save_state(work_dir: Path, run_state: dict, *, step: int, losses: list[float],
                settings: dict, val_losses: Sequence[tuple[int, float]] = ()) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    # float64, so a resumed run reports the very losses the first part reported.
    _atomic_torch_save({**run_state, "step": step,
                        "losses": torch.tensor(losses, dtype=torch.float64),
                        "val_losses": torch.tensor(list(val_losses), dtype=torch.float64
                                                   ).reshape(-1, 2),
                        "settings": json.dumps(settings, sort_keys=True)}, work_dir / STATE_FILE)


def _load_state(work_dir: Path, settings: dict) -> dict | None:
    path = work_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot resume from {path}: {str(exc).splitlines()[0]}") from None
    saved = json.loads(state["settings"])
    changed = sorted(k for k in settings if saved.get(k) != settings[k])
    if changed:
        raise ModelError(f"cannot resume from {path}: it was made with other "
                         f"{', '.join(changed)}; start afresh in another --out folder")
    return state


class _LossModule(torch.nn.Module):
    """The LM's training loss as a module's forward, so DistributedDataParallel can wrap it (DDP
    syncs gradients for what runs through ``forward``, and the LM trains through
    ``compute_predictions``)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, codes, valid, texts):
        return lm_loss(self.lm, codes, valid, texts)


class _LMRun:
    """One LM training run: the model (DDP-wrapped in a multi-process job), its optimiser and the
    dataset's codes, streamed from memory-mapped shards."""

    def __init__(self, model_dir, items, *, device, lr, lora_rank, seed, segment_seconds,
                 cache_dir, compression_sha256, dist: DistContext | None = None,
                 accumulate: int = 1, holdout: Sequence[_Item] = (), encode_workers: int = 1):
        self.model_dir, self.items, self.device, self.seed = model_dir, list(items), device, seed
        self.dist = dist or DistContext()
        self.accumulate = accumulate
        self.holdout = list(holdout)
        self.notes: list[str] = []
        self.compression_model, self.lm, self.cfg = load_modules(model_dir, device=device,
                                                                 dtype="float32")
        # bf16 autocast where the GPU has it (weights and optimiser stay float32); the CPU trains
        # in float32, as its bf16 kernels are slower than float32 ones.
        self.autocast = (device.type == "cuda" and torch.cuda.is_bf16_supported())
        self.precision = "bf16-autocast" if self.autocast else "float32"
        store = store_dir(cache_dir, compression_sha256)
        clips = [Clip(i.path, i.sha256) for i in self.items + self.holdout]
        cached = 0
        if self.dist.is_main:  # one writer of the store; the other ranks wait, then read it
            cached = encode_to_shards(model_dir, clips, store=store, workers=encode_workers,
                                      device=str(device))
        self.cache_hits = self.dist.broadcast(cached)
        self.shards = CodeShards(store, [i.sha256 for i in self.items])
        self.held_shards = CodeShards(store, [i.sha256 for i in self.holdout]) if self.holdout else None
        frame_rate = self.compression_model.frame_rate
        window = float(self.cfg.dataset.segment_duration)
        seconds = min(segment_seconds or DEFAULT_SEGMENT_SECONDS["lm"], window)
        lengths = [int(n) for n in self.shards.lengths]
        self.segment = max(1, min(int(seconds * frame_rate), max(lengths)))
        self.segment_seconds = float(self.segment / frame_rate)
        self.lengths = lengths
        self.lora_rank = lora_rank
        if lora_rank:
            add_lora(self.lm, lora_rank, generator=torch.Generator().manual_seed(seed))
            params = list(lora_parameters(self.lm).values())
            self.optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
        else:
            params = [p for p in self.lm.parameters() if p.requires_grad]
            # MusicGen's recipe: AdamW (0.9, 0.95), weight decay 0.1, gradients clipped at 1.
            self.optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
        self.params = params
        self.lm.train()
        if self.dist.rank:
            # Each rank its own classifier-free-guidance coin, so ranks do not all drop the
            # condition on the same steps.
            self.lm.cfg_dropout.rng.manual_seed(seed * 1_000_003 + self.dist.rank)
        self.loss_module = _LossModule(self.lm)
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # DDP broadcasts rank 0's weights here, so every rank starts from the same model.
            self.loss_module = DistributedDataParallel(
                self.loss_module, device_ids=[device.index] if device.type == "cuda" else None)
        self._batches = hashlib.sha256()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _autocast(self):
        if self.autocast:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    def accumulate_gradients(self, step: int, batch_size: int) -> float:
        """Draw the step's ``accumulate * batch_size`` segments for this rank and leave their
        gradient (averaged over micro-batches and, under DDP, over ranks) in the parameters.
        Returns this rank's loss, the mean over its micro-batches."""
        generator = batch_generator(self.seed, step, self.dist.rank)
        rows = _crop_batch(self.lengths, batch_size * self.accumulate, self.segment, generator)
        self._batches.update(repr((step, rows)).encode())
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for m in range(self.accumulate):
            part = rows[m * batch_size:(m + 1) * batch_size]
            codes, valid, texts = _lm_batch(self.shards, self.items, part, self.segment,
                                            self.device)
            last = m == self.accumulate - 1
            # DDP all-reduces on the last micro-batch only: one sync per optimiser step.
            sync = (self.loss_module.no_sync() if self.dist.distributed and not last
                    else nullcontext())
            with sync:
                with self._autocast():
                    loss = self.loss_module(codes, valid, texts)
                (loss / self.accumulate).backward()
            total += float(loss.detach())
        return total / self.accumulate

    def step(self, step: int, batch_size: int) -> float:
        loss = self.accumulate_gradients(step, batch_size)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        return loss

    @torch.no_grad()
    def validate(self) -> float:
        """The conditional loss on the held-out clips: each clip's first window (eval mode, so no
        condition dropout and no random draws that would shift a resumed run)."""
        if self.held_shards is None:
            return float("nan")
        self.lm.eval()
        try:
            totals = []
            for index, item in enumerate(self.holdout):
                length = min(self.segment, int(self.held_shards.lengths[index]))
                codes, valid, texts = _lm_batch(self.held_shards, self.holdout,
                                                [(index, 0, length)], self.segment, self.device)
                with self._autocast():
                    totals.append(float(lm_loss(self.lm, codes, valid, texts)))
            return sum(totals) / len(totals)
        finally:
            self.lm.train()

    def batches_sha256(self) -> str:
        """A hash of every (step, clip, start, length) this rank drew."""
        return self._batches.hexdigest()

    def params_sha256(self) -> str:
        from soundscape.engines.musicgen.checkpoint import state_sha256

        return state_sha256(self.lm)

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        if self.lora_rank:
            return {k: v.detach().cpu() for k, v in lora_parameters(self.lm).items()}
        return {k: v.detach().cpu() for k, v in self.lm.state_dict().items()}

    def state(self) -> dict:
        return {"model": self._trainable_state(), "optimizer": self.optimizer.state_dict(),
                "cfg_dropout_rng": self.lm.cfg_dropout.rng.get_state(),
                "att_dropout_rng": self.lm.att_dropout.rng.get_state()}

    def restore(self, state: dict) -> None:
        if self.lora_rank:
            own = dict(self.lm.named_parameters())
            with torch.no_grad():
                for name, value in state["model"].items():
                    own[name].copy_(value)
        else:
            self.lm.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lm.cfg_dropout.rng.set_state(state["cfg_dropout_rng"])
        self.lm.att_dropout.rng.set_state(state["att_dropout_rng"])

    def export(self, out_dir: Path, training: dict) -> dict[str, str]:
        self.lm.eval()
        if self.lora_rank:
            merge_lora(self.lm)
        cfg = _export_cfg(self.cfg, training)
        out_dir.mkdir(parents=True, exist_ok=True)
        # The compression model did not change: copy its file byte for byte, so the new model's
        # compression hash is the base's and the codes cache stays valid for it.
        shutil.copyfile(self.model_dir / COMPRESSION_FILE, out_dir / COMPRESSION_FILE)
        return export_model(None, self.lm, cfg, out_dir,
                            compression_file=out_dir / COMPRESSION_FILE)


def _export_cfg(cfg, training: dict):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    cfg.device = "cpu"
    cfg.dtype = "float32"
    if cfg.get("soundscape") is None:
        cfg.soundscape = {}
    # Through JSON so the config holds plain values only (numpy scalars upset OmegaConf).
    cfg.soundscape.training = json.loads(json.dumps(training, default=float))
    return cfg
