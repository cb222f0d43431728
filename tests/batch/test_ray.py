"""The Ray executor against the local pool: the same audio, sidecars and ledger records, byte for byte.

One local Ray session (two CPUs, no dashboard, loopback only) serves the whole module: Ray takes
many seconds to start.
"""

import json
import os

import pytest

from soundscape.audio.io import riff_chunks
from soundscape.batch import runner
from soundscape.batch.cuelist import load_cuelist
from soundscape.config import open_workspace
from soundscape.journal import Journal
from soundscape.rights.ledger import Ledger

pytestmark = pytest.mark.slow

# Facts that differ between any two renders of the same cue: when and where, and the record's place.
VOLATILE_RECORD = {"id", "seq", "recorded", "created", "path", "file_sha256", "body"}
VOLATILE_SIDECAR = {"created", "file_sha256", "ledger"}


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


def pcm_bytes(path) -> bytes:
    offset, size = riff_chunks(path)[b"data"]
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def records_by_cue(workspace) -> dict:
    with Ledger.open(workspace) as ledger:
        return {r.cue_id: {k: v for k, v in r.__dict__.items() if k not in VOLATILE_RECORD}
                for r in ledger.find_outputs()}


def test_ray_gives_the_local_pool_s_outputs_and_records(tmp_path, ray_session, episode_file):
    episode = load_cuelist(episode_file)
    local_ws, ray_ws = open_workspace(tmp_path / "home-local"), open_workspace(tmp_path / "home-ray")
    local = runner.run_batch(episode, tmp_path / "local", workspace=local_ws, executor="local", workers=2)
    # One signing key for both ledgers, so both carry the same watermark (its payload names
    # the ledger's key); only the key pair, not the local ledger's witness files.
    import shutil

    from soundscape.rights.store.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME

    (tmp_path / "home-ray" / "keys").mkdir(parents=True)
    for name in (PRIVATE_KEY_NAME, PUBLIC_KEY_NAME):
        shutil.copy2(tmp_path / "home-local" / "keys" / name, tmp_path / "home-ray" / "keys" / name)
    remote = runner.run_batch(episode, tmp_path / "ray", workspace=ray_ws, executor="ray")
    assert ray_session.is_initialized()  # the executor joined the session and left it running

    assert [r.status for r in remote.results] == ["rendered"] * 6
    for a, b in zip(local.results, remote.results):
        assert a.output.job.content_key == b.output.job.content_key
        assert a.delivery.audio_sha256 == b.delivery.audio_sha256
        assert pcm_bytes(a.output.job.path) == pcm_bytes(b.output.job.path)
        sidecars = [json.loads(r.delivery.sidecar_path.read_text()) for r in (a, b)]
        for sidecar in sidecars:
            for key in VOLATILE_SIDECAR:
                sidecar.pop(key)
        assert sidecars[0] == sidecars[1]
        assert a.verdict == b.verdict and b.verdict.cleared
    assert records_by_cue(local_ws) == records_by_cue(ray_ws)
    assert len(records_by_cue(ray_ws)) == 6
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == \
        sorted(p.name for p in (tmp_path / "local").iterdir())
    with Ledger.open(ray_ws) as ledger:
        ledger.verify()
        assert Journal.of(ledger).entries() == []

    again = runner.run_batch(episode, tmp_path / "ray", workspace=ray_ws, executor="ray")
    assert [r.status for r in again.results] == ["skipped"] * 6


def test_a_failing_ray_task_does_not_stop_the_others(tmp_path, ray_session, workspace,
                                                    episode_with_broken_model):
    cues = episode_with_broken_model
    episode = load_cuelist(cues, registered_models={"deep-water-ft"}).select(["1M3", "9M9"])
    report = runner.run_batch(episode, tmp_path / "out", workspace=workspace, executor="ray")
    assert {r.output.label: r.status for r in report.results} == {"1M3": "rendered", "9M9": "failed"}
    assert "not an audiocraft checkpoint folder" in report.failed[0].error
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["S01E03_1M3.wav"]
