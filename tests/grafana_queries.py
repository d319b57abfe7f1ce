"""Fill a dashboard's queries as Grafana does before they reach InfluxDB.

Grafana's InfluxDB data source (InfluxQL mode) replaces, in a raw query:
- `$timeFilter` with `time >= <from>ms and time <= <to>ms`;
- `$__interval` with the panel's interval (the range over the panel's data points,
  rounded to a "nice" step, never under the panel's min interval) and `$__interval_ms`;
- `$name` / `${name}` with the template variable's value: for a multi-value or
  include-All variable a regex (`All` with an `allValue` gives that verbatim; chosen
  values give `(a|b)`, each regex-escaped).
This module does the same, so a test can run every panel's query on a real InfluxDB.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Grafana's rounding table (kbn.roundInterval): a raw interval under each bound becomes
# the step beside it.
_ROUND = [
    (15, 10), (35, 20), (75, 50), (150, 100), (250, 200), (350, 300), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
    (90000, 60000), (150000, 120000), (210000, 180000), (450000, 300000), (750000, 600000),
    (1050000, 900000), (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
    (16200000, 10800000), (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
]
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_INFLUX_REGEX_SPECIAL = re.compile(r"([\\/^$*+?.()|\[\]{}\-])")


def round_interval_ms(raw_ms: float) -> int:
    for bound, step in _ROUND:
        if raw_ms < bound:
            return step
    return 604800000


def interval_text(ms: int) -> str:
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_interval_ms(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}[unit]


def escape(value: str) -> str:
    """A value as Grafana puts it into an InfluxQL regex."""
    return _INFLUX_REGEX_SPECIAL.sub(r"\\\1", value)


@dataclass
class Range:
    start_ms: int
    end_ms: int


def fill(query: str, rng: Range, variables: dict[str, str], panel_interval: str | None = None,
         max_data_points: int = 1000) -> str:
    """The query with Grafana's macros and the variables' values in it; an unknown
    `$name` raises KeyError (Grafana would leave it, and InfluxDB would refuse it)."""
    interval_ms = round_interval_ms((rng.end_ms - rng.start_ms) / max_data_points)
    if panel_interval:
        interval_ms = max(interval_ms, parse_interval_ms(panel_interval))
    values = {
        "timeFilter": f"time >= {rng.start_ms}ms and time <= {rng.end_ms}ms",
        "__interval": interval_text(interval_ms),
        "__interval_ms": str(interval_ms),
        **variables,
    }

    def replace(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return _VARIABLE.sub(replace, query)


def variable_value(variable: dict[str, Any], chosen: list[str] | None) -> str:
    """What Grafana substitutes for a variable: All -> allValue; chosen values -> a
    regex alternation of them; a text box -> its text."""
    if variable["type"] == "textbox":
        return str(variable["current"]["value"])
    if chosen is None:
        return variable.get("allValue") or ".*"
    escaped = [escape(v) for v in chosen]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def values_of(answer: dict[str, Any]) -> list[list[Any]]:
    """Every row of every series of an InfluxDB /query answer."""
    rows: list[list[Any]] = []
    for result in answer.get("results", []):
        for series in result.get("series", []):
            rows += series.get("values", [])
    return rows


def has_numbers(answer: dict[str, Any]) -> bool:
    """At least one non-null value beside the time column."""
    return any(v is not None for row in values_of(answer) for v in row[1:])
