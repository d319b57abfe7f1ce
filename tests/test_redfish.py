"""Redfish source against Redfish services on 127.0.0.1: the project's mockups, DMTF's
public mockup, sessions that expire, and services that fail in each way a BMC does."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from realparts.web import serve

from collector.config import Defaults, Device
from collector.redfish import RedfishSource
from greenwatch.config import Site, load_config
from greenwatch.core.yamlfile import InputError

MOCKUPS = Path(__file__).parent / "redfish_mockups"
DMTF = Path(__file__).resolve().parents[2] / "shared" / "redfish" / "dmtf-public-rackmount1"
V1 = "/redfish/v1"
SESSIONS = f"{V1}/SessionService/Sessions"
PUBLIC = {V1, f"{V1}/odata", f"{V1}/$metadata"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MockBMC:
    """Serves a mockup tree (a directory that is /redfish/v1, one index.json per resource)
    with Redfish sessions or basic auth, `$expand=.` on collections, JSON overrides and
    injected faults. Records every request."""

    def __init__(self, root: Path, username: str | None = None, password: str | None = None,
                 basic: bool = False) -> None:
        self.root = root
        self.username, self.password, self.basic = username, password, basic
        self.tokens: dict[str, str] = {}  # token -> session id
        self.sessions: dict[str, str] = {}  # session id -> token
        self.logins = 0
        self.requests: list[tuple[str, str]] = []
        self.faults: dict[str, Handler] = {}
        self.docs: dict[str, Any] = {}  # path -> JSON served instead of the file
        self.url = ""
        self._runner: web.AppRunner | None = None

    # -- running -----------------------------------------------------------------------

    async def start(self) -> MockBMC:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner, self.url = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def expire_sessions(self) -> None:
        """As a BMC does after its session timeout: every token stops working."""
        self.tokens.clear()
        self.sessions.clear()

    def gets(self, path: str) -> int:
        return sum(1 for method, p in self.requests if method == "GET" and p == path)

    # -- faults --------------------------------------------------------------------------

    def fail(self, path: str, status: int = 500) -> None:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(error_body("Base.1.8.InternalError", "The request failed due to an "
                                                "internal service error."), status=status)
        self.faults[path] = handler

    def slow(self, path: str, seconds: float) -> None:
        async def handler(request: web.Request) -> web.Response:
            await asyncio.sleep(seconds)
            return web.json_response(self.load(path))
        self.faults[path] = handler

    def garble(self, path: str) -> None:
        async def handler(request: web.Request) -> web.Response:
            text = json.dumps(self.load(path))
            return web.Response(body=text[: len(text) // 2].encode(), content_type="application/json")
        self.faults[path] = handler

    # -- serving -----------------------------------------------------------------------

    def file_of(self, path: str) -> Path:
        rel = path[len(V1):].strip("/")
        return (self.root / rel / "index.json") if rel else self.root / "index.json"

    def load(self, path: str) -> Any:
        if path in self.docs:
            return self.docs[path]
        return json.loads(self.file_of(path).read_text())

    def exists(self, path: str) -> bool:
        return path in self.docs or self.file_of(path).is_file()

    def authorised(self, request: web.Request) -> bool:
        if self.username is None:
            return True
        token = request.headers.get("X-Auth-Token")
        if token is not None and token in self.tokens:
            return True
        if self.basic:
            header = request.headers.get("Authorization", "")
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return (user, password) == (self.username, self.password)
        return False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        self.requests.append((request.method, path))
        if request.method == "POST" and path == SESSIONS:
            return await self.login(request)
        if path not in PUBLIC and not self.authorised(request):
            return web.json_response(error_body("Base.1.8.NoValidSession", "There is no valid session "
                                                "established with the implementation."), status=401)
        if path in self.faults:
            return await self.faults[path](request)
        if request.method == "DELETE" and path.startswith(SESSIONS + "/"):
            sid = path.rsplit("/", 1)[-1]
            token = self.sessions.pop(sid, None)
            self.tokens.pop(token or "", None)
            return web.Response(status=204 if token else 404)
        if request.method != "GET":
            return web.json_response(error_body("Base.1.8.OperationNotAllowed", "not allowed"), status=405)
        if not self.exists(path):
            return web.json_response(error_body("Base.1.8.ResourceMissingAtURI", f"{path} not found"),
                                     status=404)
        doc = self.load(path)
        if request.query.get("$expand") == "." and isinstance(doc.get("Members"), list):
            doc = dict(doc, Members=[self.load(m["@odata.id"]) for m in doc["Members"]])
        return web.json_response(doc, headers={"OData-Version": "4.0"})

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("UserName"), body.get("Password")) != (self.username, self.password):
            return web.json_response(error_body("Base.1.8.ResourceAtUriUnauthorized", "bad credentials"),
                                     status=401)
        self.logins += 1
        sid, token = str(self.logins), secrets.token_hex(16)
        self.tokens[token] = sid
        self.sessions[sid] = token
        location = f"{SESSIONS}/{sid}"
        return web.json_response(
            {"@odata.id": location, "Id": sid, "Name": "User Session", "UserName": self.username},
            status=201, headers={"X-Auth-Token": token, "Location": location})


def error_body(message_id: str, message: str) -> dict:
    return {"error": {"code": message_id, "message": message,
                      "@Message.ExtendedInfo": [{"MessageId": message_id, "Message": message}]}}


@pytest.fixture
async def bmc_factory():
    started: list[MockBMC] = []

    async def make(root: Path, **kwargs: Any) -> MockBMC:
        bmc = await MockBMC(root, **kwargs).start()
        started.append(bmc)
        return bmc

    yield make
    for bmc in started:
        await bmc.stop()


@pytest.fixture
async def sources():
    """Sources made by a test, closed after it."""
    made: list[RedfishSource] = []

    def make(url: str, **redfish: Any) -> RedfishSource:
        device = Device.model_validate({"name": redfish.pop("name", "srv-1"),
                                        "tags": {"rack": "A1"},
                                        "kind": redfish.pop("kind", None),
                                        "redfish": {"url": url, "verify_tls": False, **redfish}})
        source = RedfishSource(Site(name="dc-north", tags={"room": "hall-1"}), device, Defaults())
        made.append(source)
        return source

    yield make
    for source in made:
        await source.close()


def rows(result) -> dict[tuple[str, str], dict[str, float]]:
    """(scope, entity) -> fields; fails on a duplicate row (a double count)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for sample in result.samples:
        key = (sample.tags["scope"], sample.tags["entity"])
        assert key not in out, f"two rows for {key}"
        out[key] = sample.fields
    return out


