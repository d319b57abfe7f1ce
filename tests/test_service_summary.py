"""`greenwatch run` logs a one-line summary now and then: what is down, what waits."""

from __future__ import annotations

import asyncio
import logging
import socket

import yaml
from collectorhelp import RECORDINGS, write_config

from greenwatch.service import Service, load


async def test_run_logs_a_summary_naming_the_devices_down(tmp_path, snmpsim, influxdb, influx_db, caplog):
    agent = snmpsim.start({"pdu": RECORDINGS / "apc-rpdu2.snmprec"})
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        devices = [
            {"name": "pdu-1", "address": agent.address, "snmp": {"version": "2c", "community": "pdu"}},
            {"name": "gone", "address": f"127.0.0.1:{silent.getsockname()[1]}",
             "snmp": {"version": "2c", "community": "pdu"}},
        ]
        config = write_config(tmp_path, influxdb.url, influx_db,
                              yaml.safe_dump([{"name": "lab", "devices": devices}]), interval="1s")
        stop = asyncio.Event()
        caplog.set_level(logging.INFO, logger="greenwatch")
        async with Service(load(config)) as service:
            runner = asyncio.create_task(service.run(stop, summary_every_s=2.5))
            await asyncio.sleep(3)
            stop.set()
            await runner
    finally:
        silent.close()
        agent.stop()
    summaries = [r.getMessage() for r in caplog.records if "devices:" in r.getMessage()]
    assert summaries, caplog.text
    assert summaries[0].startswith("2 devices: 1 down (lab/gone)")
    assert "pending" in summaries[0]
