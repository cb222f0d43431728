"""`soundscape corpus`: labelled clips with their lineage, registered under the studio's license."""

from __future__ import annotations

import json

import soundfile as sf

from soundscape.corpus import STUDIO_LICENSE, plan_corpus


def test_plan_is_seeded_and_covers_the_hours():
    a, b, c = plan_corpus(0.05, seed=4), plan_corpus(0.05, seed=4), plan_corpus(0.05, seed=5)
    assert a == b and a != c
    total = sum(p.seconds for p in a)
    assert 180.0 <= total < 180.0 + 10.0
    assert all(10.0 <= p.seconds <= 30.0 for p in a)
    # A longer corpus from the same seed starts with the same clips.
    assert plan_corpus(0.1, seed=4)[:len(a) - 1] == a[:-1]
    assert len({(p.mood, p.key, p.textures, p.instruments) for p in plan_corpus(0.2, seed=4)}) > 10


def test_corpus_command_writes_labels_lineage_and_registers_the_dataset(soundscape, home):
    proc = soundscape("corpus", "--hours", "0.01", "--dataset", "starter", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    folder = home / "corpus" / "starter" / "seed-3"
    sidecars = sorted(folder.glob("*.json"))
    assert len(sidecars) >= 2
    total = 0.0
    for path in sidecars:
        clip = json.loads(path.read_text())
        info = sf.info(str(folder / clip["file"]))
        total += info.frames / info.samplerate
        assert abs(info.frames / info.samplerate - clip["duration"]) < 1e-3
        assert clip["mood"] and clip["key"] and 30 <= clip["bpm"] <= 240 and clip["instruments"]
        # The labels are what the composer rendered: its parser reads the prompt back to them.
        from soundscape.spec import read_prompt

        heard = read_prompt(clip["description"])
        assert heard["textures"] == clip["textures"]
        assert heard["instruments"] == clip["instruments"]
        assert heard["key"].name == clip["key"] and heard["bpm"] == clip["bpm"]
        lineage = clip["lineage"]
        assert lineage["engine"] == "composer" and (lineage["samples"] or lineage["presets"])
        licenses = {u["license"] for u in lineage["samples"] + lineage["presets"]}
        for lic in licenses:
            assert lic in clip["license"]
        assert clip["license"].startswith(STUDIO_LICENSE + " AND ")
    assert total >= 36.0

    shown = soundscape("dataset", "show", "starter", "--assets")
    assert shown.returncode == 0, shown.stderr
    assert f"{len(sidecars)} assets" in shown.stdout
    assert STUDIO_LICENSE + " AND " in shown.stdout


def test_bad_input_is_one_line_and_writes_nothing(soundscape, home):
    for args in (["--hours", "0", "--dataset", "x"], ["--hours", "-1", "--dataset", "x"],
                 ["--hours", "nan", "--dataset", "x"], ["--hours", "0.01"],
                 ["--hours", "0.01", "--dataset", "a/b"]):
        proc = soundscape("corpus", *args)
        assert proc.returncode != 0, args
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (home / "corpus").exists() or not any((home / "corpus").rglob("*.flac"))
