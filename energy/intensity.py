"""The GB Carbon Intensity API's half-hourly figures (gCO2/kWh), national or for one
region, fetched with aiohttp one UTC day at a time and cached on disk.

National: GET {api}/intensity/{from}/{to} ->
    {"data": [{"from": "2025-01-01T00:00Z", "to": "...T00:30Z",
               "intensity": {"forecast": 180, "actual": 175, "index": "moderate"}}, ...]}
Regional: GET {api}/regional/intensity/{from}/{to}/regionid/{id} ->
    {"data": {"regionid": 13, ..., "data": [{"from", "to", "intensity": {"forecast", "index"}}, ...]}}

`actual` is used where given, else `forecast` (regional figures are forecasts only).
Only days that ended at least a day ago are cached: the API revises the latest ones.
When the API cannot be reached the caller falls back to the annual factor and records
that it did (`carbon_method`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger("greenwatch.energy")

UTC = dt.UTC
HALF_HOUR_S = 1800


def cache_dir_beside(spool_path: Path) -> Path:
    """Where the API's answers are cached: beside the spool, which is writable."""
    return spool_path.parent / "carbon-intensity-cache"


class IntensitySource:
    """Half-hourly intensity for one API and region, by the half-hour's start (epoch s)."""

    def __init__(self, api_url: str, region: int | None, cache_dir: Path | None, timeout_s: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.region = region
        self.cache_dir = cache_dir
        self.timeout_s = timeout_s
        self._days: dict[dt.date, dict[int, float]] = {}
        self._failed: set[dt.date] = set()

    def _cache_file(self, day: dt.date) -> Path | None:
        if self.cache_dir is None:
            return None
        where = "national" if self.region is None else f"region{self.region}"
        return self.cache_dir / f"{where}-{day.isoformat()}.json"

    def _url(self, day: dt.date) -> str:
        start = dt.datetime.combine(day, dt.time(), UTC)
        # Ask for the whole UTC day; parse_intensity keeps the half-hours starting in it.
        a, b = start.strftime("%Y-%m-%dT%H:%MZ"), (start + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%MZ")
        if self.region is None:
            return f"{self.api_url}/intensity/{a}/{b}"
        return f"{self.api_url}/regional/intensity/{a}/{b}/regionid/{self.region}"

    async def load(self, days: list[dt.date], session: aiohttp.ClientSession | None = None) -> None:
        """Fetch (or read from the cache) every day not yet known. A day that cannot be
        fetched is remembered as missing for this run: no retry storm."""
        wanted = [d for d in days if d not in self._days and d not in self._failed]
        if not wanted:
            return
        own = session is None
        if own:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        try:
            for day in wanted:
                figures = self._read_cache(day)
                if figures is None:
                    figures = await self._fetch(session, day)
                if figures is None:
                    self._failed.add(day)
                else:
                    self._days[day] = figures
        finally:
            if own:
                await session.close()

    def _read_cache(self, day: dt.date) -> dict[int, float] | None:
        path = self._cache_file(day)
        if path is None or not path.exists():
            return None
        try:
            return {int(k): float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            log.warning("ignoring unreadable carbon intensity cache file %s", path)
            return None

    async def _fetch(self, session: aiohttp.ClientSession, day: dt.date) -> dict[int, float] | None:
        url = self._url(day)
        try:
            async with session.get(url, headers={"Accept": "application/json"}) as response:
                if response.status != 200:
                    log.warning("carbon intensity API %s answered HTTP %d; using the annual factor", url, response.status)
                    return None
                body = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            log.warning("carbon intensity API %s unreachable (%s); using the annual factor", url, type(exc).__name__)
            return None
        figures = parse_intensity(body, day)
        if figures is None:
            log.warning("carbon intensity API %s: unexpected answer; using the annual factor", url)
            return None
        path = self._cache_file(day)
        ended = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), UTC)
        if path is not None and dt.datetime.now(UTC) - ended >= dt.timedelta(days=1):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(figures))
            tmp.replace(path)  # atomic: a crash never leaves half a file
        return figures

    def hour_factor(self, hour_start_s: int) -> float | None:
        """kgCO2e/kWh for the UTC hour starting at `hour_start_s`: the mean of its two
        half-hours; None if either is missing."""
        day = dt.datetime.fromtimestamp(hour_start_s, UTC).date()
        figures = self._days.get(day)
        if figures is None:
            return None
        halves = [figures.get(hour_start_s), figures.get(hour_start_s + HALF_HOUR_S)]
        if any(h is None for h in halves):
            return None
        return sum(halves) / 2 / 1000.0  # g -> kg  # type: ignore[arg-type]


def parse_intensity(body: Any, day: dt.date) -> dict[int, float] | None:
    """{half-hour start epoch s: gCO2/kWh} for the half-hours starting in `day`."""
    try:
        rows = body["data"]
        if isinstance(rows, dict):  # regional: the periods sit one level down
            rows = rows["data"]
        elif rows and isinstance(rows, list) and isinstance(rows[0], dict) and "regionid" in rows[0]:
            rows = rows[0]["data"]
        out: dict[int, float] = {}
        for row in rows:
            start = dt.datetime.strptime(row["from"], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
            if start.date() != day:
                continue
            intensity = row["intensity"]
            value = intensity.get("actual")
            if value is None:
                value = intensity.get("forecast")
            if value is not None:
                out[int(start.timestamp())] = float(value)
        return out
    except (KeyError, TypeError, ValueError, IndexError):
        return None
