"""Content credentials: C2PA manifests on delivered audio, the signing set-up, and verifying a file.

``signing`` (the workspace's certificate, trust anchors, training-and-mining choice), ``certs``
(a development CA that C2PA accepts), ``manifest`` (what a manifest says; signing and reading
it), ``provenance`` (signing a recorded output with its facts from the ledger), ``verify``
(``soundscape verify``).
"""

from soundscape.errors import CredentialError
from soundscape.rights.credentials.certs import (CA_CERT, CA_KEY, DEV_FOLDER, DEV_ORGANIZATION,
                                                 SIGNER_CERT, SIGNER_KEY, DevKeys,
                                                 certificate_summary, make_dev_ca,
                                                 signing_algorithm)
from soundscape.rights.credentials.manifest import (IPTC, LEDGER_LABEL, LINEAGE_LABEL, MIME_TYPES,
                                                    SOURCE_TYPES, TRAINING_MINING_ENTRIES,
                                                    TRAINING_MINING_LABEL, Credentials,
                                                    Provenance, build_manifest, mime_for,
                                                    read_credentials, sign_file, source_type)
from soundscape.rights.credentials.provenance import (provenance_of, sign_recorded_output,
                                                      written_metadata)
from soundscape.rights.credentials.signing import (TRAINING_MINING_USES, SigningConfig,
                                                   check_signing, dev_folder, signing_config,
                                                   training_mining_use, trust_anchors_path)
from soundscape.rights.credentials.verify import Check, verify_file

__all__ = ["CA_CERT", "CA_KEY", "DEV_FOLDER", "DEV_ORGANIZATION", "IPTC", "LEDGER_LABEL",
           "LINEAGE_LABEL", "MIME_TYPES", "SIGNER_CERT", "SIGNER_KEY", "SOURCE_TYPES",
           "TRAINING_MINING_ENTRIES", "TRAINING_MINING_LABEL", "TRAINING_MINING_USES", "Check",
           "CredentialError", "Credentials", "DevKeys", "Provenance", "SigningConfig",
           "build_manifest", "certificate_summary", "check_signing", "dev_folder",
           "make_dev_ca", "mime_for", "provenance_of", "read_credentials", "sign_file",
           "sign_recorded_output", "signing_algorithm", "signing_config", "source_type",
           "training_mining_use", "trust_anchors_path", "verify_file", "written_metadata"]
