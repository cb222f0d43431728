"""The cue sheet model: built from the ledger alone, in timecode order, with verdicts and appendices."""

from __future__ import annotations

import sqlite3

import pytest

from soundscape.errors import LedgerError, ParameterError
from soundscape.reports import cuesheet as cs
from soundscape.rights.clearance import clear
from soundscape.rights.ledger import Ledger


def _sheet(episode, name="S01E03", **kwargs):
    workspace = episode.workspace
    with Ledger.open(workspace) as ledger:
        return cs.build_cuesheet(ledger, name, workspace=workspace, **kwargs)


def test_rendered_episode_has_every_cue_in_timecode_order(rendered_episode):
    sheet = _sheet(rendered_episode)
    assert [c.cue_id for c in sheet.cues] == ["1M1", "1M2", "1M3"]
    assert [c.sequence for c in sheet.cues] == [1, 2, 3]
    first, bed, sting = sheet.cues
    assert (first.title, first.usage, first.usage_meaning) == ("Main Title", "MT", "Main title")
    assert (bed.timecode_in, bed.timecode_out) == ("00:00:10:00", "00:00:20:00")  # 10 s at 25 fps
    assert (sting.timecode_in, sting.timecode_out) == ("00:01:00:00", "00:01:02:00")
    assert bed.duration == pytest.approx(10.0) and bed.duration_text == "00:10"
    p = sheet.production
    assert (p.title, p.episode, p.episode_title, p.air_date) == ("Deep Water", "S01E03", "The Trench", "2027-03-14")
    assert (p.company, p.publisher, p.territories) == ("Abyss Films", "Abyss Music", ["FR", "BE"])
    assert p.total_duration == pytest.approx(15.0) and p.cue_count == 3
    assert p.policy == "broadcast-commercial" and p.status == "CLEARED"


def test_generated_cues_name_engine_as_author_and_disclose_ai(rendered_episode):
    sheet = _sheet(rendered_episode)
    for cue in sheet.cues:
        assert cue.ai_generated and cue.disclosure.startswith("AI-generated")
        assert cue.composer.startswith("soundscape composer")
        assert cue.publisher == "Abyss Music"
        assert len(cue.audio_sha256) == 64 and cue.record_id.startswith("out-")
    bed = sheet.cues[1]
    assert bed.lineage.samples and set(bed.lineage.samples) == {"CC0-1.0"}
    assert "training data: none" in bed.lineage.text
    (composer,) = sheet.models
    assert composer.engine == "composer" and composer.cues == ["1M1", "1M2", "1M3"]


def test_author_and_publisher_follow_workspace_settings(rendered_episode, monkeypatch):
    monkeypatch.setenv("SOUNDSCAPE_REPORT_AUTHOR", "{engine} engine v{engine_version}")
    monkeypatch.setenv("SOUNDSCAPE_REPORT_PUBLISHER", "House Music Ltd")
    sheet = _sheet(rendered_episode)
    assert sheet.cues[0].composer.startswith("composer engine v")
    assert {c.publisher for c in sheet.cues} == {"House Music Ltd"}


def test_checkpoint_appendix_is_verified(rendered_episode):
    cp = _sheet(rendered_episode).checkpoint
    assert cp.verified and cp.size >= 3 and len(cp.root) == 64
    assert "BEGIN PUBLIC KEY" in cp.public_key_pem


