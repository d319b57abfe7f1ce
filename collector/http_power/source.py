"""HttpPowerSource: one plug or meter as a source of power readings: its client
(client.py) fetches, the parser of its type (parsers.py) reads."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from collector.config import Defaults, Device, HttpPowerConfig
from greenwatch.core.config import SiteSettings
from greenwatch.core.http import Redactor
from greenwatch.core.schema import POWER, Sample

from ..http_common import SourceFailure, request_timeout
from ..source import PollResult
from ..tags import base_tags, entity_tags
from .client import PlugClient
from .parsers import Row, json_meter, shelly_switch, tasmota_status8, with_total

DEFAULT_TIMEOUT = 5.0


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
        self.client = PlugClient(self.config, self.timeout)

    @property
    def redactor(self) -> Redactor:
        return self.client.redactor

    async def close(self) -> None:
        await self.client.close()

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
            return PollResult(error=self.redactor(str(exc)))
        samples = [Sample(POWER, entity_tags(self._tags, scope, entity), fields, time_ns)
                   for scope, entity, fields in rows if fields]
        if not samples and not problems:
            # e.g. Tasmota's {"StatusSNS": {"ENERGY": {}}}: answered, but said nothing.
            return PollResult(error="the reply has no readings (every value null or missing)")
        return PollResult(samples=samples, problems=[self.redactor(p) for p in problems])

    async def _shelly(self) -> tuple[list[Row], list[str]]:
        ids = self.config.channels or [0]
        url = f"{self.config.url}/rpc/Switch.GetStatus"
        replies = await asyncio.gather(
            *(self.client.get_json(f"GET /rpc/Switch.GetStatus?id={i}", url, {"id": str(i)}) for i in ids),
            return_exceptions=True,
        )
        problems: list[str] = []
        channels = []
        for i, reply in zip(ids, replies):
            if isinstance(reply, BaseException):
                raise reply
            channels.append((str(i), shelly_switch(i, reply, problems)))
        return with_total(channels), problems

    async def _tasmota(self) -> tuple[list[Row], list[str]]:
        cfg = self.config
        params = {"cmnd": "Status 8"}
        if cfg.password is not None:
            params = {"user": cfg.username or "admin", "password": cfg.password.get_secret_value(), **params}
        return tasmota_status8(await self.client.get_json("GET /cm?cmnd=Status 8", f"{cfg.url}/cm", params))

    async def _json(self) -> tuple[list[Row], list[str]]:
        cfg = self.config
        assert cfg.fields
        what = f"GET {urlsplit(cfg.url).path or '/'}"
        return json_meter(await self.client.get_json(what, cfg.url), cfg.fields, what)
