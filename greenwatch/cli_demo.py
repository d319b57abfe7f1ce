"""`greenwatch demo`: the whole of greenwatch on one machine, in one command (hooked
into greenwatch/cli.py).

A private InfluxDB (Debian's influxd in DIR/influxdb, on a free port), the simulated
estate as live devices (simulate.live: snmpsim agents, Redfish and smart-plug HTTP
servers), a week of history with its rollups and rules (as `greenwatch simulate`),
the weekly report (as `greenwatch report`), the dashboards' JSON (published when a
Grafana answers at --grafana / GRAFANA_URL), then the service polling live until
Ctrl-C, which stops everything the demo started."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from greenwatch.core.influxd import Influxd, InfluxdError
from greenwatch.core.yamlfile import InputError
from simulate.live.layout import LAYOUT, Layout, write_live_estate

if TYPE_CHECKING:  # imported lazily at run time: `greenwatch --help` stays quick
    from greenwatch.config import Config
    from greenwatch.service import Loaded
    from reports.weekly import Week

COMMANDS = ("demo",)
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
READY_TIMEOUT_S = 30.0
USUAL_INFLUX_PORT, USUAL_STATUS_PORT = 8086, 9108
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("demo", help="a live demo estate: InfluxDB, simulated devices, a week of history, "
                                           "rules, the weekly report, dashboards, then live polling (Ctrl-C stops)")
    p.add_argument("--dir", type=Path, default=Path("demo-data"), help="where everything lives (default ./demo-data)")
    p.add_argument("--days", type=float, help="days of history (default: the last complete week and this one so far)")
    p.add_argument("--scale", type=int, default=1, help="N x the racks and offices (~80 x N devices; default 1)")
    p.add_argument("--interval", type=float, default=60.0, metavar="SECONDS", help="live poll interval (default 60)")
    p.add_argument("--step", type=int, default=300, metavar="SECONDS",
                   help="seconds between the history's simulated polls (default 300)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--influx-port", type=int, help="InfluxDB's port (default: a free one); refused if taken")
    p.add_argument("--grafana", default=os.environ.get("GRAFANA_URL"),
                   help="publish the dashboards to this Grafana (default $GRAFANA_URL; token from $GRAFANA_TOKEN)")


def _check(args: argparse.Namespace) -> None:
    problems = []
    if args.days is not None and not 0 < args.days <= 60:
        problems.append(f"--days: expected more than 0 and at most 60, got {args.days:g}")
    if not 1 <= args.scale <= 20:
        problems.append(f"--scale: expected 1 to 20, got {args.scale}")
    if not 1 <= args.interval <= 3600:
        problems.append(f"--interval: expected 1 to 3600 seconds, got {args.interval:g}")
    if not 10 <= args.step <= 300:
        problems.append(f"--step: expected 10 to 300 seconds (the rollups bridge at most 5 minutes), got {args.step}")
    if args.influx_port is not None and not _tcp_free(args.influx_port):
        problems.append(f"--influx-port: tcp port {args.influx_port} on 127.0.0.1 is in use by another program; "
                        "the demo never writes into an InfluxDB it did not start: choose another port")
    if snmpsim_responder() is None:
        problems.append("snmpsim-command-responder not found (it plays the demo's SNMP devices): "
                        "pip install -e '.[demo]' in this checkout, or run ./demo/run.sh")
    if problems:
        raise InputError(problems)


def snmpsim_responder() -> str | None:
    from simulate.live.__main__ import responder

    return responder()


def _tcp_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as influxd (Go) binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listening(proto: str, port: int) -> bool:
    """Whether something listens on 127.0.0.1:PORT now (TCP connects; UDP cannot be bound)."""
    if proto == "tcp":
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class DemoError(Exception):
    """A part of the demo did not start."""


class PortTaken(DemoError):
    """A port chosen free for the live devices was taken before they could bind it."""


# Free ports are chosen before the live devices bind them; another program can take one
# in between. The demo then chooses again, this many times in all.
LIVE_ATTEMPTS = 3


def dispatch(args: argparse.Namespace) -> int:
    _check(args)
    # SIGTERM before the service runs (it has its own handler) stops the demo as Ctrl-C
    # does, through the `finally` below: nothing it started is left behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    data = args.dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    influxd: Influxd | None = None
    live: subprocess.Popen[bytes] | None = None
    try:
        influxd = _start_influxd(data / "influxdb", args.influx_port)
        out.print(f"InfluxDB {influxd.url} (pid {influxd.pid}, data in {data / 'influxdb'})")
        for attempt in range(1, LIVE_ATTEMPTS + 1):
            config_path = write_live_estate(data, influxd.url, scale=args.scale, extra=_settings(args, data))
            try:
                live = _start_live(data)
                break
            except PortTaken:
                if attempt == LIVE_ATTEMPTS:
                    raise
                out.print("a port chosen for the live devices was taken meanwhile: choosing others")
        return asyncio.run(_demo(args, config_path))
    except (InfluxdError, DemoError) as exc:
        err.print(f"greenwatch demo: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.print("greenwatch demo: interrupted")
        return EXIT_OK
    finally:
        _stop(live)
        if influxd is not None:
            influxd.stop()
        out.print("demo stopped: InfluxDB, the live devices and the service are all down "
                  f"(the data stays in {data})")


def _settings(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """What the demo sets over the estate's config: the live interval, the service's
    endpoint on a free port with a token of this run's, the report's folder, Grafana."""
    token_file = data / "http.token"
    if not token_file.exists():
        token_file.write_text(secrets.token_hex(24))
        token_file.chmod(0o600)
    settings: dict[str, Any] = {
        "defaults": {"interval": f"{args.interval:g}s"},
        # The usual port when it is free, else any free one (the demo prints which).
        "http": {"port": USUAL_STATUS_PORT if _tcp_free(USUAL_STATUS_PORT) else 0, "token": {"file": str(token_file)}},
        "report": {"out_dir": str(data / "reports"), "schedule": False},
    }
    if args.grafana:
        grafana: dict[str, Any] = {"url": args.grafana}
        if os.environ.get("GRAFANA_TOKEN"):
            grafana["token"] = "${GRAFANA_TOKEN}"  # read from the environment, never written down
        settings["grafana"] = grafana
    return settings


def _start_influxd(base: Path, port: int | None) -> Influxd:
    base.mkdir(parents=True, exist_ok=True)
    influxd = Influxd(base)
    if port is None and _tcp_free(USUAL_INFLUX_PORT):
        port = USUAL_INFLUX_PORT  # a free port of its own otherwise: never someone else's InfluxDB
    if port is not None:
        influxd.port, influxd.url = port, f"http://127.0.0.1:{port}"
    influxd.write_config()
    influxd.start()
    return influxd


def _start_live(data: Path) -> subprocess.Popen[bytes]:
    """`python -m simulate.live DATA`, in a session of its own (a Ctrl-C reaches the demo,
    which stops it); returns once every device port listens."""
    log = open(data / "live.log", "ab")  # noqa: SIM115 (the child keeps writing to it)
    proc = subprocess.Popen([sys.executable, "-m", "simulate.live", str(data)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    layout = Layout.load(data / LAYOUT)
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = layout.ports()
    while waiting:
        if proc.poll() is not None:
            tail = (data / "live.log").read_text(errors="replace")[-2000:]
            taken = "address already in use" in tail.rpartition("Traceback")[2]
            raise (PortTaken if taken else DemoError)(f"the live devices exited with code {proc.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            _stop(proc)
            raise DemoError(f"the live devices did not listen on {waiting} within {READY_TIMEOUT_S:g} s "
                               f"(see {data / 'live.log'})")
        waiting = [(proto, port) for proto, port in waiting if not _listening(proto, port)]
        time.sleep(0.1)
    out.print(f"live devices: {sum(len(a.devices) for a in layout.agents)} SNMP (snmpsim, {len(layout.agents)} "
              f"agents), {len(layout.redfish)} Redfish servers, plugs and meters on HTTP :{layout.http_port} "
              f"(pid {proc.pid})")
    return proc


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _demo(args: argparse.Namespace, config_path: Path) -> int:
    from greenwatch.cli_simulate import simulate
    from greenwatch.service import load

    loaded = load(config_path)
    config = loaded.config
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    week = _report_week(now, args.days, config.report.timezone)
    days = args.days if args.days is not None else (now - week.start).total_seconds() / 86400
    out.print(f"history: {days:.1f} days to now, a simulated poll every {args.step} s")
    await simulate(config, now, days, args.seed, args.step, rules=True)
    report = await _report(config, week)
    folder = await asyncio.to_thread(_dashboards, args.grafana, config_path, args.dir.resolve() / "dashboards")
    return await _live(loaded, config_path, report, folder)


def _report_week(now: dt.datetime, days: float | None, zone: str) -> Week:
    """The last complete week when the history covers it, else this week so far."""
    from reports.weekly import last_complete_week

    week = last_complete_week(now, zone)
    if days is not None and week.start < now - dt.timedelta(days=days):
        week = week.shifted(1)
    return week


async def _report(config: Config, week: Week) -> Path:
    from greenwatch.cli_report import run_report

    outcome = await run_report(config, week, config.report.out_dir, send=False)
    out.print(f"report written: {outcome.html} (week {week.label}; PDF and findings CSV beside it)")
    return outcome.html


def _dashboards(url: str | None, config_path: Path, folder: Path) -> Path:
    """Build the dashboards' JSON; publish it when a Grafana answers at `url`."""
    from dashboards import build

    paths = build.write(folder)
    out.print(f"dashboards built: {len(paths)} in {folder}")
    if not url:
        out.print("  no Grafana given (--grafana or GRAFANA_URL): not published; `docker compose up` "
                  "runs one with them provisioned")
        return folder
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/health", timeout=3):
            pass
    except urllib.error.HTTPError:
        pass  # it answered (a proxy or an older Grafana may want auth even here): reachable
    except (urllib.error.URLError, OSError) as exc:
        out.print(f"  Grafana at {url} does not answer ({exc}): not published")
        return folder
    if not os.environ.get("GRAFANA_TOKEN"):
        out.print(f"  Grafana at {url} answers, but GRAFANA_TOKEN is not set: not published")
        return folder
    from greenwatch.cli_dashboards import _publish

    _publish(config_path, force=False)
    return folder


async def _live(loaded: Loaded, config_path: Path, report: Path, dashboards: Path) -> int:
    """The service, polling live until Ctrl-C (or SIGTERM); then it drains and stops."""
    from greenwatch.service import Service, tune_gc

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    config = loaded.config
    tune_gc()
    async with Service(loaded) as service:
        running = asyncio.create_task(service.run(stop))
        while service.api is None or service.api.url is None:
            if running.done():
                await running
                break
            await asyncio.sleep(0.05)
        status = f"{service.api.url}/healthz" if service.api and service.api.url else "(endpoint not started)"
        out.print("\n[bold]open these:[/bold]", highlight=False)
        out.print(f"  report:      {report}")
        out.print(f"  InfluxDB:    {config.influxdb.url} (database {config.influxdb.database})")
        out.print(f"  dashboards:  {dashboards}")
        out.print(f"  status page: {status} (/devices and /findings with the bearer token in "
                  f"{config_path.parent / 'http.token'})")
        out.print(f"  status:      greenwatch status --config {config_path}")
        out.print(f"polling {len(service.collector.entries)} live devices every {config.defaults.interval:g} s; "
                  "Ctrl-C stops everything", highlight=False)
        await running
    return EXIT_OK
