"""`greenwatch status`: the estate (devices up and down, last poll, power now) and the
open findings, from the running service's endpoint when it answers, else from
InfluxDB (each device's last `poll` and `power` points)."""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from greenwatch.config import Config, load_config
from greenwatch.core.influx import InfluxClient, InfluxError, query_client
from greenwatch.http_api import open_findings, rfc3339

COMMANDS = ("status",)
EXIT_OK, EXIT_UNREACHABLE = 0, 1
out = Console()
err = Console(stderr=True, soft_wrap=True)

# Each device's newest poll and its newest device-total power (the scopes
# schema.device_watts prefers are summed by the service; here the device total).
LAST_POLLS = ('SELECT "up", "error", "duration_ms" FROM "poll" WHERE time > now() - 7d '
              'GROUP BY "site", "device", "kind" ORDER BY time DESC LIMIT 1')
LAST_POWER = ('SELECT last("watts") AS "watts" FROM "power" WHERE time > now() - 7d AND "scope" = \'device\' '
              'AND "entity" = \'total\' GROUP BY "site", "device"')


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("status", help="devices up and down, power now, open findings (service or InfluxDB)")
    p.add_argument("--config", "-c", required=True, type=Path)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--shard", metavar="I/N", help="ask the endpoint of this shard's service")


def dispatch(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    shard_index = int(args.shard.split("/")[0]) - 1 if args.shard else 0
    try:
        devices, findings, source = asyncio.run(gather(config, shard_index))
    except InfluxError as exc:
        err.print(f"greenwatch status: the service does not answer and InfluxDB cannot be read: {exc}",
                  markup=False, highlight=False)
        return EXIT_UNREACHABLE
    if args.json:
        out.print_json(json.dumps({"source": source, "devices": devices, "findings": findings}))
        return EXIT_OK
    print_tables(devices, findings, source)
    return EXIT_OK


async def gather(config: Config, shard_index: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """(devices, findings, where they came from)."""
    from_service = await from_endpoint(config, shard_index)
    if from_service is not None:
        return from_service
    async with query_client(config.influxdb) as client:
        return await devices_from_influx(client), await open_findings(client), f"InfluxDB at {client.url}"


async def from_endpoint(config: Config, shard_index: int) -> tuple[list, list, str] | None:
    """The running service's view, or None when it does not answer (or has no token set)."""
    http = config.http
    if not http.enabled or http.token is None:
        return None
    scheme = "https" if http.tls_cert else "http"
    host = "127.0.0.1" if http.listen in ("0.0.0.0", "::") else http.listen
    base = f"{scheme}://{host}:{http.port + shard_index}"
    headers = {"Authorization": f"Bearer {http.token.get_secret_value()}"}
    ssl_context: ssl.SSLContext | bool = True
    if http.tls_cert:
        # Trust exactly the endpoint's own certificate (often self-signed, or issued for
        # a name other than the address asked): the token goes to nobody else.
        ssl_context = ssl.create_default_context(cafile=str(http.tls_cert))
        ssl_context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        ssl_context.check_hostname = False
    timeout = aiohttp.ClientTimeout(total=5)
    try:
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            async with session.get(base + "/devices", ssl=ssl_context) as response:
                if response.status != 200:
                    return None
                devices = await response.json()
            async with session.get(base + "/findings", ssl=ssl_context) as response:
                # 502: the service runs but cannot read InfluxDB; its devices still stand.
                body = await response.json()
                ok = response.status == 200 and isinstance(body, list)
                findings = body if ok else []
                why = body.get("error") if isinstance(body, dict) else f"HTTP {response.status}"
                source = f"the service at {base}" + ("" if ok else f" (findings unavailable: {why})")
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None
    return devices, findings, source


async def devices_from_influx(client: InfluxClient) -> list[dict[str, Any]]:
    polls = await client.query(LAST_POLLS, epoch="s")
    power = await client.query(LAST_POWER)
    watts = {(s["tags"]["site"], s["tags"]["device"]): s["values"][0][1]
             for s in power["results"][0].get("series", []) or []}
    devices = []
    for series in polls["results"][0].get("series", []) or []:
        tags = series["tags"]
        row = dict(zip(series["columns"], series["values"][0]))
        devices.append({
            "site": tags["site"], "device": tags["device"], "kind": tags.get("kind") or None,
            "up": row["up"] == 1, "last_poll": rfc3339(row["time"]), "last_error": row.get("error"),
            "last_duration_ms": row.get("duration_ms"), "watts": watts.get((tags["site"], tags["device"])),
        })
    return sorted(devices, key=lambda d: (d["site"], d["device"]))


def print_tables(devices: list[dict[str, Any]], findings: list[dict[str, Any]], source: str) -> None:
    up = sum(1 for d in devices if d.get("up"))
    down = sum(1 for d in devices if d.get("up") is False)
    watts = sum(d["watts"] or 0.0 for d in devices)
    out.print(f"from {source}: {len(devices)} devices, {up} up, {down} down; {watts:,.0f} W now; "
              f"{len(findings)} open findings", highlight=False)
    table = Table(title="devices")
    for col in ("site", "device", "kind", "state", "last poll", "watts", "error"):
        table.add_column(col, justify="right" if col == "watts" else "left", overflow="fold")
    for d in devices:
        state = {True: "[green]up[/green]", False: "[red]down[/red]", None: "not polled yet"}[d.get("up")]
        table.add_row(d["site"], d["device"], d.get("kind") or "", state, d.get("last_poll") or "",
                      "" if d.get("watts") is None else f"{d['watts']:,.0f}", d.get("last_error") or "")
    out.print(table)
    if findings:
        table = Table(title="open findings")
        for col in ("rule", "site", "device", "severity", "kWh/yr", "summary"):
            table.add_column(col, justify="right" if col == "kWh/yr" else "left", overflow="fold")
        for f in findings:
            kwh = f.get("kwh_per_year")
            table.add_row(f.get("rule") or "", f.get("site") or "", f.get("device") or "", f.get("severity") or "",
                          "" if kwh is None else f"{kwh:,.0f}", f.get("summary") or "")
        out.print(table)
