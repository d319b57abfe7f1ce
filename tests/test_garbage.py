"""No garbage written: impossible readings from real devices (an snmpsim agent, aiohttp
servers on 127.0.0.1) are refused and counted as problems, never written to the real
InfluxDB, never crash a poll and never stall the other devices; bodies are bounded;
no credential reaches poll.error or the log in any form."""

from __future__ import annotations

import asyncio
import base64
import gzip
import importlib
import json
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from aiohttp import web
from collectorhelp import write_config
from realparts.web import serve

from collector.config import Device
from collector.profiles import load_profiles
from collector.snmp.engine import INTEGER, OCTETS, Var
from collector.snmp.reader import Reader
from collector.source import Guarded, PollResult
from greenwatch.core.http import DEFAULT_MAX_BODY, HttpClient, HttpFailure, Redactor
from greenwatch.core.schema import BOUNDS, FIELDS, POWER, Sample, refuse_impossible

GARBAGE = "1.3.6.1.4.1.99998"
PROFILE = f"""\
sysobjectid: {GARBAGE}.1
kind: meter
metrics:
  - symbol: {{OID: {GARBAGE}.2.1.0, name: gTotalPower, field: watts, unit: W}}
  - symbol: {{OID: {GARBAGE}.2.2.0, name: gPages, field: pages, measurement: printer}}
  - symbol: {{OID: {GARBAGE}.2.3.0, name: gTemp, field: temperature_c, measurement: environment}}
  - symbol: {{OID: {GARBAGE}.2.4.0, name: gLifePages, field: pages, measurement: printer}}
  - table: {{OID: {GARBAGE}.3.1, name: gOutletTable}}
    scope: outlet
    symbols:
      - {{OID: {GARBAGE}.3.1.2, name: gOutletPower, field: watts, unit: W}}
"""
# Gauge32's all-ones as watts; negative pages; "inf" text where an integer goes;
# outlets: negative watts, a good one, 1e301 W as text, NaN as text.
RECORDING = f"""\
1.3.6.1.2.1.1.2.0|6|{GARBAGE}.1
{GARBAGE}.2.1.0|66|4294967295
{GARBAGE}.2.2.0|2|-3
{GARBAGE}.2.3.0|4|21.5
{GARBAGE}.2.4.0|4|inf
{GARBAGE}.3.1.2.1|2|-5
{GARBAGE}.3.1.2.2|2|120
{GARBAGE}.3.1.2.3|4|1e301
{GARBAGE}.3.1.2.4|4|NaN
"""

PASSWORD = "pa55-word-Zq9"
TOKEN = "tok-3f9a8b7c6d5e"
BASIC = base64.b64encode(f"meter:{PASSWORD}".encode()).decode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


