"""Plug and meter replies -> power rows. Pure functions, no network: every odd reply
a device can give is easy to test (and fuzz). Each returns rows of
(scope, entity, fields) and the problems met; a reply that gives no reading at all
raises SourceFailure naming why."""

from __future__ import annotations

import re
from typing import Any

from collector.config import HttpField
from greenwatch.core.schema import FIELDS, POWER
from greenwatch.core.units import UNITS

from ..http_common import SourceFailure, number, shown

Row = tuple[str, str, dict[str, float]]

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


def with_total(channels: list[tuple[str, dict[str, float]]]) -> list[Row]:
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


def shelly_switch(channel: int, reply: Any, problems: list[str]) -> dict[str, float]:
    """One Shelly Gen2+ `Switch.GetStatus` reply -> its fields."""
    what = f"Switch {channel}"
    if not isinstance(reply, dict):
        raise SourceFailure(f"{what}: expected a JSON object, got {shown(reply)}")
    if "apower" not in reply and "aenergy" not in reply:
        if "message" in reply:  # an RPC error object: {"code": -105, "message": ...}
            raise SourceFailure(f"{what}: {shown(reply['message'], 200, quote=False)} "
                                f"(code {shown(reply.get('code'))})")
        raise SourceFailure(f"{what} has no power meter (no apower in its status)")
    fields: dict[str, float] = {}
    for key, name in (("apower", "watts"), ("voltage", "volts"), ("current", "amps"), ("pf", "power_factor")):
        if reply.get(key) is not None:
            try:
                fields[name] = number(reply[key], f"{what}.{key}")
            except SourceFailure as exc:
                problems.append(str(exc))
    energy = reply.get("aenergy")
    if isinstance(energy, dict) and energy.get("total") is not None:
        try:  # Wh -> kWh
            fields["energy_kwh"] = number(energy["total"], f"{what}.aenergy.total") / 1000.0
        except SourceFailure as exc:
            problems.append(str(exc))
    if "power_factor" in fields:
        # Shelly signs the power factor by the direction of flow: its size is the factor.
        fields["power_factor"] = abs(fields["power_factor"])
    return fields


_TASMOTA_KEYS = (("Power", "watts"), ("Total", "energy_kwh"), ("ApparentPower", "va"),
                 ("Voltage", "volts"), ("Current", "amps"), ("Factor", "power_factor"))
# Figures that add up over channels: a scalar one is the device's, not each channel's.
_ADDITIVE = ("energy_kwh", "watts", "va", "amps")


def tasmota_status8(reply: Any) -> tuple[list[Row], list[str]]:
    """Tasmota's `Status 8` reply -> rows: the device row, or one per channel plus the
    device row when the device reports lists (one value per relay)."""
    if not isinstance(reply, dict):
        raise SourceFailure(f"Status 8: expected a JSON object, got {shown(reply)}")
    sns = reply.get("StatusSNS")
    energy = sns.get("ENERGY") if isinstance(sns, dict) else None
    if not isinstance(energy, dict):
        said = reply.get("WARNING") or reply.get("Command")
        hint = f" (device says: {shown(said, 200, quote=False)})" if said else " (is energy monitoring on this device?)"
        raise SourceFailure(f"Status 8: reply has no StatusSNS.ENERGY{hint}")
    # Multi-channel devices (e.g. a Shelly 2.5 on Tasmota) give lists, one per channel;
    # values they measure once (voltage, often Total) stay scalars and apply to all.
    width = max((len(energy[k]) for k, _ in _TASMOTA_KEYS if isinstance(energy.get(k), list)), default=0)
    # A relay board has a handful of channels; a list of thousands is not a device.
    width = min(width, 64)
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
        fields = {name: v for key, name in _TASMOTA_KEYS if (v := value(key, None)) is not None}
        return [("device", "total", fields)], problems
    channels: list[tuple[str, dict[str, float]]] = []
    for index in range(width):
        fields = {}
        for key, name in _TASMOTA_KEYS:
            if not isinstance(energy.get(key), list) and name in _ADDITIVE:
                continue  # a device-wide figure: on the device row, not each channel's
            v = value(key, index)
            if v is not None:
                fields[name] = v
        channels.append((str(index + 1), fields))  # Tasmota numbers channels from 1 (POWER1)
    rows = with_total(channels)
    device_fields = rows[0][2]
    for key, name in _TASMOTA_KEYS:  # device-wide scalars (e.g. one Total for all channels)
        if not isinstance(energy.get(key), list) and name in _ADDITIVE:
            v = value(key, None)
            if v is not None:
                device_fields[name] = v
    return rows, problems


def json_meter(reply: Any, fields_spec: dict[str, HttpField], what: str) -> tuple[list[Row], list[str]]:
    """A JSON meter's reply -> the device row, each field read at its path and
    converted from its unit."""
    fields: dict[str, float] = {}
    problems: list[str] = []
    for name, spec in fields_spec.items():
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
        raise SourceFailure(f"{what}: no watts or energy_kwh in the reply ({detail})")
    return [("device", "total", fields)], problems
