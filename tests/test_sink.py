"""The sink, end to end: samples -> spool -> real influxd, through outages and bad data."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from greenwatch.core.influx import InfluxClient
from greenwatch.core.schema import Sample
from greenwatch.core.sink import Sink, SinkStats
from greenwatch.core.spool import Spool
from realparts.influx import InfluxServer, start_influx_server

T0 = 1_700_000_000_000_000_000


def samples(start: int, n: int, device: str = "pdu1") -> list[Sample]:
    return [
        Sample("power", {"site": "lon", "device": device, "kind": "pdu", "scope": "device", "entity": "total"},
               {"watts": 100.0 + i, "seq": i}, T0 + i * 1_000_000)
        for i in range(start, start + n)
    ]


class RecordingWriter:
    """Forwards to the real client and records each batch it was asked to write,
    so tests can see batching and order; InfluxDB does the real work."""

    def __init__(self, inner: InfluxClient) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []

    async def write(self, lines: list[str]) -> None:
        self.batches.append(list(lines))
        await self.inner.write(lines)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def client(influxdb: InfluxServer, influx_db: str) -> AsyncIterator[InfluxClient]:
    async with InfluxClient(influxdb.url, influx_db, timeout_s=2) as c:
        yield c


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    yield s
    s.close()


async def until(condition, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def fast_sink(spool: Spool, writer: object, **kw: object) -> Sink:
    options = {"retry_initial_s": 0.05, "retry_max_s": 0.3}
    options.update(kw)
    return Sink(spool, writer, **options)  # type: ignore[arg-type]


async def test_samples_reach_influxdb_in_order_in_batches(
    influxdb: InfluxServer, influx_db: str, client: InfluxClient, spool: Spool
) -> None:
    writer = RecordingWriter(client)
    sink = fast_sink(spool, writer, batch_size=40)
    # written before start(): already durable, drained once started
    await sink.write(samples(0, 30))
    assert spool.pending == 30
    sink.start()
    for start in range(30, 100, 10):
        await sink.write(samples(start, 10))
    assert await sink.flush(5)
    await sink.close()

    assert sink.stats() == SinkStats(written=100, rejected=0, dropped=0, retries=0, pending=0)
    assert influxdb.count("power", influx_db) == 100
    sent = [line for batch in writer.batches for line in batch]
    assert sent == [s.to_line() for s in samples(0, 100)]
    assert max(len(b) for b in writer.batches) <= 40
    rows = influxdb.rows('SELECT watts, seq FROM "power"', influx_db)
    assert [r["seq"] for r in rows] == list(range(100))


async def test_small_writes_gather_for_the_flush_interval_and_a_full_batch_goes_at_once(
    influxdb: InfluxServer, influx_db: str, client: InfluxClient, spool: Spool
) -> None:
    writer = RecordingWriter(client)
    # An interval far longer than the test: only a full batch or flush() can end it.
    sink = fast_sink(spool, writer, batch_size=50, flush_interval_s=3600)
    sink.start()
    await sink.write(samples(0, 1))
    await until(lambda: writer.batches)  # the first line goes at once
    for start in range(1, 41):  # forty small polls within the interval: nothing written
        await sink.write(samples(start, 1))
    await asyncio.sleep(0.2)
    assert [len(b) for b in writer.batches] == [1]
    await sink.write(samples(41, 10))  # a full batch (50) is spooled: it goes without waiting
    await until(lambda: len(writer.batches) == 2)
    await sink.write(samples(51, 3))
    assert await sink.flush(5)  # flush() does not wait out the interval
    await sink.close()
    assert [len(b) for b in writer.batches] == [1, 50, 3]
    assert influxdb.count("power", influx_db) == 54


async def test_close_right_after_a_flush_ends_the_drain_task(
    influxdb: InfluxServer, influx_db: str, client: InfluxClient, spool: Spool
) -> None:
    # The drain task wrote what there was and waits out its flush interval; close()
    # flushes (which ends that wait) and cancels the task in the same breath. The
    # cancel must not be lost (it was, with asyncio.wait_for on Python 3.11, and
    # `greenwatch run` never stopped).
    for i in range(20):
        sink = fast_sink(spool, client, flush_interval_s=3600)
        sink.start()
        await sink.write(samples(2 * i, 2))
        await until(lambda sink=sink: sink.stats().written == 2)
        await asyncio.sleep(0.01)  # into the flush interval
        assert await asyncio.wait_for(sink.close(5), 10)
    assert influxdb.count("power", influx_db) == 40


async def test_only_the_rejected_line_is_dropped_counted_and_logged_once(
    influxdb: InfluxServer, influx_db: str, client: InfluxClient, spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="greenwatch.core.sink")
    sink = fast_sink(spool, client)
    sink.start()
    await sink.write(samples(0, 5))
    assert await sink.flush(5)
    # watts was a float; a string now is a field type conflict: 1.x answers 400
    # "partial write", storing the good points of that batch and not the bad one.
    bad = Sample("power", {"site": "lon", "device": "pdu1"}, {"watts": "lots"}, T0 + 10**9)
    await sink.write([*samples(5, 2), bad])
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await sink.flush(5)
    assert loop.time() - started < 2  # dropped at once, not retried
    await sink.write(samples(7, 3))
    assert await sink.flush(5)
    await sink.close()

    stats = sink.stats()
    assert stats.rejected == 1  # the batch was halved until the bad line stood alone
    assert stats.written == 10
    assert stats.retries == 0
    assert stats.pending == 0
    assert influxdb.count("power", influx_db, "seq") == 10
    errors = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(errors) == 1
    assert "field type conflict" in errors[0].getMessage()


async def test_outage_loses_nothing(
    influxdb: InfluxServer, influx_db: str, client: InfluxClient, spool: Spool
) -> None:
    sink = fast_sink(spool, client, batch_size=25)
    sink.start()
    await sink.write(samples(0, 50))
    assert await sink.flush(5)

    influxdb.stop()
    try:
        # The collectors keep writing for ~1.5 s while InfluxDB is away; writes
        # return as soon as the lines are on disk.
        for k in range(1, 11):
            await asyncio.wait_for(sink.write(samples(k * 50, 50)), 1)
            await asyncio.sleep(0.15)
        stats = sink.stats()
        assert stats.retries >= 2
        assert stats.pending == 500
        assert not await sink.flush(0.2)
    finally:
        influxdb.start()
    assert await sink.flush(10)
    await sink.close()

    stats = sink.stats()
    assert (stats.written, stats.rejected, stats.dropped, stats.pending) == (550, 0, 0, 0)
    assert influxdb.count("power", influx_db) == 550
    rows = influxdb.rows('SELECT seq FROM "power"', influx_db)
    assert [r["seq"] for r in rows] == list(range(550))


async def test_close_leaves_unwritten_lines_for_the_next_start(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path
) -> None:
    path = tmp_path / "spool.db"
    influxdb.stop()
    try:
        spool = Spool(path)
        async with InfluxClient(influxdb.url, influx_db, timeout_s=1) as client:
            sink = fast_sink(spool, client)
            sink.start()
            await sink.write(samples(0, 120))
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await sink.close(timeout_s=0.3) is False
            assert loop.time() - started < 2
            assert not sink.running
        spool.close()
    finally:
        influxdb.start()

    # "Next run of greenwatch": same spool file, new sink.
    spool = Spool(path)
    try:
        assert spool.pending == 120
        async with InfluxClient(influxdb.url, influx_db) as client:
            sink = fast_sink(spool, client)
            sink.start()
            assert await sink.flush(5)
            assert await sink.close(1)
        assert sink.stats().written == 120
    finally:
        spool.close()
    assert influxdb.count("power", influx_db) == 120


async def test_auth_errors_are_retried_and_logged_clearly(
    tmp_path: Path, spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_influx_server(tmp_path / "influx", auth_enabled=True)
    try:
        server.query("CREATE USER admin WITH PASSWORD 'adminpw' WITH ALL PRIVILEGES")
        server.admin = ("admin", "adminpw")
        server.create_database("metrics")
        server.query("CREATE USER writer WITH PASSWORD 'right-pw'")
        server.query('GRANT WRITE ON "metrics" TO writer')

        wrong = InfluxClient(server.url, "metrics", username="writer", password="wrong-pw")
        right = InfluxClient(server.url, "metrics", username="writer", password="right-pw")
        caplog.set_level(logging.ERROR, logger="greenwatch.core.sink")
        sink = fast_sink(spool, wrong)
        sink.start()
        await sink.write(samples(0, 20))
        assert not await sink.flush(0.5)
        stats = sink.stats()
        assert stats.retries >= 2 and stats.rejected == 0 and stats.pending == 20
        messages = [r.getMessage() for r in caplog.records]
        assert any("refused greenwatch's credentials" in m and "401" in m for m in messages)
        assert not any("wrong-pw" in m for m in messages)

        # the operator fixes the password: the same lines go through
        sink.writer = right
        assert await sink.flush(5)
        await sink.close()
        await wrong.close()
        await right.close()
        assert sink.stats().written == 20
        assert server.count("power", "metrics") == 20
    finally:
        server.stop()


async def test_too_large_batches_are_split_not_dropped(tmp_path: Path, spool: Spool) -> None:
    server = start_influx_server(tmp_path / "influx", max_body_size=4000)
    try:
        server.create_database("metrics")
        async with InfluxClient(server.url, "metrics") as client:
            writer = RecordingWriter(client)
            sink = fast_sink(spool, writer, batch_size=500)
            sink.start()
            await sink.write(samples(0, 300))  # ~40 kB: ten times the limit
            assert await sink.flush(10)
            await sink.close()
        assert sink.stats().written == 300 and sink.stats().rejected == 0
        assert server.count("power", "metrics") == 300
        assert len(writer.batches[0]) == 300
        assert max(len(b) for b in writer.batches[1:]) < 300
    finally:
        server.stop()


async def test_spool_bound_drops_show_in_sink_stats_and_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="greenwatch.core.sink")
    # room for exactly the newest ten lines
    spool = Spool(tmp_path / "spool.db", max_bytes=sum(len(s.to_line().encode()) for s in samples(15, 10)))
    try:
        async with InfluxClient("http://127.0.0.1:9", "db", timeout_s=0.5) as client:  # never reached
            sink = fast_sink(spool, client)
            await sink.write(samples(0, 25))  # not started: all stays in the spool
            await sink.write(samples(25, 5))
            stats = sink.stats()
            assert stats.dropped == 20
            assert stats.pending == 10
            assert spool.peek(100)[1] == [s.to_line() for s in samples(20, 10)]
            assert await sink.flush(0.1) is False  # not started: never drains
            # Said once (a minute may pass before it is said again), naming the spool.
            warnings = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
            assert len(warnings) == 1 and str(spool.path) in warnings[0] and "15 so far this run" in warnings[0]
    finally:
        spool.close()


async def test_drops_after_a_warning_are_told_with_the_running_total(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="greenwatch.core.sink")

    def full_warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]

    spool = Spool(tmp_path / "spool.db", max_bytes=sum(len(s.to_line().encode()) for s in samples(10, 10)))  # lines of one size
    try:
        async with InfluxClient("http://127.0.0.1:9", "db", timeout_s=0.5) as client:  # never reached
            sink = fast_sink(spool, client, full_warning_every_s=0.5)
            await sink.write(samples(10, 12))  # 2 dropped: warned at once
            await sink.write(samples(22, 3))  # 3 more within the interval: not yet...
            await sink.write(samples(25, 4))  # ...nor these 4
            assert len(full_warnings()) == 1 and "2 so far this run" in full_warnings()[0]
            await asyncio.sleep(0.8)  # ...but once the interval is up, with the new total
            assert len(full_warnings()) == 2
            assert "7 since the last warning, 9 so far this run" in full_warnings()[1]
            await asyncio.sleep(0.8)  # nothing new dropped: nothing said
            assert len(full_warnings()) == 2
            await sink.write(samples(29, 1))  # the interval is long past: said at once
            assert "1 since the last warning, 10 so far this run" in full_warnings()[2]
            await sink.write(samples(30, 5))  # within the interval, and then the sink closes:
            await sink.close()  # close says the rest rather than leave it untold
            assert len(full_warnings()) == 4
            assert "5 since the last warning, 15 so far this run" in full_warnings()[3]
            assert sink.stats().dropped == 15
    finally:
        spool.close()


async def test_samples_without_writable_fields_are_not_spooled(spool: Spool, client: InfluxClient) -> None:
    sink = fast_sink(spool, client)
    await sink.write([Sample("power", {"device": "x"}, {"watts": float("nan")}, T0)])
    assert spool.appended == 0
    await sink.write([])
    assert spool.appended == 0
