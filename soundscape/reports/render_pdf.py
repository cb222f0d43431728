"""The cue sheet as a paginated PDF, laid out with reportlab (BSD licensed).

Same content as the HTML report: production block, cue table, one block per cue with its
waveform, then the appendices. Text is set in DejaVu Sans (shipped with matplotlib) when it
can be found, so accented and non-Latin titles print; otherwise in Helvetica.
"""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

OK_COLOUR, BAD_COLOUR = "#1b5e20", "#b71c1c"
# A model trained on thousands of CC-BY recordings owes thousands of credits on every cue: each
# cue block shows the first few, Appendix A holds every one (and the CSV and JSON, all per cue).
OBLIGATIONS_SHOWN = 6
OK_BG, BAD_BG = "#e8f5e9", "#ffebee"


def _fonts() -> tuple[str, str, str]:
    """Register DejaVu Sans (regular, bold, mono) from matplotlib's data folder if present."""
    import importlib.util

    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

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


def render(sheet, *, images: dict | None = None) -> bytes:
    """The PDF bytes.

    Args:
        sheet: the :class:`~soundscape.reports.cuesheet.CueSheet`.
        images: ``{cue_id: png bytes or None}``; drawn here when not given.
    """
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab import rl_config
    from reportlab.platypus import (CondPageBreak, Image, KeepTogether, PageBreak, Paragraph,
                                    SimpleDocTemplate, Spacer, Table, TableStyle)

    from soundscape.reports.plots import HEIGHT_PX, WIDTH_PX, waveforms

    regular, bold, mono = _fonts()
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=regular, fontSize=8.5, leading=10.5)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9)
    # wordWrap CJK lets hashes and paths break anywhere instead of overflowing their cell.
    code = ParagraphStyle("code", parent=small, fontName=mono, fontSize=7, leading=8.5,
                          wordWrap="CJK")
    h1 = ParagraphStyle("h1", parent=base["Title"], fontName=bold, fontSize=17, leading=21, alignment=0)
    h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=12.5, leading=15,
                        spaceBefore=10, spaceAfter=4)
    h3 = ParagraphStyle("h3", parent=base["Heading3"], fontName=bold, fontSize=10, leading=12,
                        spaceBefore=4, spaceAfter=2)
    p = sheet.production
    if images is None:
        images = waveforms(sheet.cues)

    def status(text: str, ok: bool, size: float = 8.5) -> Paragraph:
        colour = OK_COLOUR if ok else BAD_COLOUR
        return Paragraph(f'<font name="{bold}" color="{colour}" size="{size}">{_text(text)}</font>', body)

    def facts(rows, widths=(48 * mm, None)) -> Table:
        data = [[Paragraph(f'<font name="{bold}">{_text(k)}</font>', small),
                 v if not isinstance(v, str) else Paragraph(_text(v), small)] for k, v in rows]
        table = Table(data, colWidths=[widths[0], page_width - widths[0]])
        table.setStyle(TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#c8ccd2")),
            ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#eef0f3")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
        return table

    def bullet_list(items, *, limit: int | None = None) -> list:
        items = list(items)
        if not items:
            return [Paragraph("none", small)]
        shown = items if limit is None or len(items) <= limit else items[:limit - 1]
        out = [Paragraph("• " + _text(i), small) for i in shown]
        if len(shown) < len(items):
            out.append(Paragraph(f"<i>… and {len(items) - len(shown)} more: every credit is in "
                                 "Appendix A</i>", small))
        return out

    buffer = io.BytesIO()
    title = f"{p.title} {p.episode}" + (f" “{p.episode_title}”" if p.episode_title else "")
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=14 * mm, rightMargin=14 * mm,
                            topMargin=12 * mm, bottomMargin=14 * mm,
                            title=f"Music cue sheet: {title}", author=sheet.generator,
                            subject=f"clearance under {p.policy}")
    page_width = doc.width

    def footer(canvas, document) -> None:
        canvas.saveState()
        canvas.setFont(regular, 7)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(doc.leftMargin, 7 * mm,
                          f"Music cue sheet · {title} · {p.status} under {p.policy} · "
                          f"generated {sheet.generated}")
        canvas.drawRightString(doc.leftMargin + doc.width, 7 * mm, f"page {document.page}")
        canvas.restoreState()

    story: list = [Paragraph(f"Music cue sheet: {_text(title)}", h1)]
    banner = Table([[status(p.status, p.cleared, 16),
                     Paragraph(f"{p.cleared_count} of {p.cue_count} cues cleared under policy "
                               f"<b>{_text(p.policy)}</b>", body)]],
                   colWidths=[60 * mm, page_width - 60 * mm])
    banner.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (0, 0), colors.HexColor(OK_BG if p.cleared else BAD_BG)),
        ("BOX", (0, 0), (0, 0), 1, colors.HexColor(OK_COLOUR if p.cleared else BAD_COLOUR)),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    story += [Spacer(1, 3 * mm), banner, Paragraph("Production", h2), facts([
        ("Programme title", p.title), ("Episode", p.episode), ("Episode title", p.episode_title),
        ("Air date", p.air_date), ("Territories", ", ".join(p.territories)),
        ("Production company", p.company), ("Publisher", p.publisher),
        ("Total music duration", f"{p.total_duration_text} ({p.total_duration:.1f} s)"),
        ("Number of cues", str(p.cue_count)), ("Frame rate", f"{p.frame_rate:g} fps"),
        ("Clearance policy", f"{p.policy}: {p.policy_description}")])]

    story.append(Paragraph("Cues", h2))
    head = ["#", "Cue", "Title", "Use", "In", "Out", "Dur.", "Composer / author", "Publisher", "Clearance"]
    rows = [[Paragraph(f'<font name="{bold}">{h}</font>', small) for h in head]]
    for c in sheet.cues:
        rows.append([Paragraph(str(c.sequence), small), Paragraph(_text(c.cue_id), small),
                     Paragraph(_text(c.title), small), Paragraph(_text(c.usage), small),
                     Paragraph(_text(c.timecode_in), code), Paragraph(_text(c.timecode_out), code),
                     Paragraph(_text(c.duration_text), small), Paragraph(_text(c.composer), small),
                     Paragraph(_text(c.publisher), small), status(c.status, c.cleared, 7.5)])
    widths = [10 * mm, 18 * mm, 50 * mm, 10 * mm, 23 * mm, 23 * mm, 13 * mm, 54 * mm, 35 * mm]
    widths.append(page_width - sum(widths))
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#c8ccd2")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef0f3")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
    story += [table, PageBreak(), Paragraph("Cue details", h2)]

    for c in sheet.cues:
        block: list = [Paragraph(f"{c.sequence}. {_text(c.cue_id)} · {_text(c.title)} — "
                                 f'<font color="{OK_COLOUR if c.cleared else BAD_COLOUR}">'
                                 f"{_text(c.status)}</font>", h3)]
        png = images.get(c.cue_id)
        if png:
            width = page_width * 0.42
            block.append(Image(io.BytesIO(png), width=width, height=width * HEIGHT_PX / WIDTH_PX,
                               hAlign="LEFT"))
        else:
            block.append(Paragraph("<i>no waveform: the delivered file was not found</i>", small))
        usage = f"{c.usage} ({c.usage_meaning})" if c.usage_meaning else c.usage
        # Rows paired up so that two cues fit on a landscape page.
        block.append(facts([
            ("Usage · in / out · duration", f"{usage} · {c.timecode_in} / {c.timecode_out} · "
                                            f"{c.duration_text} ({c.duration:.2f} s)"),
            ("Composer / author · publisher", f"{c.composer} · {c.publisher}"),
            ("AI-generated", c.disclosure),
            ("Engine · model", f"{c.engine} {c.engine_version} · "
                               + (f"{c.model} (sha256 {c.model_sha256})" if c.model else "no model")),
            ("Lineage", c.lineage.text),
            ("Licenses", ", ".join(f"{lic} ×{n}" for lic, n in c.lineage.licenses.items()) or "none"),
            ("Clearance", status(f"{c.status} under {p.policy}", c.cleared)),
            ("Reasons" if not c.cleared else "Notes", bullet_list(c.reasons)),
            ("Obligations (credits)", bullet_list(c.obligations, limit=OBLIGATIONS_SHOWN)),
            ("Ledger record · audio sha256", Paragraph(_text(f"{c.record_id} · {c.audio_sha256}"), code)),
            ("File", Paragraph(_text(c.file), code))]))
        # Measured once, then a conditional page break: the block never splits unless it is
        # taller than a page, and it is cheaper than KeepTogether's trial layouts.
        height = sum(f.wrap(page_width, doc.height)[1] + f.getSpaceBefore() + f.getSpaceAfter()
                     for f in block)
        story.append(CondPageBreak(height))
        story += block
        story.append(Spacer(1, 3 * mm))

    story += [PageBreak(), Paragraph("Appendix A · Attributions to credit", h2)]
    if sheet.attributions:
        rows = [[Paragraph(f'<font name="{bold}">Credit</font>', small),
                 Paragraph(f'<font name="{bold}">Cues</font>', small)]]
        rows += [[Paragraph(_text(a.line), small), Paragraph(_text(", ".join(a.cues)), small)]
                 for a in sheet.attributions]
        table = Table(rows, colWidths=[page_width * 0.7, page_width * 0.3], repeatRows=1)
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#c8ccd2")),
                                   ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef0f3")),
                                   ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        story.append(table)
    else:
        story.append(Paragraph("No attribution is required for this episode.", body))

    story.append(Paragraph("Appendix B · Models and training data", h2))
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
        story += [KeepTogether([Paragraph(_text(m.name), h3), facts(rows)])]

    cp = sheet.checkpoint
    story.append(Paragraph("Appendix C · Ledger checkpoint", h2))
    story.append(facts([
        ("Verification", status(("VERIFIED: " if cp.verified else "NOT VERIFIED: ") + cp.message,
                                cp.verified)),
        ("Tree size", str(cp.size) if cp.size is not None else ""),
        ("Root hash", Paragraph(_text(cp.root), code)),
        ("Signed at", cp.time or ""), ("Key id", Paragraph(_text(cp.key_id), code)),
        ("Signature", Paragraph(_text(cp.signature), code)),
        ("Ledger public key", Paragraph(_text(cp.public_key_pem).replace("\n", "<br/>"), code))]))
    # Image streams in binary rather than ASCII85: the pure-Python encoder was a sixth of the
    # time of a 200-cue report, and every PDF reader takes binary streams.
    saved = rl_config.useA85
    rl_config.useA85 = 0
    try:
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
    finally:
        rl_config.useA85 = saved
    return buffer.getvalue()
