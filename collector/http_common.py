"""HTTP plumbing the power-API sources share (Redfish, plugs, JSON meters):
timeouts, TLS, basic auth, failures described without credentials, JSON parsing."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp

from collector.config import Defaults, Device


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


def tls_option(verify: bool, ca_file: Path | None) -> ssl.SSLContext | bool:
    """aiohttp's `ssl=`: verification on (system CAs, or `ca_file`), or off."""
    if not verify:
        return False
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise SourceFailure(f"cannot use ca_file {ca_file}: {getattr(exc, 'strerror', None) or exc}") from None


def basic_header(username: str, password: str) -> str:
    """An HTTP basic Authorization header value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def describe_failure(exc: BaseException, timeout: float) -> str:
    """A short, credential-free account of a transport failure."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return (f"TLS certificate not trusted ({exc.certificate_error}); "
                "give ca_file, or set verify_tls: false")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"reply broken off: {exc}"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.ClientResponseError):  # its text carries the URL: leave it out
        return f"{type(exc).__name__}: HTTP {exc.status} {exc.message}".rstrip()
    return f"{type(exc).__name__}: {exc}"


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every secret (as written, and as URL-quoted) replaced by ***: a
    message may quote a URL or a reply that carries one."""
    for secret in secrets:
        if len(secret) >= 3:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "***")
    return text


def parse_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise SourceFailure(f"{what}: reply is not text (not JSON)") from None
    except json.JSONDecodeError as exc:
        raise SourceFailure(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def error_detail(body: bytes) -> str:
    """The device's own words from an error reply, where it gives some (bounded)."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
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
    return f": {str(message)[:200]}" if message else ""


def number(value: Any, where: str, allow_text: bool = False) -> float:
    """A finite real number, or SourceFailure naming where it was expected."""
    if isinstance(value, bool) or value is None:
        raise SourceFailure(f"{where}: expected a number, got {json.dumps(value)}")
    if isinstance(value, str) and allow_text:
        try:
            value = float(value.strip())
        except ValueError:
            raise SourceFailure(f"{where}: expected a number, got {json.dumps(value)}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SourceFailure(f"{where}: expected a number, got {json.dumps(value)[:60]}")
    return float(value)
