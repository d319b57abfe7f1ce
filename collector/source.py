"""What every source of readings (SNMP, and power APIs beside it) gives the scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from greenwatch.core.schema import Sample


@dataclass
class PollResult:
    """One poll of one device: the samples read, the reasons some readings were
    refused (bad values; the rest are still used), and a device-level error when
    the device could not be read at all."""

    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.error is None

    @property
    def readings(self) -> int:
        return sum(len(s.fields) for s in self.samples)


class Source(Protocol):
    """A device's source of readings. `poll` never raises for a device's fault:
    it returns a PollResult with `error` set. `kind` is the schema kind of the
    device (it may become known only at the first poll, e.g. by sysObjectID)."""

    kind: str

    async def poll(self) -> PollResult: ...

    async def close(self) -> None: ...
