"""The service: wires config, profiles, sources, collector and sink together.

    config -> profiles -> sources -> Collector (APScheduler) -> Sink -> Spool -> InfluxDB

`check` validates everything and touches no device; `poll_once` polls each device
once and flushes; `run` polls on schedule until SIGTERM or SIGINT, then drains,
serves the HTTP endpoint (greenwatch/http_api.py) meanwhile, and reloads the
devices on SIGHUP (`reload`).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import signal
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from collector.config import Device
from collector.profiles import ProfileSet, load_profiles
from collector.scheduler import Collector, Entry
from collector.snmp.engines import make_engine
from collector.source import PollResult
from collector.sources import device_profile_names, make_source
from energy.intensity import cache_dir_beside
from energy.rollup import periodic_job as energy_job
from energy.rollup import site_inputs
from greenwatch.config import Config, Site, load_config
from greenwatch.core.influx import make_writer, query_client
from greenwatch.core.sink import Sink, SinkStats
from greenwatch.core.spool import Spool, SpoolLockedError
from greenwatch.core.yamlfile import InputError, load_yaml, problem_at
from greenwatch.http_api import HttpApi
from reports.commitment import check_sites as check_commitment_sites
from reports.schedule import periodic_job as report_job
from reports.schedule import sent_log_beside
from rules.loader import load_rules
from rules.runner import periodic_job as rules_job

log = logging.getLogger("greenwatch")


@dataclass
class Loaded:
    """A validated config and the profiles it refers to."""

    path: Path
    config: Config
    profiles: ProfileSet


def load(path: Path | str) -> Loaded:
    """Load and validate the config and every profile; check each device's profile
    exists. Raises InputError naming file, line and field; touches no device."""
    path = Path(path)
    config = load_config(path)
    profiles = load_profiles(config.collector.profile_dirs)
    unknown = [
        (("sites", s_index, "devices", d_index, "profile"), name)
        for s_index, site in enumerate(config.sites)
        for d_index, device in enumerate(site.devices)
        for name in device_profile_names(device)
        if name not in profiles.profiles
    ]
    if unknown:
        _, node = load_yaml(path)  # again, only now, for the line numbers
        known = ", ".join(sorted(profiles.profiles))
        raise InputError([problem_at(path, node, loc, f"unknown profile {name!r} (known: {known})")
                          for loc, name in unknown])
    load_rules(config.rules.dirs, config.rules.shipped)  # a bad rule is bad input too
    check_commitment_sites(config, path)  # a misspelt site in the commitment would count nothing
    _warn_of_old_spool(path, config)
    return Loaded(path, config, profiles)


# Before spools were named after their config file, every config's was this one.
OLD_DEFAULT_SPOOL = "greenwatch-spool.db"


def _warn_of_old_spool(path: Path, config: Config) -> None:
    """Points an earlier version left in the old shared default spool are not sent by
    this one, which reads the config's own: say how to send them rather than lose them."""
    old = path.resolve().parent / OLD_DEFAULT_SPOOL
    if not old.is_file() or config.spool.path == old:
        return
    try:
        with Spool(old) as spool:
            pending = spool.pending
    except SpoolLockedError:
        pending = -1  # an older greenwatch is still running on it
    except (OSError, sqlite3.Error):
        return  # not a spool: nothing of ours to send
    if pending:
        log.warning("%s, the default spool before spools were named after their config, holds %s; "
                    "they are not sent. To send them, run once with spool: {path: %s} in %s",
                    old, f"{pending} points" if pending > 0 else "points (it is in use)", OLD_DEFAULT_SPOOL,
                    path.name)


@dataclass
class Periodic:
    """A job the service runs every `every_s` seconds while it runs (rollups, rules,
    reports): one at a time, a failure logged and retried on the next turn. A job
    may return counts of what it did (say {"reports_sent": 1}): they add up in
    `counts` and show in /metrics."""

    name: str
    every_s: float
    job: Callable[[], Awaitable[Mapping[str, int] | None]]
    runs: int = 0
    failures: int = field(default=0)
    counts: dict[str, int] = field(default_factory=dict)


