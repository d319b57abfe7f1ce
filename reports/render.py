"""The weekly report rendered: HTML (for mail clients: inline styles, tables, no
scripts), the same as PDF (reportlab), the findings as CSV, and the charts as PNGs.
Both HTML and PDF show the same formatted cells (`table_rows`), so they cannot disagree.

The PDF is drawn with reportlab: pure PyPI wheels, no browser or system libraries in
the service's image (weasyprint needs Pango; chromium's --print-to-pdf a browser)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from .charts import charts
from .weekly import Opportunity, Period, SiteWeek, WeeklyFigures

CHART_TITLES = {"daily-kwh": "Energy per day by site", "week-on-week": "kWh per site, week on week and year on year"}
NA = "n/a"

_env = jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=False)


def fmt(value: float | None, pattern: str, unit: str = "") -> str:
    return NA if value is None else format(value, pattern) + unit


def fmt_change(value: float | None) -> str:
    if value is None:
        return NA
    # A change that rounds to nothing is shown as nothing, not as "-0.0%".
    return "0.0%" if abs(value) < 0.0005 else format(value, "+.1%")


def fmt_cost(costs: dict[str, float]) -> str:
    return " + ".join(f"{v:,.2f} {c}" for c, v in sorted(costs.items())) or NA


def _category(pue: float | None, category: int | None) -> str:
    return f"category {category}" if pue is not None and category is not None else ""


def _site_row(s: SiteWeek) -> dict[str, Any]:
    return {"key": s.name, "name": s.name, "total": False, "kwh": fmt(s.week.kwh, ",.1f"),
            "cost": fmt_cost({s.currency: s.week.cost} if s.week.cost is not None else {}),
            "tco2e": fmt(s.week.tco2e, ",.3f"), "method": s.carbon_method,
            "pue": fmt(s.week.pue, ".2f"), "category": _category(s.week.pue, s.pue_category),
            "change_previous": fmt_change(s.change(s.previous)), "change_last_year": fmt_change(s.change(s.last_year)),
            "after_hours": fmt(s.after_hours_share, ".1%"), "coverage": fmt(s.coverage, ".1%")}


def _after_hours_total(f: WeeklyFigures) -> float | None:
    # Weighted by each site's kWh: the share of all energy used out of hours.
    known = [(s.after_hours_share, s.week.kwh) for s in f.sites if s.after_hours_share is not None and s.week.kwh]
    total = sum(k for _, k in known)
    return sum(share * k for share, k in known) / total if total else None


def table_rows(f: WeeklyFigures) -> list[dict[str, Any]]:
    """One formatted row per site and the total's, as both HTML and PDF show them."""
    rows = [_site_row(s) for s in f.sites]
    total: Period = f.total("week")
    categories = f.pue_categories()
    rows.append({"key": "total", "name": "Total", "total": True, "kwh": fmt(total.kwh, ",.1f"),
                 "cost": fmt_cost(f.total_cost()), "tco2e": fmt(total.tco2e, ",.3f"),
                 "method": "+".join(sorted({m for s in f.sites for m in s.carbon_method.split("+") if m})),
                 "pue": fmt(f.total_pue(), ".2f"),
                 # Sites of different categories do not make one comparable PUE: say so.
                 "category": ("category " + "/".join(map(str, categories))) if f.total_pue() is not None else "",
                 "change_previous": fmt_change(f.total_change("previous")),
                 "change_last_year": fmt_change(f.total_change("last_year")),
                 "after_hours": fmt(_after_hours_total(f), ".1%"),
                 "coverage": fmt(sum(s.coverage for s in f.sites) / len(f.sites) if f.sites else None, ".1%")})
    return rows


def _where(o: Opportunity) -> str:
    return "/".join(p for p in (o.site, o.device, o.entity) if p)


def top_rows(f: WeeklyFigures) -> list[dict[str, str]]:
    return [{"summary": o.summary, "rule": o.rule, "severity": o.severity, "opened": o.opened_at[:10],
             "where": _where(o), "kwh": fmt(o.kwh_per_year, ",.0f"),
             "cost": f"{o.cost_per_year:,.0f} {o.currency}".strip(), "tco2e": fmt(o.kgco2e_per_year / 1000, ",.3f")}
            for o in f.top]


