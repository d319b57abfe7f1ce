"""Grid carbon factors: the UK government's annual conversion factors (DESNZ/Defra,
UK electricity, generation), an explicit factor (a supplier's market-based figure), or
the GB Carbon Intensity API's half-hourly figures. Every kgCO2e figure greenwatch
writes records which of these it used (`carbon_method`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AnnualFactor(NamedTuple):
    year: int
    generation: float  # kgCO2e per kWh generated (location-based Scope 2)
    td_losses: float | None  # kgCO2e per kWh for transmission and distribution losses (Scope 3)
    source: str


# UK electricity, from the "Greenhouse gas reporting: conversion factors" tables
# (DESNZ, formerly BEIS/Defra), the "UK electricity" and "Transmission and distribution"
# sheets. T&D losses are a separate Scope 3 factor: added only when a site asks.
DESNZ_UK_ELECTRICITY: dict[int, AnnualFactor] = {
    f.year: f
    for f in (
        AnnualFactor(2022, 0.19338, None, "DESNZ/BEIS GHG conversion factors 2022, UK electricity"),
        AnnualFactor(2023, 0.20707, 0.01792, "DESNZ GHG conversion factors 2023, UK electricity"),
        AnnualFactor(2024, 0.20705, None, "DESNZ GHG conversion factors 2024, UK electricity"),
        AnnualFactor(2025, 0.17700, None, "DESNZ GHG conversion factors 2025, UK electricity"),
    )
}

CarbonMethod = Literal["annual", "factor", "intensity"]


def annual_factor(year: int) -> AnnualFactor:
    """The factor for a year's data: that year's table, else the nearest year published
    (the newest for years not yet published)."""
    if year in DESNZ_UK_ELECTRICITY:
        return DESNZ_UK_ELECTRICITY[year]
    years = sorted(DESNZ_UK_ELECTRICITY)
    return DESNZ_UK_ELECTRICITY[years[-1] if year > years[-1] else years[0]]


class Carbon(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # annual: DESNZ's factor for the data's year; factor: factor_kg_per_kwh;
    # intensity: the GB Carbon Intensity API, falling back to annual when unreachable.
    method: CarbonMethod = "annual"
    factor_kg_per_kwh: float | None = Field(None, gt=0, lt=5, allow_inf_nan=False)
    # Add DESNZ's transmission and distribution losses factor (annual method only).
    include_td_losses: bool = False
    # intensity: the API's region id (1-17, see docs/energy.md); none for national figures.
    region: int | None = Field(None, ge=1, le=17)
    api_url: str = "https://api.carbonintensity.org.uk"

    @model_validator(mode="before")
    @classmethod
    def _factor_means_factor(cls, data: object) -> object:
        # `factor_kg_per_kwh: 0.12` on its own means method factor.
        if isinstance(data, dict) and "factor_kg_per_kwh" in data and "method" not in data:
            return {**data, "method": "factor"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Carbon:
        if self.method == "factor" and self.factor_kg_per_kwh is None:
            raise ValueError("method factor needs factor_kg_per_kwh")
        if self.method != "factor" and self.factor_kg_per_kwh is not None:
            raise ValueError(f"factor_kg_per_kwh is only for method factor (this is {self.method})")
        if self.region is not None and self.method != "intensity":
            raise ValueError("region is only for method intensity")
        return self

    def fixed_factor(self, year: int) -> tuple[float, str]:
        """(kgCO2e per kWh, method) where no half-hourly figure applies."""
        if self.method == "factor":
            assert self.factor_kg_per_kwh is not None
            return self.factor_kg_per_kwh, "factor"
        f = annual_factor(year)
        value = f.generation + ((f.td_losses or 0.0) if self.include_td_losses else 0.0)
        return value, "annual"
