"""The fast SNMP engine, on gufo-snmp (a Rust BER/USM core with an asyncio client).

Same interface and results as the reference engine (`pysnmp_engine`); these are the
differences in how it gets there, all forced by what gufo-snmp 0.13 offers:

- Types. gufo-snmp decodes every value to a plain Python object and drops its SMI
  type: Integer, Gauge32, Counter32, Counter64, TimeTicks (and Unsigned32) all come
  back as `int`; OctetString and Opaque as `bytes`; ObjectIdentifier and IpAddress as
  dotted `str`. There is no raw or typed mode. The reader needs the type (Counter32
  wraps, OctetString versus numbers), so this engine learns it from the reference
  engine once per agent and OID and caches it: a column seen for the first time is
  walked with pysnmp (that poll's result is pysnmp's, exact), an OID seen for the
  first time is typed with one pysnmp GET (value from gufo, type from pysnmp). A
  column whose rows all share one type (every real table column: SMI gives a column
  one SYNTAX) is remembered as that type, so new rows need no look-up; a subtree of
  mixed types is remembered OID by OID. From the second poll on, a device is read
  by gufo alone. Types are relearned every few hours (a device swapped for another
  at the same address), and per agent, community and user (snmpsim, for one, serves
  a different device per community).
- Walks. gufo-snmp's GETNEXT/GETBULK carry one varbind, so columns are walked one
  after another on the agent's session (GETBULK with `max_repetitions` rows per
  request), not side by side; the number of requests is about the same.
- One request in flight per session (gufo matches replies by the last request id),
  so calls for the same agent are serialised by a lock; different agents run
  concurrently.
- Retries are this engine's: gufo waits `timeout` for one reply and gives up.
- SNMPv3 contexts are not supported by gufo-snmp (its scoped PDU has no
  contextName): a target with a context gets a clear SnmpError.
- gufo reports every SNMPv3 Report PDU as one "authentication failed"; the engine
  resyncs once (agent restarts move engineBoots/engineTime), then asks pysnmp which
  Report it is, to say whether the user, the auth key or the security level is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from gufo.snmp import (
    Aes128Key,
    Aes192Key,
    Aes256Key,
    DesKey,
    KeyExpansion,
    Md5Key,
    Sha1Key,
    Sha224Key,
    Sha256Key,
    Sha384Key,
    Sha512Key,
    SnmpAuthError,
    SnmpVersion,
    User,
)
from gufo.snmp import SnmpError as GufoError
from gufo.snmp.aio import SnmpSession

from .engine import (
    COUNTER32,
    COUNTER64,
    GAUGE,
    INTEGER,
    IPADDRESS,
    OCTETS,
    OID,
    OPAQUE,
    TIMETICKS,
    SnmpError,
    Target,
    Var,
)

if TYPE_CHECKING:
    from .pysnmp_engine import PysnmpEngine

T = TypeVar("T")

TIMEOUT_MESSAGE = "timeout: no SNMP response (agent down, wrong address, or wrong community/user)"

_AUTH = {
    "MD5": Md5Key,
    "SHA": Sha1Key,
    "SHA224": Sha224Key,
    "SHA256": Sha256Key,
    "SHA384": Sha384Key,
    "SHA512": Sha512Key,
}
# AES192/AES256 extend short (MD5, SHA-1) localized keys the Reeder/Cisco way, as
# pysnmp's usmAesCfb192Protocol/usmAesCfb256Protocol do, so both engines agree.
_PRIV = {
    "DES": (DesKey, KeyExpansion.Blumenthal),
    "AES": (Aes128Key, KeyExpansion.Blumenthal),
    "AES128": (Aes128Key, KeyExpansion.Blumenthal),
    "AES192": (Aes192Key, KeyExpansion.Cisco),
    "AES256": (Aes256Key, KeyExpansion.Cisco),
}
_VERSIONS = {"1": SnmpVersion.v1, "2c": SnmpVersion.v2c, "3": SnmpVersion.v3}

# Which SMI types gufo-snmp returns as which Python type.
_KIND = {
    INTEGER: int,
    GAUGE: int,
    COUNTER32: int,
    COUNTER64: int,
    TIMETICKS: int,
    OCTETS: bytes,
    OPAQUE: bytes,
    OID: str,
    IPADDRESS: str,
}

_SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
_PROBE_CHUNK = 24  # OIDs per typing GET: well under any agent's PDU size
_MAX_SESSIONS = 256  # open UDP sockets
# Agents whose types are remembered: above the devices one process polls (10,000 in
# bench/scale.py), or every poll past it would relearn its types through pysnmp.
# A few kB per agent.
_MAX_AGENTS = 65_536
_MAX_TYPED_OIDS = 200_000  # per agent; past it the agent's OID types are relearned
_V3_RESYNC_AFTER = 120.0  # seconds; the USM time window is 150 s
# Types are relearned this often (one pysnmp-speed poll per device), so a device
# swapped at the same address with other firmware, or rows long gone, do not linger.
_TYPES_TTL = 6 * 3600.0


@dataclass
class _Types:
    """What one agent's OIDs are, learned from the reference engine."""

    since: float = field(default_factory=time.monotonic)
    columns: dict[str, str] = field(default_factory=dict)  # column -> the one type of its rows
    walked: set[str] = field(default_factory=set)  # columns learned from a full pysnmp walk
    oids: dict[str, str] = field(default_factory=dict)  # OID -> type (scalars, mixed subtrees)
    rows: dict[str, int] = field(default_factory=dict)  # table entry -> rows at its last walk


