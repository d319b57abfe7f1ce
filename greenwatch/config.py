"""The configuration file: one YAML file describing the estate, where to write, and
each capability's settings. Each part's models live with the part that reads them
(greenwatch.core.config, collector.config, rules.config); this module puts them together.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from collector.config import CollectorConfig, Defaults, Device
from dashboards.config import GrafanaConfig
from greenwatch.core.config import Duration, InfluxConfig, Secret, SiteSettings, SpoolConfig, Strict, relative_file
from greenwatch.core.yamlfile import InputError, load_yaml, parse_model, problem_at
from reports.config import CommitmentConfig, ReportConfig
from rules.config import RulesConfig


class Site(SiteSettings):
    devices: list[Device] = []

    @model_validator(mode="after")
    def _unique_devices(self) -> Site:
        seen: set[str] = set()
        for device in self.devices:
            if device.name in seen:
                raise ValueError(f"device name {device.name!r} appears twice in site {self.name!r}")
            seen.add(device.name)
        return self


class HttpConfig(Strict):
    """The service's own endpoint (docs/operations.md): /healthz for anyone who can
    reach it; /metrics, /devices and /findings only with `Authorization: Bearer <token>`
    (no token configured: they refuse everyone). On by default, on loopback only."""

    enabled: bool = True
    listen: str = Field("127.0.0.1", min_length=1)
    # With --shard I/N, shard I listens on port + I - 1, so shards on one machine coexist.
    port: int = Field(9108, ge=0, le=65535)
    token: Secret | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # /healthz says 503 when the oldest spooled point is older than this.
    max_spool_age: Duration = 900.0

    @field_validator("tls_cert", "tls_key")
    @classmethod
    def _relative(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return relative_file(value, info)

    @model_validator(mode="after")
    def _tls(self) -> HttpConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("token is too short: use at least 16 characters (for example `openssl rand -hex 24`)")
        if self.tls_cert is not None:
            self.ssl_context()  # loadable now: a bad pair is a config error, not a failure at start
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ValueError(f"cannot use tls_cert {self.tls_cert} with tls_key {self.tls_key}: {exc}") from None
        return context


class LoggingConfig(Strict):
    # json: one object a line with site/device/rule as keys (greenwatch/logs.py);
    # the command line's --log-format wins over this.
    format: Literal["text", "json"] = "text"


class Config(Strict):
    # Sections default to {} validated like a written one, so relative paths
    # in their defaults are resolved against the config file too.
    influxdb: InfluxConfig = Field(default_factory=dict, validate_default=True)
    spool: SpoolConfig = Field(default_factory=dict, validate_default=True)
    defaults: Defaults = Field(default_factory=dict, validate_default=True)
    collector: CollectorConfig = Field(default_factory=dict, validate_default=True)
    rules: RulesConfig = Field(default_factory=dict, validate_default=True)
    report: ReportConfig = Field(default_factory=dict, validate_default=True)
    commitment: CommitmentConfig | None = None
    grafana: GrafanaConfig = Field(default_factory=dict, validate_default=True)
    http: HttpConfig = Field(default_factory=dict, validate_default=True)
    logging: LoggingConfig = Field(default_factory=dict, validate_default=True)
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
    # The file's folder anchors relative paths; its name, the default spool's.
    config = parse_model(Config, path, context={"base_dir": path.resolve().parent, "config_file": path.name})
    # Names that must match a site, checked once the whole file is read.
    problems = config.report.site_problems([s.name for s in config.sites])
    if problems:
        _, node = load_yaml(path)  # again, only now, for the line numbers
        raise InputError([problem_at(path, node, loc, message) for loc, message in problems])
    return config
