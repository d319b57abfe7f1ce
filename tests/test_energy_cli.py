"""The energy commands on bad input (exit 2, file:line, nothing written), and the
service's rollup job on recent data."""

from __future__ import annotations

import datetime as dt
import urllib.request
from pathlib import Path

import pytest
from realparts.influx import InfluxServer

from greenwatch import service
from greenwatch.cli import main

UTC = dt.UTC


def write_power(influxdb: InfluxServer, db: str, start: int, minutes: int, watts: float = 600.0) -> None:
    lines = [f"power,site=hq,device=plug,scope=device,entity=total watts={watts} {(start + 60 * i) * 10**9}"
             for i in range(minutes)]
    urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/write?db={db}", data="\n".join(lines).encode(),
                                                  method="POST"))


def config(tmp_path: Path, influxdb: InfluxServer, db: str, site_extra: str = "") -> Path:
    path = tmp_path / "greenwatch.yaml"
    path.write_text(f"""\
influxdb: {{url: "{influxdb.url}", database: {db}}}
spool: {{path: {tmp_path / 'spool.db'}}}
sites:
  - name: hq
{site_extra}""")
    return path


def measurements(influxdb: InfluxServer, db: str) -> set[str]:
    series = influxdb.query("SHOW MEASUREMENTS", db=db)["results"][0].get("series", [])
    return {v[0] for s in series for v in s["values"]}


BAD_SITES = [
    ("    timezone: Mars/Olympus\n", 5, "sites[0].timezone: unknown time zone 'Mars/Olympus'"),
    (("    tariff:\n      bands:\n        - {from: '00:00', to: '08:00', rate: 0.1}\n"
      "        - {from: '07:00', to: '24:00', rate: 0.3}\n"), 7,
     "bands 00:00-08:00 and 07:00-24:00 overlap at 07:00"),
    (("    tariff:\n      bands:\n        - {from: '00:00', to: '08:00', rate: 0.1}\n"
      "        - {from: '09:00', to: '24:00', rate: 0.3}\n"), 7, "no band covers 08:00"),
    ("    tariff:\n      bands:\n        - {from: '00:00', to: '24:00', rate: 0.1, days: weekday}\n", 7,
     "no band covers 00:00 on weekends"),
    ("    energy: {it: [ups-1/output]}\n", 5, "it meters need the PUE category"),
    ("    carbon: {method: factor}\n", 5, "method factor needs factor_kg_per_kwh"),
]


@pytest.mark.parametrize("extra,line,message", BAD_SITES)
@pytest.mark.parametrize("command", ["rollup", "energy"])
def test_bad_site_settings_exit_2_with_file_and_line(influxdb, influx_db, tmp_path, capsys, extra, line, message,
                                                     command) -> None:
    write_power(influxdb, influx_db, int(dt.datetime(2025, 1, 6, tzinfo=UTC).timestamp()), 120)
    path = config(tmp_path, influxdb, influx_db, extra)
    assert main([command, "--config", str(path), "--from", "2025-01-06", "--to", "2025-01-07"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}: " in err and message in err, err
    assert measurements(influxdb, influx_db) == {"power"}


@pytest.mark.parametrize("start,end,message", [
    ("2025-13-01", "2025-01-07", "--from: expected a date YYYY-MM-DD or an ISO time, got '2025-13-01'"),
    ("2025-01-06", "yesterday", "--to: expected a date"),
    ("2025-01-07", "2025-01-06", "--to (2025-01-06) must be after --from (2025-01-07)"),
])
def test_bad_dates_exit_2_and_write_nothing(influxdb, influx_db, tmp_path, capsys, start, end, message) -> None:
    write_power(influxdb, influx_db, int(dt.datetime(2025, 1, 6, tzinfo=UTC).timestamp()), 120)
    path = config(tmp_path, influxdb, influx_db)
    assert main(["rollup", "--config", str(path), "--from", start, "--to", end]) == 2
    assert message in capsys.readouterr().err
    assert measurements(influxdb, influx_db) == {"power"}


def test_meters_must_name_devices_of_the_site(influxdb, influx_db, tmp_path, capsys) -> None:
    path = config(tmp_path, influxdb, influx_db, "    energy: {facility: [main], it: [usp-1/output], category: 2}\n"
                  "    devices:\n      - {name: main, address: 127.0.0.1, snmp: {community: public}}\n"
                  "      - {name: srv, address: 127.0.0.2, snmp: {community: public}, fed_by: pdu-9/outlet/1}\n")
    assert main(["rollup", "--config", str(path), "--from", "2025-01-06", "--to", "2025-01-07"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: sites[0].energy.it[0]: no device 'usp-1' in site 'hq'" in err
    assert f"{path}:8: sites[0].devices[1].fed_by: no device 'pdu-9' in site 'hq'" in err
    assert measurements(influxdb, influx_db) == set()


def test_unknown_site_exits_2(influxdb, influx_db, tmp_path, capsys) -> None:
    path = config(tmp_path, influxdb, influx_db)
    assert main(["energy", "--config", str(path), "--from", "2025-01-06", "--to", "2025-01-07", "--site", "mars"]) == 2
    assert "--site: no site 'mars'" in capsys.readouterr().err


def test_rollup_accepts_times_with_offsets(influxdb, influx_db, tmp_path) -> None:
    start = int(dt.datetime(2025, 1, 6, tzinfo=UTC).timestamp())
    write_power(influxdb, influx_db, start - 600 + 5, 4 * 60)
    path = config(tmp_path, influxdb, influx_db)
    # 02:00+01:00 is 01:00 UTC: hours 01:00 and 02:00 UTC.
    assert main(["rollup", "--config", str(path), "--from", "2025-01-06T02:00+01:00", "--to", "2025-01-06T03:00Z"]) == 0
    rows = influxdb.rows("SELECT kwh FROM energy", influx_db)
    assert [r["time"] // 10**9 - start for r in rows] == [3600, 7200]
    assert all(r["kwh"] == pytest.approx(0.6) for r in rows)


async def test_service_job_rolls_up_completed_hours(influxdb, influx_db, tmp_path) -> None:
    now = dt.datetime.now(UTC)
    this_hour = int(now.timestamp()) // 3600 * 3600
    # Readings from 3 h 5 min ago to a couple of minutes past now (so the last
    # complete hour has its next reading whenever the test runs).
    write_power(influxdb, influx_db, this_hour - 3 * 3600 - 300, int((now.timestamp() - this_hour) // 60) + 3 * 60 + 8)
    loaded = service.load(config(tmp_path, influxdb, influx_db))
    svc = service.Service(loaded)
    try:
        job = next(p for p in svc.periodic if p.name == "energy rollup")
        assert job.every_s <= 3600
        await job.job()
    finally:
        await svc.close()
    rows = influxdb.rows("SELECT kwh, coverage FROM energy", influx_db)
    by_hour = {r["time"] // 10**9 - this_hour: r for r in rows}
    # The hour before holds the first 5 minutes; the current hour is not rolled up yet.
    assert sorted(by_hour) == [-4 * 3600, -3 * 3600, -2 * 3600, -3600]
    assert by_hour[-4 * 3600]["coverage"] < 0.1
    for hour in (-3 * 3600, -2 * 3600, -3600):
        assert by_hour[hour]["kwh"] == pytest.approx(0.6) and by_hour[hour]["coverage"] == 1.0
    assert len(influxdb.rows("SELECT kwh FROM site_energy", influx_db)) == 4
