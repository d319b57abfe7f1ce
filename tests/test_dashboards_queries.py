"""Every panel of every committed dashboard, its queries filled in as Grafana fills
them, runs on a real InfluxDB holding a simulated week (rolled up, rules evaluated)
and returns data. A panel that returns nothing, or that InfluxDB refuses, fails the
test by dashboard and panel."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grafana_queries import Range, fill, has_numbers, panels, values_of, variable_value

from dashboards.build import load
from dashboards.sdk import DATASOURCE_UID
from energy.intensity import cache_dir_beside
from energy.rollup import Rollup, site_inputs
from greenwatch.config import load_config
from greenwatch.core.influx import query_client
from rules.runner import engine_from
from simulate.estate import write_estate_config
from simulate.history import write_history

END = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)  # a Monday: the week before is whole
DAYS = 7
# Five-minute samples: the same curves as one-minute ones at a fifth of the points
# (the rollup bridges gaps up to 5 minutes, so energy stays whole).
STEP_S = 300
DASHBOARDS = load()


class Influx:
    """InfluxQL over HTTP with urllib (not greenwatch's client), as Grafana sends it."""

    def __init__(self, url: str, db: str) -> None:
        self.url, self.db = url, db

    def query(self, text: str) -> dict[str, Any]:
        form = urllib.parse.urlencode({"q": text, "db": self.db, "epoch": "ms"}).encode()
        with urllib.request.urlopen(self.url + "/query", data=form, timeout=60) as response:
            return json.loads(response.read())


def _error(answer: dict[str, Any]) -> str | None:
    return answer.get("error") or next((r["error"] for r in answer.get("results", []) if r.get("error")), None)


async def _simulate(config_path: Path) -> int:
    config = load_config(config_path)
    await write_history(config, END, DAYS, seed=1, step_s=STEP_S)
    client = query_client(config.influxdb)
    try:
        sites = site_inputs(config.sites, config.defaults.interval, cache_dir_beside(config.spool.path))
        await Rollup(client, sites).run(END - dt.timedelta(days=DAYS), END)
        return len(await engine_from(client, config.rules, config.sites).run(END))
    finally:
        await client.close()


@pytest.fixture(scope="module")
def week(influxdb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx]:
    """The demo estate's week in a database of the session's influxd."""
    db = f"dash_{uuid.uuid4().hex[:10]}"
    path = write_estate_config(tmp_path_factory.mktemp("estate"), influxdb.url, db)
    findings = asyncio.run(_simulate(path))
    assert findings > 0, "the rules found nothing in the simulated week: the Opportunities panels would be empty"
    try:
        yield Influx(influxdb.url, db)
    finally:
        influxdb.drop_database(db)


RANGE = Range(int((END - dt.timedelta(days=DAYS)).timestamp() * 1000), int(END.timestamp() * 1000))


def _variables(model: dict[str, Any], influx: Influx, chosen: dict[str, list[str]] | None = None
               ) -> tuple[dict[str, str], list[str]]:
    """Each variable's value as Grafana substitutes it (All unless `chosen`), its own
    query run with the variables before it filled in; problems named."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            answer = influx.query(fill(variable["query"], RANGE, values))
            options = [row[1] for row in values_of(answer)]
            if _error(answer) or not options:
                problems.append(f"{model['title']}: variable ${variable['name']}: "
                                f"{_error(answer) or 'no values'}: {variable['query']}")
        values[variable["name"]] = variable_value(variable, (chosen or {}).get(variable["name"]))
    return values, problems


def _panel_problems(model: dict[str, Any], influx: Influx, values: dict[str, str]) -> list[str]:
    problems = []
    for panel in panels(model):
        for target in panel.get("targets", []):
            query = fill(target["query"], RANGE, values, panel.get("interval"))
            answer = influx.query(query)
            if _error(answer) or not has_numbers(answer):
                problems.append(f"{model['title']} / panel {panel['title']!r} (query {target['refId']}): "
                                f"{_error(answer) or 'returned no data'}\n    {query}")
    for annotation in model.get("annotations", {}).get("list", []):
        answer = influx.query(fill(annotation["query"], RANGE, values))
        if _error(answer) or not values_of(answer):
            problems.append(f"{model['title']} / annotation {annotation['name']!r}: "
                            f"{_error(answer) or 'returned nothing'}")
    return problems


@pytest.mark.parametrize("model", DASHBOARDS, ids=[m["uid"] for m in DASHBOARDS])
def test_every_panel_returns_data(week: Influx, model: dict[str, Any]) -> None:
    values, problems = _variables(model, week)
    problems += _panel_problems(model, week, values)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("model", DASHBOARDS, ids=[m["uid"] for m in DASHBOARDS])
def test_every_panel_returns_data_with_sites_chosen(week: Influx, model: dict[str, Any]) -> None:
    """Sites picked one by one in the picker (Grafana sends `(dc\\-london|office\\-1)`,
    escaped) rather than All: the regexes must still match."""
    sites = [row[1] for row in values_of(week.query('SHOW TAG VALUES FROM "power" WITH KEY = "site"'))]
    assert len(sites) >= 2
    values, problems = _variables(model, week, {"site": sites})
    assert values["site"].startswith("(") and "\\-" in values["site"]
    problems += _panel_problems(model, week, values)
    assert not problems, "\n".join(problems)


def test_the_check_fails_on_an_empty_database(influxdb, influx_db: str) -> None:
    """The check above can fail: with nothing written, every panel is named."""
    model = next(m for m in DASHBOARDS if m["uid"] == "gw-datacentre")
    problems = _panel_problems(model, Influx(influxdb.url, influx_db), _variables(model, Influx(influxdb.url,
                                                                                                 influx_db))[0])
    titled = [p for p in panels(model) if p.get("targets")]
    assert len(problems) >= len(titled)
    assert all(p.startswith("greenwatch: Data centre / panel ") for p in problems[: len(titled)])


def test_figures_come_from_the_rollups(week: Influx) -> None:
    """The estate's cost, carbon and PUE panels show what site_energy holds (the
    numbers are not recomputed from watts), checked against sums read independently."""
    model = next(m for m in DASHBOARDS if m["uid"] == "gw-estate")
    values, _ = _variables(model, week)
    table = next(p for p in panels(model) if p["title"].startswith("kWh, cost, tCO2e and PUE by site"))
    answer = week.query(fill(table["targets"][0]["query"], RANGE, values))
    shown = {s["tags"]["site"]: dict(zip(s["columns"], s["values"][0])) for s in answer["results"][0]["series"]}
    raw = week.query(f'SELECT "kwh", "it_kwh", "cost", "kgco2e", "site" FROM "site_energy" WHERE '
                     f'time >= {RANGE.start_ms}ms AND time <= {RANGE.end_ms}ms')
    columns = raw["results"][0]["series"][0]["columns"]
    totals: dict[str, dict[str, float]] = {}
    for row in raw["results"][0]["series"][0]["values"]:
        point = dict(zip(columns, row))
        site = totals.setdefault(point["site"], {"kwh": 0.0, "it_kwh": 0.0, "cost": 0.0, "kgco2e": 0.0})
        for key in site:
            site[key] += point[key] or 0.0
    assert set(shown) == set(totals) == {"dc-london", "office-1"}
    for site, sums in totals.items():
        assert shown[site]["kWh"] == pytest.approx(sums["kwh"], rel=1e-9)
        assert shown[site]["cost"] == pytest.approx(sums["cost"], rel=1e-9)
        assert shown[site]["tCO2e"] == pytest.approx(sums["kgco2e"] / 1000, rel=1e-9)
    assert shown["dc-london"]["PUE"] == pytest.approx(totals["dc-london"]["kwh"] / totals["dc-london"]["it_kwh"])
    assert 1.2 < shown["dc-london"]["PUE"] < 2.2
    assert shown["office-1"]["PUE"] is None  # an office declares no IT meters


def test_every_query_is_influxql_for_the_provisioned_source() -> None:
    for model in DASHBOARDS:
        for panel in panels(model):
            for target in panel.get("targets", []):
                where = f"{model['uid']} / {panel['title']}"
                assert target["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, where
                assert target["rawQuery"] is True and target["query"].startswith(("SELECT", "SHOW")), where
                assert "$timeFilter" in target["query"], where  # never a query over all time
                assert "from(bucket" not in target["query"], where  # no Flux
                for name in ("site", "room", "rack", "device", "floor"):
                    if f"${name}" in target["query"]:
                        assert f"=~ /^${name}$/" in target["query"], where
