"""Content credentials: C2PA manifests on delivered audio, and a development CA to sign them.

Every delivered file can carry a C2PA manifest (through c2pa-python) that says it was made by
an algorithm, by which engine and model, from which training datasets and samples, and where
its rights record sits in the ledger (record id, signed checkpoint, inclusion proof). The
manifest is signed last, after bext and iXML are written, because the C2PA data hash covers
every byte of the file except the manifest itself: any later edit breaks it.

C2PA refuses self-signed leaf certificates, so :func:`make_dev_ca` makes a small development
CA and a signing certificate issued by it; a studio configures its own CA-issued certificate
instead (settings ``signing_cert``, ``signing_key``, ``trust_anchors``; see docs/reports.md).
Nothing here touches the network: no timestamp authority unless one is configured, and
reading never fetches remote manifests or OCSP responses.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from soundscape import __version__
from soundscape.errors import CredentialError

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC digital source types (C2PA 2.x, actions assertion): musicgen is a model trained on
# media; the composer is an algorithm with no training data.
SOURCE_TYPES = {
    "musicgen": IPTC + "trainedAlgorithmicMedia",
    "composer": IPTC + "algorithmicMedia",
}
LEDGER_LABEL = "org.soundscape.ledger"
LINEAGE_LABEL = "org.soundscape.lineage"
TRAINING_MINING_LABEL = "c2pa.training-mining"
TRAINING_MINING_USES = ("allowed", "notAllowed", "constrained")
# The four uses C2PA's training-and-mining assertion names (C2PA 2.1 §18.14).
TRAINING_MINING_ENTRIES = ("c2pa.ai_generative_training", "c2pa.ai_inference",
                           "c2pa.ai_training", "c2pa.data_mining")
MIME_TYPES = {".wav": "audio/wav", ".flac": "audio/flac"}

# Extended key usages c2pa-rs accepts for a claim signer (C2PA 2.1 §14.5.1, certificate
# profile): document signing and email protection are the common ones; never anyExtendedKeyUsage.
EKU_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"

DEV_FOLDER = "c2pa"
CA_CERT, CA_KEY = "ca.pem", "ca.key"
SIGNER_CERT, SIGNER_KEY = "signer.pem", "signer.key"
DEV_ORGANIZATION = "soundscape development"


# ---- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SigningConfig:
    """Where the signing certificate chain, its key and the trust anchors are.

    ``cert_chain`` is PEM: the signing (leaf) certificate first, then any intermediates; the
    root may be left out. ``tsa_url`` is a timestamp authority, None for none (the default:
    no network).
    """

    cert_chain: Path
    key: Path
    trust_anchors: Path | None = None
    tsa_url: str | None = None


def dev_folder(workspace) -> Path:
    """The workspace folder where ``soundscape keys init`` keeps the development CA."""
    return Path(workspace.keys_dir) / DEV_FOLDER


def _setting_path(workspace, name: str) -> Path | None:
    value = workspace.setting(name)
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(workspace.home) / path


def signing_config(workspace) -> SigningConfig | None:
    """The workspace's signing configuration, or None when no certificate is configured.

    Settings ``signing_cert`` and ``signing_key`` (paths, relative ones to the workspace)
    name a studio's own certificate; without them, the development certificate from
    ``soundscape keys init`` is used when it exists.

    Raises:
        CredentialError: only one of ``signing_cert`` and ``signing_key`` is set, or a
            configured file is missing.
    """
    cert, key = _setting_path(workspace, "signing_cert"), _setting_path(workspace, "signing_key")
    if (cert is None) != (key is None):
        raise CredentialError("set both signing_cert and signing_key in soundscape.toml, or neither")
    if cert is None:
        folder = dev_folder(workspace)
        cert, key = folder / SIGNER_CERT, folder / SIGNER_KEY
        if not (cert.exists() and key.exists()):
            return None
    for what, path in (("signing certificate", cert), ("signing key", key)):
        if not path.is_file():
            raise CredentialError(f"{what} {path} does not exist; fix soundscape.toml or run "
                                  "'soundscape keys init'")
    tsa = workspace.setting("signing_tsa_url") or None
    return SigningConfig(cert_chain=cert, key=key, trust_anchors=trust_anchors_path(workspace),
                         tsa_url=tsa)


def check_signing(workspace) -> SigningConfig | None:
    """The signing configuration, checked before any work: the certificate and key files are
    readable, are a PEM certificate and a PEM private key C2PA signs with, and belong together.

    Outputs are signed after they are written and recorded, so a configuration that can never
    sign must be refused before rendering, not discovered after the file is delivered.

    Raises:
        CredentialError: naming the file (and the setting) that is wrong.
    """
    config = signing_config(workspace)
    if config is None:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    files = {}
    for what, path in (("signing certificate", config.cert_chain), ("signing key", config.key)):
        try:
            files[what] = path.read_bytes()
        except OSError as exc:
            raise CredentialError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    try:
        cert = x509.load_pem_x509_certificate(files["signing certificate"])
    except ValueError:
        raise CredentialError(f"signing certificate {config.cert_chain} is not a PEM certificate; "
                              "fix signing_cert in soundscape.toml or run 'soundscape keys init'") from None
    try:
        signing_algorithm(files["signing key"])
    except CredentialError as exc:
        reason = str(exc).split(" (")[0].replace("the signing key ", "", 1)
        raise CredentialError(f"signing key {config.key} {reason}; fix "
                              "signing_key in soundscape.toml or run 'soundscape keys init'") from None
    key = load_pem_private_key(files["signing key"], password=None)
    raw = dict(encoding=serialization.Encoding.PEM,
               format=serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(**raw) != key.public_key().public_bytes(**raw):
        raise CredentialError(f"signing key {config.key} does not belong to the signing "
                              f"certificate {config.cert_chain}")
    training_mining_use(workspace)
    return config


def trust_anchors_path(workspace) -> Path | None:
    """The PEM bundle of trusted root certificates: setting ``trust_anchors``, else the dev CA."""
    path = _setting_path(workspace, "trust_anchors")
    if path is None:
        dev = dev_folder(workspace) / CA_CERT
        return dev if dev.exists() else None
    if not path.is_file():
        raise CredentialError(f"trust anchors {path} do not exist; fix trust_anchors in soundscape.toml")
    return path


def training_mining_use(workspace) -> str:
    """The studio's choice for the C2PA training-and-mining assertion (default notAllowed)."""
    use = str(workspace.setting("training_mining", "notAllowed"))
    if use not in TRAINING_MINING_USES:
        raise CredentialError(f"training_mining = {use!r} in soundscape.toml: choose one of "
                              f"{', '.join(TRAINING_MINING_USES)}")
    return use


