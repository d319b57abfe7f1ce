"""The collector's part of the config file: devices and their sources (SNMP, Redfish,
HTTP), poll defaults, and the collector's own settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.snmp.engines import available_engines
from greenwatch.core.config import (
    Duration,
    Secret,
    Strict,
    base_dir,
    http_url,
    inventory_tags,
    tls_ca_file,
    split_address,
)
from greenwatch.core.schema import FIELDS, KINDS, POWER
from greenwatch.core.units import UNITS


class Defaults(Strict):
    interval: Duration = 60.0
    timeout: Duration = 2.0
    retries: int = Field(1, ge=0, le=10)
    max_repetitions: int = Field(25, ge=1, le=500)
    # How often an SNMP device's tables are walked in full, to find rows added since;
    # in between, the rows found are read by GET. At or below the interval: every poll.
    rewalk: Duration = 600.0


class CollectorConfig(Strict):
    # Global limit on devices polled at once, whatever the inventory size.
    concurrency: int = Field(256, ge=1, le=100_000)
    snmp_engine: Literal["auto", "pysnmp", "gufo"] = "auto"
    # Extra folders of SNMP profiles; a profile here overrides a shipped one of the same name.
    profile_dirs: list[Path] = []

    @field_validator("profile_dirs")
    @classmethod
    def _relative_dirs(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        dirs = [p if p.is_absolute() else base_dir(info) / p for p in value]
        missing = [str(p) for p in dirs if not p.is_dir()]
        if missing:
            raise ValueError(f"profile folder {', '.join(missing)} does not exist")
        return dirs

    @field_validator("snmp_engine")
    @classmethod
    def _installed(cls, value: str) -> str:
        available = available_engines()
        if value != "auto" and value not in available:
            raise ValueError(f"SNMP engine {value!r} is not installed here (installed: {', '.join(available)})")
        return value


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
    rewalk: Duration | None = None  # default: defaults.rewalk

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
        value = http_url(value)
        return value[: -len("/redfish/v1")] if value.endswith("/redfish/v1") else value

    @field_validator("ca_file")
    @classmethod
    def _ca_relative(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return tls_ca_file(value, info)

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
        return http_url(value, allow_query=info.data.get("type") == "json")

    @field_validator("ca_file")
    @classmethod
    def _ca_relative(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return tls_ca_file(value, info)

    @model_validator(mode="after")
    def _per_type(self) -> HttpPowerConfig:
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
    # The metered device (device, device/scope or device/scope/entity) this one draws
    # its power through, e.g. pdu-1/outlet/3: the site's total counts it only once.
    fed_by: str | None = Field(None, min_length=1)

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


