"""The simulator: the same seed gives the same points, another seed others; a simulated
week of the demo estate, rolled up and run through the shipped rules, finds exactly the
planted problems and nothing on the healthy kit; the site energy is plausible."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from realparts.influx import InfluxServer

from greenwatch.cli import main
from greenwatch.config import load_config
from simulate.estate import PLANTED, write_estate_config
from simulate.history import simulate_history

END = dt.datetime(2026, 3, 9, tzinfo=dt.UTC)  # a Monday: the week before is Mon 2 - Sun 8 March
MEASUREMENTS = ("power", "poll", "ups", "host", "port", "printer", "environment")


def dump(influxdb: InfluxServer, db: str) -> dict[str, list[tuple]]:
    """Every point of every measurement, with its tags, in a stable order."""
    out = {}
    for m in MEASUREMENTS:
        rows = []
        for s in influxdb.query(f'SELECT * FROM "{m}" GROUP BY *', db=db, epoch="ns")["results"][0].get("series", []):
            tags = tuple(sorted((s.get("tags") or {}).items()))
            rows += [(tags, tuple(v)) for v in s["values"]]
        out[m] = sorted(rows, key=repr)
    return out


def test_same_seed_same_points_other_seed_other_points(influxdb, tmp_path) -> None:
    dumps = []
    for i, seed in enumerate((7, 7, 8)):
        db = f"sim_seed_{i}"
        config = load_config(write_estate_config(tmp_path / str(i), influxdb.url, db))
        written = simulate_history(config, END, 0.5, seed=seed, step_s=300)
        dumps.append(dump(influxdb, db))
        assert sum(len(v) for v in dumps[-1].values()) == written
        influxdb.drop_database(db)
    assert all(dumps[0][m] for m in MEASUREMENTS)  # every measurement has points
    assert dumps[0] == dumps[1]
    assert dumps[0]["power"] != dumps[2]["power"]
    # Another seed changes values, not the estate: the same series at the same times.
    assert [r[0] for r in dumps[0]["power"]] != [] and \
        sorted({r[0] for r in dumps[0]["power"]}) == sorted({r[0] for r in dumps[2]["power"]})


@pytest.fixture(scope="module")
def simulated_week(influxdb, tmp_path_factory) -> tuple[Path, str]:
    """The demo estate's week, written, rolled up and run through the rules by the CLI."""
    tmp = tmp_path_factory.mktemp("week")
    db = "sim_week"
    path = tmp / "greenwatch.yaml"
    assert main(["simulate", "--config", str(path), "--estate", "--influx", influxdb.url, "--database", db,
                 "--end", END.isoformat(), "--days", "7", "--step", "300"]) == 0
    yield path, db
    influxdb.drop_database(db)


EXPECTED = {
    ("zombie-server", "dc-london", "srv-b1-02", None),
    ("ups-low-load", "dc-london", "ups-2", None),
    ("ups-low-efficiency", "dc-london", "ups-2", None),
    ("overcooling", "dc-london", "pdu-b1", "1"),
    ("overcooling", "dc-london", "pdu-b1", "2"),
    ("overcooling", "dc-london", "pdu-b2", "1"),
    ("overcooling", "dc-london", "pdu-b2", "2"),
    ("unlabelled-outlet-load", "dc-london", "pdu-b2", "8"),
    ("pue-above-target", "dc-london", None, None),
    ("pc-on-overnight", "office-1", "pc-03", None),
    ("pc-on-overnight", "office-1", "pc-07", None),
    ("pc-on-overnight", "office-1", "pc-11", None),
    ("printer-no-sleep", "office-1", "prn-2", None),
    ("idle-switch-ports", "office-1", "sw-office-2", None),
    ("after-hours-office-load", "office-1", None, None),
}


