"""The report's charts as PNG bytes. The same PNGs go inline in the email (content-id
images), beside the HTML on disk and into the PDF.

matplotlib's object API (Figure, no pyplot): no global state and no display, so the
service can draw in a worker thread while its event loop keeps polling."""

from __future__ import annotations

import io

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .weekly import WeeklyFigures

GREEN = ["#1b7f3b", "#5aa469", "#9ccc65", "#2e86ab", "#f4a259", "#8c564b", "#7f7f7f"]
DPI = 110


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")  # Agg, the default canvas
    return buf.getvalue()


def _legend_below(ax: Axes, entries: int) -> None:
    # Below the plot, never over the bars.
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(4, entries))


def daily_kwh(figures: WeeklyFigures) -> bytes:
    """kWh per local day, one stacked bar per day, a colour per site."""
    fig = Figure(figsize=(6.4, 2.8))
    ax = fig.subplots()
    days = sorted({d for s in figures.sites for d, _ in s.daily_kwh})
    bottom = [0.0] * len(days)
    for i, site in enumerate(figures.sites):
        by_day = dict(site.daily_kwh)
        values = [by_day.get(d, 0.0) for d in days]
        ax.bar(range(len(days)), values, bottom=bottom, label=site.name, color=GREEN[i % len(GREEN)])
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(days)), [d.strftime("%a %d") for d in days])
    ax.set_ylabel("kWh")
    ax.set_title(f"Energy per day, {figures.week.label}", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    if figures.sites:
        _legend_below(ax, len(figures.sites))
    return _png(fig)


def week_on_week(figures: WeeklyFigures) -> bytes:
    """kWh per site: this week against the week before and the same week last year."""
    fig = Figure(figsize=(6.4, 2.8))
    ax = fig.subplots()
    names = [s.name for s in figures.sites]
    width = 0.27
    series = [("same week last year", "last_year", "#c7c7c7"), ("previous week", "previous", "#9ccc65"),
              (figures.week.label, "week", "#1b7f3b")]
    for j, (label, attr, colour) in enumerate(series):
        values = [getattr(s, attr).kwh or 0.0 for s in figures.sites]
        ax.bar([i + (j - 1) * width for i in range(len(names))], values, width, label=label, color=colour)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("kWh")
    ax.set_title("kWh per site, week on week and year on year", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    _legend_below(ax, len(series))
    return _png(fig)


def charts(figures: WeeklyFigures) -> dict[str, bytes]:
    """Name -> PNG; names are also the images' content ids and file names."""
    return {"daily-kwh": daily_kwh(figures), "week-on-week": week_on_week(figures)}
