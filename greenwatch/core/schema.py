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


# Physical bounds of each field: a reading outside them is not a reading but garbage
# (a negative watt, a Gauge32's 4294967295 "no value", a 400-digit number) and is
# refused where every source's samples pass (collector.source.Guarded), counted as a
# poll problem and never written. Generous on purpose: they catch the impossible, not
# the unusual. Integer fields stop at InfluxDB's int64. docs/metrics.md lists them.
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Bound:
    low: float
    high: float
    unit: str = ""

    def text(self) -> str:
        return f"{_shown(self.low)}..{_shown(self.high)}{' ' + self.unit if self.unit else ''}"


def _shown(value: float) -> str:
    """A number as a person reads it: whole numbers in full, others short; a huge
    integer by its length (its digits would flood the log)."""
    if isinstance(value, int) and abs(value) >= 10**19:
        return f"a {len(str(abs(value)))}-digit number"
    if isinstance(value, int) or (math.isfinite(value) and value.is_integer() and abs(value) < 1e19):
        return str(int(value))
    return f"{value:.6g}"


BOUNDS: dict[str, dict[str, Bound]] = {
    POWER: {
        "watts": Bound(0, 10e6, "W"),  # 10 MW: more than any one metered entity draws
        "energy_kwh": Bound(0, 1e10, "kWh"),  # 10 MW for a century is 8.8e9 kWh
        "va": Bound(0, 10e6, "VA"),
        "amps": Bound(0, 1e5, "A"),
        "volts": Bound(0, 1e5, "V"),
        "power_factor": Bound(0, 1),
    },
    UPS: {
        "load_percent": Bound(0, 200, "%"),  # overload is reported above 100
        "efficiency_percent": Bound(0, 100, "%"),
        "battery_percent": Bound(0, 100, "%"),
        "runtime_s": Bound(0, 1e7, "s"),  # about 4 months
        "on_battery": Bound(0, 1),
    },
    HOST: {"cpu_load_percent": Bound(0, 100, "%"), "uptime_s": Bound(0, 3.2e9, "s")},  # a century
    PORT: {
        "oper_up": Bound(0, 1),
        "in_octets": Bound(0, INT64_MAX),
        "out_octets": Bound(0, INT64_MAX),
        "speed_bps": Bound(0, 1e13, "bit/s"),
    },
    PRINTER: {"pages": Bound(0, 1e9), "status": Bound(0, 65535)},
    ENVIRONMENT: {"temperature_c": Bound(-50, 150, "C"), "humidity_percent": Bound(0, 100, "%")},
}


class Problem(str):
    """A problem's text, with `key`: what it is about without the value, so that a
    reading refused on every poll is logged once, not once per value."""

    key: str

    def __new__(cls, text: str, key: str | None = None) -> Problem:
        problem = super().__new__(cls, text)
        problem.key = key if key is not None else text
        return problem


def _refusal(sample: Sample, name: str, value: FieldValue) -> Problem | None:
    """Why `value` cannot be `name` of `sample`, or None when it can."""
    bound = BOUNDS.get(sample.measurement, {}).get(name)
    where = f"{sample.measurement}.{name} of {sample.tags.get('scope', '?')} {sample.tags.get('entity', '?')}"
    if isinstance(value, float) and not math.isfinite(value):
        return Problem(f"{where}: {value} refused: not a finite number", where)
    if bound is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Problem(f"{where}: {str(value)[:40]!r} refused: not a number", where)
    if bound.low <= value <= bound.high:  # exact for huge ints too: no float conversion
        return None
    return Problem(f"{where}: {_shown(value)} refused: outside {bound.text()}", where)


def refuse_impossible(samples: list[Sample]) -> tuple[list[Sample], list[Problem]]:
    """Take out every field value that is not finite or outside its BOUNDS; keep the
    samples that still have a field. Returns them and one problem per refused value."""
    kept: list[Sample] = []
    problems: list[Problem] = []
    for sample in samples:
        for name, value in list(sample.fields.items()):
            problem = _refusal(sample, name, value)
            if problem is not None:
                problems.append(problem)
                del sample.fields[name]
        if sample.fields:
            kept.append(sample)
    return kept, problems
