"""Verdicts through ``soundscape clear``: the three states and their exit codes from real
ledger records, conditions a policy's stated facts settle, the studio's own model, agreement
media words, and a file's own record when two lineages share its audio."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from soundscape.audio.io import audio_sha256, file_sha256
from soundscape.cli import app
from soundscape.facts import OutputFacts
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import ModelEntry

CLEARED, NOT_CLEARED, NEEDS_REVIEW = 0, 4, 5  # the documented exit codes


@pytest.fixture
def ws(tmp_path):
    return tmp_path / "ws"


@pytest.fixture
def cli(ws):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, ["--home", str(ws), *map(str, args)], env={"COLUMNS": "400"})

    return run


def tone(path, rng, seconds=0.2):
    t = np.arange(int(seconds * 48000)) / 48000
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * t), 48000, subtype="PCM_24")
    return path


def open_ledger(ws):
    return Ledger.open_url(f"sqlite:///{ws / 'ledger.sqlite'}", ws / "keys", home=ws)


def output_with_sample(cli, ws, tmp_path, rng, license, name="s"):
    """Register one sample under ``license`` (through ``dataset add``) and record an output
    that used it; returns the output file."""
    sample = tone(tmp_path / "lib" / f"{name}.wav", rng)
    added = cli("dataset", "add", sample, "--license", license, "--author", "Ana",
                "--dataset", f"lib-{name}")
    assert added.exit_code == 0, added.output
    out = tone(tmp_path / "out" / f"{name}-cue.wav", rng)
    with open_ledger(ws) as ledger:
        ledger.record_output(OutputFacts(
            audio_sha256=audio_sha256(out), file_sha256=file_sha256(out), path=str(out),
            engine="composer", prompt="rain", cue_kind="bed",
            samples=[{"id": name, "sha256": audio_sha256(sample), "license": license,
                      "path": str(sample)}]))
    return out, sample


def policy(ws, name, text):
    folder = ws / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text)


def channel_policy(*, accept="", studio=""):
    """A broadcast policy whose [accept] leaves out share_alike and software_licenses unless given."""
    return ("description = \"test channel\"\n[require]\ncommercial_use = true\nderivatives = true\n"
            f"[accept]\nattribution = true\nagreements = true\n{accept}\n"
            + (f"[studio]\n{studio}\n" if studio else ""))


def test_gpl_on_audio_needs_review_and_the_policy_settles_it(cli, ws, tmp_path, rng):
    out, sample = output_with_sample(cli, ws, tmp_path, rng, "GPL-3.0-only")
    result = cli("clear", out, "--policy", "broadcast-commercial")
    assert result.exit_code == NEEDS_REVIEW, result.output
    assert result.stdout.startswith("NEEDS REVIEW under broadcast-commercial: out-000001"), result.stdout
    # The reason names the asset by title, record id and path, and says what the condition is.
    assert (f"sample 's' (asset-000001, {sample.resolve()}) is GPL-3.0-only: a software "
            "license on audio") in result.stdout, result.stdout
    policy(ws, "refuse-software", channel_policy(accept="share_alike = true\nsoftware_licenses = false"))
    refused = cli("clear", out, "--policy", "refuse-software")
    assert refused.exit_code == NOT_CLEARED
    assert "a software license on audio, which this policy does not accept" in refused.stdout
    policy(ws, "judge-software", channel_policy(accept="share_alike = true\nsoftware_licenses = true"))
    judged = cli("clear", out, "--policy", "judge-software")
    assert judged.exit_code == CLEARED, judged.output
    assert "licensed under GPL-3.0-only" in judged.stdout  # its notice is a credit owed
    assert cli("clear", out, "--policy", "strict-cc0").exit_code == NOT_CLEARED


def test_share_alike_under_a_silent_policy_needs_review(cli, ws, tmp_path, rng):
    out, _ = output_with_sample(cli, ws, tmp_path, rng, "CC-BY-SA-4.0")
    policy(ws, "silent", channel_policy())
    policy(ws, "takes-sa", channel_policy(accept="share_alike = true"))
    policy(ws, "no-sa", channel_policy(accept="share_alike = false"))
    silent = cli("clear", out, "--policy", "silent")
    assert silent.exit_code == NEEDS_REVIEW, silent.output
    assert "the policy does not say whether it accepts that" in silent.stdout
    assert "conditions" in silent.stdout
    assert cli("clear", out, "--policy", "takes-sa").exit_code == CLEARED
    assert cli("clear", out, "--policy", "no-sa").exit_code == NOT_CLEARED


def test_a_revenue_ceiling_base_model_resolves_by_the_studios_stated_revenue(cli, ws, tmp_path, rng):
    out = tone(tmp_path / "out" / "sao.wav", rng)
    sample = tone(tmp_path / "lib" / "cc0.wav", rng)
    assert cli("dataset", "add", sample, "--license", "CC0-1.0", "--author", "Ana", "--dataset", "cc0").exit_code == 0
    with open_ledger(ws) as ledger:
        ledger.register_model(ModelEntry(
            name="sao-ft", lm_sha256="2" * 64, license="LicenseRef-Stability-AI-Community",
            base_model="stabilityai/stable-audio-open-1.0",
            base_model_license="LicenseRef-Stability-AI-Community", datasets=["cc0"]))
        ledger.record_output(OutputFacts(audio_sha256=audio_sha256(out), file_sha256=file_sha256(out),
                                         path=str(out), engine="musicgen", model="sao-ft"))
    policy(ws, "unstated", channel_policy(accept="share_alike = false"))
    policy(ws, "small-studio", channel_policy(accept="share_alike = false", studio="annual_revenue_usd = 400000"))
    policy(ws, "big-studio", channel_policy(accept="share_alike = false", studio="annual_revenue_usd = 5000000"))
    unstated = cli("clear", out, "--policy", "unstated")
    assert unstated.exit_code == NEEDS_REVIEW, unstated.output
    assert "under US$1,000,000 annual revenue, and the policy does not state the studio's" in unstated.stdout
    small = cli("clear", out, "--policy", "small-studio")
    assert small.exit_code == CLEARED, small.output
    # The base model's licence is credited once, not again under the fine-tune's own name.
    credits = [line for line in small.stdout.splitlines() if "Powered by Stability AI" in line]
    assert len(credits) == 1 and "stabilityai/stable-audio-open-1.0" in credits[0]
    big = cli("clear", out, "--policy", "big-studio")
    assert big.exit_code == NOT_CLEARED
    assert "the policy states the studio's as US$5,000,000" in big.stdout
    # broadcast-commercial still denies it by name.
    assert cli("clear", out, "--policy", "broadcast-commercial").exit_code == NOT_CLEARED


def test_known_licenses_are_accepted_at_ingest_and_unassessed_ones_need_review(cli, ws, tmp_path, rng):
    pddc, _ = output_with_sample(cli, ws, tmp_path, rng, "CC-PDDC", name="pddc")
    assert cli("clear", pddc, "--policy", "broadcast-commercial").exit_code == CLEARED
    mpl, _ = output_with_sample(cli, ws, tmp_path, rng, "MPL-2.0", name="mpl")
    result = cli("clear", mpl, "--policy", "broadcast-commercial")
    assert result.exit_code == NEEDS_REVIEW, result.output
    assert "is MPL-2.0: a known license (license database category: Copyleft Limited) whose " \
           "terms soundscape has not assessed" in result.stdout
    stray = tone(tmp_path / "lib" / "stray.wav", rng)
    refused = cli("dataset", "add", stray, "--license", "LicenseRef-Nobody-Knows", "--author", "A", "--dataset", "x")
    assert refused.exit_code == 2 and "unknown license id 'LicenseRef-Nobody-Knows'" in refused.stderr


def test_the_studios_own_model_from_cc0_data_clears_under_strict_cc0(cli, ws, tmp_path, rng):
    sample = tone(tmp_path / "lib" / "wind.wav", rng)
    assert cli("dataset", "add", sample, "--license", "CC0-1.0", "--author", "Ana", "--dataset", "cc0").exit_code == 0
    out = tone(tmp_path / "out" / "own.wav", rng)
    with open_ledger(ws) as ledger:
        ledger.register_model(ModelEntry(name="from-scratch", lm_sha256="3" * 64,
                                         license="LicenseRef-Studio-Owned", datasets=["cc0"]))
        ledger.record_output(OutputFacts(audio_sha256=audio_sha256(out), file_sha256=file_sha256(out),
                                         path=str(out), engine="musicgen", model="from-scratch"))
    result = cli("clear", out, "--policy", "strict-cc0")
    assert result.exit_code == CLEARED, result.output
    assert "the studio's own work, which owes the studio nothing" in result.stdout
    # Denied by name, it is refused: the rule yields to a policy's explicit choice.
    policy(ws, "no-own", channel_policy(accept="share_alike = false")
           + '[deny]\n"LicenseRef-Studio-Owned" = "this channel takes only third-party cleared music"\n')
    denied = cli("clear", out, "--policy", "no-own")
    assert denied.exit_code == NOT_CLEARED and "third-party cleared music" in denied.stdout


def test_agreements_may_name_broadcast_and_all_media(cli, ws, tmp_path, rng):
    folder = ws / "licenses" / "agreements"
    folder.mkdir(parents=True)
    for agreement_id, media in (("BCAST", '["broadcast", "streaming"]'), ("TV", '["tv"]'),
                                ("ANY", '["all media"]')):
        (folder / f"{agreement_id}.toml").write_text(
            f'agreement_id = "{agreement_id}"\nlicensor = "Acme"\nstart = 2025-01-01\n'
            f'territories = ["WORLD"]\nmedia = {media}\n')
    outs = {a: output_with_sample(cli, ws, tmp_path, rng, f"LicenseRef-Agreement-{a}", name=a.lower())[0]
            for a in ("BCAST", "TV", "ANY")}
    for medium in ("tv", "radio", "streaming", "broadcast"):
        assert cli("clear", outs["BCAST"], "--policy", "broadcast-commercial", "--media", medium
                   ).exit_code == CLEARED, medium
    online = cli("clear", outs["BCAST"], "--policy", "broadcast-commercial", "--media", "online")
    assert online.exit_code == NOT_CLEARED
    assert "does not cover medium 'online' (it covers radio, streaming, tv)" in online.stdout
    tv_only = cli("clear", outs["TV"], "--policy", "broadcast-commercial", "--media", "broadcast")
    assert tv_only.exit_code == NOT_CLEARED
    assert "does not cover medium 'broadcast' (radio not covered; it covers tv)" in tv_only.stdout
    assert cli("clear", outs["ANY"], "--policy", "broadcast-commercial", "--media", "cinema"
               ).exit_code == CLEARED
    bad = cli("clear", outs["ANY"], "--policy", "broadcast-commercial", "--media", "telepathy")
    assert bad.exit_code == 2 and "broadcast (tv and radio)" in bad.stderr


def test_clear_file_gives_its_own_record_when_two_lineages_share_the_audio(cli, ws, tmp_path, rng):
    """Two models of identical weights under different licences render identical audio for a
    prompt and seed: each file's verdict is its own record's, and the other lineage is shown."""
    sample = tone(tmp_path / "lib" / "wind.wav", rng)
    assert cli("dataset", "add", sample, "--license", "CC0-1.0", "--author", "Ana", "--dataset", "cc0").exit_code == 0
    studio_file = tone(tmp_path / "out" / "studio.wav", rng)
    nc_file = tmp_path / "out" / "nc.wav"
    shutil.copy(studio_file, nc_file)  # the same samples: what identical weights render
    assert audio_sha256(studio_file) == audio_sha256(nc_file)
    weights = "4" * 64
    with open_ledger(ws) as ledger:
        ledger.register_model(ModelEntry(name="studio-m", lm_sha256=weights,
                                         license="LicenseRef-Studio-Owned", datasets=["cc0"]))
        ledger.register_model(ModelEntry(name="nc-copy", lm_sha256=weights,
                                         license="CC-BY-NC-4.0", datasets=["cc0"]))
        records = {}
        for file, model in ((studio_file, "studio-m"), (nc_file, "nc-copy")):
            records[model] = ledger.record_output(OutputFacts(
                audio_sha256=audio_sha256(file), file_sha256=file_sha256(file), path=str(file),
                engine="musicgen", model=model, prompt="calm", seed=1)).id

    studio = cli("clear", studio_file, "--policy", "broadcast-commercial")
    assert studio.exit_code == CLEARED, studio.output
    assert studio.stdout.startswith(f"CLEARED under broadcast-commercial: {records['studio-m']} (studio.wav)")
    assert "this file's record: recorded for this path" in studio.stdout
    assert "also recorded with a different lineage" in studio.stdout
    assert f"NOT CLEARED under broadcast-commercial: {records['nc-copy']} (nc.wav)" in studio.stdout

    nc = cli("clear", nc_file, "--policy", "broadcast-commercial")
    assert nc.exit_code == NOT_CLEARED, nc.output
    assert nc.stdout.startswith(f"NOT CLEARED under broadcast-commercial: {records['nc-copy']} (nc.wav)")
    assert "model 'nc-copy'" in nc.stdout and "non-commercial use only" in nc.stdout

    # A renamed copy with a sidecar naming its record: the sidecar decides.
    moved = tmp_path / "delivery" / "renamed.wav"
    moved.parent.mkdir()
    shutil.copy(nc_file, moved)
    (moved.parent / "renamed.wav.json").write_text(json.dumps({"ledger": {"record_id": records["studio-m"]}}))
    named = cli("clear", moved, "--policy", "broadcast-commercial")
    assert named.exit_code == CLEARED, named.output
    assert "this file's record: named by its sidecar renamed.wav.json" in named.stdout

    # A bare copy: nothing says whose it is, so each verdict is shown and the worst stands.
    bare = tmp_path / "bare.wav"
    shutil.copy(nc_file, bare)
    both = cli("clear", bare, "--policy", "broadcast-commercial")
    assert both.exit_code == NOT_CLEARED
    assert "matches 2 records of different lineages" in both.stdout
    assert both.stdout.count("under broadcast-commercial: out-") == 2


def test_clear_help_documents_the_three_exit_codes():
    text = " ".join(CliRunner().invoke(app, ["clear", "--help"], env={"COLUMNS": "400"}).stdout.split())
    for line in ("0 CLEARED", "5 NEEDS REVIEW", "4 NOT CLEARED"):
        assert line in text
    from soundscape.errors import NeedsReviewError, NotClearedError

    assert (NeedsReviewError.exit_code, NotClearedError.exit_code) == (NEEDS_REVIEW, NOT_CLEARED)


def test_cue_sheets_carry_the_third_state(cli, ws, tmp_path, rng):
    sample = tone(tmp_path / "lib" / "synth.wav", rng)
    assert cli("dataset", "add", sample, "--license", "GPL-3.0-only", "--author", "Ana",
               "--dataset", "gpl").exit_code == 0
    clean = tone(tmp_path / "lib" / "wind.wav", rng)
    assert cli("dataset", "add", clean, "--license", "CC0-1.0", "--author", "Bo",
               "--dataset", "cc0").exit_code == 0
    with open_ledger(ws) as ledger:
        for cue_id, used, license in (("1M1", sample, "GPL-3.0-only"), ("1M2", clean, "CC0-1.0")):
            out = tone(tmp_path / "out" / f"{cue_id}.wav", rng)
            ledger.record_output(OutputFacts(
                audio_sha256=audio_sha256(out), file_sha256=file_sha256(out), path=str(out),
                engine="composer", prompt="pad", cue_kind="bed", duration=0.2,
                production="Deep Water", episode="S01E01", cue_id=cue_id,
                samples=[{"id": used.stem, "sha256": audio_sha256(used), "license": license,
                          "path": str(used)}]))
    result = cli("report", "S01E01", "--format", "json", "--out", tmp_path / "sheet.json")
    assert result.exit_code == 0, result.output
    assert "NEEDS REVIEW" in result.stdout
    sheet = json.loads((tmp_path / "sheet.json").read_text())
    assert sheet["production"]["status"] == "NEEDS REVIEW"
    assert (sheet["production"]["cleared_count"], sheet["production"]["review_count"]) == (1, 1)
    cues = {c["cue_id"]: c for c in sheet["cues"]}
    assert cues["1M1"]["status"] == "NEEDS REVIEW" and cues["1M2"]["status"] == "CLEARED"
    assert any("a software license on audio" in c for c in cues["1M1"]["conditions"])
    assert cues["1M2"]["conditions"] == []
    assert cli("report", "S01E01", "--format", "csv", "--out", tmp_path / "sheet.csv").exit_code == 0
    import csv

    with open(tmp_path / "sheet.csv", newline="", encoding="utf-8") as handle:
        rows = {r["cue_id"]: r for r in csv.DictReader(handle)}
    assert rows["1M1"]["clearance"] == "NEEDS REVIEW" and "software license" in rows["1M1"]["conditions"]
    assert cli("report", "S01E01", "--format", "html", "--out", tmp_path / "sheet.html").exit_code == 0
    html = (tmp_path / "sheet.html").read_text(encoding="utf-8")
    assert 'class="status review' in html and "Conditions (to settle before it clears)" in html


def test_clear_by_audio_sha_shows_every_lineage_it_matches(cli, ws, tmp_path, rng):
    sample = tone(tmp_path / "lib" / "wind.wav", rng)
    assert cli("dataset", "add", sample, "--license", "CC0-1.0", "--author", "Ana",
               "--dataset", "cc0").exit_code == 0
    audio = tone(tmp_path / "out" / "a.wav", rng)
    copy = shutil.copy(audio, tmp_path / "out" / "b.wav")
    with open_ledger(ws) as ledger:
        for model, license, file in (("own", "LicenseRef-Studio-Owned", audio),
                                     ("nc", "CC-BY-NC-4.0", copy)):
            ledger.register_model(ModelEntry(name=model, lm_sha256="5" * 64, license=license,
                                             datasets=["cc0"]))
            ledger.record_output(OutputFacts(audio_sha256=audio_sha256(file), file_sha256=file_sha256(file),
                                             path=str(file), engine="musicgen", model=model))
    both = cli("clear", audio_sha256(audio), "--policy", "broadcast-commercial")
    assert both.exit_code == NOT_CLEARED, both.output
    assert "matches 2 records of different lineages" in both.stdout
    assert "CLEARED under broadcast-commercial: out-000001" in both.stdout
    assert "NOT CLEARED under broadcast-commercial: out-000002" in both.stdout
    # By record id there is no doubt which is meant.
    assert cli("clear", "out-000001", "--policy", "broadcast-commercial").exit_code == CLEARED
