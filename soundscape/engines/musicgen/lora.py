"""Low-rank adapters (LoRA) for the MusicGen LM's attention, merged into the weights at export.

peft is not a dependency, and audiocraft's attention keeps its input projection as a bare
``in_proj_weight`` parameter rather than an ``nn.Linear``; so the adapter is a weight
parametrization: ``W' = W + (B @ A) * alpha / rank`` computed whenever the layer reads its
weight. The base ``W`` is frozen and untouched; only ``A`` and ``B`` train. ``B`` starts at zero,
so an adapted model starts out exactly as its base. :func:`merge_lora` folds the adapters in,
leaving a plain LM whose state dict ``MusicGen.get_pretrained`` loads.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

# The adapted weights: the attention input (q, k, v) and output projections of every
# self-attention and cross-attention block.
TARGETS = (("", "in_proj_weight"), ("out_proj", "weight"))


class LoRADelta(nn.Module):
    """The parametrization ``weight -> weight + (B @ A) * scale`` for one weight matrix."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float,
                 *, device=None, dtype=None):
        super().__init__()
        self.rank = rank
        self.scale = alpha / rank
        self.A = nn.Parameter(torch.empty(rank, in_features, device=device, dtype=dtype))
        self.B = nn.Parameter(torch.zeros(out_features, rank, device=device, dtype=dtype))
        # The usual LoRA start: A like a Linear's weights, B zero, so the delta starts at 0.
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.B @ self.A).to(weight.dtype) * self.scale


def _attention_modules(lm):
    from audiocraft.modules.transformer import StreamingMultiheadAttention

    return [(name, m) for name, m in lm.named_modules() if isinstance(m, StreamingMultiheadAttention)]


def add_lora(lm, rank: int, *, alpha: float | None = None, generator: torch.Generator | None = None
             ) -> list[str]:
    """Freeze ``lm`` and give every attention projection a rank-``rank`` adapter.

    Args:
        lm: an audiocraft LMModel.
        rank: adapter rank (1 or more).
        alpha: scale numerator (default ``rank``, so the scale is 1).
        generator: seeds the adapters' ``A`` matrices (default the global RNG).

    Returns:
        The names of the adapted weights.
    """
    if rank < 1:
        raise ValueError("LoRA rank must be 1 or more")
    alpha = float(rank if alpha is None else alpha)
    for param in lm.parameters():
        param.requires_grad_(False)
    adapted = []
    for name, attention in _attention_modules(lm):
        for child, weight_name in TARGETS:
            owner = attention.get_submodule(child) if child else attention
            weight = getattr(owner, weight_name, None)
            if not isinstance(weight, torch.Tensor):
                continue
            delta = LoRADelta(weight.shape[0], weight.shape[1], rank, alpha,
                              device=weight.device, dtype=torch.float32)
            if generator is not None:
                with torch.no_grad():
                    bound = 1 / math.sqrt(weight.shape[1])  # kaiming_uniform(a=sqrt 5)'s bound
                    delta.A.copy_(torch.rand(delta.A.shape, generator=generator) * 2 * bound - bound)
            parametrize.register_parametrization(owner, weight_name, delta)
            adapted.append(".".join(p for p in (name, child, weight_name) if p))
    if not adapted:
        raise ValueError("this LM has no attention projections to adapt")
    return adapted


def lora_parameters(lm) -> dict[str, nn.Parameter]:
    """The adapter parameters (the only trainable ones after :func:`add_lora`), by name."""
    return {name: p for name, p in lm.named_parameters() if name.endswith((".A", ".B"))
            and ".parametrizations." in name}


def base_parameters(lm) -> dict[str, torch.Tensor]:
    """Every non-adapter parameter, by its name in a plain (unadapted) LM."""
    out = {}
    for name, p in lm.named_parameters():
        if ".parametrizations." in name:
            if not name.endswith(".original"):
                continue
            name = name.replace(".parametrizations.", ".").removesuffix(".original")
        out[name] = p
    return out


def merge_lora(lm) -> int:
    """Fold every adapter into its weight and remove it; returns how many were merged."""
    merged = 0
    for _, module in list(lm.named_modules()):
        if not parametrize.is_parametrized(module):
            continue
        for weight_name in list(module.parametrizations.keys()):
            parametrize.remove_parametrizations(module, weight_name, leave_parametrized=True)
            merged += 1
    for param in lm.parameters():
        param.requires_grad_(True)
    return merged
