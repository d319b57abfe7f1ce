"""The report as a PDF (reportlab's platypus): the same headline, table, charts,
commitment and opportunities as the HTML, from the same formatted cells."""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .render import CHART_TITLES, commitment_view, headline, period_text, table_rows, top_rows
from .weekly import WeeklyFigures

GREEN = colors.HexColor("#1b7f3b")
GREY = colors.HexColor("#6b7a71")
_styles = getSampleStyleSheet()
H1 = ParagraphStyle("h1", parent=_styles["Title"], fontSize=16, textColor=GREEN, alignment=0, spaceAfter=2)
H2 = ParagraphStyle("h2", parent=_styles["Heading2"], fontSize=12, spaceBefore=8, spaceAfter=4)
BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontSize=8, leading=10)
NOTE = ParagraphStyle("note", parent=BODY, fontSize=7, textColor=GREY)
H2_NEXT = ParagraphStyle("h2next", parent=H2, keepWithNext=1)  # a heading never ends a page
BIG = ParagraphStyle("big", parent=BODY, fontName="Helvetica-Bold", fontSize=13, leading=16)
LABEL = ParagraphStyle("label", parent=NOTE, fontSize=6.5)
WIDTH = A4[0] - 30 * mm


def _table(rows: list[list[Any]], widths: list[float], bold_last: bool = False, text_cols: int = 1) -> Table:
    """A report table: the first `text_cols` columns text (left), the rest figures (right)."""
    table = Table(rows, colWidths=widths, repeatRows=1)
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 7.5),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
        ("LINEBELOW", (0, 0), (-1, 0), 1, GREEN),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#e3e8e4")),
        ("ALIGN", (text_cols, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    if bold_last:
        style += [("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 7.5),
                  ("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#f6f8f7"))]
    table.setStyle(TableStyle(style))
    return table


def _headline(f: WeeklyFigures) -> Table:
    cells = [[Paragraph(label.upper(), LABEL), Paragraph(value, BIG), Paragraph(note, NOTE)]
             for label, value, note in headline(f)]
    table = Table([cells], colWidths=[WIDTH / 4] * 4)
    table.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#eef6f0")),
                               ("LINEAFTER", (0, 0), (-2, -1), 3, colors.white),
                               ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 5),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return table


def _two_lines(main: str, sub: str) -> Paragraph:
    return Paragraph(f"{main}<br/><font size=6 color='#6b7a71'>{sub}</font>" if sub else main,
                     ParagraphStyle("cell", parent=BODY, alignment=2, fontSize=7.5))


def render_pdf(f: WeeklyFigures, images: dict[str, bytes]) -> bytes:
    story: list[Any] = [Paragraph(f"greenwatch weekly report: {f.week.label}", H1),
                        Paragraph(f"{period_text(f)} ({f.week.zone})", NOTE), Spacer(1, 4 * mm)]
    story.append(_headline(f))
    story.append(Paragraph("Energy, cost and carbon per site", H2))
    header = ["site", "kWh", "cost", "tCO2e", "PUE", "vs prev. week", "vs last year", "after hours", "coverage"]
    body = [[r["name"], r["kwh"], Paragraph(r["cost"], ParagraphStyle("c", parent=BODY, alignment=2, fontSize=7.5)),
             _two_lines(r["tco2e"], r["method"]), _two_lines(r["pue"], r["category"]),
             r["change_previous"], r["change_last_year"], r["after_hours"], r["coverage"]] for r in table_rows(f)]
    story.append(_table([header, *body], [w * WIDTH for w in (.16, .11, .15, .10, .10, .10, .10, .09, .09)],
                        bold_last=True))
    story.append(Paragraph("kWh: facility meters where declared, else the devices' own totals. tCO2e: kWh x each "
                           "hour's carbon factor (method under the figure). PUE = facility kWh / IT kWh over the week "
                           "(ISO/IEC 30134-2), comparable only within a category. Changes are in kWh. After hours: the share of "
                           "kWh outside the site's business hours, weekends and holidays.", NOTE))
    for name, title in CHART_TITLES.items():
        if name in images:
            img = Image(io.BytesIO(images[name]))
            scale = min(1.0, WIDTH / img.imageWidth) * 0.7
            img.drawWidth, img.drawHeight = img.imageWidth * scale, img.imageHeight * scale
            story += [Spacer(1, 3 * mm), img]
    commitment = commitment_view(f)
    section: list[Any] = [Paragraph("Commitment progress" + (f": {_escape(commitment['name'])}" if commitment else ""), H2)]
    if commitment:
        n = len(commitment["header"])
        # The first and last columns (target, status) are text and need the room.
        widths = [0.24 * WIDTH] + [0.52 * WIDTH / (n - 2)] * (n - 2) + [0.24 * WIDTH]
        right = ParagraphStyle("r", parent=BODY, alignment=2, fontSize=7.5)
        rows = [[Paragraph(_escape(str(c)), right if 0 < i else BODY) for i, c in enumerate(row)]
                for row in commitment["rows"]]
        bold = ParagraphStyle("h", parent=right, fontName="Helvetica-Bold")
        header = [Paragraph(_escape(h), bold if i else ParagraphStyle("hl", parent=BODY, fontName="Helvetica-Bold"))
                  for i, h in enumerate(commitment["header"])]
        section.append(_table([header, *rows], widths))
        if commitment.get("note"):
            section.append(Paragraph(_escape(commitment["note"]), NOTE))
    else:
        section.append(Paragraph("No commitment is configured (the commitment: section of the config).", BODY))
    story.append(KeepTogether(section))
    story.append(Paragraph(f"Top {len(f.top)} savings opportunities (of {len(f.findings)} open)", H2_NEXT))
    if f.top:
        rows = [["#", "what", "where", "kWh/yr", "money/yr", "tCO2e/yr"]]
        for i, o in enumerate(top_rows(f), 1):
            rows.append([str(i), Paragraph(f"{_escape(o['summary'])}<br/><font size=6 color='#6b7a71'>"
                                           f"{o['rule']} / {o['severity']} / open since {o['opened']}</font>", BODY),
                         Paragraph(_escape(o["where"]), BODY), o["kwh"], o["cost"], o["tco2e"]])
        story.append(_table(rows, [w * WIDTH for w in (.04, .46, .18, .10, .12, .10)], text_cols=3))
    else:
        story.append(Paragraph("No open findings at the end of the week.", BODY))
    story.append(Paragraph("Savings are the rules' estimates per year if acted on, biggest kWh first; every open "
                           "finding is in the CSV.", NOTE))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=12 * mm,
                            bottomMargin=12 * mm, title=f"greenwatch weekly report {f.week.label}", author="greenwatch")
    doc.build(story)
    return buf.getvalue()


def _escape(text: str) -> str:
    # Paragraph text is reportlab's mini-markup: a summary's "<" or "&" must stay text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