class Service:
    """Everything one collector process runs. Use as `async with Service(loaded)`."""

    def __init__(self, loaded: Loaded, shard: tuple[int, int] | None = None, once: bool = False) -> None:
        self.loaded = loaded
        self.shard = shard
        config = loaded.config
        self.engine = make_engine(config.collector.snmp_engine)
        entries = [self._entry(loaded, site, device) for site, device in self._wanted(config).values()]
        self.spool = Spool(spool_path(config.spool.path, shard, once), config.spool.max_size)
        self.writer = make_writer(config.influxdb)
        self.sink = Sink(self.spool, self.writer, batch_size=config.influxdb.batch_size,
                         flush_interval_s=config.influxdb.flush_interval)
        self.collector = Collector(entries, self.sink, config.collector.concurrency)
        self.api: HttpApi | None = None  # while run() runs, if http.enabled
        self.reloads = {"applied": 0, "refused": 0}
        self._reload_lock = asyncio.Lock()
        # Jobs beside polling; each capability adds its own (see Periodic).
        self.periodic: list[Periodic] = []
        self._jobs: list[asyncio.Task[None]] = []  # the periodic jobs while run() runs
        if not once:
            self.periodic.append(Periodic("rules", config.rules.interval,
                                          rules_job(config.influxdb, config.rules, config.sites)))
            # Every 10 minutes: each hour is rolled up soon after it completes, and
            # re-rolled for the next few hours as late (spooled) data arrives.
            energy_sites = site_inputs(config.sites, config.defaults.interval, cache_dir_beside(config.spool.path))
            self.periodic.append(Periodic("energy rollup", 600.0,
                                          energy_job(lambda: query_client(config.influxdb), energy_sites)))
            # The weekly report, once per week to its recipients: by one process only (shard 1 of N).
            if config.report.schedule and config.report.recipients and (shard is None or shard[0] == 0):
                self.periodic.append(Periodic("weekly report", 600.0, report_job(
                    lambda: query_client(config.influxdb), config, config.report,
                    sent_log_beside(config.spool.path))))

    async def __aenter__(self) -> Service:
        self.sink.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, within_s: float = 6.0, poll_grace_s: float = 3.0) -> None:
        """Stop in about `within_s` whatever is in flight, well inside docker's 10 s
        between SIGTERM and SIGKILL: polls get `poll_grace_s` to finish and are then
        cancelled (a cancelled poll writes nothing half-done), and the periodic jobs
        get the same grace to end once cancelled; the sink drains for what time is
        left, less a second kept for closing connections. Whatever InfluxDB did not
        take stays in the spool and is sent on the next run."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        if self.api is not None:
            await self.api.close()
        await asyncio.gather(self.collector.stop(poll_grace_s), self._jobs_ended(poll_grace_s))
        await self.sink.close(max(0.0, deadline - loop.time() - 1.0))
        stats = self.sink.stats()
        log.info("stopped: %d points accepted this run; InfluxDB took %d, %d stay spooled in %s; %s",
                 self.collector.accepted, stats.written, stats.pending, self.spool.path, _losses(stats))
        for entry in self.collector.entries:
            await entry.source.close()
        await self.engine.close()
        await self.writer.close()
        self.spool.close()

    async def poll_once(self, flush_timeout_s: float = 30.0) -> tuple[list[PollResult], bool]:
        """Poll every device once, then wait for InfluxDB to take it all.
        Returns the results and whether everything was written."""
        results = await self.collector.poll_all()
        flushed = await self.sink.flush(flush_timeout_s)
        return results, flushed

    async def run(self, stop: asyncio.Event, summary_every_s: float = 300.0) -> None:
        """Poll on schedule until `stop` is set, logging a summary now and then."""
        self.collector.start()
        log.info("polling %d devices into %s", len(self.collector.entries), self.writer)
        http = self.loaded.config.http
        if http.enabled:
            # Shard I of N listens on port + I - 1: shards on one machine do not collide.
            port = http.port + (self.shard[0] if self.shard and http.port else 0)
            self.api = HttpApi(self, port)
            await self.api.start()
        self._jobs = [asyncio.create_task(self._every(p, stop), name=p.name) for p in self.periodic]
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), summary_every_s)
            except TimeoutError:
                self._log_summary()
        log.info("stopping: finishing polls in flight and draining to InfluxDB")
        # close() ends the periodic jobs, beside the polls in flight.

    async def _jobs_ended(self, timeout_s: float) -> None:
        """Cancel the periodic jobs and wait for them, up to `timeout_s`: one stuck
        in a thread cannot be cancelled, and must not hold up the stop."""
        if not self._jobs:
            return
        for task in self._jobs:
            task.cancel()
        _, stuck = await asyncio.wait(self._jobs, timeout=timeout_s)
        if stuck:
            log.warning("stopping without waiting for %s", ", ".join(t.get_name() for t in stuck))

    async def _every(self, periodic: Periodic, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                counts = await periodic.job()
                periodic.runs += 1
                for event, count in (counts or {}).items():
                    periodic.counts[event] = periodic.counts.get(event, 0) + count
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one failed turn must not end the job
                periodic.failures += 1
                log.exception("%s failed; trying again in %.0f s", periodic.name, periodic.every_s)
            try:
                await asyncio.wait_for(stop.wait(), periodic.every_s)
            except TimeoutError:
                pass

    # -- the devices, and reloading them ---------------------------------------------

    def _wanted(self, config: Config) -> dict[tuple[str, str], tuple[Site, Device]]:
        """The enabled devices of `config` this process polls (its shard), by site and name."""
        return {(site.name, device.name): (site, device) for site, device in config.devices()
                if self.shard is None or in_shard(site.name, device.name, *self.shard)}

    def _entry(self, loaded: Loaded, site: Site, device: Device) -> Entry:
        config = loaded.config
        source = make_source(config.defaults, site, device, loaded.profiles, self.engine)
        return Entry(site, device, source, device.interval or config.defaults.interval)

    async def reload(self) -> bool:
        """Read the config file again (SIGHUP) and apply its devices: added ones start
        polling, changed ones are rebuilt in their slot, removed ones stop once their
        poll in flight has written; the others, the sink and the spool are untouched.
        An invalid file changes nothing: its problems are logged and the old config
        stays. Other sections (influxdb, spool, http, rules, ...) need a restart."""
        async with self._reload_lock:
            path = self.loaded.path
            if not self.collector.running:
                log.warning("SIGHUP: not reloading %s: the service is not polling (stopping?)", path)
                return False
            log.info("SIGHUP: reloading %s", path)
            try:
                new = await asyncio.to_thread(load, path)
            except InputError as exc:
                for problem in exc.problems:
                    log.error("config reload refused: %s", problem)
                return self._refused(f"{len(exc.problems)} problem(s) above")
            except Exception as exc:  # noqa: BLE001 - whatever it is, the old config stays
                return self._refused(f"{type(exc).__name__}: {exc}")
            old, wanted = self.loaded, self._wanted(new.config)
            current = {(e.site.name, e.device.name): e for e in self.collector.entries}
            try:
                fresh = {key: self._entry(new, site, device) for key, (site, device) in wanted.items()
                         if key not in current or _polled_as(new.config, site, device) !=
                         _polled_as(old.config, current[key].site, current[key].device)}
            except Exception as exc:  # noqa: BLE001 - a source that cannot be built refuses the whole reload
                return self._refused(f"{type(exc).__name__}: {exc}")
            added = [e for key, e in fresh.items() if key not in current]
            changed = [(current[key], e) for key, e in fresh.items() if key in current]
            removed = [e for key, e in current.items() if key not in wanted]
            for entry in added:
                self.collector.add(entry)
            await asyncio.gather(*(self.collector.replace(o, n) for o, n in changed),
                                 *(self.collector.remove(e) for e in removed))
            self.loaded = new
            self.reloads["applied"] += 1
            log.info("config reloaded: %d devices added%s, %d changed%s, %d removed%s, %d unchanged",
                     len(added), _names(added), len(changed), _names([n for _, n in changed]),
                     len(removed), _names(removed), len(wanted) - len(added) - len(changed))
            restart = [name for name in type(new.config).model_fields
                       if name not in ("sites", "defaults") and getattr(new.config, name) != getattr(old.config, name)]
            if restart:
                log.warning("config reload: changes to %s take effect at the next restart", ", ".join(restart))
            return True

    def _refused(self, why: str) -> bool:
        self.reloads["refused"] += 1
        log.error("config reload refused (%s): still running the config loaded before", why)
        return False

    def _log_summary(self) -> None:
        """One line an operator can watch: what answered, what did not, what waits."""
        entries = self.collector.entries
        down = [e.key for e in entries if e.stats.polls and e.stats.last_error]
        stats = self.sink.stats()
        log.info(
            "%d devices: %d down%s; %d polls skipped so far; InfluxDB took %d points, %d pending; %s",
            len(entries), len(down), f" ({', '.join(down[:5])}{', ...' if len(down) > 5 else ''})" if down else "",
            sum(e.stats.skipped for e in entries), stats.written, stats.pending, _losses(stats),
        )


def _polled_as(config: Config, site: Site, device: Device) -> tuple[object, ...]:
    """What a device's polling is made of: if this differs after a reload, it is rebuilt."""
    return site.model_dump(exclude={"devices"}), device, config.defaults


