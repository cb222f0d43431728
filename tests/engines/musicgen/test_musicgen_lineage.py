"""Models in the ledger: lineage from `model new` and `train`, Meta's weights, clearance verdicts."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from soundscape.errors import LedgerError, LicenseError, ModelError, NotClearedError, ParameterError
from soundscape.rights.clearance import clear_model


@pytest.fixture(scope="module")
def studio(tmp_path_factory, torch_one_thread):
    """A workspace with its ledger, a `model new` tiny model, and that model trained on samples/."""
    from soundscape.config import open_workspace
    from soundscape.models import create_model, train_model
    from soundscape.rights.ledger import Ledger

    ws = open_workspace(tmp_path_factory.mktemp("home"))
    ledger = Ledger.open(ws)
    base = create_model(ledger, ws, "studio-tiny", "tiny", seed=3)
    trained = train_model(ledger, ws, model="studio-tiny", dataset="soundscape-samples",
                          out="tiny-samples", steps=12, batch_size=4, lr=3e-3,
                          segment_seconds=1.0, policy="broadcast-commercial",
                          allow_untrained_codec=True)
    yield ws, ledger, base, trained
    ledger.close()


def test_model_new_starts_as_studio_work_with_empty_lineage(studio):
    ws, ledger, base, _ = studio
    assert base.license == "LicenseRef-Studio-Owned"
    assert base.datasets == [] and base.base_model is None and not base.lineage_unknown
    assert base.architecture["arch"] == "tiny" and base.architecture["dim"] == 64
    assert (ws.models_dir / "studio-tiny" / "state_dict.bin").is_file()
    assert len(base.lm_sha256) == 64 and len(base.compression_sha256) == 64


def test_trained_from_scratch_on_samples_is_cleared_for_broadcast(studio):
    _, ledger, base, trained = studio
    record = trained.record
    assert record.base_model == "studio-tiny"
    assert record.base_model_license == "LicenseRef-Studio-Owned"
    assert [d["name"] for d in record.datasets] == ["soundscape-samples"]
    assert record.training["stage"] == "lm" and record.training["steps"] == 12
    assert record.compression_sha256 == base.compression_sha256  # LM stage keeps the codec
    assert clear_model(ledger, "tiny-samples", "broadcast-commercial").cleared


def test_the_same_weights_registered_as_cc_by_nc_are_not_cleared(studio):
    from soundscape.models import register_checkpoint

    _, ledger, _, trained = studio
    nc = register_checkpoint(ledger, trained.record.path, name="tiny-samples-nc",
                             license="CC-BY-NC-4.0", trained_on=["soundscape-samples"])
    assert nc.lm_sha256 == trained.record.lm_sha256
    verdict = clear_model(ledger, "tiny-samples-nc", "broadcast-commercial")
    assert not verdict.cleared
    assert any("CC-BY-NC-4.0" in reason for reason in verdict.reasons)
    assert clear_model(ledger, "tiny-samples-nc", "internal-preproduction").cleared


def test_meta_weights_record_cc_by_nc_and_unknown_lineage_never_clears(studio, tmp_path):
    from soundscape.models import (check_model_usable, register_checkpoint,
                                                      train_model)

    ws, ledger, base, _ = studio
    folder = tmp_path / "hf" / "musicgen-small"
    shutil.copytree(base.path, folder)
    with pytest.raises(LicenseError, match="CC-BY-NC-4.0"):
        register_checkpoint(ledger, folder, name="meta-small", license="MIT", lineage_unknown=True)
    with pytest.raises(ParameterError, match="--trained-on"):
        register_checkpoint(ledger, folder, name="meta-small", license=None)
    record = register_checkpoint(ledger, folder, name="meta-small", license=None,
                                 lineage_unknown=True)
    assert record.license == "CC-BY-NC-4.0"
    assert record.base_model == "facebook/musicgen-small"
    assert record.base_model_license == "CC-BY-NC-4.0"
    with pytest.raises(ModelError, match="--allow-unknown-lineage"):
        check_model_usable(record, allow_unknown_lineage=False)
    check_model_usable(record, allow_unknown_lineage=True)
    for policy in ("broadcast-commercial", "internal-preproduction"):
        assert not clear_model(ledger, "meta-small", policy).cleared

    # Fine-tuning it stays CC-BY-NC-4.0 and of unknown lineage.
    child = train_model(ledger, ws, model="meta-small", dataset="soundscape-samples",
                        out="meta-small-ft", steps=2, batch_size=2, lr=1e-3, segment_seconds=1.0,
                        lora_rank=2, allow_untrained_codec=True).record
    assert child.license == "CC-BY-NC-4.0" and child.lineage_unknown
    assert child.base_model == "meta-small" and child.training["lora_rank"] == 2
    assert not clear_model(ledger, "meta-small-ft", "internal-preproduction").cleared


def test_policy_refuses_rejected_training_assets_up_front(studio, tmp_path, rng):
    import soundfile as sf

    from soundscape.models import train_model
    from soundscape.rights.ingest import add_paths

    ws, ledger, _, _ = studio
    path = tmp_path / "nc-loop.wav"
    sf.write(path, (0.1 * rng.standard_normal(48000)).astype(np.float32),
             48000)
    add_paths(ledger, [path], license="CC-BY-NC-4.0", author="Someone", dataset="nc-set")
    with pytest.raises(NotClearedError, match=r"rejects 1 of 1 training assets: nc-loop.wav"):
        train_model(ledger, ws, model="studio-tiny", dataset="nc-set", out="never", steps=2,
                    policy="broadcast-commercial", allow_untrained_codec=True)
    assert ledger.get_model("never") is None
    assert not (ws.models_dir / "never").exists()


def test_engine_for_model_checks_the_ledger_and_the_files(studio, make_spec):
    from soundscape.models import engine_for_model

    ws, ledger, _, trained = studio
    engine = engine_for_model("tiny-samples", workspace=ws, device="cpu")
    [render] = engine.render([make_spec("Soft rain on leaves.", seed=2, duration=2.0)])
    assert render.lineage.model == "tiny-samples"
    assert render.lineage.model_sha256 == trained.record.lm_sha256
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        engine_for_model("nope", workspace=ws)
    with pytest.raises(ModelError, match="needs a model"):
        engine_for_model(None, workspace=ws)
    with pytest.raises(ModelError, match="unknown lineage"):
        engine_for_model("meta-small", workspace=ws)


def test_changed_files_are_refused(studio, tmp_path):
    from soundscape.models import create_model, engine_for_model

    ws, ledger, _, _ = studio
    record = create_model(ledger, ws, "to-tamper", "tiny", seed=9)
    with open(f"{record.path}/state_dict.bin", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="no longer match"):
        engine_for_model("to-tamper", workspace=ws)
    with pytest.raises(LedgerError, match="already registered"):
        create_model(ledger, ws, "to-tamper", "tiny")
