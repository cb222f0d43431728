"""Build MusicGen models of a named size from an OmegaConf config, through audiocraft's own builders.

One builder for every model soundscape makes: ``tiny`` (tests, a second of audio in well under a
second on a CPU), and the ``small`` and ``medium`` architectures of the released MusicGen models
(for training from scratch on a studio's own catalogue). The config is the same form audiocraft
keeps in a checkpoint's ``xp.cfg``, so an exported model rebuilds itself with
``MusicGen.get_pretrained(DIR)``.

The text conditioner (with ``conditioning="description"``) is audiocraft's look-up-table conditioner with the ``noop`` tokenizer: the
T5 conditioner of the released models needs downloaded weights and the ``whitespace`` tokenizer a
downloaded spaCy model, and soundscape never downloads at run time.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from soundscape.engines.musicgen.conditioning import conditioner_config, text_encoder_for
from soundscape.errors import ParameterError

ARCHS = ("tiny", "small", "medium")

# EnCodec at 32 kHz as MusicGen uses it (audiocraft's encodec_musicgen_32khz): hop 640 -> 50 Hz,
# 4 residual codebooks of 2048 entries.
_ENCODEC_32K: dict[str, Any] = {
    "compression_model": "encodec",
    "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": 32000, "channels": 1,
                "causal": False, "renormalize": False},
    "seanet": {"dimension": 128, "channels": 1, "causal": False, "n_filters": 64,
               "n_residual_layers": 1, "ratios": [8, 5, 4, 4], "activation": "ELU",
               "activation_params": {"alpha": 1.0}, "norm": "weight_norm", "norm_params": {},
               "kernel_size": 7, "residual_kernel_size": 3, "last_kernel_size": 7,
               "dilation_base": 2, "pad_mode": "constant", "true_skip": True, "compress": 2,
               "lstm": 2, "disable_norm_outer_blocks": 0,
               "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                           "final_activation_params": None},
               "encoder": {}},
    # kmeans_init is off: a fresh model gets seeded random codebooks at build time instead of
    # k-means on its first batch, so building is deterministic and encoding never mutates it.
    "rvq": {"n_q": 4, "q_dropout": False, "bins": 2048, "decay": 0.99, "kmeans_init": False,
            "kmeans_iters": 50, "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0,
            "orthogonal_reg_active_codes_only": False},
}

# The transformer LM as audiocraft's musicgen_lm config sets it (pre-norm, no biases, GELU,
# depth-scaled gaussian init), with the delay codebook pattern.
_LM_BASE: dict[str, Any] = {
    "lm_model": "transformer_lm",
    "codebooks_pattern": {"modeling": "delay",
                          "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0, "empty_initial": 0}},
    "transformer_lm": {"dim": 1024, "num_heads": 16, "num_layers": 24, "hidden_scale": 4,
                       "n_q": 4, "card": 2048, "dropout": 0.0, "emb_lr": None,
                       "activation": "gelu", "norm_first": True, "bias_ff": False,
                       "bias_attn": False, "bias_proj": False, "past_context": None,
                       "causal": True, "custom": False, "memory_efficient": True,
                       "attention_as_float32": False, "layer_scale": None,
                       "positional_embedding": "sin", "xpos": False, "checkpointing": "none",
                       "weight_init": "gaussian", "depthwise_init": "current",
                       "zero_bias_init": True, "norm": "layer_norm", "cross_attention": False,
                       "qk_layer_norm": False, "qk_layer_norm_cross": False,
                       "attention_dropout": None, "kv_repeat": 1, "two_step_cfg": False},
    # MusicGen drops the text condition on 30% of training batches so that classifier-free
    # guidance has an unconditional model to push away from at inference (coef 3).
    "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
    "attribute_dropout": {},
    "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1,
              "sum": [], "prepend": [], "cross": ["description"], "input_interpolate": []},
    "conditioners": {"description": {"model": "lut",
                                      "lut": {"n_bins": 16384, "dim": 256, "tokenizer": "noop"}}},
    "dataset": {"segment_duration": 30.0, "sample_rate": 32000, "channels": 1},
    "dtype": "float32",
    "device": "cpu",
}

# Per size: overrides on top of the bases above. small and medium follow the released models
# (musicgen-small: dim 1024 x 24 layers x 16 heads; musicgen-medium: dim 1536 x 48 x 24).
_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "seanet": {"dimension": 32, "n_filters": 4, "ratios": [10, 8, 16], "lstm": 0},
        "rvq": {"bins": 256},
        "transformer_lm": {"dim": 64, "num_heads": 4, "num_layers": 2, "card": 256},
        # The codec stage's discriminator (audiocraft's MS-STFT-D, 32 filters and five STFT
        # scales in its recipe) cut down to the tiny codec: 4 filters, the three short scales.
        "msstftd": {"filters": 4, "n_ffts": [512, 256, 128], "hop_lengths": [128, 64, 32],
                    "win_lengths": [512, 256, 128]},
        "conditioners": {"description": {"lut": {"n_bins": 1024, "dim": 32}}},
        # audiocraft's MusicGen refuses windows up to its default 18 s extend stride, so the
        # smallest window get_pretrained accepts is a little over that.
        "dataset": {"segment_duration": 20.0},
        "soundscape": {"extend_stride": 10.0},
    },
    "small": {
        "transformer_lm": {"dim": 1024, "num_heads": 16, "num_layers": 24},
        "soundscape": {"extend_stride": 18.0},
    },
    "medium": {
        "transformer_lm": {"dim": 1536, "num_heads": 24, "num_layers": 48},
        "soundscape": {"extend_stride": 18.0},
    },
}


def model_config(arch: str, *, seed: int = 0, overrides: dict | None = None,
                 conditioning: str = "description", t5_dir=None) -> DictConfig:
    """The full config (compression model and LM) of a model of size ``arch``.

    Args:
        arch: "tiny", "small" or "medium".
        seed: recorded in the config; :func:`build_model` initialises the weights from it.
        overrides: dotted keys to set afterwards, e.g. ``{"dataset.segment_duration": 2.0}``.
        conditioning: "description" (one look-up row per whole description) or "attributes"
            (mood, key, tempo band, textures and instruments as the composer's prompt parser
            reads them, plus the normalised description: see
            :mod:`soundscape.engines.musicgen.conditioning`); "t5": the attributes, with the
            description read by the studio's t5-base.
        t5_dir: the t5-base folder for "t5" (default: the Hugging Face cache).

    Returns:
        An OmegaConf config in the form audiocraft stores as a checkpoint's ``xp.cfg``.
    """
    if arch not in _SIZES:
        raise ParameterError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    cfg = OmegaConf.merge(OmegaConf.create(copy.deepcopy(_ENCODEC_32K)),
                          OmegaConf.create(copy.deepcopy(_LM_BASE)),
                          OmegaConf.create(copy.deepcopy(_SIZES[arch])))
    # The quantizer's cardinality is the LM's vocabulary: keep the two in one place.
    cfg.transformer_lm.card = cfg.rvq.bins
    cfg.transformer_lm.n_q = cfg.rvq.n_q
    cfg.codebooks_pattern.delay.delays = list(range(cfg.rvq.n_q))
    lut = cfg.conditioners.description.lut
    chosen = conditioner_config(conditioning, description_bins=int(lut.n_bins), dim=int(lut.dim),
                                t5_dir=t5_dir)
    cfg.conditioners = chosen["conditioners"]
    cfg.fuser.cross = chosen["fuser"]["cross"]
    cfg.attribute_dropout = chosen["attribute_dropout"]
    cfg.soundscape.conditioning = chosen["soundscape"]["conditioning"]
    cfg.soundscape.arch = arch
    cfg.soundscape.seed = seed
    for key, value in (overrides or {}).items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def build_from_config(cfg: DictConfig, *, device: str | torch.device = "cpu"):
    """Build ``(compression_model, lm)`` from a config with audiocraft's builders.

    Weights come from the torch RNG as it stands; :func:`build_model` seeds it first.
    """
    from audiocraft.models import builders as ac_builders

    cfg = copy.deepcopy(cfg)
    cfg.device = str(device)
    compression_model = ac_builders.get_compression_model(cfg)
    with text_encoder_for(cfg):
        lm = ac_builders.get_lm_model(cfg)
    lm.cfg = cfg  # audiocraft's loaders attach it too; MusicGen reads max_duration from it
    return compression_model.eval(), lm.eval()


def build_model(arch: str, *, seed: int = 0, device: str | torch.device = "cpu",
                overrides: dict | None = None, conditioning: str = "description", t5_dir=None):
    """A randomly initialised MusicGen of size ``arch``: ``(compression_model, lm)``.

    The same ``arch``, ``seed`` and ``overrides`` give the same weights on any machine (the
    weights are drawn on the CPU, then moved).

    Args:
        arch: "tiny", "small" or "medium".
        seed: seed for the weights.
        device: where the returned modules live.
        overrides: dotted config keys to change (see :func:`model_config`).
        conditioning: "description", "attributes" or "t5" (see :func:`model_config`).
        t5_dir: the t5-base folder for "t5" (default: the Hugging Face cache).

    Returns:
        ``(compression_model, lm)``; ``lm.cfg`` is the config, ready for :func:`export_model`.
    """
    cfg = model_config(arch, seed=seed, overrides=overrides, conditioning=conditioning,
                       t5_dir=t5_dir)
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        compression_model, lm = build_from_config(cfg, device="cpu")
    return compression_model.to(device), lm.to(device)


def to_musicgen(compression_model, lm, *, name: str = "soundscape"):
    """Wrap the two modules in audiocraft's ``MusicGen`` (its window comes from ``lm.cfg``)."""
    from audiocraft.models import MusicGen

    return MusicGen(name, compression_model, lm)


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


# Export and load live with the safe checkpoint code; re-exported here so that "building" a
# model from disk reads the same as building one from a size.
from soundscape.engines.musicgen.checkpoint import export_model, load_model  # noqa: E402

__all__ = ["ARCHS", "build_from_config", "build_model", "count_parameters", "export_model",
           "load_model", "model_config", "to_musicgen"]
