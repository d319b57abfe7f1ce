"""SNMP device profiles: YAML files saying which OIDs feed which schema fields.

The format follows Datadog's SNMP profiles (`sysobjectid`, `extends`, `metrics` with
`symbol` or `table` + `symbols`, `metric_tags`), extended with greenwatch's schema
keys: `measurement`, `field`, `unit`, `scale_factor`, `decimals_from`,
`si_prefix_from`, `mapping`, `valid_min`, `valid_max`, `scope`, `entity`, `label`, `filter`.
Rows of a table can be told apart by parts of their index: `entity: {index: [...]}`,
`filter: {index: n, equals: [...]}`, and a column from a table with a shorter index
read with `index: [...]` (e.g. a label). The engine knows
nothing about vendors: everything vendor-specific is in these files.
docs/profiles.md is the reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from greenwatch.core.config import shown
from greenwatch.core.schema import FIELDS, KINDS, POWER, RESERVED_TAGS
from greenwatch.core.units import UNITS
from greenwatch.core.yamlfile import InputError, parse_model_with_node, problem_at

SHIPPED_DIR = Path(__file__).parent / "profiles"

_OID = re.compile(r"^\d+(\.\d+)+$")
_OID_PATTERN = re.compile(r"^\d+(\.(\d+|\*))*(\.\*)?$")


def _oid(value: Any) -> str:
    text = str(value).strip().lstrip(".")
    if not _OID.match(text):
        raise ValueError(f"malformed OID {shown(value)}: expected dotted numbers such as 1.3.6.1.2.1.1.2.0")
    return text


Oid = Annotated[str, BeforeValidator(_oid)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OidRef(_Strict):
    """An OID with its MIB name (the name is for reviewers and log messages)."""

    OID: Oid
    name: str


IndexParts = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]


class Column(OidRef):
    """A column read beside a table's values (label, tag, entity, filter, scale).

    `index` (optional): the column's rows are indexed by these 1-based parts of the
    value row's index, for a column from another table with a shorter index (Raritan's
    outletName is indexed pdu.outlet; its readings pdu.outlet.sensorType)."""

    index: IndexParts | None = None


class IndexEntity(_Strict):
    """`entity: {index: [1, 2]}`: the entity is these 1-based parts of the row index,
    joined with dots, e.g. without a sensor-type part so that rows differing only in
    it share one point."""

    index: IndexParts


class Symbol(OidRef):
    """One value read from the device and the schema field it feeds."""

    measurement: str | None = None  # default: the metric's
    field: str
    unit: str | None = None
    scale_factor: float = 1.0
    # Divide by 10^(value of this column): Raritan's and ENTITY-SENSOR's precision.
    decimals_from: Column | None = None
    # Multiply by 10^(3*(value-9)): ENTITY-SENSOR-MIB's SensorDataScale (units = 9).
    si_prefix_from: Column | None = None
    # Raw integer -> value, e.g. ifOperStatus up(1) -> 1, others -> 0.
    mapping: dict[int, float] | None = None
    # A raw value below this is the device saying it has no reading (MIB sentinels such
    # as -1 "not available", APC's negative efficiency codes): the field is left out of
    # the point, silently; it is not a problem with the device.
    valid_min: float | None = None
    # Likewise above this (ENTITY-SENSOR-MIB's +1000000000 "overflow").
    valid_max: float | None = None

    @model_validator(mode="after")
    def _known_unit(self) -> Symbol:
        if self.unit is not None and self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}: expected one of {', '.join(UNITS)}")
        return self


class Tag(_Strict):
    tag: str
    column: Column | None = None
    index: int | None = Field(None, ge=1, description="1-based part of the row index")

    @model_validator(mode="after")
    def _one_source(self) -> Tag:
        if (self.column is None) == (self.index is None):
            raise ValueError("a metric tag takes exactly one of column or index")
        return self


class Filter(_Strict):
    """Keep only rows whose column value, or 1-based index part, is one of `equals`."""

    column: Column | None = None
    index: int | None = Field(None, ge=1, description="1-based part of the row index")
    equals: list[int | str]

    @model_validator(mode="after")
    def _one_source(self) -> Filter:
        if (self.column is None) == (self.index is None):
            raise ValueError("a filter takes exactly one of column or index")
        return self


class Metric(_Strict):
    MIB: str | None = None
    measurement: str = POWER
    scope: str = "device"
    # Scalars: entity defaults to "total". Tables: the row index, a column, or
    # {index: [...]}: parts of the row index.
    entity: str | Column | IndexEntity | None = None
    label: Column | None = None
    symbol: Symbol | None = None
    table: OidRef | None = None
    symbols: list[Symbol] = []
    metric_tags: list[Tag] = []
    filter: Filter | None = None

    @model_validator(mode="after")
    def _shape(self) -> Metric:
        if (self.symbol is None) == (self.table is None):
            raise ValueError("a metric takes either symbol (a scalar) or table with symbols")
        if self.table is not None and not self.symbols:
            raise ValueError("a table metric needs symbols")
        if self.symbol is not None and (self.symbols or self.metric_tags or self.filter):
            raise ValueError("symbols, metric_tags and filter belong to table metrics")
        if self.symbol is not None and isinstance(self.entity, IndexEntity):
            raise ValueError("entity: {index: [...]} takes parts of a table's row index: a scalar has none")
        return self

    def schema_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(place within this metric, message) for every symbol that feeds a field the
        metric schema does not have, or in a unit of the wrong dimension. Checked after
        validation so that each message can point at the symbol's own line."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.measurement not in FIELDS:
            problems.append((("measurement",), f"unknown measurement {self.measurement!r}: expected one of {', '.join(FIELDS)}"))
            return problems
        places = [("symbol",)] if self.symbol is not None else [("symbols", i) for i in range(len(self.symbols))]
        for place, sym in zip(places, self.all_symbols()):
            measurement = sym.measurement or self.measurement
            fields = FIELDS.get(measurement)
            if fields is None:
                problems.append((place + ("measurement",),
                                 f"unknown measurement {measurement!r}: expected one of {', '.join(FIELDS)}"))
            elif sym.field not in fields:
                problems.append((place + ("field",),
                                 f"{sym.name}: field {sym.field!r} is not in measurement {measurement!r} "
                                 f"(expected one of {', '.join(fields)}; see docs/metrics.md)"))
            elif sym.unit is not None and UNITS[sym.unit][0] != fields[sym.field]:
                problems.append((place + ("unit",),
                                 f"{sym.name}: unit {sym.unit} measures {UNITS[sym.unit][0]}, "
                                 f"but field {sym.field} is {fields[sym.field]}"))
        for i, tag in enumerate(self.metric_tags):
            if tag.tag in RESERVED_TAGS:
                problems.append((("metric_tags", i, "tag"),
                                 f"tag name {tag.tag!r} is reserved by the metric schema ({', '.join(RESERVED_TAGS)})"))
        return problems

    def all_symbols(self) -> list[Symbol]:
        return [self.symbol] if self.symbol is not None else list(self.symbols)


def _oid_list(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        out = []
        for item in value:
            text = str(item).strip().lstrip(".")
            if not _OID_PATTERN.match(text):
                raise ValueError(f"malformed sysobjectid pattern {shown(item)}: dotted numbers, * for any")
            out.append(text)
        return out
    return value


class ProfileFile(_Strict):
    """What one profile file holds, as written."""

    description: str | None = None
    sysobjectid: Annotated[list[str], BeforeValidator(_oid_list)] = []
    extends: list[str] = []
    kind: str | None = None
    # SNMP tuning some devices need (e.g. ServerTech Sentry3 wants small bulks).
    max_repetitions: int | None = Field(None, ge=1, le=500)
    metrics: list[Metric] = []

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str | None) -> str | None:
        # A field validator, so that the message points at the kind: line.
        if value is not None and value not in KINDS:
            raise ValueError(f"unknown kind {shown(value)}: expected one of {', '.join(KINDS)}")
        return value


@dataclass(frozen=True)
class Profile:
    """A profile with its `extends` resolved: everything the poller needs."""

    name: str
    path: Path
    description: str
    sysobjectid: tuple[str, ...]
    kind: str | None
    max_repetitions: int | None
    metrics: tuple[Metric, ...]
    extends: tuple[str, ...] = ()

    @cached_property
    def scalar_oids(self) -> tuple[str, ...]:
        """Every scalar OID to GET: values and the scales they refer to."""
        oids: dict[str, None] = {}
        for m in self.metrics:
            if m.symbol is not None:
                oids[m.symbol.OID] = None
                for ref in (m.symbol.decimals_from, m.symbol.si_prefix_from):
                    if ref is not None:
                        oids[ref.OID] = None
        return tuple(oids)

    @cached_property
    def tables(self) -> tuple[tuple[str, ...], ...]:
        """The columns to walk, one group per table metric (walked side by side)."""
        groups: dict[tuple[str, ...], None] = {}
        for m in self.metrics:
            if m.table is not None:
                groups[_metric_columns(m)] = None
        return tuple(groups)

    @cached_property
    def column_oids(self) -> tuple[str, ...]:
        """Every column any table metric reads: values, tags, labels, filters, scales."""
        return tuple(dict.fromkeys(col for group in self.tables for col in group))


def _metric_columns(m: Metric) -> tuple[str, ...]:
    cols: dict[str, None] = {}
    for sym in m.symbols:
        cols[sym.OID] = None
        for ref in (sym.decimals_from, sym.si_prefix_from):
            if ref is not None:
                cols[ref.OID] = None
    for ref in (m.label, m.entity if isinstance(m.entity, OidRef) else None):
        if ref is not None:
            cols[ref.OID] = None
    for tag in m.metric_tags:
        if tag.column is not None:
            cols[tag.column.OID] = None
    if m.filter is not None and m.filter.column is not None:
        cols[m.filter.column.OID] = None
    return tuple(cols)


@dataclass
class ProfileSet:
    """All profiles known to a run: shipped ones and the user's, by name."""

    profiles: dict[str, Profile] = field(default_factory=dict)

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise KeyError(
                f"unknown profile {name!r}: known profiles are {', '.join(sorted(self.profiles))}"
            ) from None

    def combined(self, names: list[str]) -> Profile:
        """One profile, or several read together (`profile: [ups-mib, if-mib]`)."""
        if len(names) == 1:
            return self.get(names[0])
        parts = [self.get(n) for n in names]
        return Profile(
            name="+".join(names),
            path=parts[0].path,
            description=" + ".join(p.description or p.name for p in parts),
            sysobjectid=(),
            kind=next((p.kind for p in parts if p.kind), None),
            max_repetitions=min((p.max_repetitions for p in parts if p.max_repetitions), default=None),
            metrics=tuple(m for p in parts for m in p.metrics),
            extends=tuple(names),
        )

    def match(self, sysobjectid: str) -> Profile | None:
        """The most specific profile whose pattern matches: an exact OID beats a
        wildcard, and a longer literal prefix beats a shorter one. On a tie the one
        loaded last wins, so a user's profile_dirs beat the shipped profiles."""
        best: tuple[tuple[int, int], Profile] | None = None
        for profile in self.profiles.values():
            for pattern in profile.sysobjectid:
                score = _match_score(pattern, sysobjectid)
                if score is not None and (best is None or score >= best[0]):
                    best = (score, profile)
        return best[1] if best else None


