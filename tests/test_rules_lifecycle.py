"""A finding that starts, persists and ends opens, updates and resolves one id, and
its state is read back from InfluxDB (each evaluation is a new engine, as after a
restart). `greenwatch rules run --config --at` writes the findings and prints them."""

from __future__ import annotations

import asyncio
import datetime as dt

from greenwatch.cli import main
from greenwatch.core.config import SiteSettings
from greenwatch.core.influx import InfluxClient
from greenwatch.core.schema import Sample, encode_lines
from rules.engine import Engine
from rules.loader import PACK_DIR, load_rule

UTC = dt.UTC
START = dt.datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; London is on GMT


def pc_power(nights_on: int, days: int = 5) -> list[str]:
    """pc-1 on at 60 W for the first `nights_on` nights, asleep at 2 W after; 15-minute
    samples. pc-2 always asleep."""
    samples = []
    for i in range(days * 96):
        t = START + dt.timedelta(minutes=15 * i)
        night = i // 96 - (1 if t.hour < 8 else 0)  # which night (evening's date) this is
        watts = 60.0 if night < nights_on else 2.0
        for device, w in (("pc-1", watts), ("pc-2", 2.0)):
            tags = {"site": "hq", "device": device, "kind": "desktop", "scope": "device", "entity": "total"}
            samples.append(Sample("power", tags, {"watts": w}, int(t.timestamp()) * 10**9))
    return encode_lines(samples)


async def test_a_finding_opens_updates_and_resolves_one_id(influxdb, influx_db):
    rule = load_rule(PACK_DIR / "pc-on-overnight.yaml")
    sites = {"hq": SiteSettings(name="hq", tariff={"currency": "EUR", "rate": 0.40})}
    async with InfluxClient(influxdb.url, influx_db) as client:
        await client.write(pc_power(nights_on=2))
        states = []
        for day in (3, 4, 5):  # Tue, Wed, Thu at 08:00: after nights 0, 1 and 2
            at = dt.datetime(2026, 3, day, 8, tzinfo=UTC)
            events = await Engine(client, [rule], sites).run(at)
            assert len(events) == 1, events
            states.append((events[0].id, events[0].state))
        # Nothing open after it resolved: the next evaluation writes nothing.
        assert await Engine(client, [rule], sites).run(dt.datetime(2026, 3, 6, 8, tzinfo=UTC)) == []
    assert states == [("pc-on-overnight:hq/pc-1", "opened"), ("pc-on-overnight:hq/pc-1", "updated"),
                      ("pc-on-overnight:hq/pc-1", "resolved")]
    rows = influxdb.rows('SELECT "id", "open", "state", "cost_per_year", "kwh_per_year", "currency", "opened_at" '
                         'FROM "finding" GROUP BY *', influx_db)
    assert [(r["id"], r["open"], r["state"]) for r in rows] == [
        ("pc-on-overnight:hq/pc-1", 1, "opened"), ("pc-on-overnight:hq/pc-1", 1, "updated"),
        ("pc-on-overnight:hq/pc-1", 0, "resolved")]
    assert {r["rule"] for r in rows} == {"pc-on-overnight"} and {r["severity"] for r in rows} == {"warning"}
    # Opened once: the time it opened is carried through the update and the resolution.
    assert {r["opened_at"] for r in rows} == {"2026-03-03T08:00:00Z"}
    opened = rows[0]
    assert opened["currency"] == "EUR"
    assert abs(opened["cost_per_year"] - opened["kwh_per_year"] * 0.40) < 1e-6
    # 57 W above sleep over every night hour of the year before: between 3,000 and 4,000 h.
    assert 57 * 3000 / 1000 < opened["kwh_per_year"] < 57 * 4000 / 1000


def _config(tmp_path, influxdb, influx_db, extra: str = "") -> str:
    path = tmp_path / "greenwatch.yaml"
    path.write_text(f"influxdb: {{url: '{influxdb.url}', database: {influx_db}}}\n{extra}"
                    "sites:\n  - name: hq\n    tariff: {currency: GBP, rate: 0.30}\n")
    return str(path)


