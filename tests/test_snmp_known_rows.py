"""Between full walks an SNMP device's known table rows are read by GET (one request
for a small host's scalars and tables), and what is read is what a walk reads.

A relay between the collector and a real net-snmp agent notes the type of each
request (GET, GETBULK), so the tests see what each poll sent. A row the agent no longer has sends the
poll back to a walk at once; a walk falls due after `rewalk`.
"""

from __future__ import annotations

import time

import pytest
from realparts.udp_relay import start_relay
from snmphelp import make_source

from collector.snmp.gufo_engine import GufoEngine
from collector.snmp.pysnmp_engine import PysnmpEngine
from collector.snmp.source import KnownRows

ENGINES = {"gufo": GufoEngine, "pysnmp": PysnmpEngine}
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
# Fields that stay put on an idle test agent between two polls (uptime and traffic move).
STATIC = {"oper_up", "speed_bps", "cpu_load_percent"}


def readings(result) -> dict[tuple, dict]:
    """{(measurement, tags): static fields} of a poll."""
    assert result.error is None, result.error
    return {(s.measurement, tuple(sorted(s.tags.items()))): {k: v for k, v in s.fields.items() if k in STATIC}
            for s in result.samples}


async def polls(engine_name: str, snmpd, profile: str = "if-mib", **device):
    relay, port = await start_relay(str(snmpd.address))
    engine = ENGINES[engine_name]()
    source = make_source(engine, f"127.0.0.1:{port}", {"version": "2c", "community": snmpd.community,
                                                       **device.pop("snmp", {})},
                         profile=profile, **device)

    async def poll():
        before = len(relay.requests)
        result = await source.poll()
        return result, relay.requests[before:]

    async def close():
        await engine.close()
        relay.close()

    return source, poll, close


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
async def test_known_rows_are_read_by_one_get_and_read_what_a_walk_reads(snmpd, engine_name):
    source, poll, close = await polls(engine_name, snmpd)
    try:
        walked, walk_requests = await poll()
        by_get, get_requests = await poll()
    finally:
        await close()
    assert "get" not in walk_requests  # the tables walked (if-mib has no scalars)
    assert get_requests == ["get"]  # every known row in one GET
    assert readings(by_get) == readings(walked)
    assert {s.tags.get("label") for s in by_get.samples} == {s.tags.get("label") for s in walked.samples}
    assert any(s.measurement == "port" for s in by_get.samples)


async def test_scalars_and_known_rows_share_the_get(snmpd):
    source, poll, close = await polls("gufo", snmpd, profile="net-snmp-linux")
    try:
        await poll()
        by_get, _ = await poll()
    finally:
        await close()
    assert source.known.rows and source.reader.profile.scalar_oids
    assert {s.measurement for s in by_get.samples} >= {"host", "port"}  # uptime (scalar) and ports (rows)


def test_only_tables_cheaper_to_get_than_to_walk_are_remembered():
    def rows(n: int) -> dict[str, object]:
        return {str(i): object() for i in range(1, n + 1)}

    known = KnownRows(time.monotonic())
    # A host's CPU table is empty in its agent's first minute: walked until it fills.
    known.add(("1.2.3.1", "1.2.3.2"), {"1.2.3.1": rows(1), "1.2.3.2": {}})  # type: ignore[dict-item]
    # Two columns of 40 rows: three GETs against at least two GETBULKs. Walked.
    known.add(("1.2.5.1", "1.2.5.2"), {"1.2.5.1": rows(40), "1.2.5.2": rows(40)})  # type: ignore[dict-item]
    # One column: a GET saves nothing on its one GETBULK. Walked.
    known.add(("1.2.6.1",), {"1.2.6.1": rows(3)})  # type: ignore[dict-item]
    # Four columns of four rows: one GET against four GETBULKs. Remembered.
    group = tuple(f"1.2.4.{c}" for c in range(1, 5))
    known.add(group, {column: rows(4) for column in group})  # type: ignore[misc]
    assert known.groups == [group]
    assert known.oids() == [f"1.2.4.{c}.{r}" for c in range(1, 5) for r in range(1, 5)]



async def test_a_rewalk_at_or_below_the_interval_walks_every_poll(snmpd):
    source, poll, close = await polls("gufo", snmpd, interval="30s", snmp={"rewalk": "30s"})
    try:
        await poll()
        _, second = await poll()
    finally:
        await close()
    assert source.known.groups == []
    assert "getbulk" in second


async def test_a_row_gone_from_the_agent_sends_the_poll_back_to_a_walk(snmpd):
    source, poll, close = await polls("gufo", snmpd)
    try:
        walked, _ = await poll()
        assert source.known is not None
        # The agent "had" a row 999999 at the last walk; it has not now.
        columns = {column: dict.fromkeys(rows) for column, rows in source.known.rows.items()}
        columns[IF_OPER_STATUS]["999999"] = None
        source.known = KnownRows(time.monotonic())
        for group in source.reader.profile.tables:
            source.known.add(group, columns)  # type: ignore[arg-type]
        assert "999999" in source.known.rows[IF_OPER_STATUS]
        again, requests = await poll()
    finally:
        await close()
    assert requests[0] == "get" and "getbulk" in requests  # the GET, then the walks
    assert readings(again) == readings(walked)
    assert "999999" not in source.known.rows[IF_OPER_STATUS]


async def test_tables_are_walked_again_when_the_rewalk_is_due(snmpd):
    source, poll, close = await polls("gufo", snmpd, snmp={"rewalk": "10m"})
    try:
        await poll()
        assert source.known is not None
        source.known.walked_at -= 600  # ten minutes on
        _, requests = await poll()
        walked_at = source.known.walked_at
    finally:
        await close()
    assert "getbulk" in requests
    assert time.monotonic() - walked_at < 60
