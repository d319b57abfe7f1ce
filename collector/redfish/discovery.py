"""Which resources of a Redfish service give power readings: walked once, cached by
the source, redone when a discovered path answers 404.

Every chassis in `/redfish/v1/Chassis`, and for each: `EnvironmentMetrics`, the
`PowerSubsystem`'s power supplies with `Metrics`, `Sensors` whose `ReadingType` is
`Power` or `EnergykWh` (physical context `Chassis` or `PowerSupply`), and the legacy
`Power` resource (deprecated by DMTF in 2020.4, still the only one on older BMCs).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from ..http_common import SourceFailure
from .client import ROOT, RedfishClient, link, path_of

log = logging.getLogger("greenwatch.redfish")

MAX_PAGES = 50
_UNIT_TYPES = {"W": "Power", "kW.h": "EnergykWh"}


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


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def ident(value: Any) -> str | None:
    """An Id (or MemberId) as text: a string, or a number some services send; anything
    else (an object, a list) is no Id."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
        return str(value)
    return _text(value)


def _opt_path(target: str | None) -> str | None:
    return path_of(target) if target else None


class Discovery:
    """One walk of a service; `problems` holds what was skipped on the way."""

    def __init__(self, client: RedfishClient, key: str) -> None:
        self.client = client
        self.key = key
        self.problems: list[str] = []
        self.expand = False

    async def run(self) -> list[ChassisPlan]:
        root = await self._root()
        collection = link(root, "Chassis")
        if collection is None:
            raise SourceFailure(f"GET {ROOT}/: the service root has no Chassis collection")
        paths = await self._members(path_of(collection))
        docs = await asyncio.gather(*(self.client.get(p) for p in paths))
        plans = list(await asyncio.gather(*(self._plan_chassis(p, d) for p, d in zip(paths, docs))))
        assign_entities(plans)
        for plan in plans:
            offers = [name for name, on in (("EnvironmentMetrics", plan.env), ("Power (legacy)", plan.power))
                      if on]
            if plan.psus:
                offers.append(f"{len(plan.psus)} PSU metrics")
            if plan.sensors:
                offers.append(f"{len(plan.sensors)} power sensors")
            log.info("%s: Redfish chassis %s (entity %s): %s", self.key, plan.id, plan.entity,
                     ", ".join(offers) or "no power readings")
        return plans

    async def _root(self) -> dict[str, Any]:
        # The service root answers without authentication (DSP0266); some BMCs want it anyway.
        try:
            root = await self.client.get(f"{ROOT}/", authenticate=False)
        except SourceFailure as exc:
            if "HTTP 401" not in str(exc) or self.client.auth == "none":
                raise
            root = await self.client.get(f"{ROOT}/")
        sessions = link(root.get("Links") or {}, "Sessions")
        if sessions:
            self.client.sessions_path = path_of(sessions)
        features = root.get("ProtocolFeaturesSupported")
        expand = features.get("ExpandQuery") if isinstance(features, dict) else None
        self.expand = isinstance(expand, dict) and expand.get("NoLinks") is True
        return root

    async def _members(self, path: str) -> list[str]:
        members: list[str] = []
        page: str | None = path
        for _ in range(MAX_PAGES):
            if page is None:
                break
            doc = await self.client.get(page)
            listed = doc.get("Members")
            for member in listed if isinstance(listed, list) else []:
                target = member.get("@odata.id") if isinstance(member, dict) else None
                if isinstance(target, str):
                    members.append(path_of(target))
            nxt = doc.get("Members@odata.nextLink")
            page = path_of(nxt) if isinstance(nxt, str) and nxt else None
        return members

    async def _plan_chassis(self, path: str, doc: dict[str, Any]) -> ChassisPlan:
        plan = ChassisPlan(
            id=str(ident(doc.get("Id")) or path.rstrip("/").rsplit("/", 1)[-1]),
            name=_text(doc.get("Name")),
            path=path,
            env=_opt_path(link(doc, "EnvironmentMetrics")),
            power=_opt_path(link(doc, "Power")),
            contained_by=_opt_path(link(doc.get("Links") or {}, "ContainedBy")),
        )
        subsystem = link(doc, "PowerSubsystem")
        sensors = link(doc, "Sensors")
        psus, power_sensors = await asyncio.gather(
            self._psus(path_of(subsystem)) if subsystem else _empty(),
            self._sensors(path_of(sensors)) if sensors else _empty(),
        )
        plan.psus, plan.sensors = psus, power_sensors
        return plan

    async def _psus(self, subsystem: str) -> list[Psu]:
        doc = await self.client.get(subsystem)
        collection = link(doc, "PowerSupplies")
        if collection is None:
            return []
        members = await self._members(path_of(collection))
        supplies = await asyncio.gather(*(self.client.get(m) for m in members))
        psus = []
        for member, supply in zip(members, supplies):
            status = supply.get("Status")
            state = status.get("State") if isinstance(status, dict) else None
            metrics = link(supply, "Metrics")
            if metrics and state != "Absent":
                psus.append(Psu(id=str(ident(supply.get("Id")) or member.rsplit("/", 1)[-1]),
                                name=_text(supply.get("Name")), metrics=path_of(metrics)))
        return psus

    async def _sensors(self, collection: str) -> list[PowerSensor]:
        """The collection's Power and EnergykWh sensors for a chassis or a power supply.
        Read whole once (expanded where the service offers it); polled one by one."""
        doc = None
        if self.expand:
            try:
                doc = await self.client.get(f"{collection}?$expand=.")
            except SourceFailure:
                doc = None  # the service advertised $expand but refused it: go one by one
        if doc is None:
            doc = await self.client.get(collection)
        listed = doc.get("Members")
        items = [m for m in (listed if isinstance(listed, list) else []) if isinstance(m, dict)]
        # An expanded member carries the sensor's properties; a plain one only its link.
        expanded = [m for m in items if set(m) - {"@odata.id"}]
        todo = [path_of(m["@odata.id"]) for m in items
                if not set(m) - {"@odata.id"} and isinstance(m.get("@odata.id"), str)]
        fetched = await asyncio.gather(*(self.client.get(p) for p in todo), return_exceptions=True)
        for path, result in zip(todo, fetched):
            if isinstance(result, SourceFailure):
                self.problems.append(f"sensor skipped: {result}")
            elif isinstance(result, BaseException):
                raise result
            else:
                result.setdefault("@odata.id", path)
                expanded.append(result)
        sensors = [sensor for s in expanded if (sensor := _power_sensor(s)) is not None]
        # Among several, a sensor of the total (ElectricalContext Total) comes first.
        sensors.sort(key=lambda s: (not s.total, s.path))
        return sensors


def _power_sensor(s: dict[str, Any]) -> PowerSensor | None:
    """The sensor as a power or energy sensor of a chassis or PSU, else None."""
    # ReadingType, or where a service leaves it out, what its unit says.
    kind = _text(s.get("ReadingType")) or _UNIT_TYPES.get(_text(s.get("ReadingUnits")) or "")
    context = s.get("PhysicalContext")
    target = s.get("@odata.id")
    if kind not in ("Power", "EnergykWh") or context not in ("Chassis", "PowerSupply") or not isinstance(target, str):
        return None
    related = None
    items = s.get("RelatedItem")
    for item in items if isinstance(items, list) else []:
        linked = item.get("@odata.id") if isinstance(item, dict) else None
        if isinstance(linked, str) and "/PowerSupplies/" in linked:
            related = linked.rstrip("/").rsplit("/", 1)[-1]
    return PowerSensor(path=path_of(target), id=ident(s.get("Id")) or target, reading_type=kind,
                       context=context, total=s.get("ElectricalContext") == "Total", related=related)


def assign_entities(plans: list[ChassisPlan]) -> None:
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


async def _empty() -> list:
    return []