@dataclass
class _Session:
    session: SnmpSession
    key: tuple
    v3: bool
    last_ok: float = 0.0


class GufoEngine:
    name = "gufo"

    def __init__(self, max_sessions: int = _MAX_SESSIONS, max_agents: int = _MAX_AGENTS) -> None:
        self._sessions: OrderedDict[tuple, _Session] = OrderedDict()
        self._types: OrderedDict[tuple, _Types] = OrderedDict()
        self._locks: dict[tuple, asyncio.Lock] = {}
        self._keys: dict[Target, tuple] = {}  # see _agent_key
        self._max_sessions = max_sessions
        self._max_agents = max_agents
        self._reference: PysnmpEngine | None = None
        # The reference engine being built in a worker thread (see _reference_engine).
        self._building: asyncio.Future[PysnmpEngine] | None = None
        # How often the reference engine was asked (typing, diagnosis): for tests
        # and benchmarks to see that a warm device is read by gufo alone.
        self.reference_calls = 0

    # -- public interface -------------------------------------------------------

    async def get(self, target: Target, oids: Sequence[str]) -> dict[str, Var | None]:
        if not oids:
            return {}
        self._build_reference()  # a device's first GET is soon followed by typing walks
        wanted = [_normal(oid) for oid in oids]
        key = self._agent_key(target)
        async with self._lock(key):
            entry = await self._session(target, key)
            session = entry.session
            values = await self._request(target, entry, lambda: session.get_many(wanted))
            missing = [oid for oid in dict.fromkeys(wanted) if oid not in values]
            if target.version == "1" and missing and len(wanted) > 1:
                # v1 answers noSuchName for the whole PDU: ask one by one so one
                # missing OID does not hide the others.
                for oid in missing:
                    values.update(await self._request(target, entry, lambda oid=oid: session.get_many([oid])))
            types = self._agent_types(key)
            result: dict[str, Var | None] = {}
            unknown: list[str] = []
            for oid in wanted:
                value = values.get(oid)
                smi = types.oids.get(oid) or _column_type(types, oid)
                if value is None:
                    result[oid] = None
                elif smi is not None and type(value) is _KIND[smi]:
                    result[oid] = _var(smi, value)
                else:
                    result[oid] = None  # placeholder: typed below, keeps the order
                    unknown.append(oid)
            if unknown:
                learned = await self._learn_oids(target, types, unknown)
                for oid in unknown:
                    result[oid] = _var(learned.get(oid) or _guess(values[oid]), values[oid])
            return result

    async def walk(self, target: Target, columns: Sequence[str]) -> dict[str, dict[str, Var]]:
        result: dict[str, dict[str, Var]] = {col: {} for col in columns}
        if not columns:
            return result
        key = self._agent_key(target)
        async with self._lock(key):
            types = self._agent_types(key)
            normal = {col: _normal(col) for col in columns}
            # Columns never seen on this agent: one walk with the reference engine
            # gives this poll's rows and every row's type.
            fresh = [col for col in columns if normal[col] not in types.walked]
            if fresh:
                self.reference_calls += 1
                rows = await (await self._reference_engine()).walk(target, [normal[c] for c in fresh])
                for col in fresh:
                    result[col] = rows[normal[col]]
                    _learn_column(types, normal[col], result[col])
            unknown: list[tuple[str, str]] = []  # (column, index suffix) still untyped
            raw: dict[str, object] = {}
            entry = await self._session(target, key) if len(fresh) < len(columns) else None
            warm = [normal[col] for col in columns if col not in fresh]
            per_request = max(1, target.max_repetitions) if target.version != "1" else 1
            # Tables worth one walk of their entry (see _span); other columns are walked
            # one by one. Only on a warm device: a fresh one is walked by the reference.
            walked: dict[str, list[tuple[str, object]]] = {}
            spanned: set[str] = set()
            for group in (_by_table(warm).values() if not fresh else ()):
                span = _span(group, types.rows, per_request)
                if span is not None:
                    walked.update(await self._walk_span(target, entry, *span))  # type: ignore[arg-type]
                    spanned.update(group)
            for col in columns:
                if col in fresh:
                    continue
                column = normal[col]
                prefix = column + "."
                cut = len(prefix)
                uniform = types.columns.get(column)
                uniform_kind = _KIND[uniform] if uniform else None
                by_oid = types.oids
                rows = result[col]
                items = (walked.get(column, []) if column in spanned
                         else await self._walk_column(target, entry, column))  # type: ignore[arg-type]
                for oid, value in items:
                    if not oid.startswith(prefix):
                        break
                    suffix = oid[cut:]
                    kind = type(value)
                    if kind is uniform_kind:
                        rows[suffix] = Var(uniform, value)  # type: ignore[arg-type]
                        continue
                    smi = by_oid.get(oid)
                    if smi is not None and kind is _KIND[smi]:
                        rows[suffix] = _var(smi, value)
                    elif kind in (int, bytes, str):
                        rows[suffix] = None  # type: ignore[assignment]  # placeholder, keeps order
                        raw[oid] = value
                        unknown.append((col, suffix))
                    # anything else (gufo's float for a BER REAL) has no SMI type: dropped
            if unknown:
                oids = [normal[col] + "." + suffix for col, suffix in unknown]
                learned = await self._learn_oids(target, types, oids)
                for (col, suffix), oid in zip(unknown, oids):
                    result[col][suffix] = _var(learned.get(oid) or _guess(raw[oid]), raw[oid])
            # Rows per table, for the next poll's choice of walks.
            seen: dict[str, int] = {}
            for col in columns:
                table = normal[col].rpartition(".")[0]
                seen[table] = max(seen.get(table, 0), len(result[col]))
            types.rows.update(seen)
            return result

    @property
    def reference_ready(self) -> bool:
        """Whether the reference engine (for typing) is built: for tests and benchmarks."""
        return self._reference is not None or (
            self._building is not None and self._building.done() and self._building.exception() is None)

    async def close(self) -> None:
        self._sessions.clear()  # gufo closes a socket when its session is dropped
        self._locks.clear()
        if self._reference is None and self._building is not None:
            # A thread cannot be cancelled: wait for the build, to close what it made
            # (a failed build made nothing to close).
            with contextlib.suppress(Exception):
                self._reference = await self._building
        self._building = None
        if self._reference is not None:
            await self._reference.close()
            self._reference = None

    # -- gufo sessions ----------------------------------------------------------

    def _agent_key(self, target: Target) -> tuple:
        """`_agent_key(target)`, remembered per target: a digest per call was a
        measurable share of a small device's poll."""
        key = self._keys.get(target)
        if key is None:
            if len(self._keys) > 4 * self._max_agents:
                self._keys.clear()
            key = self._keys[target] = _agent_key(target)
        return key

    def _lock(self, key: tuple) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) > 4 * self._max_agents:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _agent_types(self, key: tuple) -> _Types:
        types = self._types.get(key)
        if types is not None and time.monotonic() - types.since > _TYPES_TTL:
            types = None
        if types is None:
            types = self._types[key] = _Types()
        elif len(types.oids) > _MAX_TYPED_OIDS:
            types.oids.clear()
        self._types.move_to_end(key)
        while len(self._types) > self._max_agents:
            self._types.popitem(last=False)
        return types

    async def _session(self, target: Target, key: tuple) -> _Session:
        skey = key + (target.timeout,)
        entry = self._sessions.get(skey)
        if entry is not None:
            self._sessions.move_to_end(skey)
            return entry
        if target.version not in _VERSIONS:
            raise SnmpError(f"unsupported SNMP version {target.version!r}: expected 1, 2c or 3")
        kwargs: dict[str, object] = {"version": _VERSIONS[target.version]}
        if target.version == "3":
            if target.context:
                raise SnmpError(
                    f"SNMPv3 context {target.context!r} is not supported by the gufo SNMP engine"
                    " (gufo-snmp sends no contextName); use snmp_engine: pysnmp for this device"
                )
            kwargs["user"] = _user(target)
        else:
            kwargs["community"] = target.community or ""
        address = await _resolve(target.host, target.port)
        try:
            session = SnmpSession(
                address,
                target.port,
                timeout=target.timeout,
                max_repetitions=max(1, target.max_repetitions),
                **kwargs,  # type: ignore[arg-type]
            )
        except (ValueError, OSError, GufoError) as exc:
            raise SnmpError(f"cannot reach {target.host}:{target.port}: {exc}") from None
        entry = _Session(session, skey, target.version == "3")
        self._sessions[skey] = entry
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        return entry

    async def _request(self, target: Target, entry: _Session, op: Callable[[], Awaitable[T]]) -> T:
        """One request: `op` sends it and awaits the reply (StopAsyncIteration passes
        through). The common case costs one await; failures go to `_recover`."""
        if entry.v3 and time.monotonic() - entry.last_ok > _V3_RESYNC_AFTER:
            await self._recover(target, entry, entry.session.refresh, None)
        try:
            result = await op()
        except StopAsyncIteration:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted out in _recover
            result = await self._recover(target, entry, op, exc)
        entry.last_ok = time.monotonic()
        return result

    async def _recover(
        self, target: Target, entry: _Session, op: Callable[[], Awaitable[T]], error: Exception | None
    ) -> T:
        """Retries on timeout (the target's `retries`), one v3 resync (engineBoots and
        engineTime) on a Report, and gufo's errors turned into SnmpError. The session
        is dropped on failure, so the next poll starts afresh (new engine ID, say)."""
        retries = max(0, target.retries)
        resynced = False
        while True:
            if error is None:
                pass
            elif isinstance(error, TimeoutError):  # gufo's: no reply in time, or port refused
                if retries == 0:
                    self._sessions.pop(entry.key, None)
                    raise SnmpError(TIMEOUT_MESSAGE) from None
                retries -= 1
            elif isinstance(error, SnmpAuthError) and entry.v3 and not resynced:
                resynced = True
                await self._recover(target, entry, entry.session.refresh, None)
            else:
                self._sessions.pop(entry.key, None)
                if isinstance(error, SnmpAuthError):
                    raise SnmpError(await self._diagnose_v3(target)) from None
                if isinstance(error, SnmpError):
                    raise error
                if isinstance(error, GufoError):
                    raise SnmpError(f"bad SNMP reply from {target.host}:{target.port}: {error}") from None
                if isinstance(error, OSError):
                    raise SnmpError(
                        f"cannot reach {target.host}:{target.port}: {error.strerror or error}"
                    ) from None
                raise error
            try:
                return await op()
            except StopAsyncIteration:
                raise
            except Exception as exc:  # noqa: BLE001
                error = exc

    async def _walk_span(self, target: Target, entry: _Session, table: str,
                         last: int) -> dict[str, list[tuple[str, object]]]:
        """Columns 1..`last` of one table in one walk of the table's entry, as
        snmp_exporter walks a table: GETBULK replies run on from one column into the
        next instead of each column's walk ending in a short reply of its own.
        Returns (oid, value) per column, stopping once past column `last`."""
        prefix = table + "."
        cut = len(prefix)
        out: dict[str, list[tuple[str, object]]] = {}
        current = "\0"  # no OID starts with it: the first item opens its column
        rows: list[tuple[str, object]] = []
        for item in await self._walk_column(target, entry, table, last):
            oid = item[0]
            if not oid.startswith(current):
                number = oid[cut:].partition(".")[0]
                current = prefix + number + "."
                rows = out.setdefault(prefix + number, [])
            rows.append(item)
        return out

    async def _walk_column(self, target: Target, entry: _Session, column: str,
                           last: int | None = None) -> list[tuple[str, object]]:
        """All (oid, value) gufo gives for one column: GETBULK (v2c, v3) or GETNEXT
        (v1), each request retried on timeout. gufo stops where the agent leaves the
        column or answers endOfMibView (v1: noSuchName)."""
        session = entry.session
        if target.version == "1":
            iterator = session.getnext(column)
        else:
            iterator = session.getbulk(column, max(1, target.max_repetitions))
        step = iterator.__anext__
        out: list[tuple[str, object]] = []
        append = out.append
        seen: set[str] = set()
        remember = seen.add
        request = self._request
        while True:
            try:
                # One await per request: the rest of each GETBULK reply is taken
                # from gufo's buffer below, without an await per OID.
                item = await request(target, entry, step)
            except StopAsyncIteration:
                return out
            if item[0] in seen:
                return out  # the agent went back: stop, not loop
            remember(item[0])
            append(item)
            # gufo's GETBULK iterator keeps the rest of a reply in `_buffer` and hands
            # it out one await at a time; take it in one go instead (the per-OID await
            # was the largest cost of a poll). None in it marks the end of the walk.
            # Should a gufo release drop `_buffer`, the loop above still does it all.
            buffer = getattr(iterator, "_buffer", None)
            if type(buffer) is list and buffer:
                for item in buffer:
                    if item is None or item[0] in seen:
                        entry.last_ok = time.monotonic()
                        return out
                    remember(item[0])
                    append(item)
                buffer.clear()
            if last is not None and _column_number(column, out[-1][0]) > last:
                return out  # past the last column wanted from this table
            if len(out) > 10_000_000:  # a broken agent counting forever
                raise SnmpError(f"walk of {column} did not end after 10 million rows")

    # -- types from the reference engine ------------------------------------------

    def _build_reference(self) -> asyncio.Future[PysnmpEngine]:
        """Start building the reference engine, once. Importing pysnmp and making its
        engine takes most of a second of pure Python: done on the event loop, a
        device's first poll would hold up every other device's poll that long, so it
        runs in a worker thread (the loop keeps its turns through the GIL)."""
        if self._building is None:
            self._building = asyncio.ensure_future(asyncio.to_thread(_new_reference))
        return self._building

    async def _reference_engine(self) -> PysnmpEngine:
        if self._reference is None:
            building = self._build_reference()
            try:
                # Shielded: a poll cancelled while waiting must not cancel the build
                # that other devices wait on too.
                self._reference = await asyncio.shield(building)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._building = None  # let the next poll try again
                raise
        return self._reference

    async def _learn_oids(self, target: Target, types: _Types, oids: list[str]) -> dict[str, str]:
        """The SMI types of `oids`, by GET with the reference engine; remembered."""
        learned: dict[str, str] = {}
        unique = list(dict.fromkeys(oids))
        for start in range(0, len(unique), _PROBE_CHUNK):
            self.reference_calls += 1
            got = await (await self._reference_engine()).get(target, unique[start : start + _PROBE_CHUNK])
            for oid, var in got.items():
                if var is not None:
                    learned[oid] = var.type
        types.oids.update(learned)
        return learned

    async def _diagnose_v3(self, target: Target) -> str:
        """gufo says only "authentication failed" for every Report; pysnmp names it."""
        self.reference_calls += 1
        try:
            await (await self._reference_engine()).get(target, [_SYS_UPTIME])
        except SnmpError as exc:
            return _v3_message(str(exc))
        return (
            "SNMPv3 authentication failed: the agent refused gufo-snmp's request (Report PDU)"
            " but answered pysnmp's; use snmp_engine: pysnmp for this device"
        )


