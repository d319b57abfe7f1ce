"""HTTP plugs and meters against local servers speaking each device's documented replies:
Shelly Gen2+ RPC over HTTP (with its SHA-256 digest auth), Tasmota's `Status 8`, and a
generic JSON meter read by a configured path map."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from realparts.web import serve as serve_app

from collector.config import Defaults, Device
from collector.http_power import HttpPowerSource, at_path
from greenwatch.config import Site, load_config
from greenwatch.core.yamlfile import InputError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve():
    """serve(handler) -> base URL of an aiohttp server on 127.0.0.1 routing every path to it."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner, url = await serve_app(app)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def source():
    made: list[HttpPowerSource] = []

    def make(http: dict[str, Any], **device: Any) -> HttpPowerSource:
        dev = Device.model_validate({"name": device.pop("name", "plug-1"), "tags": {"desk": "D12"},
                                     "http": http, **device})
        src = HttpPowerSource(Site(name="office", tags={"floor": "2"}), dev, Defaults())
        made.append(src)
        return src

    yield make
    for src in made:
        await src.close()


def rows(result) -> dict[tuple[str, str], dict[str, float]]:
    out = {}
    for sample in result.samples:
        key = (sample.tags["scope"], sample.tags["entity"])
        assert key not in out
        out[key] = sample.fields
    return out


# -- Shelly Gen2+ -------------------------------------------------------------------------

def shelly_status(switch_id: int, apower: float, total_wh: float, pro: bool = False) -> dict:
    """Switch.GetStatus as Shelly's Gen2 documentation shows it (a Pro model adds pf, freq)."""
    reply = {"id": switch_id, "source": "init", "output": True, "apower": apower, "voltage": 237.5,
             "current": round(apower / 237.5, 3),
             "aenergy": {"total": total_wh, "by_minute": [45.199, 47.141, 88.397], "minute_ts": 1654511972},
             "temperature": {"tC": 43.2, "tF": 109.8}}
    if pro:
        reply.update(pf=0.92, freq=50.0)
    return reply


