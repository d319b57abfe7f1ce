"""InfluxDB writers: the v1-compatible HTTP API, and InfluxDB 2.x's native write.

`InfluxClient` speaks the v1-compatible API (line protocol to `/write`, InfluxQL to
`/query`, `/ping`), the one path that works on InfluxDB 1.x, 2.4+ (through DBRP
mappings) and 3.x. `InfluxV2Writer` writes to InfluxDB 2.x's native `/api/v2/write`
(org, bucket, token) through the `influxdb-client` package, for users who prefer it.

Both satisfy `LineWriter` (`await write(lines)`, `await close()`), and both sort
every failure into one of three exceptions, because the sink must treat them
differently:

* `InfluxRetryableError`: the data is fine, the server was not reachable or not
  able (connection refused, timeout, TLS failure, 5xx, 429, 503, 404 database or
  bucket not found). Retry the same batch later; `retry_after_s` carries the
  server's Retry-After when it sent one.
* `InfluxAuthError` (a subclass of `InfluxRetryableError`): 401/403. Retryable,
  because a token may be fixed without restarting greenwatch and the data must not
  be lost meanwhile, but a distinct class so it can be logged as what it is.
* `InfluxRejectedError`: 400/422, the server refused the points themselves
  (unparsable line, field type conflict, points outside the retention policy).
  Re-sending them will fail the same way. InfluxDB 1.x answers a *partial* write
  (some points stored, some not) with 400 too. `InfluxTooLargeError` (413) is a
  subclass: the batch, not its content, is the problem, so it can be split.

Secrets (token, password) are kept in `Secret` wrappers and never appear in
reprs, log lines or exception messages; the error text a server sends back is
scrubbed of them too (as written, URL-quoted and base64), in case a proxy echoes the
request. HTTP itself (TLS, timeouts, bounded reads, failure texts) is
`greenwatch.core.http`'s, shared with the collector's sources.
"""

from __future__ import annotations

import asyncio
import gzip as gziplib
import json
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from greenwatch.core.config import InfluxConfig
from greenwatch.core.http import (
    HttpClient,
    HttpFailure,
    JsonError,
    Redactor,
    basic_auth,
    describe_failure,
    parse_json,
)

__all__ = [
    "LineWriter",
    "Secret",
    "InfluxError",
    "InfluxRetryableError",
    "InfluxAuthError",
    "InfluxRejectedError",
    "InfluxTooLargeError",
    "InfluxQueryError",
    "InfluxClient",
    "InfluxV2Writer",
]

# Server error text is put into exception messages and logs: keep it readable.
_MAX_ERROR_TEXT = 1000
# Query answers can be large (a week of points for the rollups); InfluxDB is the
# operator's own server, so the cap is only there to keep a broken proxy bounded.
_MAX_REPLY = 1024 * 1024 * 1024
# Bodies above this are gzipped in a worker thread (zlib releases the GIL) so a
# 5000-line batch does not hold the event loop for milliseconds.
_GZIP_INLINE_MAX = 64 * 1024


class Secret:
    """A string that does not show itself: repr/str give '***'."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@runtime_checkable
class LineWriter(Protocol):
    """What the sink needs from a writer."""

    async def write(self, lines: list[str]) -> None:
        """Store the lines, or raise one of this module's InfluxError subclasses."""
        ...

    async def close(self) -> None:
        ...


