"""The service's own HTTP endpoint (docs/operations.md), read-only:

    /healthz   scheduler running, InfluxDB reachable, spool depth and age: 200 or 503,
               with the reasons, as JSON. Open to anyone who can reach it.
    /metrics   Prometheus text format: polls, failures, durations, skips, the spool,
               points written, refused and dropped, periodic jobs, reloads.
    /devices   JSON: each device's last poll, state, error and power.
    /findings  JSON: the open findings, read from InfluxDB.

Everything but /healthz needs `Authorization: Bearer <http.token>`; with no token
configured those answer 401 to everyone. Bound to 127.0.0.1 unless configured
otherwise; TLS when `http.tls_cert`/`tls_key` are given. Every figure is read from
the running Service when asked: nothing here keeps state of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from collector.scheduler import Entry
from greenwatch.core.influx import InfluxClient, query_client

if TYPE_CHECKING:
    from greenwatch.service import Service

log = logging.getLogger("greenwatch.http")

# The newest point of each finding over the rules' look-back (docs/rules.md): the
# tags not grouped by (severity) come back as columns beside the fields.
OPEN_FINDINGS_QUERY = (
    'SELECT * FROM "finding" WHERE time > now() - 400d '
    'GROUP BY "rule", "site", "device", "entity" ORDER BY time DESC LIMIT 1'
)
_PING_TIMEOUT_S = 3.0


def rfc3339(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def device_state(entry: Entry) -> dict[str, Any]:
    """One device as /devices and `greenwatch status` show it."""
    stats = entry.stats
    return {
        "site": entry.site.name,
        "device": entry.device.name,
        "kind": entry.kind,
        "interval_s": entry.interval,
        "up": None if stats.last_poll_at is None else stats.last_error is None,
        "last_poll": rfc3339(stats.last_poll_at),
        "last_error": stats.last_error,
        "last_duration_ms": round(stats.last_duration_ms, 1) if stats.last_poll_at is not None else None,
        "watts": stats.last_watts,
        "polls": stats.polls,
        "failures": stats.down,
        "skipped": stats.skipped,
    }


async def open_findings(client: InfluxClient) -> list[dict[str, Any]]:
    """The findings whose newest point says open, most kWh per year first."""
    data = await client.query(OPEN_FINDINGS_QUERY, epoch="s")
    findings = []
    for result in data.get("results", []):
        for series in result.get("series", []) or []:
            row = dict(zip(series["columns"], series["values"][0]))
            if row.get("open") != 1:
                continue
            tags = {k: v for k, v in (series.get("tags") or {}).items() if v}
            findings.append({
                **tags,
                "severity": row.get("severity"),
                "id": row.get("id"),
                "summary": row.get("summary"),
                "opened_at": row.get("opened_at"),
                "updated_at": rfc3339(row["time"]),
                "kwh_per_year": row.get("kwh_per_year"),
                "cost_per_year": row.get("cost_per_year"),
                "currency": row.get("currency"),
                "kgco2e_per_year": row.get("kgco2e_per_year"),
            })
    findings.sort(key=lambda f: -(f["kwh_per_year"] or 0.0))
    return findings


def _oldest_line_time(service: Service) -> float | None:
    """When the oldest spooled point was taken (its line protocol timestamp, ns), or None."""
    _, lines = service.spool.peek(1)
    if not lines:
        return None
    try:
        return int(lines[0].rsplit(" ", 1)[1]) / 1e9
    except (IndexError, ValueError):
        return None  # a line without a timestamp: InfluxDB stamps it on arrival


async def spool_age_s(service: Service) -> float:
    """Seconds since the oldest spooled point was taken (0 with an empty spool)."""
    if service.spool.pending == 0:
        return 0.0
    oldest = await asyncio.to_thread(_oldest_line_time, service)
    return max(0.0, time.time() - oldest) if oldest is not None else 0.0


class _Families:
    """The metric families of one scrape, for prometheus_client's exposition."""

    def __init__(self, service: Service, spool_age: float) -> None:
        self.service = service
        self.spool_age = spool_age

    def collect(self) -> Iterator[Metric]:
        service = self.service
        labels = ["site", "device", "kind"]
        families: dict[str, Any] = {
            "polls": CounterMetricFamily("greenwatch_polls", "Polls of each device (up or down).", labels=labels),
            "failures": CounterMetricFamily("greenwatch_poll_failures", "Polls that found the device down.",
                                            labels=labels),
            "skipped": CounterMetricFamily("greenwatch_polls_skipped",
                                           "Polls skipped: the previous one still ran or the start came too late.",
                                           labels=labels),
            "duration": SummaryMetricFamily("greenwatch_poll_duration_seconds", "How long polls took.",
                                            labels=labels),
            "up": GaugeMetricFamily("greenwatch_device_up", "1 if the device answered its last poll, else 0.",
                                    labels=labels),
            "last": GaugeMetricFamily("greenwatch_device_last_poll_timestamp_seconds",
                                      "When the device's last poll ended (Unix time).", labels=labels),
            "watts": GaugeMetricFamily("greenwatch_device_watts", "The device's total power at its last poll.",
                                       labels=labels),
        }
        for entry in list(service.collector.entries):  # a copy: a reload may change the list meanwhile
            stats = entry.stats
            values = [entry.site.name, entry.device.name, entry.kind]
            families["polls"].add_metric(values, stats.polls)
            families["failures"].add_metric(values, stats.down)
            families["skipped"].add_metric(values, stats.skipped)
            families["duration"].add_metric(values, stats.polls, stats.duration_ms_total / 1000)
            if stats.last_poll_at is not None:
                families["up"].add_metric(values, 0 if stats.last_error else 1)
                families["last"].add_metric(values, stats.last_poll_at)
            if stats.last_watts is not None:
                families["watts"].add_metric(values, stats.last_watts)
        yield from families.values()

        yield GaugeMetricFamily("greenwatch_devices", "Devices this process polls.",
                                value=len(service.collector.entries))
        yield GaugeMetricFamily("greenwatch_scheduler_running", "1 while polls are being scheduled.",
                                value=1 if service.collector.running else 0)
        sink = service.sink.stats()
        yield CounterMetricFamily("greenwatch_points_accepted", "Points durably spooled this run.",
                                  value=service.collector.accepted)
        yield CounterMetricFamily("greenwatch_points_written", "Lines InfluxDB took this run.", value=sink.written)
        yield CounterMetricFamily("greenwatch_points_rejected", "Lines InfluxDB refused (400/422), dropped.",
                                  value=sink.rejected)
        yield CounterMetricFamily("greenwatch_points_dropped", "Lines pushed out of the full spool.",
                                  value=sink.dropped)
        yield CounterMetricFamily("greenwatch_influxdb_write_retries", "Failed InfluxDB writes, retried.",
                                  value=sink.retries)
        yield GaugeMetricFamily("greenwatch_spool_pending_points", "Lines waiting in the spool.", value=sink.pending)
        yield GaugeMetricFamily("greenwatch_spool_pending_bytes", "Size of the lines waiting in the spool.",
                                value=service.spool.pending_bytes)
        yield GaugeMetricFamily("greenwatch_spool_oldest_age_seconds",
                                "Age of the oldest point waiting in the spool (0 when empty).", value=self.spool_age)

        runs = CounterMetricFamily("greenwatch_job_runs", "Turns of a periodic job that ended well.", labels=["job"])
        failures = CounterMetricFamily("greenwatch_job_failures", "Turns of a periodic job that failed.",
                                       labels=["job"])
        events = CounterMetricFamily("greenwatch_job_events", "What the periodic jobs counted (by event).",
                                     labels=["job", "event"])
        for job in service.periodic:
            runs.add_metric([job.name], job.runs)
            failures.add_metric([job.name], job.failures)
            for event, count in sorted(job.counts.items()):
                events.add_metric([job.name, event], count)
        yield from (runs, failures, events)
        yield CounterMetricFamily("greenwatch_reports_sent", "Weekly reports sent by mail.",
                                  value=sum(job.counts.get("reports_sent", 0) for job in service.periodic))
        reloads = CounterMetricFamily("greenwatch_config_reloads", "SIGHUP reloads, by result.", labels=["result"])
        for result, count in sorted(service.reloads.items()):
            reloads.add_metric([result], count)
        yield reloads


