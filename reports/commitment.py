"""The commitment's progress: each target's actual figure (from the hourly rollups), the
straight-line trajectory from the baseline to the targets, on track or behind by how
much. docs/commitment.md explains every figure.

- Sums, never raw points: `site_energy` (kwh, it_kwh, kgco2e) read with InfluxQL sum()
  and count() over the 365 days before `as_of`, per site.
- Annual figures: a site's sums are scaled to 8,760 hours by the hours its rollups
  cover (a week of data counts as a week's worth of a year); a baseline's figures are
  scaled to 365 days of its period.
- Carbon both ways: with each hour's own factor (what the rollups wrote) and with one
  fixed factor for every year, so that a greener grid is not mistaken for saved energy.
- Trajectory: per metric (and site), straight lines through (baseline end, baseline)
  and (end of each target year, target), flat before and after; on track when the
  actual figure is at most the trajectory's value at `as_of`; gap = actual - trajectory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

from greenwatch.core.carbon import annual_factor
from greenwatch.core.config import SiteSettings
from greenwatch.core.schema import SITE_ENERGY
from greenwatch.core.yamlfile import InputError, load_yaml, problem_at

from .config import CommitmentConfig, Target

HOURS_PER_YEAR = 8760
YEAR = dt.timedelta(days=365)
UNITS = {"tco2e": "tCO2e/yr", "kwh": "kWh/yr", "pue": "", "after_hours_share": "share"}


class QueryClient(Protocol):
    async def query(self, q: str, db: str | None = None, epoch: str | None = None) -> dict[str, Any]: ...


class HasCommitment(Protocol):
    """What the computation needs of the config (greenwatch.config.Config has it)."""

    sites: Sequence[SiteSettings]
    commitment: CommitmentConfig | None


@dataclass
class Sums:
    """One site's rollup sums over a range."""

    kwh: float = 0.0
    kgco2e: float = 0.0
    hours: int = 0  # hours with a site_energy kwh
    it_kwh: float = 0.0
    it_site_kwh: float = 0.0  # the site's kwh over the hours that also have it_kwh (for PUE)


@dataclass
class TargetProgress:
    metric: str  # tco2e | kwh | pue | after_hours_share
    subject: str  # "all" (the commitment's sites) or the site(s) the target is about
    year: int
    unit: str
    baseline: float | None
    target: float
    actual: float | None
    trajectory: float | None  # where the straight line from baseline to targets is at as_of
    on_track: bool | None
    gap: float | None  # actual - trajectory: positive = behind by that much
    # tco2e only: the same figures at the one fixed factor.
    baseline_fixed: float | None = None
    actual_fixed: float | None = None
    trajectory_fixed: float | None = None
    on_track_fixed: bool | None = None


@dataclass
class CommitmentReport:
    name: str
    as_of: dt.datetime
    sites: list[str]
    window: tuple[dt.datetime, dt.datetime]  # the actual figures' range
    hours: dict[str, int]  # per site, hours of rollups in the window
    baseline: dict[str, Any]
    fixed_factor: float
    targets: list[TargetProgress] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat()
        out["window"] = [w.isoformat() for w in self.window]
        return out

    def as_table(self) -> dict[str, Any]:
        """header, rows (text cells) and a note: what the weekly report and the CLI show."""
        header = ["target", "by", "baseline", "target value", "actual", "trajectory now", "status"]
        rows = []
        for t in self.targets:
            label = {"tco2e": "tCO2e per year", "kwh": "kWh per year", "pue": f"PUE {t.subject}",
                     "after_hours_share": f"after-hours share {t.subject}"}[t.metric]
            rows.append([label, str(t.year), _fmt(t.metric, t.baseline), _fmt(t.metric, t.target),
                         _fmt(t.metric, t.actual), _fmt(t.metric, t.trajectory), status_text(t)])
            if t.metric == "tco2e" and t.actual_fixed is not None:
                rows.append([f"  at a fixed {self.fixed_factor:.5f} kg/kWh", "", _fmt(t.metric, t.baseline_fixed),
                             _fmt(t.metric, t.target * t.baseline_fixed / t.baseline
                                  if t.baseline and t.baseline_fixed is not None else None),
                             _fmt(t.metric, t.actual_fixed), _fmt(t.metric, t.trajectory_fixed),
                             status_text(t, fixed=True)])
        start, end = self.window
        note = (f"Actual: the rollups of {start:%d %b %Y} to {end:%d %b %Y} scaled to a year by the hours they "
                f"cover; trajectory: a straight line from the baseline ({self.baseline['from']} to "
                f"{self.baseline['to']}) to each target at the end of its year. Carbon with each year's factor, "
                f"and at one fixed factor so that a greener grid is not read as saved energy.")
        return {"header": header, "rows": rows, "note": note}


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "pue":
        return f"{value:.2f}"
    if metric == "after_hours_share":
        return f"{value:.1%}"
    return f"{value:,.1f}" if metric == "tco2e" else f"{value:,.0f}"


