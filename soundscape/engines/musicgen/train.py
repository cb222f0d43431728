"""Training a MusicGen model on a registered dataset: the LM stage (full or LoRA) and the codec stage.

``stage="lm"`` encodes the dataset's audio with the model's own compression model (the codes are
cached on disk, keyed by the audio's sha256 and the compression checkpoint's hash), then trains
the language model with cross-entropy over the codebooks through ``LMModel.compute_predictions``,
conditioned on each asset's description (classifier-free-guidance dropout on, as MusicGen
trains). ``lora_rank`` trains low-rank adapters only and merges them at export.

``stage="codec"`` trains the compression model (EnCodec) itself, with audiocraft's adversarial
set-up, on segments streamed from disk, and reports reconstruction on held-out clips: see
:mod:`soundscape.engines.musicgen.codec_train`. Train the codec first, then the LM: an LM trained
on one codec's codes does not fit another's, and the LM stage refuses a codec never trained
(``allow_untrained_codec`` is for tests and experiments).

Both stages save a resumable checkpoint every ``checkpoint_every`` steps and export the result as
an audiocraft checkpoint folder with its config (the training settings included under
``soundscape.training``), which ``MusicGen.get_pretrained(out_dir)`` loads.
"""

from __future__ import annotations

import json
import math
import shutil
import time
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
from soundscape.engines.musicgen.lora import add_lora, lora_parameters, merge_lora
from soundscape.errors import AudioError, ModelError, ParameterError

STAGES = ("lm", "codec")
# Defaults per stage: learning rates as audiocraft's recipes use them for full training
# (MusicGen 1e-4, EnCodec 3e-4); adapters learn faster, at 1e-3.
DEFAULT_LR = {"lm": 1e-4, "lora": 1e-3, "codec": 3e-4}
DEFAULT_SEGMENT_SECONDS = {"lm": 10.0, "codec": codec_train.DEFAULT_SEGMENT_SECONDS}
WORK_DIR = ".training"
STATE_FILE = "last.pt"

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


def _read_audio(path: Path, sample_rate: int, channels: int) -> torch.Tensor:
    import soundfile as sf
    from audiocraft.data.audio_utils import convert_audio

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read training audio {path}: {exc}") from None
    if data.shape[0] == 0:
        raise AudioError(f"training audio {path} is empty")
    return convert_audio(torch.from_numpy(data.T.copy()), rate, sample_rate, channels)


# Long files are encoded a minute at a time so memory stays bounded.
_ENCODE_CHUNK_SECONDS = 60.0


