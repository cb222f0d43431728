"""A model with attribute conditioners through the CLI: --key/--bpm/--mood reach it, the sidecar
says what it received, and a prompt it cannot hear gets one warning line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner


@pytest.fixture
def run(tmp_path, monkeypatch, torch_one_thread):
    from soundscape.cli import app

    monkeypatch.setenv("SOUNDSCAPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def test_controls_reach_the_model_and_the_sidecar_says_what_it_received(run, tmp_path):
    result = run("model", "new", "attr-tiny", "--arch", "tiny")
    assert result.exit_code == 0, result.output
    out = tmp_path / "cue.wav"
    result = run("jingle", "Soft bells.", "--engine", "musicgen", "--model", "attr-tiny",
                 "--duration", 2, "--seed", 4, "--key", "D minor", "--bpm", 110, "--out", out)
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "cue.wav.json").read_text())
    received = sidecar["details"]["conditioning"]
    assert received["key"] == "d minor" and received["tempo"] == "lively"
    assert received["instrument"] == "bells" and received["mood"] == "calm"  # "soft" is calm
    assert received["description"] == "soft bells"
    # The summary shows the key and tempo the model received.
    row = next(line for line in result.output.splitlines() if "cue.wav" in line and "LUFS" in line)
    assert "D minor" in row and "110 (lively)" in row, row
    intent = sidecar["intent"]
    assert intent["key"] == "D minor" and intent["bpm"] == 110.0 and intent["tempo"] == "lively"
    assert intent["sources"] == {"mood": "prompt", "key": "flag", "tempo": "flag"}
    assert sidecar["parameters"]["intent"] == intent

    # Without --key the composer would choose one from the seed; the model is given none, and
    # the sidecar does not pretend otherwise.
    result = run("jingle", "Soft bells.", "--engine", "musicgen", "--model", "attr-tiny",
                 "--duration", 2, "--seed", 4, "--out", tmp_path / "free.wav")
    assert result.exit_code == 0, result.output
    free = json.loads((tmp_path / "free.wav.json").read_text())
    assert free["intent"]["key"] is None and free["intent"]["bpm"] is None
    assert free["details"]["conditioning"]["key"] is None
    assert free["audio_sha256"] != sidecar["audio_sha256"]  # the key and tempo changed the audio


def test_a_prompt_no_conditioner_knows_is_warned_about_in_one_line(tmp_path):
    # The real program (not the in-process runner, whose log capture would swallow the line).
    env = dict(os.environ, SOUNDSCAPE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")

    def soundscape(*args):
        return subprocess.run([sys.executable, "-m", "soundscape", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=300)

    assert soundscape("model", "new", "attr-tiny", "--arch", "tiny").returncode == 0
    proc = soundscape("jingle", "glorbwave zint", "--engine", "musicgen", "--model", "attr-tiny",
                      "--duration", 2, "--seed", 1, "--out", tmp_path / "odd.wav")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "glorbwave" in line]
    assert len(lines) == 1 and "knows" in lines[0], proc.stderr
    proc = soundscape("jingle", "calm bells", "--engine", "musicgen", "--model", "attr-tiny",
                      "--duration", 2, "--seed", 1, "--out", tmp_path / "fine.wav")
    assert proc.returncode == 0 and "knows" not in proc.stderr, proc.stderr


def test_t5_conditioning_without_a_local_t5_says_so_in_one_line(run, tmp_path, monkeypatch):
    # An empty Hugging Face cache: t5-base is not there, and nothing may fetch it.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run("model", "new", "t5-tiny", "--arch", "tiny", "--conditioning", "t5")
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "t5-base" in lines[0] and "never downloads" in lines[0]
    assert not (tmp_path / "home" / "models" / "t5-tiny").exists()
    assert run("model", "list").output.count("t5-tiny") == 0


def test_a_cached_t5_is_found_by_the_cache_layout_alone(tmp_path, monkeypatch):
    from soundscape.engines.musicgen.conditioning import find_local_t5

    repo = tmp_path / "hub" / "models--t5-base"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert find_local_t5() is None  # nothing cached
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a1b2c3\n")
    assert find_local_t5() is None  # a ref without its snapshot
    (repo / "snapshots" / "a1b2c3").mkdir(parents=True)
    (repo / "snapshots" / "a1b2c3" / "config.json").write_text("{}")
    assert find_local_t5() == repo / "snapshots" / "a1b2c3"


def save_tiny_t5(folder, *, seed: int = 0):
    """A T5 encoder as transformers' save_pretrained writes one: t5-base's width (768, which
    audiocraft's conditioner assumes), one layer, and a SentencePiece tokenizer trained here on
    a few prompts; a stand-in for a studio's t5-base folder, built without any download."""
    import io

    sentencepiece = pytest.importorskip("sentencepiece")
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    prompts = ["calm rain over a quiet lake", "bright bells in the morning",
               "dark drone with soft strings", "warm piano at night"] * 20
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(prompts), model_writer=model, vocab_size=32, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    transformers.T5Tokenizer(vocab_file=str(folder / "spiece.model"), extra_ids=0).save_pretrained(folder)
    config = transformers.T5Config(vocab_size=32, d_model=768, d_kv=8, num_heads=2, num_layers=1,
                                   d_ff=32, decoder_start_token_id=0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformers.T5EncoderModel(config).save_pretrained(folder)
    return folder


def test_a_t5_from_a_plain_folder_is_recorded_by_its_weights_and_reads_the_description(
        run, tmp_path, monkeypatch):
    import hashlib

    import torch

    from soundscape.engines.musicgen.checkpoint import load_model
    from soundscape.engines.musicgen.generate import SamplingParams, generate_codes
    from soundscape.errors import ModelError
    from soundscape.engines.musicgen.conditioning import condition_from_facts

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))  # not from the cache: the folder
    t5 = save_tiny_t5(tmp_path / "studio-t5")
    result = run("model", "new", "t5-tiny", "--arch", "tiny", "--conditioning", "t5", "--t5-dir", t5)
    assert result.exit_code == 0, result.output
    shown = json.loads(run("model", "show", "t5-tiny", "--json").output)
    encoder = shown["text_encoder"]
    weights = hashlib.sha256((t5 / "model.safetensors").read_bytes()).hexdigest()
    assert encoder["weights_sha256"] == weights and encoder["license"] == "Apache-2.0"
    assert encoder["source"] == "folder" and encoder["path"] == str(t5.resolve())
    # It is in the model's lineage, with its license, like the model itself.
    from soundscape.config import open_workspace
    from soundscape.rights.clearance import model_lineage
    from soundscape.rights.ledger import Ledger

    with Ledger.open(open_workspace(tmp_path / "home")) as ledger:
        items = {item.role: item for item in model_lineage(ledger, "t5-tiny")}
    assert items["text-encoder"].license == "Apache-2.0"
    assert items["text-encoder"].path == str(t5.resolve())

    # Loaded back, the description goes through the folder's T5: two prompts, two embeddings.
    model = load_model(tmp_path / "home" / "models" / "t5-tiny", device="cpu")
    t5_conditioner = model.lm.condition_provider.conditioners["description"]
    with torch.inference_mode():
        embedded = [t5_conditioner(t5_conditioner.tokenize([text]))[0].mean(dim=1)
                    for text in ("calm rain over a quiet lake", "bright bells in the morning")]
        assert float((embedded[0] - embedded[1]).abs().max()) > 1e-3
        codes = generate_codes(model, [condition_from_facts(description="calm rain")], [1],
                               frames=4, params=SamplingParams())
    assert codes.shape[0] == 1 and codes.shape[-1] == 4

    # Other weights in that folder are not the model's text encoder: refused in one line.
    save_tiny_t5(t5, seed=1)
    with pytest.raises(ModelError, match="not the ones the model was built with"):
        load_model(tmp_path / "home" / "models" / "t5-tiny", device="cpu")


