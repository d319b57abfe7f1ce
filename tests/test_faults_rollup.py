"""`greenwatch rollup` against an InfluxDB that dies under it (influxd SIGKILLed by pid
once the rollup has begun writing): a clear error, a non-zero exit, no traceback; and
after influxd is restarted on the same port and data dir, a re-run writes exactly the
points an undisturbed run writes (the rollup is idempotent)."""

from __future__ import annotations

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


def write_estate(server: InfluxServer, db: str) -> None:
    """Two weeks of minute readings of a small data centre: a facility meter, a UPS
    output and PDUs whose load follows the day, some with a cumulative counter."""
    server.create_database(db)
    lines: list[str] = []
    for minute in range(DAYS * 1440):
        t = START + 60 * minute
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
