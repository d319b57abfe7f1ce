"""The rule format: one YAML file per rule (rules/pack/NAME.yaml), validated by pydantic
so that a bad rule is named by file, line and field. See docs/rules.md.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from greenwatch.core.calendar import Window
from greenwatch.core.config import Strict, parse_duration
from greenwatch.core.schema import BOUNDS, FIELDS, KINDS, POWER, POWER_SCOPES

# The energy helper's hourly rollups (issue 6 section 2): rules may read them too.
ROLLUP_FIELDS: dict[str, tuple[str, ...]] = {
    "energy": ("kwh", "cost", "kgco2e", "coverage"),
    "site_energy": ("kwh", "it_kwh", "cost", "kgco2e", "coverage"),
}
# The largest threshold or savings figure a rule may hold. Readings are bounded far
# below it (docs/metrics.md), and with it a saving is a finite number of watts.
RULE_NUMBER_LIMIT = 1e15
AGGREGATES = ("mean", "max", "min", "spread", "sum", "count", "stddev", "median", "last", "first")
Aggregate = Literal["mean", "max", "min", "spread", "sum", "count", "stddev", "median", "last", "first"]
Severity = Literal["info", "warning", "critical"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
Per = Literal["site", "device", "entity"]
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# What a summary may say, filled in per finding.
SUMMARY_KEYS = ("site", "device", "entity", "label", "value", "hours", "threshold", "count",
                "kwh_per_year", "cost_per_year", "currency", "kgco2e_per_year")
# Values of the types the engine fills a summary with (rules/engine.py, Engine._finding).
_SUMMARY_TRIAL = {key: "x" for key in ("site", "device", "entity", "label", "currency")} | {
    key: 1.5 for key in ("value", "hours", "threshold", "kwh_per_year", "cost_per_year", "kgco2e_per_year")
} | {"count": 2}


_LONG = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(d|w)\s*$")


def parse_long_duration(value: Any) -> float:
    """As the config's durations (60s, 5m, 1h), plus days and weeks (7d, 1w): rules
    look at nights and weeks."""
    match = _LONG.match(str(value)) if isinstance(value, str) else None
    if match:
        return parse_duration(float(match.group(1)) * {"d": 86400, "w": 7 * 86400}[match.group(2)])
    return parse_duration(value)


LongDuration = Annotated[float, BeforeValidator(parse_long_duration)]


def measurement_fields(measurement: str) -> tuple[str, ...] | None:
    if measurement in FIELDS:
        return tuple(FIELDS[measurement])
    return ROLLUP_FIELDS.get(measurement)


class Select(Strict):
    """Which series a rule reads."""

    measurement: str
    field: str
    kinds: list[str] = []
    scopes: list[str] = []
    # tag: value, a list of values (any of), or /regex/ (an empty regex part matches a
    # series without the tag: /^$|spare/ is "no label, or labelled spare").
    tags: dict[str, str | list[str]] = {}
    sites: list[str] = []

    @model_validator(mode="after")
    def _known(self) -> Select:
        fields = measurement_fields(self.measurement)
        if fields is None:
            known = ", ".join([*FIELDS, *ROLLUP_FIELDS])
            raise ValueError(f"unknown measurement {self.measurement!r}: expected one of {known}")
        if self.field not in fields:
            raise ValueError(f"measurement {self.measurement} has no field {self.field!r}: expected one of "
                             f"{', '.join(fields)}")
        for kind in self.kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
        return self


class Condition(Strict):
    """Per bucket (hour) and subject: aggregate(field) op threshold. With `query:` the
    query's `value` column is compared and `aggregate` is not used."""

    aggregate: Aggregate = "mean"
    op: Op
    threshold: float = Field(ge=-RULE_NUMBER_LIMIT, le=RULE_NUMBER_LIMIT, allow_inf_nan=False)
    # per: site sums the per-device aggregates of each bucket (a site's office load).
    combine: Literal["sum", "mean", "max", "min"] = "sum"


