"""Build the engine from the config's pieces (used by `greenwatch rules run` and the
service's periodic job)."""

from __future__ import annotations

from collections.abc import Sequence

from greenwatch.core.config import InfluxConfig, SiteSettings
from greenwatch.core.influx import InfluxClient

from .config import RulesConfig
from .engine import Engine
from .loader import load_rules


def query_client(cfg: InfluxConfig) -> InfluxClient:
    """A client for InfluxQL over the v1-compatible API (1.x; 2.x/3.x with a DBRP
    mapping: with api v2 the bucket is the database and the token authenticates)."""
    def secret(value: object) -> str | None:
        return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]

    database = cfg.bucket if cfg.api == "v2" and cfg.bucket else cfg.database
    return InfluxClient(cfg.url, database, cfg.retention_policy, cfg.username, secret(cfg.password),
                        secret(cfg.token), timeout_s=max(cfg.timeout, 60.0), verify_tls=cfg.verify_tls,
                        ca_file=str(cfg.ca_file) if cfg.ca_file else None)


def engine_from(client: InfluxClient, cfg: RulesConfig, sites: Sequence[SiteSettings]) -> Engine:
    """Every rule the config asks for (shipped pack and the user's folders)."""
    rules = load_rules(cfg.dirs, cfg.shipped)
    return Engine(client, rules, {s.name: s for s in sites}, cfg.overrides)
