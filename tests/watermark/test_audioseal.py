"""AudioSeal as a second marker, from a local folder: a tiny real model built from a config
and trained briefly here (tests/watermark/seal_models.py); nothing is downloaded."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly
from typer.testing import CliRunner

from soundscape import pipeline
from soundscape.audio.io import read_audio
from soundscape.audio.loudness import integrated_loudness, true_peak_dbtp
from soundscape.audio.master import get_preset, master
from soundscape.cli import app
from soundscape.cli.detect import EXIT_MATCHED, EXIT_NO_MARK
from soundscape.config import open_workspace
from soundscape.delivery import Job, write_delivery
from soundscape.engines import get_engine
from soundscape.spec import make_spec
from soundscape.watermark import audioseal

import seal_models  # tests/watermark has no __init__: pytest puts it on the path

TRAIN_STEPS = 600  # about 65 s of CPU; measured: score 0.86 marked, 0.05 unmarked (docs)


def _invoke(home, *args):
    return CliRunner().invoke(app, ["--home", str(home), *map(str, args)], env={"COLUMNS": "200"})


@pytest.fixture(scope="session")
def seal_folder(tmp_path_factory):
    """A trained tiny AudioSeal pair in a folder, and its training losses."""
    torch.manual_seed(0)  # the initialisation the figures in docs/watermark.md come from
    spec = make_spec("warm ambient pad with soft piano", kind="bed", duration=20, seed=3)
    bed = master(get_engine("composer").render([spec])[0], "ebu-r128")
    host = resample_poly(bed.audio.mean(axis=0).astype(np.float64), 1, 3).astype(np.float32)
    config = seal_models.tiny_config()
    generator, detector = seal_models.build(config)
    losses = seal_models.train(generator, detector, [host], steps=TRAIN_STEPS)
    folder = seal_models.save(tmp_path_factory.mktemp("audioseal"), generator, detector, config)
    return folder, losses


@pytest.fixture(scope="session")
def loud_folder(tmp_path_factory):
    """An untrained pair whose generator's last layer is scaled up: a watermark far too loud
    for any preset, so the level control has to act."""
    torch.manual_seed(7)
    config = seal_models.tiny_config()
    generator, detector = seal_models.build(config)
    with torch.no_grad():
        last = [m for m in generator.decoder.modules() if isinstance(m, torch.nn.Conv1d)][-1]
        last.weight.mul_(30.0)
        last.bias.mul_(30.0)
    return seal_models.save(tmp_path_factory.mktemp("loud"), generator, detector, config)


def _studio(tmp_path, folder):
    home = tmp_path / "studio"
    home.mkdir()
    (home / "soundscape.toml").write_text(f'audioseal_dir = "{folder}"\n')
    return home


def _jingle(home, out, seed=7):
    jobs = pipeline.prompt_jobs("bright upbeat logo", out=str(out), kind="jingle", duration=6,
                                seed=seed)
    [delivery] = pipeline.run(jobs, workspace=open_workspace(home))
    return delivery


@pytest.mark.slow
def test_sealed_file_is_the_marked_master_plus_the_generators_watermark(tmp_path, seal_folder,
                                                                        monkeypatch):
    folder, _ = seal_folder
    home = _studio(tmp_path, folder)
    monkeypatch.setenv("SOUNDSCAPE_HOME", str(home))
    delivery = _jingle(home, tmp_path / "sealed.wav")
    sidecar = json.loads(delivery.sidecar_path.read_text())
    second = sidecar["watermark"]["second"]
    assert second["scheme"] == "audioseal" and second["nbits"] == seal_models.NBITS
    assert second["generator_sha256"] == hashlib.sha256(
        (folder / audioseal.GENERATOR_FILE).read_bytes()).hexdigest()
    assert second["detector_sha256"] == hashlib.sha256(
        (folder / audioseal.DETECTOR_FILE).read_bytes()).hexdigest()
    key_id = pipeline.mark_key_id(open_workspace(home))
    assert second["message"] == f"{key_id:04x}"                 # the 16 bits: the ledger's key id
    assert sidecar["watermark"]["payload"].startswith(f"{key_id:04x}-")

    # The same cue delivered without the second marker: soundscape's mark alone.
    spec = delivery.spec
    plain_path = tmp_path / "plain.wav"
    write_delivery(get_engine("composer").render([spec])[0], Job(spec=spec, path=plain_path),
                   key_id=key_id)
    plain, sr = read_audio(plain_path)
    sealed, _ = read_audio(delivery.path)
    weights = audioseal.load(folder)
    bits = audioseal.message_bits(key_id, int(sidecar["watermark"]["mark_id"], 16), weights.nbits)
    expected = second["strength"] * audioseal.watermark_signal(weights, plain, sr, bits)
    difference = sealed.astype(np.float64) - plain
    assert np.sqrt(np.mean(expected ** 2)) > 1e-4               # there is a watermark to see
    assert np.allclose(difference, expected[None, :], atol=2e-5)  # and it is exactly that one
    assert 15.0 < second["snr_db"] < 60.0

    chosen = get_preset("ebu-r128")
    loudness, peak = integrated_loudness(sealed, sr), true_peak_dbtp(sealed, sr)
    assert abs(loudness - chosen.target_lufs) <= 0.1
    assert peak <= chosen.true_peak_dbtp
    assert sidecar["mastering"]["loudness_lufs"] == pytest.approx(loudness, abs=0.01)
    assert sidecar["mastering"]["true_peak_dbtp"] == pytest.approx(peak, abs=0.01)


def test_a_watermark_too_loud_for_the_preset_is_scaled_down(tmp_path, loud_folder, monkeypatch):
    home = _studio(tmp_path, loud_folder)
    monkeypatch.setenv("SOUNDSCAPE_HOME", str(home))
    delivery = _jingle(home, tmp_path / "loud.wav")
    second = delivery.facts.watermark["second"]
    assert 0.0 < second["strength"] < 1.0                       # the level control acted
    audio, sr = read_audio(delivery.path)
    chosen = get_preset("ebu-r128")
    assert abs(integrated_loudness(audio, sr) - chosen.target_lufs) <= 0.1
    assert true_peak_dbtp(audio, sr) <= chosen.true_peak_dbtp


@pytest.mark.slow
def test_detect_and_verify_report_the_second_marker(tmp_path, seal_folder, monkeypatch):
    folder, losses = seal_folder
    home = _studio(tmp_path, folder)
    monkeypatch.setenv("SOUNDSCAPE_HOME", str(home))
    assert _invoke(home, "keys", "init").exit_code == 0           # outputs are signed (C2PA)
    delivery = _jingle(home, tmp_path / "sealed.wav", seed=7)
    unmarked = tmp_path / "unmarked.wav"
    spec = make_spec("bright upbeat logo", kind="jingle", duration=6, seed=7)
    write_delivery(get_engine("composer").render([spec])[0],
                   Job(spec=spec, path=unmarked, watermark=False))

    marked = _invoke(home, "detect", delivery.path, "--json")
    assert marked.exit_code == EXIT_MATCHED, marked.output     # soundscape's mark decides
    seal = json.loads(marked.output)["audioseal"]
    plain = _invoke(home, "detect", unmarked, "--json")
    assert plain.exit_code == EXIT_NO_MARK, plain.output
    seal_plain = json.loads(plain.output)["audioseal"]
    # The detector, trained here for a few hundred steps on another render, tells the
    # jingle AudioSeal marked from the same jingle unmarked.
    assert seal["score"] > seal_plain["score"] + 0.3, (seal, seal_plain, losses[-5:])
    assert seal["present"] and not seal_plain["present"]

    text = _invoke(home, "detect", delivery.path)
    assert "AudioSeal: found" in text.output
    verified = _invoke(home, "verify", delivery.path, "--json")
    assert verified.exit_code == 0, verified.output
    checks = {c["name"]: c for c in json.loads(verified.output)["checks"]}
    assert checks["audioseal"]["ok"] and checks["audioseal"]["detail"].startswith("found: score")

    # The manifest names both marks: a c2pa.watermarked action each.
    from soundscape.rights.credentials import read_credentials

    actions = read_credentials(delivery.path).assertion("c2pa.actions.v2")["actions"]
    marked = [a["parameters"] for a in actions if a["action"] == "c2pa.watermarked"]
    second = delivery.facts.watermark["second"]
    assert [m["scheme"] for m in marked] == ["soundscape-ss1", "audioseal"]
    assert marked[1]["generator_sha256"] == second["generator_sha256"]
    assert marked[1]["message"] == second["message"]


def _checkpoint_kinds(tmp_path, good):
    """Folders that are wrong in each way a studio's folder can be."""
    missing_file = tmp_path / "half"
    missing_file.mkdir()
    (missing_file / audioseal.GENERATOR_FILE).write_bytes((good / audioseal.GENERATOR_FILE).read_bytes())
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    (swapped / audioseal.GENERATOR_FILE).write_bytes((good / audioseal.DETECTOR_FILE).read_bytes())
    (swapped / audioseal.DETECTOR_FILE).write_bytes((good / audioseal.DETECTOR_FILE).read_bytes())
    text = tmp_path / "text"
    text.mkdir()
    (text / audioseal.GENERATOR_FILE).write_text("not a checkpoint")
    (text / audioseal.DETECTOR_FILE).write_bytes((good / audioseal.DETECTOR_FILE).read_bytes())
    other = tmp_path / "other-shape"
    other.mkdir()
    config = seal_models.tiny_config()
    config["seanet"]["n_filters"] = 4            # the weights do not fit the config they carry
    state = torch.load(good / audioseal.GENERATOR_FILE, weights_only=True)
    torch.save({"xp.cfg": config, "model": state["model"]}, other / audioseal.GENERATOR_FILE)
    (other / audioseal.DETECTOR_FILE).write_bytes((good / audioseal.DETECTOR_FILE).read_bytes())
    return {"no such folder": tmp_path / "nowhere", "a file missing": missing_file,
            "a detector as the generator": swapped, "not a checkpoint": text,
            "weights of another shape": other}