def headline(f: WeeklyFigures) -> list[tuple[str, str, str]]:
    total = f.total("week")
    return [("energy", fmt(total.kwh, ",.0f", " kWh"), f"{fmt_change(f.total_change('previous'))} on last week"),
            ("cost", fmt_cost({c: round(v) for c, v in f.total_cost().items()}).replace(".00", ""), "at each site's tariff"),
            ("carbon", fmt(total.tco2e, ",.2f", " tCO2e"), f"{fmt_change(f.total_change('previous', 'kgco2e'))} on last week"),
            ("open savings", fmt(sum(o.kwh_per_year for o in f.findings), ",.0f", " kWh/yr"),
             f"{len(f.findings)} findings")]


def period_text(f: WeeklyFigures) -> str:
    first = dt.date.fromisocalendar(f.week.year, f.week.week, 1)
    return f"Monday {first:%d %B %Y} to Sunday {first + dt.timedelta(days=6):%d %B %Y}"


def commitment_view(f: WeeklyFigures) -> dict[str, Any] | None:
    """The commitment's progress table (name, header, rows, note), where configured."""
    return f.commitment


def render_html(f: WeeklyFigures, src: dict[str, str]) -> str:
    return _env.get_template("weekly.html.j2").render(
        f=f, src=src, period=period_text(f), headline=headline(f), rows=table_rows(f), top=top_rows(f),
        charts=list(CHART_TITLES.items()), commitment=commitment_view(f))


def render_text(f: WeeklyFigures) -> str:
    """The plain-text alternative, for clients that show no HTML."""
    lines = [f"greenwatch weekly report {f.week.label} ({period_text(f)}, {f.week.zone})", ""]
    for r in table_rows(f):
        lines.append(f"{r['name']}: {r['kwh']} kWh, {r['cost']}, {r['tco2e']} tCO2e ({r['method'] or NA}), "
                     f"PUE {r['pue']} {r['category']}, {r['change_previous']} on last week, "
                     f"{r['change_last_year']} on last year, after hours {r['after_hours']}")
    lines += ["", "Top savings opportunities (per year):"]
    for i, o in enumerate(top_rows(f), 1):
        lines.append(f"{i}. {o['summary']} [{o['where']}]: {o['kwh']} kWh, {o['cost']}, {o['tco2e']} tCO2e")
    lines += ["", "The full report is in the HTML part and the attached PDF; every open finding is in the CSV."]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("id", "rule", "site", "device", "entity", "severity", "state", "opened_at", "kwh_per_year",
               "cost_per_year", "currency", "kgco2e_per_year", "summary")


def findings_csv(f: WeeklyFigures) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for o in f.findings:
        writer.writerow([getattr(o, c) for c in CSV_COLUMNS])
    return buf.getvalue()


@dataclass
class Rendered:
    """Everything one report consists of, in memory; `save` keeps it on disk."""

    figures: WeeklyFigures
    name: str  # file stem, e.g. greenwatch-2026-W47
    html_cid: str  # for the email: images as cid:<name>
    html_files: str  # on disk: images as files beside it
    text: str
    pdf: bytes
    csv: str
    images: dict[str, bytes] = field(default_factory=dict)

    def image_file(self, chart: str) -> str:
        return f"{self.name}-{chart}.png"

    def save(self, out_dir: Path) -> Path:
        """Write HTML, PNGs, PDF and CSV to `out_dir`; returns the HTML's path."""
        out_dir.mkdir(parents=True, exist_ok=True)
        for chart, png in self.images.items():
            (out_dir / self.image_file(chart)).write_bytes(png)
        (out_dir / f"{self.name}.pdf").write_bytes(self.pdf)
        (out_dir / f"{self.name}-findings.csv").write_text(self.csv, encoding="utf-8")
        html = out_dir / f"{self.name}.html"
        html.write_text(self.html_files, encoding="utf-8")
        return html


def cid(chart: str) -> str:
    return f"{chart}@greenwatch"


def render(f: WeeklyFigures, name: str | None = None) -> Rendered:
    from .pdf import render_pdf  # reportlab is only loaded when a report is made

    name = name or f"greenwatch-{f.week.label}"
    images = charts(f)
    return Rendered(
        figures=f, name=name,
        html_cid=render_html(f, {c: f"cid:{cid(c)}" for c in images}),
        html_files=render_html(f, {c: f"{name}-{c}.png" for c in images}),
        text=render_text(f), pdf=render_pdf(f, images), csv=findings_csv(f), images=images)