def _match_score(pattern: str, oid: str) -> tuple[int, int] | None:
    """None if no match; else (exact?, literal arcs) so that higher is more specific."""
    if "*" not in pattern:
        return (1, pattern.count(".") + 1) if pattern == oid else None
    parts = pattern.split(".")
    # An inner * stands for one arc; a trailing * for one arc or more.
    regex = r"\.".join(r"\d+" if p == "*" else re.escape(p) for p in parts[:-1])
    regex += r"\.\d+(\.\d+)*" if parts[-1] == "*" else r"\." + re.escape(parts[-1])
    if not re.fullmatch(regex, oid):
        return None
    return (0, sum(1 for p in parts if p != "*"))


def _read_file(path: Path) -> tuple[ProfileFile, yaml.Node | None]:
    spec, node = parse_model_with_node(ProfileFile, path)
    problems = [
        problem_at(path, node, ("metrics", i, *place), message)
        for i, metric in enumerate(spec.metrics)
        for place, message in metric.schema_problems()
    ]
    if problems:
        raise InputError(problems)
    return spec, node


def load_profiles(extra_dirs: list[Path] | None = None) -> ProfileSet:
    """Load the shipped profiles, then each extra folder's (a later one of the same
    name replaces an earlier one). Every problem in every file is reported at once."""
    files: dict[str, Path] = {}
    for folder in [SHIPPED_DIR, *(extra_dirs or [])]:
        if not folder.is_dir():
            raise InputError([f"{folder}: profile folder does not exist"])
        for path in sorted(folder.glob("*.yaml")):
            files[path.stem] = path
    raw: dict[str, ProfileFile] = {}
    nodes: dict[str, yaml.Node | None] = {}
    problems: list[str] = []
    for name, path in files.items():
        try:
            raw[name], nodes[name] = _read_file(path)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    bad, problems = _check_extends(raw, files, nodes)
    if problems:
        raise InputError(problems)
    resolved: dict[str, Profile] = {}
    for name in raw:
        if name not in bad:
            _resolve(name, raw, files, resolved)
    return ProfileSet(resolved)


