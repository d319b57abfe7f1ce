"""One HTTP client for everything greenwatch sends or fetches: InfluxDB, Redfish BMCs,
smart plugs and JSON meters. What each of them needs from HTTP is done here once:

* TLS verified by default (the system's CAs, or a private CA file); off only when asked.
* A timeout per request.
* Reply bodies read with a cap that counts the bytes *after* decompression, so an
  endless or gzip-bomb reply costs at most the cap and never stalls other devices.
* JSON parsed in a worker thread when it is big, so a large reply does not hold the
  event loop; nesting and number length are bounded, and each failure is named.
* Credentials: every secret a client sends (password, token, the Authorization header
  value and its base64 form) is registered with its `Redactor`, which takes them out
  of any text before it becomes an error message or a log line.
* Transport failures described in one short sentence with no credential in it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

__all__ = [
    "DEFAULT_MAX_BODY",
    "HttpFailure",
    "JsonError",
    "Redactor",
    "Reply",
    "HttpClient",
    "basic_auth",
    "describe_failure",
    "parse_json",
    "tls_option",
]

USER_AGENT = "greenwatch"
# A device's reply larger than this is refused. The largest legitimate ones are
# Redfish collections read with $expand (DMTF's public rack-mount mockup: under 100 kB).
DEFAULT_MAX_BODY = 8 * 1024 * 1024
# JSON bodies above this are parsed in a worker thread: json.loads of 256 kB takes
# about a millisecond, the event loop's budget for one step.
_JSON_INLINE_MAX = 256 * 1024
# Secrets shorter than this are not scrubbed: replacing one or two characters
# everywhere would garble every message and hide nothing.
_MIN_SECRET = 3
# Secrets shorter than this are replaced only where they stand alone (not inside a
# longer word): a community "odd" must not turn "oddPower" into "***Power".
_SHORT_SECRET = 8


class HttpFailure(Exception):
    """A request that gave no usable reply (unreachable, timeout, TLS, broken off,
    too large). The message carries no credential; `timeout` and `tls` say which
    of the failures callers may treat differently."""

    def __init__(self, message: str, *, timeout: bool = False, tls: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.tls = tls


class JsonError(ValueError):
    """A reply that is not the JSON it should be; the message says how."""


class Redactor:
    """Takes every registered secret out of text. A secret is removed as written,
    URL-quoted (a message may quote a URL) and base64-encoded (servers echo
    Authorization headers back); `add_basic` also registers the base64 of
    `user:password`, which is what a basic Authorization header carries."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < _MIN_SECRET:
            return
        raw = secret.encode("utf-8")
        forms = {secret, quote(secret, safe=""), quote_plus(secret),
                 base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
        # Without padding too: a base64 form inside longer text loses its '='.
        forms |= {f.rstrip("=") for f in forms}
        self._add_forms(forms)

    def add_basic(self, username: str, password: str) -> None:
        self.add(password)
        self.add(basic_auth(username, password).removeprefix("Basic "))
        self.add(f"{username}:{password}")

    def merge(self, other: Redactor) -> None:
        self._add_forms(other._forms)

    def _add_forms(self, forms: Iterable[str]) -> None:
        new = {f for f in forms if len(f) >= _MIN_SECRET} - self._forms
        if new:
            self._forms |= new
            # One pattern for all; longest first, so a secret that contains another
            # is removed whole.
            self._pattern = re.compile("|".join(
                re.escape(f) if len(f) >= _SHORT_SECRET else rf"(?<![A-Za-z0-9]){re.escape(f)}(?![A-Za-z0-9])"
                for f in sorted(self._forms, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern is not None else text

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __repr__(self) -> str:
        return f"Redactor({len(self._forms)} forms)"


def basic_auth(username: str, password: str) -> str:
    """An HTTP basic Authorization header value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def tls_option(verify: bool, ca_file: str | Path | None) -> ssl.SSLContext | bool:
    """aiohttp's `ssl=`: verification on (system CAs, or `ca_file`), or off."""
    if not verify:
        return False
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise HttpFailure(f"cannot use ca_file {ca_file}: {getattr(exc, 'strerror', None) or exc}",
                          tls=True) from None


def describe_failure(exc: BaseException, timeout_s: float) -> str:
    """A short, credential-free account of a failure that left no HTTP reply.
    aiohttp's own texts for some errors carry the request URL (and with it any
    query-string credential): those are described from their parts instead."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return (f"TLS failed: certificate not trusted ({exc.certificate_error}); "
                "give ca_file, or turn TLS verification off only for a server you trust")
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return (f"TLS failed ({type(exc).__name__}: {exc}); check ca_file, or turn TLS "
                "verification off only for a server you trust")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"reply broken off: {exc}"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: HTTP {exc.status} {exc.message}".rstrip()
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    return f"{type(exc).__name__}: {exc}"


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise JsonError("reply is not text (not JSON)") from None
    except json.JSONDecodeError as exc:
        raise JsonError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise JsonError("JSON nested too deeply") from None
    except ValueError as exc:  # an integer longer than Python's digit limit (4300)
        raise JsonError(f"not usable JSON ({str(exc)[:80]})") from None


async def parse_json(body: bytes) -> Any:
    """Parse a reply body; JsonError names what is wrong. Big bodies are parsed in a
    worker thread so that other devices' polls go on meanwhile."""
    if len(body) > _JSON_INLINE_MAX:
        return await asyncio.to_thread(_loads, body)
    return _loads(body)


@dataclass(slots=True)
class Reply:
    """A whole HTTP reply: status, headers and the (decompressed, capped) body."""

    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    async def json(self) -> Any:
        return await parse_json(self.body)


class HttpClient:
    """An aiohttp session with greenwatch's defaults, made on first use inside the
    running loop (and again if closed). `secret_headers` are sent on every request and
    registered with `redactor`; anything else secret a caller sends (a session token, a
    query-string password) it registers with `redactor.add` itself."""

    def __init__(
        self,
        *,
        timeout_s: float,
        verify_tls: bool = True,
        ca_file: str | Path | None = None,
        headers: Mapping[str, str] | None = None,
        secret_headers: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        limit_per_host: int = 0,
        middlewares: tuple[Any, ...] = (),
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.max_body = max_body
        self.redactor = Redactor(secret_headers.values() if secret_headers else ())
        self._headers = {"User-Agent": USER_AGENT, **(headers or {}), **(secret_headers or {})}
        self._limit_per_host = limit_per_host
        self._middlewares = middlewares
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # no header values: some are secrets
        return f"HttpClient(timeout_s={self.timeout_s}, verify_tls={self.verify_tls}, max_body={self.max_body})"

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit_per_host=self._limit_per_host,
                                             ssl=tls_option(self.verify_tls, self.ca_file))
            kwargs: dict[str, Any] = {"middlewares": self._middlewares} if self._middlewares else {}
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers=self._headers,
                **kwargs,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Reply:
        """Send one request and read its whole reply (up to `max_body` bytes after
        decompression). HttpFailure, credential-free, when no usable reply came."""
        timeout = timeout_s or self.timeout_s
        kwargs: dict[str, Any] = {}
        if timeout_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self.session().request(method, url, params=params, data=data, json=json_body,
                                              headers=headers, **kwargs) as resp:
                body = await self._read(resp)
                return Reply(resp.status, resp.reason or "", resp.headers, body)
        except asyncio.CancelledError:
            raise
        except HttpFailure:
            raise
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            timed_out = isinstance(exc, (TimeoutError, asyncio.TimeoutError))
            tls = isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError))
            # from None: the chained aiohttp exception can carry the request URL.
            raise HttpFailure(self.redactor(describe_failure(exc, timeout)), timeout=timed_out, tls=tls) from None

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        # Content-Length counts the bytes on the wire: a first, cheap check. The loop
        # counts what decompression gives, which is what a bomb inflates.
        if resp.content_length is not None and resp.content_length > self.max_body:
            raise HttpFailure(self._too_large())
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > self.max_body:
                raise HttpFailure(self._too_large())
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> str:
        return f"reply larger than {self.max_body // 1024} KiB (after decompression): refused"

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