def write(url: str, db: str, lines: list[str]) -> None:
    async def go() -> None:
        async with InfluxClient(url, db) as client:
            await client.write(lines)

    asyncio.run(go())


def test_rules_run_writes_findings_and_prints_a_table(tmp_path, influxdb, influx_db, capsys):
    write(influxdb.url, influx_db, pc_power(nights_on=3))
    config = _config(tmp_path, influxdb, influx_db)
    assert main(["rules", "run", "--config", config, "--at", "2026-03-04T08:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "pc-on-overnight" in out and "opened" in out and "pc-1" in out and "GBP" in out
    assert "pc-2" not in out
    assert influxdb.count("finding", influx_db, "open") == 1
    # The state survives the process: the next run updates the same id.
    assert main(["rules", "run", "--config", config, "--at", "2026-03-05T08:00:00Z"]) == 0
    assert "updated" in capsys.readouterr().out
    ids = influxdb.rows('SELECT "id" FROM "finding"', influx_db)
    assert [r["id"] for r in ids] == ["pc-on-overnight:hq/pc-1"] * 2


def test_a_disabled_rule_resolves_what_it_had_opened_and_opens_nothing(tmp_path, influxdb, influx_db, capsys):
    write(influxdb.url, influx_db, pc_power(nights_on=3))
    assert main(["rules", "run", "--config", _config(tmp_path, influxdb, influx_db), "--at",
                 "2026-03-04T08:00:00Z"]) == 0
    off = _config(tmp_path, influxdb, influx_db, "rules:\n  overrides: [{rule: pc-on-overnight, enabled: false}]\n")
    assert main(["rules", "run", "--config", off, "--at", "2026-03-05T08:00:00Z"]) == 0
    assert "resolved" in capsys.readouterr().out
    rows = influxdb.rows('SELECT "open", "state" FROM "finding"', influx_db)
    assert [(r["open"], r["state"]) for r in rows] == [(1, "opened"), (0, "resolved")]


async def test_the_service_evaluates_the_rules_on_its_interval(tmp_path, influxdb, influx_db):
    from greenwatch.service import Service, load

    config = tmp_path / "greenwatch.yaml"
    config.write_text(f"influxdb: {{url: '{influxdb.url}', database: {influx_db}}}\n"
                      "rules: {interval: 5m}\nsites: [{name: hq}]\n")
    now = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # A week of a zombie server up to this hour: the rules job must open its finding.
    for hours_ago in range(1, 8 * 24 + 1):
        t = int((now - dt.timedelta(hours=hours_ago)).timestamp()) * 10**9
        tags = {"site": "hq", "device": "srv-1", "kind": "server", "entity": "total"}
        lines = encode_lines([Sample("host", tags | {"scope": "cpu"}, {"cpu_load_percent": 1.0}, t),
                              Sample("power", tags | {"scope": "device"}, {"watts": 300.0}, t)])
        async with InfluxClient(influxdb.url, influx_db) as client:
            await client.write(lines)
    async with Service(load(config), once=True) as once:
        assert [p.name for p in once.periodic if p.name == "rules"] == []
    async with Service(load(config)) as service:
        jobs = [p for p in service.periodic if p.name == "rules"]
        assert len(jobs) == 1 and jobs[0].every_s == 300
        await jobs[0].job()
    rows = {r["id"]: r for r in influxdb.rows('SELECT "id", "state", "kwh_per_year" FROM "finding"', influx_db)}
    # Its flat 300 W over the last week's weekend is the other finding.
    assert set(rows) == {"zombie-server:hq/srv-1", "dc-flat-weekend-load:hq"}
    assert {r["state"] for r in rows.values()} == {"opened"}
    assert abs(rows["zombie-server:hq/srv-1"]["kwh_per_year"] - 300 * 8760 / 1000) < 1
