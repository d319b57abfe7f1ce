"""Weekly report benchmark: the report for the demo estate at ~1,000 devices over a
generated week, made as `greenwatch report --week W --out DIR` makes it.

    python3 bench/report.py                         # ~1,000 devices, 7 days, 5-minute steps
    python3 bench/report.py --devices 200 --days 7  # a smaller estate
    python3 bench/report.py --step 60               # 1-minute history (slower to generate)

It starts Debian's influxd in a temp dir (tests/realparts/influx.py), writes the demo
estate's config (simulate/estate.py, scaled to reach --devices), generates the history
with the simulator, rolls it up and runs the rules (`greenwatch simulate`; not timed),
then makes the report in a child process and prints its wall time, CPU, peak RSS,
influxd's CPU over the same span, and the InfluxDB requests and statements it issued.
Goal (issue 7): <= 20 s and <= 300 MB RSS at 1,000 devices.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

DB = "bench"


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(config_path: str, week: str, out: str) -> None:
    """The measured run: load the config, read, render, save (no mail), in this process."""
    from greenwatch.cli_report import run_report
    from greenwatch.config import load_config
    from reports.weekly import parse_week

    config = load_config(config_path)
    outcome = asyncio.run(run_report(config, parse_week(week, config.report.timezone), Path(out), send=False))
    f = outcome.figures
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process only: imports, read, render, save
    # Peak RSS from VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec,
    # so it would report the parent's size (the simulator's) rather than this process's.
    hwm_kib = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
    print(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime, "rss_mb": hwm_kib / 1024,
                      "requests": f.requests, "statements": f.queries, "sites": len(f.sites),
                      "findings": len(f.findings), "html": str(outcome.html),
                      "kwh": sum(s.week.kwh or 0.0 for s in f.sites)}))


def scale_for(devices: int, url: str, tmp: Path) -> tuple[Path, int]:
    """The smallest scale of the demo estate with at least `devices` devices."""
    from greenwatch.config import load_config
    from simulate.estate import write_estate_config

    scale = 1
    while True:
        path = write_estate_config(tmp, url, DB, scale=scale)
        count = len(load_config(path).devices())
        if count >= devices or scale >= 1000:
            break
        scale = max(scale + 1, int(scale * devices / count))
    # The untimed setup rolls up ~10M points on a shared machine: give its queries time.
    document = yaml.safe_load(path.read_text())
    document["influxdb"]["timeout"] = "600s"
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=120))
    return path, count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--days", type=float, default=7.0, help="days of history before the week's end (default 7)")
    p.add_argument("--step", type=int, default=300, help="simulated poll interval, seconds (default 300)")
    p.add_argument("--child", nargs=3, metavar=("CONFIG", "WEEK", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return

    from realparts.influx import InfluxServer, _influxd_binary

    from greenwatch.cli_simulate import simulate
    from greenwatch.config import load_config
    from reports.weekly import last_complete_week

    with tempfile.TemporaryDirectory(prefix="gw-bench-report-") as tmp_name:
        tmp = Path(tmp_name)
        binary = _influxd_binary()
        if binary is None:
            sys.exit("influxd not found: apt-get install influxdb")
        server = InfluxServer(binary, tmp / "influxd")
        server.start()
        try:
            server.create_database(DB)
            path, devices = scale_for(args.devices, server.url, tmp)
            config = load_config(path)
            week = last_complete_week(dt.datetime.now(dt.timezone.utc), config.report.timezone)
            print(f"estate: {devices} devices in {len(config.sites)} sites; history: {args.days:g} days to "
                  f"{week.end:%Y-%m-%d %H:%M} UTC at {args.step} s steps (not timed)", flush=True)
            t0 = time.monotonic()
            asyncio.run(simulate(config, week.end, args.days, 1, args.step, True))
            print(f"generated, rolled up and evaluated in {time.monotonic() - t0:.0f} s", flush=True)

            influxd_before = proc_cpu_s(server.pid)
            t0 = time.monotonic()
            run = subprocess.run([sys.executable, __file__, "--child", str(path), week.label, str(tmp / "out")],
                                 capture_output=True, text=True)
            wall = time.monotonic() - t0
            influxd_cpu = proc_cpu_s(server.pid) - influxd_before
            if run.returncode != 0:
                sys.exit(f"the report failed:\n{run.stderr[-3000:]}")
            result = json.loads(run.stdout.strip().splitlines()[-1])
            cpu, rss_mb = result["cpu_s"], result["rss_mb"]
            print(f"weekly report {week.label}: {devices} devices, {result['sites']} sites, "
                  f"{result['findings']} open findings, {result['kwh']:,.0f} kWh")
            print(f"  wall {wall:.1f} s  cpu {cpu:.1f} s  peak RSS {rss_mb:.0f} MB  influxd cpu {influxd_cpu:.2f} s  "
                  f"InfluxDB: {result['requests']} requests, {result['statements']} statements")
            print(f"  goal: wall <= 20 s ({wall / 20:.2f}x of it), RSS <= 300 MB ({rss_mb / 300:.2f}x of it)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
