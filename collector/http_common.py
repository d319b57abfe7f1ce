"""What the collector's HTTP sources (Redfish, plugs, JSON meters) share on top of
greenwatch.core.http: the failure they raise, their timeout rule, one request turned
into a reply or a SourceFailure, and reading numbers out of untrusted JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from yarl import URL

from collector.config import Defaults, Device
from greenwatch.core.http import HttpClient, HttpFailure, JsonError, Reply


class SourceFailure(Exception):
    """A request or reply that makes a reading impossible; the message names the
    request (method and path, never credentials) and what went wrong."""


def request_timeout(own: float | None, device: Device, defaults: Defaults, fallback: float) -> float:
    """The source's own timeout, else the device's, else `defaults.timeout` when the
    config sets it, else the source's fallback (the 2 s SNMP default is too short for
    BMCs and Wi-Fi plugs)."""
    if own is not None:
        return own
    if device.timeout is not None:
        return device.timeout
    if "timeout" in defaults.model_fields_set:
        return defaults.timeout
    return fallback


async def fetch(http: HttpClient, what: str, method: str, url: str | URL, **kwargs: Any) -> Reply:
    """One request and its whole reply; SourceFailure (prefixed by `what`, the request
    as messages name it) when no usable reply came."""
    try:
        return await http.request(method, url, **kwargs)
    except HttpFailure as exc:
        raise SourceFailure(f"{what}: {exc}") from None


async def reply_json(reply: Reply, what: str) -> Any:
    try:
        return await reply.json()
    except JsonError as exc:
        raise SourceFailure(f"{what}: {exc}") from None


def http_error(reply: Reply, what: str, http: HttpClient) -> SourceFailure:
    """An HTTP error status as a failure: status, reason and the device's own words."""
    return SourceFailure(f"{what}: HTTP {reply.status} {reply.reason}".rstrip()
                         + error_detail(reply.body, http.redactor))


def error_detail(body: bytes, redact: Callable[[str], str]) -> str:
    """The device's own words from an error reply, where it gives some: redacted
    before it is cut short, so that no part of an echoed secret survives the cut."""
    try:
        # Only a short body can be an error message worth quoting.
        data = json.loads(body) if len(body) <= 64 * 1024 else None
    except (ValueError, RecursionError):
        data = None
    if data is None:
        text = redact(body[:4096].decode("utf-8", "replace")).strip()[:200]
        return f": {text}" if text and "<" not in text[:1] else ""
    message = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):  # Redfish and JSON-RPC style
            message = err.get("message")
            extended = err.get("@Message.ExtendedInfo")
            if isinstance(extended, list) and extended and isinstance(extended[0], dict):
                message = extended[0].get("Message") or message
        message = message or data.get("message") or data.get("WARNING")
    if not message:
        return ""
    return f": {redact(message)[:200]}" if isinstance(message, str) else f": {shown(message)}"


def shown(value: Any, limit: int = 60, quote: bool = True) -> str:
    """A JSON value as a message quotes it: short, and cheap whatever its size or depth
    (a 400-digit number, a list nested 900 deep)."""
    if isinstance(value, str):
        text = value[:limit]
        return json.dumps(text) if quote else text
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int) and abs(value) >= 10**18:
        return f"a {len(str(abs(value)))}-digit number"
    if isinstance(value, int | float):
        return repr(value)[:limit]
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def number(value: Any, where: str, allow_text: bool = False) -> float:
    """A finite real number, or SourceFailure naming where it was expected. Python's
    JSON reads NaN, Infinity and 1e999 (inf) and integers of any length: none of them
    is a reading."""
    if isinstance(value, str) and allow_text:
        try:
            value = float(value.strip()[:64])
        except ValueError:
            raise SourceFailure(f"{where}: expected a number, got {shown(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SourceFailure(f"{where}: expected a number, got {shown(value)}")
    try:
        result = float(value)
    except OverflowError:  # an int beyond any float
        result = math.inf
    if not math.isfinite(result):
        raise SourceFailure(f"{where}: expected a finite number, got {shown(value)}")
    return result
