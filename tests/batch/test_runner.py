"""The batch runner on real renders: files decode to spec, one record per output, failures isolated."""

import json

import pytest

from soundscape.audio.io import audio_sha256, read_audio
from soundscape.audio.loudness import integrated_loudness, true_peak_dbtp
from soundscape import pipeline
from soundscape.batch import runner
from soundscape.batch.cuelist import load_cuelist
from soundscape.journal import Journal
from soundscape.reports.cuesheet import cue_facts
from soundscape.rights.ledger import Ledger

EBU_TARGET, EBU_CEILING = -23.0, -1.0


def tasks_of(outputs):
    """The tasks a batch sends to its workers: the outputs that need rendering."""
    return pipeline.make_tasks([o.job for o in outputs if o.action == runner.RENDER])


def outputs_in(workspace):
    with Ledger.open(workspace) as ledger:
        return ledger.find_outputs()


def test_a_batch_renders_delivers_and_records_every_cue(tmp_path, shared_workspace, episode_file):
    workspace = shared_workspace
    episode = load_cuelist(episode_file)
    report = runner.run_batch(episode, tmp_path / "out", workspace=workspace, workers=2)

    assert [r.status for r in report.results] == ["rendered"] * 6
    assert [r.output.label for r in report.results] == ["1M1", "1M2", "1M3", "2M1", "2M2", "4M4"]
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    expected = [f"S01E03_{c}.wav" for c in ("1M1", "1M2", "1M3", "2M1", "2M2", "4M4")]
    assert files == sorted(expected + [f + ".json" for f in expected])
    records = {r.cue_id: r for r in outputs_in(workspace)}
    assert sorted(records) == ["1M1", "1M2", "1M3", "2M1", "2M2", "4M4"]
    for result in report.results:
        cue = result.output.cue
        path = result.output.job.path
        audio, rate = read_audio(path)
        assert rate == 48000 and audio.shape == (2, round(cue.duration * 48000))
        # Loudness and true peak measured again from the file, not taken from the sidecar.
        assert abs(integrated_loudness(audio, rate) - EBU_TARGET) <= 0.5
        assert true_peak_dbtp(audio, rate) <= EBU_CEILING + 0.05
        sidecar = json.loads(path.with_name(path.name + ".json").read_text())
        record = records[cue.id]
        assert sidecar["audio_sha256"] == audio_sha256(path) == record.audio_sha256
        assert sidecar["ledger"]["record_id"] == record.id == result.delivery.record_id
        assert (record.production, record.episode, record.cue_id) == ("Deep Water", "S01E03", cue.id)
        assert record.air_date == "2027-03-14" and record.territories == ["FR", "BE"]
        assert record.content_key == sidecar["content_key"] == result.output.job.content_key
        assert record.path == str(path.resolve())
        assert result.verdict.cleared, result.verdict.reasons
        # The cue-sheet facts the reports read (docs/reports.md) travel with the record.
        facts = cue_facts(record)
        assert (facts["usage"], facts["production_title"], facts["publisher"]) == \
            (cue.usage, "Deep Water", "Abyssal Music Publishing")
        assert facts["timecode_in"] == cue.timecode_in and facts.get("title") == cue.title
    with Ledger.open(workspace) as ledger:
        ledger.verify()


def test_a_rerun_skips_everything_and_records_nothing(tmp_path, workspace, episode_file):
    episode = load_cuelist(episode_file)
    first = runner.run_batch(episode, tmp_path / "out", workspace=workspace, workers=2)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    again = runner.run_batch(episode, tmp_path / "out", workspace=workspace, workers=2)
    assert [r.status for r in again.results] == ["skipped"] * len(first.results)
    assert [r.delivery.record_id for r in again.results] == [r.delivery.record_id for r in first.results]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == stamps
    assert len(outputs_in(workspace)) == len(first.results)
    assert all(r.verdict.cleared for r in again.results)


def test_a_changed_cue_renders_again_and_only_it(tmp_path, workspace, write_episode):
    out = tmp_path / "out"
    runner.run_batch(load_cuelist(write_episode(tmp_path, seed=1)), out, workspace=workspace, workers=2)
    before = {r.cue_id: r for r in outputs_in(workspace)}
    old_hash = audio_sha256(out / "S01E03_1M2.wav")

    changed = load_cuelist(write_episode(tmp_path, seed=2))
    plan = runner.plan(changed, out)
    assert {o.label: (o.action, o.reason) for o in plan}["1M2"] == ("render", "changed")
    report = runner.run_batch(changed, out, workspace=workspace, workers=2)
    status = {r.output.label: r.status for r in report.results}
    assert status == {"1M1": "skipped", "1M2": "rendered", "1M3": "skipped", "2M1": "skipped",
                      "2M2": "skipped", "4M4": "skipped"}
    new_hash = audio_sha256(out / "S01E03_1M2.wav")
    assert new_hash != old_hash
    after = outputs_in(workspace)
    assert len(after) == len(before) + 1  # the old take stays in the (append-only) history
    latest = [r for r in after if r.cue_id == "1M2"][-1]
    assert latest.audio_sha256 == new_hash and latest.seed == 2
    sidecar = json.loads((out / "S01E03_1M2.wav.json").read_text())
    assert sidecar["ledger"]["record_id"] == latest.id


def test_files_written_but_never_recorded_are_recorded_without_rendering(tmp_path, workspace, episode_file):
    from soundscape import pipeline

    # What a worker leaves when the driver dies before recording: complete files and sidecars.
    episode = load_cuelist(episode_file)
    out = tmp_path / "out"
    out.mkdir()
    planned = runner.plan(episode, out)
    pipeline.produce([o.job for o in planned[:2]])
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    report = runner.run_batch(episode, out, workspace=workspace, workers=2)
    assert [r.status for r in report.results[:2]] == ["recorded", "recorded"]
    assert {r.status for r in report.results[2:]} == {"rendered"}
    assert all(out.joinpath(name).stat().st_mtime_ns == stamp for name, stamp in stamps.items()
               if not name.endswith(".json"))
    assert len(outputs_in(workspace)) == 6


