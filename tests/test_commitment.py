"""The commitment's progress against a hand computation, from known site_energy points
in a real influxd; bad commitment config is exit 2 with file:line."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from realparts.influx import InfluxServer

from greenwatch.cli import main

UTC = dt.UTC
AS_OF = dt.datetime(2026, 3, 9, tzinfo=UTC)  # a Monday; March 2026 is GMT in London
START = AS_OF - dt.timedelta(days=4)  # Thursday to Sunday: 96 hours


def office_kwh(hour: dt.datetime) -> float:
    """8 kWh in the office's business hours (Mon-Fri 08:00-18:00 local), 2 kWh otherwise."""
    local = hour.astimezone(ZoneInfo("Europe/London"))
    return 8.0 if local.weekday() < 5 and 8 <= local.hour < 18 else 2.0


def write_rollups(influxdb: InfluxServer, db: str) -> None:
    """Hourly site_energy as the rollup writes it: the data centre 10 kWh with 6 kWh of
    IT and 1.8 kgCO2e an hour; the office by office_kwh, 0.177 kgCO2e per kWh."""
    lines = []
    hour = START
    while hour < AS_OF:
        ns = int(hour.timestamp()) * 10**9
        lines.append(f"site_energy,site=dc,pue_category=1 kwh=10.0,it_kwh=6.0,kgco2e=1.8 {ns}")
        kwh = office_kwh(hour)
        lines.append(f"site_energy,site=office kwh={kwh},kgco2e={kwh * 0.177} {ns}")
        hour += dt.timedelta(hours=1)
    # Outside the year before as_of: must not count.
    lines.append(f"site_energy,site=dc kwh=5000.0,kgco2e=900.0 {int((AS_OF - dt.timedelta(days=400)).timestamp()) * 10**9}")
    urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/write?db={db}", data="\n".join(lines).encode(),
                                                  method="POST"))


COMMITMENT = """\
commitment:
  name: Test promise
  baseline:
    from: 2024-01-01
    to: 2025-01-01
    kwh: 200000
    tco2e: 45
    pue: {dc: 2.0}
    after_hours_share: 0.6
  fixed_factor: 0.2
  targets:
    - {year: 2030, metric: tco2e, cut_percent: 50}
    - {year: 2030, metric: kwh, cut_percent: 30}
    - {year: 2028, metric: pue, site: dc, max: 1.5}
    - {year: 2027, metric: after_hours_share, max: 0.3}
"""


def write_config(tmp_path: Path, influxdb: InfluxServer, db: str, commitment: str = COMMITMENT) -> Path:
    path = tmp_path / "greenwatch.yaml"
    path.write_text(f"""\
influxdb: {{url: "{influxdb.url}", database: {db}}}
spool: {{path: {tmp_path / 'spool.db'}}}
{commitment}sites:
  - name: dc
    energy: {{facility: [meter], it: [ups/output], category: 1}}
    devices:
      - {{name: meter, http: {{type: json, url: "http://192.0.2.1/", fields: {{watts: {{path: w}}}}}}}}
      - {{name: ups, address: 192.0.2.2, snmp: {{community: public}}, profile: apc-ups}}
  - name: office
""")
    return path


def straight(t0: dt.datetime, v0: float, t1: dt.datetime, v1: float, at: dt.datetime) -> float:
    return v0 + (v1 - v0) * (at - t0).total_seconds() / (t1 - t0).total_seconds()