# -- helpers ----------------------------------------------------------------------


def _new_reference() -> PysnmpEngine:
    from .pysnmp_engine import PysnmpEngine

    return PysnmpEngine()


def _agent_key(target: Target) -> tuple:
    """Which agent and credentials: secrets enter the key only as a digest."""
    secret = "\0".join(
        s or "" for s in (target.community, target.auth_key, target.priv_key)
    ).encode("utf-8", "surrogatepass")
    return (
        target.host,
        target.port,
        target.version,
        target.user,
        target.auth_protocol,
        target.priv_protocol,
        target.context,
        hashlib.sha256(secret).hexdigest(),
    )


def _user(target: Target) -> User:
    auth = priv = None
    expansion = KeyExpansion.Blumenthal
    if target.auth_protocol:
        cls = _AUTH.get(target.auth_protocol.upper().replace("-", ""))
        if cls is None:
            raise SnmpError(
                f"SNMPv3 auth protocol {target.auth_protocol!r} is not supported by the gufo engine:"
                f" expected one of {', '.join(_AUTH)}"
            )
        auth = cls((target.auth_key or "").encode("utf-8"))
    if target.priv_protocol:
        found = _PRIV.get(target.priv_protocol.upper().replace("-", ""))
        if found is None:
            raise SnmpError(
                f"SNMPv3 priv protocol {target.priv_protocol!r} is not supported by the gufo engine:"
                f" expected one of {', '.join(_PRIV)}"
            )
        if auth is None:
            raise SnmpError("SNMPv3 privacy (priv_protocol) needs an auth_protocol (authPriv)")
        cls, expansion = found
        priv = cls((target.priv_key or "").encode("utf-8"))
    return User(target.user or "", auth_key=auth, priv_key=priv, key_expansion=expansion)


