"""Certificates for content credentials: a development CA that C2PA accepts, and reading keys.

C2PA refuses self-signed leaf certificates, so :func:`make_dev_ca` makes a small development
CA and a signing certificate issued by it; a studio configures its own CA-issued certificate
instead (settings ``signing_cert``, ``signing_key``, ``trust_anchors``; see docs/reports.md).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from soundscape.atomic import write_bytes_atomic
from soundscape.errors import CredentialError

# Extended key usages c2pa-rs accepts for a claim signer (C2PA 2.1 §14.5.1, certificate
# profile): document signing and email protection are the common ones; never anyExtendedKeyUsage.
EKU_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"

DEV_FOLDER = "c2pa"
CA_CERT, CA_KEY = "ca.pem", "ca.key"
SIGNER_CERT, SIGNER_KEY = "signer.pem", "signer.key"
DEV_ORGANIZATION = "soundscape development"


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
    if algorithm == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise CredentialError(f"unknown key algorithm {algorithm!r}: choose es256 or ed25519")


def _sign_hash(key):
    """The hash argument ``CertificateBuilder.sign`` wants for ``key`` (None for Ed25519)."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _key_usage(*, sign: bool, ca: bool):
    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                         crl_sign=ca, encipher_only=False, decipher_only=False)


def _pem_cert(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key) -> bytes:
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
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CredentialError("not a PEM X.509 certificate") from None
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "sha256": cert.fingerprint(hashes.SHA256()).hex()}
