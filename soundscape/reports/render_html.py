"""The cue sheet as one self-contained HTML file that opens offline.

Styles are inline, waveforms are PNG ``data:`` URIs and there is no script, so the page makes
no network request; each cue's audio player links to the delivered file by a path relative to
the report, so the report and the episode's folder can be moved together.
"""

from __future__ import annotations

import base64
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from soundscape.reports.plots import waveforms

# A model trained on thousands of CC-BY recordings owes thousands of credits on every cue: each
# cue shows the first few, Appendix A holds every one (and the CSV and JSON, all per cue).
OBLIGATIONS_SHOWN = 6

CSS = """
:root { --ok: #1b5e20; --ok-bg: #e8f5e9; --bad: #b71c1c; --bad-bg: #ffebee; --review: #8a4b00;
        --review-bg: #fff3e0; --line: #d0d4da; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1c1f23; margin: 0; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 0; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
.sub { color: #555; margin: 0 0 16px; }
.status { display: inline-block; font-weight: 700; letter-spacing: .04em; border-radius: 4px;
          padding: 2px 10px; font-size: 13px; }
.status.ok { color: var(--ok); background: var(--ok-bg); border: 1px solid var(--ok); }
.status.bad { color: var(--bad); background: var(--bad-bg); border: 1px solid var(--bad); }
.status.review { color: var(--review); background: var(--review-bg); border: 1px solid var(--review); }
.banner { font-size: 22px; padding: 10px 16px; margin: 8px 0 18px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; }
table.facts th { width: 220px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.mono { white-space: nowrap; }  /* a timecode never breaks at its colons */
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px;
              word-break: break-all; }
section.cue { border: 1px solid var(--line); border-left: 6px solid var(--ok); border-radius: 4px;
              padding: 12px 14px; margin: 14px 0; break-inside: avoid; }
section.cue.bad { border-left-color: var(--bad); }
section.cue img { width: 100%; max-width: 720px; height: auto; display: block; margin: 8px 0; }
audio { width: 100%; max-width: 720px; }
ul { margin: 4px 0 8px 20px; padding: 0; }
.noimg { color: #777; font-style: italic; }
footer { color: #666; font-size: 12px; margin-top: 30px; }
"""


def _badge(text: str, ok: bool, *, extra: str = "", kind: str | None = None) -> str:
    kind = kind or ("ok" if ok else "bad")
    return f'<span class="status {kind} {extra}">{escape(text)}</span>'


def _status(status: str, *, extra: str = "") -> str:
    # NEEDS REVIEW is neither green nor red: amber, so a sheet shows what a person must settle.
    kind = {"CLEARED": "ok", "NEEDS REVIEW": "review"}.get(status, "bad")
    return _badge(status, status == "CLEARED", extra=extra, kind=kind)


def _row(label: str, value, *, mono: bool = False) -> str:
    text = escape("" if value is None else str(value))
    cls = ' class="mono"' if mono else ""
    return f"<tr><th>{escape(label)}</th><td{cls}>{text}</td></tr>"


def _list(items, *, limit: int | None = None) -> str:
    items = list(items)
    if not items:
        return "<p>none</p>"
    shown = items if limit is None or len(items) <= limit else items[:limit - 1]
    more = (f'<li><a href="#attributions">… and {len(items) - len(shown)} more: every credit is '
            "in Appendix A</a></li>") if len(shown) < len(items) else ""
    return "<ul>" + "".join(f"<li>{escape(str(i))}</li>" for i in shown) + more + "</ul>"


def _audio_href(file: str, base_dir: Path | None) -> str:
    path = Path(file)
    if base_dir is not None:
        try:
            rel = os.path.relpath(path, base_dir)
        except ValueError:  # another drive on Windows: keep the absolute path
            rel = str(path)
    else:
        rel = str(path)
    return quote(Path(rel).as_posix())


def _anchor(cue_id: str) -> str:
    return "cue-" + quote(cue_id, safe="")


