"""The pipeline's crash net: outputs a crash left between stages are recorded and signed."""

import json
import subprocess

from soundscape import delivery, pipeline
from soundscape.config import open_workspace
from soundscape.delivery import write_delivery
from soundscape.engines import get_engine
from soundscape.facts import OutputFacts
from soundscape.journal import Journal, reconcile
from soundscape.rights import credentials
from soundscape.rights.ledger import Ledger
from soundscape.spec import make_spec


def _written_job(tmp_path, ledger):
    """Journal and write one output as the pipeline does, then make its writer look dead
    (reconcile rightly leaves alone the entries of a process that is still running)."""
    spec = make_spec("warm pad", kind="bed", duration=10, seed=5)
    job = pipeline.Job(spec=spec, path=tmp_path / "cue.wav")
    token = Journal.of(ledger).begin(job.path, job.path.with_name("cue.wav.json"))
    sidecar = write_delivery(get_engine("composer").render([spec])[0], job)
    dead = subprocess.Popen(["true"])
    dead.wait()
    entry_path = Journal.of(ledger).folder / f"{token}.json"
    entry = json.loads(entry_path.read_text())
    entry["pid"] = dead.pid
    entry_path.write_text(json.dumps(entry))
    return job, sidecar, token


def test_crash_after_record_before_signature_is_signed_by_reconcile(tmp_path):
    workspace = open_workspace(tmp_path / "home")
    credentials.make_dev_ca(credentials.dev_folder(workspace))
    with Ledger.open(workspace) as ledger:
        job, sidecar, _ = _written_job(tmp_path, ledger)
        # The crash: the record committed, the process died before signing and pending_end.
        record = delivery.record(ledger, OutputFacts.from_sidecar(sidecar, job.path))
        assert credentials.read_credentials(job.path) is None
    with Ledger.open(workspace) as ledger:
        report = reconcile(ledger)
        assert report.recorded == [(str(job.path), record.id)]
        assert len(ledger.find_outputs(audio_sha256=sidecar["audio_sha256"])) == 1
        assert ledger.get_output(record.id).cue_kind == "bed"
    checks = credentials.verify_file(job.path, workspace)
    assert checks and all(c.ok for c in checks), [str(c) for c in checks]
    on_disk = json.loads(job.path.with_name("cue.wav.json").read_text())
    assert on_disk["ledger"]["record_id"] == record.id
    assert on_disk["file_sha256"] != sidecar["file_sha256"]  # the signed file's bytes


def test_crash_before_record_is_recorded_once(tmp_path):
    workspace = open_workspace(tmp_path / "home")
    with Ledger.open(workspace) as ledger:
        job, sidecar, _ = _written_job(tmp_path, ledger)
    for _ in range(2):  # a second reconcile finds nothing left to do
        with Ledger.open(workspace) as ledger:
            reconcile(ledger)
            assert len(ledger.find_outputs(audio_sha256=sidecar["audio_sha256"])) == 1
            ledger.verify()


def test_crash_mid_write_leaves_nothing_after_reconcile(tmp_path):
    workspace = open_workspace(tmp_path / "home")
    with Ledger.open(workspace) as ledger:
        job, sidecar, _ = _written_job(tmp_path, ledger)
        # As if killed while writing: the final names never appeared, the temp files did.
        job.path.unlink()
        job.path.with_name("cue.wav.json").unlink()
        leftovers = [tmp_path / ".cue.wav.0123456789ab.part", tmp_path / ".cue.wav.json.tmpx1y2"]
        for leftover in leftovers:
            leftover.write_bytes(b"half")
    with Ledger.open(workspace) as ledger:
        report = reconcile(ledger)
        assert [audio for audio, _ in report.dropped] == [str(job.path)]
        assert Journal.of(ledger).entries() == []
        assert ledger.find_outputs(audio_sha256=sidecar["audio_sha256"]) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_error_messages_are_printed_as_plain_text(capsys):
    from soundscape.cli.common import error_line

    error_line("unknown key '[/]D minor[bold]'")
    assert capsys.readouterr().err.strip() == "error: unknown key '[/]D minor[bold]'"