def test_a_bad_folder_is_one_error_line_and_writes_nothing(tmp_path, loud_folder):
    for name, folder in _checkpoint_kinds(tmp_path, loud_folder).items():
        root = tmp_path / name.replace(" ", "-")
        root.mkdir()
        home = _studio(root, folder)
        out = root / "logo.wav"
        result = _invoke(home, "jingle", "bright upbeat logo", "--out", out, "--seed", 1)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code != 0, name
        assert len(lines) == 1 and lines[0].startswith("error:"), (name, result.stderr)
        assert "Traceback" not in result.output and str(folder.name) in lines[0], name
        assert not out.exists() and not out.with_name(out.name + ".json").exists(), name


def test_a_checkpoint_without_its_config_is_built_from_audioseals_model_card(tmp_path):
    """The full-size architecture of AudioSeal's 16-bit card, saved as a bare state dict (no
    ``xp.cfg``), random weights: the loader builds it from the card the wheel carries."""
    from audioseal.builder import (AudioSealDetectorConfig, AudioSealWMConfig, create_detector,
                                   create_generator)
    from audioseal.loader import AudioSeal

    torch.manual_seed(3)
    saved = {}
    for name, config_type, create in ((audioseal.GENERATOR_FILE, AudioSealWMConfig, create_generator),
                                      (audioseal.DETECTOR_FILE, AudioSealDetectorConfig, create_detector)):
        model = create(AudioSeal.parse_config(audioseal._card(name), config_type=config_type))
        saved[name] = model.state_dict()
        torch.save({"model": saved[name]}, tmp_path / name)
    weights = audioseal.load(tmp_path)
    assert weights.nbits == 16
    for name, model in ((audioseal.GENERATOR_FILE, weights.generator),
                        (audioseal.DETECTOR_FILE, weights.detector)):
        loaded = model.state_dict()
        assert set(loaded) == set(saved[name])
        assert all(torch.equal(loaded[k], saved[name][k]) for k in loaded)


