"""Turn an SNMP agent's raw values into schema samples, as a profile says.

Pure functions and a little state (Counter32 wrap tracking): no network here, so
every odd reply a device can give is easy to test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from greenwatch.core.schema import FIELDS, INTEGER_DIMENSIONS, Sample
from greenwatch.core.units import UNITS

from ..profiles import Column, IndexEntity, Metric, OidRef, Profile, Symbol
from .engine import COUNTER32, NUMERIC_TYPES, OCTETS, Var

_COUNTER32_MODULUS = 2**32
# The range of each scale column's value that its MIB defines: ENTITY-SENSOR-MIB's
# precision is -8..9 and its SensorDataScale 1 (yocto) .. 17 (yotta). Anything else
# is garbage, and 10**(2**31) would take the poll hours to compute.
_DECIMALS_RANGE = (-8, 9)
_SI_PREFIX_RANGE = (1, 17)


@dataclass
class CounterState:
    """Makes Counter32 values monotonic across wraps, per device.

    A Counter32 that goes down has either wrapped past 2^32 or been reset (agent
    restart). A wrap leaves the old value near the top and the new near the bottom,
    so a fall of more than half the range is taken as a wrap (2^32 is added from
    then on); a smaller fall is a reset and is passed through for the rollups'
    reset handling."""

    last: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (raw, offset)

    def monotonic(self, key: str, raw: int) -> int:
        previous = self.last.get(key)
        offset = 0
        if previous is not None:
            last_raw, offset = previous
            if raw < last_raw:
                if last_raw - raw > _COUNTER32_MODULUS // 2:
                    offset += _COUNTER32_MODULUS
                else:
                    offset = 0
        self.last[key] = (raw, offset)
        return raw + offset


def decode_text(var: Var) -> str:
    if isinstance(var.value, bytes):
        return _decode_bytes(var.value)
    return str(var.value)


@lru_cache(maxsize=65536)
def _decode_bytes(value: bytes) -> str:
    # Cached: labels and tag columns (interface and package names) repeat on every poll.
    return value.decode("utf-8", errors="replace").strip("\x00").strip()


class _SymbolPlan(NamedTuple):
    """What reading one symbol of a table metric takes, worked out once per profile."""

    symbol: Symbol
    measurement: str
    # An integer field taken as is (no scale, unit factor, range, mapping): a numeric
    # value needs no more than Counter32 wrap handling.
    as_is: bool


class _TablePlan(NamedTuple):
    metric: Metric  # held so that its id() is not reused while the plan is cached
    symbols: tuple[_SymbolPlan, ...]
    needs_parts: bool  # the row index is split (index parts used somewhere)
    plain: bool  # no filter, entity, label or tags: a row is its index alone


def _table_plan(metric: Metric) -> _TablePlan:
    plan = _PLANS.get(id(metric))
    if plan is not None and plan.metric is metric:
        return plan
    symbols = []
    for sym in metric.symbols:
        measurement = sym.measurement or metric.measurement
        as_is = (FIELDS[measurement][sym.field] in INTEGER_DIMENSIONS and sym.scale_factor == 1
                 and sym.decimals_from is None and sym.si_prefix_from is None
                 and (sym.unit is None or UNITS[sym.unit][1] == 1)
                 and sym.valid_min is None and sym.valid_max is None and sym.mapping is None)
        symbols.append(_SymbolPlan(sym, measurement, as_is))
    refs = [metric.label, metric.entity, metric.filter.column if metric.filter else None,
            *(tag.column for tag in metric.metric_tags),
            *(ref for sym in metric.symbols for ref in (sym.decimals_from, sym.si_prefix_from))]
    needs_parts = (isinstance(metric.entity, IndexEntity) or any(tag.index is not None for tag in metric.metric_tags)
                   or (metric.filter is not None and metric.filter.index is not None)
                   or any(isinstance(ref, Column) and ref.index for ref in refs))
    plain = (metric.filter is None and metric.entity is None and metric.label is None
             and not metric.metric_tags)
    plan = _PLANS[id(metric)] = _TablePlan(metric, tuple(symbols), needs_parts, plain)
    if len(_PLANS) > 100_000:  # profiles reloaded many times over: start afresh
        _PLANS.clear()
    return plan


# id(metric) -> its plan; a handful per profile.
_PLANS: dict[int, _TablePlan] = {}


def _number(var: Var) -> int | float | None:
    """The value as a number, or None. A number sent as text ("231.5") is read; text
    that reads as NaN or infinity ("nan", "1e999") is not a number."""
    if var.type in NUMERIC_TYPES:
        return var.value if isinstance(var.value, int) else None
    if var.type == OCTETS:
        try:
            value = float(decode_text(var)[:64])
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    return None


@dataclass
class Reader:
    """Reads one device's samples from raw values, keeping its counter state."""

    profile: Profile
    base_tags: dict[str, str]  # site, device, kind and inventory tags
    counters: CounterState = field(default_factory=CounterState)

    def read(
        self,
        scalars: dict[str, Var | None],
        columns: dict[str, dict[str, Var]],
        time_ns: int,
    ) -> tuple[list[Sample], list[str]]:
        points: dict[tuple[str, str, str], Sample] = {}
        problems: list[str] = []
        for metric in self.profile.metrics:
            if metric.symbol is not None:
                self._read_scalar(metric, scalars, points, problems, time_ns)
            else:
                self._read_table(metric, columns, points, problems, time_ns)
        samples = [s for s in points.values() if s.fields]
        return samples, problems

    def _point(self, points: dict, measurement: str, scope: str, entity: str,
               extra: dict[str, str], time_ns: int, extra_key: tuple | None = None) -> Sample:
        """The sample for one metered entity: symbols of one row share a point."""
        if extra_key is None:
            extra_key = tuple(sorted(extra.items()))
        key = (measurement, scope, entity, extra_key)
        sample = points.get(key)
        if sample is None:
            tags = dict(self.base_tags)
            tags.update(extra)
            tags["scope"] = scope
            tags["entity"] = entity
            sample = points[key] = Sample(measurement, tags, {}, time_ns)
        return sample

    def _read_scalar(self, metric: Metric, scalars: dict[str, Var | None], points: dict,
                     problems: list[str], time_ns: int) -> None:
        sym = metric.symbol
        assert sym is not None
        var = scalars.get(sym.OID)
        if var is None:
            problems.append(f"{sym.name} ({sym.OID}): no such object on this device")
            return
        measurement = sym.measurement or metric.measurement
        value = self._value(sym, measurement, var, sym.OID, lambda ref: scalars.get(ref.OID), problems)
        if value is None:
            return
        entity = metric.entity if isinstance(metric.entity, str) else "total"
        sample = self._point(points, measurement, metric.scope, entity, {}, time_ns)
        sample.fields[sym.field] = value

    def _read_table(self, metric: Metric, columns: dict[str, dict[str, Var]], points: dict,
                    problems: list[str], time_ns: int) -> None:
        # The hot path of a poll (one pass per row of every table): per-metric facts
        # come from a plan made once, and nothing is built per row that the metric
        # does not use.
        plan = _table_plan(metric)
        value_columns = [columns.get(sp.symbol.OID, {}) for sp in plan.symbols]
        if len(value_columns) == 1:
            indexes: dict[str, object] = value_columns[0]
        else:
            indexes = {}
            for column in value_columns:
                indexes.update(dict.fromkeys(column))
        symbols = list(zip(plan.symbols, value_columns))
        scope = metric.scope
        counters = self.counters
        no_extra: dict[str, str] = {}
        for index in indexes:
            parts = index.split(".") if plan.needs_parts else []
            if plan.plain:
                entity, extra, extra_key = index, no_extra, ()
            else:
                row = self._row(metric, columns, index, parts)
                if row is None:
                    continue  # filtered out
                entity, extra = row
                extra_key = tuple(sorted(extra.items()))
            for (sym, measurement, as_is), column in symbols:
                var = column.get(index)
                if var is None:
                    continue  # sparse tables are normal: a column may skip rows
                kind, raw = var
                if as_is and kind in NUMERIC_TYPES and type(raw) is int:
                    value: float | int | None = (counters.monotonic(f"{sym.OID}.{index}", raw)
                                                 if kind == COUNTER32 else raw)
                else:
                    value = self._value(sym, measurement, var, f"{sym.OID}.{index}",
                                        lambda ref, index=index, parts=parts: _cell(columns, ref, index, parts),
                                        problems)
                    if value is None:
                        continue
                sample = self._point(points, measurement, scope, entity, extra, time_ns, extra_key)
                sample.fields[sym.field] = value

    def _row(self, metric: Metric, columns: dict[str, dict[str, Var]], index: str,
             parts: list[str]) -> tuple[str, dict[str, str]] | None:
        """One row's entity and extra tags (label, metric tags), or None when the
        metric's filter leaves the row out."""
        if metric.filter is not None:
            if metric.filter.column is not None:
                var = _cell(columns, metric.filter.column, index, parts)
                if var is None or _plain(var) not in metric.filter.equals:
                    return None
            else:
                part = _index_parts(parts, [metric.filter.index])  # type: ignore[list-item]
                if part is None or part not in {str(v) for v in metric.filter.equals}:
                    return None
        entity = index
        if isinstance(metric.entity, OidRef):
            var = _cell(columns, metric.entity, index, parts)
            entity = decode_text(var) if var is not None else index
        elif isinstance(metric.entity, IndexEntity):
            entity = _index_parts(parts, metric.entity.index) or index
        elif isinstance(metric.entity, str):
            entity = metric.entity
        extra: dict[str, str] = {}
        if metric.label is not None:
            var = _cell(columns, metric.label, index, parts)
            if var is not None and decode_text(var):
                extra["label"] = decode_text(var)
        for tag in metric.metric_tags:
            if tag.column is not None:
                var = _cell(columns, tag.column, index, parts)
                if var is not None:
                    extra[tag.tag] = decode_text(var)
            elif tag.index is not None and tag.index <= len(parts):
                extra[tag.tag] = parts[tag.index - 1]
        return entity, extra

    def _value(self, sym: Symbol, measurement: str, var: Var, key: str, lookup: Callable[[OidRef], Var | None],
               problems: list[str]) -> float | int | None:
        raw = _number(var)
        if raw is None:
            shown = decode_text(var)[:40] if var.type == OCTETS else var.type
            problems.append(f"{sym.name} ({key}): expected a number, got {shown!r}")
            return None
        if (sym.valid_min is not None and raw < sym.valid_min) or (
            sym.valid_max is not None and raw > sym.valid_max
        ):
            return None  # the device's "no reading" sentinel: not a problem
        if var.type == COUNTER32:
            raw = self.counters.monotonic(key, int(raw))
        if sym.mapping is not None:
            if int(raw) not in sym.mapping:
                problems.append(f"{sym.name} ({key}): value {raw} is not in the profile's mapping")
                return None
            raw = sym.mapping[int(raw)]
        if (FIELDS[measurement][sym.field] in INTEGER_DIMENSIONS and sym.scale_factor == 1
                and sym.decimals_from is None and sym.si_prefix_from is None
                and (sym.unit is None or UNITS[sym.unit][1] == 1)):
            # Counters stay exact integers: a float loses whole units above 2^53,
            # which a busy 100G port's octet counter passes in about a week.
            return int(raw)
        value = scale(float(raw), sym.scale_factor)
        for ref, apply, (low, high) in ((sym.decimals_from, _decimals, _DECIMALS_RANGE),
                                        (sym.si_prefix_from, _si_prefix, _SI_PREFIX_RANGE)):
            if ref is None:
                continue
            var_scale = lookup(ref)
            number = _number(var_scale) if var_scale is not None else None
            if number is None:
                problems.append(f"{sym.name} ({key}): scale column {ref.name} missing or not a number")
                return None
            if not low <= number <= high:
                problems.append(f"{sym.name} ({key}): scale column {ref.name} is {number:g}, "
                                f"expected {low}..{high}")
                return None
            value = apply(value, int(number))
        if sym.unit is not None:
            value = scale(value, UNITS[sym.unit][1])
        if not math.isfinite(value):
            # Only a huge value scaled up gets here; int() of it would raise.
            problems.append(f"{sym.name} ({key}): {raw} scales beyond any float")
            return None
        if FIELDS[measurement][sym.field] in INTEGER_DIMENSIONS:
            return round(value)
        return value


