"""A site's working calendar: business hours, working days, public holidays and
closures, in the site's own time zone. Rules select windows of it ("after hours",
"weekends"); rollups and reports split energy by it.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cached_property
from typing import Any, Literal

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# The windows a rule may select. Every local instant is in exactly one of
# business_hours / after_hours; after_hours is split into nights (working days outside
# business hours), weekends (non-working days) and holidays (public holidays, closures).
WINDOWS = ("always", "business_hours", "after_hours", "nights", "weekends", "holidays")
Window = Literal["always", "business_hours", "after_hours", "nights", "weekends", "holidays"]

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_clock(text: str, allow_24: bool = False) -> dt.time | None:
    """'08:30' -> time(8, 30); '24:00' -> None (end of day) when allowed."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", str(text))
    if not match:
        raise ValueError(f"expected a time of day HH:MM, got {text!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if allow_24 and (hour, minute) == (24, 0):
        return None
    if hour > 23 or minute > 59:
        raise ValueError(f"no such time of day {text!r}")
    return dt.time(hour, minute)


def minutes_of(value: dt.time | None) -> int:
    """Minutes since midnight; None (24:00) is 1440."""
    return 1440 if value is None else value.hour * 60 + value.minute


class HolidaySource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A country code of the `holidays` package (GB, IE, FR, DE...) and optionally
    # one of its subdivisions (GB: ENG, WLS, SCT, NIR).
    country: str
    subdivision: str | None = None

    @model_validator(mode="after")
    def _known(self) -> HolidaySource:
        try:
            holidays.country_holidays(self.country, subdiv=self.subdivision, years=2026)
        except NotImplementedError:
            raise ValueError(f"the holidays package knows no country {self.country!r}") from None
        except Exception as exc:  # the package raises its own error types per country
            raise ValueError(f"holidays for {self.country}/{self.subdivision}: {exc}") from None
        return self


class Calendar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    business_hours: str = "08:00-18:00"
    working_days: list[Weekday] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    # Default: England's bank holidays. `holidays: null` for none.
    holidays: HolidaySource | None = Field(default_factory=lambda: HolidaySource(country="GB", subdivision="ENG"))
    # Extra days the site is closed (a Christmas shutdown), as dates.
    closures: list[dt.date] = []

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.match(value)
        if not match:
            raise ValueError(f"expected business hours as HH:MM-HH:MM, got {value!r}")
        start = parse_clock(f"{match.group(1)}:{match.group(2)}")
        end = parse_clock(f"{match.group(3)}:{match.group(4)}", allow_24=True)
        if minutes_of(end) <= minutes_of(start):
            raise ValueError(f"business hours must end after they start, got {value!r}")
        return value

    @cached_property
    def hours(self) -> tuple[int, int]:
        """Business hours as (start, end) minutes since local midnight."""
        a, b = self.business_hours.split("-")
        return minutes_of(parse_clock(a)), minutes_of(parse_clock(b, allow_24=True))

    def is_holiday(self, day: dt.date) -> bool:
        if day in self.closures:
            return True
        if self.holidays is None:
            return False
        return day in _holiday_table(self.holidays.country, self.holidays.subdivision, day.year)

    def is_working_day(self, day: dt.date) -> bool:
        return WEEKDAYS[day.weekday()] in self.working_days and not self.is_holiday(day)

    def window_of(self, local: dt.datetime) -> str:
        """The one narrow window a local time falls in: business_hours, nights,
        weekends or holidays."""
        day = local.date()
        if self.is_holiday(day):
            return "holidays"
        if WEEKDAYS[day.weekday()] not in self.working_days:
            return "weekends"
        minute = local.hour * 60 + local.minute
        start, end = self.hours
        return "business_hours" if start <= minute < end else "nights"

    def in_window(self, local: dt.datetime, window: str) -> bool:
        narrow = self.window_of(local)
        if window == "always":
            return True
        if window == "after_hours":
            return narrow != "business_hours"
        return narrow == window


_TABLES: dict[tuple[str, str | None, int], Any] = {}


def _holiday_table(country: str, subdivision: str | None, year: int) -> Any:
    key = (country, subdivision, year)
    if key not in _TABLES:
        _TABLES[key] = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return _TABLES[key]
