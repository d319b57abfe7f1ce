"""Start a private InfluxDB 1.x (Debian's `influxd`) in a temp dir, for `greenwatch
rules test` and the tests: HTTP and RPC on 127.0.0.1 free ports, ready when /ping
answers 204, stopped by its process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_TIMEOUT_S = 15.0


class InfluxdError(Exception):
    """influxd is missing, or did not start."""


def influxd_binary() -> str | None:
    """GREENWATCH_INFLUXD if set, else influxd on PATH or in /usr/bin (Debian's)."""
    candidate = os.environ.get("GREENWATCH_INFLUXD") or shutil.which("influxd") or "/usr/bin/influxd"
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_text(base_dir: Path, port: int, rpc_port: int, auth_enabled: bool = False, http_extra: str = "") -> str:
    """An influxd config with everything under `base_dir`, quiet, bound to loopback."""
    return f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{base_dir / 'meta'}"
  logging-enabled = false

[data]
  dir = "{base_dir / 'data'}"
  wal-dir = "{base_dir / 'wal'}"
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
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {'true' if auth_enabled else 'false'}
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false{http_extra}

[logging]
  level = "warn"
  suppress-logo = true
"""


class Influxd:
    """One influxd process on its own config, data and port; restartable."""

    def __init__(self, base_dir: Path, binary: str | None = None, scheme: str = "http") -> None:
        found = binary or influxd_binary()
        if found is None:
            raise InfluxdError(
                "influxd not found (GREENWATCH_INFLUXD, PATH, /usr/bin): install Debian's 'influxdb' "
                "package (apt-get install influxdb), set GREENWATCH_INFLUXD, or give --influx URL"
            )
        self.binary = found
        self.base_dir = base_dir
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.config_path = base_dir / "influxdb.conf"
        self.log_path = base_dir / "influxd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        for sub in ("meta", "data", "wal"):
            (base_dir / sub).mkdir(parents=True, exist_ok=True)

    def write_config(self, auth_enabled: bool = False, http_extra: str = "") -> None:
        self.config_path.write_text(config_text(self.base_dir, self.port, self.rpc_port, auth_enabled, http_extra))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, ssl_context: object = None) -> None:
        """Start influxd and wait until /ping answers 204; InfluxdError if it does not."""
        if self.running:
            return
        if not self.config_path.exists():
            self.write_config()
        # INFLUXDB_* variables override the config file in influxd: keep them out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "run", "-config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,  # a Ctrl-C in the terminal does not hit it first
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise InfluxdError(f"influxd exited with code {self._proc.returncode} while starting\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1, context=ssl_context) as response:  # type: ignore[arg-type]
                    if response.status == 204:
                        return
                    last_error = f"/ping answered {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.05)
        self.stop()
        raise InfluxdError(f"influxd did not answer /ping with 204 within {READY_TIMEOUT_S:g} s "
                           f"({last_error})\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return f"--- {self.log_path} (tail) ---\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no influxd log)"

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

    def __enter__(self) -> Influxd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
