"""Published weights recognised by content (a renamed copy keeps its label) and transformers
folders recognised for what they are."""

from __future__ import annotations

import json
import shutil

import pytest

from soundscape.errors import LicenseError, ModelError


@pytest.fixture
def ledger(tmp_path):
    from soundscape.config import open_workspace
    from soundscape.rights.ledger import Ledger

    ws = open_workspace(tmp_path / "home")
    with Ledger.open(ws) as led:
        yield led


def _publish(home, name: str, sha256: str) -> None:
    """List a file hash as a published model in the workspace's own base-models table."""
    folder = home / "licenses"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base-models.toml").write_text(
        f'[[model]]\nname = "{name}"\nlicense = "CC-BY-NC-4.0"\n'
        f'source = "https://example.org/weights-licence"\nsha256 = ["{sha256}"]\n')


def test_a_renamed_copy_of_published_weights_keeps_its_licence(ledger, tiny_model_dir, tmp_path):
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes
    from soundscape.models import register_checkpoint

    hashes = checkpoint_hashes(tiny_model_dir)
    _publish(ledger.home, "example/published-tiny", hashes["lm"])
    renamed = tmp_path / "our-own-ambient-model"  # a name that says nothing about its origin
    shutil.copytree(tiny_model_dir, renamed)
    with pytest.raises(LicenseError, match="CC-BY-NC-4.0"):
        register_checkpoint(ledger, renamed, name="ours", license="LicenseRef-Studio-Owned",
                            lineage_unknown=True)
    record = register_checkpoint(ledger, renamed, name="ours", license=None, lineage_unknown=True)
    assert record.base_model == "example/published-tiny"
    assert record.license == "CC-BY-NC-4.0" and record.base_model_license == "CC-BY-NC-4.0"


def test_a_published_codec_under_a_new_lm_labels_the_model(ledger, tiny_model_dir, tmp_path):
    from soundscape.engines.musicgen.builders import build_model, export_model
    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes
    from soundscape.models import register_checkpoint

    _publish(ledger.home, "example/published-codec",
             checkpoint_hashes(tiny_model_dir)["compression"])
    # Another LM (another seed) over the same codec file.
    compression, lm = build_model("tiny", seed=99)
    folder = tmp_path / "studio-lm"
    export_model(compression, lm, lm.cfg, folder)
    shutil.copy(tiny_model_dir / "compression_state_dict.bin", folder / "compression_state_dict.bin")
    hashes = checkpoint_hashes(folder)
    assert hashes["lm"] != checkpoint_hashes(tiny_model_dir)["lm"]
    record = register_checkpoint(ledger, folder, name="studio-lm", license=None, lineage_unknown=True)
    assert record.base_model == "example/published-codec" and record.license == "CC-BY-NC-4.0"


def test_unpublished_weights_are_not_claimed(ledger, tiny_model_dir, tmp_path):
    from soundscape.models import register_checkpoint

    _publish(ledger.home, "example/published-other", "0" * 64)
    folder = tmp_path / "mine"
    shutil.copytree(tiny_model_dir, folder)
    record = register_checkpoint(ledger, folder, name="mine", license="LicenseRef-Studio-Owned",
                                 lineage_unknown=True)
    assert record.base_model is None and record.license == "LicenseRef-Studio-Owned"


def test_shipped_table_lists_published_hashes_for_the_released_models():
    import tomllib

    from soundscape.config import LICENSES_DIR

    data = tomllib.loads((LICENSES_DIR / "base-models.toml").read_text())
    listed = {m["name"]: m.get("sha256", []) for m in data["model"]}
    for name in ("facebook/musicgen-small", "facebook/musicgen-medium", "facebook/musicgen-large",
                 "facebook/musicgen-melody", "facebook/encodec_32khz"):
        assert listed[name] and all(len(h) == 64 and int(h, 16) >= 0 for h in listed[name])
    every = [h for hashes in listed.values() for h in hashes]
    assert len(every) == len(set(every))  # no file claimed by two models


def _transformers_folder(tmp_path, name_or_path: str):
    folder = tmp_path / "hf-export"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"_name_or_path": name_or_path, "model_type": "musicgen",
         "architectures": ["MusicgenForConditionalGeneration"]}))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def test_a_transformers_folder_is_named_labelled_and_refused_with_what_to_do(ledger, tmp_path):
    from soundscape.models import register_checkpoint

    folder = _transformers_folder(tmp_path, "facebook/musicgen-small")
    with pytest.raises(ModelError) as err:
        register_checkpoint(ledger, folder, name="hf", license=None, lineage_unknown=True)
    message = str(err.value)
    assert "transformers" in message and "facebook/musicgen-small" in message
    assert "CC-BY-NC-4.0" in message and "state_dict.bin" in message
    assert ledger.get_model("hf") is None


def test_model_add_of_a_transformers_folder_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    folder = _transformers_folder(tmp_path, "facebook/musicgen-medium")
    env = dict(os.environ, SOUNDSCAPE_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-m", "soundscape", "model", "add", str(folder),
                           "--name", "hf", "--lineage-unknown"], capture_output=True, text=True,
                          env=env, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "facebook/musicgen-medium" in lines[0]
    assert "Traceback" not in proc.stderr
