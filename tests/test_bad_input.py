"""Inputs found to break things (issue 12): each now gets one clear line, and nothing is written.

A 300-character output name, a text file named state_dict.bin, a YAML alias bomb, an RF64 file
whose header lies about its size, a kill that leaves a pending entry's temp file, and a
100,000-character prompt.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from soundscape.errors import AudioError, ModelError, ParameterError


def run(home, *args, timeout=120):
    env = dict(os.environ, SOUNDSCAPE_HOME=str(home), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "soundscape", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0, proc.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[:2000]
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_an_output_name_too_long_for_the_file_system_is_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run(tmp_path / "home", "generate", "calm", "--duration", 10,
               "--out", out / ("a" * 300 + ".wav"))
    assert "bytes long" in one_error_line(proc)
    assert list(out.iterdir()) == []
    # The longest name that leaves room for the sidecar's temp file is accepted.
    from soundscape.audio.io import NAME_HEADROOM, check_output_path

    longest = os.pathconf(out, "PC_NAME_MAX") - NAME_HEADROOM
    check_output_path(out / ("b" * (longest - 4) + ".wav"), overwrite=False)
    with pytest.raises(Exception, match="bytes long"):
        check_output_path(out / ("b" * (longest - 3) + ".wav"), overwrite=False)


def test_a_text_file_named_like_a_checkpoint_is_refused_in_one_line(tmp_path):
    from soundscape.engines.musicgen.checkpoint import read_package

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "state_dict.bin").write_text("hello there\n")
    (folder / "compression_state_dict.bin").write_text("not weights either\n")
    with pytest.raises(ModelError, match="not a readable torch checkpoint"):
        read_package(folder / "state_dict.bin")
    proc = run(tmp_path / "home", "model", "add", folder, "--name", "x", "--license", "MIT",
               "--lineage-unknown")
    assert "state_dict.bin" in one_error_line(proc)


def _alias_bomb(levels: int) -> str:
    """Nine times as many values at every level: 9 ** levels once every alias is expanded."""
    anchors = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        anchors.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return ("x-anchors:\n" + "\n".join(anchors) + "\nproduction:\n  title: Bomb\n"
            f"  episode: S01E01\n  territory: *a{levels - 1}\ncues:\n  - id: 1M1\n"
            "    prompt: calm\n    kind: bed\n    usage: BI\n    duration: 10\n")


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    from soundscape.batch.cuefile import MAX_EXPANDED_VALUES, Collector, expanded_size, read_yaml

    import yaml

    text = _alias_bomb(9)  # 387 million values
    assert len(text) < 2000
    root = yaml.SafeLoader(text).get_single_node()
    assert expanded_size(root) > MAX_EXPANDED_VALUES
    problems = Collector("bomb.yaml")
    assert read_yaml(text, problems) is None
    assert "aliases" in str(problems.problems[0])
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    proc = run(tmp_path / "home", "batch", path, "--out", tmp_path / "out")
    assert proc.returncode != 0 and "aliases" in proc.stderr
    assert len(proc.stderr) < 2000  # never the expanded value
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_small_expansion_is_read_and_its_echo_is_shortened(tmp_path):
    from soundscape.batch.cuefile import MAX_MESSAGE_CHARS
    from soundscape.batch.cuelist import CueListError, load_cuelist

    path = tmp_path / "cues.yaml"
    path.write_text(_alias_bomb(4))  # 6,561 values: within bounds, and not territories
    with pytest.raises(CueListError) as err:
        load_cuelist(path)
    for line in str(err.value).splitlines():
        assert len(line) < MAX_MESSAGE_CHARS + 200
    assert any("territory" in line and "…" in line for line in str(err.value).splitlines())


def _rf64(path, *, claimed_bytes: int | None = None):
    audio = (np.random.default_rng(1).standard_normal((1200, 1)) * 0.1).astype(np.float32)
    sf.write(path, audio, 48000, format="RF64", subtype="PCM_32")
    if claimed_bytes is not None:
        data = bytearray(path.read_bytes())
        ds64 = data.find(b"ds64")
        data[ds64 + 16:ds64 + 24] = struct.pack("<Q", claimed_bytes)
        path.write_bytes(data)
    return path


def test_an_rf64_file_whose_header_claims_more_than_it_holds_is_refused(tmp_path):
    from soundscape.audio.io import riff_chunks
    from soundscape.rights.ingest import add_paths
    from soundscape.rights.ledger import Ledger

    honest = _rf64(tmp_path / "honest.wav")
    lying = _rf64(tmp_path / "lying.wav", claimed_bytes=10 * 1024 ** 3)
    assert riff_chunks(honest)[b"data"][1] == 4800
    assert riff_chunks(lying)[b"data"][1] == 10 * 1024 ** 3
    home = tmp_path / "home"
    with Ledger.open_url(f"sqlite:///{home / 'ledger.sqlite'}", home / "keys", home=home) as ledger:
        with pytest.raises(AudioError, match="truncated"):
            add_paths(ledger, [lying], license="CC0-1.0", author="A", dataset="lies")
        assert ledger.get_dataset("lies") is None
        report = add_paths(ledger, [honest], license="CC0-1.0", author="A", dataset="fine")
        assert len(report.dataset.assets) == 1


def test_reconcile_removes_a_pending_entry_torn_by_a_kill(tmp_path):
    from soundscape.journal import Journal, reconcile
    from soundscape.rights.ledger import Ledger

    home = tmp_path / "home"
    with Ledger.open_url(f"sqlite:///{home / 'ledger.sqlite'}", home / "keys", home=home) as ledger:
        journal = Journal.of(ledger)
        journal.folder.mkdir(parents=True)
        dead = subprocess.Popen(["true"])
        dead.wait()
        torn = journal.folder / f".{time.time_ns()}-{dead.pid}-abcd1234.json.tmpx1y2z3w4"
        torn.write_text('{"token": "half')  # what a kill during begin() leaves
        live = journal.folder / f".{time.time_ns()}-{os.getpid()}-abcd1234.json.tmpq9r8s7t6"
        live.write_text("{")  # a live writer's: left alone
        report = reconcile(ledger)
        assert str(torn) in report.removed_temp_files
        assert not torn.exists() and live.exists()
        assert ledger.store.count() == 0  # nothing was recorded from it


def test_a_100000_character_prompt_is_refused_in_one_line(tmp_path):
    from soundscape.production import MAX_PROMPT_CHARS
    from soundscape.spec import make_spec

    make_spec("calm " * (MAX_PROMPT_CHARS // 5), duration=10)
    with pytest.raises(ParameterError, match="characters long"):
        make_spec("calm " * 20_000, duration=10)
    with pytest.raises(ParameterError, match="title"):
        make_spec("calm", duration=10, production="T" * 1000)
    out = tmp_path / "out"
    out.mkdir()
    proc = run(tmp_path / "home", "generate", "calm " * 20_000, "--duration", 10,
               "--out", out / "x.wav")
    assert "prompt" in one_error_line(proc)
    assert list(out.iterdir()) == []
