"""`greenwatch rollup` and `greenwatch energy`: the energy accounting commands
(hooked into greenwatch/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from energy.intensity import cache_dir_beside
from energy.report import Report, read_report
from energy.rollup import Rollup, site_inputs
from greenwatch.config import Config, load_config
from greenwatch.core.influx import InfluxError, query_client
from greenwatch.core.yamlfile import InputError, load_yaml, problem_at

COMMANDS = ("rollup", "energy")
EXIT_OK, EXIT_INFLUX, EXIT_BAD_INPUT = 0, 1, 2


def _console() -> Console:
    # On a terminal, its width; piped or captured, wide enough that no figure is cut.
    return Console() if sys.stdout.isatty() else Console(width=200)


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rollup = subparsers.add_parser("rollup", help="compute the hourly energy rollups for a period (idempotent)")
    _period_args(rollup)
    energy = subparsers.add_parser("energy", help="kWh, PUE, cost and carbon of a period, per site and in total")
    _period_args(energy)
    energy.add_argument("--site", help="only this site")
    energy.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _period_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, type=Path)
    p.add_argument("--from", dest="start", required=True, metavar="DATE",
                   help="start: YYYY-MM-DD or an ISO time (UTC unless it has an offset)")
    p.add_argument("--to", dest="end", required=True, metavar="DATE", help="end (exclusive), as --from")


def parse_when(text: str, option: str) -> dt.datetime:
    """'2025-03-24' or '2025-03-24T06:00[+01:00]' -> an aware datetime (UTC if no offset)."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError([f"{option}: expected a date YYYY-MM-DD or an ISO time, got {text!r}"]) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def parse_period(args: argparse.Namespace) -> tuple[dt.datetime, dt.datetime]:
    start, end = parse_when(args.start, "--from"), parse_when(args.end, "--to")
    if end <= start:
        raise InputError([f"--to ({args.end}) must be after --from ({args.start})"])
    return start, end


def check_meters(config: Config, path: Path) -> None:
    """Meters and fed_by must name devices of their own site: a typo would otherwise
    count nothing, silently."""
    problems: list[tuple[tuple[object, ...], str]] = []
    for i, site in enumerate(config.sites):
        names = {d.name for d in site.devices}
        for role in ("facility", "it"):
            for j, spec in enumerate(getattr(site.energy, role)):
                if spec.split("/")[0] not in names:
                    problems.append((("sites", i, "energy", role, j),
                                     f"no device {spec.split('/')[0]!r} in site {site.name!r}"))
        for j, device in enumerate(site.devices):
            if device.fed_by and device.fed_by.split("/")[0] not in names:
                problems.append((("sites", i, "devices", j, "fed_by"),
                                 f"no device {device.fed_by.split('/')[0]!r} in site {site.name!r}"))
    if problems:
        _, node = load_yaml(path)  # again, only now, for the line numbers
        raise InputError([problem_at(path, node, loc, message) for loc, message in problems])


def dispatch(args: argparse.Namespace) -> int:
    # Everything the user gave is checked before anything is read or written.
    start, end = parse_period(args)
    config = load_config(args.config)
    check_meters(config, args.config)
    if args.command != "rollup" and args.site is not None and args.site not in {s.name for s in config.sites}:
        known = ", ".join(s.name for s in config.sites) or "none"
        raise InputError([f"--site: no site {args.site!r} in {args.config} (sites: {known})"])
    try:
        if args.command == "rollup":
            return asyncio.run(_rollup(config, start, end))
        return asyncio.run(_energy(config, start, end, args.site, args.json))
    except InfluxError as exc:
        # InfluxDB down or dying mid-run: one line, not a traceback. A rollup is
        # idempotent, so the remedy is to run it again once InfluxDB is back.
        again = "; what was written stays, and running the rollup again completes it" if args.command == "rollup" else ""
        print(f"greenwatch {args.command}: InfluxDB failed: {exc}{again}", file=sys.stderr)
        return EXIT_INFLUX


async def _rollup(config: Config, start: dt.datetime, end: dt.datetime) -> int:
    client = query_client(config.influxdb)
    sites = site_inputs(config.sites, config.defaults.interval, cache_dir_beside(config.spool.path))
    try:
        rollup = Rollup(client, sites)
        if sys.stdout.isatty():
            with Progress(TextColumn("rollup"), BarColumn(), MofNCompleteColumn(), TextColumn("hours"),
                          TimeRemainingColumn(), console=_console()) as bar:
                task = bar.add_task("rollup", total=None)
                stats = await rollup.run(start, end, lambda done, total: bar.update(task, completed=done, total=total))
        else:
            stats = await rollup.run(start, end)
    finally:
        await client.close()
    _console().print(f"rolled up {stats.hours} hours: {stats.energy_points} energy points, {stats.site_points} "
                     f"site_energy points ({stats.slow_series_hours} series-hours from raw points)", highlight=False)
    return EXIT_OK


async def _energy(config: Config, start: dt.datetime, end: dt.datetime, site: str | None, as_json: bool) -> int:
    client = query_client(config.influxdb)
    try:
        sites = [s for s in config.sites if site is None or s.name == site]
        report = await read_report(client, sites, start, end)
    finally:
        await client.close()
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_table(report)
    return EXIT_OK


def _fmt(value: Any, pattern: str) -> str:
    return "" if value is None else format(value, pattern)


def _print_table(report: Report) -> None:
    table = Table(title=f"energy {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC")
    for col in ("site", "kWh", "IT kWh", "PUE", "cat.", "cost", "kgCO2e", "carbon", "coverage", "top consumers"):
        table.add_column(col, justify="left" if col in ("site", "carbon", "top consumers") else "right")
    for name, s in report.sites.items():
        top = ", ".join(f"{t['device']} {t['kwh']:,.1f}" for t in s.top[:3])
        table.add_row(name, _fmt(s.kwh, ",.1f"), _fmt(s.it_kwh, ",.1f"), _fmt(s.pue, ".2f"),
                      "" if s.pue_category is None else str(s.pue_category),
                      f"{_fmt(s.cost, ',.2f')} {s.currency}", _fmt(s.kgco2e, ",.1f"), s.carbon_method,
                      f"{s.coverage:.1%}", top)
    t = report.total
    table.add_row("[bold]total[/bold]", _fmt(t["kwh"], ",.1f"), _fmt(t["it_kwh"], ",.1f"), _fmt(t["pue"], ".2f"), "",
                  " + ".join(f"{v:,.2f} {c}" for c, v in t["cost"].items()), _fmt(t["kgco2e"], ",.1f"), "", "", "")
    _console().print(table)
