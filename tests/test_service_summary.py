"""`greenwatch run` logs a one-line summary now and then: what is down, what waits."""

from __future__ import annotations

import asyncio
import logging
import re
import socket

import yaml
from collectorhelp import RECORDINGS, write_config
from realparts.influx import free_port

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
    assert summaries[0].endswith("lost this run: 0 dropped by the full spool, 0 rejected by InfluxDB")


def _dropped(message: str) -> int:
    match = re.search(r"lost this run: (\d+) dropped by the full spool, (\d+) rejected by InfluxDB$", message)
    assert match, message
    return int(match.group(1))


async def test_summaries_and_the_stop_line_give_the_running_total_of_dropped_lines(
    tmp_path, snmpsim, caplog
):
    agent = snmpsim.start({"pdu": RECORDINGS / "apc-rpdu2.snmprec"})
    # InfluxDB never answers (nothing listens there) and the spool holds a few kB:
    # each poll pushes older lines out.
    devices = [{"name": "pdu-1", "address": agent.address, "snmp": {"version": "2c", "community": "pdu"}}]
    config = write_config(tmp_path, f"http://127.0.0.1:{free_port()}", "gw",
                          yaml.safe_dump([{"name": "lab", "devices": devices}]), interval="1s", spool_max="2kB")
    caplog.set_level(logging.INFO, logger="greenwatch")
    service = Service(load(config))
    await service.__aenter__()
    try:
        stop = asyncio.Event()
        runner = asyncio.create_task(service.run(stop, summary_every_s=1.0))
        await asyncio.sleep(3.5)
        stop.set()
        await runner
    finally:
        await service.close(within_s=1.5, poll_grace_s=0.5)
        agent.stop()
    spool = service.spool
    assert spool.dropped > 0 and spool.acked == 0
    assert spool.appended == spool.pending + spool.dropped  # every line is spooled or counted as dropped
    totals = [_dropped(r.getMessage()) for r in caplog.records if "devices:" in r.getMessage()]
    assert len(totals) >= 2 and totals == sorted(totals) and totals[-1] > 0, totals
    (stopped,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped:")]
    assert f"InfluxDB took 0, {spool.pending} stay spooled" in stopped
    assert _dropped(stopped) == spool.dropped >= totals[-1]