# ---- the development CA -----------------------------------------------------------------------

@dataclass(frozen=True)
class DevKeys:
    """Paths of a development CA and the signing certificate it issued."""

    folder: Path
    ca_cert: Path
    ca_key: Path
    signer_cert: Path
    signer_key: Path
    organization: str
    algorithm: str


def _new_private_key(algorithm: str):
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if algorithm == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise CredentialError(f"unknown key algorithm {algorithm!r}: choose es256 or ed25519")


def _sign_hash(key):
    """The hash argument ``CertificateBuilder.sign`` wants for ``key`` (None for Ed25519)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _key_usage(*, sign: bool, ca: bool):
    from cryptography import x509

    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                         crl_sign=ca, encipher_only=False, decipher_only=False)


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_dev_ca(folder: str | Path, *, organization: str = DEV_ORGANIZATION,
                algorithm: str = "es256", days: int = 825, force: bool = False) -> DevKeys:
    """Make a development CA and a C2PA signing certificate issued by it.

    The signing certificate follows C2PA's certificate profile, which c2pa-rs checks: not
    self-signed, version 3, an Organization in the subject, key usage digitalSignature
    (critical), extended key usages documentSigning and emailProtection, and authority and
    subject key identifiers. Private keys are written with mode 0600.

    Args:
        folder: where to write ``ca.pem``, ``ca.key``, ``signer.pem`` (leaf then CA) and
            ``signer.key``.
        organization: the studio named in both subjects.
        algorithm: ``es256`` (ECDSA P-256) or ``ed25519``.
        days: validity of the signing certificate; the CA lives ten years.
        force: replace existing keys (files already signed stay verifiable only while the old
            CA stays among the trust anchors).

    Returns:
        The paths written.

    Raises:
        CredentialError: keys exist and ``force`` is False, or the folder cannot be written.
    """
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from soundscape.atomic import write_bytes_atomic

    folder = Path(folder)
    paths = DevKeys(folder=folder, ca_cert=folder / CA_CERT, ca_key=folder / CA_KEY,
                    signer_cert=folder / SIGNER_CERT, signer_key=folder / SIGNER_KEY,
                    organization=organization, algorithm=algorithm)
    if not force and any(p.exists() for p in (paths.ca_key, paths.signer_key)):
        raise CredentialError(f"development keys already exist in {folder}; "
                              "use --force to replace them")
    if not organization.strip():
        raise CredentialError("the organization is empty: C2PA wants an Organization in the subject")
    if len(organization) > 64:  # X.520 ub-organization-name
        raise CredentialError(f"the organization name is {len(organization)} characters; a "
                              "certificate allows at most 64")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise CredentialError(f"cannot create {folder}: {exc.strerror}") from None

    def name(common_name: str):
        # X.520 allows 64 characters in a common name; a long organization is cut short there.
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[-64:]),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])

    # Back-date a little so a clock a few minutes slow elsewhere still accepts the certificate.
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=10)
    ca_key = _new_private_key(algorithm)
    ca_name = name(f"{organization} soundscape development CA")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, _sign_hash(ca_key))
    )
    leaf_key = _new_private_key(algorithm)
    leaf_cert = (
        x509.CertificateBuilder().subject_name(name(f"{organization} soundscape signer"))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(EKU_DOCUMENT_SIGNING),
                                              ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, _sign_hash(ca_key))
    )
    try:
        # Private keys are 0600 from the moment they exist (the temp file is made with that mode).
        write_bytes_atomic(paths.ca_key, _pem_key(ca_key), mode=0o600)
        write_bytes_atomic(paths.signer_key, _pem_key(leaf_key), mode=0o600)
        write_bytes_atomic(paths.ca_cert, _pem_cert(ca_cert))
        write_bytes_atomic(paths.signer_cert, _pem_cert(leaf_cert) + _pem_cert(ca_cert))
        for public in (paths.ca_cert, paths.signer_cert):
            os.chmod(public, 0o644)
    except OSError as exc:
        raise CredentialError(f"cannot write keys in {folder}: {exc.strerror}") from None
    return paths


def signing_algorithm(key_pem: bytes) -> str:
    """The C2PA algorithm name for a PEM private key (es256/es384/es512, ps256, ed25519).

    Raises:
        CredentialError: the key cannot be read or is of a kind C2PA does not sign with.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialError(f"the signing key is not an unencrypted PEM private key ({exc})") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise CredentialError("the signing key must be ECDSA (P-256/384/521), Ed25519 or RSA")