# -- config ----------------------------------------------------------------------------

def test_config_accepts_the_redfish_line_as_written(tmp_path):
    path = tmp_path / "greenwatch.yaml"
    path.write_text(textwrap.dedent("""\
        sites:
          - name: dc-north
            devices:
              - name: srv-1
                redfish: {url: http://127.0.0.1:8000, verify_tls: false}
              - name: srv-2
                redfish:
                  url: https://10.0.0.12/redfish/v1/
                  username: monitor
                  password: {env: GW_TEST_BMC_PASSWORD}
                  ca_file: bmc-ca.pem
                  timeout: 15s
        """))
    import os
    import subprocess
    # A real CA file: the loader checks that ca_file loads.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(tmp_path / "bmc-ca.key"), "-out", str(tmp_path / "bmc-ca.pem"),
                    "-days", "2", "-subj", "/CN=bmc-ca"], check=True, capture_output=True)
    os.environ["GW_TEST_BMC_PASSWORD"] = "s3cret-pw"
    try:
        config = load_config(path)
    finally:
        del os.environ["GW_TEST_BMC_PASSWORD"]
    one, two = config.sites[0].devices
    assert one.address is None and one.snmp is None
    assert one.redfish.url == "http://127.0.0.1:8000" and one.redfish.verify_tls is False
    assert one.redfish.auth_method == "none"
    assert two.redfish.url == "https://10.0.0.12"  # /redfish/v1 is the source's to add
    assert two.redfish.auth_method == "session" and two.redfish.timeout == 15.0
    assert two.redfish.ca_file == tmp_path.resolve() / "bmc-ca.pem"
    assert "s3cret-pw" not in repr(two)