def test_progress_matches_a_hand_computation(influxdb, influx_db, tmp_path, capsys) -> None:
    write_rollups(influxdb, influx_db)
    path = write_config(tmp_path, influxdb, influx_db)
    assert main(["commitment", "--config", str(path), "--at", AS_OF.isoformat(), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    targets = {t["metric"]: t for t in got["targets"]}

    # By hand. 96 hours of data per site, scaled to 8,760 hours.
    hours = 96
    business = sum(1 for h in range(hours) if office_kwh(START + dt.timedelta(hours=h)) == 8.0)
    assert business == 20  # Thursday and Friday, 08:00-18:00
    office_sum = 8.0 * business + 2.0 * (hours - business)
    actual_kwh = (10.0 * hours + office_sum) * 8760 / hours
    actual_t = (1.8 * hours + 0.177 * office_sum) * 8760 / hours / 1000
    # The baseline year (2024) has 366 days: its figures per 365 days.
    scale = 365 / 366
    base_kwh, base_t = 200000 * scale, 45 * scale
    b_end, t2030 = dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2031, 1, 1, tzinfo=UTC)

    kwh = targets["kwh"]
    assert kwh["baseline"] == pytest.approx(base_kwh)
    assert kwh["target"] == pytest.approx(base_kwh * 0.7)
    assert kwh["actual"] == pytest.approx(actual_kwh)
    assert kwh["trajectory"] == pytest.approx(straight(b_end, base_kwh, t2030, base_kwh * 0.7, AS_OF))
    assert kwh["gap"] == pytest.approx(actual_kwh - kwh["trajectory"])
    assert kwh["on_track"] is (actual_kwh <= kwh["trajectory"])

    co2 = targets["tco2e"]
    trajectory_t = straight(b_end, base_t, t2030, base_t * 0.5, AS_OF)
    assert co2["actual"] == pytest.approx(actual_t)
    assert co2["trajectory"] == pytest.approx(trajectory_t)
    assert co2["gap"] == pytest.approx(actual_t - trajectory_t)
    assert co2["on_track"] is (actual_t <= trajectory_t)
    # The same years at one fixed factor (0.2 kg/kWh): the baseline's kWh and today's.
    assert co2["baseline_fixed"] == pytest.approx(base_kwh * 0.2 / 1000)
    assert co2["actual_fixed"] == pytest.approx(actual_kwh * 0.2 / 1000)
    assert co2["trajectory_fixed"] == pytest.approx(straight(b_end, base_kwh * 0.2e-3, t2030, base_kwh * 0.1e-3, AS_OF))

    pue = targets["pue"]
    assert pue["actual"] == pytest.approx(10 / 6)
    assert pue["trajectory"] == pytest.approx(straight(b_end, 2.0, dt.datetime(2029, 1, 1, tzinfo=UTC), 1.5, AS_OF))
    assert pue["on_track"] is (10 / 6 <= pue["trajectory"])

    share = targets["after_hours_share"]
    assert share["subject"] == "office"  # the counted sites without IT meters
    actual_share = 2.0 * (hours - business) / office_sum  # 152 / 312 = 48.7%
    trajectory_share = straight(b_end, 0.6, dt.datetime(2028, 1, 1, tzinfo=UTC), 0.3, AS_OF)  # 48.2%
    assert share["actual"] == pytest.approx(actual_share)
    assert share["trajectory"] == pytest.approx(trajectory_share)
    assert share["on_track"] is False
    assert share["gap"] == pytest.approx(actual_share - trajectory_share)


def test_table_says_behind_by_the_gap(influxdb, influx_db, tmp_path, capsys) -> None:
    write_rollups(influxdb, influx_db)
    path = write_config(tmp_path, influxdb, influx_db)
    assert main(["commitment", "--config", str(path), "--at", AS_OF.isoformat(), "--json"]) == 0
    targets = {t["metric"]: t for t in json.loads(capsys.readouterr().out)["targets"]}
    assert main(["commitment", "--config", str(path), "--at", AS_OF.isoformat()]) == 0
    text = capsys.readouterr().out
    behind = targets["after_hours_share"]
    assert f"behind by {100 * behind['gap']:.1f} points" in text  # percentage points of a share
    assert text.count("on track") == sum(t["on_track"] is True for t in targets.values()) + (
        targets["tco2e"]["on_track_fixed"] is True)
    assert "Test promise" in text


BAD = [
    (("commitment:\n  baseline: {from: 2024-01-01, to: 2025-01-01, kwh: 1000}\n"
      "  targets:\n    - {year: 2030, metric: pue, max: 1.4}\n"), 4, "a pue target is per data centre"),
    (("commitment:\n  baseline: {from: 2025-01-01, to: 2024-01-01, kwh: 1000}\n"
      "  targets:\n    - {year: 2030, metric: kwh, cut_percent: 30}\n"), 2, "must be after from"),
    (("commitment:\n  baseline: {from: 2024-01-01, to: 2025-01-01}\n"
      "  targets:\n    - {year: 2030, metric: kwh, cut_percent: 30}\n"), 2, "the baseline needs its figures"),
    (("commitment:\n  baseline: {from: 2024-01-01, to: 2025-01-01, kwh: 1000}\n"
      "  targets:\n    - {year: 2030, metric: tco2e, cut_percent: 130}\n"), 4, "cut_percent"),
    (("commitment:\n  sites: [dc, ofice]\n  baseline: {from: 2024-01-01, to: 2025-01-01, kwh: 1000}\n"
      "  targets:\n    - {year: 2030, metric: kwh, cut_percent: 30}\n"), 2, "no site 'ofice' in the config"),
    (("commitment:\n  baseline: {from: 2024-01-01, to: 2025-01-01, kwh: 1000}\n"
      "  targets:\n    - {year: 2030, metric: pue, site: dc-north, max: 1.4}\n"), 4, "no site 'dc-north'"),
]


@pytest.mark.parametrize("commitment,line,message", BAD)
def test_bad_commitment_exits_2_with_file_and_line(influxdb, influx_db, tmp_path, capsys, commitment, line,
                                                   message) -> None:
    path = write_config(tmp_path, influxdb, influx_db, commitment)
    assert main(["commitment", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line + 2}:" in err, err  # two lines (influxdb, spool) before the commitment
    assert message in err, err


def test_a_measured_baseline_is_the_rollups_over_its_period(influxdb, influx_db, tmp_path, capsys) -> None:
    write_rollups(influxdb, influx_db)
    # The baseline period: two days in January 2025, the data centre at 12 kWh an hour
    # (8 of them IT), the office at 4; 0.2 kgCO2e per kWh.
    lines = []
    for h in range(48):
        ns = (int(dt.datetime(2025, 1, 6, tzinfo=UTC).timestamp()) + 3600 * h) * 10**9
        lines.append(f"site_energy,site=dc kwh=12.0,it_kwh=8.0,kgco2e=2.4 {ns}")
        lines.append(f"site_energy,site=office kwh=4.0,kgco2e=0.8 {ns}")
    urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/write?db={influx_db}",
                                                  data="\n".join(lines).encode(), method="POST"))
    path = write_config(tmp_path, influxdb, influx_db, """\
commitment:
  baseline: {from: 2025-01-06, to: 2025-01-08, measured: true}
  targets:
    - {year: 2030, metric: kwh, cut_percent: 40}
    - {year: 2030, metric: tco2e, cut_percent: 40}
    - {year: 2030, metric: pue, site: dc, max: 1.3}
    - {year: 2030, metric: after_hours_share, sites: [office], max: 0.2}
""")
    assert main(["commitment", "--config", str(path), "--at", AS_OF.isoformat(), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    targets = {t["metric"]: t for t in got["targets"]}
    per_year = 365 / 2  # two days' figures scaled to 365 days
    assert targets["kwh"]["baseline"] == pytest.approx(48 * 16 * per_year)
    assert targets["kwh"]["target"] == pytest.approx(48 * 16 * per_year * 0.6)
    assert targets["tco2e"]["baseline"] == pytest.approx(48 * 3.2 * per_year / 1000)
    assert targets["pue"]["baseline"] == pytest.approx(12 / 8)
    # 6-7 and 7-8 January 2025 are a Monday and a Tuesday: 20 business hours of 48.
    assert targets["after_hours_share"]["baseline"] == pytest.approx(28 / 48)
    b_end = dt.datetime(2025, 1, 8, tzinfo=UTC)
    assert targets["pue"]["trajectory"] == pytest.approx(
        straight(b_end, 1.5, dt.datetime(2031, 1, 1, tzinfo=UTC), 1.3, AS_OF))


async def test_after_hours_share_for_the_report(influxdb, influx_db, tmp_path) -> None:
    from greenwatch.config import load_config
    from reports.commitment import after_hours_share
    from greenwatch.core.influx import query_client

    write_rollups(influxdb, influx_db)
    config = load_config(write_config(tmp_path, influxdb, influx_db))
    async with query_client(config.influxdb) as client:
        share = await after_hours_share(config, client, "office", START, AS_OF)
        weekend = await after_hours_share(config, client, "office", AS_OF - dt.timedelta(days=2), AS_OF)
        none = await after_hours_share(config, client, "office", AS_OF, AS_OF + dt.timedelta(days=1))
    assert share == pytest.approx(152 / 312)
    assert weekend == pytest.approx(1.0)  # Saturday and Sunday: all after hours
    assert none is None


def test_a_measured_baseline_without_rollups_is_bad_input(influxdb, influx_db, tmp_path, capsys) -> None:
    write_rollups(influxdb, influx_db)
    path = write_config(tmp_path, influxdb, influx_db, """\
commitment:
  baseline: {from: 2023-01-01, to: 2024-01-01, measured: true}
  targets:
    - {year: 2030, metric: kwh, cut_percent: 40}
""")
    assert main(["commitment", "--config", str(path), "--at", AS_OF.isoformat()]) == 2
    assert "measured, but 2023-01-01 to 2024-01-01 has no site_energy rollups" in capsys.readouterr().err


@pytest.mark.parametrize("commitment,line,message", [b for b in BAD if "no site" in b[2]])
def test_check_refuses_a_commitment_naming_no_site(influxdb, influx_db, tmp_path, capsys, commitment, line,
                                                   message) -> None:
    path = write_config(tmp_path, influxdb, influx_db, commitment)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line + 2}:" in err and message in err, err