class Savings(Strict):
    """What acting on the finding saves, in watts over the hours of `window` in a year:
    fixed_watts + per_unit x delta x base, where delta is value - excess_over, or
    shortfall_below - value, or 1 (never below 0), and base is 1, the subject device's
    mean power from `power` (device_power) or the query's `basis` column (basis). The
    second term is there when excess_over, shortfall_below or per_unit is given."""

    # Finite and bounded: an infinite, NaN or 1e300 limit would make savings infinite or NaN.
    excess_over: float | None = Field(None, ge=-RULE_NUMBER_LIMIT, le=RULE_NUMBER_LIMIT, allow_inf_nan=False)
    shortfall_below: float | None = Field(None, ge=-RULE_NUMBER_LIMIT, le=RULE_NUMBER_LIMIT, allow_inf_nan=False)
    # 1 when a delta is given
    per_unit: float | None = Field(None, ge=0, le=RULE_NUMBER_LIMIT, allow_inf_nan=False)
    base: Literal["one", "device_power", "basis"] = "one"
    fixed_watts: float = Field(0.0, ge=0, le=BOUNDS[POWER]["watts"].high, allow_inf_nan=False)
    # The window in which the saving applies; default: the rule's.
    window: Window | None = None

    @model_validator(mode="after")
    def _one_delta(self) -> Savings:
        if self.excess_over is not None and self.shortfall_below is not None:
            raise ValueError("give excess_over or shortfall_below, not both")
        if not self.proportional and self.fixed_watts == 0:
            raise ValueError("say what is saved: fixed_watts, or excess_over / shortfall_below / per_unit")
        return self

    @property
    def proportional(self) -> bool:
        return self.excess_over is not None or self.shortfall_below is not None or self.per_unit is not None

    def watts(self, value: float, base: float) -> float:
        """The watts saved for a subject whose tested aggregate is `value`."""
        if not self.proportional:
            return self.fixed_watts
        delta = 1.0
        if self.excess_over is not None:
            delta = value - self.excess_over
        elif self.shortfall_below is not None:
            delta = self.shortfall_below - value
        per_unit = 1.0 if self.per_unit is None else self.per_unit
        return self.fixed_watts + max(delta, 0.0) * per_unit * base


class Rule(Strict):
    """One YAML rule."""

    id: str
    title: str = Field(min_length=1)
    # Evidence and assumptions: why the threshold, where the savings figure comes from.
    description: str = Field(min_length=1)
    severity: Severity = "warning"
    select: Select | None = None
    # Expert form: an InfluxQL SELECT with $range (the time filter) and $bucket (the
    # bucket, e.g. 1h) that returns a `value` column (and optionally `basis`) grouped
    # by time($bucket) and the subject's tags.
    query: str | None = None
    condition: Condition
    per: Per = "device"
    # After the condition holds per entity, report one finding per device (idle ports).
    merge_to_device: bool = False
    bucket: Literal["1h", "1d"] = "1h"
    for_: LongDuration = Field(alias="for")
    lookback: LongDuration | None = None
    window: Window = "always"
    savings: Savings
    summary: str = "{device}: {value:.1f} for {hours:.0f} h"
    path: Path | None = Field(None, exclude=True)

    model_config = Strict.model_config | {"populate_by_name": True}

    @model_validator(mode="before")
    @classmethod
    def _no_path(cls, data: Any) -> Any:
        # `path` is where the loader found the file, not something a rule may say.
        if isinstance(data, dict) and "path" in data:
            raise ValueError("unknown key path (check its spelling against docs/rules.md)")
        return data

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"expected a lower-case id of letters, digits and '-', got {value!r}")
        return value

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        if value is not None:
            if "$range" not in value:
                raise ValueError("the query must filter time with $range (the engine fills it in)")
            if not value.lstrip().upper().startswith("SELECT"):
                raise ValueError("the query must be one InfluxQL SELECT")
        return value

    @field_validator("summary")
    @classmethod
    def _summary(cls, value: str) -> str:
        for _, name, _, _ in string.Formatter().parse(value):
            if name is not None and name not in SUMMARY_KEYS:
                raise ValueError(f"unknown placeholder {{{name}}}: expected one of {', '.join(SUMMARY_KEYS)}")
        # The names are right; a format spec may still not suit the value's type
        # ({device:.1f}, {value:.q}): fill it once now, not at the first finding.
        try:
            value.format_map(_SUMMARY_TRIAL)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"the summary cannot be filled in: {exc}") from None
        return value

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if (self.select is None) == (self.query is None):
            raise ValueError("give either select (with condition.aggregate) or query (InfluxQL), not both")
        if self.bucket == "1d" and self.window != "always":
            raise ValueError("daily buckets (bucket: 1d) need window: always")
        if self.savings.base == "basis" and self.query is None:
            raise ValueError("savings.base basis needs a query returning a basis column")
        if self.merge_to_device and self.per != "entity":
            raise ValueError("merge_to_device needs per: entity")
        if self.select and self.select.scopes and self.select.measurement == "power":
            bad = [s for s in self.select.scopes if s not in POWER_SCOPES]
            if bad:
                raise ValueError(f"unknown power scope {bad[0]!r}: expected one of {', '.join(POWER_SCOPES)}")
        return self

    @property
    def bucket_s(self) -> int:
        return 3600 if self.bucket == "1h" else 86400

    @property
    def lookback_s(self) -> float:
        """How far back the engine reads: the `for:` span plus room to find the last
        stretch of the window (a week, for nights or weekends)."""
        if self.lookback is not None:
            return max(self.lookback, self.for_)
        return self.for_ + (86400.0 if self.window == "always" else 8 * 86400.0)
