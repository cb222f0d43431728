"""``ledger verify`` with a witness folder, --since-witness, and --against a delivery folder."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from soundscape.cli import app
from soundscape.config import open_workspace
from soundscape.rights import credentials as cr

pytest.importorskip("c2pa")


def run(home, *args):
    return CliRunner().invoke(app, ["--home", str(home), *map(str, args)],
                              env={"COLUMNS": "240"})


def one_error(result, code):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def delivered(tmp_path):
    """A workspace whose witness_dir is a team folder, and a delivery of two signed jingles."""
    from soundscape import pipeline
    from soundscape.spec import make_spec

    home, folder, team = tmp_path / "home", tmp_path / "delivery", tmp_path / "team"
    home.mkdir()
    (home / "soundscape.toml").write_text(f'witness_dir = "{team}"\n')
    cr.make_dev_ca(cr.dev_folder(open_workspace(home)), organization="Abyss Films")
    jobs = [pipeline.Job(spec=make_spec("bright bells jingle", kind="jingle", duration=2,
                                        seed=seed, production="Deep Water", episode="S01E01",
                                        cue_id=f"{seed}M1"),
                         path=folder / f"{seed}M1.wav") for seed in (1, 2)]
    folder.mkdir()
    pipeline.run(jobs, workspace=open_workspace(home))
    return {"home": home, "folder": folder, "team": team}


def test_verify_against_a_delivery_folder_and_the_team_witness(delivered):
    home, folder, team = delivered["home"], delivered["folder"], delivered["team"]
    result = run(home, "ledger", "verify", "--against", folder)
    assert result.exit_code == 0, result.output
    assert f"{folder}: 2 sidecars, 2 C2PA manifests checked against the ledger" in result.stdout
    (copy,) = team.glob("*.checkpoint")  # the verify wrote the team's witness
    size = int(copy.read_text().split("\n")[1])
    assert size == sqlite3.connect(home / "ledger.sqlite").execute(
        "SELECT max(size) FROM ledger_checkpoints").fetchone()[0]
    # The bare witness note is a checkpoint --against takes too.
    assert run(home, "ledger", "verify", "--against", copy).exit_code == 0
    # Roll the ledger back by one output, records and checkpoints together, local copies gone.
    con = sqlite3.connect(home / "ledger.sqlite")
    last = con.execute("SELECT max(seq) FROM ledger_records WHERE kind = 'output'").fetchone()[0]
    con.execute("DELETE FROM ledger_records WHERE seq >= ?", (last,))
    con.execute("DELETE FROM ledger_checkpoints WHERE size >= ?", (last,))
    con.commit()
    for local in (home / "keys").glob("ledger*.checkpoint"):
        local.unlink()
    assert "truncated or rolled back" in one_error(run(home, "ledger", "verify"), 3)
    # Without the team's copy the delivery folder still shows it: a sidecar names a lost record.
    copy.unlink()
    message = one_error(run(home, "ledger", "verify", "--against", folder), 3)
    assert f"{folder / '2M1.wav'} (C2PA manifest) names record out-" in message
    assert message.endswith("which the ledger does not hold: it was removed or the ledger replaced")


def test_verify_since_witness_reads_only_the_new_records(delivered):
    home = delivered["home"]
    assert run(home, "ledger", "verify").exit_code == 0
    result = run(home, "ledger", "verify", "--since-witness")
    assert result.exit_code == 0, result.output
    size = sqlite3.connect(home / "ledger.sqlite").execute(
        "SELECT max(size) FROM ledger_checkpoints").fetchone()[0]
    assert f"records #{size + 1} to #{size} (since the witnessed checkpoint {size})" in result.stdout


def test_bad_witness_settings_and_folders_are_one_line(delivered, tmp_path):
    home = delivered["home"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no sidecar or C2PA manifest" in one_error(
        run(home, "ledger", "verify", "--against", empty), 2)
    (home / "soundscape.toml").write_text("witness_dir = 5\n")
    assert "witness_dir must be a quoted folder path" in one_error(run(home, "ledger", "verify"), 1)
