"""`greenwatch dashboards build|check|publish` (hooked into greenwatch/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

from rich.console import Console

from dashboards import build
from dashboards.publish import PublishError, publish
from greenwatch.config import Config, load_config
from greenwatch.core.influx import InfluxError
from greenwatch.core.yamlfile import InputError, load_yaml, problem_at

COMMANDS = ("dashboards",)
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
out = Console()
err = Console(stderr=True, soft_wrap=True)


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dashboards = subparsers.add_parser("dashboards", help="Grafana dashboards: build the JSON, check it, publish it")
    sub = dashboards.add_subparsers(dest="dashboards_action", required=True)
    b = sub.add_parser("build", help="regenerate the dashboards' JSON from the code (dashboards/json/)")
    b.add_argument("--out", type=Path, default=build.JSON_DIR, help="folder to write (default: %(default)s)")
    sub.add_parser("check", help="exit 1 when the committed JSON is not what the code builds")
    p = sub.add_parser("publish", help="upsert the folder, the data source and every dashboard into Grafana")
    p.add_argument("--config", "-c", required=True, type=Path)
    p.add_argument("--force", action="store_true",
                   help="overwrite dashboards even when they changed in Grafana meanwhile (no 412)")


def dispatch(args: argparse.Namespace) -> int:
    if args.dashboards_action == "build":
        for path in build.write(args.out):
            out.print(f"wrote {path}", highlight=False)
        return EXIT_OK
    if args.dashboards_action == "check":
        problems = build.stale()
        for problem in problems:
            err.print(f"{problem}: run `greenwatch dashboards build` and commit the JSON", markup=False,
                      highlight=False)
        return EXIT_FAILED if problems else EXIT_OK
    if args.dashboards_action == "publish":
        return _publish(args.config, args.force)
    raise AssertionError(args.dashboards_action)


def _publish(path: Path, force: bool) -> int:
    config = load_config(path)
    if config.grafana.token is None:
        # A config error like any other: file, line, what to write.
        data, node = load_yaml(path)
        loc: tuple[object, ...] = ("grafana",) if isinstance(data, dict) and "grafana" in data else ()
        raise InputError([problem_at(path, node, loc, "no token: expected token: ${GRAFANA_TOKEN} (a "
                                     "service-account token), {env: NAME} or {file: PATH}")])
    # The config's own grafana.variables win over what the commitment gives.
    variables = {**asyncio.run(commitment_variables(config)), **config.grafana.variables}
    try:
        done = publish(config.grafana.model_copy(update={"variables": variables}), config.influxdb, build.load(),
                       force=force)
    except PublishError as exc:
        err.print(f"greenwatch dashboards publish: {exc}", markup=False, highlight=False)
        return EXIT_BAD_INPUT if exc.bad_input else EXIT_FAILED
    for label, items in (("created", done.created), ("updated", done.updated), ("unchanged", done.unchanged)):
        for item in items:
            out.print(f"{label}: {item}", highlight=False)
    out.print(f"{config.grafana.url}: {len(done.created)} created, {len(done.updated)} updated, "
              f"{len(done.unchanged)} unchanged", highlight=False)
    return EXIT_OK


async def commitment_variables(config: Config, now: dt.datetime | None = None) -> dict[str, float]:
    """The commitment tracker's numbers as `greenwatch commitment` computes them (the
    next tCO2e target's baseline, trajectory today and target; the fixed factor; the
    lowest PUE ceiling), read once at publish. Empty without a commitment; on an
    InfluxDB error, said, and the dashboard keeps its defaults."""
    if config.commitment is None:
        return {}
    from reports.commitment import commitment_progress
    from greenwatch.core.influx import query_client

    now = now or dt.datetime.now(dt.UTC)
    client = query_client(config.influxdb)
    try:
        report = await commitment_progress(config, client, now)
    except (TimeoutError, InfluxError, OSError) as exc:
        err.print(f"commitment figures not read ({exc}): the commitment tracker keeps its variables as they are",
                  markup=False, highlight=False)
        return {}
    finally:
        await client.close()
    values: dict[str, float] = {"fixed_factor": report.fixed_factor}
    tco2e = sorted((t for t in report.targets if t.metric == "tco2e"), key=lambda t: t.year)
    if tco2e:
        t = next((t for t in tco2e if t.year >= now.year), tco2e[-1])
        for name, value in (("baseline_tco2e", t.baseline), ("trajectory_tco2e", t.trajectory),
                            ("target_tco2e", t.target)):
            if value is not None:
                values[name] = round(value, 3)
    pue = [t.target for t in report.targets if t.metric == "pue"]
    if pue:
        values["pue_target"] = min(pue)
    return values
