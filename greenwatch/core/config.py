"""Config pieces the whole of greenwatch shares: secrets, durations and sizes, where
InfluxDB is, the spool, and each site's settings. The file as a whole (sites with
their devices, each capability's section) is `greenwatch/config.py`.

Validated by pydantic; loading raises `InputError` whose lines name the file, the
line, the field path and what was expected. Secrets (SNMP communities and v3
keys, InfluxDB tokens and passwords) are `SecretStr`: they print as `**********`
and may be written as `${ENV_VAR}`, `{env: NAME}` or `{file: PATH}`.
"""

from __future__ import annotations

import math
import os
import re
import ssl
import tempfile
from functools import lru_cache
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
# Longer than anything greenwatch schedules or waits for, and far inside what
# datetime.timedelta and the schedulers accept (a huge interval used to crash `run`).
MAX_DURATION_S = 366 * 86400
MAX_SECRET_FILE = 64 * 1024
# A URL's user:password@ part, found without parsing it (it may not parse).
_URL_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/?#]*@")
_SQLITE_HEADER = b"SQLite format 3\x00"


def base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir", "."))


def resolve_secret(value: Any, info: ValidationInfo) -> Any:
    """`${VAR}` in a string, `{env: VAR}` or `{file: PATH}` (relative to the config file)."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a numeric community or key, written unquoted
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
                # A regular file of a sensible size: /dev/zero or a FIFO would hang `check`.
                if not path.is_file():
                    raise ValueError(f"secret file {path} is not a regular file")
                if path.stat().st_size > MAX_SECRET_FILE:
                    raise ValueError(f"secret file {path} is over {MAX_SECRET_FILE // 1024} KiB: is it the right file?")
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ValueError(f"secret file {path} is not UTF-8 text") from None
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


def shown(value: Any, limit: int = 60) -> str:
    """A value quoted back in an error: cut short, as a message must stay one readable
    line, and without the user:password@ of anything that looks like a URL."""
    text = repr(_URL_USERINFO.sub(r"\1***@", value) if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_duration(value: Any) -> float:
    """'60s', '2m', '500ms', '1h' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 60s, 500ms, 5m")
    if isinstance(value, int) and abs(value) > MAX_DURATION_S:
        seconds = math.inf  # float() of a huge int would overflow
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 60s, 500ms, 5m; got {shown(value)}")
        number, unit = float(match.group(1)), match.group(2) or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if math.isnan(seconds):
        raise ValueError("expected a duration such as 60s, 500ms, 5m; got .nan")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"a duration must be at most {MAX_DURATION_S // 86400} days")
    return seconds


