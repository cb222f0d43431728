"""New outputs keep the v1 shape: the sidecar and the ledger's output record, field for field.

The expected shapes are the sidecars and records that soundscape 0.1.0 wrote into
``tests/fixtures/ledger-v1``; values that depend on the audio or the clock are compared by kind,
and the composer's musical choices (the intent it resolved, its version) by their structure.
Fields added since 0.1.0 are listed in :data:`ADDED_SINCE_V1`: a field that appears or goes
without being listed there fails.
"""

import hashlib
import json
from pathlib import Path

from soundscape import pipeline
from soundscape.batch import runner
from soundscape.batch.cuelist import load_cuelist
from soundscape.config import open_workspace
from soundscape.rights.ledger import Ledger
from soundscape.spec import make_spec

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ledger-v1"
OLD_BODIES = [json.loads(line) for line in
              (FIXTURE / "records.jsonl").read_text(encoding="utf-8").splitlines()]
BY_AUDIO = {b.get("audio_sha256"): b for b in OLD_BODIES if b["kind"] == "output"}
# Sidecar and record fields decided by the audio, the clock or the ledger's state.
BY_KIND = {"audio_sha256", "file_sha256", "created", "recorded", "content_key", "id", "seq"}
# Fields whose values are the composer's musical choices: compared by their keys.
BY_KEYS = {"intent"}
# What the format gained since 0.1.0 (composer 2.0): the sound-bank presets an output played,
# and the intent's colour and the prompt words it did not understand.
ADDED_SINCE_V1 = {"presets": "list", "watermark": "dict"}
INTENT_ADDED_SINCE_V1 = {"colour", "unknown_words"}
# Ledger format 2: the signed checkpoint a sidecar carries is a C2SP signed note as well.
CHECKPOINT_ADDED_SINCE_V1 = {"note"}

CUES = """\
production:
  title: "Deep Water"
  episode: "S01E03"
  episode_title: "Test Dive"
  air_date: 2027-03-14
  territory: [FR, BE]
  company: "Abyssal Films"
  publisher: "Abyssal Music Publishing"
  policy: broadcast-commercial
  frame_rate: 25
cues:
  - {id: "1M1", title: "Main Title", kind: sting, usage: MT, timecode_in: "00:00:00:00", duration: 3, prompt: "hopeful bells"}
"""


def shape(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        if key in BY_KIND:
            out[key] = type(value).__name__
        elif key in BY_KEYS:
            out[key] = sorted(set(value) - INTENT_ADDED_SINCE_V1)
        elif key == "parameters":
            out[key] = {k: (sorted(set(v) - INTENT_ADDED_SINCE_V1) if k == "intent" else v)
                        for k, v in value.items()}
        elif key == "engine" and isinstance(value, dict):
            out[key] = {k: (type(v).__name__ if k == "version" else v) for k, v in value.items()}
        elif key == "engine_version":
            out[key] = type(value).__name__
        elif key in ADDED_SINCE_V1:
            continue
        elif key == "mastering":
            out[key] = sorted(value)
        elif key in ("details", "samples", "ingredients"):
            out[key] = type(value).__name__
        elif key == "ledger":
            out[key] = {"record_id": type(value["record_id"]).__name__,
                        "checkpoint": sorted(set(value["checkpoint"])
                                             - CHECKPOINT_ADDED_SINCE_V1)}
        elif key == "path":
            out[key] = Path(value).name
        else:
            out[key] = value
    return out


def added(data: dict) -> dict:
    """The fields added since v1 that an output carries, by kind, and the intent's new keys."""
    out = {key: type(data[key]).__name__ for key in ADDED_SINCE_V1 if key in data}
    out["intent"] = sorted(set(data.get("intent") or {}) & INTENT_ADDED_SINCE_V1)
    return out


def recipe_key(sidecar: dict) -> str:
    """The content key as docs/sidecar.md defines it, computed here independently."""
    data = {"v": 1, "spec": sidecar["parameters"], "preset": sidecar["mastering"]["preset"],
            "format": sidecar["format"], "engine": sidecar["engine"],
            "air_date": sidecar["air_date"], "territories": sidecar["territories"]}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_a_generated_flac_jingle_has_the_v1_sidecar_and_record(tmp_path):
    workspace = open_workspace(tmp_path / "home")
    old = json.loads((FIXTURE / "logo.flac.json").read_text())
    spec = make_spec("hopeful bells", kind="jingle", duration=3, seed=7, motif="C5 E5 G5 C6")
    [delivery] = pipeline.run([pipeline.Job(spec=spec, path=tmp_path / "logo.flac", fmt="flac",
                                            preset="netflix")], workspace=workspace)
    new = json.loads(delivery.sidecar_path.read_text())
    assert shape(new) == shape(old)
    assert added(new) == {"presets": "list", "watermark": "dict",
                          "intent": sorted(INTENT_ADDED_SINCE_V1)}
    with Ledger.open(workspace) as ledger:
        body = ledger.raw(delivery.record_id).body
    assert shape(body) == shape(BY_AUDIO[old["audio_sha256"]])
    assert added(body) == added(new)


def test_a_batch_cue_has_the_v1_sidecar_record_and_content_key(tmp_path):
    workspace = open_workspace(tmp_path / "home")
    old = json.loads((FIXTURE / "S01E03_1M1.wav.json").read_text())
    cues = tmp_path / "S01E03.yaml"
    cues.write_text(CUES, encoding="utf-8")
    report = runner.run_batch(load_cuelist(cues), tmp_path / "episode", workspace=workspace,
                              workers=1)
    [result] = report.results
    new = json.loads(result.delivery.sidecar_path.read_text())
    assert shape(new) == shape(old)
    assert added(new) == {"presets": "list", "watermark": "dict",
                          "intent": sorted(INTENT_ADDED_SINCE_V1)}
    assert new["parameters"]["params"]["cue"] == {
        "title": "Main Title", "usage": "MT", "timecode_in": "00:00:00:00",
        "episode_title": "Test Dive", "company": "Abyssal Films",
        "publisher": "Abyssal Music Publishing", "frame_rate": 25.0,
        "policy": "broadcast-commercial"}
    assert new["content_key"] == recipe_key(new) and old["content_key"] == recipe_key(old)
    with Ledger.open(workspace) as ledger:
        body = ledger.raw(result.delivery.record_id).body
    assert shape(body) == shape(BY_AUDIO[old["audio_sha256"]])


def test_sample_uses_keep_their_four_fields():
    old = json.loads((FIXTURE / "bed.wav.json").read_text())
    assert old["samples"] and all(sorted(s) == ["id", "license", "path", "sha256"]
                                  for s in old["samples"])
    from soundscape.render import SampleUse

    assert sorted(SampleUse(id="x", sha256="0" * 64, license="CC0-1.0").__dict__) == \
        ["id", "license", "path", "sha256"]
