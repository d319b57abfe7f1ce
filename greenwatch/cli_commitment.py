"""`greenwatch commitment`: the commitment's progress, as a table or JSON (hooked into
greenwatch/cli.py). The figures are reports.commitment's; see docs/commitment.md."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from greenwatch.cli_energy import parse_when
from greenwatch.config import Config, load_config
from greenwatch.core.influx import query_client
from greenwatch.core.yamlfile import InputError
from reports.commitment import CommitmentReport, check_sites, commitment_progress

COMMANDS = ("commitment",)
EXIT_OK = 0
out = Console()


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("commitment", help="progress against the commitment's baseline, trajectory and targets")
    p.add_argument("--config", "-c", required=True, type=Path)
    p.add_argument("--at", help="as of this time (ISO time or date; default now)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def dispatch(args: argparse.Namespace) -> int:
    as_of = parse_when(args.at, "--at") if args.at else dt.datetime.now(dt.UTC)
    config = load_config(args.config)
    if config.commitment is None:
        raise InputError([f"{args.config}: no commitment: section (see docs/commitment.md)"])
    check_sites(config, args.config)
    report = asyncio.run(_progress(config, as_of))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    return EXIT_OK


async def _progress(config: Config, as_of: dt.datetime) -> CommitmentReport:
    async with query_client(config.influxdb) as client:
        return await commitment_progress(config, client, as_of)


def print_report(report: CommitmentReport) -> None:
    view = report.as_table()
    table = Table(title=f"{report.name}: progress as of {report.as_of:%Y-%m-%d %H:%M} UTC", caption=view["note"])
    for col in view["header"]:
        table.add_column(col, justify="left" if col in ("target", "status") else "right")
    for row in view["rows"]:
        status = row[-1]
        colour = "green" if status == "on track" else "red" if status.startswith("behind") else "yellow"
        table.add_row(*row[:-1], f"[{colour}]{status}[/{colour}]" if status else "")
    Console(width=None if out.is_terminal else 160).print(table)
