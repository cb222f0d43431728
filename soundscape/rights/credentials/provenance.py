"""Signing a recorded output: its provenance gathered from the sidecar and the ledger, then signed.

Called by delivery after the ledger record commits, so the manifest can carry the record id,
the signed checkpoint and the inclusion proof.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from soundscape.config import open_workspace
from soundscape.errors import CredentialError
from soundscape.rights.credentials.manifest import Provenance, sign_file
from soundscape.rights.credentials.signing import signing_config, training_mining_use
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import OutputRecord

# Per open ledger (one per run): dataset record id -> license counts, so a batch of outputs from
# one model counts its training set once. Per ledger, not per process, so a later run sees any
# license correction appended meanwhile.
_DATASET_LICENSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def written_metadata(path: str | Path) -> dict:
    """The bext fields and iXML hash of a delivered WAV as written (empty for FLAC).

    Carried in the manifest so that ``soundscape verify`` can name the chunk that changed.
    """
    # Reading the chunks pulls in numpy (soundscape.audio.io): only a signing workspace pays.
    from soundscape.audio.io import read_bext, read_ixml

    bext = read_bext(path)
    ixml = read_ixml(path)
    data: dict = {}
    if bext is not None:
        fields = asdict(bext)
        fields["umid"] = bytes(fields.get("umid") or b"").hex()
        data["bext"] = fields
    if ixml is not None:
        data["ixml_sha256"] = hashlib.sha256(ixml.encode("utf-8")).hexdigest()
    return data


def provenance_of(path: Path, sidecar: dict, record: OutputRecord, ledger: Ledger, *,
                  training_mining: str) -> Provenance:
    """Gather the manifest's facts for a recorded output from its sidecar and the ledger."""
    cache = _DATASET_LICENSES.setdefault(ledger, {})
    engine = sidecar.get("engine") or {}
    model = ledger.get_model(record.model_record or record.model) if record.model else None
    datasets = []
    for ds in (model.datasets if model is not None else []):
        key = ds.get("id") or f"{ds.get('name')}@{ds.get('version')}"
        if key not in cache:
            assets = ledger.dataset_assets(ds["name"], ds.get("version"))
            cache[key] = dict(sorted(Counter(a.license or "none" for a in assets).items()))
        datasets.append({"name": ds.get("name"), "version": ds.get("version"),
                         "manifest_sha256": ds.get("manifest_sha256"), "licenses": cache[key]})
    proof = ledger.prove(record.id).to_dict()
    return Provenance(
        title=path.name, engine=engine.get("name") or record.engine,
        engine_version=engine.get("version") or record.engine_version,
        audio_sha256=sidecar["audio_sha256"], model=record.model,
        model_sha256=engine.get("model_sha256") or record.model_sha256,
        base_model=({"name": model.base_model, "license": model.base_model_license}
                    if model is not None and model.base_model else None),
        datasets=datasets,
        samples=[{"id": s.get("id"), "sha256": s.get("sha256"), "license": s.get("license")}
                 for s in sidecar.get("samples") or []],
        presets=[{k: p.get(k) for k in ("id", "sha256", "license", "bank", "bank_title", "preset",
                                        "credit", "sample_credit")}
                 for p in sidecar.get("presets") or []],
        continuation_sources=[{"id": s.get("id"), "sha256": s.get("sha256"), "license": s.get("license")}
                              for s in sidecar.get("ingredients") or []],
        prompt=sidecar.get("prompt"),
        ledger={"record_id": record.id, "checkpoint": proof["checkpoint"], "inclusion_proof": proof},
        metadata=written_metadata(path), training_mining=training_mining,
        watermark=sidecar.get("watermark"))


def sign_recorded_output(path: str | Path, sidecar: dict, record: OutputRecord,
                         ledger: Ledger) -> str | None:
    """Sign a delivered, recorded output when the workspace has a signing certificate.

    Called by ``delivery.record_delivery`` after the ledger record commits, so the manifest can
    carry the record id, the signed checkpoint and the inclusion proof.

    Returns:
        The file's new sha256 when it was signed, None when signing is not configured.

    Raises:
        CredentialError: signing is configured but failed (the file is left as it was).
    """
    if ledger.home is None:
        return None
    workspace = open_workspace(ledger.home)
    config = signing_config(workspace)
    if config is None:
        return None
    path = Path(path)
    facts = provenance_of(path, sidecar, record, ledger,
                          training_mining=training_mining_use(workspace))
    sign_file(path, facts, config)
    # Decoding pulls in numpy: only a signing workspace pays for it.
    from soundscape.audio.io import audio_sha256, file_sha256

    # Signing adds a C2PA chunk and must never touch the samples: check rather than trust it.
    if audio_sha256(path) != sidecar["audio_sha256"]:
        raise CredentialError(f"{path.name}: signing changed the decoded audio; report this bug")
    return file_sha256(path)
