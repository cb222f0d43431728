"""The codec stage: EnCodec trained as audiocraft's CompressionSolver trains it, on streamed audio.

Each step draws segments from disk (:class:`~soundscape.engines.musicgen.segments.SegmentSampler`),
encodes and decodes them, trains audiocraft's multi-scale STFT discriminator (MS-STFT-D) on the
real and decoded segments with hinge losses, then trains the codec on four balanced losses:
the discriminator's hinge loss and its feature-matching L1 (the adversarial part), waveform L1
and audiocraft's multi-scale mel loss (the reconstruction part). audiocraft's ``Balancer`` scales
each loss's gradient at the decoder's output so that the weights below are shares of the
gradient, whatever each loss's scale. The quantizer's commitment penalty is backpropagated on
its own, outside the balancer, as CompressionSolver does.

A deterministic share of the dataset's clips is held out (chosen by audio hash, so a clip stays
on its side as the dataset grows). Reconstruction on them, mel distance (log-mel L1) and SI-SNR,
is measured before the first step (the codec as it came in), every ``validate_every`` steps and at
the end, and written into the exported compression file's config (``soundscape.codec``) so that
the LM stage, ``model show`` and lineage can see that this codec was trained and how well.

Both optimisers, the discriminator, the balancer's running gradient norms, the losses and the
held-out figures are in the resumable checkpoint, so ``resume`` continues exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from soundscape.atomic import atomic_path
from soundscape.engines.musicgen.checkpoint import (CODEC_RECORD_KEY, COMPRESSION_FILE, LM_FILE,
                                                    checkpoint_hashes, codec_record, export_model,
                                                    package_config, read_package)
from soundscape.engines.musicgen.segments import SegmentSampler, clip_info, read_window
from soundscape.errors import ModelError, ParameterError

# audiocraft config/solver/compression/default.yaml, the recipe of its EnCodec models.
# losses: shares of the gradient at the decoder's output (through the Balancer).
LOSS_WEIGHTS = {"adv": 4.0, "feat": 4.0, "l1": 0.1, "msspec": 2.0}
# balancer: rescale each loss's gradient to its share of a unit total norm, EMA of the norms.
BALANCER = {"balance_grads": True, "total_norm": 1.0, "ema_decay": 0.999, "per_batch_item": True}
# msstftd: the discriminator (filters may be overridden by the model config's own msstftd).
MSSTFTD = {"filters": 32, "norm": "weight_norm", "n_ffts": [1024, 2048, 512, 256, 128],
           "hop_lengths": [256, 512, 128, 64, 32], "win_lengths": [1024, 2048, 512, 256, 128],
           "activation": "LeakyReLU", "activation_params": {"negative_slope": 0.3}}
# msspec: the multi-scale mel loss (windows 2^6 .. 2^10).
MSSPEC = {"range_start": 6, "range_end": 11, "n_mels": 64, "f_min": 64, "f_max": None,
          "normalized": True, "alphas": False, "floor_level": 1e-5}
# mel: the single-scale log-mel L1 audiocraft reports; our held-out "mel distance".
MEL = {"n_fft": 1024, "hop_length": 256, "win_length": 1024, "n_mels": 64, "f_min": 64,
       "f_max": None, "normalized": False, "floor_level": 1e-5}
# optim: Adam (0.5, 0.9) for the codec and the discriminator alike, no gradient clipping.
ADAM_BETAS = (0.5, 0.9)
DEFAULT_SEGMENT_SECONDS = 1.0  # dataset.segment_duration

# Held out: this share of the clips (at least one), chosen by audio hash.
HOLDOUT_FRACTION = 0.1
# Measured on: at most this many held-out clips, this many evenly spaced windows of each, of
# this length, so validation costs the same whatever the catalogue's size.
HELDOUT_MAX_CLIPS = 32
HELDOUT_WINDOWS = 2
HELDOUT_WINDOW_SECONDS = 1.0

# A never-trained codec trained with reconstruction steps starts from a data-dependent
# initialisation (see initialise_codec): biases zeroed and the encoder's output layer scaled so
# that its latents have this RMS on the first batch. At PyTorch's default initialisation the biases set the latents (over time they
# vary by about 0.04 against 0.82 between channels), and a decoder fed near-constant latents
# learns one output for every input; 0.25 is the scale measured to train (docs/musicgen.md).
INITIAL_LATENT_RMS = 0.25
# After the reconstruction steps, the codebooks are seeded by k-means on this many batches.
SEED_BATCHES = 4

# The same place the LM stage keeps its resumable checkpoint.
WORK_DIR = ".training"
STATE_FILE = "last.pt"

ProgressFn = Callable[[int, int, float], None]
ValidationFn = Callable[[dict], None]
"""Called with each held-out measurement: ``{"step", "mel_distance", "si_snr_db"}``."""


@dataclass
class CodecResult:
    """What a codec run did (train.py turns it into its TrainResult)."""

    losses: list[float]
    start_step: int
    hashes: dict[str, str]
    settings: dict
    validation: list[dict]
    metrics: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- which codecs can be trained, and which were ---------------------------------------------

def check_codec_config(model_dir: Path) -> None:
    """Refuse a compression file that carries no EnCodec config (nothing to train)."""
    package = read_package(model_dir / COMPRESSION_FILE)
    cfg = None
    if "xp.cfg" in package:
        cfg = package_config(package, model_dir / COMPRESSION_FILE)
    if cfg is None or cfg.get("compression_model") != "encodec" or cfg.get("seanet") is None:
        raise ModelError(f"{model_dir.name}: its compression model carries no EnCodec config "
                         f"(it is a reference or another kind of codec), so there is nothing to "
                         f"train with --stage codec; train the LM instead")


def require_trained_codec(model_dir: str | Path, *, how: str | None = None) -> None:
    """Refuse, in one line, a model whose codec was never trained.

    A random EnCodec maps any audio to a handful of codes, so an LM trained on its codes learns
    near-constant sequences and generates a fixed buzz. ``how`` is the command to suggest.
    """
    folder = Path(model_dir)
    if codec_record(folder)["trained"]:
        return
    how = how or (f"train(..., stage='codec') on {folder.name}, then train the LM on what it "
                  f"exports")
    raise ModelError(f"{folder.name}: its codec was never trained (random EnCodec weights turn "
                     f"any audio into a few constant codes, so the LM would learn nothing): "
                     f"train it first with {how} (allow_untrained_codec / "
                     f"--allow-untrained-codec is for tests and experiments only)")


def heldout_split(items: Sequence, fraction: float = HOLDOUT_FRACTION) -> tuple[list, list]:
    """(training items, held-out items): ``fraction`` of the items by audio hash, at least one.

    A clip is held out when the first 8 bytes of sha256("heldout:" + its audio sha256), as a
    fraction of 2^64, fall below ``fraction``, so the choice is the same on every machine and
    a clip keeps its side when clips are added. With one clip only, it is both.
    """
    def draw(item) -> float:
        digest = hashlib.sha256(f"heldout:{item.sha256}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64

    ordered = sorted(items, key=draw)
    if len(ordered) < 2:
        return list(ordered), list(ordered)
    held = [item for item in ordered if draw(item) < fraction] or ordered[:1]
    held = held[:len(ordered) - 1]  # always something left to train on
    chosen = {id(item) for item in held}
    return [item for item in items if id(item) not in chosen], held


# --- the run ----------------------------------------------------------------------------------

def train_codec(model_dir: Path, items: Sequence, *, steps: int, batch_size: int, lr: float,
                out_dir: Path, resume: bool = False, progress: ProgressFn | None = None,
                device: torch.device, seed: int = 0, segment_seconds: float | None = None,
                checkpoint_every: int | None = None, validate_every: int | None = None,
                on_validation: ValidationFn | None = None, extra_config: dict | None = None,
                holdout_fraction: float = HOLDOUT_FRACTION,
                reconstruction_steps: int = 0) -> CodecResult:
    """Train ``model_dir``'s EnCodec on ``items`` and export the result to ``out_dir``.

    Args:
        model_dir: the base model's checkpoint folder (checked by the caller; never modified).
        items: the dataset's clips, each with ``path`` and ``sha256`` (its audio's hash).
        steps: total steps (with ``resume``, counting those already done).
        batch_size: segments per step.
        lr: the learning rate of the codec and the discriminator.
        out_dir: the folder to export to (``out_dir/.training/`` holds the resumable state).
        resume: continue from ``out_dir/.training/last.pt``.
        progress: called with (step, steps, reconstruction loss) after every step.
        device: where to train.
        seed: seeds segment sampling and the quantizer's dead-code draws, step by step.
        segment_seconds: training segment length (default 1 s, audiocraft's).
        checkpoint_every: steps between resumable checkpoints (default a quarter of the run).
        validate_every: steps between held-out measurements (default: before and at the end).
        on_validation: called with each held-out measurement.
        extra_config: recorded under ``soundscape.training`` in the exported config.
        holdout_fraction: the share of clips held out (at least one).
        reconstruction_steps: the first this many steps train the encoder and decoder as a
            plain autoencoder (no quantizer) on the reconstruction losses alone (waveform L1
            and multi-scale mel at their recipe weights, no balancer), with the discriminator
            idle; then the codebooks are seeded by k-means on the trained encoder's latents and
            the quantizer and the adversary join (VQGAN's ``disc_start``).

    Raises:
        ModelError: a compression model without an EnCodec config, a resume that does not
            match, or a run that diverges.
    """
    check_codec_config(model_dir)
    if validate_every is not None and validate_every < 1:
        raise ParameterError("validate_every must be 1 or more")
    if reconstruction_steps < 0:
        raise ParameterError("reconstruction_steps must be 0 or more")
    if not 0 < holdout_fraction < 1:
        raise ParameterError(f"the held-out share {holdout_fraction:g} must lie between 0 and 1")
    train_items, heldout = heldout_split(items, holdout_fraction)
    base_hashes = checkpoint_hashes(model_dir)
    work_dir = out_dir / WORK_DIR
    run = _CodecRun(model_dir, train_items, heldout, device=device, lr=lr, seed=seed,
                    segment_seconds=segment_seconds or DEFAULT_SEGMENT_SECONDS,
                    reconstruction_steps=reconstruction_steps)
    # The data-dependent start goes with the autoencoder steps: on the sample library, the
    # adversarial stage alone did better from the default initialisation (bench_codec, 200
    # steps: held-out mel 3.18 -> 1.51 from it, 2.84 -> 2.36 from the data-dependent start).
    fresh = reconstruction_steps > 0 and not codec_record(model_dir)["trained"]
    settings = {"stage": "codec", "batch_size": batch_size, "lr": lr, "lora_rank": None,
                "seed": seed, "base_model_sha256": base_hashes["model"],
                "base_lm_sha256": base_hashes["lm"],
                "base_compression_sha256": base_hashes["compression"],
                "assets": sorted(i.sha256 for i in items),
                "heldout": sorted(i.sha256 for i in heldout),
                "segment_seconds": run.segment_seconds, "discriminator": run.disc_config,
                "loss_weights": LOSS_WEIGHTS, "reconstruction_steps": reconstruction_steps,
                "initialisation": ({"kind": "data-dependent", "latent_rms": INITIAL_LATENT_RMS}
                                   if fresh else None)}
    losses: list[float] = []
    metrics: list[dict] = []
    validation: list[dict] = []
    start_step = 0
    if resume:
        state = _load_state(work_dir, settings)
        if state is None:
            raise ModelError(f"nothing to resume: no training checkpoint in {work_dir}")
        run.restore(state)
        losses = [float(x) for x in state["losses"]]
        metrics = json.loads(state["metrics"])
        validation = json.loads(state["validation"])
        start_step = int(state["step"])
    elif fresh:
        settings["initialised_from_latent_rms"] = run.initialise(batch_size)

    def measure(step: int) -> None:
        figures = {"step": step, **run.heldout_figures()}
        validation.append(figures)
        if on_validation is not None:
            on_validation(figures)

    if not validation:
        measure(0)  # the codec as it came in
    every = checkpoint_every or max(1, math.ceil(steps / 4))
    for step in range(start_step + 1, steps + 1):
        figures = run.step(step, batch_size)
        loss = figures["reconstruction"]
        if not all(math.isfinite(v) for v in figures.values()):
            raise ModelError(f"codec training diverged at step {step} ({figures}); lower the "
                             f"learning rate (now {lr:g})")
        losses.append(loss)
        metrics.append(figures)
        if progress is not None:
            progress(step, steps, loss)
        if (validate_every and step % validate_every == 0) or step == steps:
            if validation[-1]["step"] != step:
                measure(step)
        if step % every == 0 or step == steps:
            _save_state(work_dir, run.state(), step=step, losses=losses, metrics=metrics,
                        validation=validation, settings=settings)
    if validation[-1]["step"] != steps:  # a resume of a finished run
        measure(steps)
    record = {"trained": True, "steps": steps,
              "dataset": (extra_config or {}).get("dataset"),
              "heldout": {"clips": len(heldout), "fraction": holdout_fraction,
                          "windows": len(run.windows), "window_seconds": run.window_seconds,
                          "untrained": _figures(validation[0]), "trained": _figures(validation[-1])},
              "losses": {"first": losses[0] if losses else None,
                         "last": losses[-1] if losses else None},
              "base_compression_sha256": base_hashes["compression"]}
    training = {**{k: v for k, v in settings.items() if k not in ("assets", "heldout")},
                "steps": steps, "assets": len(items), "final_loss": losses[-1] if losses else None,
                "codec": record, **(extra_config or {})}
    hashes = run.export(out_dir, training, record)
    notes = ["the LM was trained on the old codec's codes: train the LM stage next"]
    if len(items) < 2:
        notes.append("the dataset has one clip, so the held-out figures are on the clip trained on")
    return CodecResult(losses=losses, start_step=start_step, hashes=hashes, settings=training,
                       validation=validation, metrics=metrics, notes=notes)


def _figures(entry: dict) -> dict:
    return {"mel_distance": entry["mel_distance"], "si_snr_db": entry["si_snr_db"]}


class _Averager:
    """The exponential moving average the Balancer keeps of each loss's gradient norm.

    flashy's ``averager`` (which the Balancer uses) keeps its sums in a closure; this is the
    same EMA with its sums in the open, so they go into the checkpoint and a resume continues
    with the same gradient scales.
    """

    def __init__(self, beta: float):
        self.beta = beta
        self.total: dict[str, float] = {}
        self.fix: dict[str, float] = {}

    def __call__(self, metrics: dict, weight: float = 1) -> dict[str, float]:
        for key, value in metrics.items():
            self.total[key] = self.total.get(key, 0.0) * self.beta + weight * float(value)
            self.fix[key] = self.fix.get(key, 0.0) * self.beta + weight
        return {key: total / self.fix[key] for key, total in self.total.items()}


class _CodecRun:
    """One codec run: EnCodec, its discriminator, both optimisers, the balancer, the sampler."""

    def __init__(self, model_dir: Path, train_items, heldout, *, device, lr, seed,
                 segment_seconds, reconstruction_steps: int = 0):
        from audiocraft import adversarial
        from audiocraft.losses import Balancer, MelSpectrogramL1Loss, MultiScaleMelSpectrogramLoss
        from audiocraft.models import builders as ac_builders

        self.model_dir, self.device, self.seed = model_dir, device, seed
        self.reconstruction_steps = reconstruction_steps
        package = read_package(model_dir / COMPRESSION_FILE)
        self.cfg = package_config(package, model_dir / COMPRESSION_FILE)
        self.cfg.device = str(device)
        self.model = ac_builders.get_compression_model(self.cfg)
        self.model.load_state_dict(package["best_state"])
        revive_dead_codes_properly(self.model)
        sr, ch = self.model.sample_rate, self.model.channels
        hop = int(round(sr / self.model.frame_rate))
        # Whole frames only, so the decoder's output lines up with its input.
        self.segment = max(hop, int(segment_seconds * sr) // hop * hop)
        self.segment_seconds = float(self.segment / sr)
        self.sampler = SegmentSampler([i.path for i in train_items], segment=self.segment,
                                      sample_rate=sr, channels=ch, seed=seed)
        self.windows = _heldout_windows(heldout, hop=hop, sample_rate=sr, channels=ch)
        self.window_seconds = float(self.windows[0].shape[-1] / sr)

        # audiocraft's discriminator, resized where the model's config says (a tiny codec
        # gets a tiny discriminator: builders.py gives it an msstftd section).
        disc = _plain({**MSSTFTD, **(self.cfg.get("msstftd") or {})})
        self.disc_config = json.loads(json.dumps(disc))
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # the discriminator's initial weights, from the run's seed
            discriminator = adversarial.MultiScaleSTFTDiscriminator(
                in_channels=ch, out_channels=1, **disc).to(device)
        disc_optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=ADAM_BETAS)
        self.adversary = adversarial.AdversarialLoss(
            discriminator, disc_optimizer, loss=adversarial.get_adv_criterion("hinge"),
            loss_real=adversarial.get_real_criterion("hinge"),
            loss_fake=adversarial.get_fake_criterion("hinge"),
            loss_feat=adversarial.FeatureMatchingLoss(torch.nn.L1Loss(), normalize=True),
            normalize=True)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, betas=ADAM_BETAS)
        weights = {"adv_msstftd": LOSS_WEIGHTS["adv"], "feat_msstftd": LOSS_WEIGHTS["feat"],
                   "l1": LOSS_WEIGHTS["l1"], "msspec": LOSS_WEIGHTS["msspec"]}
        self.balancer = Balancer(weights, **BALANCER)
        self.balancer.averager = _Averager(BALANCER["ema_decay"])
        with warnings.catch_warnings():
            # The smallest mel scales have empty filters at 32 kHz; torchaudio warns, harmlessly.
            warnings.filterwarnings("ignore", message="At least one mel filterbank")
            self.msspec = MultiScaleMelSpectrogramLoss(sample_rate=sr, **MSSPEC).to(device)
            self.mel = MelSpectrogramL1Loss(sample_rate=sr, **MEL).to(device)
        self.model.train()

    @torch.no_grad()
    def initialise(self, batch_size: int) -> float:
        """The data-dependent start of a never-trained codec; returns the latents' RMS before."""
        return initialise_codec(self.model, self.sampler.batch(0, batch_size).to(self.device))

    def step(self, step: int, batch_size: int) -> dict[str, float]:
        x = self.sampler.batch(step, batch_size).to(self.device)
        # The quantizer replaces dead codes from the global RNG: seed it per step for resumes.
        torch.manual_seed(self.seed * 1_000_003 + step)
        if step <= self.reconstruction_steps:
            figures = self._reconstruction_step(x)
            if step == self.reconstruction_steps:
                self.seed_codebooks(batch_size)
            return figures
        result = self.model(x)
        y = result.x[..., :x.shape[-1]]
        d_loss = self.adversary.train_adv(y, x)
        adv, feat = self.adversary(y, x)
        l1 = F.l1_loss(y, x)
        msspec = self.msspec(y, x)
        self.optimizer.zero_grad(set_to_none=True)
        penalty = result.penalty
        if penalty is not None and penalty.requires_grad:
            penalty.backward(retain_graph=True)  # the commitment loss, outside the balancer
        self.balancer.backward({"adv_msstftd": adv, "feat_msstftd": feat, "l1": l1,
                                "msspec": msspec}, y)
        self.optimizer.step()
        return _step_figures(l1=l1, msspec=msspec, adv=adv, feat=feat, d_loss=d_loss,
                             penalty=penalty)

    def _reconstruction_step(self, x) -> dict[str, float]:
        """A step of the encoder and decoder as a plain autoencoder (no quantizer) on the
        reconstruction losses alone; the discriminator does not move."""
        y = self.model.decoder(self.model.encoder(x))[..., :x.shape[-1]]
        l1 = F.l1_loss(y, x)
        msspec = self.msspec(y, x)
        loss = LOSS_WEIGHTS["l1"] * l1 + LOSS_WEIGHTS["msspec"] * msspec
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return _step_figures(l1=l1, msspec=msspec)

    @torch.no_grad()
    def seed_codebooks(self, batch_size: int, batches: int = SEED_BATCHES) -> None:
        """k-means codebooks from the trained encoder's latents (audiocraft's own k-means
        initialisation, run now on ``batches`` fresh batches): the quantizer joins the codec
        with codes that tell its latents apart."""
        latents = torch.cat([self.model.encoder(self.sampler.batch(-1 - k, batch_size)
                                                .to(self.device)) for k in range(batches)])
        for layer in self.model.quantizer.vq.layers:
            layer._codebook.inited.fill_(0)
        self.model.quantizer(latents, self.model.frame_rate)  # in training mode: seeds each layer

    @torch.no_grad()
    def heldout_figures(self) -> dict[str, float]:
        """Mean log-mel L1 and SI-SNR (dB) of the codec's reconstruction of the held-out windows."""
        self.model.eval()  # eval: the quantizer neither updates its codebooks nor draws codes
        try:
            mel, snr = [], []
            for window in self.windows:
                x = window[None].to(self.device)
                y = self.model(x).x[..., :x.shape[-1]]
                mel.append(float(self.mel(y, x)))
                snr.append(float(si_snr_db(y, x)))
        finally:
            self.model.train()
        return {"mel_distance": sum(mel) / len(mel), "si_snr_db": sum(snr) / len(snr)}

    def state(self) -> dict:
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "discriminator": {k: v.detach().cpu() for k, v in
                                  self.adversary.adversary.state_dict().items()},
                "discriminator_optimizer": self.adversary.optimizer.state_dict(),
                "balancer": json.dumps({"total": self.balancer.averager.total,
                                        "fix": self.balancer.averager.fix})}

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.adversary.adversary.load_state_dict(state["discriminator"])
        self.adversary.optimizer.load_state_dict(state["discriminator_optimizer"])
        sums = json.loads(state["balancer"])
        self.balancer.averager.total = {k: float(v) for k, v in sums["total"].items()}
        self.balancer.averager.fix = {k: float(v) for k, v in sums["fix"].items()}

    def export(self, out_dir: Path, training: dict, record: dict) -> dict[str, str]:
        import audiocraft
        from omegaconf import OmegaConf

        self.model.eval()
        cfg = OmegaConf.create(OmegaConf.to_container(self.cfg, resolve=True))
        cfg.device = "cpu"
        if cfg.get("soundscape") is None:
            cfg.soundscape = {}
        # Through JSON so the config holds plain values only (numpy scalars upset OmegaConf).
        cfg.soundscape.training = json.loads(json.dumps(training, default=float))
        cfg.soundscape[CODEC_RECORD_KEY] = json.loads(json.dumps(record, default=float))
        out_dir.mkdir(parents=True, exist_ok=True)
        package = {"best_state": {k: v.detach().cpu().clone() for k, v in
                                  self.model.state_dict().items()},
                   "xp.cfg": OmegaConf.to_yaml(cfg), "version": audiocraft.__version__,
                   "exported": True}
        # The LM did not change: its file is copied byte for byte (train the LM stage next).
        shutil.copyfile(self.model_dir / LM_FILE, out_dir / LM_FILE)
        return export_model(None, None, cfg, out_dir, compression_package=package,
                            lm_file=out_dir / LM_FILE)


def _step_figures(**terms) -> dict[str, float]:
    """A step's loss terms as plain numbers (absent ones 0), plus what progress shows: the
    reconstruction terms at audiocraft's weights."""
    figures = {name: float(terms[name].detach()) if terms.get(name) is not None else 0.0
               for name in ("l1", "msspec", "adv", "feat", "d_loss", "penalty")}
    figures["reconstruction"] = (LOSS_WEIGHTS["l1"] * figures["l1"]
                                 + LOSS_WEIGHTS["msspec"] * figures["msspec"])
    return figures


@torch.no_grad()
def initialise_codec(model, batch: torch.Tensor, *, latent_rms: float = INITIAL_LATENT_RMS) -> float:
    """Data-dependent initialisation of a never-trained EnCodec (after Salimans and Kingma's for
    weight-normalised layers); returns the latents' RMS before it.

    Every convolution's bias in the encoder and decoder is zeroed, so a latent is made by the
    audio alone, then the encoder's last (weight-normalised) layer is scaled so that the
    latents of ``batch`` have RMS ``latent_rms``. The codebooks are seeded later, by k-means on
    the latents the reconstruction steps have trained (:meth:`_CodecRun.seed_codebooks`).
    """
    for part in (model.encoder, model.decoder):
        for name, parameter in part.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    scaled = [m for m in model.encoder.modules() if hasattr(m, "weight_g")]
    if not scaled:
        raise ModelError("the codec's encoder has no weight-normalised layer to initialise")
    before = float(model.encoder(batch).pow(2).mean().sqrt())
    if before > 0:
        scaled[-1].weight_g.mul_(latent_rms / before)
    return before


def revive_dead_codes_properly(model) -> int:
    """Make the quantizer's dead-code replacement stick; returns the codebooks changed.

    In audiocraft 1.3's ``EuclideanCodebook.forward`` (training mode), ``expire_codes_`` writes
    fresh batch vectors into the rows of codes used less than ``threshold_ema_dead_code`` times
    (EMA count), and the EMA update just after recomputes every row as ``embed_avg /
    cluster_size``, which overwrites them with the old averages. A dead code is never revived:
    its row drifts (its average decays faster than its smoothed count) and the codec ends up
    using one or two codes (measured: 1 first-codebook code after 24 steps on a 4-clip corpus,
    8 with this fix). Here the replacement also resets the code's running average to the new
    vector and its count to the threshold, so the next EMA update keeps the restarted code
    (SoundStream's restart of unused codes from batch vectors, made to last).
    """
    import types

    from audiocraft.quantization.core_vq import EuclideanCodebook, sample_vectors

    def replace_(codebook, samples, mask):
        fresh = sample_vectors(samples, codebook.codebook_size)
        count = float(max(codebook.threshold_ema_dead_code, 1))
        dead = mask[..., None]
        codebook.embed.data.copy_(torch.where(dead, fresh, codebook.embed))
        codebook.embed_avg.data.copy_(torch.where(dead, fresh * count, codebook.embed_avg))
        codebook.cluster_size.data.copy_(torch.where(
            mask, torch.full_like(codebook.cluster_size, count), codebook.cluster_size))

    changed = 0
    for module in model.modules():
        if isinstance(module, EuclideanCodebook):
            module.replace_ = types.MethodType(replace_, module)
            changed += 1
    return changed


def si_snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant signal-to-noise ratio in dB over whole signals ``[..., T]``, averaged.

    Both are centred; the estimate is split into its projection on the reference (the signal)
    and the rest (the noise). audiocraft's ``SISNR`` with ``segment=None`` trips on its own
    shape check, so this is the same measure written out.
    """
    eps = torch.finfo(torch.float32).eps
    reference = reference - reference.mean(dim=-1, keepdim=True)
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    dot = (estimate * reference).sum(dim=-1, keepdim=True)
    target = dot * reference / (reference.pow(2).sum(dim=-1, keepdim=True) + eps)
    noise = estimate - target
    ratio = (target.pow(2).sum(dim=-1) + eps) / (noise.pow(2).sum(dim=-1) + eps)
    return (10 * torch.log10(ratio)).mean()


def _plain(config: dict) -> dict:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return {k: (OmegaConf.to_container(v) if isinstance(v, (DictConfig, ListConfig)) else v)
            for k, v in config.items()}


def _heldout_windows(heldout: Sequence, *, hop: int, sample_rate: int,
                     channels: int) -> list[torch.Tensor]:
    """Evenly spaced windows of the held-out clips, read once (a bounded amount of audio)."""
    length = max(hop, int(HELDOUT_WINDOW_SECONDS * sample_rate) // hop * hop)
    windows = []
    for item in heldout[:HELDOUT_MAX_CLIPS]:
        clip = clip_info(item.path)
        span = math.ceil(length * clip.sample_rate / sample_rate)
        spare = max(clip.frames - span, 0)
        for k in range(HELDOUT_WINDOWS):
            start = spare * (k + 1) // (HELDOUT_WINDOWS + 1)
            windows.append(read_window(clip, start, length, sample_rate=sample_rate,
                                       channels=channels))
    return windows


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _save_state(work_dir: Path, run_state: dict, *, step: int, losses: list[float],
                metrics: list[dict], validation: list[dict], settings: dict) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save({**run_state, "step": step, "losses": torch.tensor(losses, dtype=torch.float64),
                        "metrics": json.dumps(metrics), "validation": json.dumps(validation),
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
    current = json.loads(json.dumps(settings, sort_keys=True))
    changed = sorted(k for k in current if saved.get(k) != current[k])
    if changed:
        raise ModelError(f"cannot resume from {path}: it was made with other "
                         f"{', '.join(changed)}; start afresh in another --out folder")
    if "discriminator" not in state:
        raise ModelError(f"cannot resume from {path}: it is not a codec-stage checkpoint; start "
                         f"afresh in another --out folder")
    return state
