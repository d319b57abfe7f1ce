"""The SNMP engine interface: what the poller needs from an SNMP library.

An engine does network work only: GET scalars and walk table columns, returning
typed values. What the values mean (scale, unit, schema field) is the poller's
business. Engines: `pysnmp_engine` (reference) and, later, a faster one beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

# Value types, as the SNMP SMI names them.
INTEGER = "Integer"
GAUGE = "Gauge32"
COUNTER32 = "Counter32"
COUNTER64 = "Counter64"
TIMETICKS = "TimeTicks"
OCTETS = "OctetString"
OID = "ObjectIdentifier"
IPADDRESS = "IpAddress"
OPAQUE = "Opaque"

NUMERIC_TYPES = frozenset({INTEGER, GAUGE, COUNTER32, COUNTER64, TIMETICKS})


class Var(NamedTuple):
    """One SNMP value: its SMI type and its Python value (int, bytes or str).
    A NamedTuple, not a dataclass: one is made per OID read, and a tuple is made
    several times faster."""

    type: str
    value: int | bytes | str


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to reach one agent. Secrets are plain strings here: a Target
    is never logged (its repr hides them)."""

    host: str
    port: int
    version: str  # "1", "2c" or "3"
    community: str | None = None
    user: str | None = None
    auth_protocol: str | None = None
    auth_key: str | None = None
    priv_protocol: str | None = None
    priv_key: str | None = None
    context: str = ""
    timeout: float = 2.0
    retries: int = 1
    max_repetitions: int = 25

    def __repr__(self) -> str:
        return f"Target({self.host}:{self.port} v{self.version})"


class SnmpError(Exception):
    """The agent could not be read at all (timeout, authentication, transport).
    The message is fit for a user and never holds a secret."""


class SnmpEngine(Protocol):
    name: str

    async def get(self, target: Target, oids: Sequence[str]) -> dict[str, Var | None]:
        """GET scalars. An OID the agent does not have (noSuchObject,
        noSuchInstance) maps to None; the rest of the reply is still used."""
        ...

    async def walk(self, target: Target, columns: Sequence[str]) -> dict[str, dict[str, Var]]:
        """Walk table columns (GETBULK for v2c/v3, GETNEXT for v1) side by side.
        Returns, per column OID, the rows as {index suffix: value}. A column ends
        where the agent leaves it or answers endOfMibView."""
        ...

    async def close(self) -> None: ...
