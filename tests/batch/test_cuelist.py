"""Cue lists: the examples read back, every kind of mistake is reported at its line, names are safe."""

from pathlib import Path

import pytest

from soundscape import production
from soundscape.batch.cuelist import CueListError, derive_seed, load_cuelist, output_names
from soundscape.production import USAGE_CODES, parse_timecode, safe_name_part
from soundscape.errors import ParameterError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HEADER = """\
production:
  title: "Deep Water"
  episode: "S01E03"
  air_date: 2027-03-14
  territory: [FR, BE]
  policy: broadcast-commercial
  preset: ebu-r128
  frame_rate: 25
cues:
"""


def write(tmp_path, text, name="cues.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path, **kwargs) -> list[str]:
    with pytest.raises(CueListError) as caught:
        load_cuelist(path, **kwargs)
    assert isinstance(caught.value, ParameterError)
    return [str(p) for p in caught.value.problems]


def test_the_example_episode_is_a_45_minute_documentary():
    episode = load_cuelist(EXAMPLES / "deep-water-s01e03.yaml")
    production = episode.production
    assert (production.title, production.episode, production.air_date) == ("Deep Water", "S01E03", "2027-03-14")
    assert production.territory == ("FR", "BE", "CH")
    usages = [c.usage for c in episode.cues]
    assert "MT" in usages and "ET" in usages
    beds = [c for c in episode.cues if c.kind == "bed"]
    assert 8 <= len(beds) <= 12
    assert all(30 <= c.duration <= 240 for c in beds)
    assert any(c.specs[0].loop for c in beds)
    assert any(c.kind == "sting" for c in episode.cues)
    # Timecodes run in order and every cue ends before 45:00.
    starts = [sum(x * m for x, m in zip(parse_timecode(c.timecode_in, 25), (3600, 60, 1, 1 / 25)))
              for c in episode.cues]
    assert starts == sorted(starts)
    assert max(s + c.duration for s, c in zip(starts, episode.cues)) <= 45 * 60
    for cue in episode.cues:
        spec = cue.specs[0]
        assert (spec.production, spec.episode, spec.cue_id) == ("Deep Water", "S01E03", cue.id)
        assert cue.files == (f"S01E03_{cue.id}.wav",)
        assert spec.describe()["params"]["cue"] == {
            "title": cue.title, "usage": cue.usage, "timecode_in": cue.timecode_in,
            "episode_title": "The Trench", "company": "Abyssal Films",
            "publisher": "Abyssal Music Publishing", "frame_rate": 25.0,
            "policy": "broadcast-commercial"}


def test_the_csv_example_reads_its_header_block_and_variants():
    episode = load_cuelist(EXAMPLES / "deep-water-s01e04.csv")
    assert episode.production.episode == "S01E04"
    assert episode.production.territory == ("FR", "BE", "CH")
    by_id = {c.id: c for c in episode.cues}
    assert by_id["1M2"].duration == 90.0 and by_id["1M2"].specs[0].loop
    assert by_id["2M2"].specs[0].prompt == "eerie sting"  # mood only: the prompt is made from it
    assert by_id["2M2"].specs[0].intent.mood == "mysterious"
    variants = by_id["3M1"]
    assert variants.files == ("S01E04_3M1-v1.wav", "S01E04_3M1-v2.wav", "S01E04_3M1-v3.wav")
    assert [s.variant for s in variants.specs] == [0, 1, 2]
    assert len({s.seed for s in variants.specs}) == 1  # shared seed: one motif, three arrangements
    assert by_id["1M1"].specs[0].intent.intensity.points == ((0.0, 0.2), (15.0, 0.9))


def test_yaml_and_csv_of_the_same_cues_resolve_alike(tmp_path):
    yaml_path = write(tmp_path, HEADER + """\
  - id: 1M1
    kind: jingle
    usage: MT
    timecode_in: "00:00:10:00"
    duration: 8
    prompt: "hopeful bells"
    motif: "C5 E5 G5 C6"
""")
    csv_path = write(tmp_path, "# title: Deep Water\n# episode: S01E03\n# air_date: 2027-03-14\n"
                     "# territory: FR BE\n# preset: ebu-r128\n"
                     "id,kind,usage,timecode_in,duration,prompt,motif\n"
                     "1M1,jingle,MT,00:00:10:00,8,hopeful bells,C5 E5 G5 C6\n", "cues.csv")
    a, b = load_cuelist(yaml_path), load_cuelist(csv_path)
    assert a.production == b.production
    assert a.cues[0].specs == b.cues[0].specs


def test_command_line_production_fields_win_and_fill_gaps(tmp_path):
    path = write(tmp_path, "id,kind,usage,duration,mood\n1M1,bed,BI,12,calm\n", "cues.csv")
    with pytest.raises(CueListError) as caught:
        load_cuelist(path)
    assert {p.field for p in caught.value.problems} == {"production.title", "production.episode"}
    episode = load_cuelist(path, overrides={"title": "Deep Water", "episode": "S02E01",
                                            "territory": ["GB"], "air_date": "2027-05-01"})
    assert episode.production.territory == ("GB",)
    assert episode.cues[0].files == ("S02E01_1M1.wav",)


def test_every_problem_in_a_file_is_reported_with_its_line_cue_and_field(tmp_path):
    path = write(tmp_path, HEADER + """\
  - id: 1M1
    kind: jingle
    usage: MT
    timecode_in: "00:00:00:25"
    duration: 8
    prompt: "hopeful bells"
    colour: blue
  - id: 1M2
    kind: bed
    usage: XX
    duration: 5
    prompt: "calm pad"
  - id: 1M1
    kind: sting
    usage: BI
    duration: 3
    mood: tense
  - id: 1M3
    kind: bed
    usage: BI
    duration: 20
  - id: 1M4
    kind: jingle
    usage: BI
    duration: 8
    prompt: "bells"
    key: "H minor"
    mood: grumpy
    motif: "C5 X9"
    intensity: "0:2"
    bpm: 500
    loop: true
    seed: -1
  - id: 1M5
    kind: bed
    usage: BI
    duration: 30
    prompt: "dark drone"
    engine: musicgen
  - id: 1M6
    kind: bed
    usage: BI
    duration: 30
    prompt: "dark drone"
    engine: musicgen
    model: not-there
  - kind: bed
    usage: BI
    duration: 30
    prompt: "no id"
""")
    problems = problems_of(path, registered_models={"deep-water-ft"})
    text = "\n".join(problems)
    expected = [
        # (line, cue, field, words that must appear)
        (13, "1M1", "timecode_in", "frame 25 does not exist at 25 fps"),
        (16, "1M1", "colour", "unknown key"),
        (19, "1M2", "usage", "unknown usage code 'XX'"),
        (20, "1M2", "duration", "out of range for a bed"),
        (22, "1M1", "id", "duplicate cue id (first used on line 10)"),
        (27, "1M3", "prompt", "missing: give a prompt, a mood or both"),
        (36, "1M4", "key", "unknown key 'H minor'"),
        (37, "1M4", "mood", "unknown mood 'grumpy'"),
        (38, "1M4", "motif", "malformed note 'X9'"),
        (39, "1M4", "intensity", "levels between 0 and 1"),
        (40, "1M4", "bpm", "bpm 500 is out of range"),
        (41, "1M4", "loop", "a jingle has an ending and cannot loop"),
        (42, "1M4", "seed", "seed -1 is out of range"),
        (43, "1M5", "model", "a musicgen cue needs a model"),  # no model line: the cue's line
        (55, "1M6", "model", "model 'not-there' is not registered"),
        (56, None, "id", "missing"),
    ]
    for line, cue, field, words in expected:
        prefix = f"cues.yaml:{line}: " + (f"cue {cue}: " if cue else "") + f"{field}: "
        assert any(p.startswith(prefix) and words in p for p in problems), (prefix, words, text)
    assert len(problems) == len(expected), text
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)  # in file order
    # Each problem says what is allowed where the answer is a list.
    usage = next(p for p in problems if "usage code" in p)
    assert all(code in usage for code in USAGE_CODES)
    assert "allowed: deep-water-ft" in next(p for p in problems if "not-there" in p)


