"""What a kWh costs at a site: one flat rate, or time-of-use bands by local time of
day, optionally different on weekdays and weekends. Bands must cover each day once:
overlaps and holes are config errors, so no kWh is priced twice or not at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .calendar import minutes_of, parse_clock

DayType = Literal["all", "weekday", "weekend"]


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: str = Field(alias="from")
    end: str = Field(alias="to")  # "24:00" for midnight at the end of the day
    rate: float = Field(ge=0, allow_inf_nan=False)
    days: DayType = "all"

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        parse_clock(value)
        return value

    @field_validator("end")
    @classmethod
    def _end(cls, value: str) -> str:
        parse_clock(value, allow_24=True)
        return value

    def span(self) -> tuple[int, int]:
        """(start, end) in minutes; a band may wrap midnight (22:00-06:00)."""
        return minutes_of(parse_clock(self.start)), minutes_of(parse_clock(self.end, allow_24=True))

    def minutes(self) -> set[int]:
        start, end = self.span()
        if end > start:
            return set(range(start, end))
        return set(range(start, 1440)) | set(range(end))


class Tariff(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field("GBP", min_length=1, max_length=8)
    # Price of one kWh in `currency`. Give either `rate` or `bands`.
    rate: float | None = Field(None, ge=0, allow_inf_nan=False)
    bands: list[Band] | None = None

    @field_validator("bands")
    @classmethod
    def _cover_each_day(cls, bands: list[Band] | None) -> list[Band] | None:
        # A field validator, so an error points at the bands' line in the file.
        if bands is not None:
            for day_type in ("weekday", "weekend"):
                _check_cover(bands, day_type)
        return bands

    @model_validator(mode="after")
    def _one_way(self) -> Tariff:
        if (self.rate is None) == (self.bands is None):
            raise ValueError("give either rate (one price per kWh) or bands (time of use)")
        return self

    def rate_at(self, local: dt.datetime) -> float:
        """The price of a kWh used at this local time."""
        if self.rate is not None:
            return self.rate
        day_type = "weekend" if local.weekday() >= 5 else "weekday"
        return self._minute_rates(day_type)[local.hour * 60 + local.minute]

    def mean_rate(self, start_utc: dt.datetime, zone: ZoneInfo, minutes: int = 60) -> float:
        """The mean price over the local minutes of a UTC period (an hour's rollup).
        Each minute is priced at its own local time, so a band edge inside the hour,
        or a daylight-saving change, is weighted by the minutes on each side."""
        if self.rate is not None:
            return self.rate
        if start_utc.tzinfo is None:
            raise ValueError("start_utc must be timezone-aware")
        total = 0.0
        for i in range(minutes):
            total += self.rate_at((start_utc + dt.timedelta(minutes=i)).astimezone(zone))
        return total / minutes

    def _minute_rates(self, day_type: str) -> tuple[float, ...]:
        # One price per minute of the day, built once per day type: rate_at is called
        # for every minute of every hour rolled up.
        key = (id(self), day_type)
        table = _RATE_TABLES.get(key)
        if table is None or table[0] is not self:
            rates = [0.0] * 1440
            for band in self.bands or []:
                if band.days in ("all", day_type):
                    for minute in band.minutes():
                        rates[minute] = band.rate
            table = _RATE_TABLES[key] = (self, tuple(rates))
        return table[1]


# (id(tariff), day type) -> (tariff, per-minute rates); the tariff is kept beside its
# table so a recycled id is never mistaken for it.
_RATE_TABLES: dict[tuple[int, str], tuple[Tariff, tuple[float, ...]]] = {}


def _check_cover(bands: list[Band], day_type: str) -> None:
    owner: dict[int, str] = {}
    for band in bands:
        if band.days not in ("all", day_type):
            continue
        name = f"{band.start}-{band.end}" + ("" if band.days == "all" else f" ({band.days})")
        for minute in band.minutes():
            if minute in owner:
                raise ValueError(f"bands {owner[minute]} and {name} overlap at {_clock(minute)} on {day_type}s")
            owner[minute] = name
    missing = [m for m in range(1440) if m not in owner]
    if missing:
        raise ValueError(f"no band covers {_clock(missing[0])} on {day_type}s; bands must cover the whole day")


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
