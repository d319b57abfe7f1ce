"""Helpers for tests that run the `greenwatch` command against real parts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

RECORDINGS = Path(__file__).parent / "recordings"


def snmprec(path: Path) -> dict[str, tuple[str, str]]:
    """A recording's raw values: {oid: (type tag, value)}."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            oid, tag, value = line.split("|", 2)
            out[oid] = (tag, value)
    return out


def write_config(tmp_path: Path, influx_url: str, database: str, sites_yaml: str,
                 extra: str = "", interval: str = "60s", spool_max: str | None = None) -> Path:
    path = tmp_path / "greenwatch.yaml"
    path.write_text(
        f"influxdb:\n  url: {influx_url}\n  database: {database}\n"
        f"defaults:\n  interval: {interval}\n  timeout: 1s\n  retries: 0\n"
        f"spool:\n  path: {tmp_path / 'spool.db'}\n"
        + (f"  max_size: {spool_max}\n" if spool_max else "")
        + textwrap.dedent(extra)
        + "sites:\n"
        + textwrap.indent(textwrap.dedent(sites_yaml), "  ")
    )
    return path


def greenwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "greenwatch.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


class Running:
    """`greenwatch run` in the background, its stderr in a file."""

    def __init__(self, config: Path, log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "greenwatch.cli", "--log-level", "DEBUG", "run", "--config", str(config), *extra],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # leave nothing running behind a failed test
            self.proc.wait(timeout=10)
            raise AssertionError(f"greenwatch did not stop within {timeout} s of SIGTERM; log: {self.log_path}")
        finally:
            self._log.close()

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def accepted(self) -> int:
        """Points the collector logged as durably accepted."""
        return sum(int(n) for n in re.findall(r"/\S+: (\d+) points accepted$", self.log(), re.MULTILINE))

    def wait_for(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log()):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"greenwatch exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not logged within {timeout}s:\n{self.log()[-3000:]}")
