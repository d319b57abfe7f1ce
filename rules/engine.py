"""The rules engine: evaluate every rule as of a time, keep each finding's lifecycle
(opened, updated, resolved) in the `finding` measurement, so it survives restarts.

InfluxDB computes the aggregates per bucket (GROUP BY time(1h)); Python keeps only
the buckets inside the rule's calendar window in the site's local time, finds the
latest unbroken stretch where the condition holds, and turns the watts a finding
could save into kWh, money and kgCO2e per year with the site's own tariff and carbon
factor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from greenwatch.core import logcontext
from greenwatch.core.config import SiteSettings
from greenwatch.core.influx import InfluxClient, InfluxQueryError
from greenwatch.core.schema import FINDING, TOTAL_SCOPES, Sample, encode_lines
from greenwatch.core.yamlfile import InputError, load_yaml, problem_at

from .config import RuleOverride
from .model import Rule

log = logging.getLogger("greenwatch.rules")

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
NS = 1_000_000_000
QUERY_CONCURRENCY = 2
# How far back a finding's last point is looked for: a finding nobody re-evaluated for
# longer (the service stopped for a year) starts afresh.
STATE_HORIZON_S = 400 * 86400
# Where a device's power is read for savings based on its draw: its own total, else
# what its inlets, phases or supplies add up to; a UPS's output as a last resort.
POWER_PREFERENCE = (*TOTAL_SCOPES, "output")


@dataclass
class Candidate:
    """A subject for which a rule's condition holds now."""

    rule: str
    site: str
    device: str | None
    entity: str | None
    value: float  # the aggregate tested, averaged over the stretch that fired
    hours: float  # how long the stretch is
    watts: float  # what acting on it would save, while the saving's window applies
    window: str  # the calendar window the saving applies in
    label: str | None = None
    count: int = 1  # entities merged into a device finding
    summary: str = ""


