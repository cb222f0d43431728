"""The cue sheet as a paginated PDF, laid out with reportlab (BSD licensed).

Same content as the HTML report: production block, cue table, one block per cue with its
waveform, then the appendices. Text is set in DejaVu Sans (shipped with matplotlib) when it
can be found, so accented and non-Latin titles print; otherwise in Helvetica.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from xml.sax.saxutils import escape

# reportlab is imported here, at the top: this module is itself imported only when a PDF is
# asked for (soundscape.reports.render), so nothing else pays for it.
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (CondPageBreak, Image, KeepTogether, PageBreak, Paragraph,
                                SimpleDocTemplate, Spacer, Table, TableStyle)

from soundscape.reports.plots import HEIGHT_PX, WIDTH_PX, waveforms

OK_COLOUR, BAD_COLOUR = "#1b5e20", "#b71c1c"
# A model trained on thousands of CC-BY recordings owes thousands of credits on every cue: each
# cue block shows the first few, Appendix A holds every one (and the CSV and JSON, all per cue).
OBLIGATIONS_SHOWN = 6
OK_BG, BAD_BG = "#e8f5e9", "#ffebee"


def _fonts() -> tuple[str, str, str]:
    """Register DejaVu Sans (regular, bold, mono) from matplotlib's data folder if present."""
    if "DejaVuSans" in pdfmetrics.getRegisteredFontNames():
        return "DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono"
    spec = importlib.util.find_spec("matplotlib")
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" if spec and spec.origin else None
    files = {"DejaVuSans": "DejaVuSans.ttf", "DejaVuSans-Bold": "DejaVuSans-Bold.ttf",
             "DejaVuSansMono": "DejaVuSansMono.ttf"}
    if folder is None or not all((folder / f).exists() for f in files.values()):
        return "Helvetica", "Helvetica-Bold", "Courier"
    for name, file in files.items():
        pdfmetrics.registerFont(TTFont(name, str(folder / file)))
    return "DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono"


def _text(value) -> str:
    return escape("" if value is None else str(value))


GRID_COLOUR, HEAD_BG = "#c8ccd2", "#eef0f3"


class _Layout:
    """Fonts, paragraph styles and the page width, with the few building blocks every part uses."""

    def __init__(self, page_width: float):
        self.regular, self.bold, self.mono = _fonts()
        base = getSampleStyleSheet()
        self.body = ParagraphStyle("body", parent=base["BodyText"], fontName=self.regular,
                                   fontSize=8.5, leading=10.5)
        self.small = ParagraphStyle("small", parent=self.body, fontSize=7.5, leading=9)
        # wordWrap CJK lets hashes and paths break anywhere instead of overflowing their cell.
        self.code = ParagraphStyle("code", parent=self.small, fontName=self.mono, fontSize=7,
                                   leading=8.5, wordWrap="CJK")
        self.h1 = ParagraphStyle("h1", parent=base["Title"], fontName=self.bold, fontSize=17,
                                 leading=21, alignment=0)
        self.h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=self.bold, fontSize=12.5,
                                 leading=15, spaceBefore=10, spaceAfter=4)
        self.h3 = ParagraphStyle("h3", parent=base["Heading3"], fontName=self.bold, fontSize=10,
                                 leading=12, spaceBefore=4, spaceAfter=2)
        self.page_width = page_width

    def status(self, text: str, ok: bool, size: float = 8.5) -> Paragraph:
        colour = OK_COLOUR if ok else BAD_COLOUR
        # The paragraph's leading must fit the badge's own size: at the body's leading a 16 pt
        # CLEARED had its descenders and bottom clipped by the banner cell.
        style = ParagraphStyle(f"status-{size:g}", parent=self.body, fontSize=size, leading=size * 1.25)
        return Paragraph(f'<font name="{self.bold}" color="{colour}" size="{size}">{_text(text)}</font>',
                         style)

    def head(self, text: str) -> Paragraph:
        return Paragraph(f'<font name="{self.bold}">{text}</font>', self.small)

    def facts(self, rows, widths=(48 * mm, None)) -> Table:
        data = [[self.head(_text(k)), v if not isinstance(v, str) else Paragraph(_text(v), self.small)]
                for k, v in rows]
        table = Table(data, colWidths=[widths[0], self.page_width - widths[0]])
        table.setStyle(TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor(GRID_COLOUR)),
            ("BACKGROUND", (0, 0), (0, -1), colors.HexColor(HEAD_BG)),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
        return table

    def bullet_list(self, items, *, limit: int | None = None) -> list:
        items = list(items)
        if not items:
            return [Paragraph("none", self.small)]
        shown = items if limit is None or len(items) <= limit else items[:limit - 1]
        out = [Paragraph("• " + _text(i), self.small) for i in shown]
        if len(shown) < len(items):
            out.append(Paragraph(f"<i>… and {len(items) - len(shown)} more: every credit is in "
                                 "Appendix A</i>", self.small))
        return out


