"""Tags every sample of a device carries, whatever its source (SNMP, Redfish, HTTP)."""

from __future__ import annotations

from collector.config import Device
from greenwatch.core.config import SiteSettings


def base_tags(site: SiteSettings, device: Device, kind: str) -> dict[str, str]:
    """The site's tags, then the device's, then site/device/kind (which nothing overrides)."""
    tags = dict(site.tags)
    tags.update(device.tags)
    tags.update(site=site.name, device=device.name, kind=kind)
    return tags


def entity_tags(base: dict[str, str], scope: str, entity: str, label: str | None = None) -> dict[str, str]:
    """`base` plus the power schema's scope/entity and, where the device names it, label."""
    tags = dict(base)
    tags.update(scope=scope, entity=entity)
    if label:
        tags["label"] = label
    return tags
