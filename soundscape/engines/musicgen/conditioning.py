"""What a MusicGen model is conditioned on: musical attributes read by the composer's prompt parser.

A description hashed whole to one embedding row does not generalise: "Rain." and "rain" land on
different rows, and an unseen phrasing on an untrained one. So a model built with
``conditioning="attributes"`` has one audiocraft look-up-table conditioner per attribute the
composer already understands (mood, key, tempo band, two texture slots, two instrument slots),
each filled by :func:`soundscape.spec.read_prompt` (or a corpus clip's sidecar), plus the
description normalised (lower case, punctuation stripped).

The conditioners are stock ``LUTConditioner``s with the ``noop`` tokenizer, so audiocraft's own
``MusicGen.get_pretrained`` still loads the folder. ``noop`` hashes a string to a row (sha256 mod
the table size), and the hash collides: each vocabulary value is therefore *spelt* as a token
that lands on a row of its own (the value, else the value with a ``~N`` suffix), and the
spelling table is stored in the model's config (``soundscape.conditioning.tokens``), so a model
keeps its rows even if the vocabulary grows later.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from soundscape.errors import ParameterError
from soundscape.spec import INSTRUMENTS, MODES, MOODS, TEXTURES, Key, parse_key, read_prompt

DESCRIPTION = "description"
# The conditioners of an attribute model, in the order the fuser sees them.
ATTRIBUTES = ("mood", "key", "tempo", "texture", "texture_2", "instrument", "instrument_2")
KINDS = ("description", "attributes", "t5")
# The one text encoder soundscape accepts, and only from the studio's own disk (never
# downloaded): Google's t5-base, Apache-2.0 (its model card on the Hugging Face hub).
T5_NAME = "t5-base"
T5_LICENSE = "Apache-2.0"

# Tempo bands: the composer's tempo words (spec.TEMPO_WORDS) grouped into five bands, upper
# bounds exclusive. A band, not a bpm: a look-up table cannot interpolate between numbers.
TEMPO_BANDS: tuple[tuple[str, float], ...] = (
    ("very slow", 56.0), ("slow", 72.0), ("moderate", 96.0), ("lively", 120.0),
    ("fast", float("inf")))

# Where an attribute's value came from counts as "said" when the user said it.
_SAID = ("flag", "prompt")


def tempo_band(bpm: float | None) -> str | None:
    """The band a tempo falls in (None for None or anything that is not a positive number)."""
    try:
        bpm = float(bpm)
    except (TypeError, ValueError):
        return None
    if not bpm > 0:
        return None
    for name, upper in TEMPO_BANDS:
        if bpm < upper:
            return name
    return TEMPO_BANDS[-1][0]


def normalise_description(text: str | None) -> str | None:
    """Lower case, punctuation stripped, spaces collapsed: "Rain." and " rain " are one row.

    ``#`` stays (it spells F# major); a text with no words left is None (unconditional).
    """
    if text is None:
        return None
    words = re.sub(r"[^\w#]+", " ", str(text).lower()).split()
    return " ".join(words) or None


def vocabulary() -> dict[str, tuple[str, ...]]:
    """Every value each attribute conditioner knows (lower case, as the prompt parser names them)."""
    keys = tuple(Key(tonic, mode).name.lower() for tonic in range(12) for mode in MODES)
    return {
        "mood": tuple(MOODS),
        "key": keys,
        "tempo": tuple(name for name, _ in TEMPO_BANDS),
        "texture": TEXTURES, "texture_2": TEXTURES,
        "instrument": INSTRUMENTS, "instrument_2": INSTRUMENTS,
    }


def _row(token: str, n_bins: int) -> int:
    # audiocraft's NoopTokenizer (utils.hash_trick): sha256 of the UTF-8 text, modulo the table.
    return int(hashlib.sha256(token.encode("utf-8")).hexdigest(), 16) % n_bins


def table_size(values: Sequence[str]) -> int:
    """A power of two at least four times the vocabulary, so spelling finds free rows quickly."""
    size = 16
    while size < 4 * len(values):
        size *= 2
    return size


def spell_tokens(values: Sequence[str], n_bins: int) -> dict[str, str]:
    """Each value's token: the value itself, else ``value~N`` for the first N whose row is free.

    Row 0 is audiocraft's padding row (an absent attribute) and is never given to a value.
    """
    taken, tokens = {0}, {}
    for value in values:
        token, n = value, 0
        while _row(token, n_bins) in taken:
            n += 1
            token = f"{value}~{n}"
        taken.add(_row(token, n_bins))
        tokens[value] = token
    return tokens


def find_local_t5() -> Path | None:
    """The t5-base snapshot in the Hugging Face cache, or None.

    Read straight from the cache's folder layout (``models--t5-base/refs/main`` names the
    snapshot under ``snapshots/``), so no hub client is called and nothing can be fetched.
    """
    repo = _hub_cache() / f"models--{T5_NAME.replace('/', '--')}"
    try:
        revision = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    snapshot = repo / "snapshots" / revision
    return snapshot if (snapshot / "config.json").is_file() else None


def _hub_cache() -> Path:
    import os

    return Path(os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface"), "hub"))


# t5-base's width: audiocraft's T5Conditioner assumes it for the name "t5-base".
T5_WIDTH = 768
T5_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
T5_TOKENIZERS = ("spiece.model", "tokenizer.json")


def check_t5_folder(folder: str | Path) -> dict[str, Any]:
    """What a T5 text-encoder folder holds, or one line saying why it cannot stand for t5-base.

    The folder is what transformers' ``save_pretrained`` writes (or a cache snapshot): a
    ``config.json`` of a T5 of t5-base's width, its weights and its SentencePiece tokenizer.
    Returns the ``text_encoder`` record a model keeps: name, license, path, where it came from
    and the sha256 of its weights file, so the lineage names the very weights.
    """
    from soundscape.errors import ModelError

    folder = Path(folder).expanduser()
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{folder}: no config.json, so it is not a transformers T5 folder "
                         f"(save one with save_pretrained, or point at a cache snapshot)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}/config.json cannot be read ({exc})") from None
    if not isinstance(config, dict) or config.get("model_type") != "t5":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise ModelError(f"{folder}: its config.json describes a {kind or 'non-T5'} model, not T5")
    if config.get("d_model") != T5_WIDTH:
        raise ModelError(f"{folder}: a T5 of width {config.get('d_model')}; soundscape's text "
                         f"conditioner reads {T5_NAME} (width {T5_WIDTH})")
    weights = next((folder / w for w in T5_WEIGHTS if (folder / w).is_file()), None)
    if weights is None:
        raise ModelError(f"{folder}: no T5 weights ({' or '.join(T5_WEIGHTS)})")
    if not any((folder / t).is_file() for t in T5_TOKENIZERS):
        raise ModelError(f"{folder}: no T5 tokenizer ({' or '.join(T5_TOKENIZERS)})")
    stat = weights.stat()
    in_cache = folder.resolve().is_relative_to(_hub_cache().resolve())
    return {"name": T5_NAME, "license": T5_LICENSE, "path": str(folder.resolve()),
            "source": "hf-cache" if in_cache else "folder",
            "weights": weights.name,
            "weights_sha256": _file_sha256(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)}


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """A file's sha256, read once per process while its size and time stay the same (a model's
    creation checks its T5 folder, then builds from it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_local_t5(folder: str | Path | None = None) -> dict[str, Any]:
    """The studio's t5-base, from ``folder`` or else the Hugging Face cache, as a ``text_encoder``
    record (see :func:`check_t5_folder`); one line saying what is missing otherwise."""
    from soundscape.errors import ModelError

    if folder is not None:
        return check_t5_folder(folder)
    found = find_local_t5()
    if found is None:
        raise ModelError(f"no local T5 text encoder: {T5_NAME} ({T5_LICENSE}) is not in the "
                         f"Hugging Face cache and soundscape never downloads it; give its "
                         f"folder with --t5-dir, or use --conditioning attributes")
    return check_t5_folder(found)