def test_a_checkpoint_with_a_pickled_omegaconf_config_loads_as_weights_only(tmp_path, loud_folder):
    """AudioSeal's training writes ``xp.cfg`` as an OmegaConf DictConfig: it loads without
    unpickling anything that could run code, and builds the model it describes."""
    from omegaconf import OmegaConf

    for name in (audioseal.GENERATOR_FILE, audioseal.DETECTOR_FILE):
        package = torch.load(loud_folder / name, weights_only=True)
        torch.save({"xp.cfg": OmegaConf.create(package["xp.cfg"]), "model": package["model"]},
                   tmp_path / name)
    weights = audioseal.load(tmp_path)
    original = audioseal.load(loud_folder)
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 0.05, 8000).astype(np.float32))
    bits = torch.zeros(1, seal_models.NBITS, dtype=torch.long)
    with torch.no_grad(), audioseal._eager():
        assert torch.equal(weights.generator.get_watermark(x[None, None], message=bits),
                           original.generator.get_watermark(x[None, None], message=bits))


def test_without_audioseal_installed_the_folder_is_one_clear_error(tmp_path, loud_folder,
                                                                   monkeypatch):
    """The light install has no audioseal: a workspace naming a folder is told what to install."""
    import sys

    for name in ("audioseal.builder", "audioseal.loader"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: import raises
    audioseal._LOADED.clear()
    with pytest.raises(audioseal.ModelError, match=r"soundscape\[musicgen\]"):
        audioseal.load(loud_folder)


def test_the_cue_sheet_shows_both_marks(tmp_path, loud_folder, monkeypatch):
    from soundscape.reports.cuesheet import build_cuesheet
    from soundscape.rights.ledger import Ledger

    home = _studio(tmp_path, loud_folder)
    monkeypatch.setenv("SOUNDSCAPE_HOME", str(home))
    spec = make_spec("bright upbeat logo", kind="jingle", duration=3, seed=2,
                     production="Deep Water", episode="S01E03", cue_id="1M1")
    [delivery] = pipeline.run([Job(spec=spec, path=tmp_path / "1M1.wav")],
                              workspace=open_workspace(home))
    mark = delivery.facts.watermark
    with Ledger.open(open_workspace(home)) as ledger:
        [cue] = build_cuesheet(ledger, "S01E03", workspace=open_workspace(home)).cues
    assert cue.watermark == f"{mark['payload']} + audioseal {mark['second']['message']}"


def test_a_loops_seam_is_left_as_mastering_made_it(tmp_path, loud_folder):
    """A loop's last sample plays into its first: AudioSeal's watermark fades to nothing at both
    ends, so the samples at the seam are those of soundscape's marked master."""
    from soundscape.delivery import mark_master

    spec = make_spec("calm pad with rain", kind="bed", duration=10, seed=4, loop=True)
    mastered = master(get_engine("composer").render([spec])[0], "ebu-r128")
    mark_master(mastered, key_id=1, mark_id=2)
    before = mastered.audio.copy()
    second = audioseal.seal_master(mastered, audioseal.load(loud_folder), key_id=1, mark_id=2)
    change = np.abs(mastered.audio - before).max(axis=0)
    assert second["strength"] > 0 and change.max() > 1e-4            # it is marked
    assert change[0] < 1e-6 and change[-1] < 1e-6                    # but not at the seam
    assert change[: int(0.01 * 48000)].max() < change.max() / 10
