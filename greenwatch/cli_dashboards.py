"""`greenwatch dashboards build|check|publish` (hooked into greenwatch/cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from dashboards import build
from dashboards.publish import PublishError, publish
from greenwatch.config import load_config
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
    try:
        done = publish(config.grafana, config.influxdb, build.load(), force=force)
    except PublishError as exc:
        err.print(f"greenwatch dashboards publish: {exc}", markup=False, highlight=False)
        return EXIT_BAD_INPUT if exc.bad_input else EXIT_FAILED
    for label, items in (("created", done.created), ("updated", done.updated), ("unchanged", done.unchanged)):
        for item in items:
            out.print(f"{label}: {item}", highlight=False)
    out.print(f"{config.grafana.url}: {len(done.created)} created, {len(done.updated)} updated, "
              f"{len(done.unchanged)} unchanged", highlight=False)
    return EXIT_OK