def status_text(t: TargetProgress, fixed: bool = False) -> str:
    on_track = t.on_track_fixed if fixed else t.on_track
    actual = t.actual_fixed if fixed else t.actual
    trajectory = t.trajectory_fixed if fixed else t.trajectory
    if on_track is None or actual is None or trajectory is None:
        return "no data"
    if on_track:
        return "on track"
    if t.metric == "after_hours_share":  # a difference of shares is in percentage points
        return f"behind by {100 * (actual - trajectory):.1f} points"
    unit = {"tco2e": " tCO2e", "kwh": " kWh", "pue": ""}[t.metric]
    return f"behind by {_fmt(t.metric, actual - trajectory)}{unit}"


# -- reading the rollups ----------------------------------------------------------------


def _ns(when: dt.datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000


def _sites_filter(names: Sequence[str]) -> str:
    quoted = [f"\"site\" = '{n.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'" for n in names]
    return "(" + " OR ".join(quoted) + ")"


async def read_sums(client: QueryClient, sites: Sequence[str], start: dt.datetime, end: dt.datetime) -> dict[str, Sums]:
    """Per site, the sums of site_energy over [start, end) (one request, two statements:
    all hours, and the hours with IT energy for PUE)."""
    if not sites:
        return {}
    where = f"time >= {_ns(start)} AND time < {_ns(end)} AND {_sites_filter(sites)}"
    q = (f'SELECT sum("kwh") AS kwh, sum("kgco2e") AS kg, count("kwh") AS hours FROM "{SITE_ENERGY}" '
         f'WHERE {where} GROUP BY "site";'
         f'SELECT sum("kwh") AS kwh, sum("it_kwh") AS it FROM "{SITE_ENERGY}" '
         f'WHERE {where} AND "it_kwh" > 0 GROUP BY "site"')
    answer = await client.query(q)
    results = answer.get("results", [])
    out: dict[str, Sums] = {}
    for i, result in enumerate(results[:2]):
        for s in result.get("series", []) or []:
            row = dict(zip(s["columns"], s["values"][0]))
            sums = out.setdefault((s.get("tags") or {}).get("site", ""), Sums())
            if i == 0:
                sums.kwh, sums.kgco2e, sums.hours = row.get("kwh") or 0.0, row.get("kg") or 0.0, int(row.get("hours") or 0)
            else:
                sums.it_site_kwh, sums.it_kwh = row.get("kwh") or 0.0, row.get("it") or 0.0
    return out


async def after_hours_kwh(client: QueryClient, site: SiteSettings, start: dt.datetime,
                          end: dt.datetime) -> tuple[float, float]:
    """(after-hours kWh, all kWh) of a site over [start, end): each hourly site_energy
    point counted by its hour's window in the site's calendar, in local time."""
    q = (f'SELECT "kwh" FROM "{SITE_ENERGY}" WHERE time >= {_ns(start)} AND time < {_ns(end)} '
         f'AND {_sites_filter([site.name])}')
    answer = await client.query(q, epoch="s")
    after = total = 0.0
    zone, calendar = site.zone, site.calendar
    for result in answer.get("results", []):
        for s in result.get("series", []) or []:
            for t, kwh in s["values"]:
                if not isinstance(kwh, int | float):
                    continue
                total += kwh
                # The hour's middle decides: a half-hour zone's hour straddles two windows.
                local = dt.datetime.fromtimestamp(t + 1800, zone)
                if calendar.window_of(local) != "business_hours":
                    after += kwh
    return after, total


async def after_hours_share(config: HasCommitment, client: QueryClient, site: str, start: dt.datetime,
                            end: dt.datetime) -> float | None:
    """kWh outside the site's business hours / all its kWh over [start, end), from the
    hourly site_energy rollup; None when there is none."""
    settings = next((s for s in config.sites if s.name == site), None)
    if settings is None:
        raise ValueError(f"no site {site!r} in the config")
    after, total = await after_hours_kwh(client, settings, start, end)
    return after / total if total > 0 else None


# -- the trajectory -------------------------------------------------------------------


def year_end(year: int) -> dt.datetime:
    return dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)