async def _resolve(host: str, port: int) -> str:
    """gufo-snmp takes an IP address only."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise SnmpError(f"cannot reach {host}:{port}: {exc.strerror or exc}") from None
    if not infos:
        raise SnmpError(f"cannot reach {host}:{port}: no address")
    return str(infos[0][4][0])


def _normal(oid: str) -> str:
    """A numeric OID without a leading dot. gufo-snmp's own parser takes any text
    (it reads non-digits as digits), so a wrong OID is refused here."""
    text = oid.strip().lstrip(".")
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise SnmpError(f"not a numeric OID: {oid!r}")
    return ".".join(str(int(p)) for p in parts)


def _by_table(columns: list[str]) -> dict[str, list[str]]:
    """Columns grouped by the table entry they belong to, in order."""
    groups: dict[str, list[str]] = {}
    for column in columns:
        groups.setdefault(column.rpartition(".")[0], []).append(column)
    return groups


def _table_of(columns: Sequence[str]) -> str | None:
    """The table entry all `columns` are columns of, if they share one."""
    table = columns[0].rpartition(".")[0] if columns else None
    if table is None or any(column.rpartition(".")[0] != table for column in columns):
        return None
    return table


def _span(columns: list[str], rows: dict[str, int], per_request: int) -> tuple[str, int] | None:
    """(table entry, last column number) when walking the entry from its first column
    to the last wanted one is cheaper than a walk per column, else None. It is when
    the columns are most of 1..last (a quarter may be missing: little is fetched for
    nothing), or when the table is small enough, by its rows at the last walk, that
    the whole span takes fewer requests than the columns' walks (each column's walk
    takes a request more than its rows need, to see the column end)."""
    table = _table_of(columns) if len(columns) >= 2 else None
    if table is None:
        return None
    numbers = {int(column.rpartition(".")[2]) for column in columns}
    last = max(numbers)
    if len(numbers) != len(columns):
        return None
    if len(numbers) * 4 >= last * 3:
        return table, last
    known = rows.get(table)
    if known is None:
        return None
    span_requests = -(-(last * known + 1) // per_request)
    column_requests = len(columns) * -(-(known + 1) // per_request)
    return (table, last) if span_requests < column_requests else None


def _column_number(table: str, oid: str) -> int:
    """The column number of `oid` in `table`'s entry (0 outside it)."""
    head = oid[len(table) + 1 :].partition(".")[0] if oid.startswith(table + ".") else ""
    return int(head) if head.isdigit() else 0


