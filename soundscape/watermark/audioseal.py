"""AudioSeal as a second marker, from weights a studio keeps in a local folder (docs/watermark.md).

soundscape's own mark (this package) is always written; where the workspace names an AudioSeal
folder (``audioseal_dir`` in soundscape.toml, env ``SOUNDSCAPE_AUDIOSEAL_DIR``), AudioSeal's
generator adds its watermark after it and ``detect`` / ``verify`` run its detector too. The
folder holds the two files of AudioSeal's model card, ``generator_base.pth`` and
``detector_base.pth``. Nothing here downloads: the audioseal package's loaders resolve model
cards to URLs, so they are never called; checkpoints are read here with
``torch.load(weights_only=True)`` and built with ``audioseal.builder``.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from soundscape.errors import ModelError, SoundscapeError

SCHEME = "audioseal"
GENERATOR_FILE = "generator_base.pth"
DETECTOR_FILE = "detector_base.pth"
MODEL_RATE = 16000  # AudioSeal's base models are trained on 16 kHz mono
# The card AudioSeal ships for those files: the config of a checkpoint that carries none.
_CARDS = {GENERATOR_FILE: "audioseal_wm_16bits", DETECTOR_FILE: "audioseal_detector_16bits"}
# AudioSeal's own defaults (AudioSealDetector.detect_watermark): a frame is marked when its
# probability passes 0.5, and the file's score is the share of such frames. No false-positive
# bound comes with it (unlike soundscape's mark, docs/watermark.md).
DETECTION_THRESHOLD = 0.5
# The generator and detector run on 10 s pieces with 1 s of context either side (their LSTM
# would otherwise hold a whole bed in memory at once).
CHUNK_SECONDS = 10.0
CONTEXT_SECONDS = 1.0
# After marking, the loudness may move at most this much (the presets allow +-0.5 LU) and the
# true peak stays under the preset's ceiling; otherwise the watermark is scaled down.
MAX_LOUDNESS_SHIFT_LU = 0.05
_MAX_HALVINGS = 12
LOOP_FADE_SECONDS = 0.05  # a loop's watermark fades in and out over this (raised cosine)


@dataclass(frozen=True)
class SealWeights:
    """A loaded AudioSeal generator and detector, and the hashes of their files."""

    folder: Path
    generator: object  # audioseal.models.AudioSealWM
    detector: object   # audioseal.models.AudioSealDetector
    nbits: int
    generator_sha256: str
    detector_sha256: str


def folder_of(workspace) -> Path | None:
    """The workspace's AudioSeal folder (``audioseal_dir``, relative to the workspace), or None."""
    value = workspace.setting("audioseal_dir")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SoundscapeError(f"{workspace.home / 'soundscape.toml'}: audioseal_dir must be a quoted "
                              "folder path such as \"/srv/studio/audioseal\"")
    return workspace.home / Path(value).expanduser()


def for_workspace(workspace) -> SealWeights | None:
    """The workspace's AudioSeal weights, loaded (once per process while the files are
    unchanged), or None when it names no folder.

    Raises:
        ModelError: the folder is missing, lacks a file, or holds the wrong kind of checkpoint.
    """
    folder = folder_of(workspace)
    return None if folder is None else load(folder)


_LOADED: dict[tuple, SealWeights] = {}


