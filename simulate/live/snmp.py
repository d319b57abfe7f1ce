"""A live SNMP device: the recording of its profile (tests/recordings, the same files
the profile tests read) with every value the profile maps to a schema field the
simulator has replaced by the simulator's reading for this minute. snmpsim re-reads a
data file whose modification time changed, so rewriting the file is enough."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from collector.profiles import IndexEntity, Metric, ProfileSet, Symbol
from greenwatch.core.units import UNITS
from simulate.live.readings import Reading

RECORDINGS = Path(__file__).resolve().parents[2] / "tests" / "recordings"
# A profile whose recording has another name (the Windows profile reads HOST-RESOURCES).
RECORDING_OF = {"windows": "host-resources"}
# snmprec types whose value is a number we may replace.
NUMERIC_TYPES = {"2", "65", "66", "67", "70"}
MAX_UNSIGNED = {"65": 2**32, "66": 2**32, "67": 2**32, "70": 2**64}


def profile_names(profile: str | list[str] | None) -> list[str]:
    return [profile] if isinstance(profile, str) else list(profile or [])


def template(profiles: Iterable[str]) -> dict[tuple[int, ...], tuple[str, str]]:
    """OID -> (type, value) from the profiles' recordings, merged (the first wins)."""
    lines: dict[tuple[int, ...], tuple[str, str]] = {}
    for name in profiles:
        path = RECORDINGS / f"{RECORDING_OF.get(name, name)}.snmprec"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if line.count("|") < 2:
                continue
            oid, kind, value = line.split("|", 2)
            lines.setdefault(tuple(int(p) for p in oid.split(".")), (kind, value))
    return lines


def _entity(metric: Metric, index: tuple[int, ...]) -> str:
    if metric.symbol is not None:
        return metric.entity if isinstance(metric.entity, str) else "total"
    if isinstance(metric.entity, IndexEntity):
        return ".".join(str(index[p - 1]) for p in metric.entity.index if p - 1 < len(index))
    return ".".join(map(str, index))


def _kept(metric: Metric, index: tuple[int, ...]) -> bool:
    f = metric.filter
    if f is None:
        return True
    if f.index is None:  # a filter on another column: not followed here, the row is left as recorded
        return False
    return f.index - 1 < len(index) and index[f.index - 1] in {int(e) for e in f.equals if str(e).isdigit()}


def _raw(symbol: Symbol, value: float) -> float:
    factor = symbol.scale_factor * (UNITS[symbol.unit][1] if symbol.unit else 1.0)
    return value / factor if factor else value


def _find(readings: list[Reading], metric: Metric, symbol: Symbol, entity: str) -> float | None:
    measurement = symbol.measurement or metric.measurement
    candidates = [r for r in readings if r.measurement == measurement and r.tags.get("scope") == metric.scope
                  and symbol.field in r.fields]
    for r in candidates:
        if r.tags.get("entity") == entity:
            return r.fields[symbol.field]
    # A device-wide row the recording indexes (an APC PDU's device table row 1; a UPS's
    # scalars): the one series of that scope is it.
    if len(candidates) == 1 and (entity in ("1", "total") or metric.symbol is not None):
        return candidates[0].fields[symbol.field]
    return None


def snmprec(profiles: ProfileSet, names: list[str], readings: list[Reading]) -> str:
    """The device's data file for now: the recording with the simulator's values."""
    lines = template(names)
    for name in names:
        for metric in profiles.get(name).metrics:
            for symbol in metric.all_symbols():
                base = tuple(int(p) for p in symbol.OID.split("."))
                for oid, (kind, _) in list(lines.items()):
                    if kind not in NUMERIC_TYPES or oid[: len(base)] != base:
                        continue
                    index = oid[len(base):]
                    if metric.symbol is None and (not index or not _kept(metric, index)):
                        continue
                    value = _find(readings, metric, symbol, _entity(metric, index))
                    if value is None:
                        continue
                    raw = round(_raw(symbol, value))
                    raw = raw % MAX_UNSIGNED[kind] if kind in MAX_UNSIGNED else raw
                    lines[oid] = (kind, str(max(raw, 0) if kind != "2" else raw))
    return "".join(f"{'.'.join(map(str, oid))}|{kind}|{value}\n" for oid, (kind, value) in sorted(lines.items()))


def write_atomically(path: Path, text: str) -> None:
    """Replace the file in one step, so snmpsim never reads half of it."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
