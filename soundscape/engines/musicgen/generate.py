"""Batched MusicGen sampling with one random stream per row, so each cue is reproducible in any batch.

audiocraft's ``LMModel.generate`` samples every row of a batch from the global torch RNG, so a
cue's audio depends on which other cues shared its batch. Here the loop over the LM is ours: the
forward passes are audiocraft's (streaming KV cache, delay pattern, classifier-free guidance
batched with the null condition, as ``LMModel.generate`` does), but each row draws its sampling
noise from its own CPU ``torch.Generator`` seeded with the cue's seed. The noise is drawn on the
CPU on purpose: the same seed gives the same draws on any device.

Sampling is by inverse CDF over the (top-k or top-p filtered) distribution with one uniform draw
per row and codebook, which is the same distribution audiocraft's samplers draw from.

Durations beyond the model's window follow audiocraft's sliding-window extension: generate a
window, keep its last ``window - extend_stride`` seconds as the prompt of the next, until done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from soundscape.errors import ParameterError

# Frames generated per LM step count toward progress; called with (steps_done_in_call, steps_total).
StepFn = Callable[[int], None]

UNKNOWN_TOKEN = -1  # marks not-yet-generated positions (audiocraft's convention)


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are drawn: audiocraft's defaults for MusicGen."""

    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    cfg_coef: float = 3.0
    use_sampling: bool = True

    @classmethod
    def from_params(cls, params: dict | None) -> "SamplingParams":
        """Read top_k, top_p, temperature and cfg_coef from a spec's params (defaults when absent)."""
        params = params or {}
        try:
            value = cls(
                top_k=int(params.get("top_k", cls.top_k)),
                top_p=float(params.get("top_p", cls.top_p)),
                temperature=float(params.get("temperature", cls.temperature)),
                cfg_coef=float(params.get("cfg_coef", cls.cfg_coef)),
            )
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"malformed musicgen sampling parameter: {exc}") from None
        if value.top_k < 0:
            raise ParameterError(f"top_k {value.top_k} must be 0 (off) or more")
        if not 0.0 <= value.top_p <= 1.0:
            raise ParameterError(f"top_p {value.top_p:g} must be within 0..1 (0 = off)")
        if value.temperature < 0:
            raise ParameterError(f"temperature {value.temperature:g} must be 0 (greedy) or more")
        if value.cfg_coef < 0:
            raise ParameterError(f"cfg_coef {value.cfg_coef:g} must be 0 or more")
        return value


class RowNoise:
    """One CPU random stream per batch row; ``draw(K)`` gives the next uniforms, shape [B, K]."""

    def __init__(self, seeds: Sequence[int]):
        self.generators = []
        for seed in seeds:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
            self.generators.append(gen)

    def draw(self, k: int) -> torch.Tensor:
        return torch.stack([torch.rand(k, generator=g, dtype=torch.float64) for g in self.generators])

    def subset(self, rows: slice) -> "RowNoise":
        clone = RowNoise.__new__(RowNoise)
        clone.generators = self.generators[rows]
        return clone


