"""Delivery on its own: a render becomes a file and a sidecar, then a record, a stamp, a signature."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundscape import delivery, pipeline
from soundscape.audio.io import audio_sha256, file_sha256, read_audio
from soundscape.audio.loudness import integrated_loudness
from soundscape.config import SAMPLES_DIR, open_workspace
from soundscape.facts import OutputFacts
from soundscape.render import Lineage, Render, SampleUse
from soundscape.rights import credentials, merkle
from soundscape.rights.ingest import SAMPLE_DATASET
from soundscape.rights.ledger import Ledger
from soundscape.spec import make_spec


def library_uses(count: int) -> tuple[SampleUse, ...]:
    manifest = [json.loads(line) for line in (SAMPLES_DIR / "manifest.jsonl").read_text().splitlines()
                if line.strip()][:count]
    return tuple(SampleUse(id=m["id"], sha256=m["sha256"], license=m["license"],
                           path=f"samples/{m['path']}") for m in manifest)


def render(rng, *, seconds: float = 3.0, samples: tuple = ()) -> Render:
    """A bed-like render: a soft chord with a little noise, as an engine would hand it over."""
    spec = make_spec("calm pad", kind="jingle", duration=seconds, seed=3)
    t = np.arange(int(48000 * seconds)) / 48000
    mono = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
    return Render(spec=spec, audio=np.stack([mono, mono]).astype(np.float32), sample_rate=48000,
                  lineage=Lineage(engine="composer", engine_version="test", samples=samples),
                  details={"chords": ["A"]})


def test_the_file_and_its_sidecar_say_the_same_thing(tmp_path, rng):
    job = pipeline.Job(spec=render(rng).spec, path=tmp_path / "cue.wav", air_date="2027-01-02",
                       territories=("FR",), content_key="c" * 64)
    sidecar = delivery.write_delivery(render(rng), job)
    on_disk = json.loads(delivery.sidecar_path_for(job.path).read_text())
    assert on_disk == sidecar and on_disk["ledger"] is None
    audio, rate = read_audio(job.path)
    assert sidecar["audio_sha256"] == audio_sha256(job.path)
    assert sidecar["file_sha256"] == file_sha256(job.path)
    assert sidecar["duration"] == audio.shape[-1] / rate == 3.0
    assert abs(integrated_loudness(audio, rate) - sidecar["mastering"]["loudness_lufs"]) < 0.05
    assert (sidecar["air_date"], sidecar["territories"], sidecar["content_key"]) == \
        ("2027-01-02", ["FR"], "c" * 64)
    assert sidecar["details"] == {"chords": ["A"]}


def test_facts_read_from_a_sidecar_write_the_same_sidecar(tmp_path, rng):
    rendered = render(rng, samples=library_uses(2))
    job = pipeline.Job(spec=rendered.spec, path=tmp_path / "cue.wav")
    sidecar = delivery.write_delivery(rendered, job)
    facts = OutputFacts.from_sidecar(sidecar, job.path)
    assert facts.path == str(job.path.resolve()) and facts.cue_kind == "jingle"
    assert facts.sidecar(details=sidecar["details"], ledger=sidecar["ledger"]) == sidecar
    assert [s["id"] for s in facts.samples] == [u.id for u in rendered.lineage.samples]


def test_recording_stamps_the_sidecar_with_a_checkpoint_of_the_ledger(tmp_path, rng):
    workspace = open_workspace(tmp_path / "home")
    job = pipeline.Job(spec=render(rng).spec, path=tmp_path / "cue.wav")
    sidecar = delivery.write_delivery(render(rng), job)
    with Ledger.open(workspace) as ledger:
        done = delivery.record_delivery(sidecar, job, ledger=ledger)
        again = delivery.record_delivery(sidecar, job, ledger=ledger)
        body = ledger.raw(done.record_id).body
        public_key = ledger.public_key_pem()
        assert again.record_id == done.record_id and len(ledger.find_outputs()) == 1
    stamped = json.loads(done.sidecar_path.read_text())
    assert stamped["ledger"]["record_id"] == done.record_id
    merkle.verify_checkpoint(stamped["ledger"]["checkpoint"], public_key)
    facts = OutputFacts.from_sidecar(stamped, job.path)
    assert {k: body[k] for k in OutputFacts.names()} == json.loads(json.dumps(facts.entry()))
    assert (done.audio_sha256, done.duration, done.preset) == (sidecar["audio_sha256"], 3.0, "ebu-r128")
    assert done.loudness_lufs == sidecar["mastering"]["loudness_lufs"]


def test_without_a_ledger_nothing_is_recorded_nor_stamped(tmp_path, rng):
    job = pipeline.Job(spec=render(rng).spec, path=tmp_path / "cue.wav")
    sidecar = delivery.write_delivery(render(rng), job)
    done = delivery.record_delivery(sidecar, job)
    assert done.record_id is None
    assert json.loads(done.sidecar_path.read_text())["ledger"] is None


def test_recording_a_render_with_samples_registers_the_library_first(tmp_path, rng):
    workspace = open_workspace(tmp_path / "home")
    rendered = render(rng, samples=library_uses(2))
    job = pipeline.Job(spec=rendered.spec, path=tmp_path / "bed.wav")
    sidecar = delivery.write_delivery(rendered, job)
    with Ledger.open(workspace) as ledger:
        record = delivery.record(ledger, OutputFacts.from_sidecar(sidecar, job.path))
        library = {a.id for a in ledger.dataset_assets(SAMPLE_DATASET)}
        assert len(record.samples) == 2 and {s["asset"] for s in record.samples} <= library


def test_recording_without_samples_leaves_the_library_alone(tmp_path, rng):
    workspace = open_workspace(tmp_path / "home")
    job = pipeline.Job(spec=render(rng).spec, path=tmp_path / "cue.wav")
    sidecar = delivery.write_delivery(render(rng), job)
    with Ledger.open(workspace) as ledger:
        delivery.record(ledger, OutputFacts.from_sidecar(sidecar, job.path))
        assert ledger.get_dataset(SAMPLE_DATASET) is None and ledger.list_assets() == []


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_signing_changes_the_file_bytes_never_the_audio(tmp_path, rng, fmt):
    workspace = open_workspace(tmp_path / "home")
    credentials.make_dev_ca(credentials.dev_folder(workspace))
    job = pipeline.Job(spec=render(rng).spec, path=tmp_path / f"cue.{fmt}", fmt=fmt)
    sidecar = delivery.write_delivery(render(rng), job)
    unsigned = file_sha256(job.path)
    with Ledger.open(workspace) as ledger:
        done = delivery.record_delivery(sidecar, job, ledger=ledger)
    stamped = json.loads(done.sidecar_path.read_text())
    assert stamped["file_sha256"] == file_sha256(job.path) != unsigned
    assert audio_sha256(job.path) == stamped["audio_sha256"]
    assert credentials.read_credentials(job.path) is not None
