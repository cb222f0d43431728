"""The conditioners' vocabulary: normalised descriptions, collision-free attribute rows, and what
a cue's condition carries (only what the user said)."""

from __future__ import annotations

import hashlib

from soundscape.engines.musicgen import conditioning as C
from soundscape.spec import make_spec


def _audiocraft_rows(lm, name: str, values):
    """The rows audiocraft's own tokenizer gives ``values`` (tokens as our table spells them)."""
    conditioner = lm.condition_provider.conditioners[name]
    tokens, _ = conditioner.tokenize(values)
    return tokens[:, 0].tolist()


def test_case_and_punctuation_land_on_one_row(torch_one_thread):
    from soundscape.engines.musicgen.builders import build_model

    _, lm = build_model("tiny", conditioning="attributes")
    variants = ["Rain.", "rain", "  RAIN!  ", "rain\n"]
    rows = {_audiocraft_rows(lm, "description", [C.normalise_description(v)])[0] for v in variants}
    assert len(rows) == 1
    # A description-only model keeps its raw rows (what it was trained on), so the two differ.
    _, old = build_model("tiny")
    raw = [a.text["description"] for a in C.to_attributes(old, ["Rain.", "rain"])]
    assert raw == ["Rain.", "rain"]
    assert C.normalise_description("F# major, slow.") == "f# major slow"
    assert C.normalise_description(" ... ") is None


def test_no_two_vocabulary_values_share_a_row(torch_one_thread):
    from soundscape.engines.musicgen.builders import build_model

    _, lm = build_model("tiny", conditioning="attributes")
    tokens = C._tokens(lm)
    for name, values in C.vocabulary().items():
        spelled = [tokens[name][v] for v in values]
        rows = _audiocraft_rows(lm, name, spelled)
        assert len(set(rows)) == len(values), name
        assert 0 not in rows  # row 0 is audiocraft's "absent" padding row
        # Spelling is needed at all: unsalted, the 84 keys would collide in a table this size.
        size = lm.condition_provider.conditioners[name].embed.num_embeddings
        plain = {int(hashlib.sha256(v.encode()).hexdigest(), 16) % size for v in values}
        if name == "key":
            assert len(plain) < len(values)


def test_a_cue_carries_only_what_the_user_said():
    spec = make_spec("Calm bells with rain", seed=5, engine="musicgen")
    condition = C.condition_for_spec(spec)
    # The composer would pick a key and a tempo from the seed; the model is given neither.
    assert spec.intent.sources["key"] == "seed" and condition.key is None
    assert condition.tempo is None
    assert (condition.mood, condition.texture, condition.instrument) == ("calm", "rain", "bells")
    flagged = C.condition_for_spec(make_spec("bells", seed=5, key="D minor", bpm=110,
                                             engine="musicgen"))
    assert (flagged.key, flagged.tempo) == ("d minor", "lively")


def test_a_clip_condition_comes_from_its_sidecar():
    sidecar = {"description": "whatever words", "mood": "dark", "key": "Eb dorian", "bpm": 50,
               "textures": ["storm", "wind"], "instruments": ["cello"]}
    condition = C.condition_for_clip(sidecar, None)
    assert (condition.mood, condition.key, condition.tempo) == ("dark", "eb dorian", "very slow")
    assert (condition.texture, condition.texture_2, condition.instrument) == ("storm", "wind",
                                                                             "cello")
    assert condition.description == "whatever words"
    # Without labels the prompt parser reads the text.
    heard = C.condition_for_clip({}, "A slow harp with ocean waves in A minor.")
    assert (heard.instrument, heard.texture, heard.key, heard.tempo) == ("harp", "ocean",
                                                                        "a minor", "slow")