def sample_tokens(logits: torch.Tensor, uniforms: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Draw one token per row and codebook from ``logits`` [B, K, card] with ``uniforms`` [B, K].

    Each row's choice depends only on that row's logits and uniforms.
    """
    logits = logits.float()
    if not params.use_sampling or params.temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p > 0.0:
        kept, index = probs.sort(dim=-1, descending=True)
        # Keep the smallest head whose mass reaches top_p (always at least the best token).
        drop = (kept.cumsum(dim=-1) - kept) > params.top_p
        kept = kept.masked_fill(drop, 0.0)
    elif params.top_k > 0:
        kept, index = probs.topk(min(params.top_k, probs.shape[-1]), dim=-1)
    else:
        kept, index = probs, None
    cdf = kept.double().cumsum(dim=-1)
    total = cdf[..., -1:]
    # Keep the target strictly below the total mass so that it never lands past the last kept
    # entry (u*total can round up to total).
    target = torch.minimum(uniforms.to(cdf.device).unsqueeze(-1) * total, total * (1 - 1e-12))
    choice = torch.searchsorted(cdf.contiguous(), target.contiguous(), right=True)
    choice = choice.clamp_(max=kept.shape[-1] - 1)
    tokens = choice.squeeze(-1) if index is None else index.gather(-1, choice).squeeze(-1)
    return tokens


def condition_tensors(lm, conditions: Sequence, *, guided: bool):
    """Tokenize and encode the conditions; with ``guided``, the null conditions follow.

    Each row is a description (str or None) or a
    :class:`~soundscape.engines.musicgen.conditioning.Condition`; see
    :func:`~soundscape.engines.musicgen.conditioning.to_attributes` for what each kind of model
    receives.
    """
    from audiocraft.modules.conditioners import ClassifierFreeGuidanceDropout

    from soundscape.engines.musicgen.conditioning import to_attributes

    attributes = to_attributes(lm, conditions)
    if guided:
        attributes = attributes + ClassifierFreeGuidanceDropout(p=1.0)(attributes)
    tokenized = lm.condition_provider.tokenize(attributes)
    return lm.condition_provider(tokenized)


@torch.inference_mode()
def sample_window(lm, cond, prompt: torch.Tensor | None, gen_len: int, noise: RowNoise,
                  params: SamplingParams, *, batch_size: int, on_step: StepFn | None = None,
                  autocast=None) -> torch.Tensor:
    """Generate codes [B, K, gen_len] within one window, continuing ``prompt`` [B, K, T0].

    The returned codes include the prompt (as ``LMModel.generate`` returns them).
    """
    device = next(lm.parameters()).device
    B, K = batch_size, lm.num_codebooks
    guided = params.cfg_coef != 1.0
    start = 0 if prompt is None else prompt.shape[-1]
    if start >= gen_len:
        raise ValueError("prompt is as long as the window to generate")
    pattern = lm.pattern_provider.get_pattern(gen_len)
    codes = torch.full((B, K, gen_len), UNKNOWN_TOKEN, dtype=torch.long, device=device)
    if prompt is not None:
        codes[..., :start] = prompt
    sequence, _, mask = pattern.build_pattern_sequence(codes, lm.special_token_id)
    first = pattern.get_first_step_with_timesteps(start)
    steps = sequence.shape[-1]
    context = autocast if autocast is not None else _NullContext()
    with lm.streaming(), _PreallocatedKV(lm, steps + 1), context:
        previous = 0
        for offset in range(first, steps):
            chunk = sequence[..., previous:offset]
            if guided:
                chunk = torch.cat([chunk, chunk], dim=0)
            logits = lm(chunk, conditions=[], condition_tensors=cond)[:, :, -1]  # [B(x2), K, card]
            if guided:
                conditional, unconditional = logits.float().split(B, dim=0)
                logits = unconditional + (conditional - unconditional) * params.cfg_coef
            tokens = sample_tokens(logits, noise.draw(K), params)  # [B, K]
            valid = mask[:, offset].unsqueeze(0).expand(B, -1)
            tokens = torch.where(valid, tokens, torch.full_like(tokens, lm.special_token_id))
            column = sequence[..., offset]
            sequence[..., offset] = torch.where(column == UNKNOWN_TOKEN, tokens, column)
            previous = offset
            if on_step is not None:
                on_step(1)
    out, _, _ = pattern.revert_pattern_sequence(sequence, special_token=UNKNOWN_TOKEN)
    out = out[..., :gen_len]
    if bool((out < 0).any()) or bool((out >= lm.card).any()):
        raise RuntimeError("generation left invalid tokens")
    return out


class _PreallocatedKV:
    """Swap audiocraft's streaming KV cache for a preallocated one while a window is sampled.

    audiocraft's self-attention completes its keys and values with ``torch.cat`` of the whole
    past at every step, which copies O(T) per step and O(T^2) per window, times the batch: at
    batch 16 it is a sixth of the work for one second of audio and dominates for thirty. Here the
    cache is a buffer sized for the window and each step writes only its own keys and values.
    The attention sees the same values (a view of the buffer), so the results are the same.
    Only used where audiocraft's own path would keep the whole past (no ``past_context``).
    """

    def __init__(self, lm, capacity: int):
        from audiocraft.modules import transformer

        self.capacity = capacity
        attentions = [m for m in lm.modules() if isinstance(m, transformer.StreamingMultiheadAttention)]
        self.self_attention = [m for m in attentions
                               if not m.cross_attention and m.past_context is None]
        # Cross-attention keys and values depend only on the text condition, which is fixed for
        # the whole window; audiocraft projects them again at every step. The cached form is
        # written for the configuration MusicGen uses (custom attention through torch's SDPA).
        self.cross_attention = [
            m for m in attentions if m.cross_attention and m.custom and m.memory_efficient
            and transformer._efficient_attention_backend == "torch" and not m.qk_layer_norm
            and m.kv_repeat == 1 and not m.attention_as_float32]

    def __enter__(self):
        for module in self.self_attention:
            module._complete_kv = _bound_complete_kv(module, self.capacity)
        for module in self.cross_attention:
            module.forward = _bound_cached_cross_attention(module)
        return self

    def __exit__(self, *exc):
        for module in self.self_attention:
            module.__dict__.pop("_complete_kv", None)
        for module in self.cross_attention:
            module.__dict__.pop("forward", None)
        return False


def _bound_complete_kv(module, capacity: int):
    from audiocraft.modules.transformer import _get_attention_time_dimension

    time_dim = _get_attention_time_dimension(module.memory_efficient)

    def complete_kv(k, v):
        state = module._streaming_state
        if not module._is_streaming:
            return k, v
        length = int(state["kv_length"].item()) if "kv_length" in state else 0
        steps = k.shape[time_dim]
        buffer_k = state.get("kv_keys")
        if buffer_k is None or length + steps > buffer_k.shape[time_dim]:
            size = max(capacity, 2 * (length + steps))
            grown_k = k.new_empty(*k.shape[:time_dim], size, *k.shape[time_dim + 1:])
            grown_v = v.new_empty(*v.shape[:time_dim], size, *v.shape[time_dim + 1:])
            if length:
                grown_k.narrow(time_dim, 0, length).copy_(buffer_k.narrow(time_dim, 0, length))
                grown_v.narrow(time_dim, 0, length).copy_(
                    state["kv_values"].narrow(time_dim, 0, length))
            state["kv_keys"], state["kv_values"] = grown_k, grown_v
            buffer_k = grown_k
        buffer_v = state["kv_values"]
        buffer_k.narrow(time_dim, length, steps).copy_(k)
        buffer_v.narrow(time_dim, length, steps).copy_(v)
        length += steps
        state["kv_length"] = torch.tensor(length)
        state.setdefault("offset", torch.tensor(0))
        return buffer_k.narrow(time_dim, 0, length), buffer_v.narrow(time_dim, 0, length)

    return complete_kv


def _bound_cached_cross_attention(module):
    """The module's cross-attention with keys and values projected once per window.

    Same operations in the same order as audiocraft's custom path (projections, heads, SDPA,
    output projection), so the output is the same; only the repeated work is skipped.
    """
    import torch.nn.functional as F
    from einops import rearrange

    heads = module.num_heads

    def forward(query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        state = module._streaming_state
        dim = module.in_proj_weight.shape[0] // 3
        weight, bias = module.in_proj_weight, module.in_proj_bias
        cached = state.get("cross_k")
        if (not module._is_streaming or cached is None or cached.shape[0] != key.shape[0]
                or state["cross_src"] is not key):
            bias_k = None if bias is None else bias[dim:2 * dim]
            bias_v = None if bias is None else bias[2 * dim:]
            k = rearrange(F.linear(key, weight[dim:2 * dim], bias_k), "b t (h d) -> b h t d", h=heads)
            v = rearrange(F.linear(value, weight[2 * dim:], bias_v), "b t (h d) -> b h t d", h=heads)
            if module._is_streaming:
                state["cross_k"], state["cross_v"], state["cross_src"] = k, v, key
        else:
            k, v = cached, state["cross_v"]
        q = F.linear(query, weight[:dim], None if bias is None else bias[:dim])
        q = rearrange(q, "b t (h d) -> b h t d", h=heads)
        p = module.dropout if module.training else 0
        x = F.scaled_dot_product_attention(q, k, v, is_causal=False, dropout_p=p)
        x = rearrange(x.to(query.dtype), "b h t d -> b t (h d)", h=heads)
        return module.out_proj(x), None

    return forward


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def plan_windows(total: int, prompt_len: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(prompt frames, window frames) of each LM call audiocraft's sliding window makes."""
    if total <= window:
        return [(prompt_len, total)]
    plan, offset, plen = [], 0, prompt_len
    while offset + plen < total:
        chunk = min(total - offset, window)
        plan.append((plen, chunk))
        plen = chunk - stride
        offset += stride
    return plan


