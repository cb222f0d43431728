"""Training at scale on the CPU: 2 ranks over gloo, SIGTERM then --resume, gradient accumulation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from soundscape.config import SAMPLES_DIR
from soundscape.errors import TrainingStopped


@pytest.fixture(scope="module")
def sample_assets():
    files = sorted(SAMPLES_DIR.glob("*.flac"))
    assert len(files) >= 10, "the sample library is missing"
    return [{"path": str(f)} for f in files]


@pytest.mark.slow  # three Python processes start torch: ~1 min alone, minutes on a busy CPU
def test_two_ranks_train_in_step_on_their_own_batches_and_register_once(tmp_path,
                                                                          torch_one_thread):
    from typer.testing import CliRunner

    from soundscape.cli import app
    from soundscape.engines.musicgen.checkpoint import read_package, state_sha256
    from soundscape.config import open_workspace
    from soundscape.rights.ledger import Ledger

    home = tmp_path / "home"
    env = {**os.environ, "SOUNDSCAPE_HOME": str(home), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    made = CliRunner().invoke(app, ["model", "new", "studio-tiny", "--arch", "tiny"], env=env)
    assert made.exit_code == 0, made.output
    run = subprocess.run(
        [sys.executable, "-m", "soundscape", "train", "--model", "studio-tiny", "--dataset",
         "soundscape-samples", "--out", "two-ranks", "--steps", "3", "--batch-size", "2",
         "--segment-seconds", "1", "--lr", "3e-3", "--nproc", "2", "--device", "cpu",
         "--allow-untrained-codec"],  # the tiny model's codec: the loop is under test here
        env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("trained two-ranks") == 1 and "on 2 processes" in run.stdout

    with Ledger.open(open_workspace(home)) as ledger:
        models = [m.name for m in ledger.list_models()]
        record = ledger.get_model("two-ranks")
    assert sorted(models) == ["studio-tiny", "two-ranks"]          # one registration
    training = record.training
    params, batches = training["rank_params_sha256"], training["rank_batches_sha256"]
    assert len(params) == len(batches) == 2
    assert params[0] == params[1]                                   # DDP kept them in step
    assert batches[0] != batches[1]                                 # each drew its own
    # rank 0's claim checked against the one export on disk
    exported = read_package(home / "models" / "two-ranks" / "state_dict.bin")["best_state"]
    assert state_sha256(exported) == params[0]
    assert sorted(p.name for p in (home / "models").iterdir()) == ["studio-tiny", "two-ranks"]
    assert sorted(p.name for p in (home / "models" / "two-ranks").iterdir()) == [
        ".training", "compression_state_dict.bin", "state_dict.bin"]


def test_sigterm_then_resume_gives_the_losses_of_a_straight_run(tiny_model_dir, sample_assets,
                                                                 tmp_path):
    from soundscape.engines.musicgen.train import STATE_FILE, WORK_DIR, train

    common = dict(stage="lm", steps=6, batch_size=2, lr=3e-3, segment_seconds=1.0, seed=5,
                  warmup=2, accumulate=2, cache_dir=tmp_path / "codes",
                  allow_untrained_codec=True)
    straight = train(tiny_model_dir, sample_assets, out_dir=tmp_path / "straight", **common)
    # Whatever handler the process had (Ray, run earlier in the same session, installs one).
    before = signal.getsignal(signal.SIGTERM)

    def preempt(step, total, loss):
        if step == 3:  # a real signal, as a scheduler sends it, mid-run
            os.kill(os.getpid(), signal.SIGTERM)

    # The ranks agree on the flag once per step, with the step's loss: a signal landing after
    # step 3's agreement (here, in its progress call) lets step 4 finish, then stops.
    with pytest.raises(TrainingStopped, match="after step 4 of 6.*--resume"):
        train(tiny_model_dir, sample_assets, out_dir=tmp_path / "cut", progress=preempt, **common)
    assert (tmp_path / "cut" / WORK_DIR / STATE_FILE).is_file()
    assert not (tmp_path / "cut" / "state_dict.bin").exists()      # nothing exported
    assert signal.getsignal(signal.SIGTERM) is before               # ours is gone, theirs back
    resumed = train(tiny_model_dir, sample_assets, out_dir=tmp_path / "cut", resume=True, **common)
    assert resumed.start_step == 4 and len(resumed.losses) == 6
    assert resumed.losses[:4] == straight.losses[:4]
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5, abs=1e-6)


def test_accumulating_k_batches_of_b_equals_one_batch_of_k_times_b(tiny_model_dir, sample_assets,
                                                                   tmp_path):
    import torch

    from soundscape.engines.musicgen.checkpoint import checkpoint_hashes
    from soundscape.engines.musicgen.train import _items, _LMRun

    items = _items(sample_assets)
    comp = checkpoint_hashes(tiny_model_dir)["compression"]

    def gradients(accumulate, batch):
        run = _LMRun(tiny_model_dir, items, device=torch.device("cpu"), lr=1e-3, lora_rank=None,
                     seed=7, segment_seconds=1.0, cache_dir=tmp_path / "codes",
                     compression_sha256=comp, accumulate=accumulate)
        # The CFG coin is tossed once per forward: K forwards would toss it K times. Off, so
        # both runs see the same conditions and the comparison is of the arithmetic alone.
        run.lm.cfg_dropout.p = 0.0
        assert min(run.lengths) >= run.segment  # full windows: every row weighs the same
        loss = run.accumulate_gradients(1, batch)
        return loss, {n: p.grad.clone() for n, p in run.lm.named_parameters() if p.grad is not None}

    loss_k, grads_k = gradients(4, 1)
    loss_1, grads_1 = gradients(1, 4)
    assert loss_k == pytest.approx(loss_1, rel=1e-5)
    assert set(grads_k) == set(grads_1) and grads_k
    for name in grads_1:
        torch.testing.assert_close(grads_k[name], grads_1[name], rtol=1e-4, atol=1e-6)
    # and not trivially: a different draw gives a different gradient
    run_other = gradients(1, 3)[1]
    assert any(not torch.allclose(run_other[n], grads_1[n]) for n in grads_1)


def test_rank_batches_differ_and_repeat():
    from soundscape.engines.musicgen.train import _crop_batch, batch_generator

    lengths = [500, 800, 1200, 90]

    def rows(seed, step, rank):
        return _crop_batch(lengths, 8, 50, batch_generator(seed, step, rank))

    assert rows(1, 10, 0) == rows(1, 10, 0)
    assert rows(1, 10, 0) != rows(1, 10, 1)
    assert rows(1, 10, 0) != rows(1, 11, 0)
    assert rows(1, 10, 0) != rows(2, 10, 0)


@pytest.mark.slow  # two ranks start torch and encode the samples: a minute or more
def test_sigterm_to_the_launcher_stops_both_ranks_with_a_checkpoint(tmp_path, torch_one_thread):
    import time

    from typer.testing import CliRunner

    from soundscape.cli import app

    home = tmp_path / "home"
    env = {**os.environ, "SOUNDSCAPE_HOME": str(home), "OMP_NUM_THREADS": "1"}
    made = CliRunner().invoke(app, ["model", "new", "studio-tiny", "--arch", "tiny"], env=env)
    assert made.exit_code == 0, made.output
    job = subprocess.Popen(
        [sys.executable, "-m", "soundscape", "train", "--model", "studio-tiny", "--dataset",
         "soundscape-samples", "--out", "cut", "--steps", "100000", "--batch-size", "1",
         "--segment-seconds", "0.5", "--checkpoint-every", "5", "--nproc", "2",
         "--allow-untrained-codec"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = home / "models" / "cut" / ".training" / "last.pt"
    deadline = time.monotonic() + 400
    while not state.is_file() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state.is_file(), "training never reached its first checkpoint"
    job.send_signal(signal.SIGTERM)
    out, err = job.communicate(timeout=300)
    assert job.returncode == TrainingStopped.exit_code, out + err
    assert err.count("stopped by SIGTERM after step") == 1 and "--resume" in err  # one line
    assert "Traceback" not in err
    assert not (home / "models" / "cut" / "state_dict.bin").exists()   # nothing exported
    import torch

    saved = torch.load(state, weights_only=True)
    assert 5 <= int(saved["step"]) < 100000 and len(saved["losses"]) == int(saved["step"])
