"""Episodes to report on: one rendered through the real pipeline, one written into the ledger."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundscape.config import open_workspace
from soundscape.facts import OutputFacts
from soundscape.rights.records import ModelEntry

PRODUCTION = "Deep Water"
EPISODE = "S01E03"
CUE_BLOCK = {"episode_title": "The Trench", "company": "Abyss Films", "publisher": "Abyss Music",
             "frame_rate": 25, "policy": "broadcast-commercial"}
# (cue id, kind, usage, timecode in, seconds, prompt, title): listed out of timecode order on
# purpose, so the cue sheet's sequence has to come from the timecodes.
RENDERED_CUES = [
    ("1M3", "sting", "ET", "00:01:00:00", 2, "dark sting, piano", "End Sting"),
    ("1M1", "jingle", "MT", "00:00:00:00", 3, "bright bells fanfare, hopeful", "Main Title"),
    ("1M2", "bed", "BI", "00:00:10:00", 10, "calm pad with rain", "Rain on the Hull"),
]


@dataclass
class Episode:
    home: Path
    folder: Path
    files: dict

    @property
    def workspace(self):
        return open_workspace(self.home)


@pytest.fixture(scope="session")
def rendered_episode(tmp_path_factory) -> Episode:
    """Three composer cues rendered, mastered, delivered, recorded and signed by the pipeline."""
    from soundscape import pipeline
    from soundscape.production import CueFacts
    from soundscape.spec import make_spec
    from soundscape.rights.credentials import dev_folder, make_dev_ca

    root = tmp_path_factory.mktemp("rendered")
    home, folder = root / "home", root / "episode"
    folder.mkdir()
    workspace = open_workspace(home)
    make_dev_ca(dev_folder(workspace), organization="Abyss Films")
    jobs = []
    for cue_id, kind, usage, tc, seconds, prompt, title in RENDERED_CUES:
        spec = make_spec(prompt, kind=kind, duration=seconds, seed=7,
                         production=PRODUCTION, episode=EPISODE, cue_id=cue_id,
                         cue=CueFacts(**CUE_BLOCK, title=title, usage=usage, timecode_in=tc))
        jobs.append(pipeline.Job(spec=spec, path=folder / f"{EPISODE}_{cue_id}.wav",
                                 air_date="2027-03-14", territories=("FR", "BE")))
    deliveries = pipeline.run(jobs, workspace=workspace)
    return Episode(home=home, folder=folder, files={d.spec.cue_id: d.path for d in deliveries})


def _tone(path: Path, seconds: float, freq: float, rng) -> Path:
    t = np.arange(int(48000 * seconds)) / 48000
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(path, np.stack([audio, audio], axis=1), 48000, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def ledger_episode(tmp_path_factory, make_rng) -> Episode:
    """An episode written straight into the ledger: musicgen cues from two registered models,
    a CC-BY training set (attribution obligations), a non-commercial ingredient (not cleared),
    and a second production that shares the episode code."""
    return write_ledger_episode(tmp_path_factory.mktemp("ledgered"), make_rng())


@pytest.fixture(scope="module", params=["sqlite",
                                        pytest.param("postgresql", marks=pytest.mark.postgresql)])
def ledger_episode_on(request, tmp_path_factory, make_rng) -> Episode:
    """:func:`ledger_episode` on each backend: its workspace's own SQLite file, then a database
    on the test run's PostgreSQL named by ``ledger_url`` in its soundscape.toml."""
    root = tmp_path_factory.mktemp(f"ledgered-{request.param}")
    if request.param == "sqlite":
        yield write_ledger_episode(root, make_rng())
        return
    server = request.getfixturevalue("pg_server")
    url = server.create_database()
    (root / "home").mkdir()
    (root / "home" / "soundscape.toml").write_text(f'ledger_url = "{url}"\n')
    yield write_ledger_episode(root, make_rng())
    server.drop_database(url)


def write_ledger_episode(root: Path, rng) -> Episode:
    from soundscape.audio.io import audio_sha256
    from soundscape.rights.ingest import AssetEntry, add_entries
    from soundscape.rights.ledger import Ledger

    home, folder, assets = root / "home", root / "episode", root / "assets"
    folder.mkdir()
    assets.mkdir()
    workspace = open_workspace(home)
    files = {}
    with Ledger.open(workspace) as ledger:
        add_entries(ledger, [AssetEntry(path=_tone(assets / f"wave{i}.wav", 0.5, 200 + 50 * i, rng),
                                        license="CC-BY-4.0", author=f"Field Recordist {i}",
                                        source=f"https://example.org/wave{i}")
                             for i in range(3)], dataset="field-waves")
        add_entries(ledger, [AssetEntry(path=_tone(assets / "nc.wav", 0.5, 900, rng),
                                        license="CC-BY-NC-4.0", author="Hobbyist")],
                    dataset="nc-loops")
        nc_asset = ledger.dataset_assets("nc-loops")[0]
        ledger.register_model(ModelEntry(name="waves-v1", engine="musicgen", lm_sha256="a1" * 32,
                                         datasets=["field-waves"], license="CC-BY-4.0"))
        ledger.register_model(ModelEntry(name="small-ft", engine="musicgen", lm_sha256="b2" * 32,
                                         base_model="facebook/musicgen-small",
                                         datasets=["field-waves"], license="CC-BY-4.0"))
        cues = [("2M1", "waves-v1", "00:00:05:00", None), ("2M2", "waves-v1", "00:00:20:00", None),
                ("2M3", "small-ft", "00:00:40:00", None), ("2M4", "waves-v1", "00:01:00:00", nc_asset)]
        for i, (cue_id, model, tc, ingredient) in enumerate(cues):
            path = _tone(folder / f"S02E01_{cue_id}.wav", 1.0, 300 + 40 * i, rng)
            uses = [{"id": "nc", "sha256": ingredient.audio_sha256, "license": ingredient.license,
                     "path": ingredient.path}] if ingredient else []
            ledger.record_output(OutputFacts(
                audio_sha256=audio_sha256(path), file_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                path=str(path), engine="musicgen", engine_version="1.3.0", model=model,
                model_sha256=("a1" if model == "waves-v1" else "b2") * 32, prompt=f"waves {cue_id}",
                cue_kind="bed", duration=1.0, ingredients=uses,
                parameters={"kind": "bed", "params": {"cue": {
                    "title": f"Swell {cue_id}", "usage": "BI", "timecode_in": tc, "frame_rate": 25,
                    "episode_title": "Currents", "company": "Abyss Films", "publisher": "Abyss Music"}}},
                production="Tidal", episode="S02E01", cue_id=cue_id, air_date="2027-05-01",
                territories=["GB"]))
            files[cue_id] = path
        other = _tone(folder / "other.wav", 1.0, 700, rng)
        ledger.record_output(OutputFacts(
            audio_sha256=audio_sha256(other), file_sha256="", path=str(other), engine="composer",
            engine_version="1.0.0", prompt="other", cue_kind="bed", duration=1.0,
            production="Another Show", episode="S02E01", cue_id="9M9"))
    return Episode(home=home, folder=folder, files=files)
