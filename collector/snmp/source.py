"""One SNMP device as a source of readings: profile + engine + reader."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from collector.config import Defaults, Device
from greenwatch.core.config import SiteSettings

from ..profiles import Profile, ProfileSet
from ..source import PollResult
from ..tags import base_tags
from .engine import SnmpEngine, SnmpError, Target, Var
from .reader import Reader

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
T = TypeVar("T")
# Scalars per GET request: small enough that no agent answers tooBig.
GET_CHUNK = 32
# The rows of every device, shared: most devices of one model have the same indexes.
_SHARED_ROWS: dict[tuple[str, ...], tuple[str, ...]] = {}

log = logging.getLogger("greenwatch.snmp")


class KnownRows:
    """The rows (index suffixes) of each table column at the device's last full walk.
    Until the next walk is due, the rows are read by GET: one request for a small
    device's scalars and tables instead of a GETBULK or more per column, as Zabbix and
    LibreNMS poll known indexes between discoveries. A row gone from the agent sends
    the poll back to a walk at once; a new row is found at the next walk.

    A table group is remembered only when its GETs take fewer requests than the group
    has columns (a walk takes at least one request per column): a few interfaces, a
    host's CPUs, not a process table of hundreds of rows, which a walk reads more
    cheaply and whose rows come and go. Nor when a column had no rows: an empty table
    (a host's CPUs in its agent's first minute) is walked every poll until it fills."""

    __slots__ = ("walked_at", "groups", "rows")

    def __init__(self, walked_at: float) -> None:
        self.walked_at = walked_at
        self.groups: list[tuple[str, ...]] = []
        self.rows: dict[str, tuple[str, ...]] = {}

    def add(self, group: tuple[str, ...], columns: dict[str, dict[str, Var]]) -> None:
        """Remember a walked group's rows, if reading them by GET is worth it."""
        if group in self.groups or not all(columns.get(column) for column in group):
            return
        requests = -(-sum(len(columns[column]) for column in group) // GET_CHUNK)
        if requests >= len(group):
            return
        if len(_SHARED_ROWS) > 100_000:
            _SHARED_ROWS.clear()
        self.groups.append(group)
        for column in group:
            suffixes = tuple(sys.intern(suffix) for suffix in columns[column])
            self.rows[column] = _SHARED_ROWS.setdefault(suffixes, suffixes)

    def oids(self) -> list[str]:
        return [f"{column}.{suffix}" for column, rows in self.rows.items() for suffix in rows]

    def columns(self, values: dict[str, Var | None]) -> dict[str, dict[str, Var]] | None:
        """The columns from a GET of `oids()`; None when a row is gone (walk again)."""
        out: dict[str, dict[str, Var]] = {}
        for column, rows in self.rows.items():
            read = out[column] = {}
            for suffix in rows:
                var = values.get(f"{column}.{suffix}")
                if var is None:
                    return None
                read[suffix] = var
        return out


def make_target(device: Device, defaults: Defaults, max_repetitions: int | None = None) -> Target:
    assert device.snmp is not None
    snmp = device.snmp
    host, port = device.host_port(161)

    def secret(value: object) -> str | None:
        return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]

    return Target(
        host=host,
        port=port,
        version=snmp.version,
        community=secret(snmp.community),
        user=snmp.user,
        auth_protocol=snmp.auth_protocol,
        auth_key=secret(snmp.auth_key),
        priv_protocol=snmp.priv_protocol,
        priv_key=secret(snmp.priv_key),
        context=snmp.context,
        timeout=device.timeout or defaults.timeout,
        retries=device.retries if device.retries is not None else defaults.retries,
        max_repetitions=snmp.max_repetitions or max_repetitions or defaults.max_repetitions,
    )


