"""How far one collector process goes: N devices on a fixed cycle, end to end.

Every device is a net-snmp `snmpd` on loopback (one real C agent answers them all,
as if it were N hosts), read through the `net-snmp-linux` profile (host CPU and
uptime, every interface's status and 64-bit octet counters); points go through the
spool to a real InfluxDB. The collector runs in this process, as `greenwatch run`
would. Printed: inventory and profile load time, the collector's CPU share (of one
core), resident memory, schedule lag (how late polls start: p50, p99, max) and what
was polled and written.

    python3 bench/scale.py --devices 10000 --interval 60 --cycles 2 [--engine gufo]

Numbers, not a pass/fail test. Takes cycles x interval seconds plus start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
# The project's packages before this folder's scripts (bench/energy.py is not `energy`).
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from realparts.influx import start_influx_server  # noqa: E402
from realparts.snmp import _start_snmpd  # noqa: E402

from greenwatch import service  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def write_inventory(path: Path, devices: int, address: str, influx_url: str, interval: int,
                    engine: str, rewalk: float | None) -> None:
    per_site = 100
    sites = []
    for s in range(0, devices, per_site):
        sites.append({
            "name": f"site-{s // per_site:04d}",
            "tags": {"region": f"r{s // 1000}"},
            "devices": [
                {"name": f"host-{d:05d}", "address": address, "profile": "net-snmp-linux",
                 "snmp": {"version": "2c", "community": "public"}, "tags": {"rack": f"R{d % 40}"}}
                for d in range(s, min(s + per_site, devices))
            ],
        })
    config = {
        "influxdb": {"url": influx_url, "database": "scale"},
        "spool": {"path": str(path.parent / "spool.db")},
        "defaults": {"interval": f"{interval}s", "timeout": "5s", "retries": 1,
                     **({"rewalk": f"{rewalk}s"} if rewalk else {})},
        "collector": {"concurrency": 512, "snmp_engine": engine},
        "sites": sites,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


async def run(loaded: service.Loaded, seconds: float) -> dict:
    service.tune_gc()  # as `greenwatch run` does
    svc = service.Service(loaded)
    await svc.__aenter__()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    svc.collector.start()
    peak = rss_mb()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(1)
        peak = max(peak, rss_mb())
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    entries = svc.collector.entries
    lags = [lag for e in entries for lag in e.stats.lags]
    result = {
        "wall_s": wall,
        "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "rss_mb": rss_mb(),
        "rss_peak_mb": peak,
        "lag_p50_ms": percentile(lags, 0.5) * 1000,
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags, default=float("nan")) * 1000,
        "polls": sum(e.stats.polls for e in entries),
        "up": sum(e.stats.up for e in entries),
        "down": sum(e.stats.down for e in entries),
        "skipped": sum(e.stats.skipped for e in entries),
        "poll_ms_p50": statistics.median([e.stats.last_duration_ms for e in entries if e.stats.polls] or [0]),
        "engine": svc.engine.name,
    }
    await svc.close(within_s=60)
    # After the close: polls in flight at the end are accepted (and written) during it.
    result["accepted"] = svc.collector.accepted
    result["written"] = svc.sink.stats().written
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--cycles", type=float, default=2)
    parser.add_argument("--engine", default="auto", choices=["auto", "pysnmp", "gufo"])
    parser.add_argument("--rewalk", type=float, metavar="SECONDS",
                        help="defaults.rewalk (default: greenwatch's, 10 min); at or below --interval: walk every poll")
    parser.add_argument("--cprofile", metavar="FILE",
                        help="profile the polling (event loop thread) into FILE and print the top 30 by own time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="gw-scale-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "snmpd").mkdir()
        (tmp_path / "influx").mkdir()
        agent = _start_snmpd(tmp_path / "snmpd")
        influx = start_influx_server(tmp_path / "influx")
        try:
            influx.create_database("scale")
            config = tmp_path / "greenwatch.yaml"
            write_inventory(config, args.devices, agent.address, influx.url, args.interval, args.engine, args.rewalk)
            t = time.perf_counter()
            loaded = service.load(config)
            load_s = time.perf_counter() - t
            base_rss = rss_mb()
            profiler = cProfile.Profile() if args.cprofile else None
            if profiler is not None:
                profiler.enable()
            result = asyncio.run(run(loaded, args.interval * args.cycles))
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.cprofile)
                pstats.Stats(args.cprofile).sort_stats("tottime").print_stats(30)
        finally:
            influx.stop()
            agent.stop()

    cpu_share = 100 * result["cpu_s"] / result["wall_s"]
    print(f"greenwatch scale: {args.devices} devices, {args.interval} s cycle, {args.cycles:g} cycles, "
          f"engine {result['engine']}, profile net-snmp-linux, one snmpd on loopback, "
          f"rewalk {f'{args.rewalk:g} s' if args.rewalk else 'default'}")
    rows = [
        ("inventory + profiles load", f"{load_s:.2f} s"),
        ("collector CPU", f"{result['cpu_s']:.1f} s over {result['wall_s']:.0f} s = {cpu_share:.1f}% of one core"),
        ("resident memory", f"{result['rss_mb']:.0f} MB now, {result['rss_peak_mb']:.0f} MB peak "
                            f"({base_rss:.0f} MB after loading the inventory)"),
        ("schedule lag", f"p50 {result['lag_p50_ms']:.1f} ms, p99 {result['lag_p99_ms']:.1f} ms, "
                         f"max {result['lag_max_ms']:.1f} ms"),
        ("polls", f"{result['polls']} ({result['up']} up, {result['down']} down, {result['skipped']} skipped); "
                  f"median poll {result['poll_ms_p50']:.0f} ms"),
        ("points", f"{result['accepted']} accepted, {result['written']} written to InfluxDB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
