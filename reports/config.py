"""The config's reporting sections (validated with the rest of the config file, so a
mistake is `file:line: field: message`)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator, model_validator

from greenwatch.core.config import Duration, Secret, Strict, base_dir, tls_ca_file

_ADDRESS = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"expected an email address such as ops@example.org, got {value[:60]!r}")
    return value


class SmtpConfig(Strict):
    host: str = Field(min_length=1)
    # Default by security: 587 (submission, STARTTLS), 465 (implicit TLS), 25 (none).
    port: int | None = Field(None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    timeout: Duration = 30.0
    verify_tls: bool = True
    ca_file: Path | None = None
    attempts: int = Field(3, ge=1, le=20)
    retry_delay: Duration = 30.0

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return tls_ca_file(value, info)

    @model_validator(mode="after")
    def _defaults(self) -> SmtpConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        if self.port is None:
            object.__setattr__(self, "port", {"starttls": 587, "tls": 465, "none": 25}[self.security])
        return self


class Recipients(Strict):
    to: list[str] = Field(min_length=1)
    # The sites this group's report covers; none given: every site.
    sites: list[str] | None = None

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]


class ReportConfig(Strict):
    """The weekly report: when the service sends it, to whom, and where it is kept."""

    schedule: bool = True  # send each week's report from `greenwatch run`
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    at: str = "07:00"
    timezone: str = "Europe/London"  # of the schedule and of the weeks' bounds
    out_dir: Path = Path("weekly-reports")  # relative to the config file
    sender: str = "greenwatch@localhost"
    recipients: list[Recipients] = []
    smtp: SmtpConfig | None = None

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        if not _TIME.match(value):
            raise ValueError(f"expected a time HH:MM such as 07:00, got {value[:20]!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value[:60]!r}: expected an IANA name such as Europe/London") from None
        return value

    @field_validator("out_dir")
    @classmethod
    def _out_dir(cls, value: Path, info: ValidationInfo) -> Path:
        return value if value.is_absolute() else base_dir(info) / value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _address(value)

    @model_validator(mode="after")
    def _smtp_for_recipients(self) -> ReportConfig:
        if self.recipients and self.smtp is None:
            raise ValueError("recipients need an smtp: section (host, and usually username and password)")
        return self

    def site_problems(self, site_names: list[str]) -> list[tuple[tuple[object, ...], str]]:
        """(location, message) for each recipient group's site that is not in the config:
        a typo would otherwise mail an empty report."""
        known = ", ".join(sorted(site_names)) or "none"
        return [(("report", "recipients", i, "sites", j), f"no site {name!r} in the config (sites: {known})")
                for i, group in enumerate(self.recipients)
                for j, name in enumerate(group.sites or []) if name not in site_names]

    def groups(self, site_names: list[str]) -> list[tuple[list[str], list[str]]]:
        """(addresses, sites) per message: groups covering the same sites share one."""
        merged: dict[tuple[str, ...], list[str]] = {}
        for group in self.recipients:
            sites = tuple(n for n in site_names if group.sites is None or n in group.sites)
            merged.setdefault(sites, [])
            merged[sites] += [a for a in group.to if a not in merged[sites]]
        return [(to, list(sites)) for sites, to in merged.items()]


# -- the commitment (reports/commitment.py, docs/commitment.md) ------------------------

Metric = Literal["tco2e", "kwh", "pue", "after_hours_share"]


class Baseline(Strict):
    """The period progress is measured against, and its figures: given (as reported at
    the time), or measured by greenwatch from the rollups over the period."""

    start: dt.date = Field(alias="from")
    end: dt.date = Field(alias="to")  # exclusive
    measured: bool = False
    kwh: float | None = Field(None, gt=0, allow_inf_nan=False)
    tco2e: float | None = Field(None, gt=0, allow_inf_nan=False)
    # Per data centre; otherwise measured (with measured: true), else the target's ceiling is the trajectory.
    pue: dict[str, Annotated[float, Field(ge=1, le=10)]] = {}
    after_hours_share: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _figures(self) -> Baseline:
        if self.end <= self.start:
            raise ValueError(f"to ({self.end}) must be after from ({self.start})")
        if self.measured and (self.kwh is not None or self.tco2e is not None):
            raise ValueError("give the baseline's kwh/tco2e, or measured: true, not both")
        if not self.measured and self.kwh is None and self.tco2e is None:
            raise ValueError("the baseline needs its figures: kwh, tco2e, or measured: true")
        return self


class Target(Strict):
    """One promise: by the end of `year`, a cut against the baseline (tco2e, kwh) or a
    ceiling (pue for one data centre, after_hours_share for offices)."""

    year: int = Field(ge=2000, le=2100)
    metric: Metric
    cut_percent: float | None = Field(None, gt=0, lt=100, allow_inf_nan=False)
    max: float | None = Field(None, ge=0, allow_inf_nan=False)
    site: str | None = None  # pue: the data centre
    sites: list[str] | None = None  # after_hours_share: the offices (default: counted sites without IT meters)

    @model_validator(mode="after")
    def _per_metric(self) -> Target:
        if self.metric in ("tco2e", "kwh"):
            if self.cut_percent is None or self.max is not None:
                raise ValueError(f"a {self.metric} target is a cut: give cut_percent (such as 50), not max")
            if self.site is not None or self.sites is not None:
                raise ValueError(f"a {self.metric} target covers the commitment's sites: no site or sites")
        else:
            if self.max is None or self.cut_percent is not None:
                raise ValueError(f"a {self.metric} target is a ceiling: give max, not cut_percent")
            if self.metric == "pue":
                if self.site is None or self.sites is not None:
                    raise ValueError("a pue target is per data centre: give site (one name)")
                if self.max < 1:
                    raise ValueError(f"a PUE is at least 1, got max {self.max}")
            else:
                if self.site is not None:
                    raise ValueError("an after_hours_share target takes sites (a list), not site")
                if self.max > 1:
                    raise ValueError(f"after_hours_share is a share (0 to 1, such as 0.3), got max {self.max}")
        return self


class CommitmentConfig(Strict):
    """The organisation's public commitment: a baseline, targets by year, the sites
    that count, and the one factor years are also compared at."""

    name: str = Field("Our commitment", min_length=1)
    sites: list[str] | None = None  # default: every site in the config
    baseline: Baseline
    # kgCO2e/kWh for comparing years at one factor; default: DESNZ's for the baseline's first year.
    fixed_factor: float | None = Field(None, gt=0, lt=5, allow_inf_nan=False)
    targets: list[Target] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CommitmentConfig:
        for target in self.targets:
            if target.year < self.baseline.end.year:
                raise ValueError(f"a {target.metric} target for {target.year} is before the baseline ends ({self.baseline.end})")
            if target.metric == "kwh" and not (self.baseline.measured or self.baseline.kwh is not None):
                raise ValueError("a kwh target needs the baseline's kwh (or measured: true)")
        seen = [(t.metric, t.site, tuple(t.sites or ()), t.year) for t in self.targets]
        if len(set(seen)) != len(seen):
            raise ValueError("two targets for the same metric, sites and year")
        return self