def render(sheet, *, images: dict | None = None) -> bytes:
    """The PDF bytes.

    Args:
        sheet: the :class:`~soundscape.reports.cuesheet.CueSheet`.
        images: ``{cue_id: png bytes or None}``; drawn here when not given.
    """
    p = sheet.production
    if images is None:
        images = waveforms(sheet.cues)
    buffer = io.BytesIO()
    title = f"{p.title} {p.episode}" + (f" “{p.episode_title}”" if p.episode_title else "")
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=14 * mm, rightMargin=14 * mm,
                            topMargin=12 * mm, bottomMargin=14 * mm,
                            title=f"Music cue sheet: {title}", author=sheet.generator,
                            subject=f"clearance under {p.policy}")
    layout = _Layout(doc.width)

    def footer(canvas, document) -> None:
        canvas.saveState()
        canvas.setFont(layout.regular, 7)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(doc.leftMargin, 7 * mm,
                          f"Music cue sheet · {title} · {p.status} under {p.policy} · "
                          f"generated {sheet.generated}")
        canvas.drawRightString(doc.leftMargin + doc.width, 7 * mm, f"page {document.page}")
        canvas.restoreState()

    story = (_production(sheet, title, layout) + _cue_table(sheet, layout)
             + _cue_details(sheet, images, layout, doc.height) + _appendices(sheet, layout))
    # Image streams in binary rather than ASCII85: the pure-Python encoder was a sixth of the
    # time of a 200-cue report, and every PDF reader takes binary streams.
    saved = rl_config.useA85
    rl_config.useA85 = 0
    try:
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
    finally:
        rl_config.useA85 = saved
    return buffer.getvalue()


def _production(sheet, title: str, layout: _Layout) -> list:
    """The title, the CLEARED / NOT CLEARED banner and the production block."""
    p = sheet.production
    width = layout.page_width
    banner = Table([[layout.status(p.status, p.cleared, 16),
                     Paragraph(f"{p.cleared_count} of {p.cue_count} cues cleared under policy "
                               f"<b>{_text(p.policy)}</b>", layout.body)]],
                   colWidths=[60 * mm, width - 60 * mm])
    banner.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (0, 0), colors.HexColor(OK_BG if p.cleared else BAD_BG)),
        ("BOX", (0, 0), (0, 0), 1, colors.HexColor(OK_COLOUR if p.cleared else BAD_COLOUR)),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return [Paragraph(f"Music cue sheet: {_text(title)}", layout.h1), Spacer(1, 3 * mm), banner,
            Paragraph("Production", layout.h2), layout.facts([
                ("Programme title", p.title), ("Episode", p.episode),
                ("Episode title", p.episode_title), ("Air date", p.air_date),
                ("Territories", ", ".join(p.territories)), ("Production company", p.company),
                ("Publisher", p.publisher),
                ("Total music duration", f"{p.total_duration_text} ({p.total_duration:.1f} s)"),
                ("Number of cues", str(p.cue_count)), ("Frame rate", f"{p.frame_rate:g} fps"),
                ("Clearance policy", f"{p.policy}: {p.policy_description}")])]


def _cue_table(sheet, layout: _Layout) -> list:
    """One row per cue, as a cue sheet prints them."""
    head = ["#", "Cue", "Title", "Use", "In", "Out", "Dur.", "Composer / author", "Publisher", "Clearance"]
    small, code = layout.small, layout.code
    rows = [[layout.head(h) for h in head]]
    for c in sheet.cues:
        rows.append([Paragraph(str(c.sequence), small), Paragraph(_text(c.cue_id), small),
                     Paragraph(_text(c.title), small), Paragraph(_text(c.usage), small),
                     Paragraph(_text(c.timecode_in), code), Paragraph(_text(c.timecode_out), code),
                     Paragraph(_text(c.duration_text), small), Paragraph(_text(c.composer), small),
                     Paragraph(_text(c.publisher), small), layout.status(c.status, c.cleared, 7.5)])
    widths = [10 * mm, 18 * mm, 50 * mm, 10 * mm, 23 * mm, 23 * mm, 13 * mm, 54 * mm, 35 * mm]
    widths.append(layout.page_width - sum(widths))
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor(GRID_COLOUR)),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEAD_BG)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
    return [Paragraph("Cues", layout.h2), table, PageBreak()]


