"""Energy rollup benchmark: greenwatch's InfluxQL rollup against a naive peer that
pulls every raw point into Python, on the same data in the same run.

    python3 bench/energy.py                          # 1,000 devices x 7 days of 1-minute power (~10M points)
    python3 bench/energy.py --devices 200 --days 2   # a smaller run
    python3 bench/energy.py --skip naive             # greenwatch's rollup only

It starts Debian's influxd in a temp dir (tests/realparts/influx.py), writes the
data as line protocol in big batches, then runs each contender in its own process
(so its peak RSS is its own) and reports wall time, the contender's CPU and peak RSS,
influxd's CPU over the same span (/proc/PID/stat), and the ratios. Both must agree
on the week's kWh; the difference is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from realparts.influx import InfluxServer, _influxd_binary

from energy.integrate import energy_in
from energy.rollup import HOUR_S, Rollup, SiteInput
from greenwatch.core.config import SiteSettings
from greenwatch.core.influx import InfluxClient

START = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)  # a Monday
SITES = 10
DB = "bench"


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / clock_ticks()


# -- data ----------------------------------------------------------------------------


def device_lines(device: int, t0: int, minutes: int, interval: int, counter: bool) -> str:
    """One device's readings: a daily curve with a per-device level and small steps;
    every fifth device keeps a kWh counter. Every 50th device is unreachable for 20
    minutes a day (a long gap), and every 50th counter restarts from zero once a day
    (a reset), so the rollup's raw-point path is exercised too."""
    site = device % SITES
    head = f"power,site=s{site},device=d{device},kind=server,scope=device,entity=total "
    base = 150 + (device * 37) % 400
    out = []
    kwh = 0.0
    prev_w = None
    offset = device % interval  # devices are polled at different seconds
    outage = (device * 97) % 1400  # minute of the day the outage starts
    for i in range(minutes):
        t = t0 + i * interval + offset
        minute_of_day = (t // 60) % 1440
        if device % 50 == 7 and outage <= minute_of_day < outage + 20:
            prev_w = None
            continue
        w = base + (base // 3 if 480 <= minute_of_day < 1080 else 0) + (i * 7 + device) % 23
        if counter:
            if prev_w is not None:
                kwh += (w + prev_w) / 2 * interval / 3_600_000
            if device % 50 == 0 and minute_of_day == outage:
                kwh = 0.0
            out.append(f"{head}watts={w},energy_kwh={kwh:.5f} {t}000000000")
        else:
            out.append(f"{head}watts={w} {t}000000000")
        prev_w = w
    return "\n".join(out)


def write_data(url: str, devices: int, days: int, interval: int) -> int:
    t0 = int(START.timestamp()) - 3600  # an hour before, so the first hour is whole
    minutes = (days * 86400 + 7200) // interval

    def one(device: int) -> int:
        body = device_lines(device, t0, minutes, interval, counter=device % 5 == 0).encode()
        lines = body.count(b"\n") + 1
        request = urllib.request.Request(f"{url}/write?db={DB}&precision=ns", data=body, method="POST")
        urllib.request.urlopen(request, timeout=600).read()
        return lines

    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(one, range(devices)))


# -- contenders (each in its own process) ---------------------------------------------


def sites() -> list[SiteInput]:
    return [SiteInput(SiteSettings(name=f"s{i}")) for i in range(SITES)]


async def run_greenwatch(url: str, days: int) -> dict[str, float]:
    client = InfluxClient(url, DB, timeout_s=600)
    try:
        stats = await Rollup(client, sites()).run(START, START + dt.timedelta(days=days))
        answer = await client.query("SELECT sum(kwh) FROM energy")
    finally:
        await client.close()
    total = answer["results"][0]["series"][0]["values"][0][1]
    return {"kwh": total, "points": stats.energy_points, "slow": stats.slow_series_hours}


async def run_naive(url: str, days: int) -> dict[str, float]:
    """The peer: pull every raw reading (6 hours at a time) and integrate in Python,
    with the same gap and reset policy."""
    client = InfluxClient(url, DB, timeout_s=600)
    start = int(START.timestamp())
    end = start + days * 86400
    step = 6 * HOUR_S
    total = 0.0
    points = 0
    carry: dict[tuple, list[tuple[float, float]]] = {}
    try:
        for lo in range(start - HOUR_S, end + HOUR_S, step):
            answer = await client.query(
                f"SELECT watts, energy_kwh FROM power WHERE time >= {lo}s AND time < {lo + step}s GROUP BY *",
                epoch="ms")
            chunk: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
            methods: dict[tuple, str] = {}
            for series in answer["results"][0].get("series", []):
                key = tuple(sorted(series["tags"].items()))
                for t, w, c in series["values"]:
                    counter = c is not None
                    methods[key] = "counter" if counter else "integral"
                    chunk[key].append((t / 1000, c if counter else w))
            for key, pts in chunk.items():
                pts = carry.get(key, []) + pts
                # Hours fully inside [previous chunk end - 1h, this chunk end - 1h).
                for hour in range(max(lo - HOUR_S, start), min(lo + step - HOUR_S, end), HOUR_S):
                    kwh, _ = energy_in(pts, methods[key], hour, hour + HOUR_S, 300.0)
                    total += kwh
                    points += 1
                carry[key] = [p for p in pts if p[0] >= lo + step - 2 * HOUR_S]
    finally:
        await client.close()
    return {"kwh": total, "points": points, "slow": 0}


def _child(name: str, url: str, days: int, queue: multiprocessing.Queue) -> None:
    wall = time.perf_counter()
    cpu = time.process_time()
    run = {"greenwatch": run_greenwatch, "naive": run_naive}[name]
    result = asyncio.run(run(url, days))
    result.update(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu,
                  rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    queue.put(result)


def measure(name: str, url: str, days: int, influxd_pid: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    before = proc_cpu_s(influxd_pid)
    proc = ctx.Process(target=_child, args=(name, url, days, queue))
    proc.start()
    result = queue.get()
    proc.join()
    result["influxd_cpu_s"] = proc_cpu_s(influxd_pid) - before
    return result


# ---------------------------------------------------------------------------------------
# RULES PACK: the rules helper adds the shipped pack's evaluation here (wall time,
# greenwatch CPU and peak RSS, influxd CPU, as for the rollup), reading the same data.
# ---------------------------------------------------------------------------------------
def write_host_data(url: str, at_s: int, days: int = 8, interval: int = 300) -> int:
    """CPU readings for every server in the data (every 5 minutes over the week before
    `at_s`), so zombie-server has its second series; one device in ten idles at 2%."""
    answer = json.loads(urllib.request.urlopen(
        f"{url}/query?db={DB}&q=" + urllib.parse.quote('SHOW TAG VALUES FROM "power" WITH KEY = "device"'),
        timeout=60).read())
    devices = [v[1] for v in answer["results"][0]["series"][0]["values"]]
    lines = []
    for name in devices:
        number = int(name.lstrip("d"))
        cpu = 2.0 if number % 10 == 0 else 35.0 + number % 20
        head = f"host,site=s{number % SITES},device={name},kind=server,scope=cpu,entity=1 cpu_load_percent="
        lines += [f"{head}{cpu} {t}000000000" for t in range(at_s - days * 86400, at_s, interval)]
    for i in range(0, len(lines), 100_000):
        request = urllib.request.Request(f"{url}/write?db={DB}&precision=ns",
                                         data="\n".join(lines[i:i + 100_000]).encode(), method="POST")
        urllib.request.urlopen(request, timeout=600).read()
    return len(lines)


def _rules_child(url: str, at_s: int, queue: multiprocessing.Queue) -> None:
    from rules.engine import Engine
    from rules.loader import load_rules

    async def run() -> dict[str, float]:
        client = InfluxClient(url, DB, timeout_s=600)
        try:
            rules = load_rules()
            events = await Engine(client, rules, {s.settings.name: s.settings for s in sites()}).run(
                dt.datetime.fromtimestamp(at_s, dt.UTC))
        finally:
            await client.close()
        return {"rules": len(rules), "findings": len(events)}

    wall, cpu = time.perf_counter(), time.process_time()
    result = asyncio.run(run())
    result.update(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu,
                  rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    queue.put(result)


def measure_rules(url: str, influxd_pid: int) -> dict[str, float] | None:
    """The whole shipped pack (YAML and Python rules) as of the end of the data, in a
    process of its own, after the rollup wrote `energy` and `site_energy`."""
    answer = json.loads(urllib.request.urlopen(
        f"{url}/query?db={DB}&epoch=s&q=" + urllib.parse.quote('SELECT last("watts") FROM "power"'),
        timeout=60).read())
    at_s = answer["results"][0]["series"][0]["values"][0][0] // HOUR_S * HOUR_S
    written = write_host_data(url, at_s)
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    before = proc_cpu_s(influxd_pid)
    proc = ctx.Process(target=_rules_child, args=(url, at_s, queue))
    proc.start()
    result = queue.get()
    proc.join()
    result["influxd_cpu_s"] = proc_cpu_s(influxd_pid) - before
    print(f"{'rules':>10}: wall {result['wall_s']:7.1f} s  cpu {result['cpu_s']:7.1f} s  rss {result['rss_mb']:6.0f} MB  "
          f"influxd cpu {result['influxd_cpu_s']:7.1f} s  {result['rules']} rules, {result['findings']} findings "
          f"(+{written:,} host CPU points for zombie-server)", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--interval", type=int, default=60, help="seconds between readings")
    p.add_argument("--skip", default="", help="comma-separated: naive, greenwatch")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    with tempfile.TemporaryDirectory(prefix="gw-bench-energy-") as tmp:
        binary = _influxd_binary()
        if binary is None:
            sys.exit("influxd not found: apt-get install influxdb")
        server = InfluxServer(binary, Path(tmp))
        server.start()
        try:
            server.create_database(DB)
            t = time.perf_counter()
            written = write_data(server.url, args.devices, args.days, args.interval)
            load_s = time.perf_counter() - t
            print(f"data: {args.devices} devices x {args.days} days every {args.interval} s = "
                  f"{written:,} points, written in {load_s:.1f} s ({written / load_s:,.0f} points/s)", flush=True)
            rows: dict[str, dict[str, float]] = {}
            for name in ("greenwatch", "naive"):
                if name not in skip:
                    rows[name] = measure(name, server.url, args.days, server.pid or 0)
                    r = rows[name]
                    print(f"{name:>10}: wall {r['wall_s']:7.1f} s  cpu {r['cpu_s']:7.1f} s  rss {r['rss_mb']:6.0f} MB  "
                          f"influxd cpu {r['influxd_cpu_s']:7.1f} s  kWh {r['kwh']:,.1f}  series-hours {r['points']:,}"
                          + (f" ({r['slow']} from raw points)" if name == "greenwatch" else ""), flush=True)
            rules = measure_rules(server.url, server.pid or 0)
            if rules is not None:
                rows["rules"] = rules
        finally:
            server.stop()
    if {"greenwatch", "naive"} <= set(rows):
        g, n = rows["greenwatch"], rows["naive"]
        print(f"ratios naive/greenwatch: wall {n['wall_s'] / g['wall_s']:.1f}x, own CPU {n['cpu_s'] / g['cpu_s']:.1f}x, "
              f"own+influxd CPU {(n['cpu_s'] + n['influxd_cpu_s']) / (g['cpu_s'] + g['influxd_cpu_s']):.1f}x, "
              f"RSS {n['rss_mb'] / g['rss_mb']:.1f}x; kWh differ by {abs(n['kwh'] - g['kwh']) / n['kwh']:.4%}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "written": written,
                                         "load_s": load_s, "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
