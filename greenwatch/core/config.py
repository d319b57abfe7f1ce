"""The configuration file: one YAML file describing the estate and where to write.

Validated by pydantic; `load_config` raises `InputError` whose lines name the file,
the line, the field path and what was expected. Secrets (SNMP communities and v3
keys, InfluxDB tokens and passwords) are `SecretStr`: they print as `**********`
and may be written as `${ENV_VAR}`, `{env: NAME}` or `{file: PATH}`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

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

from .schema import KINDS, RESERVED_TAGS
from .yamlfile import parse_model

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _base_dir(info: ValidationInfo) -> Path:
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
                path = _base_dir(info) / path
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
        return value if value.is_absolute() else _base_dir(info) / value


class Defaults(Strict):
    interval: Duration = 60.0
    timeout: Duration = 2.0
    retries: int = Field(1, ge=0, le=10)
    max_repetitions: int = Field(25, ge=1, le=500)


class CollectorConfig(Strict):
    # Global limit on devices polled at once, whatever the inventory size.
    concurrency: int = Field(256, ge=1, le=100_000)
    snmp_engine: Literal["auto", "pysnmp", "gufo"] = "auto"
    # Extra folders of SNMP profiles; a profile here overrides a shipped one of the same name.
    profile_dirs: list[Path] = []

    @field_validator("profile_dirs")
    @classmethod
    def _relative_dirs(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [p if p.is_absolute() else _base_dir(info) / p for p in value]


AuthProtocol = Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["DES", "AES", "AES128", "AES192", "AES256"]


class SnmpConfig(Strict):
    version: Annotated[Literal["1", "2c", "3"], BeforeValidator(lambda v: str(v))] = "2c"
    community: Secret | None = None
    # SNMPv3 USM
    user: str | None = None
    auth_protocol: Annotated[AuthProtocol, BeforeValidator(lambda v: str(v).upper().replace("-", ""))] | None = None
    auth_key: Secret | None = None
    priv_protocol: Annotated[PrivProtocol, BeforeValidator(lambda v: str(v).upper().replace("-", ""))] | None = None
    priv_key: Secret | None = None
    context: str = ""
    max_repetitions: int | None = Field(None, ge=1, le=500)

    @model_validator(mode="after")
    def _complete(self) -> SnmpConfig:
        if self.version in ("1", "2c"):
            if self.community is None:
                raise ValueError(f"SNMP version {self.version} needs a community")
        else:
            if not self.user:
                raise ValueError("SNMP version 3 needs a user")
            if self.auth_protocol and self.auth_key is None:
                raise ValueError("auth_protocol is set but auth_key is missing")
            if self.priv_protocol and (self.priv_key is None or not self.auth_protocol):
                raise ValueError("priv_protocol needs priv_key and an auth_protocol (authPriv)")
            for name in ("auth_key", "priv_key"):
                key = getattr(self, name)
                if key is not None and len(key.get_secret_value()) < 8:
                    raise ValueError(f"{name} must be at least 8 characters (RFC 3414)")
        return self

    @property
    def security_level(self) -> str:
        if self.version != "3":
            return "community"
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"


def _http_url(value: str, allow_query: bool = False) -> str:
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


def _relative_file(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None or value.is_absolute():
        return value
    return _base_dir(info) / value


class RedfishConfig(Strict):
    """A server's BMC (iDRAC, iLO, XCC, OpenBMC...) spoken to over Redfish."""

    # The service's base URL; /redfish/v1 is appended (a URL already ending in it is fine).
    url: str
    username: str | None = None
    password: Secret | None = None
    # Default: session when credentials are given (one login per token lifetime instead
    # of a password check on every request; see docs/sources.md).
    auth: Literal["basic", "session"] | None = None
    verify_tls: bool = True
    ca_file: Path | None = None
    # Per request; default: the device's timeout, else 10 s (BMCs answer slowly).
    timeout: Duration | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = _http_url(value)
        return value[: -len("/redfish/v1")] if value.endswith("/redfish/v1") else value

    @field_validator("ca_file")
    @classmethod
    def _ca_relative(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _relative_file(value, info)

    @model_validator(mode="after")
    def _credentials(self) -> RedfishConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.auth is not None and self.username is None:
            raise ValueError(f"auth: {self.auth} needs username and password")
        return self

    @property
    def auth_method(self) -> Literal["none", "basic", "session"]:
        if self.username is None:
            return "none"
        return self.auth or "session"


class HttpField(Strict):
    """Where one schema field stands in a JSON reply, and its unit there."""

    # Dotted path; list items by index: data.power.active, meters.0.watts, meters[0].watts
    path: str = Field(min_length=1)
    # A unit of greenwatch.core.units; default: the schema's own unit for the field.
    unit: str | None = None


class HttpPowerConfig(Strict):
    """A smart plug or meter with an HTTP/JSON API."""

    type: Literal["shelly", "tasmota", "json"]
    url: str
    # shelly: the Switch component ids to read (a Pro 4PM has 0-3).
    channels: list[Annotated[int, Field(ge=0, le=255)]] | None = None
    # json: schema field -> where it is in the reply (and its unit).
    fields: dict[str, HttpField] | None = None
    # shelly: digest auth (user admin); tasmota: user/password query parameters;
    # json: basic auth (username and password) or a bearer token.
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    headers: dict[str, Secret] = {}
    verify_tls: bool = True
    ca_file: Path | None = None
    # Per request; default: the device's timeout, else 5 s.
    timeout: Duration | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        # json: the URL is the whole request (a query is fine); others get paths appended.
        return _http_url(value, allow_query=info.data.get("type") == "json")

    @field_validator("ca_file")
    @classmethod
    def _ca_relative(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _relative_file(value, info)

    @model_validator(mode="after")
    def _per_type(self) -> HttpPowerConfig:
        from .schema import FIELDS, POWER
        from .units import UNITS

        if self.type != "json" and self.fields is not None:
            raise ValueError(f"fields is only for type json (type {self.type} knows its reply)")
        if self.type != "shelly" and self.channels is not None:
            raise ValueError("channels is only for type shelly")
        if self.type != "json" and self.token is not None:
            raise ValueError("token is only for type json")
        if self.type == "json":
            if not self.fields:
                raise ValueError("type json needs fields, e.g. {watts: {path: data.power, unit: W}}")
            known = FIELDS[POWER]
            for name, spec in self.fields.items():
                if name not in known:
                    raise ValueError(f"fields.{name}: not a power field; expected one of {', '.join(known)}")
                if spec.unit is not None:
                    if spec.unit not in UNITS:
                        raise ValueError(f"fields.{name}: unknown unit {spec.unit!r}")
                    if UNITS[spec.unit][0] != known[name]:
                        raise ValueError(f"fields.{name}: unit {spec.unit} is not a unit of {known[name]}")
            if not {"watts", "energy_kwh"} & set(self.fields):
                raise ValueError("type json needs watts or energy_kwh among its fields")
            if self.password is not None and self.username is None:
                raise ValueError("password needs a username (basic auth)")
            if self.token is not None and self.username is not None:
                raise ValueError("give either token or username/password, not both")
        if self.username is not None and self.password is None:
            raise ValueError("username needs a password")
        if self.channels is not None and (not self.channels or len(set(self.channels)) != len(self.channels)):
            raise ValueError("channels must list each switch id once")
        return self


class Device(Strict):
    name: str = Field(min_length=1)
    # Required for snmp; redfish and http devices carry their own URL.
    address: str | None = Field(None, min_length=1, description="host, host:port or [v6]:port")
    snmp: SnmpConfig | None = None
    redfish: RedfishConfig | None = None
    http: HttpPowerConfig | None = None
    # Name of an SNMP profile; without it the device is matched by sysObjectID.
    profile: str | list[str] | None = None
    kind: str | None = None
    tags: dict[str, str] = {}
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: int | None = Field(None, ge=0, le=10)
    enabled: bool = True

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return inventory_tags(value)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str | None) -> str | None:
        if value is not None and value not in KINDS:
            raise ValueError(f"unknown kind {value!r}: expected one of {', '.join(KINDS)}")
        return value

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str | None) -> str | None:
        if value is not None:
            split_address(value, 161)
        return value

    @model_validator(mode="after")
    def _has_a_source(self) -> Device:
        given = [key for key in ("snmp", "redfish", "http") if getattr(self, key) is not None]
        if not given:
            raise ValueError("a device needs a source: one of snmp, redfish, http")
        if len(given) > 1:
            raise ValueError(f"a device has exactly one source, this one has {' and '.join(given)}")
        if self.snmp is not None and self.address is None:
            raise ValueError("an snmp device needs an address")
        return self

    def host_port(self, default_port: int = 161) -> tuple[str, int]:
        if self.address is None:
            raise ValueError(f"device {self.name!r} has no address")
        return split_address(self.address, default_port)


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


