"""RedfishSource: one server's BMC as a source of power readings. Discovery
(discovery.py) is cached and redone when a path goes away; each poll reads every
chassis (readings.py) through the service's client (client.py) and turns what it
read into samples, problems and the poll's error."""

from __future__ import annotations

import asyncio
import logging
import time

from collector.config import Defaults, Device, RedfishConfig
from greenwatch.core.config import SiteSettings
from greenwatch.core.http import Redactor
from greenwatch.core.schema import POWER, Sample

from ..http_common import SourceFailure, request_timeout
from ..source import PollResult
from ..tags import base_tags, entity_tags
from .client import RedfishClient
from .discovery import ChassisPlan, Discovery
from .readings import ChassisRead, read_chassis

log = logging.getLogger("greenwatch.redfish")

DEFAULT_TIMEOUT = 10.0


class RedfishSource:
    """Polls one Redfish service. `poll` never raises for the device's fault."""

    def __init__(self, site: SiteSettings, device: Device, defaults: Defaults) -> None:
        if device.redfish is None:
            raise ValueError(f"device {device.name!r} has no redfish section")
        self.site, self.device = site, device
        self.config: RedfishConfig = device.redfish
        self.kind = device.kind or "server"
        self.timeout = request_timeout(self.config.timeout, device, defaults, DEFAULT_TIMEOUT)
        self._tags = base_tags(site, device, self.kind)
        self._key = f"{site.name}/{device.name}"
        self.client = RedfishClient(self.config, self.timeout, self._key)
        self._plan: list[ChassisPlan] | None = None
        self._discovery_problems: list[str] = []
        self.discoveries = 0  # for tests and diagnostics

    @property
    def redactor(self) -> Redactor:
        """The credentials and session tokens this source has sent."""
        return self.client.http.redactor

    @property
    def logins(self) -> int:
        return self.client.logins

    async def close(self) -> None:
        await self.client.close()

    async def _discover(self) -> list[ChassisPlan]:
        self.discoveries += 1
        discovery = Discovery(self.client, self._key)
        plans = await discovery.run()
        self._discovery_problems = discovery.problems
        return plans

    async def _read_all(self, plans: list[ChassisPlan]) -> list[ChassisRead]:
        return list(await asyncio.gather(*(read_chassis(p, self.client.get) for p in plans)))

    async def poll(self) -> PollResult:
        time_ns = time.time_ns()
        try:
            result = await self._poll(time_ns)
        except SourceFailure as exc:
            result = PollResult(error=str(exc))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # Valid JSON of an unexpected shape: the device's fault, not a crash. (No
            # traceback logged: its text may quote the reply.)
            result = PollResult(error=f"unexpected Redfish reply: {type(exc).__name__}: {str(exc)[:200]}")
        # Redacted here too, not only by Guarded: a test or tool may poll this source bare.
        result.problems = [self.redactor(p) for p in result.problems]
        if result.error:
            result.error = self.redactor(result.error)
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