def scale(value: float, factor: float) -> float:
    """value * factor, dividing where the factor is 1/n so that 66 * 0.1 gives 6.6
    rather than 6.6000000000000005."""
    if 0 < factor < 1:
        inverse = 1 / factor
        if abs(inverse - round(inverse)) < 1e-9:
            return value / round(inverse)
    return value * factor


def _decimals(value: float, digits: int) -> float:
    # ENTITY-SENSOR-MIB's precision -8..-1 counts accurate digits of the integer
    # part: the value itself is not scaled then.
    return value / (10**digits) if digits > 0 else value


def _si_prefix(value: float, prefix: int) -> float:
    # SensorDataScale: yocto(1) ... units(9) ... yotta(17); each step is 10^3.
    return value * (1000.0 ** (prefix - 9))


def _cell(columns: dict[str, dict[str, Var]], ref: OidRef, index: str, parts: list[str]) -> Var | None:
    """The value of column `ref` for the row `index` (split into `parts`): a column
    indexed by some parts of the row's index (`index: [...]`) is looked up by those."""
    wanted = ref.index if isinstance(ref, Column) else None
    key = index if wanted is None else _index_parts(parts, wanted)
    return columns.get(ref.OID, {}).get(key) if key is not None else None


def _index_parts(parts: list[str], wanted: list[int] | None) -> str | None:
    """The 1-based `wanted` parts of a row index, joined with dots; None if the index
    has fewer parts (or nothing is wanted)."""
    if not wanted or max(wanted) > len(parts):
        return None
    return ".".join(parts[i - 1] for i in wanted)


def _plain(var: Var) -> int | str:
    return var.value if isinstance(var.value, int) else decode_text(var)

