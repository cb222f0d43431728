"""A delivery folder checked against the ledger: every sidecar and every C2PA manifest in it.

Each sidecar (``*.json`` with a ``ledger`` field) and each signed WAV/FLAC carries the record id
and the signed checkpoint the output was recorded under (a manifest also its inclusion proof).
``ledger verify --against DIR`` hands every such checkpoint to the verifier, which checks that
today's ledger still has that tree at that size; here each file's own claims are checked too:
its record exists with the same audio, and its inclusion proof verifies with the ledger's key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from soundscape.errors import CredentialError, ParameterError, ProofError, TamperError
from soundscape.rights import merkle
from soundscape.rights.credentials.manifest import MIME_TYPES, read_credentials
from soundscape.rights.ledger import Ledger

# A delivery folder is walked this deep at most (a mistyped --against / would walk the disk).
MAX_FILES = 100_000


@dataclass
class Delivered:
    """What a delivery folder holds: checkpoints to hold the ledger to, and what was read."""

    held: list[tuple[str, dict]] = field(default_factory=list)
    sidecars: int = 0
    manifests: int = 0


def delivered_checkpoints(folder: Path, ledger: Ledger) -> Delivered:
    """Read every sidecar and C2PA manifest under ``folder`` and check each against ``ledger``.

    Raises:
        ParameterError: the folder holds no sidecar or manifest with a ledger checkpoint.
        TamperError: a file names a record the ledger does not hold as it says, or carries an
            inclusion proof that does not verify with the ledger's key.
    """
    found = Delivered()
    pem = ledger.public_key_pem()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if len(files) > MAX_FILES:
        raise ParameterError(f"{folder} holds {len(files)} files; point --against at a delivery "
                             f"folder (at most {MAX_FILES:,})")
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".json":
            entry = _sidecar_ledger(path)
            if entry is None:
                continue
            found.sidecars += 1
            _check_record(ledger, path, entry.get("record_id"), entry.get("audio_sha256"))
            found.held.append((str(path), entry["checkpoint"]))
        elif suffix in MIME_TYPES:
            try:
                creds = read_credentials(path)
            except CredentialError:
                continue  # an unreadable manifest is `soundscape verify FILE`'s to explain
            entry = creds.ledger if creds is not None else None
            if not isinstance(entry, dict) or not isinstance(entry.get("checkpoint"), dict):
                continue
            found.manifests += 1
            label = f"{path} (C2PA manifest)"
            proof = entry.get("inclusion_proof")
            if isinstance(proof, dict):
                try:
                    merkle.verify_inclusion(proof, pem)
                except ProofError as exc:
                    raise TamperError(f"{label}: its inclusion proof does not verify with the "
                                      f"ledger's key ({exc})") from None
                body = json.loads(proof.get("body") or "{}")
                _check_record(ledger, label, entry.get("record_id"), body.get("audio_sha256"))
            found.held.append((label, entry["checkpoint"]))
    if not found.held:
        raise ParameterError(f"{folder} holds no sidecar or C2PA manifest with a ledger "
                             "checkpoint")
    return found


def _sidecar_ledger(path: Path) -> dict | None:
    """A sidecar's ``ledger`` field with its audio hash, or None for other JSON files."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("ledger"), dict):
        return None
    entry = data["ledger"]
    if not isinstance(entry.get("checkpoint"), dict):
        return None
    return {**entry, "audio_sha256": data.get("audio_sha256")}


def _check_record(ledger: Ledger, label, record_id, audio_sha256) -> None:
    if not record_id:
        return
    stored = ledger.store.get(str(record_id))
    if stored is None:
        raise TamperError(f"{label} names record {record_id}, which the ledger does not hold: "
                          "it was removed or the ledger replaced")
    if audio_sha256 and stored.body.get("audio_sha256") != audio_sha256:
        raise TamperError(f"{label} names record {record_id}, but the ledger's record is of "
                          "other audio: the ledger was rewritten")