class Devices:
    """Power APIs that give bad replies, on one aiohttp server."""

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None
        # 64 MiB of spaces gzipped into ~64 kB: a bomb for anyone who reads it whole.
        self.bomb = gzip.compress(b" " * (64 * 1024 * 1024), 9)

    async def start(self) -> Devices:
        app = web.Application()
        app.router.add_get("/good", self.good)
        app.router.add_get("/huge-watts", self.huge_watts)
        app.router.add_get("/bomb", self.bomb_reply)
        app.router.add_get("/deep", self.deep)
        app.router.add_get("/echo", self.echo)
        app.router.add_route("*", "/redfish/{tail:.*}", self.redfish)
        self._runner, self.url = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def good(self, request: web.Request) -> web.Response:
        return web.json_response({"power": 61.5, "energy": 12.25})

    async def huge_watts(self, request: web.Request) -> web.Response:
        return web.Response(text='{"power": 1e301, "energy": 3.5, "amps": -2}', content_type="application/json")

    async def bomb_reply(self, request: web.Request) -> web.Response:
        return web.Response(body=self.bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    async def deep(self, request: web.Request) -> web.Response:
        return web.Response(body=_nested(200_000), content_type="application/json")

    async def echo(self, request: web.Request) -> web.Response:
        # A proxy that echoes the request's credentials back in its error text.
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        said = base64.b64decode(value).decode() if scheme == "Basic" else value
        return web.json_response({"message": f"denied for {header} ({said})"}, status=403)

    async def redfish(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        docs = {
            "/redfish/v1": '{"Chassis": {"@odata.id": "/redfish/v1/Chassis"}}',
            "/redfish/v1/Chassis": '{"Members": [{"@odata.id": "/redfish/v1/Chassis/1"}]}',
            "/redfish/v1/Chassis/1": '{"Id": "1", "Power": {"@odata.id": "/redfish/v1/Chassis/1/Power"}}',
            # A 400-digit integer: valid JSON, and no float can hold it.
            "/redfish/v1/Chassis/1/Power": '{"PowerControl": [{"PowerConsumedWatts": 1' + "0" * 400 + "}],"
                                           ' "PowerSupplies": [{"MemberId": "0", "PowerInputWatts": 180,'
                                           ' "LineInputVoltage": -230}]}',
        }
        if path not in docs:
            return web.json_response({"error": {"message": "not here"}}, status=404)
        return web.Response(text=docs[path], content_type="application/json")


async def _run_cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "greenwatch.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_impossible_readings_are_refused_and_never_written(tmp_path, snmpsim, influxdb, influx_db):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "garbage-meter.yaml").write_text(PROFILE)
    (tmp_path / "garbage.snmprec").write_text(RECORDING)
    agent = snmpsim.start({"garbage": tmp_path / "garbage.snmprec"})
    devices = await Devices().start()
    try:
        # 10 s per request, not the config's 1 s default: a loaded CI machine must not
        # turn a slow answer into a different error than the one each device tests.
        meter = lambda path, **auth: {"type": "json", "url": devices.url + path, "timeout": "10s",  # noqa: E731
                                      "fields": {"watts": {"path": "power"}, "energy_kwh": {"path": "energy"},
                                                 "amps": {"path": "amps"}}, **auth}
        sites = {"name": "lab", "devices": [
            {"name": "snmp-garbage", "address": agent.address, "snmp": {"version": "2c", "community": "garbage"}},
            {"name": "good-meter", "http": meter("/good")},
            {"name": "huge-meter", "http": meter("/huge-watts")},
            {"name": "bomb-meter", "http": meter("/bomb")},
            {"name": "deep-meter", "http": meter("/deep")},
            {"name": "echo-meter", "http": meter("/echo", username="meter", password=PASSWORD)},
            {"name": "echo-token", "http": meter("/echo", token=TOKEN)},
            {"name": "bmc", "redfish": {"url": devices.url, "timeout": "10s"}},
        ]}
        config = write_config(tmp_path, influxdb.url, influx_db, json.dumps([sites]),
                              extra=f"collector:\n  profile_dirs: [{tmp_path / 'profiles'}]\n")
        code, output = await _run_cli("--log-level", "DEBUG", "poll", "--once", "--config", str(config))
    finally:
        await devices.stop()
        agent.stop()
    assert code == 0, output

    polls = {r["device"]: r for r in influxdb.rows(
        "SELECT up, problems, readings, error, device FROM poll", influx_db)}
    power = influxdb.rows("SELECT watts, energy_kwh, amps, volts, device, entity FROM power", influx_db)
    printer = influxdb.rows("SELECT pages, device FROM printer", influx_db)
    environment = influxdb.rows("SELECT temperature_c, device FROM environment", influx_db)

    # Nothing impossible was written, from any device.
    assert power and all(0 <= r["watts"] <= 10e6 for r in power if r["watts"] is not None)
    assert all(r["volts"] is None or r["volts"] >= 0 for r in power)
    assert all(r["amps"] is None or r["amps"] >= 0 for r in power)
    assert printer == []  # both page counts were garbage
    # The SNMP device: the one good outlet and the good temperature are written; the
    # four refused values are problems; the poll is up.
    snmp_power = {r["entity"]: r["watts"] for r in power if r["device"] == "snmp-garbage"}
    assert snmp_power == {"2": 120.0}
    assert [r["temperature_c"] for r in environment] == [21.5]
    assert polls["snmp-garbage"]["up"] == 1 and polls["snmp-garbage"]["problems"] >= 5
    for text in ("power.watts of device total: 4294967295 refused", "power.watts of outlet 1: -5 refused",
                 "printer.pages of device total: -3 refused", "gLifePages", "gOutletPower"):
        assert text in output, text
    # 1e301 W is refused, its good neighbours (energy) kept; -2 A refused.
    huge = [r for r in power if r["device"] == "huge-meter"]
    assert [(r["watts"], r["energy_kwh"], r["amps"]) for r in huge] == [(None, 3.5, None)], polls["huge-meter"]
    assert polls["huge-meter"]["up"] == 1 and polls["huge-meter"]["problems"] == 2
    # A 400-digit integer from a BMC: a named problem or error, not a traceback; the PSU row
    # is kept without its negative volts.
    assert "PowerConsumedWatts: expected a finite number, got a 401-digit number" in output
    assert polls["bmc"]["up"] == 1 and polls["bmc"]["problems"] == 3  # + no chassis watts, + volts
    assert [(r["entity"], r["watts"], r["volts"]) for r in power if r["device"] == "bmc"] == [("0", 180.0, None)]
    assert "Traceback" not in output
    # The gzip bomb and the deeply nested reply are errors that say why ...
    assert polls["bomb-meter"]["up"] == 0
    assert f"reply larger than {DEFAULT_MAX_BODY // 1024} KiB (after decompression)" in polls["bomb-meter"]["error"]
    assert polls["deep-meter"]["error"] == "GET /deep: JSON nested too deeply"
    # ... and the good meter polled beside them wrote its readings.
    assert polls["good-meter"]["up"] == 1
    assert [(r["watts"], r["energy_kwh"]) for r in power if r["device"] == "good-meter"] == [(61.5, 12.25)]
    # Echoed credentials are in neither poll.error nor the log, in any form.
    for device in ("echo-meter", "echo-token"):
        assert polls[device]["up"] == 0 and "HTTP 403" in polls[device]["error"]
    everything = output + json.dumps(polls)
    for secret in (PASSWORD, TOKEN, BASIC, BASIC.rstrip("=")):
        assert secret not in everything, secret
    assert "***" in polls["echo-meter"]["error"] and "***" in polls["echo-token"]["error"]


def test_every_collected_field_has_a_bound():
    for measurement in ("power", "ups", "host", "port", "printer", "environment"):
        assert set(BOUNDS[measurement]) == set(FIELDS[measurement]), measurement


@pytest.mark.parametrize("fields, kept, refused", [
    ({"watts": 4294967295}, {}, ["power.watts of outlet 3: 4294967295 refused: outside 0..10000000 W"]),
    ({"watts": -0.5, "volts": 230.0}, {"volts": 230.0}, ["power.watts of outlet 3: -0.5 refused"]),
    ({"watts": float("nan")}, {}, ["power.watts of outlet 3: nan refused: not a finite number"]),
    ({"power_factor": 1.2, "amps": 0.0}, {"amps": 0.0}, ["power.power_factor of outlet 3: 1.2 refused"]),
    ({"energy_kwh": 10**400}, {}, ["power.energy_kwh of outlet 3: a 401-digit number refused"]),
    ({"watts": 10e6}, {"watts": 10e6}, []),
])
def test_bounds_refuse_the_impossible_and_keep_the_rest(fields, kept, refused):
    samples, problems = refuse_impossible([Sample(POWER, {"scope": "outlet", "entity": "3"}, dict(fields))])
    assert [s.fields for s in samples] == ([kept] if kept else [])
    assert len(problems) == len(refused)
    for problem, start in zip(problems, refused):
        assert problem.startswith(start), problem
        assert problem.key == "power." + start.split("power.")[1].split(":")[0]


def test_snmp_nan_and_inf_in_an_integer_field_are_problems_not_tracebacks():
    profile = load_profiles().get("printer-mib")
    reader = Reader(profile, {"site": "s", "device": "d", "kind": "printer"})
    base = "1.3.6.1.2.1.43.10.2.1"
    columns = {f"{base}.3": {"1.1": Var(INTEGER, 7), "1.2": Var(INTEGER, 7), "1.3": Var(INTEGER, 7)},
               f"{base}.4": {"1.1": Var(OCTETS, b"nan"), "1.2": Var(OCTETS, b"-inf"), "1.3": Var(OCTETS, b"1e999")}}
    samples, problems = reader.read({}, columns, 1)
    assert samples == []
    assert len(problems) == 3 and all("expected a number" in p for p in problems)


async def test_a_source_bug_is_the_polls_error_with_no_secret():
    device = Device.model_validate({"name": "d", "address": "127.0.0.1",
                                    "snmp": {"version": "2c", "community": "c0mmunity-x"}})

    class Broken:
        kind = "host"

        async def poll(self) -> PollResult:
            raise ZeroDivisionError("divided by c0mmunity-x")

        async def close(self) -> None:
            pass

    result = await Guarded(Broken(), "lab", device).poll()
    assert result.error.startswith("internal error: ZeroDivisionError: divided by ***")
    assert "test_garbage.py:" in result.error


async def test_guarded_logs_each_refused_reading_once(caplog):
    device = Device.model_validate({"name": "d", "address": "127.0.0.1", "snmp": {"version": "2c", "community": "xyz"}})
    values = iter([-1.0, -2.0, -3.0])

    class Negative:
        kind = "meter"

        async def poll(self) -> PollResult:
            return PollResult(samples=[Sample(POWER, {"scope": "device", "entity": "total"}, {"watts": next(values)})])

        async def close(self) -> None:
            pass

    source = Guarded(Negative(), "lab", device)
    results = [await source.poll() for _ in range(3)]
    assert [len(r.problems) for r in results] == [1, 1, 1]
    assert all(r.samples == [] for r in results)
    assert caplog.text.count("power.watts of device total") == 1


def test_redactor_removes_every_form_and_leaves_words_alone():
    redact = Redactor()
    redact.add_basic("admin", "s3cr3t/pass+word")
    redact.add("odd")
    text = ("Basic " + base64.b64encode(b"admin:s3cr3t/pass+word").decode() + " s3cr3t%2Fpass%2Bword "
            "s3cr3t/pass+word " + base64.b64encode(b"s3cr3t/pass+word").decode() + " oddPower odd")
    out = redact(text)
    assert "s3cr3t" not in out and "YWRtaW46" not in out and "czNjcjN0" not in out
    assert out.endswith("oddPower ***")


async def test_body_cap_counts_bytes_after_decompression_and_content_length():
    bomb = gzip.compress(b"0" * (4 * 1024 * 1024), 9)

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/bomb":
            return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})
        return web.Response(body=b"x" * 300_000)

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner, url = await serve(app)
    client = HttpClient(timeout_s=5, max_body=256 * 1024)
    try:
        for name in ("bomb", "plain"):
            with pytest.raises(HttpFailure, match="reply larger than 256 KiB"):
                await client.request("GET", f"{url}/{name}")
        assert len(bomb) < 256 * 1024  # the compressed bomb alone would have passed
        roomy = HttpClient(timeout_s=5, max_body=8 * 1024 * 1024)
        try:
            reply = await roomy.request("GET", f"{url}/bomb")
            assert len(reply.body) == 4 * 1024 * 1024
        finally:
            await roomy.close()
    finally:
        await client.close()
        await runner.cleanup()