@contextmanager
def offline_t5(text_encoder: dict | None):
    """audiocraft's T5 conditioner loads ``t5-base`` by name; within this block that name is the
    model's recorded folder and nothing else, so nothing is looked up on the hub.

    transformers' ``from_pretrained(name)`` takes ``name`` as a local folder when one of that
    name exists, so the block works from a temporary folder holding a ``t5-base`` link to the
    recorded one (a plain ``save_pretrained`` folder or a cache snapshot alike). The weights
    must still be the ones the model recorded (by sha256).
    """
    import os
    import tempfile

    from soundscape.errors import ModelError

    if text_encoder is None:
        raise ModelError(f"its description conditioner is T5 but the model does not record which "
                         f"T5 folder it reads; soundscape cannot load an unnamed {T5_NAME}")
    folder = Path(text_encoder["path"])
    found = check_t5_folder(folder)
    if text_encoder.get("weights_sha256") not in (None, found["weights_sha256"]):
        raise ModelError(f"{folder}: these T5 weights are not the ones the model was built with "
                         f"(sha256 {found['weights_sha256'][:12]}…, recorded "
                         f"{text_encoder['weights_sha256'][:12]}…)")
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="soundscape-t5-") as stage:
        (Path(stage) / T5_NAME).symlink_to(folder.resolve(), target_is_directory=True)
        os.chdir(stage)
        try:
            yield found
        finally:
            os.chdir(here)


