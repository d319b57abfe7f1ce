"""A period's energy per site and in total, read from the hourly rollups with sum()
in InfluxQL (never from raw `power`): kWh, IT kWh, PUE = sum(kwh) / sum(it_kwh) with
its ISO/IEC 30134-2 category, cost, kgCO2e and the carbon method(s), coverage, and the
top consumers."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from greenwatch.core.config import SiteSettings
from greenwatch.core.schema import ENERGY, SITE_ENERGY, TOTAL_SCOPES

from .rollup import HOUR_S, QueryClient, floor_hour, quote_str

TOP = 5


@dataclass
class SiteReport:
    kwh: float | None = None
    it_kwh: float | None = None
    pue: float | None = None
    pue_category: int | None = None
    cost: float | None = None
    currency: str = ""
    kgco2e: float | None = None
    carbon_method: str = ""
    coverage: float = 0.0
    top: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    start: dt.datetime
    end: dt.datetime
    sites: dict[str, SiteReport]
    total: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(),
                "sites": {name: asdict(s) for name, s in self.sites.items()}, "total": self.total}


def _pue(kwh: float | None, it_kwh: float | None) -> float | None:
    return kwh / it_kwh if kwh is not None and it_kwh else None


async def read_report(client: QueryClient, sites: list[SiteSettings], start: dt.datetime, end: dt.datetime) -> Report:
    names = [s.name for s in sites]
    reports = {s.name: SiteReport(pue_category=s.energy.category, currency=s.tariff.currency) for s in sites}
    if not names:
        return Report(start, end, {}, _total(reports))
    # Rollup points sit at the start of their UTC hour: a period from 10:30 counts the
    # 10:00 hour only if it starts there; so the period is taken in whole hours.
    first, last = floor_hour(start), floor_hour(end)
    if end > last:
        last += dt.timedelta(hours=1)
    hours = max(1, int((last - first).total_seconds() // HOUR_S))
    span = f"time >= {int(first.timestamp())}s AND time < {int(last.timestamp())}s"
    only = "(" + " OR ".join(f'"site" = {quote_str(n)}' for n in names) + ")"
    answer = await client.query(
        f"SELECT sum(kwh) AS kwh, sum(it_kwh) AS it_kwh, sum(cost) AS cost, sum(kgco2e) AS kgco2e, "
        f"sum(coverage) AS coverage FROM {SITE_ENERGY} WHERE {span} AND {only} GROUP BY site;"
        f"SELECT distinct(carbon_method) FROM {SITE_ENERGY} WHERE {span} AND {only} GROUP BY site;"
        f"SELECT sum(kwh) FROM {ENERGY} WHERE {span} AND {only} GROUP BY site, device, scope",
        epoch="s",
    )
    results = answer.get("results", [])
    for entry in results[0].get("series", []):
        row = dict(zip(entry["columns"], entry["values"][0]))
        r = reports.get(entry["tags"]["site"])
        if r is not None:
            r.kwh, r.it_kwh, r.cost, r.kgco2e = row["kwh"], row["it_kwh"], row["cost"], row["kgco2e"]
            # An hour with no rollup counts as not covered at all.
            r.coverage = (row["coverage"] or 0.0) / hours
            r.pue = _pue(r.kwh, r.it_kwh)
    for entry in results[1].get("series", []):
        r = reports.get(entry["tags"]["site"])
        if r is not None:
            r.carbon_method = "+".join(sorted({v[1] for v in entry["values"] if v[1]}))
    by_device: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for entry in results[2].get("series", []):
        tags = entry["tags"]
        by_device[(tags["site"], tags["device"])][tags["scope"]] = entry["values"][0][1]
    for (site, device), scopes in by_device.items():
        scope = next((s for s in TOTAL_SCOPES if s in scopes), None)
        if scope is not None and site in reports:
            reports[site].top.append({"device": device, "scope": scope, "kwh": scopes[scope]})
    for r in reports.values():
        r.top = sorted(r.top, key=lambda t: -t["kwh"])[:TOP]
    return Report(start, end, reports, _total(reports))


def _total(reports: dict[str, SiteReport]) -> dict[str, Any]:
    def add(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    with_it = [r for r in reports.values() if r.it_kwh]
    cost: dict[str, float] = defaultdict(float)
    for r in reports.values():
        if r.cost is not None:
            cost[r.currency] += r.cost
    return {
        "kwh": add([r.kwh for r in reports.values()]),
        "it_kwh": add([r.it_kwh for r in with_it]),
        # PUE over the sites that meter IT: their facility energy over their IT energy.
        "pue": _pue(add([r.kwh for r in with_it]), add([r.it_kwh for r in with_it])),
        "cost": dict(cost),
        "kgco2e": add([r.kgco2e for r in reports.values()]),
        "coverage": sum(r.coverage for r in reports.values()) / len(reports) if reports else 0.0,
    }