@pytest.mark.parametrize("what", ["missing", "not-t5", "narrow"])
def test_a_folder_that_is_not_t5_base_is_refused_in_one_line(run, tmp_path, what):
    folder = tmp_path / "enc"
    if what != "missing":
        folder.mkdir()
        config = {"model_type": "bert", "d_model": 768} if what == "not-t5" else \
            {"model_type": "t5", "d_model": 512}
        (folder / "config.json").write_text(json.dumps(config))
    result = run("model", "new", "t5-bad", "--arch", "tiny", "--conditioning", "t5", "--t5-dir", folder)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(folder) in lines[0], result.output
    assert not (tmp_path / "home" / "models" / "t5-bad").exists()
    assert run("model", "list").output.count("t5-bad") == 0


def test_a_description_only_model_is_not_said_to_play_a_key_or_tempo(run, tmp_path):
    assert run("model", "new", "desc-tiny", "--arch", "tiny", "--conditioning", "description").exit_code == 0
    out = tmp_path / "cue.wav"
    result = run("jingle", "Soft bells in D minor.", "--engine", "musicgen", "--model", "desc-tiny",
                 "--duration", 2, "--seed", 4, "--bpm", 110, "--out", out)
    assert result.exit_code == 0, result.output
    intent = json.loads((tmp_path / "cue.wav.json").read_text())["intent"]
    assert intent["key"] is None and intent["bpm"] is None
    row = next(line for line in result.output.splitlines() if "cue.wav" in line and "LUFS" in line)
    cells = row.split()
    assert "110" not in cells and "minor" not in cells and cells.count("-") >= 2, row