def parse_size(value: Any) -> int:
    """'512MB', '1GiB' or a number of bytes -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"expected a size such as 512MB or 1GiB; got {shown(value)}")
        number = float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
        if not math.isfinite(number):
            raise ValueError(f"size {shown(value)} is too large")
        size = int(number)
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


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
    database: str = Field("greenwatch", min_length=1)
    retention_policy: str | None = None
    # Empty names would pass here and be refused (or ignored) by the writers at run time.
    username: str | None = Field(None, min_length=1)
    password: Secret | None = None
    token: Secret | None = None
    org: str | None = Field(None, min_length=1)
    bucket: str | None = Field(None, min_length=1)
    gzip: bool = False
    batch_size: int = Field(5000, ge=1, le=100_000)
    # Lines gather this long for a fuller batch (see core/sink.py); they are on disk meanwhile.
    flush_interval: Duration = 1.0
    timeout: Duration = 10.0
    verify_tls: bool = True
    ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return tls_ca_file(value, info)

    @model_validator(mode="after")
    def _credentials(self) -> InfluxConfig:
        # The same rules the writers enforce when they are built, checked here so
        # that `check` refuses what `run` would.
        if self.token is not None and (self.username is not None or self.password is not None):
            raise ValueError("give either token or username/password, not both")
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError("token is empty")
        if self.api == "v2":
            missing = [k for k in ("org", "bucket", "token") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"api v2 needs {', '.join(missing)}")
        return self


class SpoolConfig(Strict):
    # Relative paths are relative to the config file. Default: beside the config file,
    # named after it (greenwatch.yaml -> greenwatch.spool.db), so that two configs in
    # one folder never share a spool and send each other's points to the wrong InfluxDB.
    path: Path = Field(None, validate_default=True)  # type: ignore[assignment]
    max_size: Size = 512 * 10**6

    @field_validator("path", mode="before")
    @classmethod
    def _named_after_config(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            config_file = (info.context or {}).get("config_file")
            return f"{Path(config_file).stem if config_file else 'greenwatch'}.spool.db"
        return value

    @field_validator("max_size")
    @classmethod
    def _holds_something(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("the spool needs room: expected a size such as 512MB")
        return value

    @field_validator("path")
    @classmethod
    def _usable(cls, value: Path, info: ValidationInfo) -> Path:
        path = value if value.is_absolute() else base_dir(info) / value
        usable_spool_file(path)
        return path


def usable_spool_file(path: Path) -> None:
    """Raise ValueError unless `path` is a spool (SQLite) file this process can write,
    or a file it can create: checked when the config is loaded, so that `check`
    refuses a path `run` could not open."""
    folder = path.parent
    try:
        if path.exists():
            if not path.is_file():
                raise ValueError(f"{path} exists and is not a file")
            if not os.access(path, os.R_OK | os.W_OK):
                raise ValueError(f"{path} is not readable and writable by this user")
            with path.open("rb") as f:
                start = f.read(len(_SQLITE_HEADER))
            if start and start != _SQLITE_HEADER:
                raise ValueError(f"{path} is not a spool file (not SQLite); give another path")
            return
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise ValueError(f"cannot create {path}: {folder} is not a folder")
        # Permissions alone do not tell (read-only mounts, /proc, root): create an
        # unnamed file there, which leaves nothing behind.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"cannot create {path} (in {folder}): {exc.strerror or exc}") from None


def inventory_tags(value: Any) -> Any:
    """A site's or device's `tags:` as strings; the schema's own tag names are refused."""
    if isinstance(value, dict):
        clash = sorted(set(value) & set(RESERVED_TAGS))
        if clash:
            raise ValueError(f"tag names {clash} are reserved by the metric schema")
        for key, item in value.items():
            # InfluxDB drops a tag with an empty value, and a list would be written
            # as its Python text: neither is what the user meant.
            if item is None or isinstance(item, dict | list | set) or str(item) == "" or str(key) == "":
                raise ValueError(f"tag {shown(key)}: expected a name and a text value, such as room: hall-1")
        return {str(k): str(v) for k, v in value.items()}
    return value


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' -> (host, port)."""
    host, port = address, default_port
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"unclosed [ in address {shown(address)}")
        host, rest = address[1:end], address[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"expected [v6]:port, got {shown(address)}")
            port = _port(rest[1:], address)
    elif address.count(":") == 1:
        host, text = address.split(":")
        port = _port(text, address)
    if not host:
        raise ValueError(f"no host in address {shown(address)}")
    return host, port


def _port(text: str, address: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"port must be 1-65535 in address {shown(address)}")
    return int(text)


def http_url(value: str, allow_query: bool = False) -> str:
    """An http(s) base URL without credentials or fragment (nor query, unless allowed);
    no trailing slash."""
    from urllib.parse import urlsplit

    text = str(value).strip()
    # Credentials first, and never quoted back: the URL text goes into messages.
    if _URL_USERINFO.match(text):
        raise ValueError("put credentials in username/password, not in the URL (URLs are logged)")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"not a valid URL {shown(text)}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {shown(text)}")
    if parts.fragment or (parts.query and not allow_query):
        raise ValueError(f"the URL must not have a {'fragment' if parts.fragment else 'query'}: {shown(text)}")
    return text if parts.query else text.rstrip("/")


def relative_file(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None or value.is_absolute():
        return value
    return base_dir(info) / value


def tls_ca_file(value: Path | None, info: ValidationInfo) -> Path | None:
    """A `ca_file:` for TLS, relative to the config file, and loadable now: a missing
    or garbled file is a config error, not a failure at the first request."""
    path = relative_file(value, info)
    if path is not None:
        try:
            changed = path.stat().st_mtime_ns
        except OSError:
            changed = None
        problem = _ca_problem(str(path), changed)
        if problem:
            raise ValueError(f"cannot use ca_file {path}: {problem}")
    return path


@lru_cache(maxsize=64)
def _ca_problem(path: str, changed: int | None) -> str | None:
    # Cached (by path and modification time): a thousand BMCs usually share one CA file.
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return None


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
