"""SIGHUP reloads the devices of a running `greenwatch run`: an added device starts, a
changed one is rebuilt, a removed one stops, the unchanged one keeps its 1 s cadence,
nothing accepted is lost; an invalid config is refused, its problems logged with
file and line, and the old one kept. Real snmpsim agents and influxd."""

from __future__ import annotations

import re
import signal
import time

import pytest
import yaml
from collectorhelp import RECORDINGS, Running, write_config
from opshelp import NO_REPORT, free_port, http_block, metrics, value

RECORDING = RECORDINGS / "apc-rpdu2.snmprec"


@pytest.fixture(scope="module")
def agent(snmpsim):
    agent = snmpsim.start({f"pdu-{x}": RECORDING for x in "abcd"})
    yield agent
    agent.stop()


def sites(agent, names: dict[str, str], colour: bool = False) -> str:
    """One site with a PDU per name, tagged with its rack; `colour` adds an unknown key."""
    devices = [{"name": name, "address": agent.address, "snmp": {"version": "2c", "community": name},
                "tags": {"rack": rack}} for name, rack in names.items()]
    if colour:
        devices[0]["colour"] = "green"
    return yaml.safe_dump([{"name": "dc", "devices": devices}], sort_keys=False)


def poll_times(influxdb, db: str, device: str) -> list[float]:
    return [r["time"] / 1e9 for r in influxdb.rows(f"SELECT up FROM poll WHERE device = '{device}'", db)]


def test_sighup_adds_changes_removes_and_refuses_a_bad_config(tmp_path, agent, influxdb, influx_db):
    port = free_port()

    def config(names: dict[str, str], colour: bool = False):
        return write_config(tmp_path, influxdb.url, influx_db, sites(agent, names, colour), interval="1s",
                            extra=http_block(port) + NO_REPORT)

    path = config({"pdu-a": "A1", "pdu-b": "B1", "pdu-c": "C1"})
    run = Running(path, tmp_path / "run.log")
    try:
        run.wait_for("HTTP endpoint on")
        time.sleep(4)
        config({"pdu-a": "A1", "pdu-b": "B2", "pdu-d": "D1"})  # b changed, c removed, d added
        sighup_at = time.time()
        run.proc.send_signal(signal.SIGHUP)
        run.wait_for(r"config reloaded: 1 devices added \(dc/pdu-d\), 1 changed \(dc/pdu-b\), "
                     r"1 removed \(dc/pdu-c\), 1 unchanged")
        reloaded_at = time.time()
        time.sleep(4)

        lines = config({"pdu-a": "A1", "pdu-b": "B2", "pdu-d": "D1"}, colour=True).read_text().splitlines()
        colour_line = next(i for i, line in enumerate(lines, 1) if "colour" in line)
        run.proc.send_signal(signal.SIGHUP)
        run.wait_for("config reload refused")
        polls_of_a = len(poll_times(influxdb, influx_db, "pdu-a"))
        time.sleep(3)
        samples = metrics(port)
    finally:
        code = run.terminate()
    log = run.log()
    assert code == 0, log[-3000:]
    assert f"{path}:{colour_line}: sites[0].devices[0].colour: unknown key" in log
    assert "still running the config loaded before" in log
    assert value(samples, "greenwatch_config_reloads_total", result="applied") == 1
    assert value(samples, "greenwatch_config_reloads_total", result="refused") == 1
    assert {key[1] for key in samples if key[0] == "greenwatch_polls_total"} == {
        (("device", f"pdu-{x}"), ("kind", "pdu"), ("site", "dc")) for x in "abd"}

    # The unchanged device kept its 1 s cadence across both reloads, and the old
    # config's devices went on polling after the refused one.
    times_a = poll_times(influxdb, influx_db, "pdu-a")
    gaps = [b - a for a, b in zip(times_a, times_a[1:])]
    assert len(times_a) >= 12 and all(0.7 < gap < 1.3 for gap in gaps), gaps
    assert len(times_a) >= polls_of_a + 2
    # The changed one: old tag before, new tag after, never two polls at once.
    racks = {r["rack"] for r in influxdb.rows("SELECT watts, rack FROM power WHERE device = 'pdu-b'", influx_db)}
    assert racks == {"B1", "B2"}
    new_b = [r["time"] / 1e9 for r in influxdb.rows(
        "SELECT watts FROM power WHERE device = 'pdu-b' AND rack = 'B2' AND scope = 'device'", influx_db)]
    assert min(new_b) > sighup_at and len(new_b) >= 6
    times_b = poll_times(influxdb, influx_db, "pdu-b")
    assert all(b - a > 0.5 for a, b in zip(times_b, times_b[1:]))
    # The removed one stopped; the added one started.
    times_c = poll_times(influxdb, influx_db, "pdu-c")
    assert len(times_c) >= 3 and max(times_c) < reloaded_at
    times_d = poll_times(influxdb, influx_db, "pdu-d")
    assert len(times_d) >= 6 and min(times_d) > sighup_at

    # Nothing accepted was lost: the sink and the spool stayed through the reloads.
    accepted = run.accepted()
    assert f"stopped: {accepted} points accepted this run; InfluxDB took {accepted}, 0 stay spooled" in log
    assert influxdb.count("power", influx_db, "watts") + influxdb.count("poll", influx_db, "up") == accepted
    assert not re.search(r"ERROR (?!greenwatch: config reload refused)", log), log[-3000:]