def trajectory_at(points: list[tuple[dt.datetime, float]], when: dt.datetime) -> float:
    """The straight lines through `points` (sorted by time) at `when`; flat outside them."""
    if when <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in pairwise(points):
        if when <= t1:
            return v0 + (v1 - v0) * (when - t0) / (t1 - t0)
    return points[-1][1]


def _annual(sums: dict[str, Sums], attr: str) -> float | None:
    """The sites' figure per year: each site's sum scaled by the hours it covers."""
    covered = [s for s in sums.values() if s.hours > 0]
    if not covered:
        return None
    return sum(getattr(s, attr) * HOURS_PER_YEAR / s.hours for s in covered)


# -- the report --------------------------------------------------------------------------


def counted_sites(config: HasCommitment) -> list[SiteSettings]:
    c = config.commitment
    assert c is not None
    return [s for s in config.sites if c.sites is None or s.name in c.sites]


def check_sites(config: HasCommitment, path: Path) -> None:
    """Every site the commitment names must be a site of the config (file:line otherwise):
    a misspelt name would silently count nothing."""
    c = config.commitment
    if c is None:
        return
    names = {s.name for s in config.sites}
    problems: list[tuple[tuple[object, ...], str]] = []
    for i, name in enumerate(c.sites or []):
        if name not in names:
            problems.append((("commitment", "sites", i), f"no site {name!r} in the config"))
    for name in c.baseline.pue:
        if name not in names:
            problems.append((("commitment", "baseline", "pue", name), f"no site {name!r} in the config"))
    for i, t in enumerate(c.targets):
        if t.site is not None and t.site not in names:
            problems.append((("commitment", "targets", i, "site"), f"no site {t.site!r} in the config"))
        for j, name in enumerate(t.sites or []):
            if name not in names:
                problems.append((("commitment", "targets", i, "sites", j), f"no site {name!r} in the config"))
    if problems:
        _, node = load_yaml(path)
        raise InputError([problem_at(path, node, loc, message) for loc, message in problems])


def _after_hours_sites(config: HasCommitment, target: Target) -> list[SiteSettings]:
    if target.sites is not None:
        return [s for s in config.sites if s.name in target.sites]
    return [s for s in counted_sites(config) if not s.energy.it]  # the offices