def test_cryptography_is_declared_for_snmpv3_privacy():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = [d for d in pyproject["project"]["dependencies"] if d.startswith("cryptography")]
    assert declared == ["cryptography>=47"]
    assert int(version("cryptography").split(".")[0]) >= 47
    # What pysnmp's AES and DES privacy import; their modules flag a failed import.
    importlib.import_module("pysnmp.hlapi.v3arch.asyncio")  # loads them in pysnmp's order
    aes = importlib.import_module("pysnmp.proto.secmod.rfc3826.priv.aes")
    des = importlib.import_module("pysnmp.proto.secmod.rfc3414.priv.des")
    assert aes.PysnmpCryptoError is False and des.PysnmpCryptoError is False


async def test_big_json_is_parsed_off_the_event_loop():
    """While a big reply is parsed, other devices' coroutines keep running; a small one
    is parsed inline (a thread would cost more than it saves)."""
    from greenwatch.core.http import parse_json

    ticks = 0

    async def other_device() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_device())
    await asyncio.sleep(0)
    try:
        big = json.dumps({"Members": [{"@odata.id": f"/redfish/v1/Chassis/{i}"} for i in range(100_000)]}).encode()
        before = ticks
        data = await parse_json(big)
        assert len(data["Members"]) == 100_000
        assert ticks > before + 1  # the loop ran the other coroutine meanwhile
        before = ticks
        assert await parse_json(b'{"a": 1}') == {"a": 1}
        assert ticks == before  # inline: no step of the loop
    finally:
        task.cancel()


def test_docs_list_the_bounds_the_code_applies():
    text = (Path(__file__).parents[1] / "docs" / "metrics.md").read_text()
    section = text.split("## Readings refused", 1)[1].split("\n## ", 1)[0]
    listed = {}
    for line in section.splitlines():
        cells = [c.strip(" `") for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in BOUNDS:
            listed[(cells[0], cells[1])] = (cells[2], cells[3].split(" ")[0])
    expected = {(m, f): (str(int(b.low)), "2^63" if b.high >= 2**62 else str(int(b.high)))
                for m, fields in BOUNDS.items() for f, b in fields.items()}
    assert listed == expected
