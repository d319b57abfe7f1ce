"""The weekly report on schedule in the service: at the configured day and time
(default Monday 07:00 Europe/London) the week before is reported, once. What was sent
is remembered in a small JSON file beside the spool, so a restart does not resend;
a send that failed is tried again on the job's next turn (to the groups not yet sent).
The service runs the job only when the config has recipients."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .config import DAYS, ReportConfig
from .deliver import deliver
from .weekly import HasSites, Week, read_report

log = logging.getLogger("greenwatch.report")


def due_week(now: dt.datetime, cfg: ReportConfig) -> Week:
    """The week whose report is due at `now`: the week before the latest scheduled
    time (day and time in the report's zone) that has passed."""
    zone = ZoneInfo(cfg.timezone)
    local = now.astimezone(zone)
    hour, minute = (int(x) for x in cfg.at.split(":"))
    monday = local.date() - dt.timedelta(days=local.weekday())
    slot = dt.datetime.combine(monday + dt.timedelta(days=DAYS.index(cfg.day)), dt.time(hour, minute), zone)
    if slot > local:
        slot -= dt.timedelta(weeks=1)
    year, week, _ = (slot.date() - dt.timedelta(weeks=1)).isocalendar()
    return Week(year, week, cfg.timezone)


class SentLog:
    """{"2026-W47": [["a@example.org"], ...]}: the address lists each week went to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, list[list[str]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Unreadable: better to send a week again than never to send again.
            log.warning("cannot read %s (%s): treating it as empty", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def sent(self, week: str) -> list[list[str]]:
        return self.read().get(week, [])

    def record(self, week: str, to: Sequence[list[str]]) -> None:
        data = self.read()
        data[week] = [*data.get(week, []), *[list(t) for t in to if list(t) not in data.get(week, [])]]
        # Written whole and renamed: a crash mid-write leaves the old file, not half a new one.
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def sent_log_beside(spool: Path) -> Path:
    return spool.with_name(f"{spool.stem}.report-sent.json")


def periodic_job(make_client: Callable[[], Any], config: HasSites, cfg: ReportConfig, state: Path,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
                 ) -> Callable[[], Awaitable[dict[str, int] | None]]:
    """The service's job: when a week's report is due and not yet sent to every
    recipient group, make it, keep it on disk, and send it to the groups still waiting."""
    sent_log = SentLog(state)
    names = [s.name for s in config.sites]

    async def job() -> dict[str, int] | None:
        week = due_week(now(), cfg)
        done = sent_log.sent(week.label)
        waiting = [to for to, _ in cfg.groups(names) if to not in done]
        if not waiting:
            return None
        client = make_client()
        try:
            figures = await read_report(client, config, week)
        finally:
            await client.close()
        outcome = await deliver(figures, cfg, cfg.out_dir, send_mail=True, skip=done)
        sent_log.record(week.label, outcome.sent)
        if not outcome.ok:
            raise RuntimeError(f"weekly report {week.label}: {'; '.join(outcome.failed)}")
        return {"reports_sent": len(outcome.sent)}  # counted in the service's /metrics

    return job
