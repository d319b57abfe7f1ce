"""Energy accounting against known truth: a synthetic week in a real influxd.

Each device's watts follow a smooth curve whose energy the test integrates
analytically (never through greenwatch's code); readings are taken once a minute at
17 s past, so every hour boundary falls between two readings and must be split. The
week crosses the UK's change to summer time (30 March 2025) and an InfluxDB shard
boundary (Thursday 00:00 UTC), and holds a counter reset, a short bridged gap and a
long unbridged gap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from realparts.influx import InfluxServer

from greenwatch.cli import main

UTC = dt.UTC
START = dt.datetime(2025, 3, 24, tzinfo=UTC)  # a Monday
DAYS = 7
T0 = int(START.timestamp())
T_END = T0 + DAYS * 86400
STEP = 60
OFFSET = 17  # readings at hh:mm:17
TOL = 0.005
LONDON = ZoneInfo("Europe/London")
# The counter restarts from zero just after this reading (Wednesday 13:05:17).
RESET_AFTER = T0 + 2 * 86400 + 13 * 3600 + 5 * 60 + OFFSET
# Short gap: three readings missing (a 4-minute hole, under the 5-minute bridge).
SHORT_GAP = {T0 + 86400 + 9 * 3600 + m * 60 + OFFSET for m in (30, 31, 32)}
# Long gap: nothing from Friday 10:20 to 12:40 (bridging stops at 5 minutes).
LONG_GAP = (T0 + 4 * 86400 + 10 * 3600 + 20 * 60, T0 + 4 * 86400 + 12 * 3600 + 40 * 60)

# name: (base W, daily swing W, hourly wobble W)
CURVES = {
    "main": (5000.0, 800.0, 120.0),
    "ups": (3000.0, 500.0, 90.0),
    "pdu-in1": (900.0, 150.0, 40.0),
    "pdu-in2": (700.0, 100.0, 30.0),
    "plug": (120.0, 60.0, 10.0),
    "pc": (60.0, 30.0, 5.0),
    "printer": (40.0, 20.0, 8.0),
}


def watts(curve: str, t: float) -> float:
    base, day, hour = CURVES[curve]
    return base + day * math.sin(2 * math.pi * (t - T0) / 86400) + hour * math.sin(2 * math.pi * (t - T0) / 3600)


def energy_kwh(curve: str, a: float, b: float) -> float:
    """The exact integral of watts(curve) from a to b, in kWh."""
    base, day, hour = CURVES[curve]

    def antiderivative(t: float) -> float:
        x = t - T0
        return (base * x - day * 86400 / (2 * math.pi) * math.cos(2 * math.pi * x / 86400)
                - hour * 3600 / (2 * math.pi) * math.cos(2 * math.pi * x / 3600))

    return (antiderivative(b) - antiderivative(a)) / 3_600_000


def reading_times(skip_long_gap: bool = False) -> list[int]:
    times = [t for t in range(T0 - 3600 + OFFSET, T_END + 3600, STEP) if t not in SHORT_GAP]
    if skip_long_gap:
        times = [t for t in times if not LONG_GAP[0] <= t < LONG_GAP[1]]
    return times


def truth(curve: str, a: float, b: float, times: list[int]) -> float:
    """Energy in [a, b) counting only the stretches between readings at most 300 s apart."""
    total = 0.0
    for t0, t1 in itertools.pairwise(times):
        if t1 - t0 <= 300:
            lo, hi = max(t0, a), min(t1, b)
            if hi > lo:
                total += energy_kwh(curve, lo, hi)
    return total


def write_week(influxdb: InfluxServer, db: str) -> None:
    import urllib.request

    lines: list[str] = []
    regular = reading_times()
    gappy = reading_times(skip_long_gap=True)
    counter_base = 0.0
    for t in regular:
        ns = t * 1_000_000_000
        # main: a facility meter with a kWh counter (resolution 0.1 Wh) that restarts.
        reading = energy_kwh("main", T0 - 3600, t) - counter_base
        if t == RESET_AFTER:
            counter_base = energy_kwh("main", T0 - 3600, t)
        lines.append(f"power,site=dc,device=main,kind=meter,scope=device,entity=total "
                     f"watts={watts('main', t):.3f},energy_kwh={round(reading, 4)} {ns}")
        lines.append(f"power,site=dc,device=ups-1,kind=ups,scope=output,entity=1 watts={watts('ups', t):.3f} {ns}")
        lines.append(f"power,site=dc,device=pdu-1,kind=pdu,scope=inlet,entity=1 watts={watts('pdu-in1', t):.3f} {ns}")
        lines.append(f"power,site=dc,device=pdu-1,kind=pdu,scope=inlet,entity=2 watts={watts('pdu-in2', t):.3f} {ns}")
        # Outlets are part of the inlets: a device's total never adds them.
        lines.append(f"power,site=dc,device=pdu-1,kind=pdu,scope=outlet,entity=3,label=srv "
                     f"watts={watts('pc', t):.3f} {ns}")
        lines.append(f"power,site=office,device=plug-1,kind=plug,scope=device,entity=total "
                     f"watts={watts('plug', t):.3f} {ns}")
        lines.append(f"power,site=office,device=pc-1,kind=host,scope=device,entity=total watts={watts('pc', t):.3f} {ns}")
    for t in gappy:
        lines.append(f"power,site=office,device=printer-1,kind=printer,scope=device,entity=total "
                     f"watts={watts('printer', t):.3f} {t * 1_000_000_000}")
    for i in range(0, len(lines), 20000):
        body = "\n".join(lines[i : i + 20000]).encode()
        urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/write?db={db}", data=body, method="POST"))


BANDS = [  # (from, to, rate, days)
    ("00:00", "07:00", 0.12, "weekday"),
    ("07:00", "19:00", 0.30, "weekday"),
    ("19:00", "24:00", 0.18, "weekday"),
    ("22:00", "08:00", 0.10, "weekend"),  # wraps past midnight
    ("08:00", "22:00", 0.20, "weekend"),
]


def rate_at(local: dt.datetime) -> float:
    minute = local.hour * 60 + local.minute
    day = "weekend" if local.weekday() >= 5 else "weekday"
    for a, b, rate, days in BANDS:
        if days != day:
            continue
        lo = int(a[:2]) * 60 + int(a[3:])
        hi = int(b[:2]) * 60 + int(b[3:])
        if (lo < hi and lo <= minute < hi) or (lo > hi and (minute >= lo or minute < hi)):
            return rate
    raise AssertionError(local)


def write_config(tmp_path: Path, influxdb: InfluxServer, db: str) -> Path:
    bands = "\n".join(f"        - {{from: '{a}', to: '{b}', rate: {r}, days: {d}}}" for a, b, r, d in BANDS)
    path = tmp_path / "greenwatch.yaml"
    path.write_text(f"""\
