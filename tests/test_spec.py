"""Prompt reading and validation of user controls (soundscape.spec)."""

import pytest

from soundscape import spec
from soundscape.errors import ParameterError


@pytest.mark.parametrize("text, tonic, mode, name", [
    ("D minor", 2, "minor", "D minor"),
    ("F# major", 6, "major", "F# major"),
    ("Bb minor", 10, "minor", "Bb minor"),
    ("Eb", 3, "major", "Eb major"),
    ("C dorian", 0, "dorian", "C dorian"),
    ("a", 9, "minor", "A minor"),
    ("G Aeolian", 7, "minor", "G minor"),
])
def test_parse_key(text, tonic, mode, name):
    key = spec.parse_key(text)
    assert (key.tonic, key.mode, key.name) == (tonic, mode, name)


def test_key_scale_of_d_minor_has_b_flat_and_c_natural():
    assert spec.parse_key("D minor").scale == (2, 4, 5, 7, 9, 10, 0)


@pytest.mark.parametrize("bad", ["H minor", "D sideways", "", "12"])
def test_unknown_key_is_a_parameter_error(bad):
    with pytest.raises(ParameterError, match="unknown key"):
        spec.parse_key(bad)


def test_motif_to_midi_and_back():
    notes = spec.parse_motif("C5 E5 G5 C6")
    assert notes == (72, 76, 79, 84)
    assert [spec.midi_to_name(n) for n in notes] == ["C5", "E5", "G5", "C6"]


@pytest.mark.parametrize("bad", ["C5", "C5 X9", "C5,E5,G5,C6,E6,G6,C7,E7,G7", "C9 C5", ""])
def test_malformed_motif(bad):
    with pytest.raises(ParameterError):
        spec.parse_motif(bad)


def test_intensity_curve_interpolates_and_holds():
    curve = spec.parse_intensity("0:0.3,60:0.8,120:0.4")
    assert curve.at(30) == pytest.approx(0.55)
    assert curve.at(500) == pytest.approx(0.4)
    assert str(curve) == "0:0.3,60:0.8,120:0.4"


@pytest.mark.parametrize("bad", ["0:0.3,0:0.5", "0:1.5", "a:b", "10", "-5:0.2", "", "nan:0.5",
                                 "0:0.2,inf:0.5", "0:nan"])
def test_malformed_intensity(bad):
    with pytest.raises(ParameterError, match="intensity"):
        spec.parse_intensity(bad)


def test_prompt_is_read_into_an_intent():
    intent = spec.resolve_intent("slow dark drone with rain and distant bells in D minor")
    assert intent.mood == "dark"
    assert intent.key.name == "D minor"
    assert intent.bpm == 60
    assert intent.textures == ("rain",)
    assert intent.instruments == ("drone", "bells")
    assert intent.sources == {"mood": "prompt", "key": "prompt", "bpm": "prompt", "intensity": "mood"}


def test_flags_win_over_the_prompt():
    intent = spec.resolve_intent("dark drone in D minor, 60 bpm", key="F# major", bpm=90,
                                 mood="hopeful", intensity="0:0.2,10:0.9")
    assert (intent.key.name, intent.bpm, intent.mood) == ("F# major", 90, "hopeful")
    assert set(intent.sources.values()) == {"flag"}


def test_synonyms_and_mood_defaults():
    intent = spec.resolve_intent("serene ocean waves at dusk")
    assert intent.mood == "calm"
    assert intent.textures == ("ocean",)
    assert intent.key == spec.parse_key("F major")  # calm's default key
    assert intent.sources["key"] == "mood"


@pytest.mark.parametrize("kind, seconds", [("bed", 5), ("bed", 3 * 3600 + 1), ("jingle", 1), ("sting", 31),
                                           ("bed", float("nan")), ("bed", 10800.0001)])
def test_duration_limits(kind, seconds):
    with pytest.raises(ParameterError, match="out of range"):
        spec.check_duration(kind, seconds)


def test_unknown_mood():
    with pytest.raises(ParameterError, match="unknown mood 'jolly'"):
        spec.parse_mood("jolly")


def test_typed_cue_facts_and_the_lineage_flag_are_recorded_where_sidecars_keep_them():
    from soundscape.production import CueFacts
    from soundscape.spec import make_spec

    spec = make_spec("calm pad", seed=1, params={"top_k": 50}, allow_unknown_lineage=True,
                     cue=CueFacts(title="Main Title", usage="MT", frame_rate=25.0))
    params = spec.describe()["params"]
    # The same keys, in the same order, as when these travelled in params themselves.
    assert list(params) == ["top_k", "allow_unknown_lineage", "cue"]
    assert params["cue"] == {"title": "Main Title", "usage": "MT", "frame_rate": 25.0}
    assert spec.params == {"top_k": 50}  # what the engine reads holds only its own settings
    plain = make_spec("calm pad", seed=1).describe()
    assert plain["params"] == {} and "cue" not in plain and "allow_unknown_lineage" not in plain
