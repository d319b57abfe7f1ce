"""Who a log line is about: the site, device or rule whose work is running now.

A context variable, so every line logged while one device is polled (by the
scheduler, its source, the SNMP engine, in worker threads too) carries that
device without each call passing it; asyncio gives every task its own copy.
greenwatch/logs.py copies it into each record (the JSON format's keys)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

SUBJECT_KEYS = ("site", "device", "rule")

_subject: ContextVar[dict[str, str] | None] = ContextVar("greenwatch_log_subject", default=None)


def current() -> dict[str, str]:
    """The subject of the code running now ({} when it concerns no one)."""
    return _subject.get() or {}


@contextmanager
def about(**subject: str | None) -> Iterator[None]:
    """Lines logged inside the block concern `subject` (site=, device=, rule=)."""
    token = _subject.set({**current(), **{k: v for k, v in subject.items() if v is not None}})
    try:
        yield
    finally:
        _subject.reset(token)