def load(folder: str | Path) -> SealWeights:
    """Load the generator and detector from ``folder`` (see the module's docstring).

    Raises:
        ModelError: in one line, what is wrong with the folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"the AudioSeal folder {folder} does not exist (audioseal_dir names a "
                         f"local folder holding {GENERATOR_FILE} and {DETECTOR_FILE})")
    missing = [name for name in (GENERATOR_FILE, DETECTOR_FILE) if not (folder / name).is_file()]
    if missing:
        raise ModelError(f"the AudioSeal folder {folder} lacks {' and '.join(missing)} (it needs "
                         f"{GENERATOR_FILE} and {DETECTOR_FILE}, the files of AudioSeal's model card)")
    stamp = tuple((folder / n).stat() for n in (GENERATOR_FILE, DETECTOR_FILE))
    key = (str(folder.resolve()),) + tuple((s.st_size, s.st_mtime_ns, s.st_ino) for s in stamp)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = _build(folder)
    return _LOADED[key]


def _build(folder: Path) -> SealWeights:
    # torch and audioseal load only here: a workspace without AudioSeal never pays for them.
    try:
        from audioseal.builder import (AudioSealDetectorConfig, AudioSealWMConfig,
                                       create_detector, create_generator)
        from audioseal.loader import (AudioSeal, convert_state_dict_for_scriptable_model,
                                      load_state_dict)
    except ImportError:
        raise ModelError(f"audioseal_dir names {folder}, but AudioSeal is not installed: install "
                         "soundscape with its musicgen extra (pip install 'soundscape[musicgen]')"
                         ) from None

    built = {}
    for name, kind, config_type, create, prefix in (
            (GENERATOR_FILE, "generator", AudioSealWMConfig, create_generator, "encoder."),
            (DETECTOR_FILE, "detector", AudioSealDetectorConfig, create_detector, "detector.")):
        path = folder / name
        state, config = _read_checkpoint(path)
        if not any(k.startswith(prefix) for k in state):
            other = "detector" if kind == "generator" else "generator"
            looks = (f"a {other} checkpoint" if any(k.startswith("detector." if other == "detector"
                                                                  else "encoder.") for k in state)
                     else "not an AudioSeal checkpoint")
            raise ModelError(f"{path} is {looks}, not AudioSeal's {kind}")
        try:
            parsed = AudioSeal.parse_config(config, config_type=config_type)
            model = create(parsed)
            # Checkpoints saved before AudioSeal's scriptable modules name their convolutions
            # one level up; a state dict saved from these modules needs no renaming.
            if set(state) != set(model.state_dict()):
                state = convert_state_dict_for_scriptable_model(state)
            load_state_dict(model, state)
        except Exception as exc:  # noqa: BLE001 - a foreign checkpoint fails in many ways
            raise ModelError(f"{path} does not fit AudioSeal's {kind} its config describes "
                             f"({_first_line(exc)})") from None
        built[kind] = (model.eval(), int(parsed.nbits), _sha256(path))
    (generator, nbits, g_sha), (detector, d_nbits, d_sha) = built["generator"], built["detector"]
    if nbits != d_nbits:
        raise ModelError(f"the AudioSeal folder {folder} pairs a {nbits}-bit generator with a "
                         f"{d_nbits}-bit detector")
    return SealWeights(folder=folder, generator=generator, detector=detector, nbits=nbits,
                       generator_sha256=g_sha, detector_sha256=d_sha)


def _safe_globals():
    """What an AudioSeal checkpoint's pickled OmegaConf config is made of, and nothing that
    runs code: the released files carry their config as a DictConfig."""
    import collections
    import typing

    from omegaconf import DictConfig, ListConfig, base, nodes

    return [DictConfig, ListConfig, base.ContainerMetadata, base.Metadata, typing.Any,
            collections.defaultdict, dict, list, int, float, str, bool, nodes.AnyNode,
            nodes.StringNode, nodes.IntegerNode, nodes.FloatNode, nodes.BooleanNode]


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    """(state dict, config as a plain dict) of one checkpoint file, read as weights only."""
    import torch
    from omegaconf import DictConfig, OmegaConf

    try:
        with torch.serialization.safe_globals(_safe_globals()):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(f"refused to load {path}: it is not a torch checkpoint of tensors and "
                         f"plain config ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - a foreign file fails inside the unpickler in any way
        raise ModelError(f"{path} is not a readable torch checkpoint ({_first_line(exc)})") from None
    if not isinstance(package, dict):
        raise ModelError(f"{path} is not an AudioSeal checkpoint (a {type(package).__name__})")
    config = package.get("xp.cfg")
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config)
    state = package
    if isinstance(package.get("best_state"), dict):
        state = package["best_state"].get("model", package["best_state"])
    elif isinstance(package.get("model"), dict):
        state = package["model"]
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not an AudioSeal checkpoint (no state dict of tensors)")
    if not isinstance(config, dict):
        config = _card(path.name)
    return state, config


def _card(name: str) -> dict:
    """The config AudioSeal's own model card gives the file ``name`` (its packaged YAML; the
    card's download address is dropped)."""
    from omegaconf import OmegaConf

    card = Path(__import__("audioseal").__file__).parent / "cards" / f"{_CARDS[name]}.yaml"
    config = OmegaConf.to_container(OmegaConf.load(card))
    config.pop("checkpoint", None)
    return config


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (torch's state-dict errors begin with a bare title)."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    text = text or type(exc).__name__
    return text if len(text) <= 240 else text[:237] + "..."


# --- the message ------------------------------------------------------------------------------

def message_bits(key_id: int, mark_id: int, nbits: int) -> np.ndarray:
    """The ``nbits`` AudioSeal carries: the first bits of soundscape's payload (16-bit key id,
    then the 32-bit mark id), so the 16-bit base model carries the ledger's key id."""
    value = (key_id << 32) | mark_id
    return np.array([(value >> (47 - i)) & 1 if i < 48 else 0 for i in range(nbits)], dtype=np.int64)


def bits_hex(bits) -> str:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:0{max(1, math.ceil(len(bits) / 4))}x}"


