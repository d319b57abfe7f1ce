"""The simulator's curves, live: each site is simulated (simulate.history.simulate_site)
over a two-day window around now (from yesterday's UTC midnight) on a one-minute grid,
and read at the current minute: deterministic, the same minute gives the same reading in
every process. The window is redone at each UTC midnight; within it, energy counters only
grow (a device's counter restarts when it is redone, which the rollups read as a reset)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from greenwatch.config import Config
from greenwatch.core.schema import POLL
from simulate.history import Series, Sim, simulate_site

STEP_S = 60
WINDOW_S = 2 * 86400  # a day back and a day ahead: counters restart only when it is redone


@dataclass
class Reading:
    """One series of a device at an instant: its scope, entity, label and fields."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, float]


class LiveEstate:
    """Every site's simulation over the current window; `readings(site, device)` at now."""

    def __init__(self, config: Config, seed: int = 1) -> None:
        self.config = config
        self.seed = seed
        # (window start, site -> simulation), replaced whole: the HTTP handlers and the
        # SNMP writer's thread may read it while the other redoes it.
        self._window: tuple[int, dict[str, Sim]] = (0, {})

    def _sims(self, now: float) -> tuple[int, dict[str, Sim]]:
        start, sims = self._window
        if sims and start <= now < start + WINDOW_S - STEP_S:
            return start, sims
        # Windows on a fixed grid (UTC midnights): every process simulates the same window,
        # so a given minute reads the same in all of them (the demo and its test alike).
        half = WINDOW_S // 2
        start = int(now) // half * half - half
        times = np.arange(start, start + WINDOW_S, STEP_S, dtype=np.int64)
        self._window = (start, {site.name: simulate_site(site, times, STEP_S, self.seed) for site in self.config.sites})
        return self._window

    def readings(self, site: str, device: str, now: float | None = None) -> list[Reading]:
        """The device's series at `now` (default: the current time), as the simulator
        would have written them for this minute."""
        now = time.time() if now is None else now
        start, sims = self._sims(now)
        sim = sims[site]
        i = min(int(now - start) // STEP_S, sim.n - 1)
        return [Reading(s.measurement, dict(s.tags), {k: _at(s, v, i, sim.n) for k, v in s.fields.items()
                                                      if v.dtype.kind not in "US"})
                for s in sim.series.get(device, []) if s.measurement != POLL]

    def watts(self, site: str, device: str, now: float | None = None) -> float:
        """The device's total power now (its device/inlet/output total)."""
        for r in self.readings(site, device, now):
            if r.measurement == "power" and r.tags.get("scope") in ("device", "inlet", "output") \
                    and r.tags.get("entity") in ("total", "1") and "watts" in r.fields:
                return r.fields["watts"]
        return 0.0


def _at(series: Series, values: np.ndarray, i: int, n: int) -> float:
    # Some arrays are built thinned to the device's polls (every n-th grid point).
    j = i if len(values) == n else min(i // max(series.every, 1), len(values) - 1)
    return float(values[j])
