"""``soundscape verify``: where a delivered file came from, checked piece by piece.

The C2PA manifest against the workspace's trust anchors; bext and iXML against the signed
copies; the decoded audio hash against the manifest and the ledger record; the ledger record
itself; the inclusion proof against the signed checkpoint, with the ledger's own public key,
and that the ledger still holds that checkpoint (consistency).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from soundscape.config import Workspace
from soundscape.errors import AudioError, CredentialError, ProofError, SoundscapeError
from soundscape.rights import merkle
from soundscape.rights.credentials.manifest import Credentials, mime_for, read_credentials
from soundscape.rights.credentials.signing import trust_anchors_path
from soundscape.rights.ledger import Ledger
from soundscape.rights.records import OutputRecord


@dataclass(frozen=True)
class Check:
    """One line of ``soundscape verify``: what was checked, whether it passed, and why."""

    name: str
    ok: bool
    detail: str


# c2pa failure codes that mean the bytes changed after signing, in words a user can act on.
_HASH_CODES = {"assertion.dataHash.mismatch", "assertion.bmffHash.mismatch",
               "assertion.boxesHash.mismatch", "assertion.hashedURI.mismatch"}
_TRUST_CODES = {"signingCredential.untrusted", "signingCredential.invalid",
                "signingCredential.expired", "signingCredential.revoked"}
# bext fields compared with the signed copy, in the order a person would look at them.
_BEXT_FIELDS = ("description", "originator", "originator_reference", "origination_date",
                "origination_time", "time_reference", "umid", "loudness_value", "loudness_range",
                "max_true_peak_level", "max_momentary_loudness", "max_short_term_loudness",
                "coding_history", "version")


def _short(text, width: int = 60) -> str:
    text = str(text)
    return text if len(text) <= width else text[:width - 1] + "…"


def _signer_name(creds: Credentials) -> str:
    s = creds.signer
    name = s.get("common_name") or "unknown signer"
    return f"'{name}' (issuer '{s.get('issuer') or 'unknown'}')"


def _manifest_checks(creds: Credentials | None, anchors: Path | None) -> list[Check]:
    if creds is None:
        return [Check("manifest", False, "no C2PA manifest in the file: it was never signed, or "
                      "the manifest was stripped")]
    checks = []
    codes = set(creds.failure_codes())
    hash_failures = [(c, e) for c, e in creds.failures if c in _HASH_CODES]
    if hash_failures:
        checks.append(Check("manifest hash", False,
                            "the file's bytes changed after signing: the manifest's content hash "
                            f"no longer matches ({hash_failures[0][0]})"))
    else:
        checks.append(Check("manifest hash", True, "the file's bytes match the signed content hash"))
    trust = [(c, e) for c, e in creds.failures if c in _TRUST_CODES]
    if trust:
        where = f"the trust anchors in {anchors}" if anchors else "any trust anchor (none configured)"
        checks.append(Check("signer", False, f"signed by {_signer_name(creds)}, which is not "
                            f"under {where} ({trust[0][0]})"))
    else:
        checks.append(Check("signer", True, f"signed by {_signer_name(creds)}, trusted "
                            f"({creds.signer.get('alg', '?')})"))
    other = [(c, e) for c, e in creds.failures if c not in _HASH_CODES | _TRUST_CODES]
    if other:
        checks.append(Check("manifest", False, "; ".join(f"{c}: {e}" for c, e in other)))
    elif not codes and creds.state not in ("Trusted", "Valid"):
        checks.append(Check("manifest", False, f"c2pa reports the manifest {creds.state}"))
    return checks


def _metadata_checks(path: Path, signed: dict | None) -> list[Check]:
    """bext and iXML as found, compared with the copy the manifest carries."""
    # Reading the chunks pulls in numpy (soundscape.audio.io), as decoding does below.
    from soundscape.audio.io import read_bext, read_ixml

    if path.suffix.lower() != ".wav":
        return [Check("bext/iXML", True, f"not applicable to {path.suffix} files")]
    checks = []
    bext = read_bext(path)
    signed_bext = (signed or {}).get("bext")
    if bext is None:
        checks.append(Check("bext", signed_bext is None, "no bext chunk" + (
            ", but the signed file had one" if signed_bext else "")))
    elif signed_bext is None:
        checks.append(Check("bext", True, f"read: description '{_short(bext.description)}'"
                            + ("" if signed is None else " (the manifest holds no copy to compare)")))
    else:
        found = asdict(bext)
        found["umid"] = bytes(found.get("umid") or b"").hex()
        changed = [f for f in _BEXT_FIELDS if f in signed_bext and found.get(f) != signed_bext.get(f)]
        if changed:
            first = changed[0]
            checks.append(Check("bext", False, f"{', '.join(changed)} changed since signing: "
                                f"{first} is '{_short(found.get(first))}', signed "
                                f"'{_short(signed_bext.get(first))}'"))
        else:
            checks.append(Check("bext", True, f"matches the signed copy (description "
                                f"'{_short(bext.description)}')"))
    ixml = read_ixml(path)
    signed_ixml = (signed or {}).get("ixml_sha256")
    if ixml is None:
        checks.append(Check("iXML", signed_ixml is None, "no iXML chunk" + (
            ", but the signed file had one" if signed_ixml else "")))
    elif signed_ixml is None:
        checks.append(Check("iXML", True, "present (" + ("no manifest to compare with" if signed is None
                                                        else "the manifest holds no hash to compare") + ")"))
    elif hashlib.sha256(ixml.encode("utf-8")).hexdigest() != signed_ixml:
        checks.append(Check("iXML", False, "the iXML chunk changed since signing"))
    else:
        checks.append(Check("iXML", True, "matches the signed hash"))
    return checks


def verify_file(path: str | Path, workspace: Workspace) -> list[Check]:
    """Every check ``soundscape verify`` prints, in order (see the module's docstring).

    Raises:
        CredentialError: the file is missing or not WAV/FLAC.
    """
    # Decoding pulls in numpy and libsndfile: verify is the one command here that needs them.
    from soundscape.audio.io import audio_sha256

    path = Path(path)
    if path.is_dir():
        raise CredentialError(f"{path} is a folder: give a delivered .wav or .flac file")
    if not path.is_file():
        raise CredentialError(f"{path}: no such file")
    mime_for(path)
    anchors = trust_anchors_path(workspace)
    try:
        creds = read_credentials(path, anchors_pem=anchors.read_text() if anchors else None)
        checks = _manifest_checks(creds, anchors)
    except CredentialError as exc:  # a manifest so damaged c2pa cannot parse it
        creds, checks = None, [Check("manifest", False, str(exc))]
    signed = (creds.ledger or {}) if creds else {}
    checks += _metadata_checks(path, signed.get("metadata") if creds else None)

    try:
        actual = audio_sha256(path)
    except AudioError as exc:
        checks.append(Check("audio", False, str(exc)))
        return checks
    expected = signed.get("audio_sha256")
    if expected and actual != expected:
        checks.append(Check("audio hash", False, f"decoded audio sha256 {actual[:16]}… differs "
                            f"from the signed {expected[:16]}…: the samples were changed"))
    elif expected:
        checks.append(Check("audio hash", True, f"decoded audio sha256 {actual[:16]}… matches the manifest"))

    with Ledger.open(workspace) as ledger:
        try:
            record = ledger.get_output(signed.get("record_id") or actual)
        except SoundscapeError as exc:
            checks.append(Check("ledger record", False, f"not found in this workspace's ledger ({exc})"))
            return checks
        checks.append(_record_check(record, actual))
        if not expected:
            checks.append(Check("audio hash", record.audio_sha256 == actual,
                                "checked against the ledger record only (no manifest)"))
        proof = signed.get("inclusion_proof")
        if proof:
            checks.append(_proof_check(proof, record, ledger))
        elif creds is not None:
            checks.append(Check("inclusion proof", False, "the manifest carries no inclusion proof"))
    return checks


def _record_check(record: OutputRecord, actual: str) -> Check:
    """The ledger record knows this very audio."""
    if record.audio_sha256 != actual:
        return Check("ledger record", False, f"{record.id} records audio sha256 "
                     f"{record.audio_sha256[:16]}…, the file decodes to {actual[:16]}…")
    return Check("ledger record", True, f"{record.id}: audio sha256 matches "
                 f"({record.engine} {record.engine_version}"
                 + (f", model {record.model}" if record.model else "") + ")")


def _proof_check(proof: dict, record: OutputRecord, ledger: Ledger) -> Check:
    """The manifest's inclusion proof verifies with the ledger's key, proves this record's body,
    and the ledger still extends the checkpoint it was proven against."""
    try:
        summary = merkle.verify_inclusion(proof, ledger.public_key_pem())
        if summary["record_id"] != record.id:
            raise ProofError(f"the proof is for {summary['record_id']}, not {record.id}")
        if proof.get("body") != ledger.raw(record.id).text:
            raise ProofError("the proven record body differs from the ledger's record")
        checkpoint = proof["checkpoint"]
        consistency = ledger.consistency(int(checkpoint["size"]))
        if consistency["old_root"] != checkpoint["root"]:
            raise ProofError(f"the ledger no longer holds signed checkpoint "
                             f"{checkpoint['size']}: its tree at that size has another root")
    except (SoundscapeError, KeyError, TypeError, ValueError) as exc:
        return Check("inclusion proof", False, str(exc))
    return Check("inclusion proof", True, f"record {record.id} is leaf "
                 f"{summary['leaf_index']} of signed checkpoint {summary['tree_size']} "
                 f"(root {summary['root'][:16]}…, key {summary['key_id']}); the "
                 f"ledger still extends it")
