"""The mark is named in the C2PA manifest: a watermarked action and a soft-binding assertion."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundscape.rights import credentials as cr

pytest.importorskip("c2pa")


def test_manifest_carries_the_watermarked_action_and_soft_binding(tmp_path, rng):
    keys = cr.make_dev_ca(tmp_path / "keys", organization="Studio")
    path = tmp_path / "cue.wav"
    sf.write(path, (rng.standard_normal((48000, 2)) * 0.1).astype(np.float32), 48000,
             subtype="PCM_24")
    mark = {"scheme": "soundscape-ss1", "payload": "beef-12345678"}
    facts = cr.Provenance(title="cue.wav", engine="composer", engine_version="0.1.0",
                          audio_sha256="ab" * 32, watermark=mark,
                          ledger={"record_id": "out-000001"})
    cr.sign_file(path, facts, cr.SigningConfig(cert_chain=keys.signer_cert, key=keys.signer_key,
                                               trust_anchors=keys.ca_cert))
    creds = cr.read_credentials(Path(path), anchors_pem=keys.ca_cert.read_text())
    assert creds.state == "Trusted", creds.failures
    actions = creds.assertion("c2pa.actions.v2")["actions"]
    marked = [a for a in actions if a["action"] == "c2pa.watermarked"]
    assert marked and marked[0]["parameters"]["payload"] == "beef-12345678"
    binding = creds.assertion("c2pa.soft-binding")
    assert binding["alg"] == "org.soundscape.ss1"
    assert binding["blocks"][0]["value"] == "beef-12345678"
    assert creds.ledger["watermark"] == mark