def text_encoder_for(cfg):
    """The block within which audiocraft may build a model config's conditioners: for a T5
    description conditioner, offline and shown only the model's recorded T5 folder."""
    import contextlib

    from omegaconf import OmegaConf

    if ((cfg.get("conditioners") or {}).get("description") or {}).get("model") != "t5":
        return contextlib.nullcontext()
    encoder = ((cfg.get("soundscape") or {}).get("conditioning") or {}).get("text_encoder")
    return offline_t5(OmegaConf.to_container(encoder) if encoder is not None else None)


def conditioner_config(kind: str, *, description_bins: int, dim: int,
                       t5_dir: str | Path | None = None) -> dict[str, Any]:
    """The ``conditioners``, ``fuser`` and ``attribute_dropout`` config entries for ``kind``,
    plus ``soundscape.conditioning`` (the kind and, for attributes, the spelling table).

    ``t5`` is the attributes with the description read by a local t5-base instead of a look-up
    table, from ``t5_dir`` or the Hugging Face cache (:func:`require_local_t5` must find it)."""
    if kind not in KINDS:
        raise ParameterError(f"unknown conditioning {kind!r}: choose {', '.join(KINDS)}")
    if t5_dir is not None and kind != "t5":
        raise ParameterError(f"a T5 folder goes with --conditioning t5, not {kind}")
    lut = {"n_bins": description_bins, "dim": dim, "tokenizer": "noop"}
    conditioners = {DESCRIPTION: {"model": "lut", "lut": lut}}
    if kind == DESCRIPTION:
        return {"conditioners": conditioners,
                "fuser": {"cross": [DESCRIPTION]}, "attribute_dropout": {},
                "soundscape": {"conditioning": {"kind": kind}}}
    tokens = {}
    for name, values in vocabulary().items():
        size = table_size(values)
        conditioners[name] = {"model": "lut", "lut": {"n_bins": size, "dim": dim,
                                                      "tokenizer": "noop"}}
        tokens[name] = spell_tokens(values, size)
    # Dropping each attribute now and then (as audiocraft's attribute dropout does for genre or
    # artist) teaches the model to answer to any subset of them; the description is dropped
    # more often so that the attributes, which generalise, carry the condition.
    dropout = {name: 0.1 for name in ATTRIBUTES}
    dropout[DESCRIPTION] = 0.5
    conditioning: dict[str, Any] = {"kind": kind, "tokens": tokens}
    if kind == "t5":
        conditioners[DESCRIPTION] = {"model": "t5", "t5": {"name": T5_NAME, "finetune": False,
                                                           "word_dropout": 0.0,
                                                           "normalize_text": False}}
        conditioning["text_encoder"] = require_local_t5(t5_dir)
    return {"conditioners": conditioners,
            "fuser": {"cross": [DESCRIPTION, *ATTRIBUTES]},
            "attribute_dropout": {"text": dropout},
            "soundscape": {"conditioning": conditioning}}