class SnmpSource:
    """Polls one device. The profile is the configured one, or the one matching the
    device's sysObjectID (looked up on the first successful poll)."""

    def __init__(self, site: SiteSettings, device: Device, defaults: Defaults, engine: SnmpEngine,
                 profiles: ProfileSet, profile: Profile | None = None) -> None:
        self.site, self.device, self.defaults = site, device, defaults
        self.engine = engine
        self.profiles = profiles
        self.target = make_target(device, defaults)
        self.interval_s = device.interval or defaults.interval
        self.rewalk_s = (device.snmp.rewalk if device.snmp else None) or defaults.rewalk
        self.known: KnownRows | None = None
        self.reader: Reader | None = None
        self.kind = device.kind or "host"
        if profile is not None:
            self._use(profile)

    def _use(self, profile: Profile) -> None:
        self.kind = self.device.kind or profile.kind or "host"
        self.reader = Reader(profile, base_tags(self.site, self.device, self.kind))
        if profile.max_repetitions and not (self.device.snmp and self.device.snmp.max_repetitions):
            self.target = make_target(self.device, self.defaults, profile.max_repetitions)

    async def _match_profile(self) -> str | None:
        values = await self.engine.get(self.target, [SYS_OBJECT_ID])
        var = values.get(SYS_OBJECT_ID)
        if var is None:
            return "device has no sysObjectID: set profile: in the config"
        profile = self.profiles.match(str(var.value))
        if profile is None:
            return f"no profile matches sysObjectID {var.value}: set profile: in the config or add one"
        log.info("%s/%s: sysObjectID %s matches profile %s", self.site.name, self.device.name,
                 var.value, profile.name)
        self._use(profile)
        return None

    def _gets(self, oids: Sequence[str]) -> list[Coroutine[Any, Any, dict[str, Var | None]]]:
        """GETs of `oids`, GET_CHUNK to a request."""
        return [self.engine.get(self.target, oids[i : i + GET_CHUNK]) for i in range(0, len(oids), GET_CHUNK)]

    async def _get_and_walk(self, oids: Sequence[str], groups: Sequence[tuple[str, ...]]
                            ) -> tuple[dict[str, Var | None], dict[str, dict[str, Var]]]:
        # The GETs first: the gufo engine starts building its typing engine at a first GET.
        gets = self._gets(oids)
        replies = await asyncio.gather(*gets, *(self.engine.walk(self.target, group) for group in groups))
        return _merged(replies[: len(gets)]), _merged(replies[len(gets) :])

    async def _read(self, profile: Profile) -> tuple[dict[str, Var | None], dict[str, dict[str, Var]]]:
        """The profile's scalars and table columns: scalars and known rows by GET, the
        other tables walked (all of them when the rewalk is due)."""
        known = self.known
        if known is None or time.monotonic() - known.walked_at >= self.rewalk_s:
            known = self.known = KnownRows(time.monotonic())
        walk = [group for group in profile.tables if group not in known.groups]
        values, columns = await self._get_and_walk([*profile.scalar_oids, *known.oids()], walk)
        rows = known.columns(values)
        if rows is None:  # a row is gone from the agent: walk its tables now
            _, rows = await self._get_and_walk([], known.groups)
            walk, known = profile.tables, KnownRows(time.monotonic())
            self.known = known
        columns.update(rows)
        if self.rewalk_s > self.interval_s:
            for group in walk:
                known.add(group, columns)
        return values, columns

    async def poll(self) -> PollResult:
        try:
            if self.reader is None:
                error = await self._match_profile()
                if error:
                    return PollResult(error=error)
            assert self.reader is not None
            profile = self.reader.profile
            time_ns = time.time_ns()
            scalars, columns = await self._read(profile)
            samples, problems = self.reader.read(scalars, columns, time_ns)
        except SnmpError as exc:
            return PollResult(error=str(exc))
        # Problems are logged (once each) by collector.source.Guarded, like every source's.
        return PollResult(samples=samples, problems=problems)

    async def close(self) -> None:
        """Nothing of its own to close: the engine is shared and closed by its owner."""


def _merged(replies: Sequence[dict[str, T]]) -> dict[str, T]:
    out: dict[str, T] = {}
    for reply in replies:
        out.update(reply)
    return out
