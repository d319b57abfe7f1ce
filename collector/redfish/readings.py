"""Redfish JSON -> power readings, per chassis and poll, in order of preference; a
later resource is asked only for what an earlier one left empty, so nothing is
counted twice:

* chassis watts (scope `device`): `EnvironmentMetrics.PowerWatts`, else a `Chassis`
  power sensor, else legacy `PowerControl[].PowerConsumedWatts` of the first
  whole-system entry (else its `PowerMetrics.AverageConsumedWatts`).
* chassis energy: `EnvironmentMetrics.EnergykWh`, else a `Chassis` energy sensor.
* power supplies (scope `psu`): `PowerSubsystem` supplies' `Metrics`
  (`InputPowerWatts`, `EnergykWh`, `InputVoltage`, `InputCurrentAmps`), else
  `PowerSupply` sensors, else legacy `PowerSupplies[].PowerInputWatts`.

Values are taken as the service gives them when they are finite numbers; whether they
are physically possible is decided for every source in one place
(greenwatch.core.schema.BOUNDS, applied by collector.source.Guarded).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..http_common import SourceFailure, number
from .client import NotFound
from .discovery import ChassisPlan, ident

# PowerControl entries (and sensors) about one component, not the whole system:
# taking one of those as the chassis total would undercount it.
COMPONENT_CONTEXTS = frozenset({
    "CPU", "CPUSubsystem", "Memory", "MemorySubsystem", "StorageDevice", "StorageBay",
    "GPU", "GPUSubsystem", "Accelerator", "ASIC", "FPGA", "NetworkingDevice", "NetworkBay",
    "Fan", "Backplane", "VoltageRegulator", "Transceiver", "Exhaust", "Battery", "Board",
})

Getter = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass
class ChassisRead:
    """What one chassis gave in one poll."""

    device: dict[str, float] = field(default_factory=dict)
    psus: list[tuple[str, str | None, dict[str, float]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    not_found: set[str] = field(default_factory=set)

    def value(self, doc: dict[str, Any], key: str, where: str) -> float | None:
        """doc[key] as a reading: None when absent or null; a problem when not a
        finite number."""
        if doc.get(key) is None:
            return None
        try:
            return number(doc[key], where)
        except SourceFailure as exc:
            self.problems.append(str(exc))
            return None

    def reading(self, doc: dict[str, Any], key: str, where: str) -> float | None:
        """doc[key].Reading as a number (None when the service has none now)."""
        holder = doc.get(key)
        if not isinstance(holder, dict):
            return None
        return self.value(holder, "Reading", f"{where} {key}.Reading")


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def environment(doc: dict[str, Any], where: str, read: ChassisRead) -> None:
    for key, name in (("PowerWatts", "watts"), ("EnergykWh", "energy_kwh")):
        value = read.reading(doc, key, where)
        if value is not None:
            read.device[name] = value


def psu_metrics(doc: dict[str, Any], where: str, read: ChassisRead) -> dict[str, float]:
    fields: dict[str, float] = {}
    for key, name in (("InputPowerWatts", "watts"), ("EnergykWh", "energy_kwh"),
                      ("InputVoltage", "volts"), ("InputCurrentAmps", "amps")):
        value = read.reading(doc, key, where)
        if value is not None:
            fields[name] = value
    return fields


def legacy(plan: ChassisPlan, doc: dict[str, Any], read: ChassisRead, total: bool, need_psus: bool) -> None:
    """The legacy Power resource's chassis watts and power supplies."""
    where = plan.power or ""
    if total and "watts" not in read.device:
        controls = [c for c in _list(doc.get("PowerControl")) if c.get("PhysicalContext") not in COMPONENT_CONTEXTS]
        for control in controls:
            value = read.value(control, "PowerConsumedWatts", f"{where} PowerConsumedWatts")
            if value is None and isinstance(control.get("PowerMetrics"), dict):
                # No instantaneous reading: the average over IntervalInMin.
                value = read.value(control["PowerMetrics"], "AverageConsumedWatts", f"{where} AverageConsumedWatts")
            if value is not None:
                read.device["watts"] = value
                break
    if need_psus:
        supplies = doc.get("PowerSupplies")
        for index, supply in enumerate(supplies if isinstance(supplies, list) else []):
            if not isinstance(supply, dict):
                continue
            # Input watts only: LastPowerOutputWatts is the output, after the PSU's losses.
            watts = read.value(supply, "PowerInputWatts", f"{where} PowerInputWatts")
            if watts is None:
                continue
            fields = {"watts": watts}
            volts = read.value(supply, "LineInputVoltage", f"{where} LineInputVoltage")
            if volts is not None:
                fields["volts"] = volts
            entity = ident(supply.get("MemberId")) or str(index)
            if plan.psu_prefix:
                entity = f"{plan.id}/{entity}"
            name = supply.get("Name")
            read.psus.append((entity, name if isinstance(name, str) else None, fields))


async def read_chassis(plan: ChassisPlan, get: Getter) -> ChassisRead:
    """One chassis' readings this poll, fetching only what is still missing."""
    read = ChassisRead()

    async def fetch(path: str) -> dict[str, Any] | None:
        try:
            return await get(path)
        except NotFound as exc:
            read.not_found.add(path)
            read.failures.append(str(exc))
        except SourceFailure as exc:
            read.failures.append(str(exc))
        return None

    total = plan.reports_total
    # 1. The new schema: EnvironmentMetrics and the power supplies' Metrics.
    env_doc, *psu_docs = await asyncio.gather(
        fetch(plan.env) if plan.env and total else _none(),
        *(fetch(p.metrics) for p in plan.psus),
    )
    if env_doc is not None:
        environment(env_doc, plan.env or "", read)
    for psu, doc in zip(plan.psus, psu_docs):
        if doc is not None:
            fields = psu_metrics(doc, psu.metrics, read)
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
        docs = await asyncio.gather(*(fetch(s.path) for s in wanted))
        sensor_psus: dict[str, dict[str, float]] = {}
        for sensor, doc in zip(wanted, docs):
            value = read.value(doc, "Reading", f"{sensor.path} Reading") if doc is not None else None
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
        doc = await fetch(plan.power)
        if doc is not None:
            legacy(plan, doc, read, total, need_psus)
    return read


async def _none() -> None:
    return None