@torch.inference_mode()
def generate_codes(model, descriptions: Sequence, seeds: Sequence[int], *,
                   frames: int, params: SamplingParams, prompt: torch.Tensor | None = None,
                   extend_stride: float | None = None, on_step: StepFn | None = None) -> torch.Tensor:
    """Codes [B, K, frames] for a batch of descriptions, continuing ``prompt`` codes when given.

    Runs under ``torch.inference_mode()`` (no autograd graph, no version counters): the caller
    need not wrap it in ``torch.no_grad``, and the codes it returns are inference tensors (clone
    them before using them in training). bench/inference_mode.py measures the difference.

    Args:
        model: audiocraft ``MusicGen`` (its LM, frame rate and window are used).
        descriptions: one condition per row: a text (None for unconditional), or a
            :class:`~soundscape.engines.musicgen.conditioning.Condition` for models with
            attribute conditioners.
        seeds: one seed per row; a row's codes depend only on its seed, text and params.
        frames: codes to generate after the prompt.
        params: sampling parameters shared by the batch.
        prompt: prompt codes [B, K, T0] to continue (not part of the result).
        extend_stride: seconds the sliding window advances beyond the model's window.
        on_step: called with 1 after every LM step.
    """
    lm = model.lm
    B = len(descriptions)
    if len(seeds) != B:
        raise ValueError("one seed per description")
    window = int(model.max_duration * model.frame_rate)
    stride_s = extend_stride if extend_stride is not None else default_extend_stride(model)
    stride = int(stride_s * model.frame_rate)
    if not 0 < stride < window:
        raise ParameterError(f"extend_stride {stride_s:g} s must be within the model's "
                             f"{model.max_duration:g} s window")
    noise = RowNoise(seeds)
    guided = params.cfg_coef != 1.0
    cond = condition_tensors(lm, descriptions, guided=guided)
    plen0 = 0 if prompt is None else prompt.shape[-1]
    kwargs = dict(batch_size=B, on_step=on_step, autocast=model.autocast)
    pieces, current = [], prompt
    for plen, chunk in plan_windows(plen0 + frames, plen0, window, stride):
        codes = sample_window(lm, cond, current, chunk, noise, params, **kwargs)
        pieces.append(codes[..., plen:])
        # The window's tail becomes the next window's prompt (audiocraft's extension).
        current = codes[..., stride:]
    return torch.cat(pieces, dim=-1)[..., :frames]