class Shelly:
    """A Shelly Gen2 device: /rpc/Switch.GetStatus?id=N, optional digest auth (SHA-256,
    user admin, realm = the device id), errors as RPC error objects."""

    realm = "shellypro4pm-f008d1d8b8b8"

    def __init__(self, statuses: dict[int, dict], password: str | None = None) -> None:
        self.statuses = statuses
        self.password = password
        self.nonces: set[str] = set()
        self.challenges = 0
        self.requests: list[str] = []

    def _sha(self, text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
        if params.get("username") != "admin" or params.get("realm") != self.realm:
            return False
        if params.get("nonce") not in self.nonces or params.get("uri") != request.path_qs:
            return False
        ha1 = self._sha(f"admin:{self.realm}:{self.password}")
        ha2 = self._sha(f"{request.method}:{params['uri']}")
        expected = self._sha(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:{params['qop']}:{ha2}")
        return params.get("response") == expected

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if self.password is not None and not self._authorised(request):
            self.challenges += 1
            nonce = secrets.token_hex(8)
            self.nonces.add(nonce)
            return web.json_response(
                {"code": 401, "message": "unauthorized"}, status=401,
                headers={"WWW-Authenticate": f'Digest qop="auth", realm="{self.realm}", '
                                             f'nonce="{nonce}", algorithm=SHA-256'})
        if request.path != "/rpc/Switch.GetStatus":
            return web.json_response({"code": 404, "message": "No handler for " + request.path}, status=404)
        switch_id = int(request.query.get("id", "-1"))
        if switch_id not in self.statuses:
            return web.json_response({"code": -105, "message": f"Bad id={switch_id}"}, status=500)
        return web.json_response(self.statuses[switch_id])


async def test_shelly_one_switch(serve, source):
    shelly = Shelly({0: shelly_status(0, 8.9, 6532.0)})
    url = await serve(shelly.handle)
    plug = source({"type": "shelly", "url": url})
    result = await plug.poll()
    assert result.error is None, result.error
    assert rows(result) == {("device", "total"): {"watts": 8.9, "volts": 237.5, "amps": 0.037,
                                                  "energy_kwh": 6.532}}  # aenergy.total is Wh
    sample = result.samples[0]
    assert sample.tags == {"site": "office", "device": "plug-1", "kind": "plug", "floor": "2", "desk": "D12",
                           "scope": "device", "entity": "total"}
    assert shelly.requests == ["/rpc/Switch.GetStatus?id=0"]


async def test_shelly_pro_4pm_channels_with_digest_auth(serve, source):
    shelly = Shelly({i: shelly_status(i, 10.0 * (i + 1), 1000.0 * (i + 1), pro=True) for i in range(4)},
                    password="plug-secret-1")
    url = await serve(shelly.handle)
    plug = source({"type": "shelly", "url": url, "channels": [0, 1, 2, 3], "password": "plug-secret-1"})
    result = await plug.poll()
    assert result.error is None, result.error
    got = rows(result)
    assert got[("outlet", "2")] == {"watts": 30.0, "volts": 237.5, "amps": 0.126, "power_factor": 0.92,
                                    "energy_kwh": 3.0}
    assert got[("device", "total")] == {"watts": 100.0, "energy_kwh": 10.0,
                                        "amps": pytest.approx(0.042 + 0.084 + 0.126 + 0.168)}
    assert len(got) == 5
    challenges = shelly.challenges
    await plug.poll()
    assert shelly.challenges == challenges  # the nonce is reused (preemptive digest), not re-challenged


async def test_shelly_wrong_password_and_unknown_switch(serve, source):
    shelly = Shelly({0: shelly_status(0, 8.9, 6532.0)}, password="right")
    url = await serve(shelly.handle)
    result = await source({"type": "shelly", "url": url, "password": "wrong-pw-123"}).poll()
    assert result.error == "GET /rpc/Switch.GetStatus?id=0: HTTP 401 Unauthorized: unauthorized"
    assert "wrong-pw-123" not in result.error
    shelly.password = None
    result = await source({"type": "shelly", "url": url, "channels": [7]}).poll()
    assert result.error == "GET /rpc/Switch.GetStatus?id=7: HTTP 500 Internal Server Error: Bad id=7"


async def test_shelly_switch_without_a_meter(serve, source):
    status = {k: v for k, v in shelly_status(0, 0, 0).items() if k not in ("apower", "aenergy", "voltage",
                                                                            "current")}
    url = await serve(Shelly({0: status}).handle)
    result = await source({"type": "shelly", "url": url}).poll()
    assert result.error == "Switch 0 has no power meter (no apower in its status)"


# -- Tasmota ----------------------------------------------------------------------------

def tasmota_status8(energy: dict) -> dict:
    """`Status 8` (sensor status) as Tasmota replies it."""
    return {"StatusSNS": {"Time": "2024-03-01T10:15:00", "ENERGY": energy}}


TASMOTA_PLUG = {"TotalStartTime": "2023-11-02T18:20:41", "Total": 12.345, "Yesterday": 0.412,
                "Today": 0.233, "Power": 45, "ApparentPower": 52, "ReactivePower": 26, "Factor": 0.87,
                "Voltage": 232, "Current": 0.224}


class Tasmota:
    """Tasmota's web command endpoint /cm?cmnd=..., with its optional WebPassword
    (user and password as query parameters)."""

    def __init__(self, energy: dict | None, password: str | None = None) -> None:
        self.energy = energy
        self.password = password
        self.queries: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(request.rel_url.raw_query_string)
        if request.path != "/cm":
            return web.Response(status=404, text="Not found")
        if self.password is not None and (request.query.get("user"), request.query.get("password")) != (
                "admin", self.password):
            return web.json_response({"WARNING": "Need user=<username>&password=<password>"}, status=401)
        cmnd = request.query.get("cmnd", "")
        if cmnd.lower() != "status 8":
            return web.json_response({"Command": "Unknown"})
        if self.energy is None:  # a relay without an energy chip: no ENERGY in its sensors
            return web.json_response({"StatusSNS": {"Time": "2024-03-01T10:15:00"}})
        return web.json_response(tasmota_status8(self.energy))


async def test_tasmota_plug(serve, source):
    tasmota = Tasmota(TASMOTA_PLUG, password="tas-pw")
    url = await serve(tasmota.handle)
    result = await source({"type": "tasmota", "url": url, "password": "tas-pw"}).poll()
    assert result.error is None, result.error
    assert rows(result) == {("device", "total"): {"watts": 45.0, "energy_kwh": 12.345, "va": 52.0,
                                                  "volts": 232.0, "amps": 0.224, "power_factor": 0.87}}
    assert tasmota.queries == ["user=admin&password=tas-pw&cmnd=Status%208"]


async def test_tasmota_two_channels(serve, source):
    energy = {"TotalStartTime": "2023-11-02T18:20:41", "Total": 3.185, "Yesterday": 0.2, "Today": 0.1,
              "Power": [12, 30], "ApparentPower": [20, 33], "ReactivePower": [16, 14],
              "Factor": [0.6, 0.91], "Voltage": 231, "Current": [0.087, 0.143]}
    url = await serve(Tasmota(energy).handle)
    result = await source({"type": "tasmota", "url": url}).poll()
    assert result.error is None, result.error
    assert rows(result) == {
        ("device", "total"): {"watts": 42.0, "va": 53.0, "amps": pytest.approx(0.23), "energy_kwh": 3.185},
        ("outlet", "1"): {"watts": 12.0, "va": 20.0, "volts": 231.0, "amps": 0.087, "power_factor": 0.6},
        ("outlet", "2"): {"watts": 30.0, "va": 33.0, "volts": 231.0, "amps": 0.143, "power_factor": 0.91},
    }


async def test_tasmota_errors(serve, source):
    url = await serve(Tasmota(TASMOTA_PLUG, password="tas-pw").handle)
    result = await source({"type": "tasmota", "url": url, "password": "wrong-pw-456"}).poll()
    assert result.error == ("GET /cm?cmnd=Status 8: HTTP 401 Unauthorized: "
                            "Need user=<username>&password=<password>")
    assert "wrong-pw-456" not in result.error
    url = await serve(Tasmota(None).handle)
    result = await source({"type": "tasmota", "url": url}).poll()
    assert result.error == ("Status 8: reply has no StatusSNS.ENERGY (is energy monitoring on this device?)")


# -- generic JSON -----------------------------------------------------------------------

async def test_json_meter_with_units_and_token(serve, source):
    seen: list[str] = []

    async def meter(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "Bearer tok-123":
            return web.json_response({"message": "bad token"}, status=403)
        return web.json_response({"data": {"power": {"active": 1.25, "apparent": "1.40"}},
                                  "phases": [{"volts": 229.5}], "totals": {"energy": 123456}})

    url = await serve(meter)
    src = source({"type": "json", "url": f"{url}/api/v1/status", "token": "tok-123", "fields": {
        "watts": {"path": "data.power.active", "unit": "kW"},
        "va": {"path": "data.power.apparent", "unit": "kVA"},
        "volts": {"path": "phases[0].volts"},
        "energy_kwh": {"path": "totals.energy", "unit": "Wh"}}})
    assert src.kind == "meter"
    result = await src.poll()
    assert result.error is None, result.error
    assert rows(result) == {("device", "total"): {"watts": 1250.0, "va": 1400.0, "volts": 229.5,
                                                  "energy_kwh": pytest.approx(123.456)}}
    assert seen == ["Bearer tok-123"]


async def test_json_missing_paths(serve, source):
    async def meter(request: web.Request) -> web.Response:
        return web.json_response({"data": {"power": 300}})

    url = await serve(meter)
    result = await source({"type": "json", "url": url, "fields": {
        "watts": {"path": "data.power"}, "energy_kwh": {"path": "data.energy", "unit": "kWh"}}}).poll()
    assert result.error is None
    assert rows(result) == {("device", "total"): {"watts": 300.0}}
    assert result.problems == ["energy_kwh: no data.energy in the reply (path data.energy)"]
    result = await source({"type": "json", "url": url, "fields": {"watts": {"path": "data.watts"}}}).poll()
    assert result.error == "GET /: no watts or energy_kwh in the reply (watts: no data.watts in the reply " \
                           "(path data.watts))"


def test_at_path():
    data = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert at_path(data, "a.b.1.c") == 2 and at_path(data, "a.b[0].c") == 1
    with pytest.raises(KeyError) as info:
        at_path(data, "a.x.c")
    assert info.value.args[0] == "a.x"


# -- faults -----------------------------------------------------------------------------

async def test_faults_are_device_errors(serve, source):
    mode = {"now": "500"}

    async def plug(request: web.Request) -> web.Response:
        if mode["now"] == "500":
            return web.Response(status=500, text="Internal error")
        if mode["now"] == "slow":
            await asyncio.sleep(3)
        if mode["now"] == "garbled":
            return web.Response(text='{"id": 0, "apower": 12.', content_type="application/json")
        return web.json_response(shelly_status(0, 12.0, 10.0))

    url = await serve(plug)
    src = source({"type": "shelly", "url": url, "timeout": "300ms"})
    assert (await src.poll()).error == "GET /rpc/Switch.GetStatus?id=0: HTTP 500 Internal Server Error: " \
                                       "Internal error"
    mode["now"] = "slow"
    assert (await src.poll()).error == "GET /rpc/Switch.GetStatus?id=0: no answer within 0.3 s"
    mode["now"] = "garbled"
    error = (await src.poll()).error
    assert error.startswith("GET /rpc/Switch.GetStatus?id=0: not valid JSON (")
    mode["now"] = "ok"
    assert (await src.poll()).error is None


async def test_unreachable_plug(source):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = await source({"type": "tasmota", "url": f"http://127.0.0.1:{port}"}).poll()
    assert result.error.startswith(f"GET /cm?cmnd=Status 8: cannot connect to 127.0.0.1:{port}")


# -- config -----------------------------------------------------------------------------

def test_config_accepts_http_devices(tmp_path):
    path = tmp_path / "greenwatch.yaml"
    path.write_text(textwrap.dedent("""\
        sites:
          - name: office
            devices:
              - name: plug-1
                http: {type: shelly, url: http://10.1.0.21, channels: [0, 1]}
              - name: plug-2
                http: {type: tasmota, url: http://10.1.0.22, password: "${GW_TEST_PLUG_PW}"}
              - name: meter-1
                kind: meter
                http:
                  type: json
                  url: http://10.1.0.30/api/status?format=json
                  fields:
                    watts: {path: data.power.active, unit: kW}
                    energy_kwh: {path: totals.energy, unit: Wh}
                  headers: {X-Api-Key: {env: GW_TEST_PLUG_PW}}
        """))
    import os
    os.environ["GW_TEST_PLUG_PW"] = "plug-pw"
    try:
        config = load_config(path)
    finally:
        del os.environ["GW_TEST_PLUG_PW"]
    shelly, tasmota, meter = config.sites[0].devices
    assert shelly.http.channels == [0, 1] and shelly.address is None
    assert tasmota.http.password.get_secret_value() == "plug-pw"
    assert meter.http.fields["watts"].unit == "kW"
    assert meter.http.url == "http://10.1.0.30/api/status?format=json"
    assert meter.http.headers["X-Api-Key"].get_secret_value() == "plug-pw"


@pytest.mark.parametrize("http, message", [
    ("{type: json, url: 'http://m'}", "type json needs fields"),
    ("{type: json, url: 'http://m', fields: {joules: {path: a}}}", "fields.joules: not a power field"),
    ("{type: json, url: 'http://m', fields: {watts: {path: a, unit: Wh}}}", "unit Wh is not a unit of power"),
    ("{type: json, url: 'http://m', fields: {watts: {path: a, unit: parsecs}}}", "unknown unit 'parsecs'"),
    ("{type: json, url: 'http://m', fields: {volts: {path: a}}}", "needs watts or energy_kwh"),
    ("{type: shelly, url: 'http://p', fields: {watts: {path: a}}}", "fields is only for type json"),
    ("{type: tasmota, url: 'http://p', channels: [1]}", "channels is only for type shelly"),
    ("{type: shelly, url: 'http://p', token: t}", "token is only for type json"),
    ("{type: shelly, url: 'http://p?x=1'}", "must not have a query"),
    ("{type: zigbee, url: 'http://p'}", "'shelly', 'tasmota' or 'json'"),
])
def test_http_config_errors(tmp_path, http, message):
    path = tmp_path / "greenwatch.yaml"
    path.write_text(f"sites:\n  - name: s\n    devices:\n      - name: p\n        http: {http}\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    assert message in str(info.value)
    assert f"{path}:5:" in str(info.value)


async def test_messages_never_carry_credentials(serve, source):
    async def redirect_loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.path_qs)  # the password rides along in the query

    url = await serve(redirect_loop)
    result = await source({"type": "tasmota", "url": url, "password": "pw-in-query"}).poll()
    assert result.error == "GET /cm?cmnd=Status 8: too many redirects"

    async def echo(request: web.Request) -> web.Response:  # a device that echoes the request back
        return web.json_response({"message": f"bad request {request.path_qs}"}, status=400)

    url = await serve(echo)
    result = await source({"type": "tasmota", "url": url, "password": "pw in/query"}).poll()
    assert "pw" not in result.error and "***" in result.error
