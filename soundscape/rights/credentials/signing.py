"""The workspace's signing set-up: which certificate signs, which roots are trusted, what C2PA says
about training on the output. Checked before any work, so a set-up that cannot sign is refused
before anything is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from soundscape.config import Workspace
from soundscape.errors import CredentialError
from soundscape.rights.credentials.certs import (CA_CERT, DEV_FOLDER, SIGNER_CERT, SIGNER_KEY,
                                                 signing_algorithm)

TRAINING_MINING_USES = ("allowed", "notAllowed", "constrained")


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


def dev_folder(workspace: Workspace) -> Path:
    """The workspace folder where ``soundscape keys init`` keeps the development CA."""
    return Path(workspace.keys_dir) / DEV_FOLDER


def _setting_path(workspace: Workspace, name: str) -> Path | None:
    value = workspace.setting(name)
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(workspace.home) / path


def signing_config(workspace: Workspace) -> SigningConfig | None:
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


def check_signing(workspace: Workspace) -> SigningConfig | None:
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


def trust_anchors_path(workspace: Workspace) -> Path | None:
    """The PEM bundle of trusted root certificates: setting ``trust_anchors``, else the dev CA."""
    path = _setting_path(workspace, "trust_anchors")
    if path is None:
        dev = dev_folder(workspace) / CA_CERT
        return dev if dev.exists() else None
    if not path.is_file():
        raise CredentialError(f"trust anchors {path} do not exist; fix trust_anchors in soundscape.toml")
    return path


def training_mining_use(workspace: Workspace) -> str:
    """The studio's choice for the C2PA training-and-mining assertion (default notAllowed)."""
    use = str(workspace.setting("training_mining", "notAllowed"))
    if use not in TRAINING_MINING_USES:
        raise CredentialError(f"training_mining = {use!r} in soundscape.toml: choose one of "
                              f"{', '.join(TRAINING_MINING_USES)}")
    return use