def test_models_datasets_and_attributions_from_the_ledger(ledger_episode_on):
    sheet = _sheet(ledger_episode_on, "S02E01", production="Tidal")
    assert [c.cue_id for c in sheet.cues] == ["2M1", "2M2", "2M3", "2M4"]
    by_id = {c.cue_id: c for c in sheet.cues}
    assert by_id["2M1"].cleared and by_id["2M1"].obligations
    assert not by_id["2M3"].cleared  # fine-tuned from Meta's CC-BY-NC MusicGen weights
    assert any("CC-BY-NC-4.0" in r for r in by_id["2M3"].reasons)
    assert not by_id["2M4"].cleared and any(r.startswith("continuation source ") for r in by_id["2M4"].reasons)
    assert sheet.production.status == "NOT CLEARED" and sheet.production.cleared_count == 2
    # Every credit once, with the cues that need it.
    lines = [a.line for a in sheet.attributions]
    assert len(lines) == len(set(lines)) == 5  # three training recordings and two CC-BY models
    needs = {a.line.split('"')[1]: a.cues for a in sheet.attributions}
    assert needs["wave0"] == needs["wave2"] == ["2M1", "2M2", "2M3", "2M4"]
    assert needs["waves-v1"] == ["2M1", "2M2", "2M4"] and needs["small-ft"] == ["2M3"]
    models = {m.name: m for m in sheet.models}
    assert set(models) == {"waves-v1", "small-ft"}
    assert models["small-ft"].base_model == "facebook/musicgen-small"
    assert models["small-ft"].base_model_license == "CC-BY-NC-4.0"
    assert models["waves-v1"].datasets[0].licenses == {"CC-BY-4.0": 3}
    assert models["waves-v1"].cues == ["2M1", "2M2", "2M4"]
    assert by_id["2M1"].lineage.licenses == {"CC-BY-4.0": 3}
    assert "field-waves" in by_id["2M1"].lineage.text


def test_verdicts_equal_ledger_clear(ledger_episode_on):
    sheet = _sheet(ledger_episode_on, "S02E01", production="Tidal", policy="internal-preproduction")
    with Ledger.open(ledger_episode_on.workspace) as ledger:
        for cue in sheet.cues:
            verdict = clear(ledger, cue.record_id, "internal-preproduction")
            assert (cue.cleared, cue.reasons, cue.obligations) == (
                verdict.cleared, list(verdict.reasons), list(verdict.obligations))


def test_an_episode_in_two_productions_needs_production(ledger_episode_on):
    with pytest.raises(LedgerError, match="--production"):
        _sheet(ledger_episode_on, "S02E01")
    other = _sheet(ledger_episode_on, "S02E01", production="Another Show")
    assert [c.cue_id for c in other.cues] == ["9M9"]
    assert other.cues[0].title == "9M9" and other.cues[0].timecode_in == "00:00:00:00"


def test_no_outputs_and_unknown_policy_are_refused(ledger_episode_on):
    with pytest.raises(LedgerError, match="no outputs recorded for episode 'S09E09'"):
        _sheet(ledger_episode_on, "S09E09")
    with pytest.raises(LedgerError, match="exists in: Another Show, Tidal"):
        _sheet(ledger_episode_on, "S02E01", production="Nope")
    with pytest.raises(ParameterError, match="unknown policy"):
        _sheet(ledger_episode_on, "S02E01", production="Tidal", policy="no-such-policy")


def test_a_tampered_ledger_shows_in_the_checkpoint_appendix(ledger_episode, tmp_path):
    import shutil

    from soundscape.config import open_workspace

    home = tmp_path / "home"
    shutil.copytree(ledger_episode.home, home)
    with sqlite3.connect(home / "ledger.sqlite") as db:
        body = db.execute("SELECT body FROM ledger_records WHERE id = 'out-000002'").fetchone()[0]
        db.execute("UPDATE ledger_records SET body = ? WHERE id = 'out-000002'",
                   (body.replace("waves 2M2", "waves 2M2 (edited)"),))
    workspace = open_workspace(home)
    with Ledger.open(workspace) as ledger:
        sheet = cs.build_cuesheet(ledger, "S02E01", production="Tidal", workspace=workspace)
    assert not sheet.checkpoint.verified
    assert sheet.checkpoint.message.startswith("FAILED") and "out-000002" in sheet.checkpoint.message


def test_cues_without_timecodes_follow_in_cue_number_order():
    from types import SimpleNamespace

    records = [SimpleNamespace(cue_id=cid, seq=seq) for cid, seq in
               (("1M10", 1), ("1M2", 2), ("1M1", 3), ("0M5", 4))]
    facts = {"1M2": {"timecode_in": "00:00:05:00"}}
    ordered = sorted(records, key=lambda r: cs._sort_key(r, facts.get(r.cue_id, {}), 25))
    assert [r.cue_id for r in ordered] == ["1M2", "0M5", "1M1", "1M10"]