def certificate_summary(pem: bytes) -> dict:
    """Subject, issuer, validity and SHA-256 fingerprint of the first certificate in ``pem``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CredentialError("not a PEM X.509 certificate") from None
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "sha256": cert.fingerprint(hashes.SHA256()).hex()}


# ---- manifests --------------------------------------------------------------------------------

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
    prompt: str | None = None
    ledger: dict | None = None
    metadata: dict = field(default_factory=dict)
    training_mining: str = "notAllowed"


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
    entries = {name: {"use": facts.training_mining} for name in TRAINING_MINING_ENTRIES}
    if facts.training_mining == "constrained":
        for entry in entries.values():
            entry["constraint_info"] = "see the studio's license terms"
    lineage = {"engine": facts.engine, "engine_version": facts.engine_version,
               "model": facts.model, "model_sha256": facts.model_sha256,
               "base_model": facts.base_model, "datasets": facts.datasets,
               "samples": facts.samples}
    ledger = {"audio_sha256": facts.audio_sha256, "prompt": facts.prompt,
              "metadata": facts.metadata, **(facts.ledger or {})}
    return {
        "claim_generator_info": [{"name": "soundscape", "version": __version__}],
        "title": facts.title,
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [created]}},
            {"label": TRAINING_MINING_LABEL, "data": {"entries": entries}},
            {"label": LINEAGE_LABEL, "data": lineage},
            {"label": LEDGER_LABEL, "data": ledger},
        ],
        "ingredients": ingredients,
    }


def _context(*, anchors_pem: str | None, verify_trust: bool):
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
    import c2pa

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


# ---- reading ----------------------------------------------------------------------------------

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
    import json

    import c2pa

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


# ---- signing a recorded output ----------------------------------------------------------------

# Per open ledger (one per run): dataset record id -> license counts, so a batch of outputs from
# one model counts its training set once. Per ledger, not per process, so a later run sees any
# license correction appended meanwhile.
_DATASET_LICENSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def written_metadata(path: str | Path) -> dict:
    """The bext fields and iXML hash of a delivered WAV as written (empty for FLAC).

    Carried in the manifest so that ``soundscape verify`` can name the chunk that changed.
    """
    import hashlib
    from dataclasses import asdict

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


def provenance_of(path: Path, sidecar: dict, record, ledger, *, training_mining: str) -> Provenance:
    """Gather the manifest's facts for a recorded output from its sidecar and the ledger."""
    from collections import Counter

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
        prompt=sidecar.get("prompt"),
        ledger={"record_id": record.id, "checkpoint": proof["checkpoint"], "inclusion_proof": proof},
        metadata=written_metadata(path), training_mining=training_mining)