def open_findings(influxdb: InfluxServer, db: str) -> set[tuple[str, str, str | None, str | None]]:
    series = influxdb.query('SELECT last("open") FROM "finding" GROUP BY "rule", "site", "device", "entity"',
                            db=db)["results"][0].get("series", [])
    return {(s["tags"]["rule"], s["tags"]["site"], s["tags"]["device"] or None, s["tags"]["entity"] or None)
            for s in series if s["values"][0][1] == 1}


def test_the_rules_find_exactly_the_planted_problems(influxdb, simulated_week) -> None:
    _, db = simulated_week
    found = open_findings(influxdb, db)
    assert found == EXPECTED
    # Every planted device is behind a finding; the over-cooling CRAC shows in its room's
    # inlet sensors (on hall-2's PDUs).
    planted = {(site, device) for site, device in PLANTED} - {("dc-london", "crac-2")}
    assert planted <= {(f[1], f[2]) for f in found}
    assert {f[2] for f in found if f[0] == "overcooling"} == {"pdu-b1", "pdu-b2"}


def test_site_energy_is_plausible(influxdb, simulated_week) -> None:
    _, db = simulated_week
    rows = influxdb.query('SELECT sum("kwh") AS kwh, sum("it_kwh") AS it, count("kwh") AS hours FROM "site_energy" '
                          'GROUP BY "site"', db=db)["results"][0]["series"]
    sites = {s["tags"]["site"]: dict(zip(s["columns"], s["values"][0])) for s in rows}
    assert set(sites) == {"dc-london", "office-1"}
    assert all(s["hours"] == 168 for s in sites.values())
    dc = sites["dc-london"]
    assert 1.4 <= dc["kwh"] / dc["it"] <= 1.8  # PUE, category 1 (UPS outputs)
    assert 5 <= dc["it"] / 168 <= 12  # kW of IT: 30 servers at 160-520 W, switches and PDUs
    assert 0.5 <= sites["office-1"]["kwh"] / 168 <= 3  # a small office floor, in kW
    # The office draws more in business hours than at the weekend.
    def mean_kw(where: str) -> float:
        q = f'SELECT mean("kwh") FROM "site_energy" WHERE "site" = \'office-1\' AND {where}'
        return influxdb.query(q, db=db)["results"][0]["series"][0]["values"][0][1]
    weekday_noon = "time >= '2026-03-04T12:00:00Z' AND time < '2026-03-04T13:00:00Z'"
    sunday_noon = "time >= '2026-03-08T12:00:00Z' AND time < '2026-03-08T13:00:00Z'"
    assert mean_kw(weekday_noon) > 2 * mean_kw(sunday_noon)


