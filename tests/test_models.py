"""The model service: which registered models a batch may use."""

from soundscape.config import open_workspace
from soundscape.models import usable_models
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import ModelEntry


def test_usable_models_reads_the_ledger(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    with Ledger.open(open_workspace(tmp_path / "home")) as ledger:
        for name, path, unknown in (("ok", folder, False), ("mock", folder, True),
                                    ("moved", tmp_path / "gone", False)):
            ledger.register_model(ModelEntry(name=name, path=str(path), lm_sha256=name.ljust(64, "0")[:64],
                                             license="LicenseRef-Studio-Owned", lineage_unknown=unknown))
        status = usable_models(ledger)
    assert status["ok"] is None
    assert "unknown lineage" in status["mock"]
    assert "missing" in status["moved"]
