"""The cue sheet shaped for filing with a performing-rights society (``report --format society``).

Laid out as the ASCAP/BMI RapidCue template is: a production block (one ``field,value`` row
each), a blank row, then the cue table with one row per rights holder of each cue (party,
role code, society, IPI/CAE number, share). The clearance columns of our own cue sheet are left
out; a society does not read them.

AI authorship: since October 2025 ASCAP, BMI and SOCAN register only works with meaningful human
authorship, and PRS does not register AI-generated works. A cue with no human contributor is
therefore written as one row that says it is not a registrable work, and never names
"soundscape composer" as its composer. A cue with human contributors lists them, and says it was
AI-generated, so the society can apply its own rule.
"""

from __future__ import annotations

import csv
import io

from soundscape.production import CONTRIBUTOR_ROLES
from soundscape.reports.render_csv import cell

NOT_REGISTRABLE = "not a registrable work (generated without human authorship)"
HUMAN_CONTRIBUTIONS = ("AI-generated with the human contributions listed; registration is the "
                       "society's decision under its human-authorship rule")
PRODUCTION_ROWS: tuple[tuple[str, str], ...] = (
    ("Production Title", "title"), ("Alternate Titles", "alternate_titles"),
    ("Episode Title", "episode_title"), ("Episode Number", "episode"),
    ("Production Number", "production_number"), ("Production Type", "production_type"),
    ("Program Length", "programme_length"), ("Total Music Length", "music_length"),
    ("Broadcaster", "broadcaster"), ("First Air Date", "air_date"),
    ("Country of Origin", "country_of_origin"), ("Year of Production", "year_of_origin"),
    ("Production Company", "company"), ("Prepared By", "prepared_by"), ("Revision", "revision"),
    ("Date Prepared", "generated"),
)
CUE_COLUMNS: tuple[str, ...] = (
    "Cue #", "Cue ID", "Cue Title", "Usage", "Duration", "Timecode In", "Timecode Out",
    "Party Name", "Role", "Role Meaning", "Society", "IPI/CAE", "Share %", "Registrable", "Note",
)


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = int(round(float(seconds)))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def production_values(sheet) -> dict[str, str]:
    """The production block's values (filing facts come from the cues' recorded facts)."""
    p = sheet.production
    filing = next((c.filing for c in sheet.cues if c.filing), {})
    return {
        "title": p.title, "episode": p.episode, "episode_title": p.episode_title or "",
        "alternate_titles": "; ".join(filing.get("alternate_titles") or []),
        "production_number": filing.get("production_number") or "",
        "production_type": filing.get("production_type") or "",
        "programme_length": _hms(filing.get("programme_length")),
        "music_length": _hms(p.total_duration),
        "broadcaster": filing.get("broadcaster") or "", "air_date": p.air_date or "",
        "country_of_origin": filing.get("country_of_origin") or "",
        "year_of_origin": str(filing.get("year_of_origin") or ""),
        "company": p.company or "", "prepared_by": filing.get("prepared_by") or "",
        "revision": str(filing.get("revision") if filing.get("revision") is not None else ""),
        "generated": sheet.generated[:10],
    }


def cue_rows(cue) -> list[list]:
    """The table rows of one cue: one per human contributor, or one saying it is not registrable."""
    head = [cue.sequence, cue.cue_id, cue.title, cue.usage, _hms(cue.duration), cue.timecode_in,
            cue.timecode_out]
    if not cue.contributors:
        return [head + ["", "", "", "", "", "", "no", NOT_REGISTRABLE]]
    rows = []
    for person in cue.contributors:
        share = person.get("share")
        rows.append(head + [person["name"], person["role"], CONTRIBUTOR_ROLES.get(person["role"], ""),
                            person.get("society") or "", person.get("ipi") or "",
                            f"{share:g}" if share is not None else "", "human contributors listed",
                            HUMAN_CONTRIBUTIONS])
    return rows


def render(sheet) -> bytes:
    """The society export as UTF-8 CSV (with a BOM, as spreadsheet imports expect)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    values = production_values(sheet)
    for label, key in PRODUCTION_ROWS:
        writer.writerow([label, cell(values[key])])
    writer.writerow([])
    writer.writerow(CUE_COLUMNS)
    for cue in sheet.cues:
        for row in cue_rows(cue):
            writer.writerow([cell(v) for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
