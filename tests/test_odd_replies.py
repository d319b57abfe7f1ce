"""A device giving odd replies yields its good readings and a logged reason for the
bad ones, never a crash: noSuchObject, endOfMibView mid-table, a string where a
number is expected, a Counter32 that wraps."""

from __future__ import annotations

import asyncio
import logging

from collector.profiles import load_profiles
from collector.snmp.engine import COUNTER32, Var
from collector.snmp.reader import CounterState, Reader
from collector.snmp.source import SnmpSource
from collector.source import Guarded
from collector.config import Defaults, Device
from greenwatch.config import Site

ODD = "1.3.6.1.4.1.99999"

PROFILE = f"""\
sysobjectid: {ODD}.1.1
kind: meter
metrics:
  - symbol: {{OID: {ODD}.2.1.0, name: oddPower, field: watts, unit: W}}
  - symbol: {{OID: {ODD}.2.2.0, name: oddMissing, field: amps, unit: A}}
  - symbol: {{OID: {ODD}.2.3.0, name: oddEnergy, field: energy_kwh, unit: kWh}}
  - symbol: {{OID: {ODD}.2.4.0, name: oddOctets, field: in_octets, measurement: port}}
  - table: {{OID: {ODD}.3.1, name: oddOutletTable}}
    scope: outlet
    label: {{OID: {ODD}.3.1.1, name: oddOutletName}}
    symbols:
      - {{OID: {ODD}.3.1.2, name: oddOutletPower, field: watts, unit: W}}
      - {{OID: {ODD}.3.1.3, name: oddOutletEnergy, field: energy_kwh, unit: Wh}}
"""

# The table is the last thing in the MIB view: walking its last column runs into
# endOfMibView after two rows. Outlet 3 reports "ERR" as its power.
RECORDING = f"""\
1.3.6.1.2.1.1.2.0|6|{ODD}.1.1
{ODD}.2.1.0|2|1500
{ODD}.2.3.0|4|n/a
{ODD}.2.4.0|65:numeric|min=0,max=4294967295,rate=2000000000,wrap=1
{ODD}.3.1.1.1|4|outlet one
{ODD}.3.1.1.2|4|outlet two
{ODD}.3.1.1.3|4|outlet three
{ODD}.3.1.2.1|2|100
{ODD}.3.1.2.2|2|200
{ODD}.3.1.2.3|4|ERR
{ODD}.3.1.3.1|66|5000
{ODD}.3.1.3.2|66|7000
"""


async def test_odd_device_gives_good_readings_and_reasons(tmp_path, snmpsim, snmp_engine, caplog):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "odd-meter.yaml").write_text(PROFILE)
    (tmp_path / "odd.snmprec").write_text(RECORDING)
    profiles = load_profiles([tmp_path / "profiles"])
    agent = snmpsim.start({"odd": tmp_path / "odd.snmprec"})
    try:
        device = Device(name="odd-1", address=agent.address, snmp={"version": "2c", "community": "odd"})
        site = Site(name="lab", devices=[device])
        source = Guarded(SnmpSource(site, device, Defaults(), snmp_engine, profiles), site.name, device)
        with caplog.at_level(logging.WARNING, logger="greenwatch.collector"):
            first = await source.poll()
            later = []
            for _ in range(12):
                await asyncio.sleep(0.25)
                later.append(await source.poll())
            second = later[-1]
    finally:
        agent.stop()

    assert first.error is None and second.error is None
    assert source.kind == "meter"
    points = {(s.measurement, s.tags["scope"], s.tags["entity"]): s for s in first.samples}
    assert points[("power", "device", "total")].fields == {"watts": 1500.0}
    assert points[("power", "outlet", "1")].fields == {"watts": 100.0, "energy_kwh": 5.0}
    assert points[("power", "outlet", "2")].fields == {"watts": 200.0, "energy_kwh": 7.0}
    assert points[("power", "outlet", "2")].tags["label"] == "outlet two"
    assert ("power", "outlet", "3") not in points  # its only reading was "ERR"

    reasons = "\n".join(first.problems)
    assert "oddMissing" in reasons and "no such object" in reasons
    assert "oddEnergy" in reasons and "expected a number, got 'n/a'" in reasons
    assert "oddOutletPower" in reasons and "'ERR'" in reasons
    logged = caplog.text
    assert "oddMissing" in logged and "'n/a'" in logged and "'ERR'" in logged
    # Each reason is logged once, not on every poll.
    assert logged.count("oddMissing") == 1

    # The Counter32 climbs 2e9/s, so it wraps every ~2.1 s: in 3 s of polls 0.25 s
    # apart it wraps at least once. The collector's value keeps climbing past 2^32.
    octets = [
        next(s for s in r.samples if s.measurement == "port").fields["in_octets"] for r in (first, *later)
    ]
    assert all(b > a for a, b in zip(octets, octets[1:])), octets
    assert octets[-1] > 2**32


def test_counter32_wrap_and_reset():
    state = CounterState()
    assert state.monotonic("x", 4_294_967_000) == 4_294_967_000
    assert state.monotonic("x", 500) == 2**32 + 500  # wrapped
    assert state.monotonic("x", 90_000) == 2**32 + 90_000
    assert state.monotonic("x", 10) == 10  # a small fall is a reset, not a wrap
    assert state.monotonic("y", 7) == 7  # keys are independent


def test_reader_refuses_a_value_of_the_wrong_type(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "odd-meter.yaml").write_text(PROFILE)
    profile = load_profiles([tmp_path / "p"]).get("odd-meter")
    reader = Reader(profile, {"site": "s", "device": "d", "kind": "meter"})
    samples, problems = reader.read(
        {f"{ODD}.2.1.0": Var("ObjectIdentifier", "1.3.6"), f"{ODD}.2.4.0": Var(COUNTER32, 5)}, {}, 1
    )
    assert any("oddPower" in p and "ObjectIdentifier" in p for p in problems)
    assert [s.fields for s in samples] == [{"in_octets": 5}]


def test_entity_sensor_overflow_and_underflow_are_not_readings():
    from collector.snmp.engine import INTEGER

    profile = load_profiles().get("entity-sensor")
    reader = Reader(profile, {"site": "s", "device": "d", "kind": "switch"})
    base = "1.3.6.1.2.1.99.1.1.1"

    def row(index: str, value: int) -> dict[str, Var]:
        return {index: Var(INTEGER, value)}

    columns = {
        f"{base}.1": {**row("1", 6), **row("2", 6), **row("3", 6)},  # watts sensors
        f"{base}.2": {**row("1", 9), **row("2", 9), **row("3", 9)},  # units
        f"{base}.3": {**row("1", 1), **row("2", 1), **row("3", 1)},  # one decimal place
        f"{base}.4": {**row("1", 1234), **row("2", 1_000_000_000), **row("3", -1_000_000_000)},
    }
    samples, problems = reader.read({}, columns, 1)
    assert problems == []
    assert {s.tags["entity"]: s.fields["watts"] for s in samples} == {"1": 123.4}
