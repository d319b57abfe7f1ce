"""The reference SNMP engine, on pysnmp 7's asyncio API.

Numeric OIDs only (lookupMib=False): MIB lookups halve pysnmp's speed and the
profiles already carry numeric OIDs.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from pyasn1.type import univ
from pysnmp.entity import config as _config
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import (
    SnmpEngine as _PySnmpEngine,
)
from pysnmp.hlapi.v3arch.asyncio import auth as _auth
from pysnmp.hlapi.varbinds import CommandGeneratorVarBinds
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
    if isinstance(value, _NO_VALUE):
        return None
    if isinstance(value, rfc1902.IpAddress):
        return Var(IPADDRESS, ".".join(str(b) for b in bytes(value)))
    for cls, name in _TYPES:
        if isinstance(value, cls):
            if name == OCTETS or name == OPAQUE:
                return Var(name, bytes(value))
            if name == OID:
                return Var(OID, str(value))
            return Var(name, int(value))
    return None


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
            except Exception as exc:  # resolution failures and the like
                raise SnmpError(f"cannot reach {target.host}:{target.port}: {exc}") from None
            self._transports[key] = transport
        return transport

    async def get(self, target: Target, oids: Sequence[str]) -> dict[str, Var | None]:
        if not oids:
            return {}
        transport = await self._transport(target)
        engine = self._engine_for(target)
        indication, status, index, var_binds = await get_cmd(
            engine,
            self._auth_data(target),
            transport,
            ContextData(contextName=target.context),
            *[ObjectType(ObjectIdentity(oid)) for oid in oids],
            lookupMib=False,
        )
        self._widen_receive_buffer(engine, transport)
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
        transport = await self._transport(target)
        auth = self._auth_data(target)
        engine = self._engine_for(target)
        context = ContextData(contextName=target.context)
        # Cursor per column still being walked: column -> last OID seen.
        cursors = {col: col for col in columns}
        cursor_keys = {col: _oid_key(col) for col in columns}
        prefixes = {col: col + "." for col in columns}
        while cursors:
            active = list(cursors)
            if target.version == "1":
                indication, status, index, var_binds = await next_cmd(
                    engine, auth, transport, context,
                    *[ObjectType(ObjectIdentity(cursors[c])) for c in active],
                    lookupMib=False,
                )
                rows = [var_binds] if not indication and not status else []
            else:
                indication, status, index, var_binds = await bulk_cmd(
                    engine, auth, transport, context,
                    0, max(1, target.max_repetitions // len(active)),
                    *[ObjectType(ObjectIdentity(cursors[c])) for c in active],
                    lookupMib=False,
                )
                # A GETBULK reply interleaves the columns row by row.
                width = len(active)
                rows = [var_binds[i : i + width] for i in range(0, len(var_binds), width)]
            self._widen_receive_buffer(engine, transport)
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
                    oid = str(name)
                    if isinstance(value, rfc1905.EndOfMibView) or not oid.startswith(prefixes[col]):
                        finished.add(col)
                        continue
                    key = _oid_key(oid)
                    if key <= cursor_keys[col]:
                        finished.add(col)  # agent went backwards: stop, not loop
                        continue
                    cursors[col], cursor_keys[col] = oid, key
                    var = _convert(value)
                    if var is not None:
                        result[col][oid[len(prefixes[col]) :]] = var
            if not rows:
                finished.update(active)
            for col in finished:
                cursors.pop(col, None)
        return result

    async def close(self) -> None:
        for engine in self._engines:
            engine.close_dispatcher()


def _new_engine() -> _PySnmpEngine:
    engine = _PySnmpEngine()
    # pysnmp builds its MIB view (and, where pysmi is installed, a MIB compiler) on
    # the first request: up to a second or two with the event loop blocked. Pay that
    # here, before any device is scheduled, not inside the first polls.
    CommandGeneratorVarBinds().make_varbinds(engine.cache, (ObjectType(ObjectIdentity(SYS_OBJECT_ID)),))
    return engine


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split(".") if p)