@torch.no_grad()
def encode_dataset(compression_model, items: list[_Item], *, cache_dir: Path,
                   compression_sha256: str, device) -> tuple[list[torch.Tensor], int]:
    """Codes [K, T] of every item, from the cache when there (returns the codes and cache hits)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out, hits = [], 0
    sr, ch = compression_model.sample_rate, compression_model.channels
    for item in items:
        cached = cache_dir / f"{item.sha256}-{compression_sha256[:16]}.pt"
        if cached.is_file():
            try:
                codes = torch.load(cached, map_location="cpu", weights_only=True)["codes"]
                out.append(codes.long())
                hits += 1
                continue
            except Exception:  # a torn or foreign cache file: encode again and replace it
                pass
        wav = _read_audio(item.path, sr, ch)
        step = int(_ENCODE_CHUNK_SECONDS * sr)
        pieces = []
        for start in range(0, wav.shape[-1], step):
            codes, _ = compression_model.encode(wav[None, :, start:start + step].to(device))
            pieces.append(codes[0].cpu())
        codes = torch.cat(pieces, dim=-1)
        _atomic_torch_save({"codes": codes.to(torch.int16 if codes.max() < 2 ** 15 else torch.int32),
                            "audio_sha256": item.sha256,
                            "compression_sha256": compression_sha256}, cached)
        out.append(codes.long())
    return out, hits


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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


def _lm_batch(all_codes, items, rows, segment, device):
    K = all_codes[0].shape[0]
    codes = torch.zeros((len(rows), K, segment), dtype=torch.long)
    valid = torch.zeros((len(rows), K, segment), dtype=torch.bool)
    texts = []
    for r, (index, start, length) in enumerate(rows):
        codes[r, :, :length] = all_codes[index][:, start:start + length]
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
          on_validation: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``model_dir`` on ``dataset_assets`` and export the result to ``out_dir``.

    Args:
        model_dir: the base model's audiocraft checkpoint folder (never modified).
        dataset_assets: the dataset's assets (ledger ``AssetRecord``s or dicts with ``path``,
            ``audio_sha256`` and ``description``; a missing description is read from the
            sidecar JSON next to the audio).
        stage: "lm" or "codec".
        steps: total optimiser steps (with ``resume``, counting the steps already done).
        batch_size: segments per step.
        lr: learning rate (default per stage, see :data:`DEFAULT_LR`).
        lora_rank: LM stage only: train rank-``lora_rank`` adapters instead of all weights.
        out_dir: the folder to export to (also holds ``.training/`` for resuming).
        resume: continue from ``out_dir/.training/last.pt``.
        progress: called with (step, steps, loss) after every step.
        device: default cuda when available, else cpu.
        seed: seeds batch sampling (step by step, so a resumed run draws the same batches).
        segment_seconds: training segment length (default 10 s for the LM, capped at the
            model's window; 1 s for the codec).
        checkpoint_every: steps between resumable checkpoints (default a quarter of the run).
        cache_dir: where encoded codes are cached (default ``out_dir/../.codes-cache``).
        extra_config: recorded under ``soundscape.training`` in the exported config.
        allow_untrained_codec: LM stage: train on a codec never trained (tests, experiments).
        validate_every: codec stage: steps between held-out measurements.
        on_validation: codec stage: called with each held-out measurement.

    Raises:
        ParameterError: a bad setting or an empty dataset.
        ModelError: an unloadable base model, a codec stage on a model without a compression
            config, an LM stage on a codec never trained, or a resume that does not match the
            checkpoint found.
    """
    started = time.perf_counter()
    if stage not in STAGES:
        raise ParameterError(f"unknown training stage {stage!r}: choose lm or codec")
    if steps < 1 or batch_size < 1:
        raise ParameterError("steps and batch size must be 1 or more")
    if lora_rank is not None and (stage != "lm" or lora_rank < 1):
        raise ParameterError("LoRA adapters (rank 1 or more) apply to the LM stage only")
    model_dir = check_model_dir(model_dir)
    out_dir = Path(out_dir)
    if out_dir.resolve() == model_dir.resolve():
        raise ParameterError("the output folder must differ from the base model's folder")
    lr = float(lr if lr is not None else DEFAULT_LR["lora" if lora_rank else stage])
    if not lr > 0:
        raise ParameterError(f"learning rate {lr:g} must be positive")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    items = _items(dataset_assets)
    if stage == "lm" and not allow_untrained_codec:
        codec_train.require_trained_codec(model_dir)
    if stage == "codec":
        # The codec stage has a loop of its own (discriminator, balancer, held-out figures).
        done = codec_train.train_codec(
            model_dir, items, steps=steps, batch_size=batch_size, lr=lr, out_dir=out_dir,
            resume=resume, progress=progress, device=device, seed=seed,
            segment_seconds=segment_seconds, checkpoint_every=checkpoint_every,
            validate_every=validate_every, on_validation=on_validation,
            extra_config=extra_config)
        return TrainResult(out_dir=out_dir, stage=stage, steps=steps, start_step=done.start_step,
                           losses=done.losses, hashes=done.hashes, settings=done.settings,
                           assets=len(items), seconds=time.perf_counter() - started,
                           notes=done.notes, validation=done.validation)
    base_hashes = checkpoint_hashes(model_dir)
    work_dir = out_dir / WORK_DIR
    settings = {"stage": stage, "batch_size": batch_size, "lr": lr, "lora_rank": lora_rank,
                "seed": seed, "base_model_sha256": base_hashes["model"],
                "base_lm_sha256": base_hashes["lm"],
                "base_compression_sha256": base_hashes["compression"],
                "assets": sorted(i.sha256 for i in items)}
    state = _load_state(work_dir, settings) if resume else None
    if resume and state is None:
        raise ModelError(f"nothing to resume: no training checkpoint in {work_dir}")
    run = _LMRun(model_dir, items, device=device, lr=lr, lora_rank=lora_rank, seed=seed,
                 segment_seconds=segment_seconds,
                 cache_dir=Path(cache_dir) if cache_dir else out_dir.parent / ".codes-cache",
                 compression_sha256=base_hashes["compression"])
    losses: list[float] = []
    start_step = 0
    if state is not None:
        run.restore(state)
        losses = [float(x) for x in state["losses"]]
        start_step = int(state["step"])
    every = checkpoint_every or max(1, math.ceil(steps / 4))
    for step in range(start_step + 1, steps + 1):
        loss = run.step(step, batch_size)
        if not math.isfinite(loss):
            raise ModelError(f"training diverged at step {step} (loss {loss}); lower the "
                             f"learning rate (now {lr:g})")
        losses.append(loss)
        if progress is not None:
            progress(step, steps, loss)
        if step % every == 0 or step == steps:
            _save_state(work_dir, run.state(), step=step, losses=losses, settings=settings)
    training = {**{k: v for k, v in settings.items() if k != "assets"}, "steps": steps,
                "assets": len(items), "final_loss": losses[-1] if losses else None,
                "segment_seconds": run.segment_seconds, **(extra_config or {})}
    hashes = run.export(out_dir, training)
    notes = list(run.notes)
    return TrainResult(out_dir=out_dir, stage=stage, steps=steps, start_step=start_step,
                       losses=losses, hashes=hashes, settings=training, assets=len(items),
                       segments_from_cache=run.cache_hits, seconds=time.perf_counter() - started,
                       lora_rank=lora_rank, notes=notes)


def _save_state(work_dir: Path, run_state: dict, *, step: int, losses: list[float],
                settings: dict) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save({**run_state, "step": step, "losses": torch.tensor(losses),
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


class _LMRun:
    """One LM training run: the model, its optimiser and the encoded dataset."""

    def __init__(self, model_dir, items, *, device, lr, lora_rank, seed, segment_seconds,
                 cache_dir, compression_sha256):
        self.model_dir, self.items, self.device, self.seed = model_dir, items, device, seed
        self.notes: list[str] = []
        self.compression_model, self.lm, self.cfg = load_modules(model_dir, device=device,
                                                                 dtype="float32")
        self.codes, self.cache_hits = encode_dataset(
            self.compression_model, items, cache_dir=cache_dir,
            compression_sha256=compression_sha256, device=device)
        frame_rate = self.compression_model.frame_rate
        window = float(self.cfg.dataset.segment_duration)
        seconds = min(segment_seconds or DEFAULT_SEGMENT_SECONDS["lm"], window)
        lengths = [c.shape[-1] for c in self.codes]
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

    def step(self, step: int, batch_size: int) -> float:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        rows = _crop_batch(self.lengths, batch_size, self.segment, generator)
        codes, valid, texts = _lm_batch(self.codes, self.items, rows, self.segment, self.device)
        loss = lm_loss(self.lm, codes, valid, texts)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        return float(loss.detach())

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
