"""A device that never answers must not delay the live ones: measured from the
poll timestamps the collector writes to InfluxDB."""

from __future__ import annotations

import socket
import statistics
import time

import yaml

from collectorhelp import RECORDINGS, Running, write_config


def test_dead_device_does_not_delay_live_ones(tmp_path, snmpsim, influxdb, influx_db):
    agent = snmpsim.start({f"pdu-{i}": RECORDINGS / "apc-rpdu2.snmprec" for i in range(4)})
    # A UDP port that is bound but never answers: requests vanish, as to a dead host.
    black_hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    black_hole.bind(("127.0.0.1", 0))
    dead_port = black_hole.getsockname()[1]
    try:
        live = [
            {"name": f"pdu-{i}", "address": agent.address, "snmp": {"version": "2c", "community": f"pdu-{i}"}}
            for i in range(4)
        ]
        # The dead one times out after 1 s and retries 3 times: 4 s of waiting per poll,
        # four times the 1 s interval.
        dead = {"name": "dead", "address": f"127.0.0.1:{dead_port}", "retries": 3,
                "snmp": {"version": "2c", "community": "nobody"}}
        sites = yaml.safe_dump([{"name": "office", "devices": [*live, dead]}])
        config = write_config(tmp_path, influxdb.url, influx_db, sites, interval="1s")
        run = Running(config, tmp_path / "run.log")
        try:
            run.wait_for("points accepted")
            time.sleep(12)
        finally:
            assert run.terminate() == 0
    finally:
        black_hole.close()
        agent.stop()

    rows = influxdb.rows("SELECT up, device, duration_ms FROM poll", influx_db)
    starts: dict[str, list[float]] = {}
    for row in rows:
        starts.setdefault(row["device"], []).append(row["time"] / 1e9)
    dead = [r for r in rows if r["device"] == "dead"]
    assert dead and all(r["up"] == 0 for r in dead)
    # From the dead device's second poll on (the claim is about a dead device among
    # live ones, not about the process's first second, when imports and the first
    # connections are made), every live poll is up and on time.
    dead_since = sorted(starts["dead"])[1]
    for device in (f"pdu-{i}" for i in range(4)):
        times = sorted(t for t in starts[device] if t >= dead_since)
        gaps = [b - a for a, b in zip(times, times[1:])]
        # ~11 s of polling at 1 s: every poll happened, each on time.
        assert len(times) >= 10, (device, len(times))
        assert statistics.median(gaps) < 1.05 and max(gaps) < 1.5 and min(gaps) > 0.5, (device, gaps)
    ups = [r for r in rows if r["device"] != "dead" and r["time"] / 1e9 >= dead_since]
    assert all(r["up"] == 1 for r in ups)
    # The dead device's polls end at their deadline (0.9 x interval), not after 4 s.
    assert max(r["duration_ms"] for r in dead) < 1000
