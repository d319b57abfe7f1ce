"""The SNMP engines' speed paths must not change what is read, nor hold up other devices.

- A device's first poll with the gufo engine needs the reference (pysnmp) engine to
  learn the SMI types; building it (importing pysnmp, making its engine) is most of a
  second of pure Python. It is built in a worker thread, so an HTTP device polled
  beside a first-time SNMP device is not held up. The test orders events rather than
  timing them: the HTTP meter answers only once the SNMP agent's reply to the first
  GET has gone back through a UDP relay, and the HTTP poll must then finish while the
  reference engine is still being built. Built on the event loop, as it was, the
  build would run to the end before the HTTP reply could be read.
- The pysnmp engine goes below pysnmp's hlapi (no MIB view at all): its walks must
  still read exactly what a net-snmp `snmpwalk` reads, types included.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from aiohttp import web
from realparts.udp_relay import start_relay
from realparts.web import serve
from snmphelp import make_source

from collector.config import Defaults, Device
from collector.http_power import HttpPowerSource
from collector.snmp.engine import COUNTER32, GAUGE, INTEGER, OCTETS, OID, TIMETICKS, Target
from collector.snmp.gufo_engine import GufoEngine
from collector.snmp.pysnmp_engine import PysnmpEngine
from greenwatch.config import Site


async def test_first_gufo_poll_does_not_hold_up_an_http_device(snmpd):
    relay, relay_port = await start_relay(str(snmpd.address))

    engine = GufoEngine()  # fresh: no reference engine yet, nothing learned

    async def meter(request: web.Request) -> web.Response:
        # Answer only once the SNMP device's first reply is on its way back to the
        # collector: the SNMP poll is then past its GET and needs the reference engine.
        await relay.first_reply.wait()
        return web.json_response({"power": 42.5})

    app = web.Application()
    app.router.add_get("/status", meter)
    runner, http_url = await serve(app)

    snmp_source = make_source(engine, f"127.0.0.1:{relay_port}",
                              {"version": "2c", "community": snmpd.community}, profile="net-snmp-linux")
    http_device = Device.model_validate({"name": "plug-1", "http": {
        "type": "json", "url": f"{http_url}/status", "fields": {"watts": {"path": "power"}}}})
    http_source = HttpPowerSource(Site(name="office", devices=[http_device]), http_device, Defaults())

    reference_built_when_http_done: list[bool] = []

    async def http_poll():
        result = await http_source.poll()
        reference_built_when_http_done.append(engine.reference_ready)
        return result

    try:
        snmp_result, http_result = await asyncio.wait_for(
            asyncio.gather(snmp_source.poll(), http_poll()), timeout=60)
    finally:
        await http_source.close()
        await engine.close()
        await runner.cleanup()
        relay.close()

    assert http_result.error is None, http_result.error
    assert [s.fields["watts"] for s in http_result.samples] == [42.5]
    assert snmp_result.error is None, snmp_result.error
    assert any(s.measurement == "host" or s.fields for s in snmp_result.samples)
    # Every reply went through the relay: the GET, then the typing walks.
    assert relay.replies > 1
    # The HTTP poll ended while the reference engine was still being built.
    assert reference_built_when_http_done == [False]


def snmpwalk(snmpd, oid: str) -> dict[str, tuple[str, str]]:
    """{index suffix: (net-snmp's type word, value text)} of one column, by net-snmp."""
    out = subprocess.run(
        ["snmpbulkwalk", "-v2c", "-c", snmpd.community, "-m", "", "-On", "-Oe", "-Cr10",
         str(snmpd.address), oid], capture_output=True, text=True, timeout=30, check=True).stdout
    rows = {}
    for line in out.splitlines():
        name, _, rest = line.partition(" = ")
        kind, _, value = rest.partition(": ")
        rows[name.lstrip(".")[len(oid) + 1 :]] = (kind, value)
    return rows


NET_SNMP_TYPES = {"INTEGER": INTEGER, "Gauge32": GAUGE, "Counter32": COUNTER32, "Timeticks": TIMETICKS,
                  "STRING": OCTETS, "Hex-STRING": OCTETS, "OID": OID}


@pytest.mark.parametrize("max_repetitions", [1, 7, 25])
async def test_pysnmp_walk_below_hlapi_reads_what_net_snmp_reads(snmpd, max_repetitions):
    host, port = str(snmpd.address).rsplit(":", 1)
    target = Target(host, int(port), "2c", community=snmpd.community, timeout=5, retries=1,
                    max_repetitions=max_repetitions)
    # ifDescr, ifType, ifMtu, ifSpeed, ifOperStatus, ifInOctets; hrStorageType (OIDs),
    # hrStorageDescr; sysORUpTime (TimeTicks): several columns side by side per GETBULK.
    columns = [f"1.3.6.1.2.1.2.2.1.{i}" for i in (2, 3, 4, 5, 8)] + [
        "1.3.6.1.2.1.25.2.3.1.2", "1.3.6.1.2.1.25.2.3.1.3", "1.3.6.1.2.1.1.9.1.4"]
    engine = PysnmpEngine()
    try:
        got = await engine.walk(target, columns)
        scalars = await engine.get(target, ["1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.99.0"])
    finally:
        await engine.close()
    for column in columns:
        expected = snmpwalk(snmpd, column)
        assert expected, column
        assert list(got[column]) == list(expected), column  # same rows, same order
        for suffix, (kind, text) in expected.items():
            var = got[column][suffix]
            assert var.type == NET_SNMP_TYPES[kind], (column, suffix, var, kind)
            if var.type == OID:
                assert var.value == text.lstrip("."), (column, suffix)
            elif var.type in (INTEGER, GAUGE):
                assert str(var.value) == text.split("(")[-1].rstrip(")"), (column, suffix, text)
    assert scalars["1.3.6.1.2.1.1.99.0"] is None
    assert scalars["1.3.6.1.2.1.1.2.0"].type == OID


@pytest.mark.parametrize(("table", "numbers", "moving"), [
    ("1.3.6.1.2.1.2.2.1", list(range(1, 23)), {10, 11, 16, 17}),  # every ifEntry column: one walk
    ("1.3.6.1.2.1.2.2.1", [1, 2, 3, 5, 6, 7, 8, 10], {10}),  # most of 1..10: one walk, 4 and 9 dropped
    ("1.3.6.1.2.1.2.2.1", [2, 10], {10}),  # sparse, ifEntry (22 columns): a walk per column
    # sparse, but a few interfaces: the span 1..15 takes fewer requests than 4 walks
    ("1.3.6.1.2.1.31.1.1.1", [1, 6, 10, 15], {6, 10}),
    # two tables in one call, as if-mib's metric reads them: each table chosen on its own
    ("1.3.6.1.2.1.31.1.1.1", [1, 6, 10, 15, "1.3.6.1.2.1.2.2.1.8"], {6, 10}),
])
async def test_gufo_table_walk_equals_the_reference(snmpd, table, numbers, moving):
    host, port = str(snmpd.address).rsplit(":", 1)
    target = Target(host, int(port), "2c", community=snmpd.community, timeout=5, retries=1)
    columns = [n if isinstance(n, str) else f"{table}.{n}" for n in numbers]
    reference, gufo = PysnmpEngine(), GufoEngine()
    try:
        await gufo.walk(target, columns)  # cold: types learned through pysnmp
        calls = gufo.reference_calls
        warm = await gufo.walk(target, columns)
        expected = await reference.walk(target, columns)
    finally:
        await gufo.close()
        await reference.close()
    assert gufo.reference_calls == calls  # the warm walk is gufo's alone
    assert set(warm) == set(columns)  # nothing from columns not asked for
    # Traffic counters move between the two reads; everything else is static here.
    for column, number in zip(columns, numbers):
        assert list(warm[column]) == list(expected[column]), column
        assert [v.type for v in warm[column].values()] == [v.type for v in expected[column].values()]
        if number not in moving:
            assert warm[column] == expected[column], column