def render(sheet, *, base_dir: str | Path | None = None, images: dict | None = None) -> bytes:
    """The HTML page.

    Args:
        sheet: the :class:`~soundscape.reports.cuesheet.CueSheet`.
        base_dir: the folder the report is written to (audio links are relative to it).
        images: ``{cue_id: png bytes or None}``; drawn here when not given.
    """
    base_dir = Path(base_dir).resolve() if base_dir is not None else None
    p = sheet.production
    if images is None:
        images = waveforms(sheet.cues)
    title = f"{p.title} {p.episode}" + (f" “{p.episode_title}”" if p.episode_title else "")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           # No network, ever: a policy that forbids any fetch but inline styles and data: images
           # and the relative audio files.
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
           "style-src 'unsafe-inline'; img-src data:; media-src 'self' file:\">",
           f"<title>Music cue sheet · {escape(title)}</title><style>{CSS}</style></head><body><main>"]
    out += _production(sheet, title)
    out += _cue_table(sheet)
    out.append("<h2>Cue details</h2>")
    for c in sheet.cues:
        out += _cue_section(c, p.policy, images.get(c.cue_id), base_dir)
    out += _appendices(sheet)
    out.append(f"<footer>Generated {escape(sheet.generated)} by {escape(sheet.generator)} "
               "from the rights ledger.</footer></main></body></html>")
    return "\n".join(out).encode("utf-8")


def _production(sheet, title: str) -> list[str]:
    """The title, the CLEARED / NOT CLEARED banner and the production block."""
    p = sheet.production
    out = [f"<h1>Music cue sheet: {escape(title)}</h1>",
           f'<p class="sub">Clearance under policy <b>{escape(p.policy)}</b> · '
           f"{p.cleared_count} of {p.cue_count} cues cleared</p>",
           f'<div id="episode-status">{_status(p.status, extra="banner")}</div>',
           "<h2>Production</h2><table class=\"facts\">"]
    for label, value in (("Programme title", p.title), ("Episode", p.episode),
                         ("Episode title", p.episode_title), ("Air date", p.air_date),
                         ("Territories", ", ".join(p.territories)),
                         ("Production company", p.company), ("Publisher", p.publisher),
                         ("Total music duration", f"{p.total_duration_text} ({p.total_duration:.1f} s)"),
                         ("Number of cues", p.cue_count), ("Frame rate", f"{p.frame_rate:g} fps"),
                         ("Clearance policy", f"{p.policy}: {p.policy_description}")):
        out.append(_row(label, value))
    out.append("</table>")
    return out


def _cue_table(sheet) -> list[str]:
    """One row per cue, as a cue sheet prints them, each linking to its details."""
    out = ["<h2>Cues</h2><table><thead><tr><th>#</th><th>Cue</th><th>Title</th><th>Use</th>"
           "<th>In</th><th>Out</th><th>Duration</th><th>Composer / author</th>"
           "<th>Publisher</th><th>Clearance</th></tr></thead><tbody>"]
    for c in sheet.cues:
        out.append(f'<tr><td class="num">{c.sequence}</td><td><a href="#{_anchor(c.cue_id)}">'
                   f"{escape(c.cue_id)}</a></td><td>{escape(c.title)}</td>"
                   f'<td title="{escape(c.usage_meaning)}">{escape(c.usage)}</td>'
                   f'<td class="mono">{escape(c.timecode_in)}</td><td class="mono">{escape(c.timecode_out)}</td>'
                   f'<td class="num">{escape(c.duration_text)}</td><td>{escape(c.composer)}</td>'
                   f"<td>{escape(c.publisher)}</td><td>{_status(c.status)}</td></tr>")
    out.append("</tbody></table>")
    return out