def test_commitment_over_the_simulated_week(simulated_week, capsys) -> None:
    path, _ = simulated_week
    assert main(["commitment", "--config", str(path), "--at", END.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "Leaders in green technology" in out
    assert "no data" not in out  # every target has its actual figure from the rollups


def test_a_step_the_rollups_would_read_as_gaps_is_refused(influxdb, tmp_path, capsys) -> None:
    path = write_estate_config(tmp_path, influxdb.url, "sim_refused")
    assert main(["simulate", "--config", str(path), "--end", END.isoformat(), "--step", "900"]) == 2
    assert "--step: a 900 s step is longer than the rollups bridge" in capsys.readouterr().err
    names = influxdb.query("SHOW DATABASES")["results"][0]["series"][0].get("values", [])
    assert ["sim_refused"] not in names  # nothing written


def test_an_unreliable_device_misses_polls_and_writes_no_readings_then(influxdb, simulated_week) -> None:
    _, db = simulated_week
    down = influxdb.query('SELECT count("up") FROM "poll" WHERE "up" = 0 GROUP BY "site", "device"',
                          db=db)["results"][0]["series"]
    assert [(s["tags"]["site"], s["tags"]["device"]) for s in down] == [("office-1", "mon-05")]
    failed = down[0]["values"][0][1]
    polls = 7 * 288  # a week at 5-minute steps
    assert 24 + 0.01 * polls <= failed <= 24 + 0.06 * polls  # the 2-hour outage and ~3% at random
    errors = influxdb.query('SELECT "error" FROM "poll" WHERE "device" = \'mon-05\' AND "up" = 0', db=db)
    assert {v[1] for v in errors["results"][0]["series"][0]["values"]} == {"no answer within 2 s"}
    readings = influxdb.query('SELECT count("watts") FROM "power" WHERE "device" = \'mon-05\'', db=db)
    assert readings["results"][0]["series"][0]["values"][0][1] == polls - failed


def test_estate_never_overwrites_a_config(influxdb, tmp_path, capsys) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("sites: []\n")
    assert main(["simulate", "--config", str(path), "--estate", "--influx", influxdb.url, "--end", END.isoformat()]) == 2
    assert f"--estate: {path} exists" in capsys.readouterr().err
    assert path.read_text() == "sites: []\n"


def test_what_feeds_adds_up_what_it_feeds(influxdb, simulated_week) -> None:
    _, db = simulated_week

    def mean(where: str) -> float:
        q = f'SELECT mean("watts") FROM "power" WHERE {where}'
        return influxdb.query(q, db=db)["results"][0]["series"][0]["values"][0][1]

    def total(where: str) -> float:  # the sum of the series' means
        q = f'SELECT mean("watts") FROM "power" WHERE {where} GROUP BY "device", "scope", "entity"'
        return sum(s["values"][0][1] for s in influxdb.query(q, db=db)["results"][0]["series"])

    server = mean("\"device\" = 'srv-a1-01'")
    assert mean("\"device\" = 'pdu-a1' AND \"scope\" = 'outlet' AND \"entity\" = '1'") == pytest.approx(1.01 * server)
    outlets = total("\"device\" = 'pdu-a2' AND \"scope\" = 'outlet'")
    assert mean("\"device\" = 'pdu-a2' AND \"scope\" = 'inlet'") == pytest.approx(outlets + 9)  # a Raritan
    hall_1 = total("\"room\" = 'hall-1' AND \"kind\" = 'pdu' AND (\"scope\" = 'device' OR \"scope\" = 'inlet')")
    assert mean("\"device\" = 'ups-1' AND \"scope\" = 'output'") == pytest.approx(hall_1)


def test_the_office_keeps_its_calendar(influxdb, tmp_path) -> None:
    """Monday 4 May 2026 is England's Early May bank holiday: the office stays asleep;
    on Tuesday (British Summer Time) people come in."""
    db = "sim_holiday"
    config = load_config(write_estate_config(tmp_path, influxdb.url, db))
    simulate_history(config, dt.datetime(2026, 5, 6, tzinfo=dt.UTC), 2, step_s=300)

    def desks(start: str, end: str) -> float:
        q = (f'SELECT mean("watts") FROM "power" WHERE "site" = \'office-1\' AND "kind" = \'desktop\' '
             f"AND time >= '{start}' AND time < '{end}'")
        return influxdb.query(q, db=db)["results"][0]["series"][0]["values"][0][1]

    holiday, tuesday = desks("2026-05-04T10:00:00Z", "2026-05-04T14:00:00Z"), desks("2026-05-05T10:00:00Z",
                                                                                     "2026-05-05T14:00:00Z")
    assert holiday < 15  # 3 of 12 PCs never sleep (~47 W), the others asleep (2.5 W)
    assert tuesday > 45
    influxdb.drop_database(db)


def test_the_planted_problems_do_not_depend_on_when_the_week_ends(influxdb, tmp_path) -> None:
    """A week ending on a Wednesday afternoon (the demo's ends whenever it is started):
    the rules find the same problems as in a week ending at Monday's midnight."""
    db = "sim_midweek"
    path = tmp_path / "greenwatch.yaml"
    assert main(["simulate", "--config", str(path), "--estate", "--influx", influxdb.url, "--database", db,
                 "--end", "2026-03-11T15:21:00Z", "--step", "300", "--seed", "3"]) == 0
    assert open_findings(influxdb, db) == EXPECTED
    influxdb.drop_database(db)
