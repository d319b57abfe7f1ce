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
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["InfluxServer", "free_port", "start_influx_server", "influxdb", "influx_db"]

READY_TIMEOUT_S = 15.0


def _influxd_binary() -> str | None:
    """GREENWATCH_INFLUXD if set, else influxd on PATH or in /usr/bin (Debian's)."""
    candidate = os.environ.get("GREENWATCH_INFLUXD") or shutil.which("influxd") or "/usr/bin/influxd"
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxServer:
    """One influxd process, its config and directories; restartable on the same port."""

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
        self.binary = binary
        self.base_dir = base_dir
        self.port = free_port()
        self.rpc_port = free_port()
        # tls: (certificate, private key) PEM files; the certificate also serves
        # as the CA the helper verifies the server with.
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._ssl = ssl.create_default_context(cafile=str(tls[0])) if tls else None
        self.auth_enabled = auth_enabled
        # Credentials the helper uses for its own queries when auth is on.
        self.admin = admin
        self.config_path = base_dir / "influxdb.conf"
        self.log_path = base_dir / "influxd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config(max_body_size)

    def _write_config(self, max_body_size: int | None) -> None:
        for sub in ("meta", "data", "wal"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        extra = f"\n  max-body-size = {max_body_size}" if max_body_size else ""
        if self.tls:
            extra += (
                f'\n  https-enabled = true\n  https-certificate = "{self.tls[0]}"'
                f'\n  https-private-key = "{self.tls[1]}"'
            )
        self.config_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{self.base_dir / 'meta'}"
  logging-enabled = false

[data]
  dir = "{self.base_dir / 'data'}"
  wal-dir = "{self.base_dir / 'wal'}"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {'true' if self.auth_enabled else 'false'}
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false{extra}

[logging]
  level = "warn"
  suppress-logo = true
"""
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start influxd (again) with the same config, data and port; wait for /ping."""
        if self.running:
            return
        # INFLUXDB_* variables override the config file in influxd: keep them out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        log = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "run", "-config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a Ctrl-C in pytest does not hit it first
            )
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._fail(f"influxd exited with code {self._proc.returncode} while starting")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1, context=self._ssl) as response:
                    if response.status == 204:
                        return
                    last_error = f"/ping answered {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.05)
        self.stop()
        self._fail(f"influxd did not answer /ping with 204 within {READY_TIMEOUT_S:g} s ({last_error})")

    def _fail(self, why: str) -> None:
        try:
            log = self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            log = "(no log)"
        pytest.fail(f"{why}\nconfig: {self.config_path}\n--- influxd log (tail) ---\n{log}", pytrace=False)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop influxd by its pid: SIGTERM, then SIGKILL if it lingers."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._proc = None

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
