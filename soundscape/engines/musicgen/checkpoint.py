"""Audiocraft checkpoint folders: safe loading, export with the config, and their hashes.

A model folder holds ``state_dict.bin`` (the LM) and ``compression_state_dict.bin`` (EnCodec),
each a ``torch.save``'d dict ``{'best_state', 'xp.cfg', 'version', 'exported'}`` as audiocraft's
``utils/export.py`` writes it: exactly what ``MusicGen.get_pretrained(DIR)`` reads.

Loading never runs pickled code: files are read with ``torch.load(weights_only=True)``, which
accepts only tensors and plain containers, and anything else is refused with a
:class:`~soundscape.errors.ModelError`. Nothing here downloads: a hub id with no local folder is
an error that says how to register local weights.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from soundscape.atomic import atomic_path
from soundscape.errors import ModelError

LM_FILE = "state_dict.bin"
COMPRESSION_FILE = "compression_state_dict.bin"
CHECKPOINT_FILES = (LM_FILE, COMPRESSION_FILE)
_PACKAGE_KEYS = ("best_state", "xp.cfg")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# --- hashes ----------------------------------------------------------------------------------

def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_hashes(model_dir: str | Path) -> dict[str, str]:
    """The sha256 of each checkpoint file and of the model as a whole.

    Returns:
        ``{"lm": ..., "compression": ..., "model": ...}``; ``model`` is the sha256 of the two
        file hashes in a fixed text form, so it changes when either file does.
    """
    folder = check_model_dir(model_dir)
    lm = file_sha256(folder / LM_FILE)
    compression = file_sha256(folder / COMPRESSION_FILE)
    return {"lm": lm, "compression": compression, "model": combined_sha256(lm, compression)}


def combined_sha256(lm_sha256: str, compression_sha256: str) -> str:
    text = f"{LM_FILE} {lm_sha256}\n{COMPRESSION_FILE} {compression_sha256}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def state_sha256(module_or_state) -> str:
    """A hash of a module's parameters and buffers (names, dtypes, shapes and values)."""
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


# --- folders and safe reads ------------------------------------------------------------------

def check_model_dir(model_dir: str | Path) -> Path:
    """The folder as a Path, or a ModelError that says what is wrong and what to do next."""
    text = str(model_dir)
    folder = Path(model_dir).expanduser()
    if not folder.exists():
        if _HUB_ID.match(text):
            raise ModelError(
                f"{text!r} is a model hub id, and soundscape never downloads weights: download the "
                f"checkpoint folder yourself, then register it with "
                f"`soundscape model add DIR --name NAME --license EXPR --lineage-unknown` "
                f"(or --trained-on DATASET)")
        raise ModelError(f"model folder {text} does not exist")
    if not folder.is_dir():
        raise ModelError(f"{text} is not a folder: a model is an audiocraft checkpoint folder "
                         f"with {LM_FILE} and {COMPRESSION_FILE}")
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        hf = transformers_musicgen(folder)
        if hf is not None:
            raise ModelError(
                f"{text} is a Hugging Face transformers MusicGen folder ({hf['name_or_path']}), "
                f"not an audiocraft checkpoint: soundscape runs audiocraft checkpoints; Meta's "
                f"hub repositories also publish them ({' and '.join(CHECKPOINT_FILES)}): put those "
                f"two files in a folder and register it with `soundscape model add`")
        raise ModelError(f"{text} is not an audiocraft checkpoint folder: missing "
                         f"{' and '.join(missing)}")
    return folder


# Hugging Face transformers writes config.json with these model types for MusicGen.
TRANSFORMERS_MODEL_TYPES = ("musicgen", "musicgen_melody")


def transformers_musicgen(folder: str | Path) -> dict | None:
    """What a Hugging Face transformers MusicGen folder says it is, else None.

    Reads only ``config.json`` (never the weights): ``model_type``, ``architectures`` and
    ``_name_or_path`` (the hub id it was saved from, e.g. ``facebook/musicgen-small``; the
    folder's own name when the config does not say).
    """
    config = Path(folder) / "config.json"
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("model_type") not in TRANSFORMERS_MODEL_TYPES:
        return None
    name = data.get("_name_or_path")
    return {"model_type": data["model_type"], "architectures": list(data.get("architectures") or []),
            "name_or_path": str(name) if isinstance(name, str) and name.strip() else Path(folder).name}