@dataclass
class Finding:
    """One point of the `finding` measurement: a lifecycle event of one finding."""

    rule: str
    site: str
    device: str | None
    entity: str | None
    severity: str
    state: str  # opened | updated | resolved
    value: float
    kwh_per_year: float
    cost_per_year: float
    currency: str
    kgco2e_per_year: float
    summary: str
    opened_at: dt.datetime
    at: dt.datetime

    @property
    def id(self) -> str:
        return finding_id(self.rule, self.site, self.device, self.entity)

    @property
    def open(self) -> bool:
        return self.state != "resolved"

    def sample(self) -> Sample:
        tags = {"rule": self.rule, "site": self.site, "severity": self.severity}
        if self.device:
            tags["device"] = self.device
        if self.entity:
            tags["entity"] = self.entity
        fields: dict[str, Any] = {
            "open": int(self.open), "id": self.id, "state": self.state,
            "value": float(self.value), "kwh_per_year": float(self.kwh_per_year),
            "cost_per_year": float(self.cost_per_year), "currency": self.currency,
            "kgco2e_per_year": float(self.kgco2e_per_year), "summary": self.summary,
            "opened_at": self.opened_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        return Sample(FINDING, tags, fields, to_ns(self.at))


def finding_id(rule: str, site: str, device: str | None, entity: str | None) -> str:
    subject = "/".join(p for p in (site, device, entity) if p)
    return f"{rule}:{subject}"


def to_ns(when: dt.datetime) -> int:
    return int(when.timestamp()) * NS + when.microsecond * 1000


class PythonRule(Protocol):
    """A rule written in Python, registered under the `greenwatch.rules` entry point
    group (see rules/python_rules.py). The engine does the lifecycle and the savings
    arithmetic; the rule only says which subjects fire."""

    id: str
    title: str
    description: str
    severity: str
    window: str

    async def candidates(self, ctx: Context, at: dt.datetime) -> list[Candidate]: ...


AnyRule = Rule | PythonRule


@dataclass
class Settings:
    """A rule's parameters for one site, after the config's overrides."""

    enabled: bool
    threshold: float | None
    for_s: float
    window: str
    severity: str


@dataclass
class Series:
    tags: dict[str, str]
    rows: dict[int, dict[str, float]]  # bucket start (s) -> column -> value


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tag_filter(tag: str, values: str | Sequence[str]) -> str:
    """`"tag" = 'v'`, `"tag" =~ /re/`, or an OR of them for a list."""
    if isinstance(values, str):
        values = [values]
    parts = []
    for value in values:
        if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
            parts.append(f"{quote_ident(tag)} =~ {value}")
        else:
            parts.append(f"{quote_ident(tag)} = {quote_string(value)}")
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def range_filter(start_s: int, end_s: int) -> str:
    return f"time >= {start_s * NS} AND time < {end_s * NS}"


@dataclass
class Context:
    """What a rule may use while evaluating: InfluxDB, the sites' settings, overrides."""

    client: InfluxClient
    sites: dict[str, SiteSettings]
    overrides: list[RuleOverride] = field(default_factory=list)
    _windows: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    _years: dict[tuple[Any, ...], tuple[float, float]] = field(default_factory=dict)

    def site(self, name: str) -> SiteSettings:
        """A site's settings; a site not in the config gets the defaults."""
        if name not in self.sites:
            self.sites[name] = SiteSettings(name=name)
        return self.sites[name]

    def settings(self, rule: AnyRule, site: str, threshold: float | None = None,
                 for_s: float = 0.0) -> Settings:
        out = Settings(True, threshold, for_s, rule.window, rule.severity)
        # Overrides for every site first, then those naming this site: the narrower wins.
        for specific in (False, True):
            for o in self.overrides:
                if o.rule != rule.id or bool(o.sites) != specific or (o.sites and site not in o.sites):
                    continue
                out.enabled = o.enabled
                out.threshold = o.threshold if o.threshold is not None else out.threshold
                out.for_s = o.for_ if o.for_ is not None else out.for_s
                out.window = o.window or out.window
                out.severity = o.severity or out.severity
        return out

    async def series(self, q: str) -> list[Series]:
        """Run a grouped InfluxQL SELECT; each series with its rows by bucket start."""
        data = await self.client.query(q, epoch="s")
        out = []
        for result in data.get("results", []):
            for s in result.get("series", []) or []:
                cols = s["columns"]
                rows: dict[int, dict[str, float]] = {}
                for values in s["values"]:
                    row = {c: v for c, v in zip(cols[1:], values[1:]) if isinstance(v, int | float)}
                    if row:
                        rows[int(values[0])] = row
                out.append(Series(dict(s.get("tags") or {}), rows))
        return out

    def window_buckets(self, site: str, start_s: int, end_s: int, bucket_s: int, window: str) -> list[int]:
        """Bucket starts in [start, end) whose local start time is in the window."""
        key = (site, start_s, end_s, bucket_s, window)
        if key not in self._windows:
            settings = self.site(site)
            zone, cal = settings.zone, settings.calendar
            self._windows[key] = [
                t for t in range(start_s, end_s, bucket_s)
                if cal.in_window(dt.datetime.fromtimestamp(t, zone), window)
            ]
        return self._windows[key]

    def window_year(self, site: str, window: str, at: dt.datetime) -> tuple[float, float]:
        """(hours per year in the window, mean tariff rate over those hours), over the
        year before `at`."""
        key = (site, window, at.date())
        if key not in self._years:
            settings = self.site(site)
            end = int(at.timestamp()) // 3600 * 3600
            hours = self.window_buckets(site, end - 365 * 86400, end, 3600, window)
            rates: dict[tuple[bool, int], float] = {}
            total = 0.0
            for t in hours:
                local = dt.datetime.fromtimestamp(t, settings.zone)
                slot = (local.weekday() >= 5, local.hour)
                if slot not in rates:
                    rates[slot] = settings.tariff.rate_at(local.replace(minute=0))
                total += rates[slot]
            self._years[key] = (float(len(hours)), total / len(hours) if hours else 0.0)
        return self._years[key]

    async def device_power(self, sites: Iterable[str], kinds: Sequence[str], start_s: int,
                           end_s: int) -> dict[tuple[str, str], float]:
        """Mean watts per (site, device) over the range, from the preferred scope."""
        filters = [range_filter(start_s, end_s)]
        if sites:
            filters.append(tag_filter("site", list(sites)))
        if kinds:
            filters.append(tag_filter("kind", list(kinds)))
        where = " AND ".join(filters)
        q = f'SELECT mean("watts") AS value FROM "power" WHERE {where} GROUP BY "site", "device", "scope", "entity"'
        by_scope: dict[tuple[str, str], dict[str, float]] = {}
        for s in await self.series(q):
            scopes = by_scope.setdefault((s.tags.get("site", ""), s.tags.get("device", "")), {})
            scope = s.tags.get("scope", "")
            for row in s.rows.values():  # the entities of a scope add up to its draw
                scopes[scope] = scopes.get(scope, 0.0) + row["value"]
        return {
            key: next(scopes[p] for p in POWER_PREFERENCE if p in scopes)
            for key, scopes in by_scope.items()
            if any(p in scopes for p in POWER_PREFERENCE)
        }


def latest_stretch(rows: dict[int, dict[str, float]], buckets: list[int], holds: Callable[[float], bool],
                   column: str = "value") -> list[int]:
    """The bucket starts of the latest unbroken stretch of in-window buckets where the
    condition holds, ending at the latest in-window bucket with data. A bucket of the
    window with no data breaks the stretch: nothing is assumed about unseen hours."""
    last = next((i for i in range(len(buckets) - 1, -1, -1) if buckets[i] in rows), None)
    if last is None:
        return []
    stretch: list[int] = []
    for t in reversed(buckets[: last + 1]):
        row = rows.get(t)
        if row is None or column not in row or not holds(row[column]):
            break
        stretch.append(t)
    stretch.reverse()
    return stretch


def eval_range(at: dt.datetime, lookback_s: float, bucket_s: int) -> tuple[int, int]:
    """[start, end) in whole buckets, ending at the last bucket complete at `at`."""
    end = int(at.timestamp()) // bucket_s * bucket_s
    start = (end - int(lookback_s)) // bucket_s * bucket_s
    return start, end


def yaml_query(rule: Rule, start_s: int, end_s: int) -> str:
    """The InfluxQL a YAML rule runs, with $range and $bucket filled in."""
    rng = range_filter(start_s, end_s)
    if rule.query is not None:
        return rule.query.replace("$range", rng).replace("$bucket", rule.bucket)
    sel = rule.select
    assert sel is not None
    filters = [rng]
    if sel.sites:
        filters.append(tag_filter("site", sel.sites))
    if sel.kinds:
        filters.append(tag_filter("kind", sel.kinds))
    if sel.scopes:
        filters.append(tag_filter("scope", sel.scopes))
    filters += [tag_filter(tag, values) for tag, values in sel.tags.items()]
    where = " AND ".join(filters)
    group = {"site": '"site", "device", "entity"', "device": '"site", "device"',
             "entity": '"site", "device", "entity", "label"'}[rule.per]
    inner = (f"SELECT {rule.condition.aggregate}({quote_ident(sel.field)}) AS value FROM "
             f"{quote_ident(sel.measurement)} WHERE {where} GROUP BY time({rule.bucket}), {group} fill(none)")
    if rule.per != "site":
        return inner
    return (f"SELECT {rule.condition.combine}(\"value\") AS value FROM ({inner}) WHERE {rng} "
            f"GROUP BY time({rule.bucket}), \"site\" fill(none)")


DEFAULT_SITE = "\0default"  # stands for sites in the data that the config does not name


def needed_start(rule: Rule, ctx: Context, start: int, end: int, for_s: float) -> int:
    """Where the data worth reading starts: the last `for` of in-window buckets, in
    every site's time zone and calendar (and every window the overrides choose). Only
    they decide whether the rule fires, and reading 6 night hours instead of 8 days of
    raw points is what keeps the pack fast on big estates."""
    need = max(1, math.ceil(for_s / rule.bucket_s))
    windows = {rule.window} | {o.window for o in ctx.overrides if o.rule == rule.id and o.window}
    sites = (rule.select.sites if rule.select and rule.select.sites else list(ctx.sites)) + [DEFAULT_SITE]
    earliest = end
    for site in sites:
        for window in windows:
            buckets = ctx.window_buckets(site, start, end, rule.bucket_s, window)
            earliest = min(earliest, buckets[-need] if len(buckets) >= need else start)
    return earliest


async def yaml_candidates(rule: Rule, ctx: Context, at: dt.datetime) -> list[Candidate]:
    """Evaluate one YAML rule: query, window filter, stretch, savings watts."""
    widest = max([rule.for_] + [o.for_ for o in ctx.overrides if o.rule == rule.id and o.for_])
    lookback = rule.lookback_s + (widest - rule.for_)
    start, end = eval_range(at, lookback, rule.bucket_s)
    read_from = needed_start(rule, ctx, start, end, widest)
    series = await ctx.series(yaml_query(rule, read_from, end))
    power: dict[tuple[str, str], float] = {}
    if rule.savings.base == "device_power" and series:
        power = await ctx.device_power({s.tags.get("site", "") for s in series}, [], read_from, end)
    out: list[Candidate] = []
    for s in series:
        site = s.tags.get("site", "")
        settings = ctx.settings(rule, site, rule.condition.threshold, rule.for_)
        if not settings.enabled or settings.threshold is None:
            continue
        threshold = settings.threshold
        test = OPS[rule.condition.op]
        buckets = ctx.window_buckets(site, start, end, rule.bucket_s, settings.window)
        stretch = latest_stretch(s.rows, buckets, lambda v, test=test, threshold=threshold: test(v, threshold))
        hours = len(stretch) * rule.bucket_s / 3600
        if not stretch or hours * 3600 < settings.for_s:
            continue
        value = sum(s.rows[t]["value"] for t in stretch) / len(stretch)
        device = s.tags.get("device") or None
        base = 1.0
        if rule.savings.base == "device_power":
            base = power.get((site, device or ""), 0.0)
        elif rule.savings.base == "basis":
            basis = [s.rows[t]["basis"] for t in stretch if "basis" in s.rows[t]]
            base = sum(basis) / len(basis) if basis else 0.0
        sv = rule.savings
        watts = sv.watts(value, base)
        if not math.isfinite(watts):  # a query's basis column can hold anything
            log.warning("rule %s: saving for %s/%s is not a finite number (basis %r); not reported",
                        rule.id, site, device or "-", base)
            continue
        out.append(Candidate(rule.id, site, device, s.tags.get("entity") or None if rule.per == "entity" else None,
                             value, hours, watts, sv.window or settings.window,
                             label=s.tags.get("label") or None))
    if rule.merge_to_device:
        out = merge_to_device(out)
    return out


def merge_to_device(found: list[Candidate]) -> list[Candidate]:
    """One candidate per device from its entities': savings add up; value is the count."""
    merged: dict[tuple[str, str | None], Candidate] = {}
    for c in found:
        key = (c.site, c.device)
        if key not in merged:
            merged[key] = Candidate(c.rule, c.site, c.device, None, 0.0, c.hours, 0.0, c.window, count=0)
        m = merged[key]
        m.count += 1
        m.value = float(m.count)
        m.watts += c.watts
        m.hours = min(m.hours, c.hours)
    return list(merged.values())


class Engine:
    """Evaluates rules as of a time and writes their findings' lifecycle events."""

    def __init__(self, client: InfluxClient, rules: Sequence[AnyRule], sites: dict[str, SiteSettings] | None = None,
                 overrides: Sequence[RuleOverride] = ()) -> None:
        self.client = client
        self.rules = list(rules)
        self.sites = dict(sites or {})
        self.overrides = list(overrides)
        self.problems: list[str] = []  # rules InfluxDB rejected in the last evaluation
        self._problem_rules: list[str] = []  # their ids, for the log lines

    async def previous(self, at: dt.datetime) -> dict[str, dict[str, Any]]:
        """The last point of every finding before `at`, by id."""
        since = to_ns(at) - STATE_HORIZON_S * NS
        q = (f"SELECT * FROM {quote_ident(FINDING)} WHERE time >= {since} AND time < {to_ns(at)} "
             f"GROUP BY * ORDER BY time DESC LIMIT 1")
        data = await self.client.query(q, epoch="s")
        latest: dict[str, dict[str, Any]] = {}
        for result in data.get("results", []):
            for s in result.get("series", []) or []:
                row = dict(zip(s["columns"], s["values"][0]))
                row.update(s.get("tags") or {})
                fid = row.get("id")
                if isinstance(fid, str) and (fid not in latest or row["time"] > latest[fid]["time"]):
                    latest[fid] = row
        return latest

    async def evaluate(self, at: dt.datetime) -> list[Finding]:
        """Every rule as of `at`: the findings' events (opened, updated, resolved),
        not yet written."""
        ctx = Context(self.client, dict(self.sites), self.overrides)
        before = await self.previous(at)
        events: list[Finding] = []
        seen: set[str] = set()
        # Two rules' queries at a time: influxd answers each on one core, and the
        # machines this runs on have at least two.
        gate = asyncio.Semaphore(QUERY_CONCURRENCY)

        self.problems = []
        self._problem_rules = []

        async def one(rule: AnyRule) -> list[Candidate] | None:
            async with gate:
                try:
                    with logcontext.about(rule=rule.id):  # every line logged here names the rule
                        if isinstance(rule, Rule):
                            return await yaml_candidates(rule, ctx, at)
                        return await rule.candidates(ctx, at)
                except InfluxQueryError as exc:
                    # One rule InfluxDB rejects (a user's query) must not stop the others.
                    self.problems.append(rejected(rule, exc))
                    self._problem_rules.append(rule.id)
                    return None

        results = await asyncio.gather(*(one(rule) for rule in self.rules))
        for rule, found in zip(self.rules, results):
            for c in found or []:
                fid = finding_id(c.rule, c.site, c.device, c.entity)
                if fid in seen:
                    continue
                seen.add(fid)
                prior = before.get(fid)
                was_open = prior is not None and prior.get("open") == 1
                opened = _parse_time(prior.get("opened_at")) if was_open and prior else None
                events.append(self._finding(rule, ctx, c, at, "updated" if was_open else "opened", opened or at))
        # A rule that could not be evaluated resolves nothing: its findings stand.
        ids = {r.id for r, found in zip(self.rules, results) if found is not None}
        for fid, prior in before.items():
            if prior.get("open") == 1 and prior.get("rule") in ids and fid not in seen:
                events.append(Finding(
                    prior["rule"], prior.get("site", ""), prior.get("device") or None, prior.get("entity") or None,
                    prior.get("severity", "info"), "resolved", float(prior.get("value") or 0.0), 0.0, 0.0,
                    str(prior.get("currency") or ""), 0.0,
                    f"resolved: {prior.get('summary', '')}", _parse_time(prior.get("opened_at")) or at, at))
        return events

    async def run(self, at: dt.datetime, strict: bool = True) -> list[Finding]:
        """Evaluate and write the events to the `finding` measurement. A rule InfluxDB
        rejects raises InputError before anything is written (strict), or is logged
        while the other rules' findings are written (the service)."""
        events = await self.evaluate(at)
        if self.problems:
            if strict:
                raise InputError(self.problems)
            for rule_id, problem in zip(self._problem_rules, self.problems):
                with logcontext.about(rule=rule_id):
                    log.error("rule not evaluated: %s", problem)
        await self.client.write(encode_lines([e.sample() for e in events]))
        return events

    def _finding(self, rule: AnyRule, ctx: Context, c: Candidate, at: dt.datetime, state: str,
                 opened: dt.datetime) -> Finding:
        site = ctx.site(c.site)
        settings = ctx.settings(rule, c.site)
        hours, rate = ctx.window_year(c.site, c.window, at)
        kwh = c.watts * hours / 1000.0
        factor, _method = site.carbon.fixed_factor(at.astimezone(dt.UTC).year)
        threshold = settings.threshold
        if threshold is None and isinstance(rule, Rule):
            threshold = rule.condition.threshold
        values = {"site": c.site, "device": c.device or "", "entity": c.entity or "", "label": c.label or "",
                  "value": c.value, "hours": c.hours, "threshold": threshold if threshold is not None else 0.0,
                  "count": c.count, "kwh_per_year": kwh, "cost_per_year": kwh * rate,
                  "currency": site.tariff.currency, "kgco2e_per_year": kwh * factor}
        template = rule.summary if isinstance(rule, Rule) else (c.summary or "{device}")
        return Finding(c.rule, c.site, c.device, c.entity, settings.severity, state, c.value, kwh, kwh * rate,
                       site.tariff.currency, kwh * factor, template.format_map(values), opened, at)


def rejected(rule: AnyRule, exc: InfluxQueryError) -> str:
    """'file:line: query: InfluxDB rejects ...' for a YAML rule; the id for a Python one."""
    message = f"InfluxDB rejects the rule's query: {exc.server_message or exc}"
    if isinstance(rule, Rule) and rule.path is not None:
        _, node = load_yaml(rule.path)
        return problem_at(rule.path, node, ["query" if rule.query is not None else "condition"], message)
    return f"rule {rule.id}: {message}"


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