@pytest.mark.parametrize("device, message", [
    ("{name: a, address: 10.0.0.1}", "a device needs a source: one of snmp, redfish, http"),
    ("{name: a, address: 10.0.0.1, snmp: {community: x}, redfish: {url: 'http://h'}}",
     "exactly one source, this one has snmp and redfish"),
    ("{name: a, snmp: {community: x}}", "an snmp device needs an address"),
    ("{name: a, redfish: {url: 'ftp://h'}}", "expected an http:// or https:// URL"),
    ("{name: a, redfish: {url: 'https://root:pw@h'}}", "credentials in username/password"),
    ("{name: a, redfish: {url: 'https://h', username: root}}", "username and password go together"),
    ("{name: a, redfish: {url: 'https://h', auth: basic}}", "auth: basic needs username and password"),
    ("{name: a, redfish: {url: 'https://h', auth: digest}}", "'basic' or 'session'"),
    ("{name: a, redfish: {url: 'https://h', verfy_tls: false}}", "verfy_tls"),
])
def test_config_errors_name_the_line(tmp_path, device, message):
    path = tmp_path / "greenwatch.yaml"
    path.write_text(f"sites:\n  - name: s\n    devices:\n      - {device}\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    assert message in str(info.value)
    assert f"{path}:4:" in str(info.value)


# -- readings from each mockup ---------------------------------------------------------

async def test_legacy_only(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "legacy-only")
    result = await sources(bmc.url).poll()
    assert result.error is None, result.error
    got = rows(result)
    # PowerControl[0] is the system; [1] (PhysicalContext CPU) is a part of it, not read.
    assert got[("device", "total")] == {"watts": 212.0}
    # Input watts of each supply (not LastPowerOutputWatts), with line voltage.
    assert got[("psu", "0")] == {"watts": 107.0, "volts": 230.0}
    assert got[("psu", "1")] == {"watts": 105.0, "volts": 231.0}
    assert len(got) == 3  # the backplane chassis has no power of its own
    sample = next(s for s in result.samples if s.tags["scope"] == "device")
    assert sample.tags == {"site": "dc-north", "device": "srv-1", "kind": "server", "room": "hall-1",
                           "rack": "A1", "scope": "device", "entity": "total",
                           "label": "Computer System Chassis"}
    psu = next(s for s in result.samples if s.tags["scope"] == "psu")
    assert psu.tags["label"] == "PS1"


async def test_legacy_average_when_no_instantaneous_reading(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "legacy-only")
    power = bmc.load(f"{V1}/Chassis/1/Power")
    power["PowerControl"][0]["PowerConsumedWatts"] = None
    bmc.docs[f"{V1}/Chassis/1/Power"] = power
    result = await sources(bmc.url).poll()
    assert result.error is None
    assert rows(result)[("device", "total")] == {"watts": 205.0}  # PowerMetrics.AverageConsumedWatts


async def test_new_schema_only(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "new-schema-only")
    source = sources(bmc.url, kind="host")
    result = await source.poll()
    assert result.error is None, result.error
    got = rows(result)
    assert got[("device", "total")] == {"watts": 431.5, "energy_kwh": 1523.25}
    assert got[("psu", "PSU1")] == {"watts": 220.5, "energy_kwh": 770.1, "volts": 229.8, "amps": 0.96}
    assert got[("psu", "PSU2")] == {"watts": 211.0, "energy_kwh": 753.15, "volts": 230.4, "amps": 0.92}
    assert len(got) == 3  # PSU3 is absent; the CPU and PSU sensors duplicate what is read
    assert result.samples[0].tags["kind"] == "host"  # the device's kind wins
    # EnvironmentMetrics covers the total: no sensor is read on a poll.
    before = list(bmc.requests)
    again = await source.poll()
    assert rows(again) == got
    polled = bmc.requests[len(before):]
    assert all("/Sensors" not in p for _, p in polled), polled
    assert source.discoveries == 1


async def test_both_present_prefers_the_new_schema_and_counts_once(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "both-present")
    result = await sources(bmc.url).poll()
    assert result.error is None, result.error
    got = rows(result)
    legacy = bmc.load(f"{V1}/Chassis/1/Power")
    assert legacy["PowerControl"][0]["PowerConsumedWatts"] == 300  # what an old reader would say
    assert got[("device", "total")] == {"watts": 305.0, "energy_kwh": 88.5}
    assert got[("psu", "PSU1")] == {"watts": 153.0, "energy_kwh": 44.5}
    assert got[("psu", "PSU2")] == {"watts": 154.0, "energy_kwh": 44.0}
    assert len(got) == 3  # no legacy PSU rows beside the new ones
    assert bmc.gets(f"{V1}/Chassis/1/Power") == 0  # the legacy resource is not even asked


async def test_both_present_falls_back_to_legacy_when_the_new_resource_fails(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "both-present")
    source = sources(bmc.url)
    assert (await source.poll()).error is None
    bmc.fail(f"{V1}/Chassis/1/EnvironmentMetrics", 500)
    result = await source.poll()
    assert result.error is None
    assert rows(result)[("device", "total")] == {"watts": 300.0}
    assert any(p.startswith(f"GET {V1}/Chassis/1/EnvironmentMetrics: HTTP 500") for p in result.problems)


async def test_enclosure_total_is_the_containing_chassis(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "enclosure")
    result = await sources(bmc.url).poll()
    assert result.error is None, result.error
    # The blades' power is part of the enclosure's: one device row, nothing counted twice.
    assert rows(result) == {("device", "total"): {"watts": 1200.0, "energy_kwh": 5321.0}}
    assert result.samples[0].tags["label"] == "Blade Enclosure"
    assert bmc.gets(f"{V1}/Chassis/Blade1/EnvironmentMetrics") == 0


async def test_sibling_chassis_report_under_their_ids(bmc_factory, sources):
    """Two nodes side by side (their container not a chassis the service lists): their
    power adds up, so each is a device row under its chassis Id, and none is `total`."""
    bmc = await bmc_factory(MOCKUPS / "enclosure")
    listing = bmc.load(f"{V1}/Chassis")
    bmc.docs[f"{V1}/Chassis"] = dict(listing, Members=listing["Members"][1:])
    result = await sources(bmc.url).poll()
    assert result.error is None, result.error
    assert rows(result) == {
        ("device", "Blade1"): {"watts": 400.0},
        ("device", "Blade2"): {"watts": 380.0, "energy_kwh": 12.5},  # from its Sensors
    }
    labels = {s.tags["entity"]: s.tags["label"] for s in result.samples}
    assert labels == {"Blade1": "Blade 1", "Blade2": "Blade 2"}


# -- DMTF's public mockup --------------------------------------------------------------

@pytest.fixture
def dmtf_mockup() -> Path:
    """DMTF's public mockup, from the project's shared folder beside the repository
    (CI lays it there too). Missing is a failure, never a skip."""
    if not (DMTF / "index.json").is_file():
        pytest.fail(f"DMTF's public Redfish mockup is not at {DMTF}: the shared folder belongs beside the repo")
    return DMTF


def _dmtf(path: str) -> Any:
    rel = path[len(V1):].strip("/")
    return json.loads((DMTF / rel / "index.json").read_text())


@pytest.mark.usefixtures("dmtf_mockup")
async def test_dmtf_public_rackmount1(bmc_factory, sources):
    bmc = await bmc_factory(DMTF)
    result = await sources(bmc.url).poll()
    assert result.error is None, result.error
    got = rows(result)
    # Expected values read from the mockup's own files.
    (member,) = _dmtf(f"{V1}/Chassis")["Members"]
    chassis = _dmtf(member["@odata.id"])
    env = _dmtf(chassis["EnvironmentMetrics"]["@odata.id"])
    sensors = [_dmtf(m["@odata.id"]) for m in _dmtf(chassis["Sensors"]["@odata.id"])["Members"]]
    (energy,) = [s for s in sensors if s.get("ReadingType") == "EnergykWh" and s.get("PhysicalContext") == "Chassis"]
    total = got[("device", "total")]
    assert total == {"watts": float(env["PowerWatts"]["Reading"]), "energy_kwh": float(energy["Reading"])}
    supplies = _dmtf(_dmtf(chassis["PowerSubsystem"]["@odata.id"])["PowerSupplies"]["@odata.id"])["Members"]
    for ref in supplies:
        supply = _dmtf(ref["@odata.id"])
        if "Metrics" not in supply:
            assert ("psu", supply["Id"]) not in got  # an absent bay
            continue
        metrics = _dmtf(supply["Metrics"]["@odata.id"])
        assert got[("psu", supply["Id"])]["watts"] == metrics["InputPowerWatts"]["Reading"]
        assert got[("psu", supply["Id"])]["energy_kwh"] == metrics["EnergykWh"]["Reading"]
    assert chassis["Name"] == next(s.tags["label"] for s in result.samples if s.tags["scope"] == "device")
    # The service advertises $expand: the sensor collection was read in one request.
    assert bmc.gets(f"{V1}/Chassis/1U/Sensors/TotalPower") == 0


@pytest.mark.usefixtures("dmtf_mockup")
async def test_dmtf_public_rackmount1_as_a_legacy_bmc(bmc_factory, sources):
    """The same mockup with the chassis' new-schema links hidden, as older firmware would
    show it: the watts read are the legacy PowerConsumedWatts in its files."""
    bmc = await bmc_factory(DMTF)
    (member,) = _dmtf(f"{V1}/Chassis")["Members"]
    chassis = _dmtf(member["@odata.id"])
    bmc.docs[member["@odata.id"]] = {k: v for k, v in chassis.items()
                                     if k not in ("EnvironmentMetrics", "PowerSubsystem", "Sensors")}
    result = await sources(bmc.url).poll()
    assert result.error is None, result.error
    power = _dmtf(chassis["Power"]["@odata.id"])
    expected = power["PowerControl"][0]["PowerConsumedWatts"]
    assert rows(result)[("device", "total")] == {"watts": float(expected)}
    # Its PSU gives only LastPowerOutputWatts (an output figure): no PSU row is made up.
    assert "PowerInputWatts" not in power["PowerSupplies"][0]
    assert [s for s in result.samples if s.tags["scope"] == "psu"] == []


# -- auth ------------------------------------------------------------------------------

async def test_session_login_renewal_and_logout(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "new-schema-only", username="monitor", password="pw-0123456789")
    source = sources(bmc.url, username="monitor", password="pw-0123456789")
    first = await source.poll()
    assert first.error is None, first.error
    assert bmc.logins == 1 and len(bmc.sessions) == 1
    await source.poll()
    assert bmc.logins == 1  # the token is reused across polls
    bmc.expire_sessions()
    renewed = await source.poll()
    assert renewed.error is None, renewed.error
    assert rows(renewed) == rows(first)
    assert bmc.logins == 2  # one new login, then the request retried
    (sid,) = bmc.sessions
    await source.close()
    assert ("DELETE", f"{SESSIONS}/{sid}") in bmc.requests
    assert bmc.sessions == {}


async def test_basic_auth(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "legacy-only", username="monitor", password="pw-0123456789",
                            basic=True)
    result = await sources(bmc.url, username="monitor", password="pw-0123456789", auth="basic").poll()
    assert result.error is None, result.error
    assert rows(result)[("device", "total")] == {"watts": 212.0}
    assert bmc.logins == 0 and ("POST", SESSIONS) not in bmc.requests


async def test_wrong_password_is_an_error_that_keeps_the_secret(bmc_factory, sources, caplog):
    bmc = await bmc_factory(MOCKUPS / "legacy-only", username="monitor", password="right-password")
    result = await sources(bmc.url, username="monitor", password="wrong-password-xyz").poll()
    assert result.error == f"POST {SESSIONS} (session login): refused (HTTP 401): check username and password"
    assert "wrong-password-xyz" not in result.error and "wrong-password-xyz" not in caplog.text


@pytest.mark.parametrize("auth", ["basic", "session"])
async def test_echoed_credentials_never_reach_the_error(bmc_factory, sources, caplog, auth):
    """A BMC (or a proxy) that quotes the request's Authorization header or session
    token back in its error text, cut off at 200 characters or not."""
    password = "pw-echo-0123456789"
    bmc = await bmc_factory(MOCKUPS / "legacy-only", username="monitor", password=password, basic=True)

    async def echo(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "") or request.headers.get("X-Auth-Token", "")
        # The secret straddles the 200th character of the body: cutting it there first
        # would leave a piece of it.
        text = "x" * (190 - len(sent) // 2) + f" you sent {sent} ({base64.b64encode(password.encode()).decode()})"
        return web.Response(text=text, status=500)

    bmc.faults[f"{V1}/Chassis/1/Power"] = echo
    result = await sources(bmc.url, username="monitor", password=password, auth=auth).poll()
    assert result.error.startswith(f"GET {V1}/Chassis/1/Power: HTTP 500 Internal Server Error: xxx")
    token_pieces = [t[:8] for t in bmc.tokens]
    pair = base64.b64encode(f"monitor:{password}".encode()).decode()
    for secret in [password, pair, pair[:12], base64.b64encode(password.encode()).decode()[:12], *token_pieces]:
        assert secret not in result.error and secret not in caplog.text, secret


async def test_credentials_missing(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "legacy-only", username="monitor", password="pw")
    result = await sources(bmc.url).poll()
    assert result.error == f"GET {V1}/Chassis: HTTP 401 Unauthorized: the service needs credentials " \
                           "(username, password)"


# -- faults: each one this device's error, never an exception --------------------------

async def test_http_500_is_a_device_error(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "legacy-only")
    source = sources(bmc.url)
    bmc.fail(f"{V1}/Chassis/1/Power", 500)  # the only source of this server's watts
    result = await source.poll()
    assert result.error == (f"GET {V1}/Chassis/1/Power: HTTP 500 Internal Server Error: "
                            "The request failed due to an internal service error.")
    assert result.samples == []
    bmc.faults.clear()
    assert (await source.poll()).error is None  # and it recovers
    bmc.fail(f"{V1}/Chassis", 503)  # discovery is not cached past a failure either
    source._plan = None
    assert (await source.poll()).error == (f"GET {V1}/Chassis: HTTP 503 Service Unavailable: "
                                           "The request failed due to an internal service error.")


async def test_http_500_with_a_fallback_is_a_problem(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "new-schema-only")
    bmc.fail(f"{V1}/Chassis/1/EnvironmentMetrics", 500)
    result = await sources(bmc.url).poll()
    # The chassis' power and energy sensors stand in for EnvironmentMetrics.
    assert result.error is None
    assert rows(result)[("device", "total")] == {"watts": 431.5, "energy_kwh": 1523.25}
    assert result.problems == [f"GET {V1}/Chassis/1/EnvironmentMetrics: HTTP 500 Internal Server Error: "
                               "The request failed due to an internal service error."]


async def test_timeout_is_a_device_error(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "legacy-only")
    source = sources(bmc.url, timeout="300ms")
    bmc.slow(f"{V1}/Chassis/1/Power", 3.0)
    result = await source.poll()
    assert result.error == f"GET {V1}/Chassis/1/Power: no answer within 0.3 s"
    bmc.faults.clear()
    assert (await source.poll()).error is None


async def test_malformed_json_is_a_device_error(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "legacy-only")
    source = sources(bmc.url)
    bmc.garble(f"{V1}/Chassis")
    result = await source.poll()
    assert result.error.startswith(f"GET {V1}/Chassis: not valid JSON (")
    bmc.faults.clear()
    assert (await source.poll()).error is None


async def test_unexpected_shapes_are_errors_or_problems(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "new-schema-only")
    env = bmc.load(f"{V1}/Chassis/1/EnvironmentMetrics")
    bmc.docs[f"{V1}/Chassis/1/EnvironmentMetrics"] = dict(env, PowerWatts={"Reading": "lots"})
    bmc.docs[f"{V1}/Chassis/1/PowerSubsystem/PowerSupplies/PSU1/Metrics"] = ["not", "an", "object"]
    result = await sources(bmc.url).poll()
    # The total falls back to the chassis power sensor; PSU1's odd reply is a problem.
    assert result.error is None, result.error
    assert rows(result)[("device", "total")] == {"watts": 431.5, "energy_kwh": 1523.25}
    assert f'{V1}/Chassis/1/EnvironmentMetrics PowerWatts.Reading: expected a number, got "lots"' \
        in result.problems
    assert any("PSU1/Metrics: expected a JSON object, got list" in p for p in result.problems)


async def test_unreachable_service(sources):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = await sources(f"http://127.0.0.1:{port}").poll()
    assert result.error.startswith(f"GET {V1}/: cannot connect to 127.0.0.1:{port}")


async def test_no_power_anywhere_is_an_error(bmc_factory, sources):
    bmc = await bmc_factory(MOCKUPS / "legacy-only")
    bmc.docs[f"{V1}/Chassis/1"] = {k: v for k, v in bmc.load(f"{V1}/Chassis/1").items() if k != "Power"}
    result = await sources(bmc.url).poll()
    assert result.error.startswith("no chassis offers power readings")


# -- discovery -------------------------------------------------------------------------

async def test_discovery_is_redone_when_a_path_goes_away(bmc_factory, sources, tmp_path):
    root = tmp_path / "bmc"
    shutil.copytree(MOCKUPS / "new-schema-only", root)
    bmc = await bmc_factory(root)
    source = sources(bmc.url)
    before = rows(await source.poll())
    # A firmware update renames the chassis: every old path now answers 404.
    (root / "Chassis" / "1").rename(root / "Chassis" / "System.Embedded.1")
    for path in root.rglob("index.json"):
        text = path.read_text().replace("/Chassis/1/", "/Chassis/System.Embedded.1/")
        text = text.replace('"/redfish/v1/Chassis/1"', '"/redfish/v1/Chassis/System.Embedded.1"')
        path.write_text(text)
    after = await source.poll()
    assert after.error is None, after.error
    assert rows(after) == before
    assert source.discoveries == 2
    assert bmc.gets(f"{V1}/Chassis/System.Embedded.1/EnvironmentMetrics") == 1


async def test_a_path_missing_right_after_discovery_is_dropped(bmc_factory, sources, tmp_path):
    root = tmp_path / "bmc"
    shutil.copytree(MOCKUPS / "new-schema-only", root)
    shutil.rmtree(root / "Chassis" / "1" / "PowerSubsystem" / "PowerSupplies" / "PSU2" / "Metrics")
    bmc = await bmc_factory(root)
    source = sources(bmc.url)
    first = await source.poll()
    assert first.error is None
    assert ("psu", "PSU2") not in rows(first)
    assert any("PSU2/Metrics: HTTP 404" in p for p in first.problems)
    second = await source.poll()
    assert second.error is None and source.discoveries == 1  # not rediscovered every poll
    assert bmc.gets(f"{V1}/Chassis/1/PowerSubsystem/PowerSupplies/PSU2/Metrics") == 1
