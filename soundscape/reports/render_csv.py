"""The cue sheet as CSV: one row per cue, columns in the order docs/reports.md documents."""

from __future__ import annotations

import csv
import io

# The documented column order (docs/reports.md). Append new columns at the end only, so
# spreadsheets and scripts that read by position keep working.
COLUMNS: tuple[str, ...] = (
    "production_title", "episode", "episode_title", "air_date", "territories",
    "sequence", "cue_id", "cue_title", "usage", "timecode_in", "timecode_out", "duration",
    "duration_seconds", "composer", "publisher", "ai_generated", "ai_disclosure", "engine",
    "model", "lineage", "licenses", "clearance", "policy", "reasons", "obligations",
    "audio_sha256", "ledger_record", "file", "conditions", "watermark",
)
# Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text  # free text (a prompt, a title) must never run as a formula
    return text


def rows(sheet) -> list[dict]:
    """The CSV rows as dicts keyed by :data:`COLUMNS`."""
    p = sheet.production
    out = []
    for cue in sheet.cues:
        out.append({
            "production_title": p.title, "episode": p.episode, "episode_title": p.episode_title,
            "air_date": p.air_date, "territories": " ".join(p.territories),
            "sequence": cue.sequence, "cue_id": cue.cue_id, "cue_title": cue.title,
            "usage": cue.usage, "timecode_in": cue.timecode_in, "timecode_out": cue.timecode_out,
            "duration": cue.duration_text, "duration_seconds": f"{cue.duration:.3f}",
            "composer": cue.composer, "publisher": cue.publisher,
            "ai_generated": "yes" if cue.ai_generated else "no", "ai_disclosure": cue.disclosure,
            "engine": f"{cue.engine} {cue.engine_version}".strip(), "model": cue.model or "",
            "lineage": cue.lineage.text,
            "licenses": "; ".join(f"{lic} x{n}" for lic, n in cue.lineage.licenses.items()),
            "clearance": cue.status, "policy": p.policy, "reasons": " | ".join(cue.reasons),
            "obligations": " | ".join(cue.obligations), "audio_sha256": cue.audio_sha256,
            "ledger_record": cue.record_id, "file": cue.file,
            "conditions": " | ".join(cue.conditions), "watermark": cue.watermark or "",
        })
    return out


def render(sheet) -> bytes:
    """CSV bytes: UTF-8 with a byte-order mark (so spreadsheet programs read accents right)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows(sheet):
        writer.writerow({k: cell(v) for k, v in row.items()})
    return buffer.getvalue().encode("utf-8-sig")
