"""Energy from raw readings, in Python: the reference the InfluxQL rollup must agree
with, and the path it takes for the rare series-hour with a long gap or a counter
reset (and the benchmark's naive peer).

The policy (docs/energy.md):
- Between two consecutive readings no more than `max_gap_s` apart the value is taken
  as changing linearly; a longer gap contributes nothing (and lowers coverage).
- `integral`: watts integrated by the trapezoid rule.
- `counter`: the difference of the device's kWh counter; a drop means the meter
  restarted from zero, so the later reading itself is what was used since.
- A segment that crosses the window's edge is split by time: the part inside counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

Method = Literal["counter", "integral"]


def energy_in(
    points: Sequence[tuple[float, float]], method: Method, start_s: float, end_s: float, max_gap_s: float
) -> tuple[float, float]:
    """(kWh, seconds covered) inside [start_s, end_s) from (time_s, value) readings in
    time order; value is watts (integral) or the kWh counter (counter)."""
    kwh = 0.0
    covered = 0.0
    for (t0, v0), (t1, v1) in pairwise(points):
        dt = t1 - t0
        if dt <= 0 or dt > max_gap_s or t1 <= start_s or t0 >= end_s:
            continue
        a, b = max(t0, start_s), min(t1, end_s)
        covered += b - a
        if method == "counter":
            used = v1 - v0 if v1 >= v0 else v1  # a drop: restarted from zero
            kwh += used * (b - a) / dt
        else:
            wa = v0 + (v1 - v0) * (a - t0) / dt
            wb = v0 + (v1 - v0) * (b - t0) / dt
            kwh += (wa + wb) / 2 * (b - a) / 3_600_000.0  # watt-seconds -> kWh
    return kwh, covered


def counter_at(
    before: tuple[float, float] | None, after: tuple[float, float] | None, at_s: float, max_gap_s: float
) -> float | None:
    """The counter interpolated at `at_s` from the last reading before it and the
    first at or after it; None when the two are too far apart to bridge."""
    if after is not None and after[0] == at_s:
        return after[1]
    if before is None or after is None or after[0] - before[0] > max_gap_s or after[1] < before[1]:
        return None
    (t0, v0), (t1, v1) = before, after
    return v0 + (v1 - v0) * (at_s - t0) / (t1 - t0)