def sign_recorded_output(path: str | Path, sidecar: dict, record, ledger) -> str | None:
    """Sign a delivered, recorded output when the workspace has a signing certificate.

    Called by ``delivery.record_delivery`` after the ledger record commits, so the manifest can
    carry the record id, the signed checkpoint and the inclusion proof.

    Returns:
        The file's new sha256 when it was signed, None when signing is not configured.

    Raises:
        CredentialError: signing is configured but failed (the file is left as it was).
    """
    from soundscape.audio.io import audio_sha256, file_sha256
    from soundscape.config import open_workspace

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
    # Signing adds a C2PA chunk and must never touch the samples: check rather than trust it.
    if audio_sha256(path) != sidecar["audio_sha256"]:
        raise CredentialError(f"{path.name}: signing changed the decoded audio; report this bug")
    return file_sha256(path)


# ---- verifying a file -------------------------------------------------------------------------

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
    import hashlib
    from dataclasses import asdict

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


def verify_file(path: str | Path, workspace) -> list[Check]:
    """Every check ``soundscape verify`` prints, in order.

    The C2PA manifest against the workspace's trust anchors; bext and iXML against the signed
    copies; the decoded audio hash against the manifest and the ledger record; the ledger
    record itself; the inclusion proof against the signed checkpoint, with the ledger's own
    public key, and that the ledger still holds that checkpoint (consistency).

    Raises:
        CredentialError: the file is missing or not WAV/FLAC.
    """
    from soundscape.audio.io import audio_sha256
    from soundscape.errors import AudioError, SoundscapeError
    from soundscape.rights import merkle
    from soundscape.rights.ledger import Ledger

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
        record_id = signed.get("record_id")
        try:
            record = ledger.get_output(record_id or actual)
        except SoundscapeError as exc:
            checks.append(Check("ledger record", False, f"not found in this workspace's ledger ({exc})"))
            return checks
        if record.audio_sha256 != actual:
            checks.append(Check("ledger record", False, f"{record.id} records audio sha256 "
                                f"{record.audio_sha256[:16]}…, the file decodes to {actual[:16]}…"))
        else:
            checks.append(Check("ledger record", True, f"{record.id}: audio sha256 matches "
                                f"({record.engine} {record.engine_version}"
                                + (f", model {record.model}" if record.model else "") + ")"))
        if not expected:
            checks.append(Check("audio hash", record.audio_sha256 == actual,
                                "checked against the ledger record only (no manifest)"))
        proof = signed.get("inclusion_proof")
        if not proof:
            if creds is not None:
                checks.append(Check("inclusion proof", False, "the manifest carries no inclusion proof"))
            return checks
        try:
            summary = merkle.verify_inclusion(proof, ledger.public_key_pem())
            if summary["record_id"] != record.id:
                raise merkle.ProofError(f"the proof is for {summary['record_id']}, not {record.id}")
            if proof.get("body") != ledger.raw(record.id).text:
                raise merkle.ProofError("the proven record body differs from the ledger's record")
            checkpoint = proof["checkpoint"]
            consistency = ledger.consistency(int(checkpoint["size"]))
            if consistency["old_root"] != checkpoint["root"]:
                raise merkle.ProofError(f"the ledger no longer holds signed checkpoint "
                                        f"{checkpoint['size']}: its tree at that size has another root")
            checks.append(Check("inclusion proof", True, f"record {record.id} is leaf "
                                f"{summary['leaf_index']} of signed checkpoint {summary['tree_size']} "
                                f"(root {summary['root'][:16]}…, key {summary['key_id']}); the "
                                f"ledger still extends it"))
        except (SoundscapeError, KeyError, TypeError, ValueError) as exc:
            checks.append(Check("inclusion proof", False, str(exc)))
    return checks