def test_only_renders_the_chosen_cues(tmp_path, workspace, episode_file):
    episode = load_cuelist(episode_file).select(["1M3,4M4"])
    report = runner.run_batch(episode, tmp_path / "out", workspace=workspace, workers=1)
    assert [(r.output.label, r.status) for r in report.results] == [("1M3", "rendered"), ("4M4", "rendered")]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["S01E03_1M3.wav", "S01E03_4M4.wav"]


def test_a_failing_cue_does_not_stop_the_others(tmp_path, workspace, episode_with_broken_model):
    cues = episode_with_broken_model
    episode = load_cuelist(cues, registered_models={"deep-water-ft"})
    report = runner.run_batch(episode, tmp_path / "out", workspace=workspace, workers=2)
    status = {r.output.label: r for r in report.results}
    assert status["9M9"].status == "failed"
    assert "not an audiocraft checkpoint folder" in status["9M9"].error
    assert [r.output.label for r in report.failed] == ["9M9"]
    assert all(r.status == "rendered" for label, r in status.items() if label != "9M9")
    assert not (tmp_path / "out" / "S01E03_9M9.wav").exists()
    assert len(outputs_in(workspace)) == 6
    with Ledger.open(workspace) as ledger:
        assert Journal.of(ledger).entries() == []


def test_cue_ids_that_are_not_file_names_stay_inside_the_output_folder(tmp_path, workspace):
    cues = tmp_path / "odd.csv"
    cues.write_text("# title: Deep Water\n# episode: ../S01E03\n"
                    "id,kind,usage,duration,mood\n"
                    "../../escape,sting,BI,3,tense\n"
                    "CON,sting,BI,3,calm\n", encoding="utf-8")
    out = tmp_path / "deep" / "out"
    report = runner.run_batch(load_cuelist(cues), out, workspace=workspace, workers=1)
    assert [r.status for r in report.results] == ["rendered", "rendered"]
    names = sorted(p.name for p in out.glob("*.wav"))
    assert names == ["S01E03_CON_.wav", "S01E03_escape.wav"]
    assert sorted(p.name for p in tmp_path.rglob("*.wav")) == names


def test_musicgen_tasks_batch_by_model_and_composer_cues_run_one_per_task(tmp_path, workspace, episode_file):
    episode = load_cuelist(episode_file)
    tasks = tasks_of(runner.plan(episode, tmp_path / "out"))
    assert sorted(len(t.jobs) for t in tasks) == [1] * 6
    assert not any(t.wants_gpu for t in tasks)


@pytest.mark.parametrize("executor,workers", [("slurm", 1), ("local", 0)])
def test_bad_executor_settings_are_refused(tmp_path, workspace, episode_file, executor, workers):
    from soundscape.errors import ParameterError

    with pytest.raises(ParameterError):
        runner.run_batch(load_cuelist(episode_file), tmp_path / "out", workspace=workspace,
                         executor=executor, workers=workers)


@pytest.mark.slow
def test_musicgen_cues_of_one_model_render_in_one_task_and_are_recorded_with_the_model(tmp_path, workspace):
    from soundscape.models import create_model

    with Ledger.open(workspace) as ledger:
        model = create_model(ledger, workspace, "studio-tiny", "tiny", seed=440)
    cues = tmp_path / "mixed.yaml"
    cues.write_text("""\
production: {title: "Deep Water", episode: "S01E05", air_date: 2027-04-01, territory: [FR],
             engine: musicgen, model: studio-tiny}
cues:
  - {id: "1M1", kind: sting, usage: BI, duration: 2, prompt: "dark drone swell"}
  - {id: "1M2", kind: sting, usage: BI, duration: 2, prompt: "bright bell sting"}
  - {id: "1M3", kind: jingle, usage: MT, duration: 3, prompt: "hopeful strings"}
  - {id: "1M4", kind: sting, usage: BI, duration: 2, prompt: "tense hit", engine: composer}
""", encoding="utf-8")
    with Ledger.open(workspace) as ledger:
        from soundscape.models import usable_models

        episode = load_cuelist(cues, registered_models=usable_models(ledger))
        tasks = tasks_of(runner.plan(episode, tmp_path / "out", ledger=ledger))
    assert sorted(len(t.jobs) for t in tasks) == [1, 3] and [t.wants_gpu for t in tasks].count(True) == 1

    report = runner.run_batch(episode, tmp_path / "out", workspace=workspace, workers=2)
    assert [r.status for r in report.results] == ["rendered"] * 4, [r.error for r in report.results]
    records = {r.cue_id: r for r in outputs_in(workspace)}
    for cue in ("1M1", "1M2", "1M3"):
        assert records[cue].model == "studio-tiny" and records[cue].model_record == model.id
        assert records[cue].engine == "musicgen"
        audio, rate = read_audio(tmp_path / "out" / f"S01E05_{cue}.wav")
        assert rate == 48000 and abs(integrated_loudness(audio, rate) - EBU_TARGET) <= 0.5
    assert records["1M4"].engine == "composer" and records["1M4"].model is None
    # The model's checkpoint hash is part of each musicgen cue's content key.
    engine = report.results[0].output.engine
    assert engine["model_sha256"] and engine["model_sha256"] == model.details["model_sha256"]
    again = runner.run_batch(episode, tmp_path / "out", workspace=workspace, workers=2)
    assert [r.status for r in again.results] == ["skipped"] * 4
