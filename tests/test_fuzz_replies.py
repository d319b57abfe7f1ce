"""Property-based fuzzing (hypothesis) of what devices send back: SNMP values through
the reader, Redfish JSON and plug/meter JSON through their sources, served by a real
aiohttp server. Thousands of generated replies: never a traceback, always a PollResult
whose written values are finite and within the schema's bounds, and a reply that gives
no reading always names why (an error or a problem)."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from realparts.web import serve

from collector.config import Defaults, Device
from collector.http_power import HttpPowerSource
from collector.http_power.parsers import json_meter, shelly_switch, tasmota_status8
from collector.profiles import load_profiles
from collector.redfish import RedfishSource
from collector.redfish.discovery import ChassisPlan
from collector.redfish.readings import ChassisRead, environment, legacy, psu_metrics
from collector.snmp.engine import COUNTER32, COUNTER64, GAUGE, INTEGER, IPADDRESS, OCTETS, OID, TIMETICKS, Var
from collector.snmp.reader import Reader
from collector.source import Guarded, PollResult
from greenwatch.config import Site
from greenwatch.core.schema import BOUNDS, Sample, refuse_impossible

FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)
FUZZ_HTTP = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                     derandomize=True)

# -- generated values ------------------------------------------------------------------

numbers = (st.integers(min_value=-(10**450), max_value=10**450)
           | st.sampled_from([0, -1, 2**31 - 1, 2**32 - 1, 2**63, 2**64 - 1, -(2**31)])
           | st.floats(allow_nan=True, allow_infinity=True))
scalars = st.none() | st.booleans() | numbers | st.text(max_size=12) | st.sampled_from(["nan", "1e999", "12.5", " 7 "])


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """Any JSON, with the keys a reader looks for far more likely than chance."""
    key = st.sampled_from(keys) | st.text(max_size=6)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(key, inner, max_size=5), max_leaves=8)


def check(result: PollResult) -> None:
    """What every poll result must be, whatever the device sent."""
    assert isinstance(result, PollResult)
    if result.error is not None:
        assert isinstance(result.error, str) and result.error.strip()
        assert "internal error" not in result.error, result.error
    for sample in result.samples:
        assert sample.fields
        for name, value in sample.fields.items():
            assert isinstance(value, int | float) and not isinstance(value, bool)
            assert math.isfinite(value)
            bound = BOUNDS[sample.measurement][name]
            assert bound.low <= value <= bound.high
        sample.to_line()  # encodable
    if not result.samples:
        assert result.error or result.problems, "no reading and no reason"
    assert all(isinstance(p, str) and p for p in result.problems)


def bounded(samples: list[Sample], problems: list[str]) -> PollResult:
    kept, refused = refuse_impossible(samples)
    return PollResult(samples=kept, problems=[*problems, *refused])


# -- SNMP values through the reader ----------------------------------------------------

SNMP_TYPES = [INTEGER, GAUGE, COUNTER32, COUNTER64, TIMETICKS]
snmp_vars = st.one_of(
    st.builds(Var, st.sampled_from(SNMP_TYPES), st.integers(min_value=-(2**70), max_value=2**70)),
    st.builds(Var, st.just(OCTETS), st.binary(max_size=24)),
    st.builds(Var, st.just(OCTETS), (st.floats() | st.integers(-(10**30), 10**30)).map(lambda v: repr(v).encode())),
    st.builds(Var, st.sampled_from([OID, IPADDRESS]), st.text(max_size=10)),
)

_PROFILES = load_profiles()


def _columns(profile_name: str) -> list[str]:
    profile = _PROFILES.get(profile_name)
    oids = [sym.OID for m in profile.metrics for sym in m.symbols]
    for metric in profile.metrics:
        for ref in (metric.label, metric.filter.column if metric.filter else None,
                    metric.entity if hasattr(metric.entity, "OID") else None,
                    *(s.decimals_from for s in metric.symbols), *(s.si_prefix_from for s in metric.symbols)):
            if ref is not None and hasattr(ref, "OID"):
                oids.append(ref.OID)
    return sorted(set(oids))


@pytest.mark.parametrize("profile_name", ["entity-sensor", "if-mib", "printer-mib", "apc-rpdu2"])
def test_snmp_reader_takes_any_values(profile_name: str) -> None:
    profile = _PROFILES.get(profile_name)
    reader = Reader(profile, {"site": "s", "device": "d", "kind": "pdu"})
    columns = _columns(profile_name)
    scalars_oids = list(profile.scalar_oids)

    @FUZZ
    @given(cells=st.lists(st.tuples(st.sampled_from(columns), st.sampled_from(["1", "2", "1.1", "3"]), snmp_vars),
                          max_size=12) if columns else st.just([]),
           scalars=st.dictionaries(st.sampled_from(scalars_oids), snmp_vars | st.none(), max_size=6)
           if scalars_oids else st.just({}))
    def run(cells: list[tuple[str, str, Var]], scalars: dict[str, Var | None]) -> None:
        table: dict[str, dict[str, Var]] = {}
        for oid, index, var in cells:
            table.setdefault(oid, {})[index] = var
        samples, problems = reader.read(scalars, table, 1)
        result = bounded(samples, problems)
        for sample in result.samples:
            for name, value in sample.fields.items():
                assert math.isfinite(value) and BOUNDS[sample.measurement][name].low <= value
    run()


@FUZZ
@given(watts=snmp_vars, energy=snmp_vars)
def test_snmp_every_scalar_gives_a_reading_or_a_named_problem(watts: Var, energy: Var) -> None:
    profile = _PROFILES.get("ups-mib")
    reader = Reader(profile, {"site": "s", "device": "d", "kind": "ups"})
    wanted = {sym.OID: sym for m in profile.metrics if m.symbol is not None for sym in [m.symbol]}
    oids = sorted(wanted)
    values = {oids[0]: watts, oids[-1]: energy}
    samples, problems = reader.read(values, {}, 1)
    result = bounded(samples, problems)
    given_fields = {(s.measurement, name) for s in result.samples for name in s.fields}
    for oid in values:
        sym = wanted[oid]
        measurement = sym.measurement or next(m.measurement for m in profile.metrics if m.symbol is sym)
        named = any(sym.name in p or f".{sym.field} of " in p for p in result.problems)
        sentinel = (sym.valid_min is not None or sym.valid_max is not None)
        assert (measurement, sym.field) in given_fields or named or sentinel, (sym.name, values[oid], result)


# -- Redfish JSON ----------------------------------------------------------------------

REDFISH_KEYS = ["PowerControl", "PowerConsumedWatts", "PowerMetrics", "AverageConsumedWatts", "PhysicalContext",
                "PowerSupplies", "PowerInputWatts", "LineInputVoltage", "MemberId", "Name", "PowerWatts",
                "EnergykWh", "Reading", "InputPowerWatts", "InputVoltage", "InputCurrentAmps", "Members",
                "@odata.id", "Id", "Power", "EnvironmentMetrics", "Links", "ContainedBy", "Chassis"]
redfish_json = json_values(REDFISH_KEYS)
# Mostly the right shape with garbage in it, which reaches deeper than random JSON.
power_docs = st.fixed_dictionaries({
    "PowerControl": st.lists(st.fixed_dictionaries({"PowerConsumedWatts": scalars},
                                                    optional={"PhysicalContext": st.sampled_from(["CPU", "Chassis", 3]),
                                                              "PowerMetrics": redfish_json}), max_size=3) | redfish_json,
    "PowerSupplies": st.lists(st.fixed_dictionaries({"PowerInputWatts": scalars},
                                                     optional={"MemberId": scalars, "Name": scalars,
                                                               "LineInputVoltage": scalars}), max_size=3) | redfish_json,
}) | redfish_json
reading_docs = st.dictionaries(st.sampled_from(["PowerWatts", "EnergykWh", "InputPowerWatts", "InputVoltage",
                                                "InputCurrentAmps"]),
                               st.fixed_dictionaries({"Reading": scalars}) | redfish_json, max_size=5) | redfish_json


@FUZZ
@given(power=power_docs, env=reading_docs)
def test_redfish_readings_take_any_json(power: Any, env: Any) -> None:
    plan = ChassisPlan(id="1", name=None, path="/redfish/v1/Chassis/1", env="/e",
                       power="/redfish/v1/Chassis/1/Power", psu_prefix=bool(isinstance(env, dict) and env))
    read = ChassisRead()
    if isinstance(env, dict):
        environment(env, "/e", read)
        psu_metrics(env, "/m", read)
    if isinstance(power, dict):
        legacy(plan, power, read, total=True, need_psus=True)
    values = [*read.device.values(), *(v for _, _, f in read.psus for v in f.values())]
    assert all(isinstance(v, float) and math.isfinite(v) for v in values)
    assert all(isinstance(p, str) and p for p in read.problems)


class Served:
    """A real aiohttp server in its own thread, answering each path with the bytes
    the test put there (404 otherwise)."""

    def __init__(self) -> None:
        self.replies: dict[str, bytes] = {}
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def handle(request: web.Request) -> web.Response:
            body = self.replies.get(request.path_qs) or self.replies.get(request.path)
            if body is None:
                return web.Response(status=404, text="{}")
            return web.Response(body=body, content_type="application/json")

        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner, self.url = await serve(app)
            return runner

        self._runner = self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self) -> Served:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with Served() as server:
        yield server


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


V1 = "/redfish/v1"


@FUZZ_HTTP
@given(power=power_docs.map(_encode) | st.binary(max_size=40), chassis=redfish_json.map(_encode))
@example(power=b"{\"PowerControl\": [{\"PowerConsumedWatts\": 1" + b"0" * 400 + b"}]}", chassis=b"{}")
@example(power=b"[" * 100_000 + b"]" * 100_000, chassis=b"{}")
@example(power=b'{"PowerControl": [{"PowerConsumedWatts": NaN}, {"PowerConsumedWatts": -Infinity}]}', chassis=b"{}")
def test_redfish_source_takes_any_reply(served: Served, runner: asyncio.Runner, power: bytes, chassis: bytes) -> None:
    served.replies.update({
        f"{V1}/": _encode({"Chassis": {"@odata.id": f"{V1}/Chassis"}}),
        f"{V1}/Chassis": _encode({"Members": [{"@odata.id": f"{V1}/Chassis/1"}, {"@odata.id": f"{V1}/Chassis/2"}]}),
        f"{V1}/Chassis/1": _encode({"Id": "1", "Power": {"@odata.id": f"{V1}/Chassis/1/Power"}}),
        f"{V1}/Chassis/2": chassis,
        f"{V1}/Chassis/1/Power": power,
    })
    device = Device.model_validate({"name": "bmc", "redfish": {"url": served.url}})
    source = Guarded(RedfishSource(Site(name="lab", devices=[device]), device, Defaults()), "lab", device)
    try:
        check(runner.run(source.poll()))
    finally:
        runner.run(source.close())


# -- plug and meter JSON ---------------------------------------------------------------

PLUG_KEYS = ["apower", "aenergy", "total", "voltage", "current", "pf", "message", "code", "StatusSNS", "ENERGY",
             "Power", "Total", "ApparentPower", "Voltage", "Current", "Factor", "WARNING", "data", "power", "energy"]
plug_json = json_values(PLUG_KEYS)
shelly_replies = st.fixed_dictionaries({}, optional={"apower": scalars, "voltage": scalars, "current": scalars,
                                                     "pf": scalars, "aenergy": st.fixed_dictionaries({"total": scalars})
                                                     | plug_json}) | plug_json
energy_values = scalars | st.lists(scalars, max_size=4)
tasmota_replies = st.fixed_dictionaries({"StatusSNS": st.fixed_dictionaries({"ENERGY": st.fixed_dictionaries(
    {}, optional={k: energy_values for k in ("Power", "Total", "ApparentPower", "Voltage", "Current", "Factor")})
    | plug_json})}) | plug_json

METER = {"watts": {"path": "data.power"}, "energy_kwh": {"path": "data.energy", "unit": "Wh"},
         "volts": {"path": "data[0].v"}}


@FUZZ
@given(shelly=shelly_replies, tasmota=tasmota_replies, meter=plug_json)
def test_plug_parsers_take_any_json(shelly: Any, tasmota: Any, meter: Any) -> None:
    from collector.config import HttpField
    from collector.http_common import SourceFailure

    fields = {name: HttpField.model_validate(spec) for name, spec in METER.items()}
    for parse in (lambda: ([("device", "total", shelly_switch(0, shelly, problems))], problems),
                  lambda: tasmota_status8(tasmota),
                  lambda: json_meter(meter, fields, "GET /")):
        problems: list[str] = []
        try:
            rows, found = parse()
        except SourceFailure as exc:
            assert str(exc)
            continue
        samples = [Sample("power", {"scope": scope, "entity": entity}, dict(f)) for scope, entity, f in rows if f]
        result = bounded(samples, found)
        for sample in result.samples:
            assert all(math.isfinite(v) for v in sample.fields.values())


@FUZZ_HTTP
@given(kind=st.sampled_from(["shelly", "tasmota", "json"]),
       reply=st.one_of(shelly_replies.map(_encode), tasmota_replies.map(_encode), plug_json.map(_encode),
                       st.binary(max_size=40)))
@example(kind="json", reply=b'{"data": {"power": 1' + b"0" * 5000 + b"}}")
@example(kind="shelly", reply=b'{"apower": 4294967295, "aenergy": {"total": -1}}')
def test_plug_sources_take_any_reply(served: Served, runner: asyncio.Runner, kind: str, reply: bytes) -> None:
    path = {"shelly": "/rpc/Switch.GetStatus", "tasmota": "/cm", "json": "/meter"}[kind]
    served.replies[path] = reply
    http: dict[str, Any] = {"type": kind, "url": served.url + ("/meter" if kind == "json" else "")}
    if kind == "json":
        http["fields"] = METER
    device = Device.model_validate({"name": "plug", "http": http})
    source = Guarded(HttpPowerSource(Site(name="lab", devices=[device]), device, Defaults()), "lab", device)
    try:
        check(runner.run(source.poll()))
    finally:
        runner.run(source.close())
