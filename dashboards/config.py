"""The `grafana:` section of the config file: where `greenwatch dashboards publish`
puts the dashboards."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from greenwatch.core.config import Secret, Strict, http_url, tls_ca_file


# The dashboards' number (text-box) variables a config may set (tests keep this in step
# with dashboards/boards.py).
NUMBER_VARIABLES = ("pue_target", "baseline_tco2e", "trajectory_tco2e", "target_tco2e", "fixed_factor")


class GrafanaConfig(Strict):
    # Grafana's base URL (a sub-path such as https://host/grafana is kept).
    url: str = "http://127.0.0.1:3000"
    # A service-account token (Administration > Service accounts), Editor role or
    # above: `${GRAFANA_TOKEN}`, `{env: NAME}` or `{file: PATH}`, never in the file itself.
    token: Secret | None = None
    verify_tls: bool = True
    ca_file: Path | None = None
    # The folder the dashboards go into, by uid (created if missing) and title.
    folder: str = Field("greenwatch", min_length=1)
    folder_uid: str = Field("greenwatch", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    # The URL *Grafana* uses to reach InfluxDB (in docker-compose: http://influxdb:8086);
    # default: the influxdb section's URL.
    influxdb_url: str | None = None
    timeout: float = Field(10.0, gt=0, le=300)
    # Values for the dashboards' number variables, set on publish (pue_target,
    # baseline_tco2e, trajectory_tco2e, target_tco2e, fixed_factor): over what the
    # config's commitment gives.
    variables: dict[str, float] = {}  # noqa: RUF012 (pydantic copies field defaults)

    @field_validator("url", "influxdb_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("variables")
    @classmethod
    def _known_variables(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(NUMBER_VARIABLES))
        if unknown:
            raise ValueError(f"unknown variables {unknown}: expected some of {', '.join(NUMBER_VARIABLES)}")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return tls_ca_file(value, info)
