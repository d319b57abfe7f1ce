"""Carbon from the GB Carbon Intensity API, against a local aiohttp server speaking
the API's documented JSON: the half-hourly figures are used, matched to the hour;
with the server down, the annual factor is used and recorded as the method."""

from __future__ import annotations

import datetime as dt
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web
from realparts.influx import InfluxServer
from realparts.web import serve

from energy.rollup import Rollup, site_inputs
from greenwatch.config import load_config
from greenwatch.core.influx import query_client

UTC = dt.UTC
DAY = dt.datetime(2025, 6, 10, tzinfo=UTC)
WATTS = 1200.0


def g_per_kwh(start: dt.datetime, regional: bool) -> int:
    """A different figure for every half-hour, so a misaligned lookup shows."""
    return int((start - DAY).total_seconds() // 1800) * 3 + (40 if regional else 100)


def periods(a: dt.datetime, b: dt.datetime, regional: bool) -> list[dict]:
    out, t = [], a
    while t < b:
        intensity = {"forecast": g_per_kwh(t, regional) + 7, "index": "moderate"}
        if not regional:
            intensity["actual"] = g_per_kwh(t, regional)  # actual wins over forecast
        row = {"from": t.strftime("%Y-%m-%dT%H:%MZ"), "to": (t + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ"),
               "intensity": intensity}
        out.append(row)
        t += dt.timedelta(minutes=30)
    return out


@pytest.fixture
async def api():
    calls: list[str] = []

    def parse(text: str) -> dt.datetime:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)

    async def national(request: web.Request) -> web.Response:
        calls.append(request.path)
        a, b = parse(request.match_info["a"]), parse(request.match_info["b"])
        return web.json_response({"data": periods(a, b, regional=False)})

    async def regional(request: web.Request) -> web.Response:
        calls.append(request.path)
        a, b = parse(request.match_info["a"]), parse(request.match_info["b"])
        region = int(request.match_info["id"])
        return web.json_response({"data": {"regionid": region, "dnoregion": "UKPN London", "shortname": "London",
                                           "data": periods(a, b, regional=True)}})

    app = web.Application()
    app.router.add_get("/intensity/{a}/{b}", national)
    app.router.add_get("/regional/intensity/{a}/{b}/regionid/{id}", regional)
    runner, url = await serve(app)
    yield url, calls, runner
    await runner.cleanup()


def write_day(influxdb: InfluxServer, db: str) -> None:
    lines = []
    t0 = int(DAY.timestamp()) - 3600 + 23
    for i in range(26 * 60):
        t = t0 + 60 * i
        for site in ("national", "london"):
            lines.append(f"power,site={site},device=m,scope=device,entity=total watts={WATTS} {t}000000000")
    urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/write?db={db}", data="\n".join(lines).encode(),
                                                  method="POST"))


def config_file(tmp_path: Path, influxdb: InfluxServer, db: str, api_url: str) -> Path:
    path = tmp_path / "greenwatch.yaml"
    path.write_text(f"""\
influxdb: {{url: "{influxdb.url}", database: {db}}}
spool: {{path: {tmp_path / 'spool.db'}}}
sites:
  - name: national
    carbon: {{method: intensity, api_url: "{api_url}"}}
  - name: london
    carbon: {{method: intensity, api_url: "{api_url}", region: 13}}
""")
    return path


async def roll(path: Path) -> None:
    config = load_config(path)
    client = query_client(config.influxdb)
    try:
        await Rollup(client, site_inputs(config.sites, 60.0, path.parent / "cache")).run(
            DAY, DAY + dt.timedelta(days=1))
    finally:
        await client.close()


def site_rows(influxdb: InfluxServer, db: str, site: str) -> dict[int, dict]:
    rows = influxdb.rows(f"SELECT kwh, kgco2e, carbon_method FROM site_energy WHERE site='{site}'", db)
    return {r["time"] // 10**9: r for r in rows}


async def test_half_hourly_figures_are_used_time_matched(influxdb, influx_db, tmp_path, api) -> None:
    url, calls, _ = api
    write_day(influxdb, influx_db)
    await roll(config_file(tmp_path, influxdb, influx_db, url))
    for site, regional in (("national", False), ("london", True)):
        rows = site_rows(influxdb, influx_db, site)
        assert len(rows) == 24
        for t, row in rows.items():
            start = dt.datetime.fromtimestamp(t, UTC)
            factor = (g_per_kwh(start, regional) + g_per_kwh(start + dt.timedelta(minutes=30), regional)) / 2
            if regional:
                factor += 7  # regional figures are forecasts only
            assert row["kwh"] == pytest.approx(WATTS / 1000, rel=1e-6)
            assert row["kgco2e"] == pytest.approx(row["kwh"] * factor / 1000, rel=1e-9)
            assert row["carbon_method"] == "intensity"
        series = influxdb.rows(f"SELECT kgco2e, carbon_method FROM energy WHERE site='{site}'", influx_db)
        assert {r["carbon_method"] for r in series} == {"intensity"}
    assert "/intensity/2025-06-10T00:00Z/2025-06-11T00:00Z" in calls
    assert "/regional/intensity/2025-06-10T00:00Z/2025-06-11T00:00Z/regionid/13" in calls


async def test_server_down_falls_back_to_the_annual_factor(influxdb, influx_db, tmp_path, api) -> None:
    url, _, runner = api
    await runner.cleanup()  # nothing listens there any more
    write_day(influxdb, influx_db)
    await roll(config_file(tmp_path, influxdb, influx_db, url))
    rows = site_rows(influxdb, influx_db, "national")
    assert len(rows) == 24
    for row in rows.values():
        assert row["carbon_method"] == "annual"
        assert row["kgco2e"] == pytest.approx(row["kwh"] * 0.17700, rel=1e-9)  # DESNZ 2025


async def test_answers_are_cached_on_disk(influxdb, influx_db, tmp_path, api) -> None:
    url, _, runner = api
    write_day(influxdb, influx_db)
    path = config_file(tmp_path, influxdb, influx_db, url)
    await roll(path)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["national-2025-06-10.json",
                                                                      "region13-2025-06-10.json"]
    await runner.cleanup()
    influxdb.query('DROP MEASUREMENT "site_energy"', db=influx_db)
    await roll(path)  # the API is gone, the cache answers
    assert {r["carbon_method"] for r in site_rows(influxdb, influx_db, "national").values()} == {"intensity"}
