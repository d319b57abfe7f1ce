"""`greenwatch report`: the weekly report on demand (hooked into greenwatch/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from greenwatch.config import Config, load_config
from greenwatch.core.influx import InfluxError, query_client
from reports.weekly import Week, last_complete_week, parse_week, read_report

if TYPE_CHECKING:
    from reports.deliver import Outcome

COMMANDS = ("report",)
EXIT_OK, EXIT_NO_DATA, EXIT_BAD_INPUT, EXIT_NOT_SENT = 0, 1, 2, 4
out = Console()
err = Console(stderr=True, soft_wrap=True)


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("report", help="the weekly report: HTML, PDF and CSV on disk; --send mails it")
    p.add_argument("--config", "-c", required=True, type=Path)
    p.add_argument("--week", help="ISO week such as 2026-W47 (default: the last complete week)")
    p.add_argument("--send", action="store_true", help="mail it to report.recipients (exit 4 if any send failed)")
    p.add_argument("--out", type=Path, help="folder for the files (default: report.out_dir)")


def dispatch(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    zone = config.report.timezone
    week = parse_week(args.week, zone) if args.week else last_complete_week(dt.datetime.now(dt.timezone.utc), zone)
    try:
        outcome = asyncio.run(run_report(config, week, args.out or config.report.out_dir, args.send))
    except InfluxError as exc:
        # Nothing to report from: say so plainly (the message names the server, never its credentials).
        err.print(f"cannot read the week's figures from InfluxDB: {exc}", markup=False, highlight=False)
        return EXIT_NO_DATA
    out.print(f"weekly report {week.label}: {outcome.html} (and .pdf, -findings.csv, charts)", highlight=False)
    for to in outcome.sent:
        out.print(f"sent to {', '.join(to)}", highlight=False)
    for problem in outcome.failed:
        err.print(f"not sent: {problem}; the report is kept in {outcome.html.parent}", markup=False, highlight=False)
    return EXIT_OK if outcome.ok else EXIT_NOT_SENT


async def run_report(config: Config, week: Week, out_dir: Path, send: bool) -> Outcome:
    client = query_client(config.influxdb)
    try:
        figures = await read_report(client, config, week)
    finally:
        await client.close()
    # Imported here: rendering pulls in matplotlib and reportlab, which every other
    # command (and `greenwatch --help`) would otherwise pay for.
    from reports.deliver import deliver

    return await deliver(figures, config.report, out_dir, send)
