"""A tiny real AudioSeal generator and detector for tests: built from a config with
audioseal.builder, trained briefly on CPU, saved in the folder format soundscape reads.

Nothing is downloaded: the architecture is AudioSeal's (SEANet encoder/decoder, message
embedding, SEANet detector), only small (8 filters, two down-sampling stages, no LSTM).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NBITS = 16


def tiny_config(*, lstm: int = 0) -> dict:
    """A small AudioSeal config, in the shape of its model cards (``xp.cfg``)."""
    return {"nbits": NBITS, "seanet": {
        "activation": "ELU", "activation_params": {"alpha": 1.0}, "causal": False, "channels": 1,
        "compress": 2, "dilation_base": 2, "dimension": 16, "disable_norm_outer_blocks": 0,
        "kernel_size": 7, "last_kernel_size": 7, "lstm": lstm, "n_filters": 8,
        "n_residual_layers": 1, "norm": "none", "norm_params": {}, "pad_mode": "constant",
        "ratios": [4, 4], "residual_kernel_size": 3, "true_skip": True},
        "decoder": {"final_activation": None, "final_activation_params": None,
                    "trim_right_ratio": 1.0},
        "detector": {"output_dim": 32}}


def build(config: dict):
    """(generator, detector) of ``config``, randomly initialised (seeded by the caller)."""
    from audioseal.builder import (AudioSealDetectorConfig, AudioSealWMConfig, create_detector,
                                   create_generator)
    from audioseal.loader import AudioSeal

    gen = create_generator(AudioSeal.parse_config(dict(config), config_type=AudioSealWMConfig))
    det = create_detector(AudioSeal.parse_config(dict(config), config_type=AudioSealDetectorConfig))
    return gen, det


def train(generator, detector, hosts: list[np.ndarray], *, steps: int, seed: int = 440,
          clip: int = 4000, batch: int = 8, l1_weight: float = 10.0, target: float = 0.05,
          start_target: float = 1.0, lr: float = 1e-2) -> list:
    """Train both briefly: the detector tells marked from unmarked 16 kHz clips frame by frame
    and reads the message; the generator is held small by an L1 penalty. Returns the losses."""
    import torch
    from audioseal.libs.moshi.utils.compile import no_compile

    with no_compile():  # eager, as soundscape runs the models (soundscape/watermark/audioseal.py)
        return _train(generator, detector, hosts, steps=steps, seed=seed, clip=clip, batch=batch,
                      l1_weight=l1_weight, target=target, start_target=start_target, lr=lr)


def _train(generator, detector, hosts, *, steps, seed, clip, batch, l1_weight, target,
           start_target, lr) -> list:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = list(generator.parameters()) + list(detector.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for step in range(steps):
        xs = []
        for _b in range(batch):
            host = hosts[rng.integers(len(hosts))]
            start = rng.integers(0, host.size - clip)
            xs.append(host[start:start + clip] * 10 ** (rng.uniform(-6, 6) / 20))
        x = torch.from_numpy(np.stack(xs).astype(np.float32))[:, None, :]
        msg = torch.randint(0, 2, (batch, NBITS))
        wm = generator.get_watermark(x, message=msg)
        marked = x + wm
        both = torch.cat([marked, x])
        out = detector.detector(both)
        logits = out[:, :2, :]
        labels = torch.cat([torch.ones(batch, out.shape[-1]), torch.zeros(batch, out.shape[-1])]).long()
        detection = torch.nn.functional.cross_entropy(logits, labels)
        bits = out[:batch, 2:, :].mean(dim=-1)
        decoding = torch.nn.functional.binary_cross_entropy_with_logits(bits, msg.float())
        # The L1 penalty bites only above a watermark of ``allowed`` times the host's mean
        # level: below, the detector's loss alone shapes the generator.
        # The allowance is ``start_target`` for the first 40 % of the steps (the detector
        # learns on a loud watermark), then narrows geometrically to ``target`` by 90 % (the
        # generator is pressed quieter while the detector keeps up); a tiny pair trained at
        # the narrow allowance from the start stays at chance.
        narrowed = min(1.0, max(0.0, (step / steps - 0.4) / 0.5))
        allowed = start_target * (target / start_target) ** narrowed
        small = torch.relu(wm.abs().mean() / (x.abs().mean() + 1e-6) - allowed)
        loss = detection + decoding + l1_weight * small
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append((float(detection), float(decoding), float(small)))
    generator.eval(), detector.eval()
    return losses


def save(folder: Path, generator, detector, config: dict) -> Path:
    """Save as soundscape reads a studio's folder: ``{"xp.cfg", "model"}`` per file."""
    import torch

    from soundscape.watermark.audioseal import DETECTOR_FILE, GENERATOR_FILE

    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"xp.cfg": config, "model": generator.state_dict()}, folder / GENERATOR_FILE)
    torch.save({"xp.cfg": config, "model": detector.state_dict()}, folder / DETECTOR_FILE)
    return folder
