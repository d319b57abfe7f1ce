"""`greenwatch rules test|lint|run`: the rules' commands (hooked into greenwatch/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from greenwatch.core.influx import InfluxClient, query_client
from greenwatch.core.influxd import Influxd, InfluxdError
from greenwatch.core.yamlfile import InputError
from rules.loader import PACK_DIR, lint, rule_test_files
from rules.runner import engine_from
from rules.testing import run_test_file

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
out = Console()
err = Console(stderr=True, soft_wrap=True)


COMMANDS = ("rules",)


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rules = subparsers.add_parser("rules", help="energy-saving rules: test, lint, run")
    sub = rules.add_subparsers(dest="rules_action", required=True)
    test = sub.add_parser("test", help="run rule tests (NAME.test.yaml) against a real InfluxDB")
    test.add_argument("paths", nargs="*", type=Path, help="test files, rule files or folders (default: the shipped pack)")
    test.add_argument("--influx", metavar="URL", help="use this InfluxDB (1.x API) instead of starting influxd")
    test.add_argument("--config", "-c", type=Path, help="default paths: the pack and this config's rules.dirs")
    lint_p = sub.add_parser("lint", help="check rule files: file, line, what is wrong")
    lint_p.add_argument("paths", nargs="*", type=Path, help="rule files or folders (default: the shipped pack)")
    lint_p.add_argument("--influx", metavar="URL", help="check queries on this InfluxDB instead of a private influxd")
    lint_p.add_argument("--offline", action="store_true", help="do not check the queries in InfluxDB")
    lint_p.add_argument("--config", "-c", type=Path, help="default paths: the pack and this config's rules.dirs")
    run = sub.add_parser("run", help="evaluate every rule as of a time, write findings, print a table")
    run.add_argument("--config", "-c", required=True, type=Path)
    run.add_argument("--at", help="evaluate as of this time (ISO 8601; default now, UTC if no zone)")


def dispatch(args: argparse.Namespace) -> int:
    if args.rules_action == "test":
        return asyncio.run(_test(args.paths or default_paths(args.config), args.influx))
    if args.rules_action == "lint":
        return _lint(args.paths or default_paths(args.config), args.influx, args.offline)
    if args.rules_action == "run":
        return asyncio.run(_run(args.config, parse_at(args.at)))
    raise AssertionError(args.rules_action)


def default_paths(config: Path | None) -> list[Path]:
    """The shipped pack (unless the config leaves it out) and the config's rule folders."""
    if config is None:
        return [PACK_DIR]
    from greenwatch.config import load_config

    cfg = load_config(config).rules
    return ([PACK_DIR] if cfg.shipped else []) + list(cfg.dirs)


def parse_at(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError([f"--at: expected an ISO 8601 time such as 2026-03-02T08:00:00Z, got {text!r}"]) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@contextmanager
def influx_url(url: str | None) -> Iterator[str]:
    """The URL given, or a private influxd in a temp dir, stopped afterwards."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="greenwatch-influxd-") as tmp:
        try:
            server = Influxd(Path(tmp))
            server.start()
        except InfluxdError as exc:
            raise InputError([str(exc)]) from None
        try:
            yield server.url
        finally:
            server.stop()


async def _test(paths: list[Path], url: str | None) -> int:
    files = rule_test_files(paths)
    if not files:
        raise InputError([f"{', '.join(map(str, paths))}: no rule tests (NAME.test.yaml) found"])
    failed = bad = 0
    with influx_url(url) as base:
        for path in files:
            try:
                result = await run_test_file(path, base)
            except InputError as exc:
                failed += 1
                bad += 1
                for problem in exc.problems:
                    err.print(problem, markup=False, highlight=False)
                continue
            if result.ok:
                out.print(f"[green]PASS[/green] {path} ({result.evaluations} evaluations)", highlight=False)
            else:
                failed += 1
                out.print(f"[red]FAIL[/red] {path}", highlight=False)
                for failure in result.failures:
                    out.print("  " + failure, markup=False, highlight=False)
    out.print(f"rules test: {len(files) - failed} passed, {failed} failed", highlight=False)
    # A test file that cannot be read is bad input (2); a test that ran and failed is 1.
    return EXIT_BAD_INPUT if bad else EXIT_OK if failed == 0 else EXIT_FAILED


def _lint(paths: list[Path], url: str | None, offline: bool) -> int:
    async def go(base: str | None) -> tuple[int, list[str]]:
        # A scratch database, so the queries run against no data and nothing is written.
        db = f"lint_{uuid.uuid4().hex[:8]}"
        client = InfluxClient(base, db) if base else None
        try:
            if client is not None:
                await client.query(f'CREATE DATABASE "{db}"', db="")
            rules, problems = await lint(paths, client)
        finally:
            if client is not None:
                await client.query(f'DROP DATABASE "{db}"', db="")
                await client.close()
        return len(rules), problems

    if offline:
        count, problems = asyncio.run(go(None))
    else:
        with influx_url(url) as base:
            count, problems = asyncio.run(go(base))
    if problems:
        raise InputError(problems)
    out.print(f"rules lint: {count} rules, no problems", highlight=False)
    return EXIT_OK


async def _run(config_path: Path, at: dt.datetime) -> int:
    from greenwatch.service import load

    config = load(config_path).config
    client = query_client(config.influxdb)
    engine = engine_from(client, config.rules, config.sites)
    try:
        events = await engine.run(at)
    finally:
        await client.close()
    table = Table(title=f"greenwatch rules run as of {at.isoformat()}")
    for col in ("state", "rule", "site", "device", "severity", "kWh/yr", "cost/yr", "kgCO2e/yr", "summary"):
        table.add_column(col, justify="right" if "/yr" in col else "left",
                         overflow="fold" if col == "summary" else "ellipsis")
    for f in sorted(events, key=lambda f: (-f.kwh_per_year, f.id)):
        table.add_row(f.state, f.rule, f.site, "/".join(p for p in (f.device, f.entity) if p), f.severity,
                      f"{f.kwh_per_year:,.0f}", f"{f.cost_per_year:,.0f} {f.currency}", f"{f.kgco2e_per_year:,.0f}",
                      f.summary)
    # Piped or captured output keeps whole ids and names rather than 80 columns of ellipses.
    Console(width=None if out.is_terminal else 200).print(table)
    opened = sum(f.state == "opened" for f in events)
    resolved = sum(f.state == "resolved" for f in events)
    out.print(f"{len(events)} findings written: {opened} opened, {len(events) - opened - resolved} still open, "
              f"{resolved} resolved", highlight=False)
    return EXIT_OK
