"""Talking to one plug or meter: the HTTP session (greenwatch.core.http) with the
authentication its type uses, and GET of one JSON reply."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from yarl import URL

from collector.config import HttpPowerConfig
from greenwatch.core.http import HttpClient, Redactor, basic_auth

from ..http_common import SourceFailure, fetch, http_error, reply_json


def _middlewares(cfg: HttpPowerConfig) -> tuple[Any, ...]:
    if cfg.type != "shelly" or cfg.password is None:
        return ()
    try:
        from aiohttp import DigestAuthMiddleware
    except ImportError:  # aiohttp < 3.12
        raise SourceFailure("Shelly digest authentication needs aiohttp 3.12 or later") from None
    return (DigestAuthMiddleware(cfg.username or "admin", cfg.password.get_secret_value()),)


class PlugClient:
    """One device's HTTP client. Shelly: digest auth; tasmota: `user`/`password`
    query parameters (added by the caller, registered here); json: a bearer token or
    basic auth. Every secret it sends is registered with `http.redactor`."""

    def __init__(self, cfg: HttpPowerConfig, timeout: float) -> None:
        self.cfg = cfg
        self.timeout = timeout
        secret_headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
        if cfg.type == "json":
            if cfg.token is not None:
                secret_headers["Authorization"] = f"Bearer {cfg.token.get_secret_value()}"
            elif cfg.username is not None and cfg.password is not None:
                secret_headers["Authorization"] = basic_auth(cfg.username, cfg.password.get_secret_value())
        self._secret_headers = secret_headers
        self.redactor = Redactor(secret_headers.values())
        for secret in (cfg.password, cfg.token):
            if secret is not None:
                self.redactor.add(secret.get_secret_value())
        if cfg.password is not None:
            self.redactor.add_basic(cfg.username or "admin", cfg.password.get_secret_value())
        self._http: HttpClient | None = None

    @property
    def http(self) -> HttpClient:
        # Made on first use: a Shelly's digest middleware may fail (old aiohttp), and
        # that is the poll's error, not the constructor's.
        if self._http is None:
            cfg = self.cfg
            self._http = HttpClient(
                timeout_s=self.timeout, verify_tls=cfg.verify_tls, ca_file=cfg.ca_file,
                headers={"Accept": "application/json"}, secret_headers=self._secret_headers,
                limit_per_host=4, middlewares=_middlewares(cfg),
            )
            self._http.redactor.merge(self.redactor)
        return self._http

    async def get_json(self, what: str, url: str, params: dict[str, str] | None = None) -> Any:
        """GET and parse; `what` names the request in messages (no credentials in it)."""
        target = URL(url)
        if params:
            # Spaces as %20, not '+': what Tasmota's documentation writes (cmnd=Status%208).
            query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
            target = URL(f"{url}?{query}", encoded=True)
        http = self.http
        reply = await fetch(http, what, "GET", target)
        if reply.status >= 400:
            raise http_error(reply, what, http)
        return await reply_json(reply, what)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
