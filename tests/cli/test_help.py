"""The help a user reads: choices shown as choices, plain type names, required options marked,
and the fixed choices equal to the registries they mirror."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from soundscape.cli import choices


def _help(*command: str) -> str:
    env = dict(os.environ, COLUMNS="250")
    proc = subprocess.run([sys.executable, "-m", "soundscape", *command, "--help"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_cli_choices_are_the_library_registries():
    from soundscape.audio.master import PRESETS
    from soundscape.reports import FORMATS

    assert choices.PRESETS == tuple(PRESETS)
    assert choices.REPORT_FORMATS == tuple(FORMATS)
    assert choices.AUDIO_FORMATS == ("wav", "flac")


@pytest.mark.parametrize("command, shown", [
    (("generate",), ["ebu-r128|netflix|streaming|none", "wav|flac", "composer|musicgen"]),
    (("report",), ["csv|json|html|pdf|society"]),
])
def test_choices_are_shown_as_choices(command, shown):
    text = _help(*command)
    for words in shown:
        assert words in text, words


@pytest.mark.parametrize("command", [("generate",), ("jingle",), ("batch",), ("report",), ("dataset", "add"),
                                     ("ledger", "verify"), ("model", "new"), ("train",)])
def test_no_python_type_names_in_help(command):
    text = _help(*command)
    assert not re.search(r"<(str|bool|int|float|list\[[^\]]*\]|Path|path)>", text), text


def test_dataset_add_marks_its_required_options():
    text = _help("dataset", "add")
    for option in ("--license", "--author", "--dataset"):
        line = next(line for line in text.splitlines() if option in line)
        assert "*" in line.split(option)[0], line
