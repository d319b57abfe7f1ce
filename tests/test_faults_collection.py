"""Faults during collection, on a real `greenwatch run` process and real parts: InfluxDB
killed with SIGKILL and restarted on the same port and data dir; the collector itself
killed with SIGKILL while it writes; a tenth of the SNMP devices never answering; a
Redfish server answering every request with 500. After each: nothing accepted is lost
(counted against InfluxDB and the spool), the other devices carried on, and the
failure shows in the logs and in /metrics."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from collectorhelp import RECORDINGS, Running, write_config
from opshelp import (
    NO_REPORT,
    LoopThread,
    free_port,
    get_json,
    http_block,
    metrics,
    value,
    wait_until,
)
from realparts.influx import InfluxServer, start_influx_server
from realparts.web import serve
from test_shutdown import Plugs, count_points

from greenwatch.core.spool import Spool

STOP_LINE = re.compile(r"stopped: (\d+) points accepted this run; InfluxDB took (\d+), (\d+) stay spooled")


@pytest.fixture
def plugs() -> Iterator[Plugs]:
    server = Plugs()
    yield server
    server.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InfluxServer]:
    """A private influxd: these tests kill it."""
    influx = start_influx_server(tmp_path / "influx")
    influx.create_database("gw")
    yield influx
    influx.stop()


@pytest.fixture(scope="module")
def pdu_agent(snmpsim):
    agent = snmpsim.start({"pdu-a1": RECORDINGS / "apc-rpdu2.snmprec"})
    yield agent
    agent.stop()


def kill9_influxd(server: InfluxServer) -> None:
    """SIGKILL influxd by its pid (no flush, no goodbye), then reap it."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    server.stop()  # only reaps: the process is already gone


def plug_estate(plugs: Plugs, n: int = 3) -> str:
    devices = [{"name": f"plug-{i}", "http": {"type": "shelly", "url": plugs.fast_url}, "interval": "1s"}
               for i in range(1, n + 1)]
    return yaml.safe_dump([{"name": "office", "devices": devices}])


def stop_line(run: Running) -> tuple[int, int, int]:
    match = STOP_LINE.search(run.log())
    assert match, run.log()[-3000:]
    accepted, written, spooled = (int(g) for g in match.groups())
    return accepted, written, spooled


def polls_between(server: InfluxServer, device: str, start_s: float, end_s: float) -> int:
    rows = server.rows(f"SELECT count(up) FROM poll WHERE device = '{device}' AND time >= {int(start_s * 1e9)} "
                       f"AND time <= {int(end_s * 1e9)}", "gw")
    return rows[0]["count"] if rows else 0


