"""What every source of readings (SNMP, and power APIs beside it) gives the scheduler,
and `Guarded`, the one place every source's results pass before they are written."""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, SecretStr

from collector.config import Device
from greenwatch.core.http import Redactor
from greenwatch.core.schema import Problem, Sample, refuse_impossible

log = logging.getLogger("greenwatch.collector")


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
    device (it may become known only at the first poll, e.g. by sysObjectID).
    A source that learns secrets while it runs (a session token) offers them as a
    `redactor` attribute (greenwatch.core.http.Redactor)."""

    kind: str

    async def poll(self) -> PollResult: ...

    async def close(self) -> None: ...


def device_redactor(device: Device) -> Redactor:
    """Every secret in the device's config (community, keys, passwords, tokens,
    secret headers) and, beside each username, the base64 of user:password."""
    redactor = Redactor()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            redactor.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            password = getattr(value, "password", None)
            if isinstance(password, SecretStr):
                # Plugs default to user admin (docs/sources.md).
                redactor.add_basic(getattr(value, "username", None) or "admin", password.get_secret_value())
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(device)
    return redactor


class Guarded:
    """A device's source, as the scheduler polls it. Whatever the source is:

    * a bug in it never escapes: it becomes the poll's error, named with the line;
    * physically impossible values (greenwatch.core.schema.BOUNDS) are taken out and
      counted as problems, never written;
    * no problem or error text carries a credential of the device (as written,
      URL-quoted, base64, or inside an echoed Authorization header);
    * each distinct problem is logged once, not on every poll."""

    def __init__(self, source: Source, site: str, device: Device) -> None:
        self.source = source
        self.key = f"{site}/{device.name}"
        self._redact = device_redactor(device)
        self._logged: set[str] = set()

    @property
    def kind(self) -> str:
        return self.source.kind

    def redact(self, text: str) -> str:
        text = self._redact(text)
        learned = getattr(self.source, "redactor", None)
        return learned(text) if learned else text

    async def poll(self) -> PollResult:
        try:
            result = await self.source.poll()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a source's bug: this device's poll fails, nothing else
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            at = f"{Path(frame.filename).name}:{frame.lineno}"
            error = self.redact(f"internal error: {type(exc).__name__}: {str(exc)[:200]} (at {at})")
            log.error("%s: %s", self.key, error)
            return PollResult(error=error)
        samples, refused = refuse_impossible(result.samples)
        problems = [Problem(self.redact(p), self.redact(getattr(p, "key", p)))
                    for p in [*result.problems, *refused]]
        error = self.redact(result.error) if result.error is not None else None
        self._log_new(problems)
        return PollResult(samples=samples, problems=list(problems), error=error)

    async def close(self) -> None:
        await self.source.close()

    def _log_new(self, problems: list[Problem]) -> None:
        for problem in problems:
            if problem.key not in self._logged:
                self._logged.add(problem.key)
                log.warning("%s: %s", self.key, problem)
