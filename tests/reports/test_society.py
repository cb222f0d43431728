"""The society export: a cue list's filing facts and human contributors, through a real batch
and the ledger, read back from the CSV ``report --format society`` writes."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest

from soundscape.batch.cuelist import load_cuelist
from soundscape.errors import ParameterError

CUES = """\
production:
  title: "Deep Water"
  episode: "S01E04"
  episode_title: "The Shelf"
  air_date: 2027-03-21
  territory: [FR, GB]
  company: "Abyss Pictures"
  alternate_titles: ["Eaux profondes", "Deep Water: The Series"]
  production_number: "DW-104"
  programme_length: 2580
  production_type: series
  broadcaster: "Channel 9"
  country_of_origin: GB
  year_of_origin: 2027
  prepared_by: "M. Okafor, music supervisor"
  revision: 2
cues:
  - {id: "1M1", kind: sting, usage: BI, timecode_in: "00:00:10:00", duration: 3, mood: tense, title: "Undertow"}
  - id: "1M2"
    kind: sting
    usage: BV
    timecode_in: "00:02:00:00"
    duration: 3
    mood: calm
    title: "Slack Water"
    contributors:
      - {name: "Ana Ruiz", role: AR, society: PRS, ipi: "00123456789", share: 100}
      - {name: "Tidal Songs Ltd", role: E, society: PRS, ipi: "00987654321", share: 100}
"""


@pytest.fixture(scope="module")
def society_csv(tmp_path_factory):
    root = tmp_path_factory.mktemp("society")
    (root / "cues.yaml").write_text(CUES, encoding="utf-8")
    env = dict(os.environ, SOUNDSCAPE_HOME=str(root / "home"), COLUMNS="200")
    run = lambda *a: subprocess.run([sys.executable, "-m", "soundscape", *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True, env=env, timeout=600)
    batch = run("batch", root / "cues.yaml", "--out", root / "out", "--workers", "1")
    assert batch.returncode == 0, batch.stderr
    report = run("report", "S01E04", "--format", "society", "--out", root)
    assert report.returncode == 0, report.stderr
    path = root / "S01E04-society.csv"
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    blank = rows.index([])
    return dict(rows[:blank]), rows[blank + 1], rows[blank + 2:]


def test_the_production_block_carries_the_filing_facts(society_csv):
    block, _, _ = society_csv
    assert block["Production Title"] == "Deep Water" and block["Episode Number"] == "S01E04"
    assert block["Alternate Titles"] == "Eaux profondes; Deep Water: The Series"
    assert (block["Production Number"], block["Production Type"], block["Broadcaster"]) == \
        ("DW-104", "series", "Channel 9")
    assert block["Program Length"] == "00:43:00" and block["Total Music Length"] == "00:00:06"
    assert (block["Country of Origin"], block["Year of Production"], block["Revision"]) == ("GB", "2027", "2")
    assert block["Prepared By"] == "M. Okafor, music supervisor"


def test_a_cue_without_human_authorship_is_marked_not_registrable(society_csv):
    _, header, rows = society_csv
    first = [dict(zip(header, r)) for r in rows if r[1] == "1M1"]
    assert len(first) == 1
    assert first[0]["Registrable"] == "no"
    assert first[0]["Note"] == "not a registrable work (generated without human authorship)"
    assert first[0]["Party Name"] == "" and "soundscape" not in ",".join(rows[0])


def test_human_contributors_get_one_row_each_with_role_society_ipi_share(society_csv):
    _, header, rows = society_csv
    second = [dict(zip(header, r)) for r in rows if r[1] == "1M2"]
    assert [(r["Party Name"], r["Role"], r["Society"], r["IPI/CAE"], r["Share %"]) for r in second] == [
        ("Ana Ruiz", "AR", "PRS", "00123456789", "100"), ("Tidal Songs Ltd", "E", "PRS", "00987654321", "100")]
    assert all(r["Cue Title"] == "Slack Water" and r["Usage"] == "BV" and r["Timecode In"] == "00:02:00:00"
               for r in second)


@pytest.mark.parametrize("contributor, says", [
    ('{name: "A", role: XX}', "role 'XX'"),
    ('{name: "A", role: C, ipi: "12ab"}', "IPI '12ab'"),
    ('{name: "A", role: C, share: 150}', "share '150'"),
    ('{role: C}', "needs a name"),
])
def test_bad_contributors_are_refused_with_the_line(tmp_path, contributor, says):
    text = CUES.split("cues:")[0] + f"cues:\n  - {{id: 1M1, kind: sting, usage: BI, duration: 3, mood: calm, contributors: [{contributor}]}}\n"
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ParameterError, match=says):
        load_cuelist(tmp_path / "c.yaml", policies=["broadcast-commercial"])


def test_writer_shares_over_100_percent_are_refused(tmp_path):
    text = CUES.split("cues:")[0] + ("cues:\n  - {id: 1M1, kind: sting, usage: BI, duration: 3, mood: calm, contributors: "
                                     "[{name: A, role: C, share: 60}, {name: B, role: AR, share: 50}]}\n")
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ParameterError, match="writers' shares add up to 110%"):
        load_cuelist(tmp_path / "c.yaml", policies=["broadcast-commercial"])