def test_unusable_models_are_refused_with_the_reason(tmp_path):
    path = write(tmp_path, HEADER.replace("cues:", "  engine: musicgen\n  model: mock-up\ncues:") + """\
  - {id: 1M1, kind: bed, usage: BI, duration: 30, prompt: "drone"}
  - {id: 1M2, kind: bed, usage: BI, duration: 30, prompt: "drone", model: deep-water-ft}
  - {id: 1M3, kind: bed, usage: BI, duration: 30, prompt: "drone", model: nowhere}
""")
    models = {"mock-up": "registered with unknown lineage", "deep-water-ft": None}
    problems = problems_of(path, registered_models=models)
    assert problems == [
        "cues.yaml:12: cue 1M1: model: model 'mock-up' cannot be used: registered with unknown lineage",
        "cues.yaml:14: cue 1M3: model: model 'nowhere' is not registered in the ledger (allowed: deep-water-ft)",
    ]


def test_production_problems_are_reported_with_the_cue_problems(tmp_path):
    path = write(tmp_path, """\
production:
  title: "Deep Water"
  episode: "S01E03"
  air_date: 2027-02-30
  territory: [FR, UK]
  policy: anything-goes
  preset: loud
  frame_rate: 26
  engine: jukebox
  studio: "x"
cues:
  - id: 1M1
    kind: bed
    usage: BI
    timecode_in: "00:00:00:00"
    duration: 12
    mood: calm
    engine: jukebox
""")
    problems = problems_of(path)
    for line, field, words in [(4, "production.air_date", "is not a date"),
                               (5, "production.territory", "GB"),
                               (6, "production.policy", "broadcast-commercial"),
                               (7, "production.preset", "ebu-r128, netflix"),
                               (8, "production.frame_rate", "25"),
                               (9, "production.engine", "composer"),
                               (10, "production.studio", "unknown key"),
                               (18, "cue 1M1: engine", "unknown engine 'jukebox'")]:
        assert any(p.startswith(f"cues.yaml:{line}: {field}") and words in p for p in problems), \
            (line, field, problems)