def test_influxdb_killed_and_restarted_during_collection_loses_nothing(tmp_path, plugs, server):
    port = free_port()
    # The rules every second: a periodic job that reads InfluxDB is running whenever it dies.
    config = write_config(tmp_path, server.url, "gw", plug_estate(plugs),
                          extra=http_block(port) + NO_REPORT + "rules:\n  interval: 1s\n")
    run = Running(config, tmp_path / "run.log")
    rules = {"job": "rules"}
    try:
        run.wait_for(r"plug-3: \d+ points accepted")
        wait_until(lambda: count_points(server, "gw") > 0, what="points in InfluxDB")
        wait_until(lambda: value(metrics(port), "greenwatch_job_runs_total", **rules) >= 1, what="the rules run")
        assert value(metrics(port), "greenwatch_job_failures_total", **rules) == 0
        kill9_influxd(server)
        killed_at = time.time()
        run.wait_for(r"InfluxDB write failed \(attempt 1, \d+ lines pending\); retrying")
        accepted_at_kill = run.accepted()
        time.sleep(3)
        # Polling went on while InfluxDB was gone; the points wait in the spool.
        assert run.accepted() > accepted_at_kill + 6
        samples = metrics(port)
        assert value(samples, "greenwatch_spool_pending_points") > 0
        assert value(samples, "greenwatch_influxdb_write_retries_total") > 0
        assert value(samples, "greenwatch_points_accepted_total") > value(samples, "greenwatch_points_written_total")
        assert value(samples, "greenwatch_poll_failures_total", site="office", device="plug-1", kind="plug") == 0
        status, health = get_json(port, "/healthz", token=None)
        assert status == 503 and health["influxdb"]["reachable"] is False, health
        # The rules job fails each turn, says so, and goes on trying.
        assert value(samples, "greenwatch_job_failures_total", **rules) >= 1
        assert "rules failed; trying again in 1 s" in run.log()
        runs_in_outage = value(samples, "greenwatch_job_runs_total", **rules)

        server.start()  # the same port, config and data dir
        restarted_at = time.time()
        run.wait_for(r"InfluxDB writes recovered after \d+ failed attempt\(s\)")
        wait_until(lambda: value(metrics(port), "greenwatch_spool_pending_points") == 0, what="the spool drained")
        wait_until(lambda: value(metrics(port), "greenwatch_job_runs_total", **rules) > runs_in_outage,
                   what="the rules running again")
    finally:
        code = run.terminate()
    assert code == 0, run.log()[-3000:]
    accepted, written, spooled = stop_line(run)
    assert accepted == run.accepted() and spooled == 0
    # Every accepted point is in InfluxDB: those taken before the kill (acknowledged, so
    # in influxd's WAL) and those spooled meanwhile. A batch cut off by the kill is sent
    # again; InfluxDB keeps one point per series and time, so the count is exact.
    assert count_points(server, "gw") == accepted
    assert written >= accepted
    # The polls of the outage itself are there, at their own times.
    assert polls_between(server, "plug-1", killed_at + 0.5, restarted_at - 0.5) >= 2
    with Spool(tmp_path / "spool.db") as spool:
        assert spool.pending == 0


def test_collector_killed_mid_write_keeps_every_acknowledged_point_for_the_next_run(tmp_path, plugs, server):
    config = write_config(tmp_path, server.url, "gw", plug_estate(plugs, n=6))
    first = Running(config, tmp_path / "first.log")
    try:
        first.wait_for(r"plug-6: \d+ points accepted")
        wait_until(lambda: count_points(server, "gw") > 0, what="points in InfluxDB")
        kill9_influxd(server)  # from now on every point goes to the spool and stays there
        first.wait_for(r"InfluxDB write failed")
        time.sleep(2)
    finally:
        # Six plugs every second: polls are appending to the spool at any moment.
        first.kill9()
    acknowledged = first.accepted()
    assert "stopped:" not in first.log()  # it had no chance to say goodbye
    with Spool(tmp_path / "spool.db") as spool:
        pending = spool.pending
    server.start()
    before = count_points(server, "gw")
    assert pending > 0
    # Every point logged as accepted is in InfluxDB or on disk. (A batch in flight
    # when influxd died can be in both; a poll cut off between its append and its log
    # line adds at most its own two points per plug.)
    assert before + pending >= acknowledged
    assert before + pending <= acknowledged + 2 * 6 + 500  # 500: one batch, at most

    second = Running(config, tmp_path / "second.log")
    try:
        second.wait_for(r"plug-6: \d+ points accepted")
        time.sleep(1)
    finally:
        code = second.terminate()
    assert code == 0, second.log()[-3000:]
    accepted, written, spooled = stop_line(second)
    # The second run sent what the first left on disk, then its own points.
    assert spooled == 0 and written == pending + accepted
    total = count_points(server, "gw")
    assert acknowledged + accepted <= total <= acknowledged + accepted + 2 * 6
    assert total >= before + accepted


class FailingBmc:
    """A Redfish service whose every answer is 500 with a Redfish error body."""

    def __init__(self, loop: LoopThread) -> None:
        self.requests = 0
        self._loop = loop
        self._runner: web.AppRunner | None = None
        self.url = loop.call(self._start())

    async def _fail(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response({"error": {"code": "Base.1.8.GeneralError",
                                            "message": "A general error has occurred."}}, status=500)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._fail)
        self._runner, url = await serve(app)
        return url

    def close(self) -> None:
        assert self._runner is not None
        self._loop.call(self._runner.cleanup())


@pytest.fixture
def failing_bmc() -> Iterator[FailingBmc]:
    loop = LoopThread()
    bmc = FailingBmc(loop)
    yield bmc
    bmc.close()
    loop.close()