# Deeper chains are a mistake (shipped profiles go three deep); the limit also keeps
# _resolve's recursion far from Python's.
MAX_EXTENDS = 16


def _check_extends(
    raw: dict[str, ProfileFile], files: dict[str, Path], nodes: dict[str, yaml.Node | None]
) -> tuple[set[str], list[str]]:
    """The profiles that cannot be resolved, and a problem at the `extends` line of each
    unknown base, loop, or chain longer than MAX_EXTENDS. A depth-first walk with its
    own stack, so that a chain thousands long is refused, not a RecursionError."""
    depth: dict[str, int] = {}  # profiles in the longest chain from it, itself included
    bad: set[str] = set()
    problems: list[str] = []
    for root in raw:
        if root in depth or root in bad:
            continue
        stack: list[list[Any]] = [[root, 0]]  # [name, next extends index]
        on_path: dict[str, int] = {root: 0}
        while stack:
            frame = stack[-1]
            name, i = frame
            bases = raw[name].extends
            if i < len(bases):
                frame[1] += 1
                base = bases[i]
                here = (files[name], nodes[name], ("extends", i))
                if base not in raw:
                    problems.append(problem_at(*here, f"unknown profile {base!r} (known: {', '.join(sorted(raw))})"))
                    bad.add(name)
                elif base in on_path:
                    loop = [f[0] for f in stack[on_path[base]:]] + [base]
                    problems.append(problem_at(*here, f"extends loops: {' -> '.join(loop)}"))
                    bad.add(name)
                elif base in bad:
                    bad.add(name)
                elif base not in depth:
                    on_path[base] = len(stack)
                    stack.append([base, 0])
                continue
            stack.pop()
            del on_path[name]
            if name not in bad and any(b in bad for b in bases):
                bad.add(name)
            if name in bad:
                continue
            depth[name] = 1 + max((depth[b] for b in bases), default=0)
            if depth[name] > MAX_EXTENDS:
                # Reported once, at the profile that first goes over; those extending
                # it are refused with it.
                bad.add(name)
                if all(depth[b] <= MAX_EXTENDS for b in bases):
                    deepest = max(range(len(bases)), key=lambda j: depth[bases[j]])
                    chain = [name]
                    while raw[chain[-1]].extends:
                        chain.append(max(raw[chain[-1]].extends, key=depth.__getitem__))
                    problems.append(problem_at(files[name], nodes[name], ("extends", deepest),
                                               f"extends chains {depth[name]} profiles deep (at most "
                                               f"{MAX_EXTENDS}): {' -> '.join(chain)}"))
    return bad, problems


def _resolve(name: str, raw: dict[str, ProfileFile], files: dict[str, Path], done: dict[str, Profile]) -> Profile:
    """The profile with its bases' metrics before its own (bases checked beforehand)."""
    if name in done:
        return done[name]
    spec = raw[name]
    metrics: list[Metric] = []
    kind = spec.kind
    max_rep = spec.max_repetitions
    for base_name in spec.extends:
        base = _resolve(base_name, raw, files, done)
        metrics.extend(base.metrics)
        kind = kind or base.kind
        max_rep = max_rep or base.max_repetitions
    metrics.extend(spec.metrics)
    profile = Profile(
        name=name,
        path=files[name],
        description=spec.description or "",
        sysobjectid=tuple(spec.sysobjectid),
        kind=kind,
        max_repetitions=max_rep,
        metrics=tuple(metrics),
        extends=tuple(spec.extends),
    )
    done[name] = profile
    return profile
