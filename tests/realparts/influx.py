"""A real InfluxDB 1.x (Debian's influxd) for the tests.

`influxdb` (session scope) starts `influxd run -config FILE` with its data, meta and
wal dirs in a temp dir, HTTP and RPC bound to 127.0.0.1 on free ports, and stops it
by process id at the end. `influx_db` (function scope) gives each test a fresh
database on it. `start_influx_server()` starts further servers with other settings
(auth on, a small max-body-size) for the tests that need them.

The helper talks to influxd with urllib, not with greenwatch's own client, so a bug
in the client under test cannot hide itself by also breaking the checks.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from greenwatch.core.influxd import Influxd, InfluxdError, free_port, influxd_binary

__all__ = ["InfluxServer", "free_port", "start_influx_server", "influxdb", "influx_db"]

def _influxd_binary() -> str | None:
    return influxd_binary()


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxServer:
    """One influxd process, its config and directories; restartable on the same port.
    Started and stopped by greenwatch's own launcher (greenwatch/core/influxd.py);
    a failure to start fails the test with influxd's log."""

    def __init__(
        self,
        binary: str,
        base_dir: Path,
        *,
        auth_enabled: bool = False,
        max_body_size: int | None = None,
        admin: tuple[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        # tls: (certificate, private key) PEM files; the certificate also serves
        # as the CA the helper verifies the server with.
        self.tls = tls
        self._daemon = Influxd(base_dir, binary, scheme="https" if tls else "http")
        self.binary = binary
        self.base_dir = base_dir
        self.port = self._daemon.port
        self.rpc_port = self._daemon.rpc_port
        self.url = self._daemon.url
        self._ssl = ssl.create_default_context(cafile=str(tls[0])) if tls else None
        self.auth_enabled = auth_enabled
        # Credentials the helper uses for its own queries when auth is on.
        self.admin = admin
        self.config_path = self._daemon.config_path
        self.log_path = self._daemon.log_path
        extra = f"\n  max-body-size = {max_body_size}" if max_body_size else ""
        if tls:
            extra += (
                f'\n  https-enabled = true\n  https-certificate = "{tls[0]}"'
                f'\n  https-private-key = "{tls[1]}"'
            )
        self._daemon.write_config(auth_enabled, extra)

    @property
    def pid(self) -> int | None:
        return self._daemon.pid

    @property
    def running(self) -> bool:
        return self._daemon.running

    def start(self) -> None:
        """Start influxd (again) with the same config, data and port; wait for /ping."""
        try:
            self._daemon.start(self._ssl)
        except InfluxdError as exc:
            pytest.fail(f"{exc}\nconfig: {self.config_path}", pytrace=False)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop influxd by its pid: SIGTERM, then SIGKILL if it lingers."""
        self._daemon.stop(timeout_s)

    # -- InfluxQL over HTTP, for checks ------------------------------------------

    def query(self, q: str, db: str | None = None, epoch: str | None = None) -> dict[str, Any]:
        """Run InfluxQL (POST /query, so DDL works too); return parsed JSON; raise on
        any HTTP or statement error."""
        form = {"q": q}
        if db:
            form["db"] = db
        if epoch:
            form["epoch"] = epoch
        request = urllib.request.Request(
            self.url + "/query",
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if self.admin:
            token = base64.b64encode(f"{self.admin[0]}:{self.admin[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._ssl) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"influxd query {q!r} failed: HTTP {exc.code}: {exc.read()[:500]!r}") from None
        if data.get("error"):
            raise RuntimeError(f"influxd query {q!r} failed: {data['error']}")
        for result in data.get("results", []):
            if result.get("error"):
                raise RuntimeError(f"influxd query {q!r} failed: {result['error']}")
        return data

    def create_database(self, name: str) -> None:
        self.query(f"CREATE DATABASE {_quote_ident(name)}")

    def drop_database(self, name: str) -> None:
        self.query(f"DROP DATABASE {_quote_ident(name)}")

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """The rows of the first series of a SELECT, as dicts (times in ns)."""
        result = self.query(q, db=db, epoch="ns")["results"][0]
        rows: list[dict[str, Any]] = []
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(series.get("tags") or {})
                rows.append(row)
        return rows

    def count(self, measurement: str, db: str, field: str = "*") -> int:
        """Number of points of `measurement` that carry `field`. With '*', the largest
        per-field count: exact whenever every point has one field in common."""
        selector = "*" if field == "*" else _quote_ident(field)
        result = self.query(f"SELECT COUNT({selector}) FROM {_quote_ident(measurement)}", db=db)["results"][0]
        series = result.get("series")
        if not series:
            return 0
        counts = [v for v in series[0]["values"][0][1:] if isinstance(v, int)]
        return max(counts, default=0)


def start_influx_server(base_dir: Path, **options: Any) -> InfluxServer:
    """Start an influxd in `base_dir` (options: auth_enabled, max_body_size, admin, tls).
    Fails the test, never skips, when influxd is not installed."""
    binary = _influxd_binary()
    if binary is None:
        pytest.fail(
            "influxd not found (GREENWATCH_INFLUXD="
            f"{os.environ.get('GREENWATCH_INFLUXD', '<unset>')}, PATH, /usr/bin): install Debian's "
            "'influxdb' package (apt-get install influxdb) or set GREENWATCH_INFLUXD to the binary",
            pytrace=False,
        )
    server = InfluxServer(binary, base_dir, **options)
    server.start()
    return server


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """A real influxd for the whole session, on 127.0.0.1 with free ports."""
    server = start_influx_server(tmp_path_factory.mktemp("influxdb"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def influx_db(influxdb: InfluxServer) -> Iterator[str]:
    """A fresh database on the session influxd, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    if not influxdb.running:  # an earlier test stopped it and failed before restarting
        influxdb.start()
    influxdb.create_database(name)
    try:
        yield name
    finally:
        if not influxdb.running:
            influxdb.start()
        influxdb.drop_database(name)
