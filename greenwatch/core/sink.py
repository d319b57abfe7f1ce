"""The sink: samples in, durably spooled, drained in order to InfluxDB.

    collectors --write(samples)--> Spool (disk) --drain task--> LineWriter --> InfluxDB

`write` returns once the encoded lines are on disk, so a collector never waits for
InfluxDB and nothing is lost while InfluxDB is down or greenwatch restarts. One
background task drains the spool oldest first, one batch at a time, so points
reach InfluxDB in the order they were written.

Delivery is at-least-once: a batch InfluxDB stored but whose answer was lost (a
timeout, a cancel at shutdown) is sent again. That is harmless with InfluxDB:
a point with the same measurement, tag set and timestamp overwrites itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass

from greenwatch.core.influx import (
    InfluxAuthError,
    InfluxRejectedError,
    InfluxRetryableError,
    InfluxTooLargeError,
    LineWriter,
)
from greenwatch.core.schema import Sample, encode_lines
from greenwatch.core.spool import Spool

__all__ = ["Sink", "SinkStats"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Line counts since the sink was made (pending: lines in the spool now).

    written: accepted by InfluxDB. rejected: in batches InfluxDB refused (400/422)
    and that were dropped. dropped: pushed out of the spool by its size bound.
    retries: failed write attempts that will be (or were) retried."""

    written: int
    rejected: int
    dropped: int
    retries: int
    pending: int


