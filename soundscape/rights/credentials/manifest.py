"""C2PA manifests on delivered audio: what one says, signing it in, reading it back.

A manifest (through c2pa-python) says the file was made by an algorithm, by which engine and
model, from which training datasets and samples, and where its rights record sits in the ledger
(record id, signed checkpoint, inclusion proof). The manifest is signed last, after bext and
iXML are written, because the C2PA data hash covers every byte of the file except the manifest
itself: any later edit breaks it. Nothing here touches the network: no timestamp authority
unless one is configured, and reading never fetches remote manifests or OCSP responses.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from soundscape import __version__
from soundscape.errors import CredentialError
from soundscape.rights.credentials.certs import signing_algorithm
from soundscape.rights.credentials.signing import TRAINING_MINING_USES, SigningConfig

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC digital source types (C2PA 2.x, actions assertion): musicgen is a model trained on
# media; the composer is an algorithm with no training data.
SOURCE_TYPES = {
    "musicgen": IPTC + "trainedAlgorithmicMedia",
    "composer": IPTC + "algorithmicMedia",
}
LEDGER_LABEL = "org.soundscape.ledger"
LINEAGE_LABEL = "org.soundscape.lineage"
# The CAWG training-and-data-mining assertion (CAWG Training and Data Mining Assertion 1.0,
# decentralized-identity/cawg-training-and-data-mining-assertion), which replaced the C2PA 1.x
# "c2pa.training-mining" labels; its four pre-defined entries.
TRAINING_MINING_LABEL = "cawg.training-mining"
TRAINING_MINING_ENTRIES = ("cawg.ai_generative_training", "cawg.ai_inference",
                           "cawg.ai_training", "cawg.data_mining")
MIME_TYPES = {".wav": "audio/wav", ".flac": "audio/flac"}


@dataclass
class Provenance:
    """What a manifest says about one output: plain facts gathered from its sidecar and ledger.

    ``datasets`` are the model's training datasets, each ``{"name", "version",
    "manifest_sha256", "licenses": {expression: count}}``; ``samples`` the sample-library files
    used, ``{"id", "sha256", "license"}``. ``ledger`` holds ``record_id``, ``checkpoint`` and
    ``inclusion_proof``; ``metadata`` the bext fields and iXML hash as written, so that a
    verifier can say which one changed.
    """

    title: str
    engine: str
    engine_version: str
    audio_sha256: str
    model: str | None = None
    model_sha256: str | None = None
    base_model: dict | None = None
    datasets: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    presets: list[dict] = field(default_factory=list)
    continuation_sources: list[dict] = field(default_factory=list)
    """The registered audio a musicgen cue continues from, ``{"id", "sha256", "license"}``."""
    prompt: str | None = None
    ledger: dict | None = None
    metadata: dict = field(default_factory=dict)
    training_mining: str = "notAllowed"
    watermark: dict | None = None


# C2PA 2.1 §18.8 (soft binding): the assertion that names a watermark carried in the content,
# and the action (§18.15, "c2pa.watermarked") that says it was embedded.
SOFT_BINDING_LABEL = "c2pa.soft-binding"
SOFT_BINDING_ALG = "org.soundscape.ss1"


def source_type(engine: str) -> str:
    """The IPTC digital source type for an engine (trained models vs plain algorithms)."""
    return SOURCE_TYPES.get(engine, IPTC + "trainedAlgorithmicMedia")


def build_manifest(facts: Provenance, *, mime: str) -> dict:
    """The manifest definition for c2pa-python's Builder (JSON-ready).

    The model and each training dataset are ingredients with relationship ``inputTo``; sample
    files are ``componentOf`` ingredients. The same facts, with counts per license, the
    ledger record and the inclusion proof, go in the ``org.soundscape.ledger`` and
    ``org.soundscape.lineage`` assertions, which is where soundscape reads them back.
    """
    if facts.training_mining not in TRAINING_MINING_USES:
        raise CredentialError(f"unknown training-and-mining use {facts.training_mining!r}")
    agent = {"name": f"soundscape {facts.engine}", "version": facts.engine_version}
    created = {"action": "c2pa.created", "digitalSourceType": source_type(facts.engine),
               "softwareAgent": agent}
    if facts.model:
        created["parameters"] = {"model": facts.model, "model_sha256": facts.model_sha256}
    ingredients = []
    if facts.model:
        ingredients.append({
            "title": f"model {facts.model}", "format": "application/octet-stream",
            "relationship": "inputTo",
            "description": (f"{facts.engine} model {facts.model} (sha256 {facts.model_sha256})"
                            + (f", fine-tuned from {facts.base_model.get('name')} "
                               f"({facts.base_model.get('license')})" if facts.base_model else "")),
        })
    for ds in facts.datasets:
        counts = ", ".join(f"{n} {lic}" for lic, n in sorted(ds.get("licenses", {}).items()))
        ingredients.append({
            "title": f"training dataset {ds.get('name')} {ds.get('version') or ''}".strip(),
            "format": "application/json", "relationship": "inputTo",
            "description": f"manifest sha256 {ds.get('manifest_sha256')}; assets: {counts or 'none'}",
        })
    for sample in facts.samples:
        ingredients.append({
            "title": f"sample {sample.get('id')}", "format": "audio/wav",
            "relationship": "componentOf",
            "description": f"sha256 {sample.get('sha256')}; license {sample.get('license')}",
        })
    for source in facts.continuation_sources:
        ingredients.append({
            # The render is new music only (the prompt audio is not repeated in it): an input.
            "title": f"continuation source {source.get('id')}", "format": "audio/wav",
            "relationship": "inputTo",
            "description": (f"the audio this cue continues; sha256 {source.get('sha256')}; "
                            f"license {source.get('license')}"),
        })
    for preset in facts.presets:
        ingredients.append({
            "title": f"sound-bank preset {preset.get('preset')} ({preset.get('bank_title')})",
            "format": "application/octet-stream", "relationship": "componentOf",
            "description": (f"bank {preset.get('bank')} sha256 {preset.get('sha256')}; "
                            f"license {preset.get('license')}; {preset.get('credit')}"),
        })
    entries = {name: {"use": facts.training_mining} for name in TRAINING_MINING_ENTRIES}
    if facts.training_mining == "constrained":
        for entry in entries.values():
            entry["constraint_info"] = "see the studio's license terms"
    lineage = {"engine": facts.engine, "engine_version": facts.engine_version,
               "model": facts.model, "model_sha256": facts.model_sha256,
               "base_model": facts.base_model, "datasets": facts.datasets,
               "samples": facts.samples, "presets": facts.presets,
               **({"continuation_source": facts.continuation_sources[0]}
                  if facts.continuation_sources else {})}
    ledger = {"audio_sha256": facts.audio_sha256, "prompt": facts.prompt,
              "metadata": facts.metadata, **(facts.ledger or {})}
    actions = [created]
    soft_binding = []
    if facts.watermark:
        ledger["watermark"] = facts.watermark
        actions.append({"action": "c2pa.watermarked", "softwareAgent": agent,
                        "parameters": {"scheme": facts.watermark.get("scheme"),
                                       "payload": facts.watermark.get("payload")}})
        second = facts.watermark.get("second")
        if second:  # a second marker (AudioSeal, docs/watermark.md): its own action
            actions.append({"action": "c2pa.watermarked", "softwareAgent": agent,
                            "parameters": {k: second.get(k) for k in (
                                "scheme", "message", "generator_sha256", "detector_sha256")}})
        soft_binding = [{"label": SOFT_BINDING_LABEL, "data": {
            "alg": SOFT_BINDING_ALG,
            "blocks": [{"scope": {}, "value": facts.watermark.get("payload")}]}}]
    return {
        "claim_generator_info": [{"name": "soundscape", "version": __version__}],
        "title": facts.title,
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": TRAINING_MINING_LABEL, "data": {"entries": entries}},
            {"label": LINEAGE_LABEL, "data": lineage},
            {"label": LEDGER_LABEL, "data": ledger},
            *soft_binding,
        ],
        "ingredients": ingredients,
    }


def _context(*, anchors_pem: str | None, verify_trust: bool):
    # c2pa-python loads a native library: only signing and reading pay for it.
    import c2pa

    # Remote manifests and OCSP are network fetches: never, whatever the file asks for.
    settings: dict = {"verify": {"verify_trust": verify_trust, "remote_manifest_fetch": False,
                                 "ocsp_fetch": False}}
    if anchors_pem:
        settings["trust"] = {"trust_anchors": anchors_pem}
    return c2pa.Context.from_dict(settings)


def mime_for(path: Path) -> str:
    """The MIME type c2pa is given for a delivered file (WAV and FLAC; both are signable)."""
    try:
        return MIME_TYPES[path.suffix.lower()]
    except KeyError:
        raise CredentialError(f"{path.name}: only .wav and .flac files are signed") from None


def sign_file(path: str | Path, facts: Provenance, config: SigningConfig) -> None:
    """Embed a signed C2PA manifest in ``path``, in place and atomically.

    The signed copy is written beside the file, flushed, then renamed over it, so a crash
    leaves either the unsigned or the signed file, never half of one. The audio samples are
    untouched (only a C2PA chunk/block is added), so the audio hash stays the same.

    Raises:
        CredentialError: the certificate or key is unusable, or c2pa refuses to sign.
    """
    import c2pa  # the native library, as in _context

    path = Path(path)
    mime = mime_for(path)
    try:
        chain = config.cert_chain.read_bytes()
        key = config.key.read_bytes()
    except OSError as exc:
        raise CredentialError(f"cannot read the signing certificate or key: {exc}") from None
    alg = signing_algorithm(key)
    manifest = build_manifest(facts, mime=mime)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.sign", dir=path.parent)
    try:
        # Trust is the reader's business; signing checks only that the result is well formed.
        context = _context(anchors_pem=None, verify_trust=False)
        with os.fdopen(fd, "w+b") as dest, open(path, "rb") as source:
            try:
                signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain, key, config.tsa_url))
                with c2pa.Builder(manifest, context=context) as builder:
                    builder.sign(signer, mime, source, dest)
            except c2pa.C2paError as exc:
                raise CredentialError(f"c2pa could not sign {path.name}: {exc}") from None
            dest.flush()
            os.fsync(dest.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Credentials:
    """A file's C2PA manifest as read and validated.

    ``state`` is c2pa's validation state: ``Trusted`` (valid and signed under a trust anchor),
    ``Valid`` (intact, but the signer is not trusted) or ``Invalid``; ``failures`` are the
    active manifest's failure codes with c2pa's explanations.
    """

    state: str
    failures: list[tuple[str, str]]
    manifest: dict
    signer: dict

    @property
    def trusted(self) -> bool:
        return self.state == "Trusted"

    def assertion(self, label: str) -> dict | None:
        """The data of the first assertion with ``label``, or None."""
        for assertion in self.manifest.get("assertions", []):
            if assertion.get("label") == label:
                return assertion.get("data")
        return None

    @property
    def ledger(self) -> dict | None:
        return self.assertion(LEDGER_LABEL)

    @property
    def lineage(self) -> dict | None:
        return self.assertion(LINEAGE_LABEL)

    @property
    def digital_source_type(self) -> str | None:
        for label in ("c2pa.actions.v2", "c2pa.actions"):
            for action in (self.assertion(label) or {}).get("actions", []):
                if action.get("action") == "c2pa.created":
                    return action.get("digitalSourceType")
        return None

    def failure_codes(self) -> list[str]:
        return [code for code, _ in self.failures]


def read_credentials(path: str | Path, *, anchors_pem: str | None = None) -> Credentials | None:
    """Read and validate the C2PA manifest of ``path``; None when it has none.

    Args:
        path: a WAV or FLAC file.
        anchors_pem: PEM bundle of trusted roots; without it nothing is trusted and a valid
            manifest reads as ``Valid`` with ``signingCredential.untrusted``.

    Raises:
        CredentialError: the file cannot be read, or its manifest is unreadable.
    """
    import c2pa  # the native library, as in _context

    path = Path(path)
    mime = mime_for(path)
    context = _context(anchors_pem=anchors_pem, verify_trust=True)
    try:
        with open(path, "rb") as stream:
            reader = c2pa.Reader.try_create(mime, stream, None, context)
            if reader is None:
                return None
            with reader:
                store = json.loads(reader.json())
    except OSError as exc:
        raise CredentialError(f"cannot read {path}: {exc.strerror}") from None
    except c2pa.C2paError as exc:
        raise CredentialError(f"{path.name}: unreadable C2PA manifest ({exc})") from None
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [(f.get("code", "?"), f.get("explanation", "")) for f in results.get("failure", [])]
    return Credentials(state=store.get("validation_state", "Invalid"), failures=failures,
                       manifest=manifest, signer=manifest.get("signature_info") or {})
