"""The reference SNMP engine, on pysnmp 7's asyncio API.

Numeric OIDs only: MIB lookups halve pysnmp's speed and the profiles already carry
numeric OIDs. Requests go one level below pysnmp's hlapi (`get_cmd`, `bulk_cmd`):
hlapi resolves every request varbind through the MIB view even with
`lookupMib=False`, which cost a fifth of a poll when a GETBULK carries a table's
columns side by side. The engine configures targets with hlapi's own configurator
(LCD) and hands plain (OID, Null) varbinds to pysnmp's command generators, which
is all hlapi does after the resolution.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence

from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.entity import config as _config
from pysnmp.entity.rfc3413 import cmdgen as _cmdgen
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio import (
    SnmpEngine as _PySnmpEngine,
)
from pysnmp.hlapi.v3arch.asyncio import auth as _auth
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD as _LCD
from pysnmp.proto import rfc1902, rfc1905

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

_AUTH = {
    "MD5": _auth.usmHMACMD5AuthProtocol,
    "SHA": _auth.usmHMACSHAAuthProtocol,
    "SHA224": _auth.usmHMAC128SHA224AuthProtocol,
    "SHA256": _auth.usmHMAC192SHA256AuthProtocol,
    "SHA384": _auth.usmHMAC256SHA384AuthProtocol,
    "SHA512": _auth.usmHMAC384SHA512AuthProtocol,
}
_PRIV = {
    "DES": _auth.usmDESPrivProtocol,
    "AES": _auth.usmAesCfb128Protocol,
    "AES128": _auth.usmAesCfb128Protocol,
    "AES192": _auth.usmAesCfb192Protocol,
    "AES256": _auth.usmAesCfb256Protocol,
}

# Order matters: Counter32 and Gauge32 are subclasses of Integer in pyasn1 terms.
_TYPES: list[tuple[type, str]] = [
    (rfc1902.Counter64, COUNTER64),
    (rfc1902.Counter32, COUNTER32),
    (rfc1902.Gauge32, GAUGE),
    (rfc1902.TimeTicks, TIMETICKS),
    (rfc1902.IpAddress, IPADDRESS),
    (rfc1902.Opaque, OPAQUE),
    (univ.Integer, INTEGER),
    (univ.OctetString, OCTETS),
    (univ.ObjectIdentifier, OID),
]

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
# Asked of the kernel for pysnmp's shared UDP socket (it caps it at net.core.rmem_max).
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024

_NO_VALUE = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView, univ.Null)


def _convert(value: object) -> Var | None:
    convert = _CONVERTERS.get(value.__class__)
    if convert is None:
        convert = _CONVERTERS[value.__class__] = _converter_for(value)
    return convert(value)


def _converter_for(value: object) -> Callable[[object], Var | None]:
    """How to turn values of `value`'s class into a Var: the first matching entry of
    `_TYPES` (subclasses included), decided once per class rather than per value."""
    if isinstance(value, _NO_VALUE):
        return lambda v: None
    if isinstance(value, rfc1902.IpAddress):
        return lambda v: Var(IPADDRESS, ".".join(str(b) for b in bytes(v)))  # type: ignore[call-overload]
    for cls, name in _TYPES:
        if isinstance(value, cls):
            if name == OCTETS or name == OPAQUE:
                return lambda v, name=name: Var(name, bytes(v))  # type: ignore[call-overload]
            if name == OID:
                return lambda v: Var(OID, str(v))
            return lambda v, name=name: Var(name, int(v))  # type: ignore[call-overload]
    return lambda v: None


# Class -> converter, filled as classes are met (a handful of pyasn1 classes).
_CONVERTERS: dict[type, Callable[[object], Var | None]] = {}


def _describe(indication: object) -> str:
    """pysnmp's error indications, in words a user can act on."""
    text = str(indication)
    lowered = text.lower()
    if "timeout" in lowered or "no snmp response" in lowered:
        return "timeout: no SNMP response (agent down, wrong address, or wrong community/user)"
    if "digest" in lowered:  # "Wrong SNMP PDU digest"
        return "SNMPv3 authentication failed: wrong auth key or protocol"
    if "decryption" in lowered:
        return "SNMPv3 decryption failed: wrong priv key or protocol"
    if "unknown usm user" in lowered or "unknownusername" in lowered.replace(" ", ""):
        return "SNMPv3 unknown user name"
    if "unsupportedseclevel" in lowered.replace(" ", "") or "security level" in lowered:
        return "SNMPv3 security level not supported for this user"
    return text