influxdb: {{url: "{influxdb.url}", database: {db}}}
spool: {{path: {tmp_path / 'spool.db'}}}
sites:
  - name: dc
    tariff:
      currency: GBP
      bands:
{bands}
    energy: {{facility: [main], it: [ups-1/output], category: 1}}
    devices:
      - {{name: main, address: 127.0.0.1, snmp: {{community: public}}, kind: meter}}
      - {{name: ups-1, address: 127.0.0.2, snmp: {{community: public}}, kind: ups}}
      - {{name: pdu-1, address: 127.0.0.3, snmp: {{community: public}}, kind: pdu}}
  - name: office
    tariff: {{currency: EUR, rate: 0.3}}
    devices:
      - {{name: plug-1, address: 127.0.0.4, snmp: {{community: public}}, kind: plug}}
      - {{name: pc-1, address: 127.0.0.5, snmp: {{community: public}}, kind: host, fed_by: plug-1}}
      - {{name: printer-1, address: 127.0.0.6, snmp: {{community: public}}, kind: printer}}
""")
    return path


@pytest.fixture
def week(influxdb: InfluxServer, influx_db: str, tmp_path: Path) -> tuple[InfluxServer, str, Path]:
    write_week(influxdb, influx_db)
    config = write_config(tmp_path, influxdb, influx_db)
    assert main(["rollup", "--config", str(config), "--from", "2025-03-24", "--to", "2025-03-31"]) == 0
    return influxdb, influx_db, config


def by_hour(influxdb: InfluxServer, db: str, q: str) -> dict[int, dict]:
    return {row["time"] // 1_000_000_000: row for row in influxdb.rows(q, db)}


HOURS = range(T0, T_END, 3600)


def test_kwh_per_device_per_hour_and_week(week) -> None:
    influxdb, db, _ = week
    cases = [  # (device filter, curve(s), readings, method)
        ("device='ups-1' AND scope='output'", ["ups"], reading_times(), "integral"),
        ("device='pdu-1' AND entity='1' AND scope='inlet'", ["pdu-in1"], reading_times(), "integral"),
        ("device='plug-1'", ["plug"], reading_times(), "integral"),
        ("device='printer-1'", ["printer"], reading_times(skip_long_gap=True), "integral"),
        ("device='main'", ["main"], reading_times(), "counter"),
    ]
    for where, curves, times, method in cases:
        rows = by_hour(influxdb, db, f"SELECT kwh, coverage, method FROM energy WHERE {where}")
        assert set(rows) == set(HOURS) - ({h for h in HOURS if LONG_GAP[0] + 300 <= h and h + 3600 <= LONG_GAP[1]}
                                          if curves == ["printer"] else set()), where
        week_truth = sum(truth(c, T0, T_END, times) for c in curves)
        week_got = sum(r["kwh"] for r in rows.values())
        assert week_got == pytest.approx(week_truth, rel=TOL), where
        for hour, row in rows.items():
            expected = sum(truth(c, hour, hour + 3600, times) for c in curves)
            assert row["kwh"] == pytest.approx(expected, rel=TOL, abs=1e-6), (where, hour)
            assert row["method"] == method


def test_gaps_reset_and_coverage(week) -> None:
    influxdb, db, _ = week
    printer = by_hour(influxdb, db, "SELECT kwh, coverage FROM energy WHERE device='printer-1'")
    gap_hours = {h: row for h, row in printer.items() if h + 3600 > LONG_GAP[0] and h < LONG_GAP[1]}
    # 10:00 lost its last 40 min (and the 20 min before 10:20 are kept); 12:00 its first 40.
    assert gap_hours[LONG_GAP[0] - 20 * 60]["coverage"] == pytest.approx((20 * 60 + OFFSET - 60) / 3600, abs=0.02)
    assert all(row["coverage"] < 0.5 for row in gap_hours.values())
    full = [row["coverage"] for h, row in printer.items() if h not in gap_hours]
    assert min(full) == 1.0
    # The short gap's hour is fully covered (bridged) and its energy is all there.
    short_hour = T0 + 86400 + 9 * 3600
    assert printer[short_hour]["coverage"] == 1.0
    assert printer[short_hour]["kwh"] == pytest.approx(energy_kwh("printer", short_hour, short_hour + 3600), rel=TOL)
    # The counter's reset hour: no negative energy, and the hour matches the truth.
    main_rows = by_hour(influxdb, db, "SELECT kwh FROM energy WHERE device='main'")
    reset_hour = RESET_AFTER // 3600 * 3600
    assert main_rows[reset_hour]["kwh"] == pytest.approx(energy_kwh("main", reset_hour, reset_hour + 3600), rel=TOL)
    assert min(r["kwh"] for r in main_rows.values()) > 0


def test_site_totals_pue_cost_and_carbon(week) -> None:
    influxdb, db, _ = week
    times, gappy = reading_times(), reading_times(skip_long_gap=True)
    dc = by_hour(influxdb, db, "SELECT * FROM site_energy WHERE site='dc'")
    office = by_hour(influxdb, db, "SELECT * FROM site_energy WHERE site='office'")
    assert set(dc) == set(HOURS) and set(office) == set(HOURS)
    for hour in HOURS:
        facility = truth("main", hour, hour + 3600, times)
        it = truth("ups", hour, hour + 3600, times)
        row = dc[hour]
        assert row["kwh"] == pytest.approx(facility, rel=TOL)
        assert row["it_kwh"] == pytest.approx(it, rel=TOL)
        assert row["pue_category"] == "1"
        # Cost: kWh x the mean of each local minute's band rate; carbon: kWh x DESNZ 2025.
        start = dt.datetime.fromtimestamp(hour, UTC)
        rate = sum(rate_at((start + dt.timedelta(minutes=m)).astimezone(LONDON)) for m in range(60)) / 60
        assert row["cost"] == pytest.approx(row["kwh"] * rate, rel=1e-9)
        assert row["kgco2e"] == pytest.approx(row["kwh"] * 0.17700, rel=1e-9)
        assert row["carbon_method"] == "annual"
        # office: plug and printer once each; pc-1 is fed through plug-1, so not again.
        expected = truth("plug", hour, hour + 3600, times) + truth("printer", hour, hour + 3600, gappy)
        assert office[hour]["kwh"] == pytest.approx(expected, rel=TOL)
        assert office[hour]["cost"] == pytest.approx(office[hour]["kwh"] * 0.3, rel=1e-9)
        assert "it_kwh" not in office[hour] or office[hour]["it_kwh"] is None
    # PUE over the week is energy-based: sum(kWh) / sum(IT kWh), checked by hand.
    pue = truth("main", T0, T_END, times) / truth("ups", T0, T_END, times)
    assert sum(r["kwh"] for r in dc.values()) / sum(r["it_kwh"] for r in dc.values()) == pytest.approx(pue, rel=TOL)
    # The pdu's total is its inlets, never inlets plus outlets.
    pdu = influxdb.rows("SELECT sum(kwh) FROM energy WHERE device='pdu-1' GROUP BY scope", db)
    sums = {r["scope"]: r["sum"] for r in pdu}
    assert sums["inlet"] == pytest.approx(truth("pdu-in1", T0, T_END, times) + truth("pdu-in2", T0, T_END, times),
                                          rel=TOL)


def test_rollup_twice_gives_the_same_points(week) -> None:
    influxdb, db, config = week
    before = influxdb.query("SELECT * FROM energy; SELECT * FROM site_energy", db=db, epoch="ns")
    count = influxdb.count("energy", db, "kwh")
    assert count > 7 * 24 * 7
    assert main(["rollup", "--config", str(config), "--from", "2025-03-24", "--to", "2025-03-31"]) == 0
    assert influxdb.query("SELECT * FROM energy; SELECT * FROM site_energy", db=db, epoch="ns") == before
    assert influxdb.count("energy", db, "kwh") == count


def test_energy_report_json(week, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    _, _, config = week
    capsys.readouterr()
    assert main(["energy", "--config", str(config), "--from", "2025-03-24", "--to", "2025-03-31", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    times = reading_times()
    dc = report["sites"]["dc"]
    assert dc["kwh"] == pytest.approx(truth("main", T0, T_END, times), rel=TOL)
    assert dc["pue"] == pytest.approx(truth("main", T0, T_END, times) / truth("ups", T0, T_END, times), rel=TOL)
    assert dc["pue_category"] == 1 and dc["currency"] == "GBP" and dc["carbon_method"] == "annual"
    assert dc["coverage"] == pytest.approx(1.0)
    assert dc["kgco2e"] == pytest.approx(dc["kwh"] * 0.177, rel=1e-6)
    assert [t["device"] for t in dc["top"]] == ["main", "pdu-1"]  # ups-1 has only output: not its own draw
    office = report["sites"]["office"]
    assert office["it_kwh"] is None and office["pue"] is None and office["currency"] == "EUR"
    assert office["coverage"] < 1.0  # the printer's long gap
    assert report["total"]["kwh"] == pytest.approx(dc["kwh"] + office["kwh"])
    assert report["total"]["cost"] == {"GBP": pytest.approx(dc["cost"]), "EUR": pytest.approx(office["cost"])}
    assert main(["energy", "--config", str(config), "--from", "2025-03-24", "--to", "2025-03-31",
                 "--site", "office", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["sites"]) == ["office"]


def test_energy_report_table(week, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, config = week
    capsys.readouterr()
    assert main(["energy", "--config", str(config), "--from", "2025-03-24", "--to", "2025-03-31"]) == 0
    out = capsys.readouterr().out
    pue = truth("main", T0, T_END, reading_times()) / truth("ups", T0, T_END, reading_times())
    dc_line = next(line for line in out.splitlines() if line.strip("│ ").startswith("dc"))
    assert f"{pue:.2f}" in dc_line and "GBP" in dc_line and "annual" in dc_line and "main" in dc_line
    assert any(line.strip("│ ").startswith("total") for line in out.splitlines())


def _rollup_lab(influxdb: InfluxServer, db: str, series: dict[str, list[int]], hours: range,
                intervals: dict[str, float] | None = None) -> tuple[dict[str, dict], Any]:
    """Write each device's plug-curve readings at the given times to site `lab` and roll
    up `hours` with energy.rollup directly (60 s polls unless `intervals` says other)."""
    import asyncio
    import urllib.request

    from energy.rollup import DeviceInfo, Rollup, SiteInput
    from greenwatch.core.config import SiteSettings
    from greenwatch.core.influx import InfluxClient

    lines = [f"power,site=lab,device={name},kind=plug,scope=device,entity=total watts={watts('plug', t):.3f} "
             f"{t * 1_000_000_000}" for name, times in series.items() for t in times]
    urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/write?db={db}", data="\n".join(lines).encode(),
                                                  method="POST"))

    devices = {name: DeviceInfo(interval) for name, interval in (intervals or {}).items()}

    async def run() -> Any:
        client = InfluxClient(influxdb.url, db)
        try:
            return await Rollup(client, [SiteInput(SiteSettings(name="lab"), devices)]).run(
                dt.datetime.fromtimestamp(hours.start, UTC), dt.datetime.fromtimestamp(hours.stop, UTC))
        finally:
            await client.close()

    stats = asyncio.run(run())
    return {name: by_hour(influxdb, db, f"SELECT kwh, coverage FROM energy WHERE device='{name}'")
            for name in series}, stats


def test_hourly_counts_that_look_complete_do_not_hide_long_gaps(influxdb: InfluxServer, influx_db: str) -> None:
    """Two series whose hour H has at least a full count but a gap longer than 5 minutes
    touching it: a check of H's own count (>= expected - 1) would bridge the gap and
    claim full coverage. The fast path needs the count to match the span of H's readings
    on a 60 s schedule and both edge segments to be bridged, so both go to raw points."""
    hour = T0 + 2 * 86400 + 10 * 3600  # H
    every_minute = list(range(hour - 3 * 3600 + 45, hour + 4 * 3600, 60))  # readings at :45
    # crowded: nothing between H:19:45 and H:31:45, and from H:40 readings every 30 s,
    # so H holds 60 - 11 + 20 readings (a second writer, say) around a 12-minute hole.
    crowded = sorted({t for t in every_minute if not hour + 20 * 60 < t < hour + 31 * 60}
                     | set(range(hour + 40 * 60 + 15, hour + 3600, 60)))
    # late: nothing between H-1:50:45 and H:00:45; H itself has all 60 readings, but the
    # 10-minute hole's last 45 s lie inside it.
    late = [t for t in every_minute if not hour - 600 + 45 < t < hour + 45]
    hours = range(hour - 2 * 3600, hour + 3 * 3600, 3600)
    rows, _ = _rollup_lab(influxdb, influx_db, {"crowded": crowded, "late": late, "steady": every_minute}, hours)
    assert sum(1 for t in crowded if hour <= t < hour + 3600) == 69
    assert sum(1 for t in late if hour <= t < hour + 3600) == 60
    for name, times in (("crowded", crowded), ("late", late), ("steady", every_minute)):
        for h in hours:
            assert rows[name][h]["kwh"] == pytest.approx(truth("plug", h, h + 3600, times), rel=1e-3), (name, h)
    assert rows["crowded"][hour]["coverage"] == pytest.approx((3600 - 12 * 60) / 3600, abs=1e-6)
    assert rows["late"][hour]["coverage"] == pytest.approx((3600 - 45) / 3600, abs=1e-6)
    assert rows["late"][hour - 3600]["coverage"] == pytest.approx((3600 - 555) / 3600, abs=1e-6)
    assert all(rows["steady"][h]["coverage"] == 1.0 for h in hours)


def test_fast_path_follows_each_devices_interval(influxdb: InfluxServer, influx_db: str) -> None:
    """A device polled every 300 s as configured is settled from sums and counts (its
    bridging limit is 900 s); one configured at 60 s but polled every 120 s is not on
    its schedule, so every hour comes from raw points. Both match the truth."""
    hour = T0 + 3 * 86400
    hours = range(hour, hour + 6 * 3600, 3600)
    slow = list(range(hour - 3600 + 45, hour + 7 * 3600, 300))
    mismatched = list(range(hour - 3600 + 45, hour + 7 * 3600, 120))
    rows, stats = _rollup_lab(influxdb, influx_db, {"slow": slow, "mismatched": mismatched}, hours,
                              intervals={"slow": 300.0, "mismatched": 60.0})
    for name, times, limit in (("slow", slow, 900), ("mismatched", mismatched, 300)):
        for h in hours:
            expected = sum(energy_kwh("plug", max(a, h), min(b, h + 3600))
                           for a, b in itertools.pairwise(times) if b - a <= limit and min(b, h + 3600) > max(a, h))
            assert rows[name][h]["kwh"] == pytest.approx(expected, rel=1e-3), (name, h)
            assert rows[name][h]["coverage"] == 1.0
    assert (stats.fast_series_hours, stats.slow_series_hours) == (len(hours), len(hours))