def _cue_details(sheet, images: dict, layout: _Layout, page_height: float) -> list:
    """A block per cue: its waveform and every fact behind its verdict."""
    p = sheet.production
    width = layout.page_width
    story: list = [Paragraph("Cue details", layout.h2)]
    for c in sheet.cues:
        block: list = [Paragraph(f"{c.sequence}. {_text(c.cue_id)} · {_text(c.title)} — "
                                 f'<font color="{OK_COLOUR if c.cleared else BAD_COLOUR}">'
                                 f"{_text(c.status)}</font>", layout.h3)]
        png = images.get(c.cue_id)
        if png:
            picture = width * 0.42
            block.append(Image(io.BytesIO(png), width=picture,
                               height=picture * HEIGHT_PX / WIDTH_PX, hAlign="LEFT"))
        else:
            block.append(Paragraph("<i>no waveform: the delivered file was not found</i>", layout.small))
        usage = f"{c.usage} ({c.usage_meaning})" if c.usage_meaning else c.usage
        # Rows paired up so that two cues fit on a landscape page.
        block.append(layout.facts([
            ("Usage · in / out · duration", f"{usage} · {c.timecode_in} / {c.timecode_out} · "
                                            f"{c.duration_text} ({c.duration:.2f} s)"),
            ("Composer / author · publisher", f"{c.composer} · {c.publisher}"),
            ("AI-generated", c.disclosure),
            ("Engine · model", f"{c.engine} {c.engine_version} · "
                               + (f"{c.model} (sha256 {c.model_sha256})" if c.model else "no model")),
            ("Lineage", c.lineage.text),
            ("Licenses", ", ".join(f"{lic} ×{n}" for lic, n in c.lineage.licenses.items()) or "none"),
            ("Clearance", layout.status(f"{c.status} under {p.policy}", c.cleared)),
            ("Reasons" if c.status == "NOT CLEARED" else "Notes", layout.bullet_list(c.reasons)),
            *([("Conditions (to settle)", layout.bullet_list(c.conditions))] if c.conditions else []),
            ("Obligations (credits)", layout.bullet_list(c.obligations, limit=OBLIGATIONS_SHOWN)),
            ("Ledger record · audio sha256",
             Paragraph(_text(f"{c.record_id} · {c.audio_sha256}"), layout.code)),
            ("File", Paragraph(_text(c.file), layout.code))]))
        # Measured once, then a conditional page break: the block never splits unless it is
        # taller than a page, and it is cheaper than KeepTogether's trial layouts.
        height = sum(f.wrap(width, page_height)[1] + f.getSpaceBefore() + f.getSpaceAfter()
                     for f in block)
        story.append(CondPageBreak(height))
        story += block
        story.append(Spacer(1, 3 * mm))
    return story


def _appendices(sheet, layout: _Layout) -> list:
    """A: every credit to give; B: each model and its training data; C: the ledger checkpoint."""
    width, small, code = layout.page_width, layout.small, layout.code
    story: list = [PageBreak(), Paragraph("Appendix A · Attributions to credit", layout.h2)]
    if sheet.attributions:
        rows = [[layout.head("Credit"), layout.head("Cues")]]
        rows += [[Paragraph(_text(a.line), small), Paragraph(_text(", ".join(a.cues)), small)]
                 for a in sheet.attributions]
        table = Table(rows, colWidths=[width * 0.7, width * 0.3], repeatRows=1)
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor(GRID_COLOUR)),
                                   ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEAD_BG)),
                                   ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        story.append(table)
    else:
        story.append(Paragraph("No attribution is required for this episode.", layout.body))

    story.append(Paragraph("Appendix B · Models and training data", layout.h2))
    for m in sheet.models:
        rows = [("Engine", m.engine)]
        if m.record_id or m.checkpoint_sha256:
            rows += [("Ledger record", m.record_id or ""),
                     ("Checkpoint sha256", Paragraph(_text(m.checkpoint_sha256), code)),
                     ("Model license", m.license or "none recorded"),
                     ("Base model", f"{m.base_model} ({m.base_model_license or 'no license recorded'})"
                      if m.base_model else "none (trained from scratch)"),
                     ("Lineage", "UNKNOWN: never cleared" if m.lineage_unknown else "recorded")]
        rows.append(("Training datasets", "; ".join(d.text for d in m.datasets) or "none"))
        if m.note:
            rows.append(("Note", m.note))
        rows.append(("Cues", ", ".join(m.cues)))
        story += [KeepTogether([Paragraph(_text(m.name), layout.h3), layout.facts(rows)])]

    cp = sheet.checkpoint
    story.append(Paragraph("Appendix C · Ledger checkpoint", layout.h2))
    story.append(layout.facts([
        ("Verification", layout.status(("VERIFIED: " if cp.verified else "NOT VERIFIED: ") + cp.message,
                                       cp.verified)),
        ("Tree size", str(cp.size) if cp.size is not None else ""),
        ("Root hash", Paragraph(_text(cp.root), code)),
        ("Signed at", cp.time or ""), ("Key id", Paragraph(_text(cp.key_id), code)),
        ("Signature", Paragraph(_text(cp.signature), code)),
        ("Ledger public key", Paragraph(_text(cp.public_key_pem).replace("\n", "<br/>"), code))]))
    return story
