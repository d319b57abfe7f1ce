"""Polling on schedule: every device on its own interval, spread evenly, isolated.

* Each device's first poll is at a fixed offset within its interval (device i of n
  with the same interval starts at i/n of it), so load is even and never drifts:
  APScheduler's jitter would accumulate, fixed offsets do not.
* One poll per device at a time: a poll still running when the next is due makes
  that next one skipped and counted, never queued.
* A global limit on polls in flight; a per-poll deadline, so a dead device frees
  its slot and never delays the others.
* Devices come and go while it runs (a config reload): `add`, `remove` and
  `replace` touch only the devices concerned; the others keep their slots.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector.config import Device
from greenwatch.core.config import SiteSettings
from greenwatch.core.logcontext import about
from greenwatch.core.schema import POLL, Sample, device_watts
from greenwatch.core.sink import Sink

from .source import PollResult, Source

log = logging.getLogger("collector")


@dataclass
class DeviceStats:
    polls: int = 0
    up: int = 0
    down: int = 0
    skipped: int = 0
    last_error: str | None = None
    last_duration_ms: float = 0.0
    last_readings: int = 0
    last_poll_at: float | None = None  # wall-clock time the last poll ended
    last_watts: float | None = None  # the device's total power at its last poll
    duration_ms_total: float = 0.0  # of every poll: with `polls`, the mean
    # How late each scheduled poll started, in seconds (bounded history).
    lags: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)


@dataclass
class Entry:
    """One device to poll: where it sits in the inventory and its source."""

    site: SiteSettings
    device: Device
    source: Source
    interval: float
    offset: float = 0.0
    stats: DeviceStats = field(default_factory=DeviceStats)
    job_id: str | None = None  # its job in the scheduler, while scheduled

    @property
    def kind(self) -> str:
        return self.source.kind

    @property
    def key(self) -> str:
        return f"{self.site.name}/{self.device.name}"


_HISTORY = 1000


class Collector:
    """Polls entries, writes their samples and a `poll` sample to the sink."""

    def __init__(self, entries: list[Entry], sink: Sink, concurrency: int = 256) -> None:
        self.entries = entries
        self.sink = sink
        self._slots = asyncio.Semaphore(concurrency)
        self._scheduler: AsyncIOScheduler | None = None
        self._inflight: dict[asyncio.Task, Entry] = {}
        self._jobs: dict[str, Entry] = {}  # scheduler job id -> entry
        self._next_job = 0
        self._stopping = False
        self._start_mono = 0.0
        self._start_wall = datetime.now(timezone.utc)
        self.accepted = 0  # points durably accepted by the sink this run

    async def poll(self, entry: Entry) -> PollResult:
        """Poll one device once (within its deadline) and write what it gave."""
        # Every line logged meanwhile (here, in the source, in the engine) is about it.
        with about(site=entry.site.name, device=entry.device.name):
            return await self._poll(entry)

    async def _poll(self, entry: Entry) -> PollResult:
        async with self._slots:
            started = time.perf_counter()
            time_ns = time.time_ns()
            # The deadline: a little under the interval, so a poll never overlaps
            # its successor, whatever the device or network does.
            deadline = max(entry.interval * 0.9, 0.1)
            try:
                result = await asyncio.wait_for(entry.source.poll(), deadline)
            except TimeoutError:
                result = PollResult(error=f"poll took longer than its deadline of {deadline:.1f}s")
            except Exception as exc:  # a bug in a source must not stop the others
                log.exception("%s: poll failed", entry.key)
                result = PollResult(error=f"internal error: {type(exc).__name__}: {exc}")
            duration_ms = (time.perf_counter() - started) * 1000
        stats = entry.stats
        stats.polls += 1
        stats.last_duration_ms = duration_ms
        stats.duration_ms_total += duration_ms
        stats.last_readings = result.readings
        stats.last_poll_at = time.time()
        stats.last_watts = device_watts(result.samples)
        if result.up:
            stats.up += 1
            stats.last_error = None
        else:
            stats.down += 1
            if result.error != stats.last_error:
                log.warning("%s: down: %s", entry.key, result.error)
            stats.last_error = result.error
        points = [*result.samples, self._poll_sample(entry, result, duration_ms, time_ns)]
        delivery = asyncio.ensure_future(self._deliver(entry, points))
        try:
            await asyncio.shield(delivery)
        except asyncio.CancelledError:
            # Cancelled (at shutdown) after the device answered: the append runs
            # in a thread and goes to disk whatever we do, so let it finish and be
            # counted, then give in. A poll is cancelled whole or not at all.
            await asyncio.wait([delivery])
            raise
        return result

    async def _deliver(self, entry: Entry, points: list[Sample]) -> None:
        await self.sink.write(points)
        self.accepted += len(points)
        # Logged after the write is durable: a point counted here is never lost.
        log.debug("%s: %d points accepted", entry.key, len(points))

    @staticmethod
    def _poll_sample(entry: Entry, result: PollResult, duration_ms: float, time_ns: int) -> Sample:
        fields: dict[str, float | int | str] = {
            "up": 1 if result.up else 0,
            "duration_ms": round(duration_ms, 3),
            "readings": result.readings,
            "problems": len(result.problems),
        }
        if result.error:
            fields["error"] = result.error
        tags = {"site": entry.site.name, "device": entry.device.name, "kind": entry.kind}
        return Sample(POLL, tags, fields, time_ns)

    async def poll_all(self) -> list[PollResult]:
        """Every device once, concurrently (within the global limit)."""
        return list(await asyncio.gather(*(self.poll(e) for e in self.entries)))

    # -- on schedule ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether polls are being scheduled (started and not stopped)."""
        return self._scheduler is not None and self._scheduler.running and not self._stopping

    def start(self) -> None:
        """Schedule every entry; polls begin at their offsets from now."""
        assign_offsets(self.entries)
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self._scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._start_mono = time.monotonic()
        self._start_wall = datetime.now(timezone.utc)
        for entry in self.entries:
            self._schedule(entry, self._start_wall)
        self._scheduler.start()

    def _schedule(self, entry: Entry, now: datetime) -> None:
        """Add the entry's job: due at start + offset + k * interval, from the first such time at or after `now`."""
        assert self._scheduler is not None
        elapsed = (now - self._start_wall).total_seconds() - entry.offset
        first = self._start_wall + timedelta(
            seconds=entry.offset + max(0, math.ceil(elapsed / entry.interval)) * entry.interval)
        entry.job_id = str(self._next_job)
        self._next_job += 1
        self._jobs[entry.job_id] = entry
        self._scheduler.add_job(
            self._scheduled_poll,
            IntervalTrigger(seconds=entry.interval, start_date=first),
            args=[entry],
            id=entry.job_id,
            name=entry.key,
            max_instances=1,
            coalesce=True,
            # A poll that could not start within its interval is skipped, not run late.
            misfire_grace_time=max(1, int(entry.interval)),
            next_run_time=first,
        )

    # -- devices coming and going (a config reload) ----------------------------------

    def add(self, entry: Entry, offset: float | None = None) -> None:
        """Poll `entry` from now on, at `offset` in its interval or else in the middle
        of the widest gap between the slots of the devices with its interval (so
        the load stays spread and no other device's slot moves)."""
        if offset is None:
            offset = free_offset([e.offset for e in self.entries if e.interval == entry.interval], entry.interval)
        entry.offset = offset
        self.entries.append(entry)
        if self._scheduler is not None:
            self._schedule(entry, datetime.now(timezone.utc))

    async def remove(self, entry: Entry) -> None:
        """Stop polling `entry`: no new polls; one in flight ends (within its
        deadline) and its points are written; then its source is closed."""
        self._unschedule(entry)
        await self._finished(entry)
        await entry.source.close()

    async def replace(self, old: Entry, new: Entry) -> None:
        """A device whose config changed: the new entry takes the old one's slot (if
        its interval is the same) and its running counts, and the old one goes."""
        new.stats = old.stats
        self._unschedule(old)
        # The new source's first poll waits for the old one's last, one at a time.
        await self._finished(old)
        self.add(new, old.offset if new.interval == old.interval else None)
        await old.source.close()

    def _unschedule(self, entry: Entry) -> None:
        if entry in self.entries:
            self.entries.remove(entry)
        if entry.job_id is not None:
            self._jobs.pop(entry.job_id, None)
            if self._scheduler is not None and self._scheduler.get_job(entry.job_id) is not None:
                self._scheduler.remove_job(entry.job_id)
            entry.job_id = None

    async def _finished(self, entry: Entry) -> None:
        """Wait for the entry's poll in flight, if any (its deadline bounds it)."""
        tasks = [task for task, e in self._inflight.items() if e is entry]
        if tasks:
            await asyncio.wait(tasks, timeout=entry.interval + 1.0)

    async def _scheduled_poll(self, entry: Entry) -> None:
        # How late is this start? Polls are due at offset + k * interval.
        elapsed = time.monotonic() - self._start_mono - entry.offset
        lag = elapsed - round(elapsed / entry.interval) * entry.interval
        stats = entry.stats
        stats.lags.append(max(0.0, lag))
        stats.starts.append(time.time())
        if len(stats.lags) > _HISTORY:
            del stats.lags[: -_HISTORY], stats.starts[: -_HISTORY]
        task = asyncio.current_task()
        if task is not None:
            self._inflight[task] = entry
        try:
            await self.poll(entry)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by stop(), as intended: not an error for APScheduler to log.
            log.debug("%s: poll cancelled at shutdown", entry.key)
        finally:
            if task is not None:
                self._inflight.pop(task, None)

    def _on_skipped(self, event: JobEvent) -> None:
        entry = self._jobs.get(event.job_id)
        if entry is None:
            return  # removed by a reload meanwhile
        entry.stats.skipped += 1
        why = "the previous one is still running" if event.code == EVENT_JOB_MAX_INSTANCES else "started too late"
        log.info("%s: poll skipped: %s", entry.key, why, extra={"site": entry.site.name, "device": entry.device.name})

    async def stop(self, grace_s: float = 3.0) -> None:
        """Start no more polls; give those in flight `grace_s` to finish, then
        cancel the rest and wait for them to end.

        A cancelled poll writes nothing, unless its device had already answered,
        in which case its points are written whole (see `poll`). Pausing first
        matters: APScheduler's shutdown alone would cancel jobs it just started
        without us waiting for them."""
        if self._scheduler is None:
            return
        self._scheduler.pause()
        self._stopping = True
        await asyncio.sleep(0)  # polls the scheduler launched just now register themselves
        running = set(self._inflight)
        if running:
            _, late = await asyncio.wait(running, timeout=grace_s)
            if late:
                log.info("stopping: cancelling %d polls still in flight after %.1f s", len(late), grace_s)
                for task in late:
                    task.cancel()
                # A source ignoring cancellation must not hold up the shutdown for
                # ever; what it may still write later lands in the spool or nowhere.
                _, stuck = await asyncio.wait(late, timeout=1.0)
                if stuck:
                    log.warning("stopping: %d polls did not end when cancelled", len(stuck))
        self._scheduler.shutdown(wait=False)
        self._scheduler = None


def assign_offsets(entries: list[Entry]) -> None:
    """Spread each interval's devices evenly over that interval, in inventory order."""
    groups: dict[float, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.interval, []).append(entry)
    for interval, members in groups.items():
        for i, entry in enumerate(members):
            entry.offset = interval * i / len(members)


def free_offset(taken: list[float], interval: float) -> float:
    """The middle of the widest gap between the `taken` offsets on an interval's circle."""
    if not taken:
        return 0.0
    slots = sorted(t % interval for t in taken)
    gaps = [((slots[(i + 1) % len(slots)] - slot) % interval or interval, slot) for i, slot in enumerate(slots)]
    width, start = max(gaps)
    return (start + width / 2) % interval