@dataclass(frozen=True)
class Condition:
    """What one clip or cue tells the model; None means "not said" (audiocraft's null row)."""

    description: str | None = None
    mood: str | None = None
    key: str | None = None
    tempo: str | None = None
    texture: str | None = None
    texture_2: str | None = None
    instrument: str | None = None
    instrument_2: str | None = None
    # The description as written: what a description-only model was trained on, row for row.
    text: str | None = field(default=None, compare=False)

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "text"}

    @property
    def attributes_said(self) -> list[str]:
        return [name for name in ATTRIBUTES if getattr(self, name) is not None]


def condition_from_facts(*, description: str | None, mood: str | None = None,
                         key: str | None = None, bpm: float | None = None,
                         textures: Sequence[str] = (), instruments: Sequence[str] = ()) -> Condition:
    """A condition from plain facts (a corpus sidecar's fields, or an intent's)."""
    key_name = None
    if key:
        try:
            key_name = parse_key(str(key)).name.lower()
        except ParameterError:
            key_name = None
    textures, instruments = list(textures or ()), list(instruments or ())
    return Condition(
        description=normalise_description(description), mood=(mood or None) and str(mood).lower(),
        key=key_name, tempo=tempo_band(bpm),
        texture=textures[0] if textures else None,
        texture_2=textures[1] if len(textures) > 1 else None,
        instrument=instruments[0] if instruments else None,
        instrument_2=instruments[1] if len(instruments) > 1 else None,
        text=description)


def condition_from_text(text: str | None) -> Condition:
    """What the prompt parser hears in ``text`` (nothing a mood would default)."""
    if not text:
        return Condition()
    heard = read_prompt(text)
    key = heard["key"].name if heard["key"] is not None else None
    return condition_from_facts(description=text, mood=heard["mood"], key=key, bpm=heard["bpm"],
                                textures=heard["textures"], instruments=heard["instruments"])


def condition_for_clip(sidecar: dict | None, description: str | None) -> Condition:
    """A training clip's condition: its sidecar's mood, key, bpm, textures and instruments where
    it records them (a ``soundscape corpus`` clip does), else what the parser reads in its text."""
    sidecar = sidecar if isinstance(sidecar, dict) else {}
    facts = sidecar.get("intent") if isinstance(sidecar.get("intent"), dict) else sidecar
    text = description or sidecar.get("description") or sidecar.get("prompt")
    # audiocraft-style manifests say "moods" (a list), "instrument" and "texture" (one each).
    moods = facts.get("moods") if isinstance(facts.get("moods"), list) else []
    mood = facts.get("mood") or (moods[0] if moods else None)
    textures = facts.get("textures") or ([facts["texture"]] if facts.get("texture") else [])
    instruments = (facts.get("instruments")
                   or ([facts["instrument"]] if facts.get("instrument") else []))
    if not any((mood, facts.get("key"), facts.get("bpm"), textures, instruments)):
        return condition_from_text(text)
    heard = condition_from_text(text)
    return condition_from_facts(
        description=text, mood=mood or heard.mood, key=facts.get("key") or heard.key,
        bpm=facts.get("bpm") or None, textures=textures or [t for t in (heard.texture,
                                                                          heard.texture_2) if t],
        instruments=instruments or [i for i in (heard.instrument, heard.instrument_2) if i])


def read_sidecar(audio_path: str | Path) -> dict:
    """The JSON sidecar next to an audio file (``x.json`` or ``x.flac.json``), or {}."""
    path = Path(audio_path)
    for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def condition_for_spec(spec) -> Condition:
    """What a cue tells the model: the mood, key and tempo the user said (flag or prompt; never
    the ones the composer would pick from the mood or the seed), the prompt's textures and
    instruments, and its description."""
    intent = spec.intent
    sources = intent.sources or {}
    return condition_from_facts(
        description=spec.prompt,
        mood=intent.mood if sources.get("mood") in _SAID else None,
        key=intent.key.name if sources.get("key") in _SAID else None,
        bpm=intent.bpm if sources.get("bpm") in _SAID else None,
        textures=intent.textures, instruments=intent.instruments)


