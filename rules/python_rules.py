"""Rules YAML cannot express, registered under the `greenwatch.rules` entry point group
(pyproject.toml). Each correlates two series or compares two calendar windows; the
engine does the lifecycle and the money and carbon arithmetic, as for YAML rules.
Each has its test beside the YAML pack (rules/pack/ID.test.yaml).
"""

from __future__ import annotations

import datetime as dt

from .engine import (
    POWER_PREFERENCE,
    Candidate,
    Context,
    eval_range,
    latest_stretch,
    range_filter,
    tag_filter,
)

DAY = 86400
WEEK = 7 * DAY


async def _hourly_device_watts(ctx: Context, kinds: list[str], start: int, end: int) -> dict[tuple[str, str], dict[int, float]]:
    """Per (site, device), hourly mean watts from the device's own total scope (never
    summing across scopes: device, inlet, phase or psu, in that preference)."""
    where = " AND ".join([range_filter(start, end), tag_filter("kind", kinds),
                          tag_filter("scope", list(POWER_PREFERENCE[:-1]))])
    # Entities are added up here rather than in an InfluxQL subquery: the subquery
    # costs influxd more than the few rows per device-hour cost Python.
    q = (f'SELECT mean("watts") AS value FROM "power" WHERE {where} '
         f'GROUP BY time(1h), "site", "device", "scope", "entity" fill(none)')
    by_scope: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for s in await ctx.series(q):
        key = (s.tags.get("site", ""), s.tags.get("device", ""))
        hours = by_scope.setdefault(key, {}).setdefault(s.tags.get("scope", ""), {})
        for t, r in s.rows.items():
            hours[t] = hours.get(t, 0.0) + r["value"]
    out = {}
    for key, scopes in by_scope.items():
        best = next((p for p in POWER_PREFERENCE if p in scopes), None)
        if best is not None:
            out[key] = scopes[best]
    return out


class ZombieServer:
    """A server whose CPU has idled for a week while it drew steady power: probably
    doing nothing useful (a 'zombie'). Saving: all of its power, all year."""

    id = "zombie-server"
    title = "Zombie server: idle CPU, steady power, for a week"
    description = (
        "Servers that run below 5% CPU every hour for a week while their power draw stays "
        "within 10% of its mean are likely comatose (Uptime Institute and Anthesis/Koomey "
        "surveys found roughly a quarter to a third of servers doing no useful work). "
        "Assumes the server can be decommissioned or consolidated: the saving is its whole "
        "mean draw over every hour of the year; cooling overhead is not added."
    )
    severity = "warning"
    window = "always"
    cpu_below = 5.0
    steady_within = 0.10
    for_s = float(WEEK)
    summary = "{device}: CPU {value:.1f}% on average for {hours:.0f} h at a steady {watts:.0f} W"

    async def candidates(self, ctx: Context, at: dt.datetime) -> list[Candidate]:
        start, end = eval_range(at, self.for_s + DAY, 3600)
        cpu_q = (f'SELECT mean("cpu_load_percent") AS value FROM "host" WHERE {range_filter(start, end)} '
                 f'GROUP BY time(1h), "site", "device" fill(none)')
        cpu = {(s.tags.get("site", ""), s.tags.get("device", "")): s.rows for s in await ctx.series(cpu_q)}
        if not cpu:
            return []
        power = await _hourly_device_watts(ctx, ["server", "host"], start, end)
        out = []
        for (site, device), rows in cpu.items():
            settings = ctx.settings(self, site, self.cpu_below, self.for_s)
            if not settings.enabled or settings.threshold is None:
                continue
            limit = settings.threshold
            buckets = ctx.window_buckets(site, start, end, 3600, settings.window)
            stretch = latest_stretch(rows, buckets, lambda v, limit=limit: v < limit)
            watts = power.get((site, device), {})
            drawn = [watts[t] for t in stretch if t in watts]
            # Every idle hour must have a power reading too: no guessing at the draw.
            if len(stretch) * 3600 < settings.for_s or len(drawn) < len(stretch):
                continue
            mean = sum(drawn) / len(drawn)
            if mean <= 0 or (max(drawn) - min(drawn)) / mean > self.steady_within:
                continue
            value = sum(rows[t]["value"] for t in stretch) / len(stretch)
            hours = len(stretch)
            out.append(Candidate(self.id, site, device, None, value, hours, mean, "always",
                                 summary=self.summary.replace("{watts:.0f}", f"{mean:.0f}")))
        return out


class FlatWeekendLoad:
    """A site whose servers draw as much at weekends as in working hours: no workload
    is scaled down or switched off when nobody works. Saving: a share of the weekend
    load (dev/test, batch and VDI capacity that could be powered down)."""

    id = "dc-flat-weekend-load"
    title = "Data-centre load is as high at weekends as in working hours"
    description = (
        "Compares a site's total server power (each server's own total scope) in weekend "
        "hours with its working-day business hours over the last week. A weekend mean of "
        "at least 95% of the business-hours mean says nothing is scaled down when nobody "
        "works. Assumes 20% of the weekend load (development, test, VDI and batch capacity) "
        "could be powered down at weekends; needs at least 24 weekend hours and 24 business "
        "hours of data."
    )
    severity = "info"
    window = "weekends"
    ratio_at_least = 0.95
    shed_share = 0.20
    summary = "{site}: weekend server load is {value:.0%} of working hours' ({hours:.0f} weekend h)"

    async def candidates(self, ctx: Context, at: dt.datetime) -> list[Candidate]:
        start, end = eval_range(at, WEEK, 3600)
        power = await _hourly_device_watts(ctx, ["server"], start, end)
        totals: dict[str, dict[int, float]] = {}
        for (site, _device), rows in power.items():
            site_rows = totals.setdefault(site, {})
            for t, w in rows.items():
                site_rows[t] = site_rows.get(t, 0.0) + w
        out = []
        for site, rows in totals.items():
            settings = ctx.settings(self, site, self.ratio_at_least, 0.0)
            if not settings.enabled or settings.threshold is None:
                continue
            weekend = [rows[t] for t in ctx.window_buckets(site, start, end, 3600, settings.window) if t in rows]
            business = [rows[t] for t in ctx.window_buckets(site, start, end, 3600, "business_hours") if t in rows]
            if len(weekend) < 24 or len(business) < 24:
                continue
            weekend_mean, business_mean = sum(weekend) / len(weekend), sum(business) / len(business)
            if business_mean <= 0:
                continue
            ratio = weekend_mean / business_mean
            if ratio < settings.threshold:
                continue
            out.append(Candidate(self.id, site, None, None, ratio, len(weekend), self.shed_share * weekend_mean,
                                 settings.window, summary=self.summary))
        return out
