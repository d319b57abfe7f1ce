"""Servers' power from their BMC over Redfish (iDRAC, iLO, XCC, OpenBMC, ...).

One `RedfishSource` per device; one aiohttp session per source, reused across polls.

Discovery (cached; redone when a discovered path answers 404) walks every chassis in
`/redfish/v1/Chassis` and notes what it offers: `EnvironmentMetrics`, the
`PowerSubsystem`'s power supplies with `Metrics`, `Sensors` whose `ReadingType` is
`Power` or `EnergykWh` (physical context `Chassis` or `PowerSupply`), and the legacy
`Power` resource (deprecated by DMTF in 2020.4, still the only one on older BMCs).

Each poll reads, per chassis, in order of preference, and stops asking as soon as a
slot is filled, so nothing is counted twice:

* chassis watts (scope `device`): `EnvironmentMetrics.PowerWatts`, else a `Chassis`
  power sensor, else legacy `PowerControl[].PowerConsumedWatts` of the first
  whole-system entry (else its `PowerMetrics.AverageConsumedWatts`).
* chassis energy: `EnvironmentMetrics.EnergykWh`, else a `Chassis` energy sensor.
* power supplies (scope `psu`): `PowerSubsystem` supplies' `Metrics`
  (`InputPowerWatts`, `EnergykWh`, `InputVoltage`, `InputCurrentAmps`), else
  `PowerSupply` sensors, else legacy `PowerSupplies[].PowerInputWatts`.

Device rows: a chassis inside another one with a power source (a blade in its
enclosure) gives none, its watts being part of the outer one's. Of the others with a
power source, a single one is entity `total`; several (sibling nodes, whose power adds
up) each report under their chassis Id. Label: the chassis' `Name`.

Auth: none, HTTP basic, or a Redfish session (POST to the service's Sessions
collection, `X-Auth-Token` on every request, renewed once on a 401, deleted on close).
A failed request is a problem when the readings it would have given come from
elsewhere, and the poll's error when a chassis' watts cannot be read; the message names
the request's path and what went wrong. Credentials and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from collector.config import Defaults, Device, RedfishConfig
from greenwatch.core.config import SiteSettings
from greenwatch.core.schema import POWER, Sample

from .http_common import (
    SourceFailure,
    basic_header,
    describe_failure,
    error_detail,
    number,
    parse_json,
    request_timeout,
    scrub,
    tls_option,
)
from .source import PollResult
from .tags import base_tags, entity_tags

log = logging.getLogger("greenwatch.redfish")

DEFAULT_TIMEOUT = 10.0
ROOT = "/redfish/v1"
DEFAULT_SESSIONS = "/redfish/v1/SessionService/Sessions"
MAX_PAGES = 50

# PowerControl entries (and sensors) about one component, not the whole system:
# taking one of those as the chassis total would undercount it.
COMPONENT_CONTEXTS = frozenset({
    "CPU", "CPUSubsystem", "Memory", "MemorySubsystem", "StorageDevice", "StorageBay",
    "GPU", "GPUSubsystem", "Accelerator", "ASIC", "FPGA", "NetworkingDevice", "NetworkBay",
    "Fan", "Backplane", "VoltageRegulator", "Transceiver", "Exhaust", "Battery", "Board",
})


_UNIT_TYPES = {"W": "Power", "kW.h": "EnergykWh"}


class NotFound(SourceFailure):
    """404: the resource moved or went; discovery is redone."""


@dataclass
class Psu:
    id: str
    name: str | None
    metrics: str


@dataclass
class PowerSensor:
    path: str
    id: str
    reading_type: str  # Power | EnergykWh
    context: str  # Chassis | PowerSupply
    total: bool  # ElectricalContext Total (preferred among several)
    related: str | None  # the power supply's Id, where the sensor links it


@dataclass
class ChassisPlan:
    id: str
    name: str | None
    path: str
    env: str | None = None
    power: str | None = None
    psus: list[Psu] = field(default_factory=list)
    sensors: list[PowerSensor] = field(default_factory=list)
    contained_by: str | None = None
    entity: str = ""
    # Several chassis with power supplies: PSU entities are prefixed "<chassis>/".
    psu_prefix: bool = False
    # Inside another chassis that reports its power (a blade in an enclosure): its
    # watts are part of that one's, so it gives no device row of its own.
    inside: bool = False

    @property
    def has_total_source(self) -> bool:
        return bool(self.env or self.power or any(
            s.context == "Chassis" and s.reading_type == "Power" for s in self.sensors))

    @property
    def reports_total(self) -> bool:
        return self.has_total_source and not self.inside

    def drop(self, paths: set[str]) -> None:
        """Forget resources that answered 404 right after discovery."""
        if self.env in paths:
            self.env = None
        if self.power in paths:
            self.power = None
        self.psus = [p for p in self.psus if p.metrics not in paths]
        self.sensors = [s for s in self.sensors if s.path not in paths]


@dataclass
class _Read:
    """What one chassis gave in one poll."""

    device: dict[str, float] = field(default_factory=dict)
    psus: list[tuple[str, str | None, dict[str, float]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    not_found: set[str] = field(default_factory=set)


def link(doc: Any, key: str) -> str | None:
    """`doc[key]["@odata.id"]` when it is there and a string."""
    value = doc.get(key) if isinstance(doc, dict) else None
    if isinstance(value, list):  # e.g. Links.ContainedBy in some implementations
        value = value[0] if value else None
    target = value.get("@odata.id") if isinstance(value, dict) else None
    return target if isinstance(target, str) and target else None


def _path(target: str) -> str:
    """The path of an @odata.id or Location (absolute URLs reduced to their path, so a
    token is only ever sent to the configured host)."""
    if "://" in target:
        parts = urlsplit(target)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
    return target.split("#", 1)[0]


class RedfishSource:
    """Polls one Redfish service. `poll` never raises for the device's fault."""

    def __init__(self, site: SiteSettings, device: Device, defaults: Defaults) -> None:
        if device.redfish is None:
            raise ValueError(f"device {device.name!r} has no redfish section")
        self.site, self.device = site, device
        self.config: RedfishConfig = device.redfish
        self.kind = device.kind or "server"
        self.timeout = request_timeout(self.config.timeout, device, defaults, DEFAULT_TIMEOUT)
        self.auth = self.config.auth_method
        self._tags = base_tags(site, device, self.kind)
        self._key = f"{site.name}/{device.name}"
        self._http: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = True
        self._token: str | None = None
        self._session_path: str | None = None
        self._sessions_path = DEFAULT_SESSIONS
        self._auth_lock = asyncio.Lock()
        self._expand = False
        self._plan: list[ChassisPlan] | None = None
        self._discovery_problems: list[str] = []
        self._logged: set[str] = set()
        # Counters for tests and diagnostics.
        self.discoveries = 0
        self.logins = 0

    # -- HTTP --------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._ssl = tls_option(self.config.verify_tls, self.config.ca_file)
            self._http = aiohttp.ClientSession(
                headers={"Accept": "application/json", "OData-Version": "4.0"},
                # BMCs are small computers: a few requests at a time.
                connector=aiohttp.TCPConnector(limit_per_host=4, ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._http

    def _url(self, path: str) -> URL:
        return URL(self.config.url + path, encoded=True)

    def _headers(self, token: str | None, authenticate: bool) -> dict[str, str] | None:
        if not authenticate:
            return None
        if token is not None:
            return {"X-Auth-Token": token}
        if self.auth == "basic" and self.config.username and self.config.password:
            return {"Authorization": basic_header(self.config.username, self.config.password.get_secret_value())}
        return None

    async def _get(self, path: str, authenticate: bool = True) -> dict[str, Any]:
        """GET one resource as a JSON object. SourceFailure (NotFound on 404) names the path."""
        http = self._client()
        what = f"GET {path}"
        status, reason, body = 0, "", b""
        for attempt in range(2):
            token = None
            if authenticate and self.auth == "session":
                token = self._token or await self._login()
            try:
                async with http.get(self._url(path), headers=self._headers(token, authenticate)) as resp:
                    status, reason = resp.status, resp.reason or ""
                    body = await resp.read()
            except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
                raise SourceFailure(f"{what}: {describe_failure(exc, self.timeout)}") from None
            if status == 401 and token is not None and attempt == 0:
                # The session expired (or the BMC dropped it): log in again, once.
                await self._renew(token)
                continue
            break
        if status == 404:
            raise NotFound(f"{what}: HTTP 404 Not Found")
        if status == 401:
            raise SourceFailure(f"{what}: HTTP 401 Unauthorized: check username and password"
                                if self.auth != "none" else f"{what}: HTTP 401 Unauthorized: "
                                "the service needs credentials (username, password)")
        if status >= 400:
            raise SourceFailure(f"{what}: HTTP {status} {reason}".rstrip() + error_detail(body))
        data = parse_json(body, what)
        if not isinstance(data, dict):
            raise SourceFailure(f"{what}: expected a JSON object, got {type(data).__name__}")
        return data

    async def _login(self) -> str:
        async with self._auth_lock:
            if self._token is not None:
                return self._token
            assert self.config.username is not None and self.config.password is not None
            path = self._sessions_path
            what = f"POST {path} (session login)"
            credentials = {"UserName": self.config.username,
                           "Password": self.config.password.get_secret_value()}
            try:
                async with self._client().post(self._url(path), json=credentials) as resp:
                    status, reason = resp.status, resp.reason or ""
                    body = await resp.read()
                    token = resp.headers.get("X-Auth-Token")
                    location = resp.headers.get("Location")
            except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
                raise SourceFailure(f"{what}: {describe_failure(exc, self.timeout)}") from None
            if status in (401, 403):
                raise SourceFailure(f"{what}: refused (HTTP {status}): check username and password")
            if status >= 400:
                raise SourceFailure(f"{what}: HTTP {status} {reason}".rstrip() + error_detail(body))
            if not token:
                raise SourceFailure(f"{what}: the reply has no X-Auth-Token header")
            if not location:
                try:
                    location = link({"s": parse_json(body, what)}, "s")
                except SourceFailure:
                    location = None
            self._token = token
            self._session_path = _path(location) if location else None
            self.logins += 1
            log.info("%s: Redfish session opened", self._key)
            return token

    async def _renew(self, stale: str) -> None:
        async with self._auth_lock:
            if self._token is not None and self._token != stale:
                return  # another request already renewed it
            self._token = None
            self._session_path = None  # an expired session needs no DELETE
        log.info("%s: Redfish session refused (expired?): logging in again", self._key)
        await self._login()

    async def _logout(self) -> None:
        if self._token is None or self._session_path is None or self._http is None:
            return
        token, path = self._token, self._session_path
        self._token = self._session_path = None
        try:
            async with self._http.delete(self._url(path), headers={"X-Auth-Token": token},
                                         timeout=aiohttp.ClientTimeout(total=min(self.timeout, 5.0))) as resp:
                await resp.read()
                if resp.status >= 400 and resp.status != 404:
                    log.info("%s: DELETE %s (session logout): HTTP %s", self._key, path, resp.status)
        except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
            log.info("%s: DELETE %s (session logout): %s", self._key, path, describe_failure(exc, self.timeout))

    async def close(self) -> None:
        """Delete the Redfish session (BMCs allow only a few at once) and close the client."""
        try:
            await self._logout()
        finally:
            if self._http is not None and not self._http.closed:
                await self._http.close()
            self._http = None

    # -- discovery ---------------------------------------------------------------------

    async def _members(self, path: str) -> list[str]:
        members: list[str] = []
        page: str | None = path
        for _ in range(MAX_PAGES):
            if page is None:
                break
            doc = await self._get(page)
            for member in doc.get("Members") or []:
                target = member.get("@odata.id") if isinstance(member, dict) else None
                if isinstance(target, str):
                    members.append(_path(target))
            nxt = doc.get("Members@odata.nextLink")
            page = _path(nxt) if isinstance(nxt, str) and nxt else None
        return members

    async def _root(self) -> dict[str, Any]:
        # The service root answers without authentication (DSP0266); some BMCs want it anyway.
        try:
            root = await self._get(f"{ROOT}/", authenticate=False)
        except SourceFailure as exc:
            if "HTTP 401" not in str(exc) or self.auth == "none":
                raise
            root = await self._get(f"{ROOT}/")
        sessions = link(root.get("Links") or {}, "Sessions")
        if sessions:
            self._sessions_path = _path(sessions)
        features = root.get("ProtocolFeaturesSupported")
        expand = features.get("ExpandQuery") if isinstance(features, dict) else None
        self._expand = isinstance(expand, dict) and expand.get("NoLinks") is True
        return root

    async def _discover(self) -> list[ChassisPlan]:
        self.discoveries += 1
        self._discovery_problems = []
        root = await self._root()
        collection = link(root, "Chassis")
        if collection is None:
            raise SourceFailure(f"GET {ROOT}/: the service root has no Chassis collection")
        paths = await self._members(_path(collection))
        docs = await asyncio.gather(*(self._get(p) for p in paths))
        plans = list(await asyncio.gather(*(self._plan_chassis(p, d) for p, d in zip(paths, docs))))
        self._assign_entities(plans)
        for plan in plans:
            offers = [name for name, on in (("EnvironmentMetrics", plan.env), ("Power (legacy)", plan.power))
                      if on]
            if plan.psus:
                offers.append(f"{len(plan.psus)} PSU metrics")
            if plan.sensors:
                offers.append(f"{len(plan.sensors)} power sensors")
            log.info("%s: Redfish chassis %s (entity %s): %s", self._key, plan.id, plan.entity,
                     ", ".join(offers) or "no power readings")
        return plans

    async def _plan_chassis(self, path: str, doc: dict[str, Any]) -> ChassisPlan:
        plan = ChassisPlan(
            id=str(doc.get("Id") or path.rstrip("/").rsplit("/", 1)[-1]),
            name=doc.get("Name") if isinstance(doc.get("Name"), str) else None,
            path=path,
            env=_opt_path(link(doc, "EnvironmentMetrics")),
            power=_opt_path(link(doc, "Power")),
            contained_by=_opt_path(link(doc.get("Links") or {}, "ContainedBy")),
        )
        subsystem = link(doc, "PowerSubsystem")
        sensors = link(doc, "Sensors")
        psus, power_sensors = await asyncio.gather(
            self._discover_psus(_path(subsystem)) if subsystem else _empty(),
            self._discover_sensors(_path(sensors)) if sensors else _empty(),
        )
        plan.psus, plan.sensors = psus, power_sensors
        return plan

    async def _discover_psus(self, subsystem: str) -> list[Psu]:
        doc = await self._get(subsystem)
        collection = link(doc, "PowerSupplies")
        if collection is None:
            return []
        members = await self._members(_path(collection))
        supplies = await asyncio.gather(*(self._get(m) for m in members))
        psus = []
        for member, supply in zip(members, supplies):
            state = (supply.get("Status") or {}).get("State") if isinstance(supply.get("Status"), dict) else None
            metrics = link(supply, "Metrics")
            if metrics and state != "Absent":
                psus.append(Psu(id=str(supply.get("Id") or member.rsplit("/", 1)[-1]),
                                name=supply.get("Name") if isinstance(supply.get("Name"), str) else None,
                                metrics=_path(metrics)))
        return psus

    async def _discover_sensors(self, collection: str) -> list[PowerSensor]:
        """The collection's Power and EnergykWh sensors for a chassis or a power supply.
        Read whole once (expanded where the service offers it); polled one by one."""
        doc = None
        if self._expand:
            try:
                doc = await self._get(f"{collection}?$expand=.")
            except SourceFailure:
                doc = None  # the service advertised $expand but refused it: go one by one
        if doc is None:
            doc = await self._get(collection)
        items = [m for m in doc.get("Members") or [] if isinstance(m, dict)]
        # An expanded member carries the sensor's properties; a plain one only its link.
        expanded = [m for m in items if set(m) - {"@odata.id"}]
        todo = [_path(m["@odata.id"]) for m in items
                if not set(m) - {"@odata.id"} and isinstance(m.get("@odata.id"), str)]
        fetched = await asyncio.gather(*(self._get(p) for p in todo), return_exceptions=True)
        for path, result in zip(todo, fetched):
            if isinstance(result, SourceFailure):
                self._discovery_problems.append(f"sensor skipped: {result}")
            elif isinstance(result, BaseException):
                raise result
            else:
                result.setdefault("@odata.id", path)
                expanded.append(result)
        sensors = []
        for s in expanded:
            # ReadingType, or where a service leaves it out, what its unit says.
            kind = s.get("ReadingType") or _UNIT_TYPES.get(s.get("ReadingUnits"))
            context = s.get("PhysicalContext")
            if (kind not in ("Power", "EnergykWh") or context not in ("Chassis", "PowerSupply")
                    or not isinstance(s.get("@odata.id"), str)):
                continue
            related = None
            for item in s.get("RelatedItem") or []:
                target = item.get("@odata.id") if isinstance(item, dict) else None
                if isinstance(target, str) and "/PowerSupplies/" in target:
                    related = target.rstrip("/").rsplit("/", 1)[-1]
            sensors.append(PowerSensor(path=_path(s["@odata.id"]), id=str(s.get("Id") or s["@odata.id"]),
                                       reading_type=kind, context=context,
                                       total=s.get("ElectricalContext") == "Total", related=related))
        # Among several, a sensor of the total (ElectricalContext Total) comes first.
        sensors.sort(key=lambda s: (not s.total, s.path))
        return sensors

    @staticmethod
    def _assign_entities(plans: list[ChassisPlan]) -> None:
        """Which chassis give the device's power rows, and under which entity.

        A chassis inside (Links.ContainedBy, at any depth) another chassis with a power
        source gives no device row: its power is part of the outer one's. Of the rest
        with a power source, one alone is entity `total`; several (sibling nodes, whose
        power adds up) each report under their chassis Id."""
        by_path = {p.path: p for p in plans}
        candidates = {p.path for p in plans if p.has_total_source}

        def contained(plan: ChassisPlan) -> bool:
            seen: set[str] = set()
            parent = plan.contained_by
            while parent and parent not in seen and parent in by_path:
                if parent in candidates:
                    return True
                seen.add(parent)
                parent = by_path[parent].contained_by
            return False

        for plan in plans:
            plan.inside = contained(plan)
        roots = [p for p in plans if p.reports_total]
        for plan in plans:
            plan.entity = "total" if len(roots) == 1 and plan is roots[0] else plan.id
        # Power supplies of several chassis could share Ids: prefix them with the chassis.
        if sum(1 for p in plans if p.psus or p.power) > 1:
            for plan in plans:
                plan.psu_prefix = True
                for psu in plan.psus:
                    psu.id = f"{plan.id}/{psu.id}"

    # -- reading -----------------------------------------------------------------------

    async def _fetch(self, path: str, read: _Read) -> dict[str, Any] | None:
        try:
            return await self._get(path)
        except NotFound as exc:
            read.not_found.add(path)
            read.failures.append(str(exc))
        except SourceFailure as exc:
            read.failures.append(str(exc))
        return None

    @classmethod
    def _reading(cls, doc: dict[str, Any], key: str, where: str, read: _Read) -> float | None:
        """doc[key].Reading as a number (None when the service has none now)."""
        holder = doc.get(key)
        if not isinstance(holder, dict):
            return None
        return cls._value(holder, "Reading", f"{where} {key}.Reading", read)

    @staticmethod
    def _value(doc: dict[str, Any], key: str, where: str, read: _Read) -> float | None:
        """doc[key] as a reading: None when absent or null; a problem when not a
        number or negative (a power or energy reading never is)."""
        if doc.get(key) is None:
            return None
        try:
            value = number(doc[key], where)
        except SourceFailure as exc:
            read.problems.append(str(exc))
            return None
        if value < 0:
            read.problems.append(f"{where}: negative ({value:g}), refused")
            return None
        return value

    async def _read_chassis(self, plan: ChassisPlan) -> _Read:
        read = _Read()
        total = plan.reports_total
        # 1. The new schema: EnvironmentMetrics and the power supplies' Metrics.
        env_doc, *psu_docs = await asyncio.gather(
            self._fetch(plan.env, read) if plan.env and total else _none(),
            *(self._fetch(p.metrics, read) for p in plan.psus),
        )
        if env_doc is not None:
            for key, name in (("PowerWatts", "watts"), ("EnergykWh", "energy_kwh")):
                value = self._reading(env_doc, key, plan.env or "", read)
                if value is not None:
                    read.device[name] = value
        for psu, doc in zip(plan.psus, psu_docs):
            if doc is None:
                continue
            fields: dict[str, float] = {}
            for key, name in (("InputPowerWatts", "watts"), ("EnergykWh", "energy_kwh"),
                              ("InputVoltage", "volts"), ("InputCurrentAmps", "amps")):
                value = self._reading(doc, key, psu.metrics, read)
                if value is not None:
                    fields[name] = value
            if "watts" in fields or "energy_kwh" in fields:
                read.psus.append((psu.id, psu.name, fields))

        # 2. Sensors, for what is still missing.
        need_watts = total and "watts" not in read.device
        need_energy = total and "energy_kwh" not in read.device
        wanted = [s for s in plan.sensors
                  if (s.context == "Chassis" and ((s.reading_type == "Power" and need_watts)
                                                   or (s.reading_type == "EnergykWh" and need_energy)))
                  or (s.context == "PowerSupply" and not plan.psus)]
        if wanted:
            docs = await asyncio.gather(*(self._fetch(s.path, read) for s in wanted))
            sensor_psus: dict[str, dict[str, float]] = {}
            for sensor, doc in zip(wanted, docs):
                if doc is None:
                    continue
                value = self._value(doc, "Reading", f"{sensor.path} Reading", read)
                if value is None:
                    continue
                name = "watts" if sensor.reading_type == "Power" else "energy_kwh"
                if sensor.context == "Chassis":
                    read.device.setdefault(name, value)
                else:
                    sensor_psus.setdefault(sensor.related or sensor.id, {}).setdefault(name, value)
            prefix = f"{plan.id}/" if plan.psu_prefix else ""
            read.psus.extend((prefix + entity, None, fields) for entity, fields in sensor_psus.items())

        # 3. The legacy Power resource, when the new schema left the total or the PSUs empty.
        need_psus = not plan.psus and not any(s.context == "PowerSupply" for s in plan.sensors)
        if plan.power and ((total and "watts" not in read.device) or need_psus):
            doc = await self._fetch(plan.power, read)
            if doc is not None:
                self._read_legacy(plan, doc, read, total, need_psus)
        return read

    def _read_legacy(self, plan: ChassisPlan, doc: dict[str, Any], read: _Read, total: bool,
                     need_psus: bool) -> None:
        where = plan.power or ""
        if total and "watts" not in read.device:
            controls = [c for c in doc.get("PowerControl") or [] if isinstance(c, dict)
                        and c.get("PhysicalContext") not in COMPONENT_CONTEXTS]
            for control in controls:
                value = self._legacy_number(control, "PowerConsumedWatts", where, read)
                if value is None and isinstance(control.get("PowerMetrics"), dict):
                    # No instantaneous reading: the average over IntervalInMin.
                    value = self._legacy_number(control["PowerMetrics"], "AverageConsumedWatts", where, read)
                if value is not None:
                    read.device["watts"] = value
                    break
        if need_psus:
            for index, supply in enumerate(doc.get("PowerSupplies") or []):
                if not isinstance(supply, dict):
                    continue
                # Input watts only: LastPowerOutputWatts is the output, after the PSU's losses.
                watts = self._legacy_number(supply, "PowerInputWatts", where, read)
                if watts is None:
                    continue
                fields = {"watts": watts}
                volts = self._legacy_number(supply, "LineInputVoltage", where, read)
                if volts is not None:
                    fields["volts"] = volts
                entity = str(supply.get("MemberId") or index)
                if plan.psu_prefix:
                    entity = f"{plan.id}/{entity}"
                read.psus.append((entity, supply.get("Name") if isinstance(supply.get("Name"), str) else None,
                                  fields))

    @classmethod
    def _legacy_number(cls, doc: dict[str, Any], key: str, where: str, read: _Read) -> float | None:
        return cls._value(doc, key, f"{where} {key}", read)

    async def _read_all(self, plans: list[ChassisPlan]) -> list[_Read]:
        results = await asyncio.gather(*(self._read_chassis(p) for p in plans), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)  # type: ignore[arg-type]

    # -- polling -----------------------------------------------------------------------

    async def poll(self) -> PollResult:
        time_ns = time.time_ns()
        try:
            result = await self._poll(time_ns)
        except SourceFailure as exc:
            result = PollResult(error=str(exc))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # Valid JSON of an unexpected shape: the device's fault, not a crash.
            log.debug("%s: unexpected Redfish reply", self._key, exc_info=True)
            result = PollResult(error=f"unexpected Redfish reply: {type(exc).__name__}: {exc}")
        # No message may carry a credential, whatever a service echoes back.
        hidden = [self.config.password.get_secret_value()] if self.config.password else []
        hidden += [self._token] if self._token else []
        result.problems = [scrub(p, hidden) for p in result.problems]
        if result.error:
            result.error = scrub(result.error, hidden)
        self._log_new(result.problems)
        return result

    async def _poll(self, time_ns: int) -> PollResult:
        fresh = False
        if self._plan is None:
            self._plan = await self._discover()
            fresh = True
        plans = self._plan
        reads = await self._read_all(plans)
        if not fresh and any(r.not_found for r in reads):
            # A path went away (firmware update, hot-plugged PSU): discover again, read again.
            log.info("%s: %s: discovering again", self._key,
                     next(f for r in reads for f in r.failures if "404" in f))
            self._plan = plans = await self._discover()
            reads = await self._read_all(plans)
        gone = {p for r in reads for p in r.not_found}
        if gone:
            # 404 right after discovery: not there at all; stop asking until the next discovery.
            for plan in plans:
                plan.drop(gone)

        samples: list[Sample] = []
        problems = list(self._discovery_problems)
        errors: list[str] = []
        for plan, read in zip(plans, reads):
            problems.extend(read.problems)
            if read.device.get("watts") is None and plan.reports_total:
                if read.failures:
                    errors.extend(read.failures)
                else:
                    problems.append(f"chassis {plan.id}: no power reading offered now")
            else:
                problems.extend(read.failures)
            if read.device:
                samples.append(Sample(POWER, entity_tags(self._tags, "device", plan.entity, plan.name),
                                      dict(read.device), time_ns))
            for entity, label, fields in read.psus:
                samples.append(Sample(POWER, entity_tags(self._tags, "psu", entity, label), fields, time_ns))
        if errors:
            more = f" (and {len(errors) - 1} more failed requests)" if len(errors) > 1 else ""
            return PollResult(problems=problems, error=errors[0] + more)
        if not any(p.reports_total or p.psus for p in plans):
            return PollResult(problems=problems, error=(
                "no chassis offers power readings (no EnvironmentMetrics, PowerSubsystem, "
                "power Sensors or Power resource under /redfish/v1/Chassis)"))
        return PollResult(samples=samples, problems=problems)

    def _log_new(self, problems: list[str]) -> None:
        for problem in problems:
            if problem not in self._logged:
                self._logged.add(problem)
                log.warning("%s: %s", self._key, problem)


def _opt_path(target: str | None) -> str | None:
    return _path(target) if target else None


async def _empty() -> list:
    return []


async def _none() -> None:
    return None