def read_package(path: str | Path) -> dict:
    """Read one checkpoint file safely (weights only) and check its shape.

    Raises:
        ModelError: the file carries pickled objects other than tensors and plain config, or is
            not a checkpoint in audiocraft's exported form.
    """
    path = Path(path)
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _first_line(str(exc))
        if not _looks_like_pickle(path) and "Unsupported global" not in found:
            raise ModelError(f"{path} is not a readable torch checkpoint ({found})") from None
        raise ModelError(f"refused to load {path}: it carries pickled objects other than tensors "
                         f"and plain config, which could run code ({found})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable torch checkpoint "
                         f"({_first_line(str(exc))})") from None
    except Exception as exc:  # noqa: BLE001 - a foreign file fails inside the unpickler in any way
        # (a text file named state_dict.bin dies with KeyError from the pickle memo).
        raise ModelError(f"{path} is not a readable torch checkpoint (reading it failed with "
                         f"{type(exc).__name__})") from None
    if not isinstance(package, dict):
        raise ModelError(f"{path} is not an audiocraft checkpoint: expected a dict with "
                         f"'best_state' and 'xp.cfg', found {type(package).__name__}")
    if "pretrained" in package and "best_state" not in package:
        return package  # a reference to another compression model; the caller decides
    missing = [key for key in _PACKAGE_KEYS if key not in package]
    if missing:
        raise ModelError(f"{path} is not an audiocraft checkpoint: missing "
                         f"{', '.join(repr(k) for k in missing)}")
    state = package["best_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: 'best_state' must map names to tensors")
    if not isinstance(package["xp.cfg"], (str, dict)):
        raise ModelError(f"{path}: 'xp.cfg' must be YAML text or a plain dict")
    return package


