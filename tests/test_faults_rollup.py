"""`greenwatch rollup` against an InfluxDB that dies under it (influxd SIGKILLed by pid
once the rollup has begun writing): a clear error, a non-zero exit, no traceback; and
after influxd is restarted on the same port and data dir, a re-run writes exactly the
points an undisturbed run writes (the rollup is idempotent)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from collectorhelp import greenwatch
from realparts.influx import InfluxServer, start_influx_server

from greenwatch.core.influx import InfluxError
from greenwatch.service import Service, load

DAY = 86400
START = 1_772_323_200  # 2026-03-01T00:00:00Z, a Sunday
DAYS = 14
DEVICES = 12
PERIOD = ("--from", "2026-03-01", "--to", "2026-03-15")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InfluxServer]:
    """A private influxd: this test kills it."""
    influx = start_influx_server(tmp_path / "influx")
    yield influx
    influx.stop()


def write_estate(server: InfluxServer, db: str, start: int = START, minutes: int = DAYS * 1440) -> None:
    """Minute readings of a small data centre (two weeks unless told): a facility
    meter, a UPS output and PDUs whose load follows the day, some with a cumulative
    counter."""
    server.create_database(db)
    lines: list[str] = []
    for minute in range(minutes):
        t = start + 60 * minute
        load = 1.0 + 0.3 * (8 * 60 <= minute % 1440 < 18 * 60)
        ns = t * 10**9
        lines.append(f"power,site=dc,device=main,kind=meter,scope=device,entity=total watts={9000 * load:.1f} {ns}")
        lines.append(f"power,site=dc,device=ups-1,kind=ups,scope=output,entity=1 watts={6000 * load:.1f} {ns}")
        for d in range(DEVICES):
            watts = (300 + 25 * d) * load
            fields = f"watts={watts:.1f}"
            if d % 2:
                fields += f",energy_kwh={watts * minute / 60_000:.6f}"
            lines.append(f"power,site=dc,device=pdu-{d},kind=pdu,scope=device,entity=total {fields} {ns}")
    for i in range(0, len(lines), 20_000):
        request = urllib.request.Request(f"{server.url}/write?db={db}", data="\n".join(lines[i:i + 20_000]).encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 204


def config(tmp_path: Path, server: InfluxServer, db: str) -> Path:
    path = tmp_path / f"{db}.yaml"
    devices = "".join(f"      - {{name: pdu-{d}, address: 127.0.0.1, snmp: {{community: x}}}}\n"
                      for d in range(DEVICES))
    path.write_text(f"""\
