"""`greenwatch simulate`: fill InfluxDB with an estate's generated history, then roll
it up and run the rules over it (hooked into greenwatch/cli.py). See docs/simulate.md."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from energy.intensity import cache_dir_beside
from energy.rollup import Rollup, site_inputs
from greenwatch.cli_energy import check_meters, parse_when
from greenwatch.config import Config
from greenwatch.core.influx import query_client
from greenwatch.core.yamlfile import InputError
from rules.runner import engine_from
from simulate.estate import write_estate_config
from simulate.history import check_step, write_history

COMMANDS = ("simulate",)
EXIT_OK = 0
out = Console()


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("simulate", help="write an estate's generated history into InfluxDB, roll it up, run the rules")
    p.add_argument("--config", "-c", required=True, type=Path)
    p.add_argument("--days", type=float, default=7.0, help="how many days of history (default 7)")
    p.add_argument("--end", help="end of the history (ISO time or date; default: now)")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same points (default 1)")
    p.add_argument("--step", type=int, default=60, metavar="SECONDS", help="poll interval simulated (default 60)")
    p.add_argument("--estate", action="store_true",
                   help="first write the demo estate's config to --config (see --influx, --database, --scale)")
    p.add_argument("--influx", default="http://127.0.0.1:8086", help="with --estate: the InfluxDB URL")
    p.add_argument("--database", default="greenwatch", help="with --estate: the database")
    p.add_argument("--scale", type=int, default=1, help="with --estate: N x the racks and offices (15 + 64 x N devices)")
    p.add_argument("--no-rules", action="store_true", help="write and roll up only")


def _end(text: str | None) -> dt.datetime:
    if text is None:  # up to now, so that live data (the demo's) carries straight on
        return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    return parse_when(text, "--end").astimezone(dt.UTC)


def dispatch(args: argparse.Namespace) -> int:
    from greenwatch.service import load

    if not 0 < args.days <= 400:
        raise InputError([f"--days: expected more than 0 and at most 400, got {args.days:g}"])
    if not 1 <= args.step <= 86400:
        raise InputError([f"--step: expected 1 to 86400 seconds, got {args.step}"])
    if not 1 <= args.scale <= 1000:
        raise InputError([f"--scale: expected 1 to 1000, got {args.scale}"])
    end = _end(args.end)
    if args.estate:
        if args.config.exists():  # never over someone's own config
            raise InputError([f"--estate: {args.config} exists; give a new path for the demo estate's config"])
        write_estate_config(args.config.parent, args.influx, args.database, scale=args.scale, name=args.config.name)
        out.print(f"wrote the demo estate's config to {args.config}", highlight=False)
    # load() checks the whole config, its profiles and its rules: bad input stops here.
    config = load(args.config).config
    check_meters(config, args.config)
    try:
        check_step(config, args.step)
    except ValueError as exc:
        raise InputError([f"--step: {exc}"]) from None
    return asyncio.run(simulate(config, end, args.days, args.seed, args.step, not args.no_rules))


async def simulate(config: Config, end: dt.datetime, days: float, seed: int, step_s: int, rules: bool) -> int:
    start = end - dt.timedelta(days=days)
    client = query_client(config.influxdb)
    tty = sys.stdout.isatty()
    try:
        points = await write_history(config, end, days, seed, step_s, progress=tty, client=client)
        out.print(f"wrote {points:,} points: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, seed {seed}",
                  highlight=False)
        rollup = Rollup(client, site_inputs(config.sites, config.defaults.interval, cache_dir_beside(config.spool.path)))
        with Progress(TextColumn("rollup"), BarColumn(), MofNCompleteColumn(), TextColumn("hours"),
                      TimeRemainingColumn(), console=out, disable=not tty) as bar:
            task = bar.add_task("rollup", total=None)
            stats = await rollup.run(start, end, lambda done, total: bar.update(task, completed=done, total=total))
        out.print(f"rolled up {stats.hours} hours: {stats.energy_points:,} energy and {stats.site_points:,} "
                  f"site_energy points", highlight=False)
        if rules:
            events = await engine_from(client, config.rules, config.sites).run(end)
            out.print(f"rules as of {end:%Y-%m-%d %H:%M} UTC: {len(events)} findings", highlight=False)
            for f in sorted(events, key=lambda f: (f.rule, f.id)):
                out.print(f"  {f.state:8} {f.id}: {f.summary}", markup=False, highlight=False)
    finally:
        await client.close()
    return EXIT_OK
