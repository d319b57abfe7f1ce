"""The weekly report on schedule: which week is due when (time zone and daylight
saving), sent once per recipient group and remembered across restarts, a failed send
tried again on the next turn, and the service's job (not for `poll --once`, one shard only)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest
from test_report_mail import (  # noqa: F401 (fixtures)
    WEEK,
    Figures,
    make_estate,
    smtp_server,
    tls_files,
    write_config,
    write_estate,
)

from greenwatch import service
from greenwatch.config import load_config
from greenwatch.core.influx import query_client
from reports.config import ReportConfig
from reports.schedule import SentLog, due_week, periodic_job, sent_log_beside

UTC = dt.timezone.utc


@pytest.mark.parametrize("now,week", [
    ("2026-11-23T06:59:00+00:00", "2026-W46"),  # Monday, a minute before 07:00 GMT
    ("2026-11-23T07:00:00+00:00", "2026-W47"),
    ("2026-11-29T23:59:00+00:00", "2026-W47"),  # Sunday night: still last week's
    ("2026-03-30T05:59:00+00:00", "2026-W12"),  # British Summer Time: 07:00 local is 06:00 UTC
    ("2026-03-30T06:00:00+00:00", "2026-W13"),
    ("2027-01-04T07:00:00+00:00", "2026-W53"),  # 2026 has 53 ISO weeks
])
def test_due_week_follows_the_schedule_in_its_time_zone(now: str, week: str) -> None:
    assert due_week(dt.datetime.fromisoformat(now), ReportConfig()).label == week


def test_due_week_on_another_day_and_zone() -> None:
    cfg = ReportConfig(day="wed", at="18:30", timezone="America/New_York")
    # Wednesday 25 Nov 2026 18:30 in New York is 23:30 UTC.
    assert due_week(dt.datetime(2026, 11, 25, 23, 29, tzinfo=UTC), cfg).label == "2026-W46"
    assert due_week(dt.datetime(2026, 11, 25, 23, 30, tzinfo=UTC), cfg).label == "2026-W47"


async def test_job_sends_each_week_once_across_restarts_and_retries_a_failed_send(
        influxdb, influx_db, tmp_path, tls_files, smtp_server) -> None:
    estate = make_estate()
    write_estate(influxdb, influx_db, estate)
    controller, mailbox = smtp_server
    config = load_config(write_config(tmp_path, influxdb, influx_db, controller.port, tls_files[0]))
    state = tmp_path / "sent.json"
    clock = {"now": dt.datetime(2026, 11, 23, 7, 5, tzinfo=UTC)}  # W47 is due

    def job():  # a new job each time: as after a restart of the service
        return periodic_job(lambda: query_client(config.influxdb), config, config.report, state,
                            now=lambda: clock["now"])

    mailbox.refuse = True
    with pytest.raises(RuntimeError, match="554 5.7.1 message refused"):
        await job()()
    assert SentLog(state).sent(WEEK) == [] and mailbox.messages == []
    assert (tmp_path / "out" / f"greenwatch-{WEEK}.pdf").exists()  # kept though not sent

    mailbox.refuse = False
    the_job = job()
    await the_job()
    await the_job()  # the next turn: nothing more to send
    await job()()  # after a restart: still nothing
    assert len(mailbox.messages) == 1
    msg = email.message_from_bytes(mailbox.messages[0][1], policy=email.policy.default)
    assert msg["Subject"].endswith(WEEK)
    assert SentLog(state).sent(WEEK) == [["officer@example.org", "cfo@example.org"]]

    clock["now"] += dt.timedelta(days=7)  # a week later, W48 is due
    await job()()
    assert len(mailbox.messages) == 2
    assert set(SentLog(state).read()) == {WEEK, "2026-W48"}


async def test_service_runs_the_report_job_in_one_process_only(influxdb, influx_db, tmp_path, tls_files,
                                                               smtp_server) -> None:
    controller, mailbox = smtp_server
    path = write_config(tmp_path, influxdb, influx_db, controller.port, tls_files[0])
    loaded = service.load(path)
    for shard, once, expected in ((None, True, False), ((1, 2), False, False), ((0, 2), False, True)):
        svc = service.Service(loaded, shard, once=once)
        try:
            assert ("weekly report" in [p.name for p in svc.periodic]) is expected
        finally:
            await svc.close()

    svc = service.Service(loaded)
    try:
        job = next(p for p in svc.periodic if p.name == "weekly report")
        await job.job()
        await job.job()
    finally:
        await svc.close()
    week = due_week(dt.datetime.now(UTC), loaded.config.report)
    assert len(mailbox.messages) == 1
    assert SentLog(sent_log_beside(loaded.config.spool.path)).sent(week.label) != []
    html = email.message_from_bytes(mailbox.messages[0][1], policy=email.policy.default).get_body(("html",))
    parsed = Figures()
    parsed.feed(html.get_content())
    assert parsed.figures["total.kwh"] == "n/a"  # no data that week: said, not shown as 0