def _cue_section(c, policy: str, png: bytes | None, base_dir: Path | None) -> list[str]:
    """One cue's details: its waveform, a player for the file, every fact behind its verdict."""
    kind = "ok" if c.cleared else "bad"
    out = [f'<section class="cue {kind}" id="{_anchor(c.cue_id)}" data-cue-id="{escape(c.cue_id)}">',
           f"<h3>{c.sequence}. {escape(c.cue_id)} · {escape(c.title)} {_status(c.status)}</h3>"]
    if png:
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<img alt="waveform of cue {escape(c.cue_id)}" src="data:image/png;base64,{data}">')
    else:
        out.append('<p class="noimg">no waveform: the delivered file was not found</p>')
    out.append(f'<audio controls preload="none" src="{escape(_audio_href(c.file, base_dir))}">'
               f"{escape(Path(c.file).name)}</audio>")
    out.append('<table class="facts">')
    for label, value, mono in (
            ("Usage", f"{c.usage} ({c.usage_meaning})" if c.usage_meaning else c.usage, False),
            ("Timecode in / out", f"{c.timecode_in} / {c.timecode_out}", True),
            ("Duration", f"{c.duration_text} ({c.duration:.2f} s)", False),
            ("Composer / author", c.composer, False), ("Publisher", c.publisher, False),
            ("AI-generated", c.disclosure, False),
            ("Engine", f"{c.engine} {c.engine_version}", False),
            ("Model", f"{c.model} (sha256 {c.model_sha256})" if c.model else "none", False),
            ("Lineage", c.lineage.text, False),
            ("Licenses", ", ".join(f"{lic} ×{n}" for lic, n in c.lineage.licenses.items()) or "none", False),
            ("Prompt", c.prompt, False), ("Audio sha256", c.audio_sha256, True),
            ("Ledger record", c.record_id, True), ("File", c.file, True),
            ("Watermark", c.watermark or "none", True)):
        out.append(_row(label, value, mono=mono))
    out.append("</table>")
    out.append(f"<p><b>Clearance ({escape(policy)}):</b> {_status(c.status)}</p>")
    out.append(("<p>Reasons:</p>" if c.status == "NOT CLEARED" else "<p>Notes:</p>") + _list(c.reasons))
    if c.conditions:
        out.append("<p>Conditions (to settle before it clears):</p>" + _list(c.conditions))
    out.append("<p>Obligations (credits):</p>" + _list(c.obligations, limit=OBLIGATIONS_SHOWN))
    out.append("</section>")
    return out


def _appendices(sheet) -> list[str]:
    """A: every credit to give; B: each model and its training data; C: the ledger checkpoint."""
    out = ['<h2 id="attributions">Appendix A · Attributions to credit</h2>']
    if sheet.attributions:
        out.append("<table><thead><tr><th>Credit</th><th>Cues</th></tr></thead><tbody>")
        for a in sheet.attributions:
            out.append(f"<tr><td>{escape(a.line)}</td><td>{escape(', '.join(a.cues))}</td></tr>")
        out.append("</tbody></table>")
    else:
        out.append("<p>No attribution is required for this episode.</p>")

    out.append("<h2>Appendix B · Models and training data</h2>")
    for m in sheet.models:
        out.append(f"<h3>{escape(m.name)}</h3><table class=\"facts\">")
        out.append(_row("Engine", m.engine))
        if m.record_id or m.checkpoint_sha256:
            out.append(_row("Ledger record", m.record_id, mono=True))
            out.append(_row("Checkpoint sha256", m.checkpoint_sha256, mono=True))
            out.append(_row("Model license", m.license or "none recorded"))
            out.append(_row("Base model", f"{m.base_model} ({m.base_model_license or 'no license recorded'})"
                            if m.base_model else "none (trained from scratch)"))
            out.append(_row("Lineage", "UNKNOWN: never cleared" if m.lineage_unknown else "recorded"))
        datasets = "; ".join(d.text for d in m.datasets) or "none"
        out.append(_row("Training datasets", datasets))
        if m.note:
            out.append(_row("Note", m.note))
        out.append(_row("Cues", ", ".join(m.cues)))
        out.append("</table>")

    cp = sheet.checkpoint
    out.append("<h2>Appendix C · Ledger checkpoint</h2><table class=\"facts\">")
    badge = _badge("VERIFIED" if cp.verified else "NOT VERIFIED", cp.verified)
    out.append(f"<tr><th>Verification</th><td>{badge} {escape(cp.message)}</td></tr>")
    for label, value in (("Tree size", cp.size), ("Root hash", cp.root), ("Signed at", cp.time),
                         ("Key id", cp.key_id), ("Signature", cp.signature),
                         ("Ledger public key", cp.public_key_pem)):
        out.append(_row(label, value, mono=label != "Tree size"))
    out.append("</table>")
    return out
