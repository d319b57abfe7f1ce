"""The metric schema: the contract between collectors, rules, dashboards and reports.

Every point greenwatch writes is a `Sample`. `docs/metrics.md` documents each
measurement, its tags and its fields; the names below are the single place code
refers to them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

# Measurements
POWER = "power"
POLL = "poll"
UPS = "ups"
HOST = "host"
PORT = "port"
PRINTER = "printer"
ENVIRONMENT = "environment"
FINDING = "finding"
# Hourly rollups written by energy/ (docs/metrics.md, docs/energy.md).
ENERGY = "energy"
SITE_ENERGY = "site_energy"
MEASUREMENTS = (POWER, POLL, UPS, HOST, PORT, PRINTER, ENVIRONMENT, FINDING, ENERGY, SITE_ENERGY)

# Workplace kit (desktop, laptop, monitor, access_point) is kept apart from data-centre
# kit: a desktop PC left on overnight is a different finding from a busy server.
KINDS = ("pdu", "ups", "server", "switch", "printer", "host", "plug", "meter", "cooling", "sensor",
         "desktop", "laptop", "monitor", "access_point")
POWER_SCOPES = ("device", "inlet", "phase", "bank", "outlet", "psu", "output")

# Tags every sample carries; inventory tags are added beside them.
RESERVED_TAGS = ("site", "device", "kind", "scope", "entity", "label")

FieldValue = float | int | bool | str


@dataclass(slots=True)
class Sample:
    """One point: a measurement, its tags, its fields and a time in nanoseconds."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int = field(default_factory=time.time_ns)

    def to_line(self) -> str:
        """Encode as one line of InfluxDB line protocol (precision ns)."""
        parts = [_escape_key(self.measurement, measurement=True)]
        for key in sorted(self.tags):
            value = self.tags[key]
            if value is None:
                continue
            escaped_key, escaped_value = _escape_key(key), _escape_key(str(value))
            if not escaped_key or not escaped_value:
                continue  # line protocol has no empty tag keys or values
            parts.append(f"{escaped_key}={escaped_value}")
        head = ",".join(parts)
        fields = ",".join(
            f"{_escape_key(k)}={_encode_field(v)}"
            for k, v in self.fields.items()
            if not (isinstance(v, float) and not math.isfinite(v)) and _escape_key(k)
        )
        return f"{head} {fields} {self.time_ns}"


@lru_cache(maxsize=65536)
def _escape_key(text: str, measurement: bool = False) -> str:
    # Cached: the same tag keys and values come back on every poll of every device.
    # In measurements, tag keys, tag values and field keys a backslash is literal
    # unless it precedes a comma, space or '=': InfluxDB stores "a\b" as written,
    # so doubling it would store two. A trailing backslash cannot be written at all
    # (it escapes the separator after it, and InfluxDB rejects the line), so it is
    # dropped. Checked against InfluxDB 1.6.7.
    text = text.rstrip("\\").replace(",", "\\,").replace(" ", "\\ ")
    if not measurement:
        text = text.replace("=", "\\=")
    return text.replace("\n", "\\n")


def _encode_field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def encode_lines(samples: list[Sample]) -> list[str]:
    """Line protocol for every sample that has at least one field."""
    return [s.to_line() for s in samples if any(_writable(v) for v in s.fields.values())]


def _writable(value: FieldValue) -> bool:
    return not (isinstance(value, float) and not math.isfinite(value))


# The fields each measurement may carry and the dimension of each. SNMP profiles and
# other sources may only feed fields listed here (a profile naming another field is
# refused at load), so every consumer can rely on this table and docs/metrics.md.
FIELDS: dict[str, dict[str, str]] = {
    POWER: {
        "watts": "power",
        "energy_kwh": "energy",
        "va": "apparent_power",
        "amps": "current",
        "volts": "voltage",
        "power_factor": "ratio",
    },
    UPS: {
        "load_percent": "percent",
        "efficiency_percent": "percent",
        "battery_percent": "percent",
        "runtime_s": "time",
        "on_battery": "state",
    },
    HOST: {"cpu_load_percent": "percent", "uptime_s": "time"},
    PORT: {"oper_up": "state", "in_octets": "count", "out_octets": "count", "speed_bps": "rate"},
    PRINTER: {"pages": "count", "status": "state"},
    ENVIRONMENT: {"temperature_c": "temperature", "humidity_percent": "percent"},
    # Written by the rules engine (rules/engine.py), one point per finding per change.
    FINDING: {
        "open": "state",
        "kwh_per_year": "energy",
        "cost_per_year": "money",
        "kgco2e_per_year": "mass",
        "summary": "text",
        "id": "text",
        "state": "text",
        "currency": "text",
        "opened_at": "text",
        "value": "ratio",
    },
    # Written by energy/rollup.py: one point per UTC hour per power series / per site.
    ENERGY: {
        "kwh": "energy",
        "cost": "money",
        "kgco2e": "mass",
        "coverage": "ratio",
        "method": "text",
        "carbon_method": "text",
    },
    SITE_ENERGY: {
        "kwh": "energy",
        "it_kwh": "energy",
        "cost": "money",
        "kgco2e": "mass",
        "coverage": "ratio",
        "carbon_method": "text",
    },
}

# Dimensions whose values are whole numbers (counters and states): written as integers.
INTEGER_DIMENSIONS = frozenset({"count", "state"})


# Which power scope stands for what the whole device draws, in order of preference:
# its own total where it has one, else its inlets (or phases, or power supplies) add
# up to it. Never sum across scopes (see docs/metrics.md). `output` is not here: a
# UPS's output or a switch's PoE is power handed on, not what the device draws.
TOTAL_SCOPES = ("device", "inlet", "phase", "psu")


def device_watts(samples: list[Sample]) -> float | None:
    """The device's total active power from one poll's samples, or None."""
    by_scope: dict[str, float] = {}
    for sample in samples:
        watts = sample.fields.get("watts")
        if sample.measurement == POWER and isinstance(watts, int | float):
            scope = sample.tags.get("scope", "")
            by_scope[scope] = by_scope.get(scope, 0.0) + float(watts)
    return next((by_scope[s] for s in TOTAL_SCOPES if s in by_scope), None)
