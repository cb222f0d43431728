"""C2PA content credentials: the development CA, signing in place, reading back, tampering."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundscape.config import open_workspace
from soundscape.facts import OutputFacts
from soundscape.rights import credentials as cr
from soundscape.rights.records import ModelEntry

pytest.importorskip("c2pa")


@pytest.fixture
def dev_keys(tmp_path):
    return cr.make_dev_ca(tmp_path / "keys" / "c2pa", organization="Deep Water Studio")


def _audio_file(path: Path, rng, *, fmt="WAV") -> Path:
    audio = (rng.standard_normal((48000, 2)) * 0.1).astype(np.float32)
    sf.write(path, audio, 48000, subtype="PCM_24", format=fmt)
    return path


def _facts(title="cue.wav", engine="composer", **extra) -> cr.Provenance:
    base = dict(title=title, engine=engine, engine_version="0.1.0", audio_sha256="ab" * 32,
                samples=[{"id": "rain-01", "sha256": "cd" * 32, "license": "CC0-1.0"}],
                ledger={"record_id": "out-000001", "checkpoint": {"size": 3},
                        "inclusion_proof": {"leaf_index": 2}},
                metadata={"bext": {"description": "calm pad"}})
    base.update(extra)
    return cr.Provenance(**base)


def _config(keys) -> cr.SigningConfig:
    return cr.SigningConfig(cert_chain=keys.signer_cert, key=keys.signer_key,
                            trust_anchors=keys.ca_cert)


def test_dev_ca_follows_the_c2pa_certificate_profile(dev_keys):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    leaf, ca = x509.load_pem_x509_certificates(dev_keys.signer_cert.read_bytes())
    assert leaf.issuer == ca.subject and leaf.subject != leaf.issuer  # not self-signed
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Deep Water Studio"
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    ekus = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in ekus
    assert ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in ekus
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in (dev_keys.ca_key, dev_keys.signer_key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_dev_ca_refuses_to_overwrite_without_force(dev_keys):
    before = dev_keys.signer_key.read_bytes()
    with pytest.raises(cr.CredentialError, match="--force"):
        cr.make_dev_ca(dev_keys.folder)
    assert dev_keys.signer_key.read_bytes() == before
    again = cr.make_dev_ca(dev_keys.folder, force=True)
    assert again.signer_key.read_bytes() != before


def test_dev_ca_organization_length(tmp_path):
    # Formerly a long organization died in cryptography with a traceback (common name > 64).
    with pytest.raises(cr.CredentialError, match="65 characters"):
        cr.make_dev_ca(tmp_path / "long", organization="x" * 65)
    assert not (tmp_path / "long").exists()
    keys = cr.make_dev_ca(tmp_path / "max", organization="y" * 64)
    summary = cr.certificate_summary(keys.signer_cert.read_bytes())
    assert "O=" + "y" * 64 in summary["subject"] and summary["subject"].endswith("soundscape signer")
    assert summary["issuer"].endswith("soundscape development CA")


@pytest.mark.parametrize("algorithm", ["es256", "ed25519"])
def test_sign_then_read_is_trusted(tmp_path, rng, algorithm):
    keys = cr.make_dev_ca(tmp_path / algorithm, organization="Studio", algorithm=algorithm)
    path = _audio_file(tmp_path / "cue.wav", rng)
    samples_before, _ = sf.read(path, dtype="int32")
    cr.sign_file(path, _facts(), _config(keys))

    samples_after, _ = sf.read(path, dtype="int32")
    assert np.array_equal(samples_before, samples_after)  # signing adds a chunk, not audio
    assert not list(tmp_path.glob(".cue.wav.sign*"))  # the temp file was renamed away
    creds = cr.read_credentials(path, anchors_pem=keys.ca_cert.read_text())
    assert creds.state == "Trusted", creds.failures
    assert creds.digital_source_type.endswith("/algorithmicMedia")
    assert creds.ledger["record_id"] == "out-000001"
    assert creds.ledger["inclusion_proof"] == {"leaf_index": 2}
    assert creds.signer["issuer"] == "Studio"
    mining = creds.assertion(cr.TRAINING_MINING_LABEL)["entries"]
    assert {v["use"] for v in mining.values()} == {"notAllowed"}


def test_musicgen_outputs_say_trained_and_name_model_and_datasets(tmp_path, rng, dev_keys):
    path = _audio_file(tmp_path / "cue.wav", rng)
    facts = _facts(engine="musicgen", model="ocean-v2", model_sha256="ef" * 32,
                   base_model={"name": "facebook/musicgen-small", "license": "CC-BY-NC-4.0"},
                   datasets=[{"name": "field-recordings", "version": "1", "manifest_sha256": "01" * 32,
                              "licenses": {"CC0-1.0": 40, "CC-BY-4.0": 2}}],
                   training_mining="allowed")
    cr.sign_file(path, facts, _config(dev_keys))
    creds = cr.read_credentials(path, anchors_pem=dev_keys.ca_cert.read_text())
    assert creds.trusted
    assert creds.digital_source_type == cr.IPTC + "trainedAlgorithmicMedia"
    ingredients = creds.manifest["ingredients"]
    inputs = [i for i in ingredients if i["relationship"] == "inputTo"]
    assert [i["title"] for i in inputs] == ["model ocean-v2", "training dataset field-recordings 1"]
    assert "2 CC-BY-4.0" in inputs[1]["description"]
    assert creds.lineage["datasets"][0]["licenses"] == {"CC0-1.0": 40, "CC-BY-4.0": 2}
    mining = creds.assertion(cr.TRAINING_MINING_LABEL)["entries"]
    assert {v["use"] for v in mining.values()} == {"allowed"}


def test_flac_is_signed_too(tmp_path, rng, dev_keys):
    path = _audio_file(tmp_path / "cue.flac", rng, fmt="FLAC")
    before, _ = sf.read(path, dtype="int32")
    cr.sign_file(path, _facts(title="cue.flac"), _config(dev_keys))
    after, _ = sf.read(path, dtype="int32")
    assert np.array_equal(before, after)
    assert cr.read_credentials(path, anchors_pem=dev_keys.ca_cert.read_text()).trusted


@pytest.mark.needs_tool
@pytest.mark.skipif(not (shutil.which("flac") and shutil.which("metaflac")),
                    reason="flac/metaflac are not installed (scripts/ensure-tools.sh installs them)")
def test_the_reference_flac_tools_read_a_signed_flac(tmp_path, rng, dev_keys):
    # The manifest rides in an ID3v2 tag ahead of "fLaC": the reference decoder must skip it and
    # give the very samples libsndfile reads, and metaflac must still find the metadata blocks.
    path = _audio_file(tmp_path / "cue.flac", rng, fmt="FLAC")
    cr.sign_file(path, _facts(title="cue.flac"), _config(dev_keys))
    assert path.read_bytes()[:3] == b"ID3"
    tested = subprocess.run(["flac", "--test", "--silent", str(path)], capture_output=True, text=True,
                            timeout=120)
    assert tested.returncode == 0, tested.stderr
    raw = subprocess.run(["flac", "--decode", "--silent", "--stdout", "--force-raw-format",
                          "--endian=little", "--sign=signed", str(path)], capture_output=True,
                         check=True, timeout=120).stdout
    triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
    decoded = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
    decoded = np.where(decoded >= 1 << 23, decoded - (1 << 24), decoded).reshape(-1, 2)
    expected, _ = sf.read(path, dtype="int32")   # 24-bit samples, left-aligned in int32
    assert np.array_equal(decoded << 8, expected)
    listed = subprocess.run(["metaflac", "--list", str(path)], capture_output=True, text=True,
                            check=True, timeout=120).stdout
    assert "type: 0 (STREAMINFO)" in listed


def test_one_changed_sample_breaks_the_data_hash(tmp_path, rng, dev_keys):
    path = _audio_file(tmp_path / "cue.wav", rng)
    cr.sign_file(path, _facts(), _config(dev_keys))
    data = bytearray(path.read_bytes())
    data[data.find(b"data") + 8 + 600] ^= 0x01
    path.write_bytes(bytes(data))
    creds = cr.read_credentials(path, anchors_pem=dev_keys.ca_cert.read_text())
    assert creds.state == "Invalid"
    assert "assertion.dataHash.mismatch" in creds.failure_codes()


def test_a_file_without_a_manifest_reads_as_none(tmp_path, rng):
    assert cr.read_credentials(_audio_file(tmp_path / "plain.wav", rng)) is None


def test_an_untrusted_signer_is_named(tmp_path, rng, dev_keys):
    other = cr.make_dev_ca(tmp_path / "other", organization="Someone Else")
    path = _audio_file(tmp_path / "cue.wav", rng)
    cr.sign_file(path, _facts(), _config(other))
    creds = cr.read_credentials(path, anchors_pem=dev_keys.ca_cert.read_text())
    assert not creds.trusted
    assert "signingCredential.untrusted" in creds.failure_codes()
    assert creds.signer["issuer"] == "Someone Else"


def test_a_self_signed_leaf_is_refused(tmp_path, rng):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "me"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Me")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "self.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "self.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path = _audio_file(tmp_path / "cue.wav", rng)
    original = path.read_bytes()
    with pytest.raises(cr.CredentialError, match="could not sign"):
        cr.sign_file(path, _facts(), cr.SigningConfig(tmp_path / "self.pem", tmp_path / "self.key"))
    assert path.read_bytes() == original  # nothing half-written
    assert not list(tmp_path.glob(".cue.wav.sign*"))


def test_workspace_settings_choose_certificate_and_anchors(tmp_path, dev_keys):
    home = tmp_path / "home"
    home.mkdir()
    ws = open_workspace(home)
    assert cr.signing_config(ws) is None and cr.trust_anchors_path(ws) is None
    assert cr.training_mining_use(ws) == "notAllowed"

    (home / "soundscape.toml").write_text(
        f'signing_cert = "{dev_keys.signer_cert}"\nsigning_key = "{dev_keys.signer_key}"\n'
        f'trust_anchors = "{dev_keys.ca_cert}"\ntraining_mining = "constrained"\n')
    ws = open_workspace(home)
    config = cr.signing_config(ws)
    assert config.cert_chain == dev_keys.signer_cert and config.trust_anchors == dev_keys.ca_cert
    assert config.tsa_url is None  # no network unless a studio names a timestamp authority
    assert cr.training_mining_use(ws) == "constrained"

    (home / "soundscape.toml").write_text(f'signing_cert = "{dev_keys.signer_cert}"\n')
    with pytest.raises(cr.CredentialError, match="both"):
        cr.signing_config(open_workspace(home))
    (home / "soundscape.toml").write_text('training_mining = "maybe"\n')
    with pytest.raises(cr.CredentialError, match="notAllowed"):
        cr.training_mining_use(open_workspace(home))


def test_dev_keys_in_the_workspace_are_used_by_default(tmp_path):
    ws = open_workspace(tmp_path / "home")
    keys = cr.make_dev_ca(cr.dev_folder(ws))
    config = cr.signing_config(ws)
    assert config.cert_chain == keys.signer_cert and config.trust_anchors == keys.ca_cert


def test_keys_init_and_show_commands(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from soundscape.cli import app

    monkeypatch.setenv("SOUNDSCAPE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    result = runner.invoke(app, ["keys", "init", "--organization", "Deep Water Studio"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "keys" / "c2pa" / "signer.pem").exists()
    result = runner.invoke(app, ["keys", "show"])
    assert result.exit_code == 0 and "O=Deep Water Studio" in result.output
    again = runner.invoke(app, ["keys", "init"])
    assert again.exit_code != 0


def test_sign_recorded_output_describes_model_datasets_and_proof(tmp_path, rng):
    """A musicgen output recorded in a ledger: the manifest names its model, training data,
    record id and an inclusion proof that verifies with the ledger's key."""
    from soundscape.audio.io import audio_sha256, file_sha256
    from soundscape.rights import merkle
    from soundscape.rights.ingest import AssetEntry, add_entries
    from soundscape.rights.ledger import Ledger

    ws = open_workspace(tmp_path / "home")
    keys = cr.make_dev_ca(cr.dev_folder(ws), organization="Abyss Films")
    (tmp_path / "home" / "soundscape.toml").write_text('training_mining = "constrained"\n')
    recs = [_audio_file(tmp_path / f"rec{i}.wav", rng) for i in range(3)]
    path = _audio_file(tmp_path / "S01E01_1M1.wav", rng)
    with Ledger.open(ws) as ledger:
        add_entries(ledger, [AssetEntry(path=p, license="CC-BY-4.0" if i else "CC0-1.0",
                                        author="Recordist") for i, p in enumerate(recs)],
                    dataset="field")
        ledger.register_model(ModelEntry(name="tides-v1", engine="musicgen", lm_sha256="c3" * 32,
                                         datasets=["field"], license="CC-BY-4.0"))
        sidecar = {"audio_sha256": audio_sha256(path), "file_sha256": file_sha256(path),
                   "engine": {"name": "musicgen", "version": "1.3.0", "model": "tides-v1",
                              "model_sha256": "c3" * 32},
                   "prompt": "slow tide", "samples": []}
        record = ledger.record_output(OutputFacts.from_sidecar(sidecar, path))
        new_sha = cr.sign_recorded_output(path, sidecar, record, ledger)
        public_key = ledger.public_key_pem()
    assert new_sha == file_sha256(path) != sidecar["file_sha256"]
    assert audio_sha256(path) == sidecar["audio_sha256"]
    creds = cr.read_credentials(path, anchors_pem=keys.ca_cert.read_text())
    assert creds.trusted
    assert creds.digital_source_type == cr.IPTC + "trainedAlgorithmicMedia"
    assert creds.lineage["datasets"][0]["licenses"] == {"CC-BY-4.0": 2, "CC0-1.0": 1}
    version = creds.lineage["datasets"][0]["version"]
    titles = [i["title"] for i in creds.manifest["ingredients"]]
    assert titles == ["model tides-v1", f"training dataset field {version}"]
    assert creds.ledger["record_id"] == record.id
    summary = merkle.verify_inclusion(creds.ledger["inclusion_proof"], public_key)
    assert summary["record_id"] == record.id
    mining = creds.assertion(cr.TRAINING_MINING_LABEL)["entries"]
    assert {v["use"] for v in mining.values()} == {"constrained"}


def test_no_certificate_means_no_signing(tmp_path, rng):
    from soundscape.audio.io import audio_sha256
    from soundscape.rights.ledger import Ledger

    ws = open_workspace(tmp_path / "home")
    path = _audio_file(tmp_path / "cue.wav", rng)
    before = path.read_bytes()
    sidecar = {"audio_sha256": audio_sha256(path), "engine": {"name": "composer", "version": "1"}}
    with Ledger.open(ws) as ledger:
        record = ledger.record_output(OutputFacts.from_sidecar(sidecar, path))
        assert cr.sign_recorded_output(path, sidecar, record, ledger) is None
    assert path.read_bytes() == before