class InfluxError(Exception):
    """Base of every error the writers raise. `status` is the HTTP status (None
    when no response came back); `server_message` the server's own error text."""

    def __init__(self, message: str, status: int | None = None, server_message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class InfluxRetryableError(InfluxError):
    """Not the data's fault: retry the same batch later."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        server_message: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status, server_message)
        self.retry_after_s = retry_after_s


class InfluxAuthError(InfluxRetryableError):
    """401/403: the credentials were refused. Retryable; log it loudly."""


class InfluxRejectedError(InfluxError):
    """400/422: the server refused the points; re-sending them will not help."""


class InfluxTooLargeError(InfluxRejectedError):
    """413: the request body exceeds the server's limit; send smaller batches."""


class InfluxQueryError(InfluxError):
    """An InfluxQL statement failed (syntax, unknown database, ...)."""


def _server_message(body: str, headers: Any = None) -> str:
    """The error text from an InfluxDB error response: 1.x and 3.x send
    {"error": ...}, 2.x {"code": ..., "message": ...}; 1.x also sets X-Influxdb-Error."""
    text = body.strip()
    try:
        # Only a short text can be the error message; a big body is cut below.
        data = json.loads(text) if len(text) <= 64 * _MAX_ERROR_TEXT else None
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str) and data[key]:
                text = data[key]
                break
    if not text and headers is not None:
        for name in ("X-Influxdb-Error", "X-Influx-Error", "X-Platform-Error-Code"):
            if headers.get(name):
                text = headers[name]
                break
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "..."
    return text


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from InfluxDB; our own backoff applies
    return max(seconds, 0.0)


def _http_error(
    status: int, server_message: str, retry_after: str | None, what: str
) -> InfluxError:
    """Sort an HTTP error status into the exception the sink acts on."""
    detail = f"{what}: HTTP {status}: {server_message or '(no error text)'}"
    if status in (400, 422):
        return InfluxRejectedError(f"{what} rejected the data: HTTP {status}: {server_message}", status, server_message)
    if status == 413:
        return InfluxTooLargeError(f"{what}: request too large (HTTP 413): {server_message}", status, server_message)
    if status in (401, 403):
        return InfluxAuthError(
            f"{what}: credentials refused (HTTP {status}): {server_message}; check the token or "
            "user/password and their permissions; will keep retrying",
            status,
            server_message,
        )
    # 404 (database/bucket not found) is a configuration problem that someone can
    # fix while greenwatch runs: keep the data and retry rather than drop it. 429,
    # 5xx and anything unexpected likewise: dropping data is only for 400/422.
    return InfluxRetryableError(detail, status, server_message, _retry_after(retry_after))


def _redactor(username: str | None, password: Secret | None, token: Secret | None) -> Redactor:
    redactor = Redactor([token.reveal() if token else None])
    if password:
        redactor.add_basic(username or "", password.reveal())
    return redactor


