"""Helpers for tests that poll an SNMP agent through a profile."""

from __future__ import annotations

from typing import Any

from collector.profiles import ProfileSet, load_profiles
from collector.snmp.engine import SnmpEngine
from collector.snmp.source import SnmpSource
from collector.source import PollResult
from collector.config import Defaults, Device
from greenwatch.config import Site

_PROFILES: ProfileSet | None = None


def profiles() -> ProfileSet:
    global _PROFILES
    if _PROFILES is None:
        _PROFILES = load_profiles()
    return _PROFILES


def make_source(engine: SnmpEngine, address: str, snmp: dict[str, Any], profile: str | None = None,
                site: str = "test-site", name: str = "dev-1", **device: Any) -> SnmpSource:
    """An SnmpSource for one device, built from config-shaped dicts as a user writes them."""
    dev = Device.model_validate({"name": name, "address": address, "snmp": snmp, **device})
    s = Site(name=site, devices=[dev])
    ps = profiles()
    return SnmpSource(s, dev, Defaults(), engine, ps, ps.get(profile) if profile else None)


def by_entity(result: PollResult, measurement: str, scope: str) -> dict[str, dict[str, Any]]:
    """{entity: fields} of one measurement and scope in a poll result."""
    return {
        s.tags["entity"]: s.fields
        for s in result.samples
        if s.measurement == measurement and s.tags.get("scope") == scope
    }


def tags_of(result: PollResult, measurement: str, scope: str, entity: str) -> dict[str, str]:
    for s in result.samples:
        if s.measurement == measurement and s.tags.get("scope") == scope and s.tags["entity"] == entity:
            return s.tags
    raise AssertionError(f"no {measurement} sample for scope={scope} entity={entity}: {result.samples}")