# --- embedding --------------------------------------------------------------------------------

def _read(audio, start: int, stop: int) -> np.ndarray:
    return audio.read(start, stop) if hasattr(audio, "read") else audio[:, start:stop]


def _eager():
    """AudioSeal's SEANet modules compile themselves with torch.compile on first use (about 4 s
    of CPU, a C compiler, and a recompile for every new input length); run them eagerly."""
    from audioseal.libs.moshi.utils.compile import no_compile

    return no_compile()


def _resampling(sample_rate: int) -> tuple[int, int]:
    """(up, down) from ``sample_rate`` to the model's rate."""
    g = gcd(MODEL_RATE, sample_rate)
    return MODEL_RATE // g, sample_rate // g


def watermark_signal(weights: SealWeights, audio, sample_rate: int, bits: np.ndarray) -> np.ndarray:
    """AudioSeal's watermark for ``audio`` (channels, n): made from the channels' mean at 16 kHz,
    resampled back to ``sample_rate``; (n,) float32, to be added to every channel."""
    import torch
    from scipy.signal import resample_poly

    up, down = _resampling(sample_rate)
    n = audio.shape[-1]
    chunk = int(CHUNK_SECONDS * sample_rate) // down * down
    context = int(CONTEXT_SECONDS * sample_rate) // down * down
    out = np.zeros(n, dtype=np.float32)
    message = torch.as_tensor(bits, dtype=torch.long)[None, :]
    for start in range(0, n, chunk):
        a, b = max(0, start - context), min(n, start + chunk + context)
        mid = _read(audio, a, b).astype(np.float64).mean(axis=0)
        x = resample_poly(mid, up, down).astype(np.float32)
        with torch.no_grad(), _eager():
            wm = weights.generator.get_watermark(torch.from_numpy(x)[None, None, :],
                                                 message=message)[0, 0].numpy()
        back = resample_poly(wm.astype(np.float64), down, up)[: b - a]
        stop = min(n, start + chunk)
        out[start:stop] = back[start - a: stop - a]
    return out


@dataclass(frozen=True)
class Sealed:
    """What AudioSeal added to a master."""

    weights: SealWeights
    bits: np.ndarray
    strength: float      # the generator's output was added times this (1.0 unless levels forced less)
    snr_db: float

    def describe(self) -> dict:
        return {"scheme": SCHEME, "nbits": self.weights.nbits, "message": bits_hex(self.bits),
                "generator_sha256": self.weights.generator_sha256,
                "detector_sha256": self.weights.detector_sha256,
                "model_rate": MODEL_RATE, "strength": round(self.strength, 6),
                "snr_db": None if not math.isfinite(self.snr_db) else round(self.snr_db, 2)}


def seal_master(mastered, weights: SealWeights, *, key_id: int, mark_id: int) -> dict:
    """Add AudioSeal's watermark to a (marked) master in place and re-measure its loudness and
    true peak; the facts for ``watermark["second"]``.

    The watermark is added at full strength unless that would move the loudness more than
    ``MAX_LOUDNESS_SHIFT_LU`` or the true peak over the preset's ceiling less the limiter's
    margin (or the master's own true peak, if higher); then it is halved until neither.
    """
    from soundscape.audio import loudness as meter
    from soundscape.audio.master import LIMITER_MARGIN_DB, get_preset

    audio, sr = mastered.audio, mastered.sample_rate
    bits = message_bits(key_id, mark_id, weights.nbits)
    wm = watermark_signal(weights, audio, sr, bits)
    if getattr(mastered, "loop", False):
        # A loop's end plays into its start: the watermark, made without wrapping round, would
        # step at the seam, so it fades out at both ends and the seam stays mastering's.
        n = min(int(LOOP_FADE_SECONDS * sr), wm.size // 2)
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)
        wm[:n] *= ramp
        wm[wm.size - n:] *= ramp[::-1]
    preset = get_preset(mastered.preset)
    ceiling = None
    if preset.true_peak_dbtp is not None:
        ceiling = max(preset.true_peak_dbtp - LIMITER_MARGIN_DB, mastered.true_peak_dbtp)
    before = mastered.loudness_lufs
    host_energy = _mean_square(audio)
    strength, applied = 1.0, 0.0
    for _ in range(_MAX_HALVINGS + 1):
        _add(audio, wm, strength - applied)
        applied = strength
        energies = meter.subblock_energies(audio, sr)
        stats = meter.loudness_stats(energies)
        peak = meter.true_peak(audio)
        peak_db = 20.0 * math.log10(max(peak, 1e-12))
        loud_ok = (not math.isfinite(before) or not math.isfinite(stats.integrated)
                   or abs(stats.integrated - before) <= MAX_LOUDNESS_SHIFT_LU)
        if loud_ok and (ceiling is None or peak_db <= ceiling):
            break
        strength /= 2.0
    else:
        _add(audio, wm, -applied)
        applied = strength = 0.0
        energies = meter.subblock_energies(audio, sr)
        stats = meter.loudness_stats(energies)
        peak = meter.true_peak(audio)
    mark_energy = float(np.mean(np.square(wm.astype(np.float64)))) * applied ** 2
    mastered.energies = energies
    mastered.chunk_true_peaks = None
    mastered.loudness_lufs = stats.integrated
    mastered.true_peak_dbtp = 20.0 * math.log10(max(peak, 1e-12))
    mastered.sample_peak_dbfs = meter.sample_peak_dbfs(audio) if not hasattr(audio, "read") \
        else mastered.sample_peak_dbfs
    mastered.loudness_range_lu = stats.loudness_range
    mastered.max_momentary_lufs = stats.max_momentary
    mastered.max_short_term_lufs = stats.max_short_term
    snr = 10.0 * math.log10(host_energy / mark_energy) if mark_energy > 0 and host_energy > 0 \
        else float("inf")
    return Sealed(weights, bits, applied, snr).describe()


