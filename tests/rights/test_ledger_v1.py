"""A ledger written by soundscape 0.1.0 opens, verifies, reads the same and takes new records."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundscape.config import open_workspace
from soundscape.facts import OutputFacts
from soundscape.reports.cuesheet import build_cuesheet
from soundscape.rights.clearance import clear, lineage
from soundscape.rights.ingest import add_paths
from soundscape.rights.ledger import Ledger

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ledger-v1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
OLD_RECORDS = (FIXTURE / "records.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.fixture
def old_home(tmp_path):
    """A workspace holding a copy of the old ledger and its keys."""
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    shutil.copy(FIXTURE / "ledger.sqlite", home / "ledger.sqlite")
    for key in (FIXTURE / "keys").iterdir():
        shutil.copy(key, home / "keys" / key.name)
    return home


def held_checkpoints():
    return [(name, json.loads((FIXTURE / name).read_text())["ledger"]["checkpoint"])
            for name in ("bed.wav.json", "logo.flac.json", "S01E03_1M1.wav.json")]


def test_the_old_ledger_verifies_against_its_own_sidecars(old_home):
    with Ledger.open(open_workspace(old_home)) as ledger:
        report = ledger.verify(against=held_checkpoints())
    assert (report.records, report.checkpoints) == (39, 11)
    assert report.kinds == {"license": 2, "asset": 26, "dataset": 4, "model": 1, "output": 5,
                            "correction": 1}


def test_every_old_record_reads_back_byte_for_byte(old_home):
    with Ledger.open(open_workspace(old_home)) as ledger:
        assert [r.text for r in ledger.records()] == OLD_RECORDS
        outputs = ledger.find_outputs()
        assert [o.id for o in outputs] == [f"out-{n:06d}" for n in range(1, 6)]
        batch = next(o for o in outputs if o.cue_id == "1M1")
        assert (batch.production, batch.episode, batch.cue_id) == ("Deep Water", "S01E03", "1M1")
        assert batch.parameters["params"]["cue"]["usage"] == "MT"
        assert (batch.air_date, batch.territories) == ("2027-03-14", ["FR", "BE"])
        generated = ledger.get_output("out-000005")
        assert generated.model == "studio-small" and generated.model_record == "model-000001"
        assert generated.parameters["params"]["allow_unknown_lineage"] is True
        bed = ledger.get_output("out-000001")
        assert bed.samples and all(s["asset"].startswith("asset-") for s in bed.samples)
        corrected = ledger.get("asset-000002")
        assert corrected.attribution == "Bell by Bea B. (CC BY 4.0)"
        assert corrected.corrections == ["fix-000001"]


def test_lineage_verdicts_and_the_cue_sheet_are_what_they_were(old_home):
    workspace = open_workspace(old_home)
    with Ledger.open(workspace) as ledger:
        for key, expected in EXPECTED["verdicts"].items():
            output_id, policy = key.split()
            verdict = clear(ledger, output_id, policy)
            assert {"status": verdict.status, "cleared": verdict.cleared,
                    "reasons": list(verdict.reasons),
                    "obligations": list(verdict.obligations)} == expected, key
        for output_id, items in EXPECTED["lineage"].items():
            assert [[i.role, i.name, i.license] for i in lineage(ledger, output_id)] == items
        sheet = build_cuesheet(ledger, "S01E03", workspace=workspace).to_dict()
    sheet["generated"] = "<generated>"
    assert sheet == EXPECTED["cuesheet"]


def test_the_old_ledger_takes_new_records(old_home, tmp_path):
    workspace = open_workspace(old_home)
    audio = tmp_path / "new.wav"
    sf.write(audio, (0.1 * np.sin(np.arange(12000) / 7.0)).astype(np.float32), 48000)
    with Ledger.open(workspace) as ledger:
        report = add_paths(ledger, [audio], license="CC0-1.0", author="New", dataset="mix")
        assert report.dataset.version == "4" and report.added == ["asset-000027"]
        record = ledger.record_output(OutputFacts(
            audio_sha256="6" * 64, file_sha256="7" * 64, path=str(tmp_path / "out.wav"),
            engine="musicgen", model="studio-small", prompt="calm", cue_kind="bed"))
        assert record.id == "out-000006" and record.model_record == "model-000001"
        fixed = ledger.correct("asset-000001", reason="the author asked", author="A. Author")
        assert fixed.corrections == ["fix-000002"]
        report = ledger.verify(against=held_checkpoints())
        assert report.records == 39 + 4  # asset, dataset, output, correction
        assert [r.text for r in ledger.records()][:39] == OLD_RECORDS
