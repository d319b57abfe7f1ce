"""The weekly report's figures, read from the rollups (`site_energy`) and the rules'
findings (`finding`) with sums in InfluxQL: nothing the rollups already hold is
recomputed here. All statements go to InfluxDB in one request.

A week is an ISO week (Monday to Monday) in the report's time zone; it is compared with
the week before and with the same ISO week a year earlier, where data exists."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Sequence
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from greenwatch.core.config import SiteSettings
from greenwatch.core.schema import FINDING, SITE_ENERGY
from greenwatch.core.yamlfile import InputError

from .commitment import after_hours_share, commitment_progress
from .config import CommitmentConfig

TOP_OPPORTUNITIES = 10
# Findings are re-written while open (docs/rules.md), so one this old that never
# resolved would have been re-written since: the same window the rules engine reads.
FINDINGS_LOOKBACK = dt.timedelta(days=400)
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class QueryClient(Protocol):
    async def query(self, q: str, db: str | None = None, epoch: str | None = None) -> dict[str, Any]: ...


class HasSites(Protocol):
    """What the report needs of the config (greenwatch.config.Config has it)."""

    sites: Sequence[SiteSettings]
    commitment: CommitmentConfig | None


class CountingClient:
    """Passes queries on and counts them: HTTP requests and InfluxQL statements."""

    def __init__(self, client: QueryClient) -> None:
        self.client, self.requests, self.statements = client, 0, 0

    async def query(self, q: str, db: str | None = None, epoch: str | None = None) -> dict[str, Any]:
        self.requests += 1
        self.statements += len([part for part in q.split(";") if part.strip()])
        return await self.client.query(q, db=db, epoch=epoch)


@dataclass(frozen=True)
class Week:
    """An ISO week in a time zone, and its UTC bounds."""

    year: int
    week: int
    zone: str = "Europe/London"

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def start(self) -> dt.datetime:
        day = dt.date.fromisocalendar(self.year, self.week, 1)
        return dt.datetime.combine(day, dt.time(), ZoneInfo(self.zone)).astimezone(dt.timezone.utc)

    @property
    def end(self) -> dt.datetime:
        return self.shifted(1).start

    def shifted(self, weeks: int) -> Week:
        day = dt.date.fromisocalendar(self.year, self.week, 1) + dt.timedelta(weeks=weeks)
        year, week, _ = day.isocalendar()
        return Week(year, week, self.zone)

    def a_year_before(self) -> Week:
        # A year has 52 or 53 ISO weeks: week 53 compares with the previous year's 52.
        last_week = dt.date(self.year - 1, 12, 28).isocalendar()[1]
        return Week(self.year - 1, min(self.week, last_week), self.zone)


def parse_week(text: str, zone: str = "Europe/London") -> Week:
    """'2026-W47' -> Week; anything else is bad input naming the option."""
    match = _WEEK.match(text.strip())
    if match:
        try:
            dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
            return Week(int(match[1]), int(match[2]), zone)
        except ValueError:
            pass
    raise InputError([f"--week: expected an ISO week such as 2026-W47 (weeks 01-52, or 53 in long years), "
                      f"got {text!r}"])


def last_complete_week(now: dt.datetime, zone: str = "Europe/London") -> Week:
    """The latest ISO week that has ended by `now` (in `zone`)."""
    year, week, _ = (now.astimezone(ZoneInfo(zone)).date() - dt.timedelta(weeks=1)).isocalendar()
    return Week(year, week, zone)


@dataclass
class Period:
    """One site's (or the total's) sums over one week, as `site_energy` holds them."""

    kwh: float | None = None
    it_kwh: float | None = None
    cost: float | None = None
    kgco2e: float | None = None
    hours: int = 0  # hours with a rollup point

    @property
    def tco2e(self) -> float | None:
        return None if self.kgco2e is None else self.kgco2e / 1000.0

    @property
    def pue(self) -> float | None:
        return self.kwh / self.it_kwh if self.kwh is not None and self.it_kwh else None


@dataclass
class SiteWeek:
    name: str
    currency: str
    pue_category: int | None
    week: Period
    previous: Period
    last_year: Period
    carbon_method: str = ""
    coverage: float = 0.0  # sum of the hours' coverage / hours in the week
    daily_kwh: list[tuple[dt.date, float]] = field(default_factory=list)
    after_hours_share: float | None = None

    def change(self, other: Period, attr: str = "kwh") -> float | None:
        """Relative change of this week on `other` (0.05 = 5% more), where both have data."""
        now, then = getattr(self.week, attr), getattr(other, attr)
        return (now - then) / then if now is not None and then else None


@dataclass
class Opportunity:
    id: str
    rule: str
    site: str
    device: str
    entity: str
    severity: str
    state: str
    opened_at: str
    summary: str
    kwh_per_year: float
    cost_per_year: float
    currency: str
    kgco2e_per_year: float


@dataclass
class WeeklyFigures:
    week: Week
    sites: list[SiteWeek]
    findings: list[Opportunity]  # open at the week's end, biggest kWh/yr first
    queries: int = 0  # InfluxQL statements issued
    requests: int = 0  # HTTP requests to InfluxDB
    commitment: dict[str, Any] | None = None  # the commitment's progress table (header, rows, note)

    @property
    def top(self) -> list[Opportunity]:
        return self.findings[:TOP_OPPORTUNITIES]

    def only(self, names: list[str]) -> WeeklyFigures:
        """The same week for some of the sites (a recipient group's report)."""
        keep = set(names)
        return WeeklyFigures(self.week, [s for s in self.sites if s.name in keep],
                             [o for o in self.findings if o.site in keep], self.queries, self.requests,
                             self.commitment)

    def total(self, which: str) -> Period:
        """The sites' sums of one period ('week', 'previous', 'last_year'). PUE covers
        only the sites that meter IT energy: their facility kWh over their IT kWh."""
        periods = [getattr(s, which) for s in self.sites]
        with_it = [p for p in periods if p.it_kwh]
        return Period(kwh=_add(p.kwh for p in periods), it_kwh=_add(p.it_kwh for p in with_it),
                      cost=None, kgco2e=_add(p.kgco2e for p in periods), hours=max((p.hours for p in periods), default=0))

    def total_pue(self, which: str = "week") -> float | None:
        with_it = [getattr(s, which) for s in self.sites if getattr(s, which).it_kwh]
        kwh, it_kwh = _add(p.kwh for p in with_it), _add(p.it_kwh for p in with_it)
        return kwh / it_kwh if kwh is not None and it_kwh else None

    def total_cost(self, which: str = "week") -> dict[str, float]:
        """Cost per currency: sites may be priced in different ones."""
        cost: dict[str, float] = defaultdict(float)
        for s in self.sites:
            value = getattr(s, which).cost
            if value is not None:
                cost[s.currency] += value
        return dict(cost)

    def total_change(self, other: str, attr: str = "kwh") -> float | None:
        now, then = getattr(self.total("week"), attr), getattr(self.total(other), attr)
        return (now - then) / then if now is not None and then else None

    def pue_categories(self) -> list[int]:
        return sorted({s.pue_category for s in self.sites if s.pue_category is not None and s.week.it_kwh})


def _add(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _span(start: dt.datetime, end: dt.datetime) -> str:
    return f"time >= {int(start.timestamp())}s AND time < {int(end.timestamp())}s"


def statements(week: Week, site_names: list[str]) -> list[str]:
    """The InfluxQL the report issues, in order (see `read_weekly`)."""
    only = "(" + " OR ".join(f'"site" = {_quote(n)}' for n in site_names) + ")"
    sums = ("SELECT sum(kwh) AS kwh, sum(it_kwh) AS it_kwh, sum(cost) AS cost, sum(kgco2e) AS kgco2e, "
            "sum(coverage) AS coverage, count(kwh) AS hours")
    periods = (week, week.shifted(-1), week.a_year_before())
    return [
        *(f"{sums} FROM {SITE_ENERGY} WHERE {_span(p.start, p.end)} AND {only} GROUP BY site, pue_category"
          for p in periods),
        f"SELECT distinct(carbon_method) FROM {SITE_ENERGY} WHERE {_span(week.start, week.end)} AND {only} GROUP BY site",
        # Days in the report's zone, so Monday's bar is the local Monday.
        f"SELECT sum(kwh) FROM {SITE_ENERGY} WHERE {_span(week.start, week.end)} AND {only} "
        f"GROUP BY time(1d), site fill(0) tz({_quote(week.zone)})",
        # Each finding's latest point up to the week's end: open or resolved then.
        "SELECT last(open) AS open, last(id) AS id, last(state) AS state, last(opened_at) AS opened_at, "
        "last(summary) AS summary, last(kwh_per_year) AS kwh_per_year, last(cost_per_year) AS cost_per_year, "
        "last(currency) AS currency, last(kgco2e_per_year) AS kgco2e_per_year "
        # The end is included: an evaluation at the week's last instant (midnight) is its state then.
        f"FROM {FINDING} WHERE time >= {int((week.end - FINDINGS_LOOKBACK).timestamp())}s "
        f"AND time <= {int(week.end.timestamp())}s AND {only} "
        "GROUP BY rule, site, device, entity, severity",
    ]


def _series(result: dict[str, Any]) -> list[tuple[dict[str, str], list[dict[str, Any]]]]:
    out = []
    for entry in result.get("series", []):
        rows = [dict(zip(entry["columns"], values)) for values in entry["values"]]
        out.append((entry.get("tags") or {}, rows))
    return out


def _periods(result: dict[str, Any]) -> tuple[dict[str, Period], dict[str, float], dict[str, int]]:
    periods: dict[str, Period] = {}
    coverage: dict[str, float] = {}
    categories: dict[str, int] = {}
    for tags, rows in _series(result):
        row, site = rows[0], tags.get("site", "")
        # A site whose category changed within the week has one entry per category.
        p = periods.setdefault(site, Period())
        p.kwh = _add([p.kwh, row["kwh"]])
        p.it_kwh = _add([p.it_kwh, row["it_kwh"]])
        p.cost = _add([p.cost, row["cost"]])
        p.kgco2e = _add([p.kgco2e, row["kgco2e"]])
        p.hours += int(row["hours"] or 0)
        coverage[site] = coverage.get(site, 0.0) + (row["coverage"] or 0.0)
        if tags.get("pue_category"):
            categories[site] = int(tags["pue_category"])
    return periods, coverage, categories


async def read_weekly(client: QueryClient, sites: list[SiteSettings], week: Week) -> WeeklyFigures:
    """Every figure of the report but the commitment's, in one request to InfluxDB."""
    names = [s.name for s in sites]
    if not names:
        return WeeklyFigures(week, [], [])
    sql = statements(week, names)
    answer = await client.query(";".join(sql), epoch="s")
    results = answer.get("results", [])
    (now, coverage, categories), (prev, _, _), (year_ago, _, _) = (_periods(results[i]) for i in range(3))
    hours = (week.end - week.start).total_seconds() / 3600
    out: list[SiteWeek] = []
    for s in sites:
        out.append(SiteWeek(
            name=s.name, currency=s.tariff.currency,
            # The category the rollup recorded; the config's where the week has none.
            pue_category=categories.get(s.name, s.energy.category),
            week=now.get(s.name, Period()), previous=prev.get(s.name, Period()),
            last_year=year_ago.get(s.name, Period()), coverage=coverage.get(s.name, 0.0) / hours))
    by_name = {s.name: s for s in out}
    for tags, rows in _series(results[3]):
        if tags.get("site") in by_name:
            by_name[tags["site"]].carbon_method = "+".join(sorted({r["distinct"] for r in rows if r["distinct"]}))
    for tags, rows in _series(results[4]):
        if tags.get("site") in by_name:
            zone = ZoneInfo(week.zone)
            by_name[tags["site"]].daily_kwh = [
                (dt.datetime.fromtimestamp(r["time"], zone).date(), r["sum"] or 0.0) for r in rows]
    return WeeklyFigures(week, out, _findings(results[5]), queries=len(sql))


async def read_report(client: QueryClient, config: HasSites, week: Week) -> WeeklyFigures:
    """The whole report's figures: the rollups' sums and findings (one request), each
    site's after-hours share and the commitment's progress (reports/commitment.py)."""
    counting = CountingClient(client)
    sites = list(config.sites)
    figures = await read_weekly(counting, sites, week)
    shares = await asyncio.gather(*(after_hours_share(config, counting, s.name, week.start, week.end) for s in sites))
    for site, share in zip(figures.sites, shares):
        site.after_hours_share = share
    if config.commitment is not None:
        progress = await commitment_progress(config, counting, week.end)
        figures.commitment = {"name": progress.name, **progress.as_table()}
    figures.queries, figures.requests = counting.statements, counting.requests
    return figures


def _findings(result: dict[str, Any]) -> list[Opportunity]:
    seen: dict[str, Opportunity] = {}
    for tags, rows in _series(result):
        row = rows[0]
        if row["open"] != 1:
            continue
        fid = row["id"] or f"{tags.get('rule')}:{tags.get('site')}/{tags.get('device')}"
        # A finding whose severity changed shows under both tags; either copy is current.
        seen.setdefault(fid, Opportunity(
            id=fid, rule=tags.get("rule", ""), site=tags.get("site", ""), device=tags.get("device", ""),
            entity=tags.get("entity", ""), severity=tags.get("severity", ""), state=row["state"] or "",
            opened_at=row["opened_at"] or "", summary=row["summary"] or "",
            kwh_per_year=row["kwh_per_year"] or 0.0, cost_per_year=row["cost_per_year"] or 0.0,
            currency=row["currency"] or "", kgco2e_per_year=row["kgco2e_per_year"] or 0.0))
    # Biggest energy first: kWh compares across sites priced in different currencies.
    return sorted(seen.values(), key=lambda o: (-o.kwh_per_year, o.id))