# --- onto a model ------------------------------------------------------------------------------

def model_kind(lm) -> str:
    """"attributes" when the LM has attribute conditioners, else "description"."""
    names = set(getattr(lm.condition_provider, "conditioners", {}))
    return "attributes" if set(ATTRIBUTES) <= names else DESCRIPTION


def _tokens(lm) -> dict:
    cfg = getattr(lm, "cfg", None)
    sc = cfg.get("soundscape") if cfg is not None else None
    cond = sc.get("conditioning") if sc is not None else None
    tokens = cond.get("tokens") if cond is not None else None
    if tokens is None:
        return {}
    from omegaconf import OmegaConf

    return OmegaConf.to_container(tokens) if not isinstance(tokens, dict) else tokens


def received(lm, condition: "Condition | str | None") -> dict:
    """What ``lm`` actually gets for ``condition``: per conditioner, the value it hears (None for
    its null row). A description-only model hears the raw text (as it was trained), a value an
    attribute table does not list is heard as None."""
    if not isinstance(condition, Condition):
        text = condition
        if model_kind(lm) == DESCRIPTION:
            return {DESCRIPTION: text}
        condition = condition_from_text(text)
    if model_kind(lm) == DESCRIPTION:
        return {DESCRIPTION: condition.text}
    tokens = _tokens(lm)
    out = {DESCRIPTION: condition.description}
    for name in ATTRIBUTES:
        value = getattr(condition, name)
        out[name] = value if value is not None and value in tokens.get(name, {}) else None
    return out


def to_attributes(lm, conditions: Sequence["Condition | str | None"]):
    """audiocraft ``ConditioningAttributes``, one per row, for every text conditioner ``lm`` has."""
    from audiocraft.modules.conditioners import ConditioningAttributes

    tokens = _tokens(lm)
    names = list(getattr(lm.condition_provider, "text_conditions", [DESCRIPTION]))
    rows = []
    for condition in conditions:
        heard = received(lm, condition)
        text = {}
        for name in names:
            value = heard.get(name)
            text[name] = tokens.get(name, {}).get(value) if name != DESCRIPTION and value else value
        rows.append(ConditioningAttributes(text=text))
    return rows


def known_to_model(lm, condition: "Condition | str | None") -> bool:
    """True when some conditioner of an attribute model knows a value ``condition`` carries
    (description-only models: always True, they have no vocabulary to check)."""
    if model_kind(lm) == DESCRIPTION:
        return True
    heard = received(lm, condition)
    return any(heard.get(name) is not None for name in ATTRIBUTES)


def received_intent(lm, condition: "Condition | str | None", spec) -> dict:
    """The sidecar's ``intent`` for a MusicGen render: what the model received, not what the
    composer would have chosen (a description-only model receives no mood, key or tempo)."""
    heard = received(lm, condition)
    sources = spec.intent.sources or {}
    said = {}
    for name, source_key in (("mood", "mood"), ("key", "key"), ("tempo", "bpm")):
        if heard.get(name) is not None:
            said[name] = sources.get(source_key, "prompt")
    textures = [heard[n] for n in ("texture", "texture_2") if heard.get(n)]
    instruments = [heard[n] for n in ("instrument", "instrument_2") if heard.get(n)]
    return {
        "conditioning": model_kind(lm),
        "description": heard.get(DESCRIPTION),
        "mood": heard.get("mood"),
        "key": parse_key(heard["key"]).name if heard.get("key") else None,
        "bpm": spec.intent.bpm if heard.get("tempo") is not None else None,
        "tempo": heard.get("tempo"),
        "textures": textures,
        "instruments": instruments,
        "sources": said,
        "unknown_words": list(spec.intent.unknown),
    }
