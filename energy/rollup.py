"""The hourly rollup: `power` readings -> `energy` (per series) and `site_energy`
(per site) points, one per UTC hour, written back to InfluxDB.

The heavy work runs in InfluxDB, one day at a time, as InfluxQL aggregates grouped by
hour and series: sum() and count() of the readings, and min of difference() in a
subquery (counter drops); beside them, the raw readings in a short window around each
hour boundary. For an hour polled on schedule (its count matches the span between its
first and last reading, see `on_schedule`) that is enough for the exact trapezoid rule:
evenly spaced readings integrate to spacing x (sum - (first + last) / 2), and the two
segments crossing the hour's edges are split by time from the boundary readings (the
same energy_in as the raw path). Counters are read at each boundary, interpolated.
Every other series-hour (a missed poll, readings off schedule, a gap longer than the
policy allows, a counter drop, the edge of the data) is pulled as raw points and
computed in Python (energy.integrate), the reference for the whole policy. integral()
is not used: in InfluxDB 1.6.7 it costs about 4x sum() and count() together.

Every point is keyed by measurement, tags and the hour: a rollup run twice writes the
same points again, so it is idempotent, and re-rolling recent hours picks up late data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from greenwatch.core.config import SiteSettings
from greenwatch.core.schema import (
    ENERGY,
    POWER,
    SITE_ENERGY,
    TOTAL_SCOPES,
    Sample,
    encode_lines,
)

from .integrate import Method, counter_at, energy_in
from .intensity import IntensitySource

log = logging.getLogger("greenwatch.energy")

HOUR_S = 3600
HOUR_MS = HOUR_S * 1000
# A gap up to max(5 minutes, 3 poll intervals) is bridged (docs/energy.md).
MIN_BRIDGE_S = 300.0
# Hours per round of queries: bounds memory (one day of hourly rows per series) while
# keeping the number of requests small.
CHUNK_HOURS = 24
CHUNKS_IN_FLIGHT = 2
# Statements per request for the raw-point queries.
STATEMENTS_PER_REQUEST = 100
# Boundary readings are fetched this many poll intervals either side of each hour
# boundary: an hour on schedule has its first and last reading within one interval of
# its edges (a quarter more for jitter). Each boundary is a statement of its own (InfluxQL
# has no OR of time ranges), which costs InfluxDB ~40 us per series even when empty; a
# wider window costs more in points and JSON (measured: 2.5 intervals, 1.25x the time).
BOUNDARY_INTERVALS = 1.25
# ... of the longest interval configured, but no wider than this: one device polled
# hourly must not make every boundary statement return an hour of every series. Hours
# of devices polled less often than every 5 minutes may then go the raw way (few points).
BOUNDARY_MAX_S = 375.0
# A day's 25 boundary statements go in 4 requests side by side (InfluxDB runs one
# request's statements in turn): 27 -> 20 s wall for the benchmark's week.
BOUNDARIES_PER_REQUEST = 7
WRITE_BATCH = 5000

SeriesKey = tuple[tuple[str, str], ...]


class QueryClient(Protocol):
    async def query(self, q: str, db: str | None = None, epoch: str | None = None) -> dict[str, Any]: ...

    async def write(self, lines: list[str]) -> None: ...


@dataclass(frozen=True)
class DeviceInfo:
    """What the rollup needs of a configured device."""

    interval_s: float
    fed_by: str | None = None


@dataclass
class SiteInput:
    settings: SiteSettings
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    default_interval_s: float = 60.0
    intensity: IntensitySource | None = None

    def interval_s(self, device: str) -> float:
        info = self.devices.get(device)
        return info.interval_s if info else self.default_interval_s

    def max_gap_s(self, device: str) -> float:
        return bridge_limit(self.interval_s(device))


def bridge_limit(interval_s: float) -> float:
    return max(MIN_BRIDGE_S, 3 * interval_s)


def on_schedule(count: int, first_s: float, last_s: float, interval_s: float) -> bool:
    """True when an hour's `count` readings, from `first_s` to `last_s`, are what a
    fixed schedule gives with no poll missed: the span is (count - 1) intervals, give or
    take half of one for jitter. With readings on the schedule's slots that means
    consecutive slots, so they are evenly spaced and no gap lies between them. More
    readings than the span holds (a second writer, a changed interval) or fewer (a
    missed poll, a long gap) send the hour to the raw-point path."""
    return count >= 1 and abs((last_s - first_s) - (count - 1) * interval_s) <= interval_s / 2


@dataclass
class RollupStats:
    hours: int = 0
    energy_points: int = 0
    site_points: int = 0
    slow_series_hours: int = 0
    fast_series_hours: int = 0


@dataclass
class HourStats:
    count: int = 0
    min_d: float | None = None
    sum: float | None = None


Reading = tuple[float, float]  # (time in seconds, value)


@dataclass
class Edge:
    """One series' readings nearest an hour boundary: the last before it and the first
    at or after it, of watts and of the counter."""

    watts_before: Reading | None = None
    watts_after: Reading | None = None
    counter_before: Reading | None = None
    counter_after: Reading | None = None


@dataclass
class SeriesResult:
    tags: dict[str, str]
    hour_ms: int
    kwh: float
    coverage: float
    method: Method


def floor_hour(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _rfc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _site_filter(sites: Iterable[str]) -> str:
    return "(" + " OR ".join(f'"site" = {quote_str(s)}' for s in sites) + ")"


def _key(tags: dict[str, str] | None) -> SeriesKey:
    return tuple(sorted((tags or {}).items()))


def _series(answer: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Per statement, its series (a statement with no rows gives [])."""
    return [result.get("series", []) for result in answer.get("results", [])]