class Sink:
    """Durable, ordered, retrying delivery of samples to one writer.

    * `await write(samples)`: encode and append to the spool; durable on return.
    * `start()`: start the drain task (inside a running event loop).
    * Retryable failures (`InfluxRetryableError`: unreachable, timeout, 5xx, 429,
      401/403, ...) back off exponentially from `retry_initial_s` to `retry_max_s`
      (or the server's Retry-After, if longer, still capped) and retry the SAME
      batch: nothing is skipped and the order is kept.
    * Rejected data (`InfluxRejectedError`, 400/422): the batch is halved and
      retried until the refused line stands alone; only that line is dropped,
      counted in `rejected` and logged with the server's error text. (InfluxDB 2.x
      refuses a whole batch for one bad line; 1.x answers a partial write with 400
      after storing the good points, which are then harmlessly written again.)
    * 413 (request too large) halves the batch and tries again; only a single
      line too large on its own is dropped as rejected.
    * `flush_interval_s`: after a write of less than a full batch, wait up to this
      long for more lines (a full batch ends the wait), so that thousands of small
      polls a minute make one write a second, not one each (Telegraf's
      flush_interval). 0 writes at once. Lines are on disk meanwhile.
    * `await flush(timeout_s)`: wait until the spool is empty.
    * `await close(timeout_s)`: flush what it can, then stop the task; anything
      unwritten stays in the spool for the next start.

    The sink does not own the spool or the writer: close them after `close()`.
    """

    def __init__(
        self,
        spool: Spool,
        writer: LineWriter,
        batch_size: int = 5000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        logger: logging.Logger | None = None,
        full_warning_every_s: float = 60.0,
        flush_interval_s: float = 0.0,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError(
                f"need 0 < retry_initial_s <= retry_max_s, got {retry_initial_s} and {retry_max_s}"
            )
        self.spool = spool
        self.writer = writer
        self.batch_size = batch_size
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.log = logger or _log
        self.full_warning_every_s = full_warning_every_s
        self.flush_interval_s = flush_interval_s
        self._written = 0
        self._rejected = 0
        self._retries = 0
        self._task: asyncio.Task[None] | None = None
        # Set by write(), start() and flush(): there may be lines to drain.
        self._wake = asyncio.Event()
        # Set by flush() only: end a running backoff now. Separate from _wake so
        # that steady writes during an outage do not defeat the backoff.
        self._retry_now = asyncio.Event()
        # Set by the drain task after every ack and whenever it goes idle, for flush().
        self._progress = asyncio.Event()
        # Set when a full batch is spooled or flush() waits: ends the flush interval.
        self._batch_ready = asyncio.Event()
        self._inflight = False
        self._flushing = 0  # flush() calls waiting
        self._last_full_warning = float("-inf")
        self._reported_dropped = 0  # spool.dropped as of the last warning
        self._warn_later: asyncio.TimerHandle | None = None

    # -- producer side -----------------------------------------------------------

    async def write(self, samples: list[Sample]) -> None:
        """Encode `samples` and append them to the spool; durable on return."""
        await self.write_lines(encode_lines(samples))

    async def write_lines(self, lines: list[str]) -> None:
        """Append already-encoded line protocol (ns timestamps); durable on return."""
        if not lines:
            return
        dropped_before = self.spool.dropped
        # The append waits for an fsync: do it in a worker thread so the event
        # loop (and every other collector on it) keeps running meanwhile.
        await asyncio.to_thread(self.spool.append, lines)
        self._wake.set()
        if self.spool.pending >= self.batch_size:
            self._batch_ready.set()
        if self.spool.dropped > dropped_before:
            self._warn_full()

    def _warn_full(self) -> None:
        """Say so when the spool's bound pushes out data, at most once a minute
        (`full_warning_every_s`), so a long outage does not flood the log.

        Drops within the minute after a warning are not lost from the log: when
        the minute is up, one more warning gives the new running total, so the
        last figure logged is always the true one (close() says any rest)."""
        wait = self._last_full_warning + self.full_warning_every_s - time.monotonic()
        if wait <= 0:
            self._say_dropped()
        elif self._warn_later is None:
            self._warn_later = asyncio.get_running_loop().call_later(wait, self._warn_due)

    def _warn_due(self) -> None:
        self._warn_later = None
        if self.spool.dropped > self._reported_dropped:
            self._say_dropped()

    def _say_dropped(self) -> None:
        self._last_full_warning = time.monotonic()
        since = self.spool.dropped - self._reported_dropped
        self._reported_dropped = self.spool.dropped
        self.log.warning(
            "spool %s is full (max %d bytes): the oldest lines are being dropped "
            "(%d since the last warning, %d so far this run, %d pending); "
            "InfluxDB has not taken data for a while",
            self.spool.path, self.spool.max_bytes, since, self.spool.dropped, self.spool.pending,
        )

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start draining the spool in the background (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._wake.set()  # lines left by an earlier run are drained at once
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="greenwatch-sink")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every spooled line is written or dropped: True, or False if
        `timeout_s` passed first. Cuts a running backoff short once, so a flush
        right after InfluxDB came back does not wait out the backoff."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._wake.set()
        self._retry_now.set()
        self._flushing += 1
        try:
            return await self._flushed(deadline)
        finally:
            self._flushing -= 1

    async def _flushed(self, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        while True:
            self._batch_ready.set()  # no flush interval while someone waits
            self._progress.clear()
            if self._is_empty():
                return True
            if not self.running:
                return False  # nobody is draining: it will never empty
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await _wait(self._progress, remaining)

    async def close(self, timeout_s: float = 10.0) -> bool:
        """Flush for up to `timeout_s`, then stop the drain task. Returns whether
        everything was written; what was not stays in the spool."""
        self._say_unreported_drops()
        if self._task is None:
            return self._is_empty()
        flushed = await self.flush(timeout_s) if self.running else self._is_empty()
        task, self._task = self._task, None
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # close() itself is being cancelled: do not swallow that
        except Exception:  # noqa: BLE001
            # The drain task already logged why it died (a spool failure); a
            # shutdown should still go on to close the writer and the spool.
            pass
        return flushed

    def _say_unreported_drops(self) -> None:
        """At close, the drops a pending once-a-minute warning would have told."""
        if self._warn_later is not None:
            self._warn_later.cancel()
            self._warn_later = None
        if self.spool.dropped > self._reported_dropped:
            self._say_dropped()

    def stats(self) -> SinkStats:
        return SinkStats(
            written=self._written,
            rejected=self._rejected,
            dropped=self.spool.dropped,
            retries=self._retries,
            pending=self.spool.pending,
        )

    def _is_empty(self) -> bool:
        return self.spool.pending == 0 and not self._inflight

    # -- the drain task ----------------------------------------------------------

    async def _drain(self) -> None:
        failures = 0  # consecutive failed attempts of the current outage
        limit = self.batch_size  # lowered after a 413, restored after a success
        try:
            while True:
                # Clear before peeking: a write() landing after the peek sets it
                # again, so the wait below cannot miss it.
                self._wake.clear()
                self._inflight = True
                upto, lines = await asyncio.to_thread(self.spool.peek, limit)
                if not lines:
                    self._inflight = False
                    self._progress.set()
                    await self._wake.wait()
                    continue
                try:
                    await self.writer.write(lines)
                except InfluxTooLargeError as exc:
                    if len(lines) > 1:
                        limit = max(1, len(lines) // 2)
                        self.log.warning(
                            "InfluxDB refused a batch of %d lines as too large; retrying with %d: %s",
                            len(lines), limit, exc,
                        )
                        continue
                    await self._reject(upto, lines, exc)
                except InfluxRejectedError as exc:
                    if len(lines) > 1:
                        # One bad line must not cost the good ones beside it: halve
                        # the batch until the bad line is alone, and drop only it.
                        # (InfluxDB 1.x stored the good lines of a partial write
                        # already; sending them again overwrites them with themselves.)
                        limit = max(1, len(lines) // 2)
                        continue
                    await self._reject(upto, lines, exc)
                except Exception as exc:  # noqa: BLE001 - see below
                    # InfluxRetryableError and its auth subclass; and anything
                    # unexpected from a writer, which is also retried rather than
                    # dropped: losing data is reserved for data InfluxDB refused.
                    failures += 1
                    self._retries += 1
                    self._log_failure(exc, failures, len(lines))
                    self._inflight = False
                    self._progress.set()
                    await self._backoff(failures, exc)
                    continue
                else:
                    await asyncio.to_thread(self.spool.ack, upto)
                    self._written += len(lines)
                    if failures:
                        self.log.info(
                            "InfluxDB writes recovered after %d failed attempt(s); %d lines pending",
                            failures, self.spool.pending,
                        )
                    failures = 0
                    limit = self.batch_size
                    if len(lines) < limit:
                        self._inflight = False
                        self._progress.set()
                        await self._gather_more()
                self._inflight = False
                self._progress.set()
        except asyncio.CancelledError:
            raise
        except BaseException:
            # Only the spool can get here (disk full, I/O error): say so loudly,
            # since from now on nothing is drained.
            self.log.critical("greenwatch sink stopped draining its spool %s", self.spool.path, exc_info=True)
            raise
        finally:
            self._inflight = False
            self._progress.set()

    async def _reject(self, upto: int, lines: list[str], exc: InfluxRejectedError) -> None:
        await asyncio.to_thread(self.spool.ack, upto)
        self._rejected += len(lines)
        # Once per batch, with the server's own text: it names the bad line or
        # the conflicting field, which is what someone fixing a profile needs.
        self.log.error(
            "InfluxDB rejected a batch of %d lines; dropped it (%d rejected so far): %s",
            len(lines), self._rejected, exc,
        )

    def _log_failure(self, exc: BaseException, failures: int, batch: int) -> None:
        # Log the first failure of an outage and then every 10th, so a long
        # outage does not flood the log; recovery is logged in _drain.
        if failures != 1 and failures % 10 != 0:
            return
        pending = self.spool.pending
        if isinstance(exc, InfluxAuthError):
            self.log.error(
                "InfluxDB refused greenwatch's credentials (attempt %d, %d lines pending); "
                "data is kept and retried: %s", failures, pending, exc,
            )
        elif isinstance(exc, InfluxRetryableError):
            self.log.warning(
                "InfluxDB write failed (attempt %d, %d lines pending); retrying: %s",
                failures, pending, exc,
            )
        else:
            self.log.error(
                "unexpected error writing a batch of %d lines to InfluxDB (attempt %d); retrying",
                batch, failures, exc_info=exc,
            )

    async def _gather_more(self) -> None:
        """The flush interval: let lines gather into a fuller batch."""
        if self.flush_interval_s <= 0 or self._flushing:
            return
        self._batch_ready.clear()
        if self.spool.pending >= self.batch_size:
            return
        await _wait(self._batch_ready, self.flush_interval_s)

    async def _backoff(self, failures: int, exc: BaseException) -> None:
        delay = min(self.retry_max_s, self.retry_initial_s * 2 ** min(failures - 1, 30))
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after:
            delay = min(self.retry_max_s, max(delay, retry_after))
        # Up to 10% jitter so many greenwatch instances that lost the same
        # InfluxDB do not all come back in the same instant.
        delay *= 1 - random.random() * 0.1
        # Wait on _retry_now, not a plain sleep, so flush() can cut it short;
        # cleared first so a flush() before this failure does not end it at once.
        self._retry_now.clear()
        await _wait(self._retry_now, delay)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Wait until `event` is set or `timeout_s` passed. Not asyncio.wait_for: on
    Python 3.11 it swallows a cancel that arrives as the event is set (close() right
    after flush() set it), and the drain task would then never end."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