def test_yaml_syntax_errors_and_wrong_shapes_are_located(tmp_path):
    problems = problems_of(write(tmp_path, "production:\n  title: [unclosed\ncues: []\n"))
    assert len(problems) == 1 and problems[0].startswith("cues.yaml:3: not valid YAML")
    problems = problems_of(write(tmp_path, "production: 3\ncues:\n  - just text\nextra: 1\n"))
    assert any(p.startswith("cues.yaml:1: production: must be a mapping") for p in problems)
    assert any(p.startswith("cues.yaml:3: a cue must be a mapping") for p in problems)
    assert any(p.startswith("cues.yaml:4: extra: unknown key") for p in problems)
    problems = problems_of(write(tmp_path, HEADER + "  - id: A\n    kind: bed\n    kind: sting\n"
                                 "    usage: BI\n    duration: 12\n    mood: calm\n"))
    assert problems == ["cues.yaml:12: cue A: kind: given twice in the same cue (allowed: each key once)"]


def test_csv_problems_carry_the_row_line(tmp_path):
    path = write(tmp_path, "# title: Deep Water\n# episode: E1\n"
                 "id,kind,usage,duration,mood,tempo\n"
                 "1M1,bed,BI,12,calm,\n"
                 "1M2,bed,ZZ,12,calm,\n"
                 "\n"
                 "1M3,sting,BI,99,calm,fast\n", "cues.csv")
    problems = problems_of(path)
    assert any(p.startswith("cues.csv:5: cue 1M2: usage: unknown usage code 'ZZ'") for p in problems)
    assert any(p.startswith("cues.csv:7: cue 1M3: duration:") for p in problems)
    assert any(p.startswith("cues.csv:7: cue 1M3: tempo: unknown key") for p in problems)


