"""`python -m simulate.live DATA_DIR`: serve the live devices of DATA_DIR/live.json for
the config DATA_DIR/greenwatch.yaml until SIGTERM or SIGINT: the HTTP and Redfish
endpoints here, and one snmpsim process per agent (stopped with this one)."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.profiles import load_profiles
from greenwatch.config import load_config
from simulate.live.http import application
from simulate.live.layout import LAYOUT, Layout, community, write_live_estate
from simulate.live.readings import STEP_S, LiveEstate
from simulate.live.snmp import snmprec, write_atomically

log = logging.getLogger("greenwatch.live")


def _die_with_parent() -> None:
    # Linux prctl(PR_SET_PDEATHSIG, SIGTERM): an agent never outlives the live process.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def responder() -> str | None:
    """snmpsim's agent: on PATH, or beside this Python (a virtual environment not activated)."""
    beside = Path(sys.executable).parent / "snmpsim-command-responder"
    return shutil.which("snmpsim-command-responder") or (str(beside) if beside.exists() else None)


def start_agent(port: int, data_dir: Path, bind: str, log_path: Path) -> subprocess.Popen[bytes]:
    exe = responder() or "snmpsim-command-responder"
    cache = data_dir.parent / f"{data_dir.name}-cache"
    cache.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [exe, f"--data-dir={data_dir}", f"--cache-dir={cache}", f"--agent-udpv4-endpoint={bind}:{port}",
             "--log-level=error"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}, preexec_fn=_die_with_parent)  # noqa: PLW1509 (started before any thread)


def write_recordings(estate: LiveEstate, layout: Layout, profiles) -> None:
    for agent in layout.agents:
        folder = Path(agent.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for site, device, names in agent.devices:
            text = snmprec(profiles, names, estate.readings(site, device))
            write_atomically(folder / f"{community(site, device)}.snmprec", text)


async def serve(data_dir: Path, seed: int) -> None:
    config = load_config(data_dir / "greenwatch.yaml")
    layout = Layout.load(data_dir / LAYOUT)
    profiles = load_profiles(config.collector.profile_dirs)
    estate = LiveEstate(config, seed)
    write_recordings(estate, layout, profiles)
    agents = [start_agent(a.port, Path(a.data_dir), layout.bind, data_dir / "snmpsim.log") for a in layout.agents]
    runner = web.AppRunner(application(estate, layout.redfish), access_log=None)
    await runner.setup()
    for port in [layout.http_port, *layout.redfish]:
        await web.TCPSite(runner, layout.bind, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"live devices: HTTP on {layout.bind}:{layout.http_port}, {len(layout.redfish)} Redfish servers, "
          f"{sum(len(a.devices) for a in layout.agents)} SNMP devices on {len(agents)} agents", flush=True)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), STEP_S)
            except TimeoutError:
                # The next minute's readings: in a worker thread, so HTTP answers meanwhile.
                await asyncio.to_thread(write_recordings, estate, layout, profiles)
    finally:
        await runner.cleanup()
        for proc in agents:
            proc.terminate()
        for proc in agents:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulate.live", description=__doc__)
    p.add_argument("data_dir", type=Path)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--write-config", metavar="INFLUX_URL",
                   help="first write DATA_DIR/greenwatch.yaml and live.json for this InfluxDB (docker-compose)")
    p.add_argument("--host", default="127.0.0.1", help="with --write-config: the devices' address in the config")
    p.add_argument("--bind", default="127.0.0.1", help="with --write-config: where the devices listen")
    p.add_argument("--base-port", type=int, help="with --write-config: fixed ports from here (default: free ones)")
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--influx-token-env", metavar="NAME",
                   help="with --write-config: the config reads InfluxDB's token from this variable (2.x, 3.x)")
    return p


def write_config(args: argparse.Namespace) -> Path:
    """--write-config: the live estate's config and layout, as the container needs them."""
    extra: dict[str, Any] = {}
    if args.influx_token_env:
        extra["influxdb"] = {"token": f"${{{args.influx_token_env}}}"}  # the name, never the token
    if args.bind != "127.0.0.1":  # in a container: the service's endpoint reachable from outside it
        extra["http"] = {"listen": args.bind}
    return write_live_estate(args.data_dir, args.write_config, scale=args.scale, host=args.host, bind=args.bind,
                             base_port=args.base_port, extra=extra)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.write_config:
        write_config(args)
    asyncio.run(serve(args.data_dir, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