class PysnmpEngine:
    name = "pysnmp"

    def __init__(self) -> None:
        self._engines = [_new_engine()]
        # Which keys each engine holds for each v3 user name (see _engine_for).
        self._v3_users: list[dict[str, tuple]] = [{}]
        self._transports: dict[tuple[str, int, float, int], object] = {}
        self._widened: set[tuple[int, tuple[int, ...]]] = set()
        # Per target: its auth data and context, built once (pysnmp's LCD caches by them).
        self._request_data: dict[Target, tuple[object, ContextData]] = {}

    def _engine_for(self, target: Target) -> _PySnmpEngine:
        """pysnmp keeps one set of keys per SNMPv3 user name in an engine: two devices
        with the same user name but different keys would overwrite each other's. The
        first engine that has not seen this user name, or has it with these very keys,
        serves the target; a new engine is made only for a clash."""
        if target.version != "3":
            return self._engines[0]
        keys = (target.auth_protocol, target.auth_key, target.priv_protocol, target.priv_key)
        for engine, users in zip(self._engines, self._v3_users):
            known = users.setdefault(target.user or "", keys)
            if known == keys:
                return engine
        self._engines.append(_new_engine())
        self._v3_users.append({target.user or "": keys})
        return self._engines[-1]

    def _auth_data(self, target: Target) -> object:
        if target.version in ("1", "2c"):
            return CommunityData(target.community or "", mpModel=0 if target.version == "1" else 1)
        kwargs: dict[str, object] = {}
        if target.auth_protocol:
            kwargs["authKey"] = target.auth_key
            kwargs["authProtocol"] = _AUTH[target.auth_protocol]
        if target.priv_protocol:
            kwargs["privKey"] = target.priv_key
            kwargs["privProtocol"] = _PRIV[target.priv_protocol]
        return UsmUserData(target.user or "", **kwargs)

    def _widen_receive_buffer(self, engine: _PySnmpEngine, transport: object) -> None:
        """Every device shares one pysnmp engine's UDP socket: with many polls in
        flight, replies overflow the kernel's default receive buffer and are lost
        (each loss a timeout and a retry). Ask for a larger buffer once the socket
        exists (pysnmp opens it on the first request)."""
        domain = transport.TRANSPORT_DOMAIN  # type: ignore[attr-defined]
        key = (id(engine), domain)
        if key in self._widened:
            return
        carrier = _config.get_transport(engine, domain)
        sock = carrier.transport.get_extra_info("socket") if getattr(carrier, "transport", None) else None
        if sock is None:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        except OSError:
            pass  # the kernel's limit stands; nothing to do but go on
        self._widened.add(key)

    async def _transport(self, target: Target) -> object:
        key = (target.host, target.port, target.timeout, target.retries)
        transport = self._transports.get(key)
        if transport is None:
            cls = Udp6TransportTarget if ":" in target.host else UdpTransportTarget
            try:
                transport = await cls.create(
                    (target.host, target.port), timeout=target.timeout, retries=target.retries
                )
            except Exception as exc:  # noqa: BLE001 - resolution failures and the like
                raise SnmpError(f"cannot reach {target.host}:{target.port}: {exc}") from None
            self._transports[key] = transport
        return transport

    async def _send(self, target: Target, generator: type, varbinds: list, *bulk: int) -> tuple:
        """One request through pysnmp's command generator (GET, GETNEXT, or GETBULK
        when `bulk` holds non-repeaters and max-repetitions): (error indication,
        error status, error index, reply varbinds as (ObjectName, value) pairs)."""
        transport = await self._transport(target)
        engine = self._engine_for(target)
        data = self._request_data.get(target)
        if data is None:
            data = self._request_data[target] = (self._auth_data(target), ContextData(contextName=target.context))
        auth, context = data
        addr_name, _params = _LCD.configure(engine, auth, transport, context.contextName)
        future: asyncio.Future[tuple] = asyncio.get_running_loop().create_future()
        generator().send_varbinds(engine, addr_name, context.contextEngineId, context.contextName,
                                  *bulk, varbinds, _on_reply, future)
        reply = await future
        self._widen_receive_buffer(engine, transport)
        return reply

    async def get(self, target: Target, oids: Sequence[str]) -> dict[str, Var | None]:
        if not oids:
            return {}
        indication, status, index, var_binds = await self._send(
            target, _cmdgen.GetCommandGenerator, [(_object_name(oid), _NULL) for oid in oids])
        if indication:
            raise SnmpError(_describe(indication))
        if status:
            # v1 agents answer noSuchName for the whole PDU: retry one by one so
            # one missing OID does not hide the others.
            if target.version == "1" and len(oids) > 1:
                result: dict[str, Var | None] = {}
                for oid in oids:
                    try:
                        result.update(await self.get(target, [oid]))
                    except SnmpError:
                        result[oid] = None
                return result
            raise SnmpError(f"agent error {status.prettyPrint()} at varbind {int(index)}")
        return {str(name): _convert(value) for name, value in var_binds}

    async def walk(self, target: Target, columns: Sequence[str]) -> dict[str, dict[str, Var]]:
        result: dict[str, dict[str, Var]] = {col: {} for col in columns}
        if not columns:
            return result
        # OIDs as tuples of ints throughout: comparing and slicing them is much
        # cheaper than pyasn1's str() of every reply OID.
        column_keys = {col: _oid_key(col) for col in columns}
        # Cursor per column still being walked: column -> last OID seen (as sent).
        cursors = {col: _object_name(col) for col in columns}
        cursor_keys = dict(column_keys)
        while cursors:
            active = list(cursors)
            varbinds = [(cursors[c], _NULL) for c in active]
            if target.version == "1":
                indication, status, index, var_binds = await self._send(
                    target, _cmdgen.NextCommandGenerator, varbinds)
                rows = [var_binds] if not indication and not status else []
            else:
                indication, status, index, var_binds = await self._send(
                    target, _cmdgen.BulkCommandGenerator, varbinds,
                    0, max(1, target.max_repetitions // len(active)))
                # A GETBULK reply interleaves the columns row by row.
                width = len(active)
                rows = [var_binds[i : i + width] for i in range(0, len(var_binds), width)]
            if indication:
                raise SnmpError(_describe(indication))
            if status:
                if target.version == "1" and "noSuchName" in status.prettyPrint():
                    break  # v1's end of the MIB
                raise SnmpError(f"agent error {status.prettyPrint()} at varbind {int(index)}")
            finished: set[str] = set()
            for row in rows:
                for col, (name, value) in zip(active, row):
                    if col in finished:
                        continue
                    key = name.asTuple()
                    column_key = column_keys[col]
                    cut = len(column_key)
                    if (isinstance(value, rfc1905.EndOfMibView) or len(key) <= cut
                            or key[:cut] != column_key):
                        finished.add(col)  # the agent left the column
                        continue
                    if key <= cursor_keys[col]:
                        finished.add(col)  # agent went backwards: stop, not loop
                        continue
                    cursors[col], cursor_keys[col] = name, key
                    var = _convert(value)
                    if var is not None:
                        result[col][".".join(map(str, key[cut:]))] = var
            if not rows:
                finished.update(active)
            for col in finished:
                cursors.pop(col, None)
        return result

    async def close(self) -> None:
        for engine in self._engines:
            engine.close_dispatcher()


def _new_engine() -> _PySnmpEngine:
    # No MIB view is built: requests bypass hlapi's varbind resolution, which was
    # its only user here (and took most of a second on the event loop).
    return _PySnmpEngine()


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split(".") if p)


def _object_name(oid: str) -> rfc1902.ObjectName:
    """A numeric OID as pysnmp sends it; a malformed one is the caller's error."""
    try:
        return rfc1902.ObjectName(oid.strip().lstrip("."))
    except PyAsn1Error as exc:
        raise SnmpError(f"not a numeric OID: {oid!r} ({exc})") from None


_NULL = univ.Null("")


def _on_reply(engine: object, handle: object, indication: object, status: object, index: object,
              var_binds: object, future: asyncio.Future[tuple]) -> None:
    """pysnmp's callback for one request: the reply goes to the awaiting coroutine."""
    if not future.cancelled():
        future.set_result((indication, status, index, var_binds))
