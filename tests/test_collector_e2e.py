"""End to end on real parts: snmpsim agents, `greenwatch` as a user runs it, InfluxDB."""

from __future__ import annotations

import time

import pytest
from collectorhelp import RECORDINGS, Running, greenwatch, snmprec, write_config
from realparts.influx import start_influx_server

APC = "1.3.6.1.4.1.318.1.1.26"


@pytest.fixture(scope="module")
def pdu_agent(snmpsim):
    agent = snmpsim.start({"pdu-a1": RECORDINGS / "apc-rpdu2.snmprec", "pdu-b1": RECORDINGS / "apc-rpdu2.snmprec"})
    yield agent
    agent.stop()


def test_poll_once_writes_scaled_apc_readings_with_schema_tags(tmp_path, pdu_agent, influxdb, influx_db):
    config = write_config(tmp_path, influxdb.url, influx_db, f"""\
        - name: dc-north
          devices:
            - name: pdu-a1
              address: {pdu_agent.address}
              snmp: {{version: 2c, community: pdu-a1}}
              tags: {{room: hall-1, rack: A1}}
        """)
    result = greenwatch("poll", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert "pdu-a1" in result.stdout and "up" in result.stdout

    raw = snmprec(RECORDINGS / "apc-rpdu2.snmprec")
    rows = influxdb.rows("SELECT * FROM power", influx_db)
    by_key = {(r["scope"], r["entity"]): r for r in rows}
    for row in rows:
        assert (row["site"], row["device"], row["kind"], row["room"], row["rack"]) == (
            "dc-north", "pdu-a1", "pdu", "hall-1", "A1")

    total = by_key[("device", "total")]
    assert total["watts"] == pytest.approx(int(raw[f"{APC}.4.3.1.5.1"][1]) * 10)  # hundredths of kW
    assert total["energy_kwh"] == pytest.approx(int(raw[f"{APC}.4.3.1.9.1"][1]) / 10)  # tenths of kWh

    outlets = {k[1]: r for k, r in by_key.items() if k[0] == "outlet"}
    indexes = sorted(o.rsplit(".", 1)[1] for o in raw if o.startswith(f"{APC}.9.4.3.1.7."))
    assert len(outlets) == len(indexes) > 0
    for index in indexes:
        number = raw[f"{APC}.9.4.3.1.4.{index}"][1]
        outlet = outlets[number]
        assert outlet["watts"] == pytest.approx(int(raw[f"{APC}.9.4.3.1.7.{index}"][1]))
        assert outlet["energy_kwh"] == pytest.approx(int(raw[f"{APC}.9.4.3.1.11.{index}"][1]) / 10)
        assert outlet["label"] == raw[f"{APC}.9.4.3.1.3.{index}"][1]

    (poll,) = influxdb.rows("SELECT * FROM poll", influx_db)
    assert poll["up"] == 1 and poll["device"] == "pdu-a1" and poll["kind"] == "pdu"
    assert poll["readings"] == sum(1 for r in rows for f in ("watts", "energy_kwh", "amps", "volts") if r.get(f) is not None)


def _count_points(influxdb, db: str) -> int:
    return influxdb.count("power", db, "watts") + influxdb.count("poll", db, "up")


def test_influxdb_down_for_30s_loses_nothing(tmp_path, pdu_agent):
    server = start_influx_server(tmp_path / "influx")
    try:
        server.create_database("gw")
        config = write_config(tmp_path, server.url, "gw", f"""\
            - name: dc-north
              devices:
                - name: pdu-a1
                  address: {pdu_agent.address}
                  snmp: {{version: 2c, community: pdu-a1}}
                - name: pdu-b1
                  address: {pdu_agent.address}
                  snmp: {{version: 2c, community: pdu-b1}}
            """, interval="1s")
        run = Running(config, tmp_path / "run.log")
        try:
            run.wait_for("points accepted")
            time.sleep(2)
            server.stop()
            outage_start = run.accepted()
            time.sleep(31)
            during = run.accepted() - outage_start
            assert during > 20, "the collector kept accepting points while InfluxDB was down"
            server.start()
            time.sleep(2)
        finally:
            code = run.terminate()
        assert code == 0, run.log()[-3000:]
        produced = run.accepted()
        assert produced > 0
        assert _count_points(server, "gw") == produced
        assert f"stopped: {produced} points accepted this run; InfluxDB took {produced}, 0 stay spooled" in run.log()
    finally:
        server.stop()


def test_kill_9_and_restart_loses_nothing(tmp_path, pdu_agent):
    server = start_influx_server(tmp_path / "influx")
    try:
        server.create_database("gw")
        config = write_config(tmp_path, server.url, "gw", f"""\
            - name: dc-north
              devices:
                - name: pdu-a1
                  address: {pdu_agent.address}
                  snmp: {{version: 2c, community: pdu-a1}}
            """, interval="1s")
        first = Running(config, tmp_path / "first.log")
        first.wait_for("points accepted")
        server.stop()  # points pile up in the spool...
        time.sleep(3)
        first.kill9()  # ...and the collector dies without a chance to flush
        assert first.accepted() > 0
        server.start()
        second = Running(config, tmp_path / "second.log")
        second.wait_for("points accepted")
        time.sleep(2)
        assert second.terminate() == 0
        assert _count_points(server, "gw") == first.accepted() + second.accepted()
    finally:
        server.stop()