def _column_type(types: _Types, oid: str) -> str | None:
    """The type of a walked column's row read by GET (a known row, see
    collector/snmp/source.py KnownRows): the column is the OID less its index, of up
    to 16 sub-identifiers here."""
    if not types.columns:
        return None
    head = oid
    for _ in range(16):
        head = head.rpartition(".")[0]
        smi = types.columns.get(head)
        if smi is not None or not head:
            return smi
    return None


def _learn_column(types: _Types, column: str, rows: dict[str, Var]) -> None:
    types.walked.add(column)
    kinds = {var.type for var in rows.values()}
    if len(kinds) == 1:
        types.columns[column] = kinds.pop()
    else:
        types.columns.pop(column, None)
        prefix = column + "."
        for suffix, var in rows.items():
            types.oids[prefix + suffix] = var.type


def _var(smi: str, value: object) -> Var:
    return Var(smi, value)  # type: ignore[arg-type]


def _guess(value: object) -> str:
    """A type for a value the reference engine could not type (the row went away
    between the two reads): the most likely one for its Python type."""
    if isinstance(value, bytes):
        return OCTETS
    if isinstance(value, str):
        parts = value.split(".")
        dotted_quad = len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)
        if dotted_quad and parts[0] not in ("0", "1", "2"):  # OIDs start 0, 1 or 2
            return IPADDRESS
        return OID
    if isinstance(value, int) and value > 0xFFFFFFFF:
        return COUNTER64
    return INTEGER


def _v3_message(text: str) -> str:
    lowered = text.lower().replace(" ", "")
    if text.startswith("timeout"):
        return text
    if "digest" in lowered:
        return "SNMPv3 authentication failed: wrong auth key or protocol"
    if "unknown" in lowered and "user" in lowered:
        return "SNMPv3 unknown user name"
    if "decrypt" in lowered:
        return "SNMPv3 decryption failed: wrong priv key or protocol"
    if "authorizationerror" in lowered or "seclevel" in lowered or "securitylevel" in lowered:
        return "SNMPv3 security level not supported for this user (check auth and priv settings)"
    if "timewindow" in lowered:
        return "SNMPv3 not in time window: agent clock or engineBoots out of step"
    if text.startswith("SNMPv3"):
        return text
    return f"SNMPv3 authentication failed: {text}"
