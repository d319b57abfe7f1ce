"""The configuration file: one YAML file describing the estate, where to write, and
each capability's settings. Each part's models live with the part that reads them
(greenwatch.core.config, collector.config, rules.config); this module puts them together.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from collector.config import CollectorConfig, Defaults, Device
from dashboards.config import GrafanaConfig
from greenwatch.core.config import InfluxConfig, SiteSettings, SpoolConfig, Strict
from greenwatch.core.yamlfile import parse_model
from reports.config import ReportConfig
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


class Config(Strict):
    # Sections default to {} validated like a written one, so relative paths
    # in their defaults are resolved against the config file too.
    influxdb: InfluxConfig = Field(default_factory=dict, validate_default=True)
    spool: SpoolConfig = Field(default_factory=dict, validate_default=True)
    defaults: Defaults = Field(default_factory=dict, validate_default=True)
    collector: CollectorConfig = Field(default_factory=dict, validate_default=True)
    rules: RulesConfig = Field(default_factory=dict, validate_default=True)
    report: ReportConfig = Field(default_factory=dict, validate_default=True)
    grafana: GrafanaConfig = Field(default_factory=dict, validate_default=True)
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
    return parse_model(Config, path, context={"base_dir": path.resolve().parent, "config_file": path.name})