def _looks_like_pickle(path: Path) -> bool:
    """A torch zip archive or a bare pickle (protocol 2+), as opposed to some other file."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return head == b"PK" or head[:1] == b"\x80"


def package_config(package: dict, path: str | Path):
    """The OmegaConf config a checkpoint file carries."""
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.create(package["xp.cfg"])
    except Exception as exc:  # YAML errors come in several classes
        raise ModelError(f"{path}: 'xp.cfg' is not a valid config ({_first_line(str(exc))})") from None
    return cfg


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # torch's weights-only message puts the useful part ("Unsupported global: ...") further down.
    for line in lines:
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line
    return lines[0] if lines else "unknown error"


# --- export ----------------------------------------------------------------------------------

def export_model(compression_model, lm, cfg, out_dir: str | Path, *,
                 compression_package: dict | None = None, compression_file: Path | None = None,
                 lm_file: Path | None = None) -> dict[str, str]:
    """Write a model folder that ``MusicGen.get_pretrained(out_dir)`` loads.

    Both files are ``{'best_state', 'xp.cfg', 'version', 'exported'}`` with the full config as
    YAML text (audiocraft's habit), written atomically.

    Args:
        compression_model: the EnCodec model (ignored when ``compression_package`` is given).
        lm: the language model; adapters must already be merged into its weights.
        cfg: the OmegaConf config both modules were built from.
        out_dir: the folder to write (created when missing).
        compression_package: an already-exported compression package to write unchanged.
        compression_file, lm_file: a file already in place in ``out_dir`` (copied byte for byte
            from a base model) that is kept as it is.

    Returns:
        :func:`checkpoint_hashes` of the written folder.
    """
    import audiocraft
    from omegaconf import OmegaConf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_yaml = OmegaConf.to_yaml(cfg)
    if compression_file is None:
        if compression_package is None:
            compression_package = {"best_state": _cpu_state(compression_model),
                                   "xp.cfg": cfg_yaml, "version": audiocraft.__version__,
                                   "exported": True}
        _atomic_save(compression_package, out / COMPRESSION_FILE)
    elif Path(compression_file).resolve() != (out / COMPRESSION_FILE).resolve():
        raise ValueError("compression_file must already be in out_dir")
    if lm_file is None:
        lm_package = {"best_state": _cpu_state(lm), "xp.cfg": cfg_yaml,
                      "version": audiocraft.__version__, "exported": True}
        _atomic_save(lm_package, out / LM_FILE)
    elif Path(lm_file).resolve() != (out / LM_FILE).resolve():
        raise ValueError("lm_file must already be in out_dir")
    return checkpoint_hashes(out)


def _cpu_state(module) -> dict[str, torch.Tensor]:
    # clone(): a state dict shares storage with the live module, and torch.save of a view would
    # write the whole underlying storage.
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# --- load ------------------------------------------------------------------------------------

def load_modules(model_dir: str | Path, *, device: str | torch.device = "cpu",
                 dtype: str | None = None):
    """Safely rebuild ``(compression_model, lm, cfg)`` from a checkpoint folder.

    Args:
        model_dir: an audiocraft checkpoint folder.
        device: where to build the modules.
        dtype: the LM's dtype ("float32", "float16"); default as audiocraft's loader chooses
            (float32 on CPU, float16 on GPU).

    Raises:
        ModelError: not a checkpoint folder, an unsafe file, or a config audiocraft cannot build.
    """
    from audiocraft.models import builders as ac_builders
    from omegaconf import OmegaConf

    from soundscape.engines.musicgen.conditioning import text_encoder_for

    folder = check_model_dir(model_dir)
    device = torch.device(device)
    lm_path, comp_path = folder / LM_FILE, folder / COMPRESSION_FILE
    lm_package = read_package(lm_path)
    comp_package = read_package(comp_path)
    if "pretrained" in lm_package and "best_state" not in lm_package:
        raise ModelError(f"{lm_path} is not an audiocraft LM checkpoint: missing 'best_state'")
    compression_model = _load_compression(comp_package, comp_path, device)

    cfg = package_config(lm_package, lm_path)
    cfg.device = str(device)
    cfg.dtype = dtype or ("float32" if device.type == "cpu" else "float16")
    # Keys old checkpoints carry that today's builders reject (as audiocraft's own loader does).
    for dotted in ("conditioners.self_wav.chroma_stem.cache_path",
                   "conditioners.args.merge_text_conditions_p", "conditioners.args.drop_desc_p"):
        _drop_key(cfg, dotted)
    _refuse_downloading_conditioners(cfg, lm_path)
    try:
        with text_encoder_for(cfg):
            lm = ac_builders.get_lm_model(cfg)
        lm.load_state_dict(lm_package["best_state"])
    except ModelError as exc:
        raise ModelError(f"{lm_path}: {exc}") from None
    except (KeyError, AttributeError, ValueError, RuntimeError, TypeError, AssertionError) as exc:
        raise ModelError(f"{lm_path}: the LM cannot be rebuilt from its config "
                         f"({_first_line(str(exc))})") from None
    lm.eval()
    lm.cfg = cfg
    return compression_model, lm, cfg


def load_compression_model(model_dir: str | Path, *, device: str | torch.device = "cpu"):
    """Only the compression model of a checkpoint folder: what an encoding worker needs (the
    LM can be many times its size)."""
    folder = check_model_dir(model_dir)
    path = folder / COMPRESSION_FILE
    return _load_compression(read_package(path), path, torch.device(device))


def _load_compression(package: dict, path: Path, device: torch.device):
    from audiocraft.models import builders as ac_builders

    if "best_state" not in package:
        ref = package.get("pretrained")
        raise ModelError(f"{path} refers to the pretrained compression model {ref!r} instead of "
                         f"carrying its weights; export that model into this folder first "
                         f"(soundscape never downloads)")
    cfg = package_config(package, path)
    cfg.device = str(device)
    try:
        model = ac_builders.get_compression_model(cfg)
        model.load_state_dict(package["best_state"])
    except (KeyError, AttributeError, ValueError, RuntimeError, TypeError, AssertionError) as exc:
        raise ModelError(f"{path}: the compression model cannot be rebuilt from its config "
                         f"({_first_line(str(exc))})") from None
    return model.eval()


def _drop_key(cfg, dotted: str) -> None:
    from omegaconf import OmegaConf

    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        if node is None or part not in node:
            return
        node = node[part]
    if node is not None and parts[-1] in node:
        OmegaConf.set_struct(node, False)
        del node[parts[-1]]


def _text_encoder(cfg):
    return ((cfg.get("soundscape") or {}).get("conditioning") or {}).get("text_encoder")


def _refuse_downloading_conditioners(cfg, path: Path) -> None:
    """T5 and CLAP conditioners, and the whitespace tokenizer, fetch weights from the network."""
    conditioners = cfg.get("conditioners") or {}
    for name, spec in conditioners.items():
        if name == "args" or spec is None:
            continue
        kind = spec.get("model")
        if kind == "t5" and name == "description" and _text_encoder(cfg) is not None:
            continue  # the studio's own t5-base, from the folder the model records
        if kind in ("t5", "clap"):
            raise ModelError(
                f"{path}: its {name!r} conditioner is {kind.upper()}, whose text-encoder weights "
                f"audiocraft downloads at load time; soundscape runs offline and cannot load it")
        if kind == "lut" and spec.get("lut", {}).get("tokenizer") == "whitespace":
            raise ModelError(f"{path}: its {name!r} conditioner uses the 'whitespace' tokenizer, "
                             f"which downloads a spaCy model; soundscape runs offline")


def load_model(model_dir: str | Path, *, device: str | torch.device | None = None,
               dtype: str | None = None, name: str | None = None):
    """Safely load a checkpoint folder as audiocraft's ``MusicGen``.

    Args:
        model_dir: an audiocraft checkpoint folder.
        device: default cuda when available, else cpu.
        dtype: see :func:`load_modules`.
        name: the MusicGen's name (default the folder name).
    """
    from audiocraft.models import MusicGen

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    compression_model, lm, _ = load_modules(model_dir, device=device, dtype=dtype)
    return MusicGen(name or Path(model_dir).name, compression_model, lm)


def describe_checkpoint(model_dir: str | Path, *, require_offline: bool = False) -> dict:
    """Architecture facts of a checkpoint folder, read (safely) from its files without building it.

    Args:
        model_dir: the checkpoint folder.
        require_offline: refuse (ModelError) a config whose conditioners would download weights.
    """
    folder = check_model_dir(model_dir)
    lm_package = read_package(folder / LM_FILE)
    comp_package = read_package(folder / COMPRESSION_FILE)
    if "best_state" not in lm_package:
        raise ModelError(f"{folder / LM_FILE} is not an audiocraft LM checkpoint: missing "
                         f"'best_state'")
    cfg = package_config(lm_package, folder / LM_FILE)
    if require_offline:
        _refuse_downloading_conditioners(cfg, folder / LM_FILE)
    tl = cfg.get("transformer_lm", {}) or {}
    lm_params = sum(t.numel() for t in lm_package["best_state"].values())
    comp_params = (sum(t.numel() for t in comp_package["best_state"].values())
                   if "best_state" in comp_package else None)
    conditioners = {k: (v or {}).get("model") for k, v in (cfg.get("conditioners") or {}).items()
                    if k != "args"}
    return {
        "arch": (cfg.get("soundscape") or {}).get("arch"),
        "dim": tl.get("dim"), "num_layers": tl.get("num_layers"),
        "num_heads": tl.get("num_heads"), "n_q": tl.get("n_q"), "card": tl.get("card"),
        "window_seconds": (cfg.get("dataset") or {}).get("segment_duration"),
        "sample_rate": (cfg.get("encodec") or {}).get("sample_rate"),
        "conditioners": conditioners,
        "lm_parameters": lm_params,
        "compression_parameters": comp_params,
        "compression_has_config": "xp.cfg" in comp_package,
        "audiocraft_version": lm_package.get("version"),
        "training": dict((cfg.get("soundscape") or {}).get("training") or {}),
        "codec": _codec_record(comp_package, folder / COMPRESSION_FILE),
    }


# Where the codec stage writes what it did, in the compression file's config.
CODEC_RECORD_KEY = "codec"


def codec_record(model_dir: str | Path) -> dict:
    """Whether a model folder's codec (EnCodec) was trained, and what its training recorded.

    Read from the compression file's config (safely, without building the model):

    - ``soundscape.codec`` written by the codec stage: ``{"trained": True, "steps", "heldout",
      ...}``, returned as it is;
    - a codec stage from before that record (``soundscape.training.stage == "codec"``):
      trained, steps only;
    - a codec built by soundscape's own builders (``soundscape.arch``, i.e. ``model new``) and
      never trained: ``{"trained": False}``, random weights;
    - anything else (weights trained elsewhere, such as Meta's EnCodec, or a reference to a
      published codec): ``{"trained": True, "source": "outside soundscape"}``.
    """
    path = check_model_dir(model_dir) / COMPRESSION_FILE
    return _codec_record(read_package(path), path)


def _codec_record(package: dict, path: Path) -> dict:
    from omegaconf import OmegaConf

    if "xp.cfg" not in package:
        return {"trained": True, "source": "outside soundscape"}
    cfg = package_config(package, path)
    ours = cfg.get("soundscape") or {}
    record = ours.get(CODEC_RECORD_KEY)
    if record is not None:
        return OmegaConf.to_container(record, resolve=True)
    training = ours.get("training") or {}
    if training.get("stage") == "codec":
        return {"trained": True, "steps": training.get("steps")}
    if ours.get("arch") is not None:
        return {"trained": False}
    return {"trained": True, "source": "outside soundscape"}