influxdb: {{url: "{server.url}", database: {db}, timeout: 5s}}
spool: {{path: {tmp_path / (db + '-spool.db')}}}
sites:
  - name: dc
    energy: {{facility: [main], it: [ups-1/output], category: 1}}
    devices:
      - {{name: main, address: 127.0.0.1, snmp: {{community: x}}}}
      - {{name: ups-1, address: 127.0.0.1, snmp: {{community: x}}}}
{devices}""")
    return path


def rolled_up(server: InfluxServer, db: str) -> dict[str, list[dict]]:
    """Every point the rollup wrote, by measurement, in a comparable order."""
    series = server.query("SHOW MEASUREMENTS", db=db)["results"][0].get("series", [])
    names = sorted(v[0] for s in series for v in s["values"] if v[0] != "power")
    out = {}
    for name in names:
        rows = server.rows(f'SELECT * FROM "{name}" GROUP BY *', db)
        out[name] = sorted(rows, key=lambda r: sorted((k, str(v)) for k, v in r.items()))
    return out


def count_rolled(server: InfluxServer, db: str) -> int:
    try:
        return sum(len(rows) for rows in rolled_up(server, db).values())
    except (RuntimeError, OSError):
        return 0


def test_rollup_against_a_dying_influxdb_fails_clearly_and_a_rerun_equals_an_undisturbed_run(tmp_path, server):
    write_estate(server, "reference")
    write_estate(server, "disturbed")
    undisturbed = greenwatch("rollup", "--config", str(config(tmp_path, server, "reference")), *PERIOD)
    assert undisturbed.returncode == 0, undisturbed.stderr
    reference = rolled_up(server, "reference")
    assert {"energy", "site_energy"} <= set(reference)
    assert sum(len(rows) for rows in reference.values()) > 1000

    disturbed = config(tmp_path, server, "disturbed")
    proc = subprocess.Popen([sys.executable, "-m", "greenwatch.cli", "rollup", "--config", str(disturbed), *PERIOD],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Kill influxd once the rollup has written something, while it is still running.
        deadline = time.monotonic() + 60
        while count_rolled(server, "disturbed") == 0:
            assert proc.poll() is None, f"the rollup ended before it was disturbed: {proc.communicate()}"
            assert time.monotonic() < deadline, "the rollup wrote nothing within 60 s"
            time.sleep(0.02)
        assert proc.poll() is None, "the rollup ended before it was disturbed"
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        server.stop()  # reaps it
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode not in (0, None), (out, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "InfluxDB" in lines[0] and server.url in lines[0], err

    server.start()  # the same port, config and data dir
    partial = count_rolled(server, "disturbed")
    assert 0 < partial < sum(len(rows) for rows in reference.values())
    rerun = greenwatch("rollup", "--config", str(disturbed), *PERIOD)
    assert rerun.returncode == 0, rerun.stderr
    assert rolled_up(server, "disturbed") == reference
    # And again: idempotent, not additive.
    again = greenwatch("rollup", "--config", str(disturbed), *PERIOD)
    assert again.returncode == 0, again.stderr
    assert rolled_up(server, "disturbed") == reference


async def test_the_services_rollup_job_fails_while_influxdb_is_dead_and_catches_up_after(tmp_path, server, caplog):
    """The service's own rollup job (every 0.3 s here instead of 10 min, so that
    influxd dies while it runs or between two turns): failures counted and logged,
    polling unaffected, and once influxd is back the job's next turn writes the same
    points as `greenwatch rollup` over the same hours of an undisturbed copy."""
    now = int(time.time())
    start = (now // 3600 - 5) * 3600  # five whole hours and the current one
    write_estate(server, "gw", start, (now - start) // 60)
    write_estate(server, "reference", start, (now - start) // 60)
    path = config(tmp_path, server, "gw")
    service = Service(load(path))
    [job] = [j for j in service.periodic if j.name == "energy rollup"]
    job.every_s = 0.3
    await service.__aenter__()
    stop = asyncio.Event()
    runner = asyncio.create_task(service.run(stop))
    try:
        while job.runs < 2:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # somewhere in a turn or between two
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        server.stop()  # reaps it
        while job.failures < 2:
            await asyncio.sleep(0.05)
        polled_in_outage = sum(e.stats.polls for e in service.collector.entries)
        server.start()  # the same port, config and data dir
        runs = job.runs
        while job.runs < runs + 2:
            await asyncio.sleep(0.05)
        assert sum(e.stats.polls for e in service.collector.entries) >= polled_in_outage
    finally:
        stop.set()
        await runner
        await service.close(within_s=5.0, poll_grace_s=1.0)
    # Each failed turn is logged, and failed for the reason it should: InfluxDB (not,
    # say, a chunk left asking through a closed client).
    failed = [r for r in caplog.records if r.getMessage().startswith("energy rollup failed; trying again")]
    assert len(failed) == job.failures >= 2
    assert all(r.exc_info and issubclass(r.exc_info[0], InfluxError) for r in failed), [r.exc_info for r in failed]

    completed = dt.datetime.fromtimestamp(now // 3600 * 3600, dt.UTC)
    cli = greenwatch("rollup", "--config", str(config(tmp_path, server, "reference")),
                     "--from", dt.datetime.fromtimestamp(start, dt.UTC).isoformat(), "--to", completed.isoformat())
    assert cli.returncode == 0, cli.stderr

    def hours_before_now(db: str) -> dict[str, list[dict]]:
        return {name: [r for r in rows if r["time"] < completed.timestamp() * 1e9]
                for name, rows in rolled_up(server, db).items() if name in ("energy", "site_energy")}

    ours, theirs = hours_before_now("gw"), hours_before_now("reference")
    assert sum(len(rows) for rows in theirs.values()) >= 5 * (DEVICES + 2)
    assert ours == theirs
