"""Smart plugs and meters over HTTP: Shelly Gen2+, Tasmota, and any JSON API by a path map.

One `HttpPowerSource` per device, one aiohttp session per source reused across polls.
What is read (docs/sources.md has the full reference):

* shelly: `GET /rpc/Switch.GetStatus?id=N` per configured channel (default 0):
  `apower` W, `aenergy.total` Wh (-> kWh), `voltage` V, `current` A, `pf`.
  Digest auth (SHA-256, user `admin`) when a password is configured.
* tasmota: `GET /cm?cmnd=Status 8`: `StatusSNS.ENERGY.Power` W, `Total` kWh,
  `Voltage`, `Current`, `ApparentPower` VA, `Factor`; `user`/`password` query
  parameters when a password is configured. Multi-channel devices report arrays.
* json: `GET url`; each configured field read at its path and converted from its unit.

One channel gives one row, scope `device`, entity `total`. Several channels give one
row per channel (scope `outlet`, entity = the channel's id as the device numbers it)
plus the device row summing them.

This module also holds the HTTP plumbing the Redfish source shares (TLS options,
failure messages, number checks).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from collector.config import Defaults, Device, HttpPowerConfig
from greenwatch.core.config import SiteSettings
from greenwatch.core.schema import FIELDS, POWER, Sample
from greenwatch.core.units import UNITS

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

log = logging.getLogger("greenwatch.http")

DEFAULT_TIMEOUT = 5.0
# Schema unit of each power field (the unit whose factor is 1 for its dimension).
_SCHEMA_UNIT = {"power": "W", "energy": "kWh", "apparent_power": "VA", "current": "A",
                "voltage": "V", "ratio": "ratio"}


_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")


def at_path(data: Any, path: str) -> Any:
    """The value at a dotted path (`a.b.0.c` or `a.b[0].c`), or KeyError naming the
    first part that is not there."""
    node = data
    walked: list[str] = []
    for raw in _PATH_PART.findall(path):
        part = raw[1:-1] if raw.startswith("[") else raw
        walked.append(part)
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(".".join(walked))
    return node


# -- the source ------------------------------------------------------------------------

class HttpPowerSource:
    """Polls one HTTP plug or meter. `poll` never raises for the device's fault."""

    def __init__(self, site: SiteSettings, device: Device, defaults: Defaults) -> None:
        if device.http is None:
            raise ValueError(f"device {device.name!r} has no http section")
        self.site, self.device = site, device
        self.config: HttpPowerConfig = device.http
        self.kind = device.kind or ("meter" if self.config.type == "json" else "plug")
        self.timeout = request_timeout(self.config.timeout, device, defaults, DEFAULT_TIMEOUT)
        self._tags = base_tags(site, device, self.kind)
        self._http: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool | None = None

    # -- plumbing ----------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            cfg = self.config
            self._ssl = tls_option(cfg.verify_tls, cfg.ca_file)
            headers = {"Accept": "application/json"}
            headers.update({k: v.get_secret_value() for k, v in cfg.headers.items()})
            middlewares: tuple = ()
            if cfg.type == "shelly" and cfg.password is not None:
                try:
                    from aiohttp import DigestAuthMiddleware
                except ImportError:  # aiohttp < 3.12
                    raise SourceFailure("Shelly digest authentication needs aiohttp 3.12 or later") from None
                middlewares = (DigestAuthMiddleware(cfg.username or "admin", cfg.password.get_secret_value()),)
            elif cfg.type == "json":
                if cfg.token is not None:
                    headers["Authorization"] = f"Bearer {cfg.token.get_secret_value()}"
                elif cfg.username is not None and cfg.password is not None:
                    headers["Authorization"] = basic_header(cfg.username, cfg.password.get_secret_value())
            self._http = aiohttp.ClientSession(
                headers=headers,
                middlewares=middlewares,
                connector=aiohttp.TCPConnector(limit_per_host=4, ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._http

    async def _get_json(self, what: str, url: str, params: dict[str, str] | None = None) -> Any:
        """GET and parse; `what` names the request in messages (no credentials in it)."""
        http = self._session()
        target = URL(url)
        if params:
            # Spaces as %20, not '+': what Tasmota's documentation writes (cmnd=Status%208).
            query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
            target = URL(f"{url}?{query}", encoded=True)
        try:
            async with http.get(target) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise SourceFailure(f"{what}: HTTP {resp.status} {resp.reason or ''}".rstrip()
                                        + error_detail(body))
        except SourceFailure:
            raise
        except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
            raise SourceFailure(f"{what}: {describe_failure(exc, self.timeout)}") from None
        return parse_json(body, what)

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None

    # -- polling -----------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        cfg = self.config
        values = [v.get_secret_value() for v in (cfg.password, cfg.token) if v is not None]
        return values + [v.get_secret_value() for v in cfg.headers.values()]

    async def poll(self) -> PollResult:
        time_ns = time.time_ns()
        try:
            if self.config.type == "shelly":
                rows, problems = await self._shelly()
            elif self.config.type == "tasmota":
                rows, problems = await self._tasmota()
            else:
                rows, problems = await self._json()
        except SourceFailure as exc:
            return PollResult(error=scrub(str(exc), self._secrets()))
        samples = [Sample(POWER, entity_tags(self._tags, scope, entity), fields, time_ns)
                   for scope, entity, fields in rows if fields]
        return PollResult(samples=samples, problems=[scrub(p, self._secrets()) for p in problems])

    @staticmethod
    def _with_total(channels: list[tuple[str, dict[str, float]]]) -> list[tuple[str, str, dict[str, float]]]:
        """One channel: the device row. Several: a row per outlet plus their sum."""
        if len(channels) == 1:
            return [("device", "total", channels[0][1])]
        rows = [("outlet", entity, fields) for entity, fields in channels]
        total: dict[str, float] = {}
        for name in ("watts", "energy_kwh", "va", "amps"):
            values = [fields[name] for _, fields in channels if name in fields]
            # A sum over some channels only would be wrong, not partial: leave it out.
            if values and len(values) == len(channels):
                total[name] = sum(values)
        return [("device", "total", total), *rows]

    async def _shelly(self) -> tuple[list, list[str]]:
        ids = self.config.channels or [0]
        url = f"{self.config.url}/rpc/Switch.GetStatus"
        replies = await asyncio.gather(
            *(self._get_json(f"GET /rpc/Switch.GetStatus?id={i}", url, {"id": str(i)}) for i in ids),
            return_exceptions=True,
        )
        channels: list[tuple[str, dict[str, float]]] = []
        problems: list[str] = []
        for i, reply in zip(ids, replies):
            if isinstance(reply, BaseException):
                raise reply
            what = f"Switch {i}"
            if not isinstance(reply, dict):
                raise SourceFailure(f"{what}: expected a JSON object, got {type(reply).__name__}")
            if "apower" not in reply and "aenergy" not in reply:
                if "message" in reply:  # an RPC error object: {"code": -105, "message": ...}
                    raise SourceFailure(f"{what}: {reply['message']} (code {reply.get('code')})")
                raise SourceFailure(f"{what} has no power meter (no apower in its status)")
            fields: dict[str, float] = {}
            for key, name, factor in (("apower", "watts", 1.0), ("voltage", "volts", 1.0),
                                      ("current", "amps", 1.0), ("pf", "power_factor", 1.0)):
                if reply.get(key) is not None:
                    try:
                        fields[name] = number(reply[key], f"{what}.{key}") * factor
                    except SourceFailure as exc:
                        problems.append(str(exc))
            energy = reply.get("aenergy")
            if isinstance(energy, dict) and energy.get("total") is not None:
                try:  # Wh -> kWh
                    fields["energy_kwh"] = number(energy["total"], f"{what}.aenergy.total") / 1000.0
                except SourceFailure as exc:
                    problems.append(str(exc))
            if "power_factor" in fields:
                fields["power_factor"] = abs(fields["power_factor"])
            channels.append((str(i), fields))
        return self._with_total(channels), problems

    async def _tasmota(self) -> tuple[list, list[str]]:
        cfg = self.config
        params = {"cmnd": "Status 8"}
        if cfg.password is not None:
            params = {"user": cfg.username or "admin", "password": cfg.password.get_secret_value(), **params}
        reply = await self._get_json("GET /cm?cmnd=Status 8", f"{cfg.url}/cm", params)
        if not isinstance(reply, dict):
            raise SourceFailure(f"Status 8: expected a JSON object, got {type(reply).__name__}")
        energy = (reply.get("StatusSNS") or {}).get("ENERGY") if isinstance(reply.get("StatusSNS"), dict) else None
        if not isinstance(energy, dict):
            said = reply.get("WARNING") or reply.get("Command")
            hint = f" (device says: {said})" if said else " (is energy monitoring on this device?)"
            raise SourceFailure(f"Status 8: reply has no StatusSNS.ENERGY{hint}")
        keys = (("Power", "watts"), ("Total", "energy_kwh"), ("ApparentPower", "va"),
                ("Voltage", "volts"), ("Current", "amps"), ("Factor", "power_factor"))
        # Multi-channel devices (e.g. a Shelly 2.5 on Tasmota) give lists, one per channel;
        # values they measure once (voltage, often Total) stay scalars and apply to all.
        width = max((len(energy[k]) for k, _ in keys if isinstance(energy.get(k), list)), default=0)
        problems: list[str] = []

        def value(key: str, index: int | None) -> float | None:
            raw = energy.get(key)
            if isinstance(raw, list):
                if index is None or index >= len(raw):
                    return None
                raw, where = raw[index], f"ENERGY.{key}[{index}]"
            else:
                where = f"ENERGY.{key}"
            if raw is None:
                return None
            try:
                return number(raw, where)
            except SourceFailure as exc:
                problems.append(str(exc))
                return None

        if width == 0:
            fields = {name: v for key, name in keys if (v := value(key, None)) is not None}
            return [("device", "total", fields)], problems
        channels: list[tuple[str, dict[str, float]]] = []
        for index in range(width):
            fields = {}
            for key, name in keys:
                if not isinstance(energy.get(key), list) and name in ("energy_kwh", "watts", "va", "amps"):
                    continue  # a device-wide figure: on the device row, not each channel's
                v = value(key, index)
                if v is not None:
                    fields[name] = v
            channels.append((str(index + 1), fields))  # Tasmota numbers channels from 1 (POWER1)
        rows = self._with_total(channels)
        device_fields = rows[0][2]
        for key, name in keys:  # device-wide scalars (e.g. one Total for all channels)
            if not isinstance(energy.get(key), list) and name in ("energy_kwh", "watts", "va", "amps"):
                v = value(key, None)
                if v is not None:
                    device_fields[name] = v
        return rows, problems

    async def _json(self) -> tuple[list, list[str]]:
        cfg = self.config
        assert cfg.fields
        reply = await self._get_json(f"GET {_path_of(cfg.url)}", cfg.url)
        fields: dict[str, float] = {}
        problems: list[str] = []
        for name, spec in cfg.fields.items():
            unit = spec.unit or _SCHEMA_UNIT[FIELDS[POWER][name]]
            try:
                raw = at_path(reply, spec.path)
            except KeyError as exc:
                problems.append(f"{name}: no {exc.args[0]} in the reply (path {spec.path})")
                continue
            if raw is None:
                continue
            try:
                fields[name] = number(raw, f"{name} at {spec.path}", allow_text=True) * UNITS[unit][1]
            except SourceFailure as exc:
                problems.append(str(exc))
        if "watts" not in fields and "energy_kwh" not in fields:
            detail = "; ".join(problems) or "both null"
            raise SourceFailure(f"GET {_path_of(cfg.url)}: no watts or energy_kwh in the reply ({detail})")
        return [("device", "total", fields)], problems


def _path_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"
