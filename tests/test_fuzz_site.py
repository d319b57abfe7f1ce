"""Property-based fuzzing (hypothesis) of a site's tariff, calendar, carbon and energy
sections and of the commitment: whatever the file holds, loading gives an InputError
whose every line names the file and a line, or a config every consumer can use (each
site's calendar, tariff and carbon asked about instants across years and clock
changes, the commitment's sites checked against the config's); never a traceback."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz_loaders import (  # the loader fuzzers' generators and property, not copied
    FUZZ,
    documents,
    field_names,
    folder,  # noqa: F401 - the fixture
    loads_or_names_the_place,
    mutated,
    scalars,
    swapped,
)

from greenwatch.config import Config
from greenwatch.core.calendar import WINDOWS
from greenwatch.core.config import SiteSettings
from greenwatch.core.yamlfile import InputError
from greenwatch.service import load
from reports.commitment import check_sites, counted_sites, trajectory_at, year_end
from reports.config import CommitmentConfig

SITE_SEED = """\
influxdb: {url: http://127.0.0.1:8086, database: greenwatch}
sites:
  - name: dc-north
    timezone: Europe/London
    calendar:
      business_hours: "07:30-19:00"
      working_days: [mon, tue, wed, thu, fri, sat]
      holidays: {country: GB, subdivision: SCT}
      closures: [2026-12-24, 2026-12-31]
    tariff:
      currency: GBP
      bands:
        - {from: "00:00", to: "07:00", rate: 0.12}
        - {from: "07:00", to: "24:00", rate: 0.28, days: weekday}
        - {from: "07:00", to: "24:00", rate: 0.20, days: weekend}
    carbon: {method: annual, include_td_losses: true}
    energy: {facility: [main-meter], it: [ups-1/output, ups-2/output/1], category: 1}
  - name: office
    timezone: America/New_York
    calendar: {business_hours: "09:00-24:00", holidays: null}
    tariff: {rate: 0.3, currency: USD}
    carbon: {factor_kg_per_kwh: 0.4}
  - name: lab
    carbon: {method: intensity, region: 13}
commitment:
  name: Leaders in green technology
  sites: [dc-north, office]
  fixed_factor: 0.2
  baseline:
    from: 2024-01-01
    to: 2025-01-01
    kwh: 1200000
    tco2e: 250
    pue: {dc-north: 1.8}
    after_hours_share: 0.4
  targets:
    - {year: 2027, metric: tco2e, cut_percent: 25}
    - {year: 2030, metric: kwh, cut_percent: 50}
    - {year: 2030, metric: pue, max: 1.4, site: dc-north}
    - {year: 2028, metric: after_hours_share, max: 0.3, sites: [office]}
"""

KEYS = field_names(SiteSettings) | field_names(CommitmentConfig) | {"sites", "commitment", "influxdb"}

# Instants that test the edges: both of London's and New York's clock changes, a
# leap day, the turn of a year, a Sunday night, years outside DESNZ's table.
INSTANTS = [
    dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC), dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 8, 6, 30, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC),
    dt.datetime(2028, 2, 29, 12, 0, tzinfo=dt.UTC), dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 27, 22, 45, tzinfo=dt.UTC), dt.datetime(2001, 6, 1, 8, 0, tzinfo=dt.UTC),
    dt.datetime(2099, 6, 1, 8, 0, tzinfo=dt.UTC),
]


def every_consumer_can_use(config: Config, path: Path) -> None:
    """What rollups, rules and reports ask of a loaded site and commitment."""
    for site in config.sites:
        for when in INSTANTS:
            local = when.astimezone(site.zone)
            narrow = site.calendar.window_of(local)
            assert narrow in WINDOWS
            assert site.calendar.in_window(local, "after_hours") == (narrow != "business_hours")
            rate = site.tariff.mean_rate(when, site.zone)
            assert math.isfinite(rate) and rate >= 0
            factor, method = site.carbon.fixed_factor(local.year)
            assert 0 < factor < 5 and method in ("factor", "annual")
    commitment = config.commitment
    if commitment is None:
        return
    try:
        check_sites(config, path)
    except InputError as exc:
        assert all(p.startswith(f"{path}:") and "no site" in p for p in exc.problems), exc.problems
        return
    assert {s.name for s in counted_sites(config)} <= {s.name for s in config.sites}
    for target in commitment.targets:
        start = dt.datetime.combine(commitment.baseline.end, dt.time(), dt.UTC)
        line = [(start, 100.0), (year_end(target.year), 50.0)]
        assert 50.0 <= trajectory_at(line, start + (year_end(target.year) - start) / 2) <= 100.0


def check(path: Path) -> None:
    # No section here holds a secret: a value is named back as written.
    loaded = loads_or_names_the_place(load, path, secrets=False)
    if loaded is not None:
        every_consumer_can_use(loaded.config, path)


def test_the_seed_is_valid_and_used(folder):  # noqa: F811
    path = folder / "greenwatch.yaml"
    path.write_text(SITE_SEED)
    config = load(path).config
    assert [s.name for s in config.sites] == ["dc-north", "office", "lab"]
    assert config.commitment is not None and len(config.commitment.targets) == 4
    every_consumer_can_use(config, path)
    # The seed's bands are used: a weekday evening at the day rate, a Saturday's at the weekend's.
    north = config.sites[0]
    assert north.tariff.mean_rate(dt.datetime(2026, 6, 3, 18, 0, tzinfo=dt.UTC), north.zone) == pytest.approx(0.28)
    assert north.tariff.mean_rate(dt.datetime(2026, 6, 6, 18, 0, tzinfo=dt.UTC), north.zone) == pytest.approx(0.20)


@settings(FUZZ, max_examples=800)
@given(text=mutated(SITE_SEED))
def test_mistyped_site_sections_load_or_name_the_place(folder, text):  # noqa: F811
    path = folder / "greenwatch.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check(path)


@settings(FUZZ, max_examples=400)
@given(doc=swapped(SITE_SEED, KEYS))
def test_site_sections_with_odd_values_load_or_name_the_place(folder, doc):  # noqa: F811
    path = folder / "greenwatch.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check(path)


CLOCKS = st.one_of(st.sampled_from(["00:00", "24:00", "23:59", "07:00", "7:00", "25:00", "12:60", "24:01",
                                    "-1:00", "06:30", " 08:00 "]), scalars())
BAND = st.fixed_dictionaries({"from": CLOCKS, "to": CLOCKS, "rate": st.one_of(scalars(), st.floats(0, 1))},
                             optional={"days": st.sampled_from(["all", "weekday", "weekend", "sun", None])})
SECTION: dict[str, st.SearchStrategy[Any]] = {
    "tariff": st.one_of(st.fixed_dictionaries({"bands": st.lists(BAND, max_size=5)},
                                              optional={"currency": scalars(), "rate": scalars()}),
                        documents(KEYS)),
    "calendar": st.fixed_dictionaries({}, optional={
        "business_hours": st.one_of(st.builds(lambda a, b: f"{a}-{b}", CLOCKS, CLOCKS), scalars()),
        "working_days": st.one_of(st.lists(st.sampled_from(["mon", "sat", "sun", "Mon", "x", 1]), max_size=8),
                                  scalars()),
        "holidays": st.one_of(st.none(), st.fixed_dictionaries(
            {"country": st.one_of(st.sampled_from(["GB", "IE", "US", "DE", "gb", "XX", "", "UK"]), scalars())},
            optional={"subdivision": st.one_of(st.sampled_from(["ENG", "SCT", "NIR", "WLS", "CA", "BY", "ZZ"]),
                                               scalars())})),
        "closures": st.one_of(st.lists(st.one_of(st.dates(), scalars()), max_size=3), scalars()),
    }),
    "carbon": st.fixed_dictionaries({}, optional={
        "method": st.one_of(st.sampled_from(["annual", "factor", "intensity", "grid"]), scalars()),
        "factor_kg_per_kwh": st.one_of(st.floats(), scalars()),
        "include_td_losses": scalars(), "region": st.one_of(st.integers(-2, 20), scalars()),
        "api_url": scalars(),
    }),
    "energy": st.fixed_dictionaries({}, optional={
        "facility": st.lists(st.one_of(st.sampled_from(["m", "m/", "a/b/c", "a/b/c/d", "/x", "ups/output"]),
                                       scalars()), max_size=3),
        "it": st.lists(st.sampled_from(["ups-1/output", "x", ""]), max_size=3),
        "category": st.one_of(st.sampled_from([1, 2, 3, 0, 4, "1"]), scalars()),
    }),
    "timezone": st.one_of(st.sampled_from(["Europe/London", "UTC", "Etc/GMT+14", "Asia/Kathmandu", "Mars/Olympus",
                                           "../etc/passwd", "europe/london", "", "Europe/London\x00"]), scalars()),
}


@settings(FUZZ, max_examples=400)
@given(sections=st.fixed_dictionaries({}, optional=SECTION))
def test_generated_site_sections_load_or_name_the_place(folder, sections):  # noqa: F811
    path = folder / "greenwatch.yaml"
    doc = {"influxdb": {"url": "http://127.0.0.1:8086", "database": "gw"}, "sites": [{"name": "s", **sections}]}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check(path)
