"""Config pieces the whole of greenwatch shares: secrets, durations and sizes, where
InfluxDB is, the spool, and each site's settings. The file as a whole (sites with
their devices, each capability's section) is `greenwatch/config.py`.

Validated by pydantic; loading raises `InputError` whose lines name the file, the
line, the field path and what was expected. Secrets (SNMP communities and v3
keys, InfluxDB tokens and passwords) are `SecretStr`: they print as `**********`
and may be written as `${ENV_VAR}`, `{env: NAME}` or `{file: PATH}`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .calendar import Calendar
from .carbon import Carbon
from .schema import RESERVED_TAGS
from .tariff import Tariff

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir", "."))


def resolve_secret(value: Any, info: ValidationInfo) -> Any:
    """`${VAR}` in a string, `{env: VAR}` or `{file: PATH}` (relative to the config file)."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = str(value["env"])
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]
        if set(value) == {"file"}:
            path = Path(str(value["file"]))
            if not path.is_absolute():
                path = base_dir(info) / path
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
        raise ValueError("expected a string, {env: NAME} or {file: PATH}")
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REF.sub(substitute, value)
    return value


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]


def parse_duration(value: Any) -> float:
    """'60s', '2m', '500ms', '1h' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 60s, 500ms, 5m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 60s, 500ms, 5m; got {value!r}")
        number, unit = float(match.group(1)), match.group(2) or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def parse_size(value: Any) -> int:
    """'512MB', '1GiB' or a number of bytes -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size such as 512MB or 1GiB; got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InfluxConfig(Strict):
    url: str = "http://127.0.0.1:8086"
    # api v1: line protocol to /write (InfluxDB 1.x, 2.4+ via DBRP, 3.x);
    # api v2: /api/v2/write with org and bucket (InfluxDB 2.x native).
    api: Literal["v1", "v2"] = "v1"
    database: str = "greenwatch"
    retention_policy: str | None = None
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    org: str | None = None
    bucket: str | None = None
    gzip: bool = False
    batch_size: int = Field(5000, ge=1, le=100_000)
    timeout: Duration = 10.0
    verify_tls: bool = True
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _v2_needs_org_bucket(self) -> InfluxConfig:
        if self.api == "v2":
            missing = [k for k in ("org", "bucket", "token") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"api v2 needs {', '.join(missing)}")
        return self


class SpoolConfig(Strict):
    # Relative paths are relative to the config file.
    path: Path = Field(Path("greenwatch-spool.db"), validate_default=True)
    max_size: Size = 512 * 10**6

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        return value if value.is_absolute() else base_dir(info) / value


def inventory_tags(value: Any) -> Any:
    """A site's or device's `tags:` as strings; the schema's own tag names are refused."""
    if isinstance(value, dict):
        clash = sorted(set(value) & set(RESERVED_TAGS))
        if clash:
            raise ValueError(f"tag names {clash} are reserved by the metric schema")
        return {str(k): str(v) for k, v in value.items()}
    return value


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' -> (host, port)."""
    host, port = address, default_port
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"unclosed [ in address {address!r}")
        host, rest = address[1:end], address[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"expected [v6]:port, got {address!r}")
            port = _port(rest[1:], address)
    elif address.count(":") == 1:
        host, text = address.split(":")
        port = _port(text, address)
    if not host:
        raise ValueError(f"no host in address {address!r}")
    return host, port


def _port(text: str, address: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"port must be 1-65535 in address {address!r}")
    return int(text)


def http_url(value: str, allow_query: bool = False) -> str:
    """An http(s) base URL without credentials or fragment (nor query, unless allowed);
    no trailing slash."""
    from urllib.parse import urlsplit

    text = str(value).strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"not a valid URL {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {text!r}")
    if parts.username or parts.password:
        raise ValueError("put credentials in username/password, not in the URL (URLs are logged)")
    if parts.fragment or (parts.query and not allow_query):
        raise ValueError(f"the URL must not have a {'fragment' if parts.fragment else 'query'}: {text!r}")
    return text if parts.query else text.rstrip("/")


def relative_file(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None or value.is_absolute():
        return value
    return base_dir(info) / value


class EnergyMeters(Strict):
    """Which meters measure what enters a site and what its IT equipment draws (PUE)."""

    # Each entry: a device name, or device/scope (ups-1/output), or device/scope/entity.
    facility: list[str] = []
    it: list[str] = []
    # ISO/IEC 30134-2 category of the IT measurement: 1 at the UPS output, 2 at the PDU
    # output, 3 at the IT equipment's input.
    category: Literal[1, 2, 3] | None = None

    @model_validator(mode="after")
    def _category_with_it(self) -> EnergyMeters:
        for name in self.facility + self.it:
            parts = name.split("/")
            if not 1 <= len(parts) <= 3 or not all(parts):
                raise ValueError(f"expected device, device/scope or device/scope/entity; got {name!r}")
        if self.it and self.category is None:
            raise ValueError("it meters need the PUE category (1, 2 or 3) they are measured at")
        return self


class SiteSettings(Strict):
    """What every capability reads of a site: its name and tags, its time zone and
    calendar, what energy costs there and how much carbon it carries, and its meters.
    (The site's devices are the collector's; see greenwatch/config.py.)"""

    name: str = Field(min_length=1)
    tags: dict[str, str] = {}
    timezone: str = "Europe/London"
    calendar: Calendar = Field(default_factory=Calendar)
    tariff: Tariff = Field(default_factory=lambda: Tariff(rate=0.25))
    carbon: Carbon = Field(default_factory=Carbon)
    energy: EnergyMeters = Field(default_factory=EnergyMeters)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return inventory_tags(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: expected an IANA name such as Europe/London") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