def _rows(series: Iterable[dict[str, Any]]) -> Iterable[tuple[SeriesKey, dict[str, Any]]]:
    # An aggregate with GROUP BY time, * (integral() at least, FIELD-NOTES) can split one
    # series' rows over several entries: every row is keyed by its tags, so they merge.
    for entry in series:
        key = _key(entry.get("tags"))
        columns = entry["columns"]
        for values in entry["values"]:
            yield key, dict(zip(columns, values))


async def _query_many(client: QueryClient, statements: list[str]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for i in range(0, len(statements), STATEMENTS_PER_REQUEST):
        answer = await client.query(";".join(statements[i : i + STATEMENTS_PER_REQUEST]), epoch="ms")
        out.extend(_series(answer))
    return out


class Rollup:
    """Roll up the hours of [start, end) for the given sites."""

    def __init__(self, client: QueryClient, sites: list[SiteInput]) -> None:
        self.client = client
        self.sites = {s.settings.name: s for s in sites}
        self.stats = RollupStats()

    async def run(
        self, start: dt.datetime, end: dt.datetime, progress: Callable[[int, int], None] | None = None
    ) -> RollupStats:
        first, last = floor_hour(start), floor_hour(end)
        if end > last:
            last += dt.timedelta(hours=1)  # a partial hour at the end is rolled up whole
        total = int((last - first).total_seconds() // HOUR_S)
        chunks: list[tuple[int, int]] = []
        chunk_start = first
        while chunk_start < last and self.sites:
            chunk_end = min(chunk_start + dt.timedelta(hours=CHUNK_HOURS), last)
            chunks.append((int(chunk_start.timestamp() * 1000), int(chunk_end.timestamp() * 1000)))
            chunk_start = chunk_end
        # Two chunks in flight: while one waits for InfluxDB, the other is computed and
        # written, and InfluxDB has work for two cores.
        slots = asyncio.Semaphore(CHUNKS_IN_FLIGHT)

        async def one(c0: int, c1: int) -> None:
            async with slots:
                await self._chunk(c0, c1)
            self.stats.hours += (c1 - c0) // HOUR_MS
            if progress:
                progress(self.stats.hours, total)

        tasks = [asyncio.ensure_future(one(c0, c1)) for c0, c1 in chunks]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # One chunk failed (InfluxDB gone): stop the others before the caller
            # closes the client, or they would go on asking through a closed one.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return self.stats

    # -- one chunk of hours ---------------------------------------------------------

    async def _chunk(self, c0: int, c1: int) -> None:
        # One hour either side: the counter drops in the first reading after the chunk.
        q0, q1 = c0 - HOUR_MS, c1 + HOUR_MS
        where = f"time >= {q0}ms AND time < {q1}ms AND {_site_filter(self.sites)}"
        inner = f"time >= {q0}ms AND time < {q1}ms"
        statements = [
            (f"SELECT sum(watts), count(watts), count(energy_kwh) FROM {POWER} WHERE {where} "
             "GROUP BY time(1h), *"),
            (f"SELECT min(d) FROM (SELECT difference(energy_kwh) AS d FROM {POWER} "
             f"WHERE {where} GROUP BY *) WHERE {inner} GROUP BY time(1h), *"),
        ]
        # Each statement its own request: InfluxDB runs them side by side; the boundary
        # readings are asked for at the same time.
        edges, *answers = await asyncio.gather(self._boundary_readings(c0, c1),
                                               *(_query_many(self.client, [q]) for q in statements))
        watts: dict[SeriesKey, dict[int, HourStats]] = defaultdict(lambda: defaultdict(HourStats))
        counter: dict[SeriesKey, dict[int, HourStats]] = defaultdict(lambda: defaultdict(HourStats))
        # A split series' entries each carry some columns of a row and nulls for the
        # rest: only values are merged, never nulls over values.
        for key, row in _rows(answers[0][0]):
            _merge(watts[key][row["time"]], sum=row["sum"], count=row["count"])
            if row["count_1"]:
                _merge(counter[key][row["time"]], count=row["count_1"])
        for key, row in _rows(answers[1][0]):
            if key in counter:
                _merge(counter[key][row["time"]], min_d=row["min"])
        counter = {k: v for k, v in counter.items() if any(h.count for h in v.values())}

        results: list[SeriesResult] = []
        slow: list[tuple[SeriesKey, Method, list[int]]] = []
        for key, by_hour in list(counter.items()) + [(k, v) for k, v in watts.items() if k not in counter]:
            method: Method = "counter" if key in counter else "integral"
            tags = dict(key)
            site = self.sites.get(tags.get("site", ""))
            if site is None:
                continue
            device = tags.get("device", "")
            interval_s, gap_s = site.interval_s(device), site.max_gap_s(device)
            pending: list[int] = []
            for hour in range(c0, c1, HOUR_MS):
                h = by_hour.get(hour)
                if h is None or not h.count:
                    continue
                start, end = edges[hour].get(key, _NO_EDGE), edges[hour + HOUR_MS].get(key, _NO_EDGE)
                if method == "integral":
                    kwh = _integral_kwh(h, start, end, hour / 1000, interval_s, gap_s)
                else:
                    nxt = by_hour.get(hour + HOUR_MS)
                    kwh = _counter_kwh(h, nxt.min_d if nxt else None, start, end, hour / 1000, interval_s, gap_s)
                if kwh is None:
                    pending.append(hour)
                else:
                    self.stats.fast_series_hours += 1
                    results.append(SeriesResult(tags, hour, kwh, 1.0, method))
            if pending:
                slow.append((key, method, pending))
        results.extend(await self._slow(slow))
        await self._write(results)

    async def _boundary_readings(self, c0: int, c1: int) -> dict[int, dict[SeriesKey, Edge]]:
        """Per hour boundary of the chunk, each series' readings nearest it: raw points
        within BOUNDARY_INTERVALS of the longest poll interval (at most BOUNDARY_MAX_S),
        one statement per boundary (with real times, which GROUP BY time would replace)."""
        window_ms = int(1000 * min(BOUNDARY_MAX_S, BOUNDARY_INTERVALS * max(
            s.interval_s(d) for s in self.sites.values() for d in [*s.devices, ""])))
        sites = _site_filter(self.sites)

        async def some(boundaries: list[int]) -> dict[int, dict[SeriesKey, Edge]]:
            answers = await _query_many(self.client, [
                f"SELECT watts, energy_kwh FROM {POWER} WHERE time >= {b - window_ms}ms "
                f"AND time < {b + window_ms}ms AND {sites} GROUP BY *" for b in boundaries])
            return {b: _edges(b, series) for b, series in zip(boundaries, answers)}

        # A few requests side by side rather than one: InfluxDB runs a request's
        # statements one after another, and each answer is boiled down to Edges as it
        # arrives, so less JSON is held at once.
        boundaries = list(range(c0, c1 + 1, HOUR_MS))
        parts = await asyncio.gather(*(some(boundaries[i : i + BOUNDARIES_PER_REQUEST])
                                       for i in range(0, len(boundaries), BOUNDARIES_PER_REQUEST)))
        return {b: edges for part in parts for b, edges in part.items()}

    async def _slow(self, slow: list[tuple[SeriesKey, Method, list[int]]]) -> list[SeriesResult]:
        """Raw points for the series-hours the aggregates could not settle."""
        statements: list[str] = []
        plans: list[tuple[SeriesKey, Method, list[int], float]] = []
        for key, method, hours in slow:
            tags = dict(key)
            site = self.sites[tags["site"]]
            gap_ms = site.max_gap_s(tags.get("device", "")) * 1000
            fieldname = "energy_kwh" if method == "counter" else "watts"
            match = " AND ".join(f"{quote_ident(k)} = {quote_str(v)}" for k, v in key)
            for run in _runs(hours):
                lo, hi = run[0] - gap_ms, run[-1] + HOUR_MS + gap_ms
                statements.append(f"SELECT {fieldname} FROM {POWER} WHERE {match} AND "
                                  f"time >= {int(lo)}ms AND time <= {int(hi)}ms")
                plans.append((key, method, run, gap_ms))
        answers = await _query_many(self.client, statements) if statements else []
        results: list[SeriesResult] = []
        for (key, method, run, gap_ms), series in zip(plans, answers):
            points = sorted(
                (values[0] / 1000.0, float(values[1]))
                for entry in series for values in entry["values"] if values[1] is not None
            )
            for hour in run:
                kwh, covered = energy_in(points, method, hour / 1000, hour / 1000 + HOUR_S, gap_ms / 1000)
                self.stats.slow_series_hours += 1
                results.append(SeriesResult(dict(key), hour, kwh, min(1.0, covered / HOUR_S), method))
        return results

    # -- cost, carbon, site totals, writing --------------------------------------------

    def _price(self, site: SiteInput, hour_ms: int) -> tuple[float, float, str]:
        """(rate, kgCO2e per kWh, carbon method) for a site's hour."""
        settings = site.settings
        start = dt.datetime.fromtimestamp(hour_ms / 1000, dt.UTC)
        rate = settings.tariff.mean_rate(start, settings.zone)
        if settings.carbon.method == "intensity" and site.intensity is not None:
            factor = site.intensity.hour_factor(hour_ms // 1000)
            if factor is not None:
                return rate, factor, "intensity"
        factor, method = settings.carbon.fixed_factor(start.astimezone(settings.zone).year)
        return rate, factor, method

    async def _load_intensity(self, results: list[SeriesResult]) -> None:
        days: dict[str, set[dt.date]] = defaultdict(set)
        for r in results:
            days[r.tags.get("site", "")].add(dt.datetime.fromtimestamp(r.hour_ms / 1000, dt.UTC).date())
        for name, wanted in days.items():
            site = self.sites.get(name)
            if site and site.intensity is not None and site.settings.carbon.method == "intensity":
                await site.intensity.load(sorted(wanted))

    async def _write(self, results: list[SeriesResult]) -> None:
        await self._load_intensity(results)
        prices: dict[tuple[str, int], tuple[float, float, str]] = {}
        samples: list[Sample] = []
        by_site_hour: dict[tuple[str, int], list[SeriesResult]] = defaultdict(list)
        for r in results:
            name = r.tags.get("site", "")
            key = (name, r.hour_ms)
            if key not in prices:
                prices[key] = self._price(self.sites[name], r.hour_ms)
            rate, factor, carbon_method = prices[key]
            tags = {k: v for k, v in r.tags.items() if v != ""}
            samples.append(Sample(ENERGY, tags, {
                "kwh": r.kwh, "cost": r.kwh * rate, "kgco2e": r.kwh * factor, "coverage": r.coverage,
                "method": r.method, "carbon_method": carbon_method,
            }, r.hour_ms * 1_000_000))
            by_site_hour[key].append(r)
        self.stats.energy_points += len(samples)
        for (name, hour), rows in sorted(by_site_hour.items()):
            site = self.sites[name]
            sample = site_point(site, hour, rows, prices[(name, hour)])
            if sample is not None:
                samples.append(sample)
                self.stats.site_points += 1
        lines = encode_lines(samples)
        for i in range(0, len(lines), WRITE_BATCH):
            await self.client.write(lines[i : i + WRITE_BATCH])


def _merge(stats: HourStats, **values: Any) -> None:
    for name, value in values.items():
        if value is not None and (name != "count" or value):
            setattr(stats, name, value)


def _edges(b: int, series: list[dict[str, Any]]) -> dict[SeriesKey, Edge]:
    """Each series' readings nearest the boundary `b` (ms), from its raw points."""
    edges: dict[SeriesKey, Edge] = defaultdict(Edge)
    for key, row in _rows(series):  # rows come in time order
        edge, t = edges[key], row["time"] / 1000
        for name, value in (("watts", row["watts"]), ("counter", row["energy_kwh"])):
            if value is None:
                continue
            if row["time"] < b:
                setattr(edge, f"{name}_before", (t, float(value)))
            elif getattr(edge, f"{name}_after") is None:
                setattr(edge, f"{name}_after", (t, float(value)))
    return edges


_NO_EDGE = Edge()


def _integral_kwh(h: HourStats, start: Edge, end: Edge, hour_s: float, interval_s: float,
                  gap_s: float) -> float | None:
    """The hour's trapezoid-rule kWh from its sum and count and the readings at its
    edges, or None when the hour was not polled on schedule or a segment crossing an
    edge is longer than the bridging limit (the raw path then decides)."""
    first, last, before, after = start.watts_after, end.watts_before, start.watts_before, end.watts_after
    if h.sum is None or first is None or last is None or after is None or not hour_s <= first[0] <= last[0]:
        return None
    if not on_schedule(h.count, first[0], last[0], interval_s):
        return None
    spacing = (last[0] - first[0]) / (h.count - 1) if h.count > 1 else 0.0
    inside_wh = spacing * (h.sum - (first[1] + last[1]) / 2) / 3600
    # The segments crossing the hour's edges, split by time by the reference code;
    # each must be bridged over its whole part inside the hour.
    head_kwh, head_s = energy_in([before, first] if before else [], "integral", hour_s, hour_s + HOUR_S, gap_s)
    tail_kwh, tail_s = energy_in([last, after], "integral", hour_s, hour_s + HOUR_S, gap_s)
    if head_s != first[0] - hour_s or tail_s != hour_s + HOUR_S - last[0]:
        return None
    return inside_wh / 1000 + head_kwh + tail_kwh


def _counter_kwh(h: HourStats, next_min_d: float | None, start: Edge, end: Edge, hour_s: float,
                 interval_s: float, gap_s: float) -> float | None:
    """The counter's rise across the hour, interpolated at both edges, or None when
    the hour was not polled on schedule, a boundary cannot be bridged, or the counter
    dropped in the hour or at its end (the raw path then decides)."""
    first, last = start.counter_after, end.counter_before
    if first is None or last is None or not hour_s <= first[0] <= last[0]:
        return None
    if not on_schedule(h.count, first[0], last[0], interval_s) or (h.min_d or 0) < 0 or (next_min_d or 0) < 0:
        return None
    a = counter_at(start.counter_before, first, hour_s, gap_s)
    b = counter_at(last, end.counter_after, hour_s + HOUR_S, gap_s)
    if a is None or b is None or b < a:
        return None
    return b - a


def _runs(hours: list[int]) -> list[list[int]]:
    """Consecutive hours grouped: one raw query per run."""
    runs: list[list[int]] = []
    for hour in sorted(hours):
        if runs and hour - runs[-1][-1] == HOUR_MS:
            runs[-1].append(hour)
        else:
            runs.append([hour])
    return runs


def meter_rows(spec: str, rows: list[SeriesResult]) -> list[SeriesResult]:
    """The series a meter spec (device, device/scope, device/scope/entity) stands for
    in one hour: a bare device means its own total (device_rows)."""
    parts = spec.split("/")
    mine = [r for r in rows if r.tags.get("device") == parts[0]]
    if len(parts) == 1:
        return device_rows(mine)
    mine = [r for r in mine if r.tags.get("scope") == parts[1]]
    if len(parts) == 3:
        mine = [r for r in mine if r.tags.get("entity") == parts[2]]
    return mine


def device_rows(rows: list[SeriesResult]) -> list[SeriesResult]:
    """One device's total: the series of the first scope present in TOTAL_SCOPES
    (device, inlet, phase, psu), never output; the same rule as schema.device_watts."""
    for scope in TOTAL_SCOPES:
        chosen = [r for r in rows if r.tags.get("scope") == scope]
        if chosen:
            return chosen
    return []


def site_point(
    site: SiteInput, hour_ms: int, rows: list[SeriesResult], price: tuple[float, float, str]
) -> Sample | None:
    """The site's hour: facility meters where declared, else each device's own total
    once (devices fed through another configured device are left to their feeder)."""
    meters = site.settings.energy
    if meters.facility:
        counted = [r for spec in meters.facility for r in meter_rows(spec, rows)]
    else:
        by_device: dict[str, list[SeriesResult]] = defaultdict(list)
        for r in rows:
            by_device[r.tags.get("device", "")].append(r)
        counted = []
        for device, mine in by_device.items():
            info = site.devices.get(device)
            if info is not None and info.fed_by and info.fed_by.split("/")[0] in site.devices:
                continue
            counted.extend(device_rows(mine))
    it_rows = [r for spec in meters.it for r in meter_rows(spec, rows)]
    if not counted and not it_rows:
        return None
    rate, factor, carbon_method = price
    fields: dict[str, Any] = {}
    if counted:
        kwh = sum(r.kwh for r in counted)
        fields.update(kwh=kwh, cost=kwh * rate, kgco2e=kwh * factor,
                      coverage=sum(r.coverage for r in counted) / len(counted))
    if it_rows:
        fields["it_kwh"] = sum(r.kwh for r in it_rows)
    fields["carbon_method"] = carbon_method
    tags = {"site": site.settings.name}
    if meters.category is not None:
        tags["pue_category"] = str(meters.category)
    return Sample(SITE_ENERGY, tags, fields, hour_ms * 1_000_000)


def site_inputs(sites: Iterable[SiteSettings], default_interval_s: float, cache_dir: Any = None) -> list[SiteInput]:
    """SiteInputs from configured sites (SiteSettings with `devices`: name, interval,
    fed_by, enabled). Sites asking for the intensity method share one source per API
    and region, cached in `cache_dir`."""
    sources: dict[tuple[str, int | None], IntensitySource] = {}
    out: list[SiteInput] = []
    for site in sites:
        devices = {
            d.name: DeviceInfo(d.interval or default_interval_s, d.fed_by)
            for d in getattr(site, "devices", []) if getattr(d, "enabled", True)
        }
        source = None
        carbon = site.carbon
        if carbon.method == "intensity":
            key = (carbon.api_url, carbon.region)
            source = sources.setdefault(key, IntensitySource(carbon.api_url, carbon.region, cache_dir))
        out.append(SiteInput(site, devices, default_interval_s, source))
    return out


# The service re-rolls this many completed hours each turn: late data (a spool replaying
# after an InfluxDB outage, a slow shard) lands in the right hour without a manual rollup.
RECENT_HOURS = 6


async def rollup_recent(client: QueryClient, sites: list[SiteInput], now: dt.datetime,
                        hours: int = RECENT_HOURS) -> RollupStats:
    """Roll up the last `hours` completed UTC hours before `now`."""
    end = floor_hour(now)
    return await Rollup(client, sites).run(end - dt.timedelta(hours=hours), end)


def periodic_job(make_client: Callable[[], Any], sites: list[SiteInput]) -> Callable[[], Any]:
    """The service's job: roll up the hours just completed (and re-roll the recent
    ones). `make_client` gives a fresh query client for each turn."""

    async def job() -> None:
        client = make_client()
        try:
            stats = await rollup_recent(client, sites, dt.datetime.now(dt.UTC))
        finally:
            await client.close()
        log.info("energy rollup: %d hours, %d energy and %d site_energy points", stats.hours,
                 stats.energy_points, stats.site_points)

    return job
