"""A site's calendar (business hours, working days, UK holidays by nation, closures)
and tariff (flat rate or time-of-use bands: overlaps, holes, wrap past midnight,
weekend bands), and how bad ones are reported from a config file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from greenwatch.config import load_config
from greenwatch.core.calendar import Calendar
from greenwatch.core.carbon import DESNZ_UK_ELECTRICITY, Carbon, annual_factor
from greenwatch.core.tariff import Tariff
from greenwatch.core.yamlfile import InputError

LONDON = ZoneInfo("Europe/London")


def test_england_and_scotland_keep_different_bank_holidays() -> None:
    eng = Calendar()  # default: GB / ENG
    sct = Calendar(holidays={"country": "GB", "subdivision": "SCT"})
    assert eng.is_holiday(dt.date(2025, 1, 1)) and sct.is_holiday(dt.date(2025, 1, 1))
    assert not eng.is_holiday(dt.date(2025, 1, 2)) and sct.is_holiday(dt.date(2025, 1, 2))
    assert sct.is_holiday(dt.date(2025, 8, 4)) and not eng.is_holiday(dt.date(2025, 8, 4))
    assert eng.is_holiday(dt.date(2025, 8, 25)) and not sct.is_holiday(dt.date(2025, 8, 25))
    assert sct.window_of(dt.datetime(2025, 1, 2, 10, 0)) == "holidays"
    assert eng.window_of(dt.datetime(2025, 1, 2, 10, 0)) == "business_hours"


def test_windows_closures_and_working_days() -> None:
    cal = Calendar(business_hours="08:30-17:30", working_days=["mon", "tue", "wed", "thu"],
                   closures=[dt.date(2025, 12, 29)], holidays=None)
    assert cal.window_of(dt.datetime(2025, 3, 24, 8, 29)) == "nights"
    assert cal.window_of(dt.datetime(2025, 3, 24, 8, 30)) == "business_hours"
    assert cal.window_of(dt.datetime(2025, 3, 24, 17, 30)) == "nights"
    assert cal.window_of(dt.datetime(2025, 3, 28, 12, 0)) == "weekends"  # a Friday is not a working day here
    assert cal.window_of(dt.datetime(2025, 12, 29, 12, 0)) == "holidays"  # a closure
    assert not cal.is_holiday(dt.date(2025, 12, 25))  # holidays: null
    assert cal.in_window(dt.datetime(2025, 3, 24, 20, 0), "after_hours")
    assert not cal.in_window(dt.datetime(2025, 3, 24, 12, 0), "after_hours")
    with pytest.raises(ValidationError, match="end after they start"):
        Calendar(business_hours="18:00-08:00")
    with pytest.raises(ValidationError, match="knows no country"):
        Calendar(holidays={"country": "XX"})


BANDS = [
    {"from": "07:00", "to": "23:00", "rate": 0.30, "days": "weekday"},
    {"from": "23:00", "to": "07:00", "rate": 0.10, "days": "weekday"},  # wraps past midnight
    {"from": "00:00", "to": "24:00", "rate": 0.15, "days": "weekend"},
]


def test_bands_wrap_midnight_and_split_weekends() -> None:
    t = Tariff(bands=BANDS)
    assert t.rate_at(dt.datetime(2025, 3, 24, 6, 59)) == 0.10
    assert t.rate_at(dt.datetime(2025, 3, 24, 7, 0)) == 0.30
    assert t.rate_at(dt.datetime(2025, 3, 24, 23, 30)) == 0.10
    assert t.rate_at(dt.datetime(2025, 3, 29, 12, 0)) == 0.15  # Saturday
    # 06:30-07:30 local: half at each rate.
    start = dt.datetime(2025, 1, 6, 6, 30, tzinfo=LONDON).astimezone(dt.UTC)
    assert t.mean_rate(start, LONDON) == pytest.approx(0.20)
    # In summer the same UTC hour is an hour later locally: all at the day rate.
    summer = dt.datetime(2025, 7, 7, 6, 30, tzinfo=dt.UTC)
    assert t.mean_rate(summer, LONDON) == pytest.approx(0.30)
    assert Tariff(rate=0.2).mean_rate(summer, LONDON) == 0.2


@pytest.mark.parametrize("bands,message", [
    ([{"from": "00:00", "to": "12:00", "rate": 1}, {"from": "11:00", "to": "24:00", "rate": 2}],
     "bands 00:00-12:00 and 11:00-24:00 overlap at 11:00 on weekdays"),
    ([{"from": "22:00", "to": "06:00", "rate": 1}, {"from": "05:00", "to": "22:00", "rate": 2}],
     "overlap at 05:00"),
    ([{"from": "00:00", "to": "12:00", "rate": 1}, {"from": "12:30", "to": "24:00", "rate": 2}],
     "no band covers 12:00 on weekdays"),
    ([{"from": "00:00", "to": "24:00", "rate": 1, "days": "weekday"}], "no band covers 00:00 on weekends"),
    ([{"from": "00:00", "to": "25:00", "rate": 1}], "no such time of day '25:00'"),
])
def test_bad_bands_are_refused(bands, message) -> None:
    with pytest.raises(ValidationError, match=message):
        Tariff(bands=bands)
    with pytest.raises(ValidationError, match="either rate"):
        Tariff(rate=0.1, bands=[{"from": "00:00", "to": "24:00", "rate": 1}])


def test_carbon_factors_and_methods() -> None:
    assert DESNZ_UK_ELECTRICITY[2024].generation == 0.20705
    assert DESNZ_UK_ELECTRICITY[2025].generation == 0.17700
    assert annual_factor(2030).year == max(DESNZ_UK_ELECTRICITY)  # newest for years not yet published
    assert annual_factor(2010).year == min(DESNZ_UK_ELECTRICITY)
    assert Carbon().fixed_factor(2024) == (0.20705, "annual")
    assert Carbon(factor_kg_per_kwh=0.05).fixed_factor(2024) == (0.05, "factor")
    with_td = Carbon(include_td_losses=True).fixed_factor(2023)[0]
    assert with_td == pytest.approx(0.20707 + 0.01792)
    with pytest.raises(ValidationError, match="region is only for method intensity"):
        Carbon(region=13)


def test_a_bad_tariff_in_a_config_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "greenwatch.yaml"
    path.write_text("sites:\n  - name: hq\n    timezone: Europe/Londres\n    tariff:\n      currency: GBP\n"
                    "      bands:\n        - {from: '00:00', to: '12:00', rate: 0.1}\n")
    with pytest.raises(InputError) as caught:
        load_config(path)
    text = "\n".join(caught.value.problems)
    assert f"{path}:3: sites[0].timezone: unknown time zone 'Europe/Londres'" in text
    assert f"{path}:7: sites[0].tariff.bands: no band covers 12:00" in text and "no band covers 12:00" in text
