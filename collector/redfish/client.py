"""Talking to one Redfish service: the HTTP session, authentication (none, basic, or
a Redfish session with its token renewed on a 401 and deleted on close) and GET of
one resource as a JSON object. Credentials and tokens never reach a message."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from yarl import URL

from collector.config import RedfishConfig
from greenwatch.core.http import HttpClient, basic_auth

from ..http_common import SourceFailure, fetch, http_error, reply_json

log = logging.getLogger("greenwatch.redfish")

ROOT = "/redfish/v1"
DEFAULT_SESSIONS = "/redfish/v1/SessionService/Sessions"


class NotFound(SourceFailure):
    """404: the resource moved or went; discovery is redone."""


def link(doc: Any, key: str) -> str | None:
    """`doc[key]["@odata.id"]` when it is there and a string."""
    value = doc.get(key) if isinstance(doc, dict) else None
    if isinstance(value, list):  # e.g. Links.ContainedBy in some implementations
        value = value[0] if value else None
    target = value.get("@odata.id") if isinstance(value, dict) else None
    return target if isinstance(target, str) and target else None


def path_of(target: str) -> str:
    """The path of an @odata.id or Location (absolute URLs reduced to their path, so a
    token is only ever sent to the configured host)."""
    if "://" in target:
        parts = urlsplit(target)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
    return target.split("#", 1)[0]


class RedfishClient:
    """One service's HTTP session and authentication. `get` never sends a credential
    anywhere but the configured host."""

    def __init__(self, config: RedfishConfig, timeout: float, key: str) -> None:
        self.config = config
        self.timeout = timeout
        self.auth = config.auth_method
        self.key = key
        self.http = HttpClient(
            timeout_s=timeout, verify_tls=config.verify_tls, ca_file=config.ca_file,
            headers={"Accept": "application/json", "OData-Version": "4.0"},
            # BMCs are small computers: a few requests at a time.
            limit_per_host=4,
        )
        self._password = config.password.get_secret_value() if config.password else None
        if self._password is not None:
            self.http.redactor.add_basic(config.username or "", self._password)
        self._token: str | None = None
        self._session_path: str | None = None
        self.sessions_path = DEFAULT_SESSIONS
        self._auth_lock = asyncio.Lock()
        self.logins = 0  # for tests and diagnostics

    def _url(self, path: str) -> URL:
        return URL(self.config.url + path, encoded=True)

    def _headers(self, token: str | None, authenticate: bool) -> dict[str, str] | None:
        if not authenticate:
            return None
        if token is not None:
            return {"X-Auth-Token": token}
        if self.auth == "basic" and self.config.username and self._password:
            return {"Authorization": basic_auth(self.config.username, self._password)}
        return None

    async def get(self, path: str, authenticate: bool = True) -> dict[str, Any]:
        """GET one resource as a JSON object. SourceFailure (NotFound on 404) names the path."""
        what = f"GET {path}"
        for attempt in range(2):
            token = None
            if authenticate and self.auth == "session":
                token = self._token or await self._login()
            reply = await fetch(self.http, what, "GET", self._url(path), headers=self._headers(token, authenticate))
            if reply.status == 401 and token is not None and attempt == 0:
                # The session expired (or the BMC dropped it): log in again, once.
                await self._renew(token)
                continue
            break
        if reply.status == 404:
            raise NotFound(f"{what}: HTTP 404 Not Found")
        if reply.status == 401:
            raise SourceFailure(f"{what}: HTTP 401 Unauthorized: check username and password"
                                if self.auth != "none" else f"{what}: HTTP 401 Unauthorized: "
                                "the service needs credentials (username, password)")
        if reply.status >= 400:
            raise http_error(reply, what, self.http)
        data = await reply_json(reply, what)
        if not isinstance(data, dict):
            raise SourceFailure(f"{what}: expected a JSON object, got {type(data).__name__}")
        return data

    async def _login(self) -> str:
        async with self._auth_lock:
            if self._token is not None:
                return self._token
            assert self.config.username is not None and self._password is not None
            path = self.sessions_path
            what = f"POST {path} (session login)"
            credentials = {"UserName": self.config.username, "Password": self._password}
            reply = await fetch(self.http, what, "POST", self._url(path), json_body=credentials)
            if reply.status in (401, 403):
                raise SourceFailure(f"{what}: refused (HTTP {reply.status}): check username and password")
            if reply.status >= 400:
                raise http_error(reply, what, self.http)
            token = reply.headers.get("X-Auth-Token")
            if not token:
                raise SourceFailure(f"{what}: the reply has no X-Auth-Token header")
            self.http.redactor.add(token)
            location = reply.headers.get("Location")
            if not location:
                try:
                    location = link({"s": await reply_json(reply, what)}, "s")
                except SourceFailure:
                    location = None
            self._token = token
            self._session_path = path_of(location) if location else None
            self.logins += 1
            log.info("%s: Redfish session opened", self.key)
            return token

    async def _renew(self, stale: str) -> None:
        async with self._auth_lock:
            if self._token is not None and self._token != stale:
                return  # another request already renewed it
            self._token = None
            self._session_path = None  # an expired session needs no DELETE
        log.info("%s: Redfish session refused (expired?): logging in again", self.key)
        await self._login()

    async def _logout(self) -> None:
        if self._token is None or self._session_path is None:
            return
        token, path = self._token, self._session_path
        self._token = self._session_path = None
        what = f"DELETE {path} (session logout)"
        try:
            reply = await fetch(self.http, what, "DELETE", self._url(path), headers={"X-Auth-Token": token},
                                timeout_s=min(self.timeout, 5.0))
        except SourceFailure as exc:
            log.info("%s: %s", self.key, exc)
            return
        if reply.status >= 400 and reply.status != 404:
            log.info("%s: %s: HTTP %s", self.key, what, reply.status)

    async def close(self) -> None:
        """Delete the Redfish session (BMCs allow only a few at once) and close the client."""
        try:
            await self._logout()
        finally:
            await self.http.close()