class HttpApi:
    """The endpoint of one Service: `await start()`, `await close()`."""

    def __init__(self, service: Service, port: int) -> None:
        self.service = service
        self.cfg = service.loaded.config.http
        self.port = port
        token = self.cfg.token.get_secret_value() if self.cfg.token is not None else None
        self._expected = f"Bearer {token}".encode() if token else None
        self._influx: InfluxClient = query_client(service.loaded.config.influxdb)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/devices", self.devices)
        app.router.add_get("/findings", self.findings)
        return app

    async def start(self) -> bool:
        """Listen; a port in use is logged and the service goes on without the
        endpoint (polling matters more than watching it)."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        ssl_context = self.cfg.ssl_context()
        site = web.TCPSite(runner, self.cfg.listen, self.port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            log.error("HTTP endpoint not started: cannot listen on %s:%d: %s (set http.port, or http.enabled: false)",
                      self.cfg.listen, self.port, exc.strerror or exc)
            return False
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{port}"
        log.info("HTTP endpoint on %s (/healthz open%s)", self.url,
                 "; the rest with the bearer token" if self._expected else "; no http.token, so the rest refuse all")
        return True

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._influx.close()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/healthz":
            given = request.headers.get("Authorization", "").encode()
            # compare_digest: how much of the token matched must not show in the timing.
            if self._expected is None or not hmac.compare_digest(given, self._expected):
                return web.json_response(
                    {"error": "this needs Authorization: Bearer <http.token from the config>"},
                    status=401, headers={"WWW-Authenticate": 'Bearer realm="greenwatch"'})
        return await handler(request)

    async def healthz(self, request: web.Request) -> web.Response:
        service = self.service
        reasons = []
        if not service.collector.running:
            reasons.append("the scheduler is not running")
        if not service.sink.running:
            reasons.append("the sink is not draining the spool (see the log)")
        influx: dict[str, Any] = {"url": self._influx.url}
        try:
            influx["version"] = await asyncio.wait_for(self._influx.ping(), _PING_TIMEOUT_S)
            influx["reachable"] = True
        except Exception as exc:  # noqa: BLE001 - any failure is an answer here
            influx["reachable"] = False
            influx["error"] = str(exc) or type(exc).__name__
            reasons.append(f"InfluxDB is not reachable: {influx['error']}")
        age = await spool_age_s(service)
        if age > self.cfg.max_spool_age:
            reasons.append(f"the oldest spooled point is {age:.0f} s old (over http.max_spool_age, "
                           f"{self.cfg.max_spool_age:.0f} s)")
        body = {
            "status": "ok" if not reasons else "failing",
            "reasons": reasons,
            "scheduler_running": service.collector.running,
            "devices": len(service.collector.entries),
            "influxdb": influx,
            "spool": {"pending": service.spool.pending, "oldest_age_s": round(age, 3)},
        }
        return web.json_response(body, status=200 if not reasons else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        age = await spool_age_s(self.service)
        # In a worker thread: for 10,000 devices this is ~0.5 s of CPU, which must not
        # hold up the polls on the event loop (it reads counters only, never waits).
        body = await asyncio.to_thread(generate_latest, _Families(self.service, age))  # type: ignore[arg-type]
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def devices(self, request: web.Request) -> web.Response:
        return web.json_response([device_state(e) for e in list(self.service.collector.entries)])

    async def findings(self, request: web.Request) -> web.Response:
        try:
            findings = await open_findings(self._influx)
        except Exception as exc:  # noqa: BLE001 - the answer says why, the service goes on
            return web.json_response({"error": f"cannot read findings from InfluxDB: {exc}"}, status=502)
        return web.json_response(findings)