def test_a_silent_tenth_and_a_failing_redfish_server_do_not_hold_up_the_rest(
    tmp_path, pdu_agent, silent_agent, failing_bmc, server
):
    # Ten PDUs on a 2 s cycle, one of which never answers (its 5 s timeout is longer
    # than the cycle: the poll's own deadline, 90% of the cycle, cuts it off, so its
    # polls never overrun into the next); and a BMC that answers 500 to everything.
    devices = [{"name": f"pdu-{i}", "address": pdu_agent.address, "snmp": {"version": "2c", "community": "pdu-a1"},
                "profile": "apc-rpdu2"} for i in range(1, 10)]
    devices.append({"name": "pdu-silent", "address": silent_agent, "timeout": "5s",
                    "snmp": {"version": "2c", "community": "public"}, "profile": "apc-rpdu2"})
    devices.append({"name": "bmc-1", "redfish": {"url": failing_bmc.url, "username": "monitor", "password": "pw"}})
    port = free_port()
    config = write_config(tmp_path, server.url, "gw", yaml.safe_dump([{"name": "dc-north", "devices": devices}]),
                          interval="2s", extra=http_block(port) + NO_REPORT)
    run = Running(config, tmp_path / "run.log")
    try:
        run.wait_for(r"dc-north/pdu-silent: down: ", timeout=30)
        started = time.time()
        time.sleep(8)
        samples = metrics(port)
        _, shown = get_json(port, "/devices")
    finally:
        code = run.terminate()
    ended = time.time()
    assert code == 0, run.log()[-3000:]
    labels = {"site": "dc-north", "kind": "pdu"}

    # The nine answering PDUs kept their 2 s cadence: no skips, no failures, and in
    # InfluxDB a poll point every 2 s (give or take the start offsets).
    for i in range(1, 10):
        device = f"pdu-{i}"
        assert value(samples, "greenwatch_polls_skipped_total", device=device, **labels) == 0, device
        assert value(samples, "greenwatch_poll_failures_total", device=device, **labels) == 0, device
        times = [row["time"] / 1e9 for row in server.rows(
            f"SELECT up FROM poll WHERE device = '{device}' AND time >= {int(started * 1e9)} "
            f"AND time <= {int(ended * 1e9)}", "gw")]
        assert len(times) >= 4, (device, times)
        assert max(b - a for a, b in pairwise(times)) < 2.6, (device, times)

    # The silent one: down at every poll with a named error, on the same cadence
    # (cut off by its deadline, so none of its polls is skipped either).
    silent = {"device": "pdu-silent", **labels}
    assert value(samples, "greenwatch_polls_skipped_total", **silent) == 0
    assert value(samples, "greenwatch_device_up", **silent) == 0
    polls = value(samples, "greenwatch_polls_total", **silent)
    assert polls >= 4 and value(samples, "greenwatch_poll_failures_total", **silent) == polls
    by_name = {d["device"]: d for d in shown}
    assert "deadline of 1.8s" in by_name["pdu-silent"]["last_error"], by_name["pdu-silent"]
    # Logged when it went down, not again at each poll of the same outage.
    assert len(re.findall(r"dc-north/pdu-silent: down: poll took longer than its deadline", run.log())) == 1
    assert "poll skipped" not in run.log()

    # The BMC: asked, down, its error names the 500; the same in the poll points.
    assert failing_bmc.requests > 0
    bmc = {"site": "dc-north", "device": "bmc-1", "kind": "server"}
    assert value(samples, "greenwatch_device_up", **bmc) == 0
    assert value(samples, "greenwatch_poll_failures_total", **bmc) == value(samples, "greenwatch_polls_total", **bmc)
    assert "HTTP 500" in by_name["bmc-1"]["last_error"], by_name["bmc-1"]
    errors = {row["error"] for row in server.rows("SELECT error FROM poll WHERE device = 'bmc-1'", "gw")}
    assert errors and all("HTTP 500" in e for e in errors), errors
    assert re.search(r"dc-north/bmc-1.*HTTP 500", run.log())

    # Nothing accepted was lost.
    accepted, written, spooled = stop_line(run)
    assert accepted == written == count_points(server, "gw") and spooled == 0
