"""Dataset ingest, the sample library, lineage and clearance, and crash reconcile, on real audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from soundscape import delivery
from soundscape.atomic import write_json_atomic
from soundscape.audio.io import audio_sha256, file_sha256
from soundscape.config import SAMPLES_DIR
from soundscape.errors import AudioError, LedgerError, LicenseError
from soundscape.facts import OutputFacts
from soundscape.journal import Journal, reconcile
from soundscape.rights.clearance import clear, clear_model, lineage
from soundscape.rights.ingest import SAMPLE_DATASET, add_paths, ensure_sample_library, import_manifest
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import ModelEntry


def tone(path, rng, *, seconds=0.25, rate=48000, subtype="PCM_24"):
    """A short noisy tone: different audio for every call (the rng moves on)."""
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)
    return path


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


# The backend each workspace's ledger lives on, for counting its rows from outside.
_BACKENDS: dict = {}


@pytest.fixture
def ledger(home, ledger_backend):
    """The workspace's ledger, on SQLite and then on the test run's PostgreSQL."""
    url = ledger_backend.use(home)
    _BACKENDS[home] = ledger_backend
    with Ledger.open_url(url, home / "keys", home=home) as led:
        yield led
    _BACKENDS.pop(home, None)


def count_rows(home) -> int:
    con = _BACKENDS[home].connect(home)
    try:
        return con.execute("SELECT count(*) FROM ledger_records").fetchone()[0]
    finally:
        con.close()


def test_add_registers_assets_licenses_and_a_dataset(ledger, tmp_path, rng):
    files = [tone(tmp_path / "lib" / f"t{i}.wav", rng) for i in range(3)]
    report = add_paths(ledger, [tmp_path / "lib"], license="cc-by-4.0", author="Ana Ruiz",
                       source="https://example.org/lib", dataset="field")
    ds = report.dataset
    assert (ds.name, ds.version, len(ds.assets)) == ("field", "1", 3)
    assert report.license_counts == {"CC-BY-4.0": 3}
    assets = ledger.dataset_assets("field")
    assert sorted(a.audio_sha256 for a in assets) == sorted(audio_sha256(f) for f in files)
    assert {a.license for a in assets} == {"CC-BY-4.0"}  # normalised spelling
    assert all(a.file_sha256 == file_sha256(a.path) for a in assets)
    kinds = [r.kind for r in ledger.records()]
    assert kinds == ["license", "asset", "asset", "asset", "dataset"]
    assert ledger.verify().checkpoints == 1  # one add, one transaction, one checkpoint


def test_a_corrupt_file_stops_the_whole_add(ledger, home, tmp_path, rng):
    tone(tmp_path / "lib" / "good.wav", rng)
    (tmp_path / "lib" / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    ledger.store.count()
    with pytest.raises(AudioError, match="bad.wav"):
        add_paths(ledger, [tmp_path / "lib"], license="CC0-1.0", author="A", dataset="d")
    assert count_rows(home) == 0
    assert ledger.get_dataset("d") is None


@pytest.mark.parametrize("expression, message", [
    (None, "no license given"),
    ("", "no license given"),
    ("CC-BY-9.9", "unknown license"),
    ("CC0-1.0 AND (", "malformed"),
])
def test_bad_licenses_are_refused_before_anything_is_written(ledger, home, tmp_path, rng,
                                                             expression, message):
    f = tone(tmp_path / "a.wav", rng)
    with pytest.raises(LicenseError, match=message):
        add_paths(ledger, [f], license=expression, author="A", dataset="d")
    assert count_rows(home) == 0


def test_missing_file_is_refused(ledger, home, tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        add_paths(ledger, [tmp_path / "nope.wav"], license="CC0-1.0", author="A", dataset="d")
    assert count_rows(home) == 0


def test_same_audio_under_another_license_is_a_conflict(ledger, home, tmp_path, rng):
    f = tone(tmp_path / "a.wav", rng)
    first = add_paths(ledger, [f], license="CC0-1.0", author="A", dataset="d")
    # A FLAC copy is the same audio: same decoded PCM, different file bytes.
    data, rate = sf.read(f, dtype="int32")
    sf.write(tmp_path / "copy.flac", data, rate, subtype="PCM_24")
    assert audio_sha256(tmp_path / "copy.flac") == audio_sha256(f)
    other = tone(tmp_path / "b.wav", rng)
    rows = count_rows(home)
    with pytest.raises(LicenseError, match="already registered as asset-000001"):
        add_paths(ledger, [other, tmp_path / "copy.flac"], license="CC-BY-4.0", author="B",
                  dataset="e")
    assert count_rows(home) == rows  # nothing of the second add, not even the new file
    again = add_paths(ledger, [tmp_path / "copy.flac"], license="CC0-1.0", author="A", dataset="d")
    assert again.reused == [first.dataset.assets[0]] and again.added == []
    assert again.dataset.version == "2" and again.dataset.assets == first.dataset.assets


def test_an_existing_version_is_never_rewritten(ledger, tmp_path, rng):
    add_paths(ledger, [tone(tmp_path / "a.wav", rng)], license="CC0-1.0", author="A",
              dataset="d", version="2026.1")
    with pytest.raises(LedgerError, match="already exists"):
        add_paths(ledger, [tone(tmp_path / "b.wav", rng)], license="CC0-1.0", author="A",
                  dataset="d", version="2026.1")


def test_import_jsonl_and_csv_manifests(ledger, tmp_path, rng):
    tone(tmp_path / "m" / "one.wav", rng)
    tone(tmp_path / "m" / "two.wav", rng)
    tone(tmp_path / "m" / "three.wav", rng)
    (tmp_path / "m" / "two.json").write_text(json.dumps({"artist": "Side Car", "title": "Two"}))
    jsonl = tmp_path / "m" / "catalogue.jsonl"
    jsonl.write_text(
        json.dumps({"path": "one.wav", "duration": 0.25, "sample_rate": 48000,
                    "license": "CC0-1.0", "author": "Ona"}) + "\n"
        + json.dumps({"path": "two.wav", "license": "CC-BY-4.0",
                      "attribution": "Two by Side Car, CC BY 4.0"}) + "\n")
    report = import_manifest(ledger, jsonl)
    assert report.dataset.name == "catalogue"
    assert report.license_counts == {"CC0-1.0": 1, "CC-BY-4.0": 1}
    two = [a for a in ledger.dataset_assets("catalogue") if a.license == "CC-BY-4.0"][0]
    assert (two.author, two.title) == ("Side Car", "Two")
    csv_file = tmp_path / "m" / "more.csv"
    csv_file.write_text("path,license,author,source\nthree.wav,CC-BY-SA-4.0,Tre,https://x.org\n")
    report = import_manifest(ledger, csv_file, dataset="catalogue")
    assert report.dataset.version == "2" and len(report.dataset.assets) == 3
    bad = tmp_path / "m" / "bad.csv"
    bad.write_text("path,author\none.wav,Nobody\n")
    with pytest.raises(LicenseError, match="bad.csv line 2"):
        import_manifest(ledger, bad)


def test_the_sample_library_is_a_dataset_once(ledger):
    ds = ensure_sample_library(ledger, SAMPLES_DIR)
    manifest = [json.loads(line) for line in (SAMPLES_DIR / "manifest.jsonl").read_text().splitlines()
                if line.strip()]
    assert ds.name == SAMPLE_DATASET and len(ds.assets) == len(manifest)
    assets = ledger.dataset_assets(SAMPLE_DATASET)
    assert {a.license for a in assets} == {"CC0-1.0"}
    assert {a.source_id for a in assets} == {m["id"] for m in manifest}
    # The manifest's sha256 is of the file bytes; the ledger keeps it as file_sha256.
    assert {a.file_sha256 for a in assets} == {m["sha256"] for m in manifest}
    rows = ledger.store.count()
    assert ensure_sample_library(ledger, SAMPLES_DIR).id == ds.id
    assert ledger.store.count() == rows


def _composer_output(ledger, path, samples):
    # As delivery records it: the sample library is registered on first use.
    return delivery.record(ledger, OutputFacts(
        audio_sha256=audio_sha256(path), file_sha256=file_sha256(path), path=str(path),
        engine="composer", engine_version="1", prompt="calm pad", cue_kind="bed",
        samples=[{"id": s["id"], "sha256": s["sha256"], "license": s["license"],
                  "path": s["path"]} for s in samples]))


def test_composer_output_lineage_is_its_cc0_samples(ledger, tmp_path, rng):
    manifest = [json.loads(line) for line in (SAMPLES_DIR / "manifest.jsonl").read_text().splitlines()
                if line.strip()][:2]
    out = _composer_output(ledger, tone(tmp_path / "bed.wav", rng), manifest)
    assert all(s["asset"] and s["asset"].startswith("asset-") for s in out.samples)
    assert out.training_data.startswith("none")
    items = lineage(ledger, out.id)
    assert [(i.role, i.license) for i in items] == [("sample", "CC0-1.0")] * 2
    for policy in ("broadcast-commercial", "strict-cc0", "internal-preproduction"):
        assert clear(ledger, out.id, policy).cleared, policy


def test_model_trained_on_a_dataset_carries_every_asset_license(ledger, tmp_path, rng):
    add_paths(ledger, [tone(tmp_path / "a.wav", rng)], license="CC0-1.0", author="A", dataset="mix")
    add_paths(ledger, [tone(tmp_path / "b.wav", rng)], license="CC-BY-4.0", author="Bea",
              dataset="mix", source="https://b.example")
    model = ledger.register_model(ModelEntry(name="studio-small", lm_sha256="1" * 64,
                                             compression_sha256="2" * 64, license="CC0-1.0",
                                             datasets=["mix"], architecture="small"))
    assert model.datasets[0]["version"] == "2" and model.datasets[0]["assets"] == 2
    out = ledger.record_output(OutputFacts(audio_sha256=audio_sha256(tone(tmp_path / "o.wav", rng)),
                                           file_sha256="3" * 64, path=str(tmp_path / "o.wav"),
                                           engine="musicgen", model="studio-small",
                                           air_date="2027-03-14", territories=["FR"]))
    roles = sorted((i.role, i.license) for i in lineage(ledger, out.id))
    assert roles == [("model", "CC0-1.0"), ("training-data", "CC-BY-4.0"),
                     ("training-data", "CC0-1.0")]
    verdict = clear(ledger, out.id, "broadcast-commercial")
    assert verdict.cleared and any("Bea" in line for line in verdict.obligations)
    assert not clear(ledger, out.id, "strict-cc0").cleared
    assert not clear_model(ledger, "studio-small", "strict-cc0").cleared
    unknown = ledger.register_model(ModelEntry(name="mystery", lm_sha256="4" * 64,
                                               license="CC0-1.0", lineage_unknown=True))
    assert not clear_model(ledger, unknown.name, "internal-preproduction").cleared


def _write_output(folder, rng, name="cue.wav"):
    """A finished output as delivery writes it: the audio, then its sidecar."""
    audio = tone(folder / name, rng)
    sidecar = {"soundscape_sidecar": 1, "file": audio.name, "audio_sha256": audio_sha256(audio),
               "file_sha256": file_sha256(audio), "engine": {"name": "composer", "version": "1",
                                                             "model": None, "model_sha256": None},
               "prompt": "rain", "kind": "bed", "seed": 7, "parameters": {}, "samples": [],
               "ingredients": [], "production": "Deep Water", "episode": "S01E03",
               "cue_id": "1M1", "air_date": "2027-03-14", "territories": ["FR"], "ledger": None}
    side = folder / f"{name}.json"
    write_json_atomic(side, sidecar)
    return audio, side


def _dead_pid_entry(ledger, audio, side):
    """Journal an output as a process that has since died would have (kill -9 after rename)."""
    token = Journal.of(ledger).begin(audio, side)
    entry = Journal.of(ledger).folder / f"{token}.json"
    data = json.loads(entry.read_text())
    data["pid"] = 2 ** 22 + 12345  # above pid_max's default: no such process
    entry.write_text(json.dumps(data))
    return token


def test_reconcile_records_an_orphan_and_drops_an_incomplete_output(ledger, tmp_path, rng):
    out = tmp_path / "out"
    audio, side = _write_output(out, rng)
    _dead_pid_entry(ledger, audio, side)
    # An output that never completed: only its hidden temp file exists.
    (out / ".never.wav.tmp1234").write_bytes(b"half")
    _dead_pid_entry(ledger, out / "never.wav", out / "never.wav.json")
    # A live writer's entry is left alone.
    live = Journal.of(ledger).begin(out / "live.wav", out / "live.wav.json")
    report = reconcile(ledger)
    assert [p for p, _ in report.recorded] == [str(audio.resolve())]
    record_id = report.recorded[0][1]
    assert [p for p, _ in report.dropped] == [str((out / "never.wav").resolve())]
    assert not (out / ".never.wav.tmp1234").exists()
    assert [p for p, _ in report.in_progress] == [str((out / "live.wav").resolve())]
    assert json.loads(side.read_text())["ledger"]["record_id"] == record_id
    rec = ledger.get(record_id)
    assert (rec.episode, rec.cue_id, rec.air_date) == ("S01E03", "1M1", "2027-03-14")
    Journal.of(ledger).end(live)
    assert reconcile(ledger).empty and Journal.of(ledger).entries() == []
    # Recording the same file again (the pipeline finishing late) is a no-op.
    again = ledger.record_output(OutputFacts.from_sidecar(json.loads(side.read_text()), audio))
    assert again.id == record_id and ledger.store.count() == 1


def test_reconcile_drops_audio_that_does_not_match_its_sidecar(ledger, tmp_path, rng):
    audio, side = _write_output(tmp_path, rng)
    tone(audio, rng)  # overwritten after the sidecar was made
    _dead_pid_entry(ledger, audio, side)
    report = reconcile(ledger)
    assert report.recorded == [] and "does not match" in report.dropped[0][1]
    assert ledger.store.count() == 0


def test_reconcile_tells_a_reused_pid_from_a_live_writer(ledger, tmp_path, rng):
    audio, side = _write_output(tmp_path, rng)
    token = Journal.of(ledger).begin(audio, side)
    assert reconcile(ledger).in_progress  # this very process: still writing
    entry = Journal.of(ledger).folder / f"{token}.json"
    data = json.loads(entry.read_text())
    data["pid_start"] = "1"  # same pid, but a process that started at another time
    entry.write_text(json.dumps(data))
    report = reconcile(ledger)
    assert [p for p, _ in report.recorded] == [str(audio.resolve())]


def test_a_conflict_is_resolved_by_a_correction_never_by_a_merge(ledger, home, tmp_path, rng):
    f = tone(tmp_path / "a.wav", rng)
    add_paths(ledger, [f], license="CC-BY-NC-4.0", author="A", dataset="d")
    out = ledger.record_output(OutputFacts(
        audio_sha256=audio_sha256(tone(tmp_path / "o.wav", rng)), file_sha256="0" * 64,
        path=str(tmp_path / "o.wav"), engine="composer",
        ingredients=[{"id": "a", "sha256": audio_sha256(f), "license": "CC-BY-NC-4.0"}]))
    assert not clear(ledger, out.id, "broadcast-commercial").cleared
    with pytest.raises(LicenseError, match="ledger correct asset-000001"):
        add_paths(ledger, [f], license="CC-BY-4.0", author="A", dataset="d")
    with pytest.raises(LedgerError, match="reason"):
        ledger.correct("asset-000001", license="CC-BY-4.0", reason=" ")
    with pytest.raises(LedgerError, match="only assets and models"):
        ledger.correct(out.id, license="CC0-1.0", reason="no")
    fixed = ledger.correct("asset-000001", license="cc-by-4.0", attribution="A, CC BY 4.0",
                           reason="licensor's email of 2026-11-20: BY, not BY-NC")
    assert (fixed.license, fixed.attribution, fixed.corrections) == (
        "CC-BY-4.0", "A, CC BY 4.0", ["fix-000001"])
    raw = ledger.raw("asset-000001").body
    assert raw["license"] == "CC-BY-NC-4.0" and "corrections" not in raw  # history kept
    fix = ledger.raw("fix-000001").body
    assert fix["previous"] == {"license": "CC-BY-NC-4.0", "attribution": None}
    verdict = clear(ledger, out.id, "broadcast-commercial")
    assert verdict.cleared and "A, CC BY 4.0" in " ".join(verdict.obligations)
    again = add_paths(ledger, [f], license="CC-BY-4.0", author="A", dataset="d")
    assert again.reused == ["asset-000001"]
    assert ledger.dataset_assets("d")[0].license == "CC-BY-4.0"
    with pytest.raises(LedgerError, match="nothing to correct"):
        ledger.correct("asset-000001", license="CC-BY-4.0", reason="again")
    assert ledger.verify().kinds["correction"] == 1