async def commitment_progress(config: HasCommitment, client: QueryClient, as_of: dt.datetime) -> CommitmentReport:
    """Every target's progress as of `as_of` (aware), from the rollups."""
    c = config.commitment
    if c is None:
        raise ValueError("the config has no commitment: section")
    sites = counted_sites(config)
    names = [s.name for s in sites]
    window = (as_of - YEAR, as_of)
    b = c.baseline
    b_start = dt.datetime.combine(b.start, dt.time(), dt.UTC)
    b_end = dt.datetime.combine(b.end, dt.time(), dt.UTC)
    b_scale = 365 * 86400 / (b_end - b_start).total_seconds()  # the baseline's figures per 365 days
    fixed = c.fixed_factor or annual_factor(b.start.year).generation

    pue_sites = sorted({t.site for t in c.targets if t.metric == "pue" and t.site})
    now_sums = await read_sums(client, sorted(set(names) | set(pue_sites)), *window)
    counted_now = {n: s for n, s in now_sums.items() if n in names}
    base_sums = await read_sums(client, sorted(set(names) | set(pue_sites)), b_start, b_end) if b.measured else {}

    # The baseline's annual figures.
    if b.measured:
        base_counted = [s for n, s in base_sums.items() if n in names and s.hours]
        if not base_counted and any(t.metric in ("tco2e", "kwh") for t in c.targets):
            raise InputError([(f"commitment.baseline: measured, but {b.start} to {b.end} has no site_energy rollups "
                               f"for {', '.join(names) or 'any site'}: run `greenwatch rollup` over it, or give "
                               f"the baseline's kwh or tco2e")])
        base_kwh = sum(s.kwh for s in base_counted) * b_scale if base_counted else None
        base_t = sum(s.kgco2e for s in base_counted) / 1000 * b_scale if base_counted else None
    else:
        base_kwh = b.kwh * b_scale if b.kwh is not None else None
        # Only kWh given: its carbon at the baseline year's DESNZ factor.
        base_t = (b.tco2e * b_scale if b.tco2e is not None
                  else base_kwh * annual_factor(b.start.year).generation / 1000 if base_kwh is not None else None)
    actual_kwh = _annual(counted_now, "kwh")
    actual_kg = _annual(counted_now, "kgco2e")

    report = CommitmentReport(
        c.name, as_of, names, window, {n: s.hours for n, s in now_sums.items()},
        {"from": b.start.isoformat(), "to": b.end.isoformat(), "measured": b.measured,
         "kwh": base_kwh, "tco2e": base_t}, fixed)

    def line(metric: str, baseline: float | None, subject: Target | None = None) -> list[tuple[dt.datetime, float]]:
        """The trajectory's points for one metric (and site or sites)."""
        same = sorted((t for t in c.targets if t.metric == metric and (subject is None or (
            t.site == subject.site and t.sites == subject.sites))), key=lambda t: t.year)
        points = [(year_end(t.year), _target_value(t, baseline)) for t in same]
        return ([(b_end, baseline)] if baseline is not None else []) + points

    for t in c.targets:
        if t.metric in ("tco2e", "kwh"):
            baseline = base_t if t.metric == "tco2e" else base_kwh
            actual = (actual_kg / 1000 if actual_kg is not None else None) if t.metric == "tco2e" else actual_kwh
            assert baseline is not None  # the config requires it, and a measured one is checked above
            progress = _progress(t, "all", baseline, actual, line(t.metric, baseline), as_of)
            if t.metric == "tco2e" and base_kwh is not None:
                b_fixed = base_kwh * fixed / 1000
                progress.baseline_fixed = b_fixed
                progress.actual_fixed = actual_kwh * fixed / 1000 if actual_kwh is not None else None
                progress.trajectory_fixed = trajectory_at(line("tco2e", b_fixed), as_of)
                if progress.actual_fixed is not None:
                    progress.on_track_fixed = progress.actual_fixed <= progress.trajectory_fixed + 1e-9
            report.targets.append(progress)
        elif t.metric == "pue":
            assert t.site is not None
            s_now = now_sums.get(t.site)
            actual = s_now.it_site_kwh / s_now.it_kwh if s_now and s_now.it_kwh > 0 else None
            baseline = b.pue.get(t.site)
            if baseline is None and b.measured:
                s_b = base_sums.get(t.site)
                baseline = s_b.it_site_kwh / s_b.it_kwh if s_b and s_b.it_kwh > 0 else None
            report.targets.append(_progress(t, t.site, baseline, actual, line("pue", baseline, t), as_of))
        else:
            offices = _after_hours_sites(config, t)
            actual = await _share(client, offices, *window)
            baseline = b.after_hours_share
            if baseline is None and b.measured:
                baseline = await _share(client, offices, b_start, b_end)
            subject = ", ".join(s.name for s in offices) or "no sites"
            report.targets.append(_progress(t, subject, baseline, actual, line("after_hours_share", baseline, t),
                                            as_of))
    return report


def _target_value(t: Target, baseline: float | None) -> float:
    if t.cut_percent is not None:
        assert baseline is not None
        return baseline * (1 - t.cut_percent / 100)
    assert t.max is not None
    return t.max


def _progress(t: Target, subject: str, baseline: float | None, actual: float | None,
              points: list[tuple[dt.datetime, float]], as_of: dt.datetime) -> TargetProgress:
    target = _target_value(t, baseline)
    trajectory = trajectory_at(points, as_of) if points else None
    on_track = None if actual is None or trajectory is None else actual <= trajectory + 1e-9
    gap = None if actual is None or trajectory is None else actual - trajectory
    return TargetProgress(t.metric, subject, t.year, UNITS[t.metric], baseline, target, actual, trajectory,
                          on_track, gap)


async def _share(client: QueryClient, sites: Sequence[SiteSettings], start: dt.datetime,
                 end: dt.datetime) -> float | None:
    after = total = 0.0
    for site in sites:
        a, t = await after_hours_kwh(client, site, start, end)
        after, total = after + a, total + t
    return after / total if total > 0 else None