def _names(entries: list[Entry]) -> str:
    return f" ({', '.join(e.key for e in entries[:10])}{', ...' if len(entries) > 10 else ''})" if entries else ""


def _losses(stats: SinkStats) -> str:
    """What this run lost, for the summary and the stop line: lines pushed out of
    the full spool and lines InfluxDB refused, each a running total."""
    return f"lost this run: {stats.dropped} dropped by the full spool, {stats.rejected} rejected by InfluxDB"


def spool_path(path: Path, shard: tuple[int, int] | None, once: bool = False) -> Path:
    """A spool is one process's. So each shard has its own, and so does `poll --once`,
    which may run beside the service (what it cannot write now, its next run sends)."""
    parts = [path.stem]
    if shard is not None:
        parts.append(f"shard{shard[0] + 1}of{shard[1]}")
    if once:
        parts.append("once")
    return path.with_name(".".join(parts) + path.suffix)


def in_shard(site: str, device: str, index: int, count: int) -> bool:
    """Stable share of the inventory for shard `index` of `count` (0-based), by a
    hash of site and device name: the same on every machine and every run."""
    digest = hashlib.blake2b(f"{site}\0{device}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count == index


# A poll makes and drops a small tuple or dict per OID it reads. At CPython's default
# (a young-generation collection every 700 net allocations) the cyclic GC took 15-20%
# of the collection path's CPU (bench/README.md, snmp_throughput e2e); every 50,000 it
# is noise. Raised, not turned off: reference cycles are still collected.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """For a long-running collector process (`run`, `demo`, the benches): GC_THRESHOLDS."""
    gc.set_threshold(*GC_THRESHOLDS)


async def run_service(loaded: Loaded, shard: tuple[int, int] | None = None) -> None:
    """`greenwatch run`: until SIGTERM/SIGINT, then drain and exit cleanly."""
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Service(loaded, shard) as service:
        reloads: set[asyncio.Task[bool]] = set()  # kept referenced until done

        def reload() -> None:
            task = asyncio.ensure_future(service.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
        await service.run(stop)