class Site(Strict):
    name: str = Field(min_length=1)
    tags: dict[str, str] = {}
    devices: list[Device] = []

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return inventory_tags(value)

    @model_validator(mode="after")
    def _unique_devices(self) -> Site:
        seen: set[str] = set()
        for device in self.devices:
            if device.name in seen:
                raise ValueError(f"device name {device.name!r} appears twice in site {self.name!r}")
            seen.add(device.name)
        return self


class Config(Strict):
    # Sections default to {} validated like a written one, so relative paths
    # in their defaults are resolved against the config file too.
    influxdb: InfluxConfig = Field(default_factory=dict, validate_default=True)
    spool: SpoolConfig = Field(default_factory=dict, validate_default=True)
    defaults: Defaults = Field(default_factory=dict, validate_default=True)
    collector: CollectorConfig = Field(default_factory=dict, validate_default=True)
    sites: list[Site] = []

    @model_validator(mode="after")
    def _unique_sites(self) -> Config:
        names = [s.name for s in self.sites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"site names appear twice: {dupes}")
        return self

    def devices(self) -> list[tuple[Site, Device]]:
        return [(site, dev) for site in self.sites for dev in site.devices if dev.enabled]


def load_config(path: Path | str) -> Config:
    """Read and validate a config file. Raises InputError naming file, line and field."""
    path = Path(path)
    return parse_model(Config, path, context={"base_dir": path.resolve().parent})
