"""The config's reporting sections (validated with the rest of the config file, so a
mistake is `file:line: field: message`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
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

    def groups(self, site_names: list[str]) -> list[tuple[list[str], list[str]]]:
        """(addresses, sites) per message: groups covering the same sites share one."""
        merged: dict[tuple[str, ...], list[str]] = {}
        for group in self.recipients:
            sites = tuple(n for n in site_names if group.sites is None or n in group.sites)
            merged.setdefault(sites, [])
            merged[sites] += [a for a in group.to if a not in merged[sites]]
        return [(to, list(sites)) for sites, to in merged.items()]
