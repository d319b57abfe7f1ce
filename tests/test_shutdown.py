"""SIGTERM stops `greenwatch run` well inside docker's 10 s grace, whatever polls are in
flight, and loses nothing it accepted: a real `greenwatch run` process, real Shelly-like
plugs over HTTP (one answers only after a long sleep), an SNMP agent that never answers
(a bound UDP socket) and a real influxd."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from collectorhelp import Running, write_config
from realparts.influx import InfluxServer, start_influx_server
from realparts.web import serve

from collector.config import Defaults, Device
from collector.http_power import HttpPowerSource
from collector.scheduler import Collector, Entry
from greenwatch.config import Site
from greenwatch.core.influx import InfluxClient
from greenwatch.core.sink import Sink
from greenwatch.core.spool import Spool
from greenwatch.service import Periodic, Service, load

# The bound is for correctness (docker sends SIGKILL 10 s after SIGTERM), not speed:
# the service aims at ~6 s at worst (3 s of grace for polls, the rest to drain).
STOP_BOUND_S = 8.0


class Plugs:
    """Two Shelly Gen2 plugs' HTTP APIs in a thread with its own event loop (the test
    itself blocks on the greenwatch process): `fast_url` answers at once, `slow_url`
    only when the test ends, so a poll of it is in flight whenever SIGTERM comes."""

    def __init__(self) -> None:
        self.slow_asked = threading.Event()
        self.fast_polls = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="plugs", daemon=True)
        self._thread.start()
        self._release = asyncio.Event()
        self._runners: list[web.AppRunner] = []
        self.fast_url = self._call(self._serve(self._fast))
        self.slow_url = self._call(self._serve(self._slow))

    def _call(self, coro):  # noqa: ANN001, ANN202 - run on the plugs' loop and wait
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _serve(self, handler) -> str:  # noqa: ANN001
        app = web.Application()
        app.router.add_get("/rpc/Switch.GetStatus", handler)
        runner, url = await serve(app, shutdown_timeout=0.5)
        self._runners.append(runner)
        return url

    @staticmethod
    def _status(apower: float) -> web.Response:
        return web.json_response({"id": 0, "output": True, "apower": apower, "voltage": 230.0,
                                  "current": round(apower / 230.0, 3), "aenergy": {"total": 1234.5}})

    async def _fast(self, request: web.Request) -> web.Response:
        self.fast_polls += 1
        return self._status(42.0)

    async def _slow(self, request: web.Request) -> web.Response:
        self.slow_asked.set()
        await self._release.wait()
        return self._status(99.0)

    def close(self) -> None:
        async def stop() -> None:
            self._release.set()
            for runner in self._runners:
                await runner.cleanup()

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def plugs():
    server = Plugs()
    yield server
    server.close()



def estate(plugs: Plugs, silent_agent: str) -> str:
    # Three plugs polled every second keep points flowing; the slow plug and the
    # silent agent have long timeouts, so each has a poll in flight at any moment.
    devices = [{"name": f"plug-{i}", "http": {"type": "shelly", "url": plugs.fast_url}, "interval": "1s"}
               for i in range(1, 4)]
    devices += [
        {"name": "slow-plug", "http": {"type": "shelly", "url": plugs.slow_url, "timeout": "50s"},
         "interval": "60s"},
        {"name": "silent-ups", "address": silent_agent, "snmp": {"version": "2c", "community": "public"},
         "profile": "ups-mib", "timeout": "50s", "interval": "55s"},  # alone in its interval: offset 0
    ]
    return yaml.safe_dump([{"name": "office", "devices": devices}])


def wait_slow_asked(plugs: Plugs, run: Running) -> None:
    deadline = time.monotonic() + 30
    while not plugs.slow_asked.wait(0.1):
        if run.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the slow plug was never asked:\n{run.log()[-3000:]}")


def count_points(server: InfluxServer, db: str, device: str | None = None) -> int:
    """Points in `power` and `poll`, of one device or of all."""
    where = f" WHERE device = '{device}'" if device else ""
    return sum(
        row["count"]
        for measurement, field in (("power", "watts"), ("poll", "up"))
        for row in server.rows(f"SELECT count({field}) FROM {measurement}{where}", db)
    )


def sigterm(run: Running) -> tuple[int, float]:
    started = time.monotonic()
    code = run.terminate(timeout=30)
    return code, time.monotonic() - started


def accepted_from(run: Running, device: str) -> int:
    return sum(int(n) for n in re.findall(rf"/{device}: (\d+) points accepted$", run.log(), re.MULTILINE))


def test_sigterm_with_slow_polls_in_flight_stops_soon_and_writes_everything(
    tmp_path: Path, plugs: Plugs, silent_agent: str, influxdb: InfluxServer, influx_db: str
) -> None:
    config = write_config(tmp_path, influxdb.url, influx_db, estate(plugs, silent_agent))
    run = Running(config, tmp_path / "run.log")
    try:
        wait_slow_asked(plugs, run)
        run.wait_for(r"plug-3: \d+ points accepted")
        time.sleep(1.5)
    finally:
        code, took = sigterm(run)
    log = run.log()
    assert code == 0, log[-3000:]
    assert took < STOP_BOUND_S, f"greenwatch took {took:.1f}s to stop:\n{log[-3000:]}"
    assert "cancelling 2 polls still in flight" in log
    # The cancelled polls wrote nothing, not even a `poll` point saying "down".
    assert accepted_from(run, "slow-plug") == accepted_from(run, "silent-ups") == 0
    assert count_points(influxdb, influx_db, "slow-plug") == count_points(influxdb, influx_db, "silent-ups") == 0
    # Everything accepted reached InfluxDB; the spool is empty.
    accepted = run.accepted()
    assert accepted > 0 and count_points(influxdb, influx_db) == accepted
    assert f"stopped: {accepted} points accepted this run; InfluxDB took {accepted}, 0 stay spooled" in log
    with Spool(tmp_path / "spool.db") as spool:
        assert spool.pending == 0


def test_sigterm_with_influxdb_down_leaves_the_rest_spooled_for_the_next_run(
    tmp_path: Path, plugs: Plugs, silent_agent: str
) -> None:
    server = start_influx_server(tmp_path / "influx")
    try:
        server.create_database("gw")
        config = write_config(tmp_path, server.url, "gw", estate(plugs, silent_agent))
        first = Running(config, tmp_path / "first.log")
        try:
            wait_slow_asked(plugs, first)
            first.wait_for(r"plug-3: \d+ points accepted")
            server.stop()  # from now on every point waits in the spool
            time.sleep(2)
        finally:
            code, took = sigterm(first)
        assert code == 0, first.log()[-3000:]
        assert took < STOP_BOUND_S, f"greenwatch took {took:.1f}s to stop:\n{first.log()[-3000:]}"
        accepted = first.accepted()
        with Spool(tmp_path / "spool.db") as spool:
            spooled = spool.pending
        server.start()
        written = count_points(server, "gw")
        assert spooled > 0 and written + spooled == accepted
        assert f"InfluxDB took {written}, {spooled} stay spooled" in first.log()

        # The next run sends what the first left behind.
        second = Running(config, tmp_path / "second.log")
        try:
            second.wait_for(r"plug-3: \d+ points accepted")
        finally:
            code, _ = sigterm(second)
        assert code == 0, second.log()[-3000:]
        assert count_points(server, "gw") == accepted + second.accepted()
    finally:
        server.stop()


async def test_a_poll_cancelled_while_its_points_go_to_disk_is_written_whole_and_counted(
    tmp_path: Path, plugs: Plugs
) -> None:
    """Cancelling a poll whose device already answered must not leave its points
    half-accounted: the append (a thread) goes on regardless, so the poll waits for
    it, counts the points, and only then ends cancelled."""
    device = Device.model_validate({"name": "plug-1", "http": {"type": "shelly", "url": plugs.fast_url}})
    source = HttpPowerSource(Site(name="office"), device, Defaults())
    spool = Spool(tmp_path / "spool.db")
    try:
        async with InfluxClient("http://127.0.0.1:9", "db", timeout_s=0.5) as never_reached:
            collector = Collector([Entry(Site(name="office"), device, source, 60.0)], Sink(spool, never_reached))
            # Hold the spool's own lock, as a slow disk would: the append waits for it.
            spool._lock.acquire()
            try:
                poll = asyncio.create_task(collector.poll(collector.entries[0]))
                while plugs.fast_polls == 0:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)  # the plug answered; the append is waiting on the lock
                assert spool.appended == 0 and not poll.done()
                poll.cancel()
                await asyncio.sleep(0.3)
                assert not poll.done()  # still waiting for its write, not cut off
            finally:
                spool._lock.release()
            with pytest.raises(asyncio.CancelledError):
                await poll
    finally:
        await source.close()
        spool.close()
    # The plug's power point and the poll's own point: on disk and counted, both.
    assert spool.appended == collector.accepted == 2


async def test_a_periodic_job_that_will_not_end_does_not_hold_up_the_stop(
    tmp_path: Path, plugs: Plugs, influxdb: InfluxServer, influx_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    devices = [{"name": "plug-1", "http": {"type": "shelly", "url": plugs.fast_url}, "interval": "1s"}]
    config = write_config(tmp_path, influxdb.url, influx_db, yaml.safe_dump([{"name": "office", "devices": devices}]))
    started = asyncio.Event()

    async def stubborn() -> None:
        # A job that shrugs off its cancel and goes on (as one waiting on a thread would).
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(60)

    service = Service(load(config))
    service.periodic = [Periodic("stubborn job", 3600, stubborn)]
    await service.__aenter__()
    stop = asyncio.Event()
    runner = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(started.wait(), 10)
    while service.collector.accepted == 0:
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    loop = asyncio.get_running_loop()
    began = loop.time()
    await service.close(within_s=3.0, poll_grace_s=1.0)
    took = loop.time() - began
    assert took < 2.5, took  # the job's grace, then the drain: not the job's 60 s
    assert "stopping without waiting for stubborn job" in caplog.text
    assert count_points(influxdb, influx_db, "plug-1") == service.collector.accepted
    for task in service._jobs:  # end it for good, so the test's loop closes cleanly
        task.cancel()
    await asyncio.wait(service._jobs)