def default_extend_stride(model) -> float:
    """The config's ``soundscape.extend_stride``, else audiocraft's 18 s of a 30 s window (60%)."""
    cfg = getattr(model.lm, "cfg", None)
    stride = None
    if cfg is not None and cfg.get("soundscape") is not None:
        stride = cfg.soundscape.get("extend_stride")
    if stride is None or not 0 < float(stride) < model.max_duration:
        stride = 0.6 * model.max_duration
    return float(stride)


def total_steps(model, frames: int, prompt_len: int, extend_stride: float | None = None) -> int:
    """LM forward steps :func:`generate_codes` makes (for progress)."""
    window = int(model.max_duration * model.frame_rate)
    stride_s = extend_stride if extend_stride is not None else default_extend_stride(model)
    stride = int(stride_s * model.frame_rate)
    steps = 0
    for plen, chunk in plan_windows(prompt_len + frames, prompt_len, window, stride):
        pattern = model.lm.pattern_provider.get_pattern(chunk)
        steps += len(pattern.layout) - pattern.get_first_step_with_timesteps(plen)
    return steps


@torch.inference_mode()
def decode_rows(model, codes: torch.Tensor) -> list[torch.Tensor]:
    """Decode each row on its own, so a row's audio never depends on its batch (float32, CPU).

    Runs under ``torch.inference_mode()``, as :func:`generate_codes` does.

    Decoding is a small share of the work next to the LM, and per-row decoding keeps the samples
    bit-identical whether a cue was generated alone or inside a batch.
    """
    out = []
    for row in range(codes.shape[0]):
        audio = model.compression_model.decode(codes[row:row + 1], None)
        out.append(audio[0].float().cpu())
    return out


def frames_for(seconds: float, frame_rate: float) -> int:
    return int(math.ceil(seconds * frame_rate - 1e-9))
