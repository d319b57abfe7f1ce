"""Make a week's report, keep it on disk, and send it to each recipient group: the
whole estate's report to groups of every site, a report of their sites to the others.
The figures are read once; every group's report is cut from them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import ReportConfig
from .mail import SendError, build_message, send
from .render import Rendered, render
from .weekly import Week, WeeklyFigures

log = logging.getLogger("greenwatch.report")


@dataclass
class Outcome:
    figures: WeeklyFigures
    html: Path  # the whole estate's report on disk
    saved: list[Path] = field(default_factory=list)  # every HTML written (one per site subset)
    sent: list[list[str]] = field(default_factory=list)  # the address lists that were sent to
    failed: list[str] = field(default_factory=list)  # why each failed group failed

    @property
    def ok(self) -> bool:
        return not self.failed


def _subset_name(week: Week, sites: list[str]) -> str:
    return f"greenwatch-{week.label}-" + "+".join(sites)


async def deliver(figures: WeeklyFigures, cfg: ReportConfig, out_dir: Path, send_mail: bool,
                  skip: Sequence[list[str]] = ()) -> Outcome:
    """Render and save the report (kept either way), then, if asked, send it to each
    recipient group but those in `skip` (already sent); a group whose sending failed
    is logged and listed in `failed`."""
    names = [s.name for s in figures.sites]
    # Drawing and the PDF are a second or two of CPU: in a thread, so that the
    # service's event loop (polls, other jobs) is not held meanwhile.
    whole = await asyncio.to_thread(render, figures)
    outcome = Outcome(figures, await asyncio.to_thread(whole.save, out_dir))
    outcome.saved.append(outcome.html)
    log.info("weekly report %s written to %s", figures.week.label, outcome.html)
    if not send_mail:
        return outcome
    if not cfg.recipients or cfg.smtp is None:
        outcome.failed.append("no recipients: add report.recipients and report.smtp to the config")
        return outcome
    for to, sites in cfg.groups(names):
        if to in skip:
            continue
        report: Rendered = whole
        if sites != names:
            report = await asyncio.to_thread(render, figures.only(sites), _subset_name(figures.week, sites))
            outcome.saved.append(await asyncio.to_thread(report.save, out_dir))
        msg = build_message(report, cfg.sender, to)
        # The exact message, kept beside the report: what was (or would have been) sent.
        (out_dir / f"{report.name}.eml").write_bytes(bytes(msg))
        try:
            await send(msg, cfg.smtp)
            outcome.sent.append(to)
        except SendError as exc:
            outcome.failed.append(str(exc))
    return outcome