def test_yaml_base_60_traps_are_read_as_typed(tmp_path):
    # YAML 1.1 reads 1:30 and 00:00:20:00 as base-60 integers; cue lists mean what was typed.
    path = write(tmp_path, HEADER + """\
  - id: 1.10
    kind: bed
    usage: bi
    timecode_in: 00:00:20:00
    duration: 1:30
    mood: calm
""")
    cue = load_cuelist(path).cues[0]
    assert (cue.id, cue.usage, cue.timecode_in, cue.duration) == ("1.10", "BI", "00:00:20:00", 90.0)


@pytest.mark.parametrize("cue_id", [
    "1M1", "../../etc/passwd", "a/b\\c", "..", ".", "", "CON", "nul", "Com1.wav", "lpt9",
    "a\x00b\x1fc\x7f", "tab\there", 'quo"te<>:|?*', "Thème principal", "日本語", " spaced . ",
    "x" * 400, "...hidden", "name.", "AUX.txt",
])
def test_file_names_are_safe_everywhere(cue_id):
    name = output_names("S01E03", cue_id)[0]
    stem = name[:-len(".wav")]
    assert name.endswith(".wav")
    assert "/" not in name and "\\" not in name and ".." not in name
    assert not name.startswith(".") and not stem.endswith((".", " "))
    assert all(32 < ord(ch) < 127 for ch in name)
    assert not set(name) & set('<>:"|?*')
    assert len(name.encode()) + len(".json") <= 255
    for part in (stem.split("_", 1)[1], safe_name_part(cue_id)):
        assert part.split(".")[0].upper() not in production.RESERVED_NAMES
        assert part


def test_safe_names_keep_distinct_long_ids_distinct():
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    assert safe_name_part(a) != safe_name_part(b)


def test_ids_that_collide_as_file_names_are_refused(tmp_path):
    path = write(tmp_path, HEADER + "".join(
        f"  - id: \"{cue_id}\"\n    kind: bed\n    usage: BI\n    duration: 12\n    mood: calm\n"
        for cue_id in ("1M1", "1m1", "a/b", "a_b")))
    problems = problems_of(path)
    assert len(problems) == 2
    assert "also the file of cue 1M1" in problems[0] and "also the file of cue a/b" in problems[1]


def test_default_seeds_are_stable_and_explicit_seeds_win(tmp_path):
    text = HEADER + "  - id: 1M1\n    kind: bed\n    usage: BI\n    duration: 12\n    mood: calm\n" \
                    "  - id: 1M2\n    kind: bed\n    usage: BI\n    duration: 12\n    mood: calm\n    seed: 42\n"
    first = load_cuelist(write(tmp_path, text))
    again = load_cuelist(write(tmp_path, text))
    assert first.cues[0].seed == again.cues[0].seed == derive_seed("Deep Water", "S01E03", "1M1")
    assert first.cues[1].seed == 42
    assert derive_seed("Deep Water", "S01E04", "1M1") != first.cues[0].seed


def test_only_selects_cues_and_refuses_unknown_ids():
    episode = load_cuelist(EXAMPLES / "deep-water-s01e03.yaml")
    assert [c.id for c in episode.select(["1M1", "4M4"]).cues] == ["1M1", "4M4"]
    assert [c.id for c in episode.select(["0M0,2M2"]).cues] == ["0M0", "2M2"]
    assert episode.select(None) is episode
    with pytest.raises(ParameterError, match="9M9"):
        episode.select(["9M9"])


def test_unreadable_and_unknown_files_are_one_clear_error(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        load_cuelist(tmp_path / "missing.yaml")
    with pytest.raises(ParameterError, match="unknown format .txt"):
        load_cuelist(write(tmp_path, "x", "cues.txt"))
    with pytest.raises(ParameterError, match="no cues"):
        load_cuelist(write(tmp_path, HEADER.replace("cues:\n", "cues: []\n")))
