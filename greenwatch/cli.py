"""The `greenwatch` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from greenwatch import cli_commitment, cli_dashboards, cli_demo, cli_energy, cli_simulate, cli_report, cli_rules, cli_status, logs
from greenwatch.core.schema import device_watts
from greenwatch.core.spool import SpoolLockedError
from greenwatch.core.yamlfile import InputError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_IN_USE = 3

# Each capability's commands live in a module of their own: add_commands(subparsers),
# COMMANDS (the names it adds) and dispatch(args) -> exit code.
COMMAND_MODULES = (cli_rules, cli_energy, cli_dashboards, cli_simulate, cli_commitment, cli_report,
                   cli_status, cli_demo)

out = Console()
err = Console(stderr=True, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="greenwatch", description="Open monitoring for green IT.")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", choices=["text", "json"], help="default: the config's logging.format, else text")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="poll every device on schedule until stopped (SIGTERM drains)")
    run.add_argument("--config", "-c", required=True, type=Path)
    run.add_argument("--shard", metavar="I/N", help="poll only shard I of N (1-based), by a hash of site and device")

    poll = sub.add_parser("poll", help="poll every device once, write, flush, print a table")
    poll.add_argument("--config", "-c", required=True, type=Path)
    poll.add_argument("--once", action="store_true", required=True, help="poll once and exit")
    poll.add_argument("--shard", metavar="I/N")

    check = sub.add_parser("check", help="validate the config and profiles; poll nothing")
    check.add_argument("--config", "-c", required=True, type=Path)

    profiles = sub.add_parser("profiles", help="list or show SNMP profiles")
    psub = profiles.add_subparsers(dest="action", required=True)
    plist = psub.add_parser("list", help="every profile known")
    plist.add_argument("--config", "-c", type=Path, help="also the config's profile_dirs")
    pshow = psub.add_parser("show", help="one profile, with what it inherits")
    pshow.add_argument("name")
    pshow.add_argument("--config", "-c", type=Path)
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    return p


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/3' -> (1, 3): 0-based index internally."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError([f"--shard: expected I/N such as 1/2, got {text!r}"]) from None
    if not (n >= 1 and 1 <= i <= n):
        raise InputError([f"--shard: need 1 <= I <= N, got {text!r}"])
    return i - 1, n


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format or "text")
    try:
        return _dispatch(args)
    except InputError as exc:
        for problem in exc.problems:
            err.print(problem, markup=False, highlight=False)
        return EXIT_BAD_INPUT
    except SpoolLockedError as exc:
        err.print(f"{exc}: is another `greenwatch run` using this config (or this --shard)?",
                  markup=False, highlight=False)
        return EXIT_IN_USE


def _dispatch(args: argparse.Namespace) -> int:
    for module in COMMAND_MODULES:
        if args.command in module.COMMANDS:
            return module.dispatch(args)
    from greenwatch import service

    if args.command == "profiles":
        return _profiles(args)
    loaded = service.load(args.config)
    if args.log_format is None and loaded.config.logging.format != "text":
        logs.setup(args.log_level, loaded.config.logging.format)
    if args.command == "check":
        devices = loaded.config.devices()
        out.print(f"{args.config}: valid: {len(loaded.config.sites)} sites, {len(devices)} devices, "
                  f"{len(loaded.profiles.profiles)} profiles; spool {loaded.config.spool.path}", highlight=False, soft_wrap=True)
        if not devices:
            err.print(f"{args.config}: note: no enabled devices, so run would poll nothing",
                      markup=False, highlight=False)
        return EXIT_OK
    shard = parse_shard(args.shard)
    if args.command == "run":
        asyncio.run(service.run_service(loaded, shard))
        return EXIT_OK
    if args.command == "poll":
        return asyncio.run(_poll_once(loaded, shard))
    raise AssertionError(args.command)


async def _poll_once(loaded, shard) -> int:  # noqa: ANN001 (service types stay lazy-imported)
    from greenwatch.service import Service

    async with Service(loaded, shard, once=True) as svc:
        results, flushed = await svc.poll_once()
        table = Table(title=f"greenwatch poll: {loaded.path}")
        for col in ("site", "device", "kind", "state", "watts", "readings", "time ms", "detail"):
            table.add_column(col, justify="right" if col in ("watts", "readings", "time ms") else "left")
        for entry, result in zip(svc.collector.entries, results):
            state = "[green]up[/green]" if result.up else "[red]down[/red]"
            detail = result.error or (f"{len(result.problems)} readings refused" if result.problems else "")
            watts = device_watts(result.samples)
            table.add_row(entry.site.name, entry.device.name, entry.kind, state,
                          "" if watts is None else f"{watts:,.0f}", str(result.readings),
                          f"{entry.stats.last_duration_ms:.0f}", detail)
        out.print(table)
        stats = svc.sink.stats()
        if flushed:
            out.print(f"written to InfluxDB: {stats.written} points", highlight=False)
        else:
            out.print(f"[yellow]InfluxDB did not take everything in time: {stats.pending} points stay "
                      f"spooled in {svc.spool.path} and are sent on the next run[/yellow]")
    return EXIT_OK


def _profiles(args: argparse.Namespace) -> int:
    from collector.profiles import load_profiles
    from greenwatch.config import load_config

    dirs = load_config(args.config).collector.profile_dirs if args.config else []
    profiles = load_profiles(dirs)
    if args.action == "list":
        table = Table(title="SNMP profiles")
        table.add_column("name", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        for col in ("sysobjectid", "extends", "metrics", "description"):
            table.add_column(col, overflow="fold")
        for name in sorted(profiles.profiles):
            p = profiles.profiles[name]
            table.add_row(name, p.kind or "", "\n".join(p.sysobjectid), ", ".join(p.extends),
                          str(len(p.metrics)), p.description)
        out.print(table)
        return EXIT_OK
    try:
        p = profiles.get(args.name)
    except KeyError as exc:
        raise InputError([str(exc.args[0])]) from None
    out.print(f"[bold]{p.name}[/bold]  {p.description}\nfile: {p.path}\nkind: {p.kind or '-'}\n"
              f"sysobjectid: {', '.join(p.sysobjectid) or '- (use profile: in the config)'}\n"
              f"extends: {', '.join(p.extends) or '-'}", highlight=False)
    table = Table()
    for col in ("measurement", "scope", "field", "MIB object", "OID", "unit", "scale"):
        table.add_column(col, overflow="fold")
    for m in p.metrics:
        for sym in m.all_symbols():
            oid = sym.OID if m.symbol is not None else f"{sym.OID}.<index>"
            table.add_row(sym.measurement or m.measurement, m.scope, sym.field, sym.name, oid,
                          sym.unit or "", f"{sym.scale_factor:g}")
    out.print(table)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
