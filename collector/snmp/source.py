"""One SNMP device as a source of readings: profile + engine + reader."""

from __future__ import annotations

import asyncio
import logging
import time

from collector.config import Defaults, Device
from greenwatch.core.config import SiteSettings

from ..profiles import Profile, ProfileSet
from ..source import PollResult
from ..tags import base_tags
from .engine import SnmpEngine, SnmpError, Target
from .reader import Reader

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
# Scalars per GET request: small enough that no agent answers tooBig.
GET_CHUNK = 32

log = logging.getLogger("greenwatch.snmp")


def make_target(device: Device, defaults: Defaults, max_repetitions: int | None = None) -> Target:
    assert device.snmp is not None
    snmp = device.snmp
    host, port = device.host_port(161)

    def secret(value: object) -> str | None:
        return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]

    return Target(
        host=host,
        port=port,
        version=snmp.version,
        community=secret(snmp.community),
        user=snmp.user,
        auth_protocol=snmp.auth_protocol,
        auth_key=secret(snmp.auth_key),
        priv_protocol=snmp.priv_protocol,
        priv_key=secret(snmp.priv_key),
        context=snmp.context,
        timeout=device.timeout or defaults.timeout,
        retries=device.retries if device.retries is not None else defaults.retries,
        max_repetitions=snmp.max_repetitions or max_repetitions or defaults.max_repetitions,
    )


class SnmpSource:
    """Polls one device. The profile is the configured one, or the one matching the
    device's sysObjectID (looked up on the first successful poll)."""

    def __init__(self, site: SiteSettings, device: Device, defaults: Defaults, engine: SnmpEngine,
                 profiles: ProfileSet, profile: Profile | None = None) -> None:
        self.site, self.device, self.defaults = site, device, defaults
        self.engine = engine
        self.profiles = profiles
        self.target = make_target(device, defaults)
        self.reader: Reader | None = None
        self.kind = device.kind or "host"
        if profile is not None:
            self._use(profile)

    def _use(self, profile: Profile) -> None:
        self.kind = self.device.kind or profile.kind or "host"
        self.reader = Reader(profile, base_tags(self.site, self.device, self.kind))
        if profile.max_repetitions and not (self.device.snmp and self.device.snmp.max_repetitions):
            self.target = make_target(self.device, self.defaults, profile.max_repetitions)

    async def _match_profile(self) -> str | None:
        values = await self.engine.get(self.target, [SYS_OBJECT_ID])
        var = values.get(SYS_OBJECT_ID)
        if var is None:
            return "device has no sysObjectID: set profile: in the config"
        profile = self.profiles.match(str(var.value))
        if profile is None:
            return f"no profile matches sysObjectID {var.value}: set profile: in the config or add one"
        log.info("%s/%s: sysObjectID %s matches profile %s", self.site.name, self.device.name,
                 var.value, profile.name)
        self._use(profile)
        return None

    async def poll(self) -> PollResult:
        try:
            if self.reader is None:
                error = await self._match_profile()
                if error:
                    return PollResult(error=error)
            assert self.reader is not None
            profile = self.reader.profile
            time_ns = time.time_ns()
            oids = list(profile.scalar_oids)
            chunks = [oids[i : i + GET_CHUNK] for i in range(0, len(oids), GET_CHUNK)]
            replies = await asyncio.gather(
                *(self.engine.get(self.target, chunk) for chunk in chunks),
                *(self.engine.walk(self.target, group) for group in profile.tables),
            )
            scalars: dict = {}
            columns: dict = {}
            for reply in replies[: len(chunks)]:
                scalars.update(reply)
            for reply in replies[len(chunks) :]:
                columns.update(reply)
            samples, problems = self.reader.read(scalars, columns, time_ns)
        except SnmpError as exc:
            return PollResult(error=str(exc))
        # Problems are logged (once each) by collector.source.Guarded, like every source's.
        return PollResult(samples=samples, problems=problems)

    async def close(self) -> None:
        """Nothing of its own to close: the engine is shared and closed by its owner."""
