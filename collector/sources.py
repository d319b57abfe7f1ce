"""Build each device's source from the inventory: the one place that knows which
config key means which kind of source."""

from __future__ import annotations

from collector.config import Defaults, Device
from greenwatch.core.config import SiteSettings

from .http_power import HttpPowerSource
from .profiles import ProfileSet
from .redfish import RedfishSource
from .snmp.engine import SnmpEngine
from .snmp.source import SnmpSource
from .source import Guarded, Source


def device_profile_names(device: Device) -> list[str]:
    if device.profile is None:
        return []
    return [device.profile] if isinstance(device.profile, str) else list(device.profile)


def make_source(defaults: Defaults, site: SiteSettings, device: Device, profiles: ProfileSet,
                engine: SnmpEngine) -> Source:
    """The device's source, by which source key its config has, guarded (bounds,
    secrets, bugs: see collector.source.Guarded)."""
    return Guarded(_inner_source(defaults, site, device, profiles, engine), site.name, device)


def _inner_source(defaults: Defaults, site: SiteSettings, device: Device, profiles: ProfileSet,
                  engine: SnmpEngine) -> Source:
    if device.redfish is not None:
        return RedfishSource(site, device, defaults)
    if device.http is not None:
        return HttpPowerSource(site, device, defaults)
    names = device_profile_names(device)
    profile = profiles.combined(names) if names else None
    return SnmpSource(site, device, defaults, engine, profiles, profile)
