"""Build the engine from the config's pieces (used by `greenwatch rules run` and the
service's periodic job)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from greenwatch.core.config import InfluxConfig, SiteSettings
from greenwatch.core.influx import InfluxClient, query_client

from .config import RulesConfig
from .engine import Engine
from .loader import load_rules

log = logging.getLogger("greenwatch.rules")


def engine_from(client: InfluxClient, cfg: RulesConfig, sites: Sequence[SiteSettings]) -> Engine:
    """Every rule the config asks for (shipped pack and the user's folders)."""
    rules = load_rules(cfg.dirs, cfg.shipped)
    return Engine(client, rules, {s.name: s for s in sites}, cfg.overrides)


def periodic_job(influx: InfluxConfig, cfg: RulesConfig, sites: Sequence[SiteSettings]) -> Callable[[], Awaitable[None]]:
    """The service's job: evaluate every rule as of now and write the findings. The
    rules are loaded here, once, so a bad rule stops the service at start."""
    rules = load_rules(cfg.dirs, cfg.shipped)
    by_name = {s.name: s for s in sites}

    async def job() -> None:
        async with query_client(influx) as client:
            events = await Engine(client, rules, by_name, cfg.overrides).run(dt.datetime.now(dt.UTC), strict=False)
        opened = sum(e.state == "opened" for e in events)
        resolved = sum(e.state == "resolved" for e in events)
        log.info("rules: %d findings open (%d opened), %d resolved", len(events) - resolved, opened, resolved)

    return job