class InfluxClient:
    """Async client for InfluxDB's v1-compatible HTTP API (1.x, 2.4+, 3.x).

    Authentication: `token` is sent as `Authorization: Token ...` (InfluxDB 2.x and
    3.x; 1.8+ with auth on, and ignored by 1.x with auth off); `username`/`password`
    as HTTP basic auth, or as `u`/`p` query parameters when `auth_in_query=True`
    (for proxies that strip the Authorization header). Give one or the other.

    TLS is verified by default; `ca_file` adds a private CA; `verify_tls=False`
    turns verification off.

    The aiohttp session is made on first use inside the running event loop; call
    `close()` (or use `async with`) when done.
    """

    def __init__(
        self,
        url: str,
        database: str,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        gzip: bool = False,
        timeout_s: float = 10.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
        auth_in_query: bool = False,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"InfluxDB url must be http(s)://host:port, got {parts.scheme}://{parts.hostname}")
        if parts.username or parts.password:
            raise ValueError("put InfluxDB credentials in username/password or token, not in the url")
        if token and (username or password):
            raise ValueError("give InfluxDB either a token or a username/password, not both")
        if password and not username:
            raise ValueError("an InfluxDB password needs a username")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy or None
        self.username = username or None
        self._password = Secret(password) if password else None
        self._token = Secret(token) if token else None
        self.gzip = gzip
        self.timeout_s = timeout_s
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.auth_in_query = auth_in_query
        self._http = HttpClient(timeout_s=timeout_s, verify_tls=verify_tls, ca_file=ca_file,
                                max_body=_MAX_REPLY)
        self._http.redactor.merge(_redactor(self.username, self._password, self._token))
        self._what = f"InfluxDB at {self.url}"

    def __repr__(self) -> str:
        auth = "token" if self._token else ("user " + self.username if self.username else "none")
        return (
            f"InfluxClient(url={self.url!r}, database={self.database!r}, "
            f"retention_policy={self.retention_policy!r}, auth={auth}, gzip={self.gzip})"
        )

    async def __aenter__(self) -> InfluxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _auth(self, params: dict[str, str], headers: dict[str, str]) -> None:
        if self._token:
            headers["Authorization"] = f"Token {self._token.reveal()}"
        elif self.username:
            password = self._password.reveal() if self._password else ""
            if self.auth_in_query:
                params["u"] = self.username
                params["p"] = password
            else:
                headers["Authorization"] = basic_auth(self.username, password)

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, Any]:
        headers = dict(headers or {})
        self._auth(params, headers)
        try:
            reply = await self._http.request(method, self.url + path, params=params, data=data, headers=headers)
        except HttpFailure as exc:
            # Credential-free already; from None so no chained exception carries the URL.
            raise InfluxRetryableError(f"{self._what}: {exc}") from None
        return reply.status, reply.text(), reply.headers

    def _scrub(self, text: str) -> str:
        return self._http.redactor(text)

    def _error(self, status: int, text: str, headers: Any) -> InfluxError:
        message = self._scrub(_server_message(text, headers))
        return _http_error(status, message, headers.get("Retry-After"), self._what)

    async def write(self, lines: list[str]) -> None:
        """POST `lines` (line protocol, ns timestamps) to /write; raise on failure."""
        if not lines:
            return
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        body = "\n".join(lines).encode("utf-8")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            # Level 1: on 5000 power lines (620 kB) it gives 5.5x in 3.5 ms,
            # where level 6 gives 7.4x in 9 ms; line protocol is repetitive enough
            # that the cheap level gets most of the gain.
            if len(body) > _GZIP_INLINE_MAX:
                body = await asyncio.to_thread(gziplib.compress, body, 1, mtime=0)
            else:
                body = gziplib.compress(body, 1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        status, text, resp_headers = await self._request("POST", "/write", params, body, headers)
        if not 200 <= status < 300:
            raise self._error(status, text, resp_headers)

    async def query(self, q: str, db: str | None = None, epoch: str | None = None) -> dict[str, Any]:
        """Run InfluxQL `q` (POST /query, so DDL works too) and return the parsed
        JSON. Raises `InfluxQueryError` if any statement failed; `db` defaults to
        the client's database; `epoch` ('ns', 's', ...) asks for numeric times."""
        form = {"q": q, "db": db if db is not None else self.database}
        if epoch:
            form["epoch"] = epoch
        status, text, headers = await self._request("POST", "/query", {}, aiohttp.FormData(form))
        if status == 400:
            message = self._scrub(_server_message(text, headers))
            raise InfluxQueryError(f"{self._what}: query failed: {message}", status, message)
        if not 200 <= status < 300:
            raise self._error(status, text, headers)
        try:
            data = await parse_json(text.encode("utf-8"))
        except JsonError as exc:
            raise InfluxQueryError(f"{self._what}: query answer: {exc}", status) from None
        if isinstance(data, dict) and data.get("error"):
            message = self._scrub(str(data["error"]))
            raise InfluxQueryError(f"{self._what}: query failed: {message}", status, message)
        for result in data.get("results", []) if isinstance(data, dict) else []:
            if isinstance(result, dict) and result.get("error"):
                message = self._scrub(str(result["error"]))
                raise InfluxQueryError(
                    f"{self._what}: statement {result.get('statement_id', '?')} failed: {message}", status, message
                )
        return data

    async def ping(self) -> str:
        """GET /ping; return the server's version (X-Influxdb-Version, '' if none).
        Raises `InfluxRetryableError` when the server is not reachable or not ready."""
        status, text, headers = await self._request("GET", "/ping", {})
        if status not in (200, 204):
            raise self._error(status, text, headers)
        return headers.get("X-Influxdb-Version", "")

    async def close(self) -> None:
        await self._http.close()


class InfluxV2Writer:
    """Writes to InfluxDB 2.x's native `/api/v2/write` (org, bucket, token) with
    `influxdb-client`'s async client, raising this module's exceptions."""

    def __init__(
        self,
        url: str,
        org: str,
        bucket: str,
        token: str,
        gzip: bool = False,
        timeout_s: float = 10.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"InfluxDB url must be http(s)://host:port, got {parts.scheme}://{parts.hostname}")
        if not token:
            raise ValueError("InfluxDB 2.x writes need a token")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._token = Secret(token)
        self.gzip = gzip
        self.timeout_s = timeout_s
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self._client: Any = None
        self._write_api: Any = None
        self._what = f"InfluxDB 2 at {self.url} (org {org!r}, bucket {bucket!r})"

    def __repr__(self) -> str:
        return f"InfluxV2Writer(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r}, gzip={self.gzip})"

    async def __aenter__(self) -> InfluxV2Writer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_write_api(self) -> Any:
        if self._client is None:
            # Imported here: the v1 path (the default) should not pay for it.
            from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

            kwargs: dict[str, Any] = {"verify_ssl": self.verify_tls}
            if self.ca_file:
                kwargs["ssl_ca_cert"] = self.ca_file
            self._client = InfluxDBClientAsync(
                url=self.url,
                token=self._token.reveal(),
                org=self.org,
                timeout=int(self.timeout_s * 1000),
                enable_gzip=self.gzip,
                **kwargs,
            )
            self._write_api = self._client.write_api()
        return self._write_api

    async def write(self, lines: list[str]) -> None:
        """Write `lines` (ns timestamps) to the bucket; raise on failure."""
        if not lines:
            return
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        write_api = self._get_write_api()
        try:
            await write_api.write(
                bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.NS
            )
        except asyncio.CancelledError:
            raise
        except ApiException as exc:
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            headers = exc.headers or {}
            message = _redactor(None, None, self._token)(_server_message(body, headers))
            raise _http_error(int(exc.status or 0), message, headers.get("Retry-After"), self._what) from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            text = _redactor(None, None, self._token)(describe_failure(exc, self.timeout_s))
            raise InfluxRetryableError(f"{self._what}: {text}") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._write_api = None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def make_writer(cfg: InfluxConfig) -> LineWriter:
    """The writer the config asks for: /write (v1 API: 1.x, 2.x via DBRP, 3.x) or
    InfluxDB 2's native /api/v2/write."""
    ca = str(cfg.ca_file) if cfg.ca_file else None
    if cfg.api == "v2":
        return InfluxV2Writer(cfg.url, cfg.org or "", cfg.bucket or "", _secret(cfg.token) or "",
                              gzip=cfg.gzip, timeout_s=cfg.timeout, verify_tls=cfg.verify_tls, ca_file=ca)
    return InfluxClient(cfg.url, cfg.database, cfg.retention_policy, cfg.username, _secret(cfg.password),
                        _secret(cfg.token), gzip=cfg.gzip, timeout_s=cfg.timeout,
                        verify_tls=cfg.verify_tls, ca_file=ca)


def query_client(cfg: InfluxConfig) -> InfluxClient:
    """A client for InfluxQL over the v1-compatible API (1.x; 2.x/3.x with a DBRP
    mapping: with api v2 the bucket is the database and the token authenticates).
    Its timeout is at least a minute: rollups and reports run long aggregates."""
    database = cfg.bucket if cfg.api == "v2" and cfg.bucket else cfg.database
    return InfluxClient(cfg.url, database, cfg.retention_policy, cfg.username, _secret(cfg.password),
                        _secret(cfg.token), timeout_s=max(cfg.timeout, 60.0), verify_tls=cfg.verify_tls,
                        ca_file=str(cfg.ca_file) if cfg.ca_file else None)