def _add(audio, wm: np.ndarray, gain: float, *, block: int = 1 << 20) -> None:
    if gain == 0.0:
        return
    n = audio.shape[-1]
    for start in range(0, n, block):
        stop = min(n, start + block)
        piece = _read(audio, start, stop) + (gain * wm[start:stop])[None, :].astype(np.float32)
        if hasattr(audio, "write"):
            audio.write(start, piece)
        else:
            audio[:, start:stop] = piece


def _mean_square(audio, *, block: int = 1 << 20) -> float:
    n = audio.shape[-1]
    total = 0.0
    for start in range(0, n, block):
        piece = _read(audio, start, min(n, start + block)).astype(np.float64).mean(axis=0)
        total += float(np.square(piece).sum())
    return total / max(n, 1)


# --- detection --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SealFound:
    """AudioSeal's detector on a file: the share of frames it calls marked, and the message."""

    score: float
    bits: np.ndarray
    weights: SealWeights

    @property
    def present(self) -> bool:
        return self.score >= DETECTION_THRESHOLD

    def describe(self, *, expected_key_id: int | None = None) -> dict:
        out = {"scheme": SCHEME, "score": round(self.score, 4), "threshold": DETECTION_THRESHOLD,
               "present": self.present, "message": bits_hex(self.bits),
               "detector_sha256": self.weights.detector_sha256}
        if expected_key_id is not None:
            want = message_bits(expected_key_id, 0, min(self.weights.nbits, 16))
            out["names_this_ledger"] = bool(np.array_equal(self.bits[: want.size], want))
        return out


def detect(weights: SealWeights, audio: np.ndarray, sample_rate: int) -> SealFound:
    """Run AudioSeal's detector over ``audio`` (channels, n) or (n,), in pieces at 16 kHz."""
    import torch
    from scipy.signal import resample_poly

    audio = np.atleast_2d(np.asarray(audio))
    up, down = _resampling(sample_rate)
    mid = resample_poly(audio.astype(np.float64).mean(axis=0), up, down).astype(np.float32)
    chunk = int(CHUNK_SECONDS * MODEL_RATE)
    marked = frames = 0
    logit_sum = np.zeros(weights.nbits)
    for start in range(0, mid.size, chunk):
        piece = mid[start: start + chunk]
        if piece.size < 320:  # shorter than the detector's strides; too little to judge
            continue
        with torch.no_grad(), _eager():
            result, message = weights.detector(torch.from_numpy(piece)[None, None, :])
        t = result.shape[-1]
        marked += int((result[0, 1] > DETECTION_THRESHOLD).sum())
        frames += t
        p = message[0].double().clamp(1e-7, 1 - 1e-7).numpy()
        logit_sum += np.log(p / (1 - p)) * t
    score = marked / frames if frames else 0.0
    bits = (logit_sum > 0).astype(np.int64) if frames else np.zeros(weights.nbits, dtype=np.int64)
    return SealFound(score=score, bits=bits, weights=weights)

