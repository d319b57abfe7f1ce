"""The demo's ports: a port held by another program is never used as the demo's own,
and `demo/run.sh` stops with a clear message (before starting anything) when told to
use one. Real sockets on 127.0.0.1; the demo's helper and script run as users run them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ESTATE = ROOT / "demo" / "estate.py"


def estate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ESTATE), *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def held_tcp() -> Iterator[int]:
    """A port some other program listens on (as a foreign InfluxDB would)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def held_udp() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_port_given_but_held_elsewhere_is_refused_by_name(held_tcp: int, held_udp: int) -> None:
    result = estate("ports", "--influx", str(held_tcp))
    assert result.returncode == 2 and result.stdout == ""
    assert f"tcp port {held_tcp} on 127.0.0.1 (INFLUX_PORT) is in use by another program" in result.stderr
    result = estate("ports", "--snmp", str(held_udp))
    assert result.returncode == 2
    assert f"udp port {held_udp} on 127.0.0.1 (SNMP_PORT) is in use" in result.stderr


def test_free_ports_given_are_used_and_none_of_them_is_held(held_tcp: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    result = estate("ports", "--influx", str(free), "--snmp", str(free))
    assert result.returncode == 0, result.stderr
    influx, rpc, snmp = (int(p) for p in result.stdout.split())
    assert (influx, snmp) == (free, free) and rpc not in (influx, held_tcp)
    for port in (influx, rpc):  # the demo's influxd can bind both
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_owns_tells_our_listener_from_someone_elses(held_tcp: int, held_udp: int) -> None:
    assert estate("owns", str(os.getpid()), "tcp", str(held_tcp)).returncode == 0
    assert estate("owns", str(os.getpid()), "udp", str(held_udp)).returncode == 0
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert estate("owns", str(other.pid), "tcp", str(held_tcp)).returncode == 1
    finally:
        other.kill()
        other.wait()
    assert estate("owns", str(os.getpid()), "udp", str(held_tcp)).returncode == 1  # wrong protocol


def test_run_sh_stops_before_starting_anything_when_its_influxdb_port_is_taken(held_tcp: int) -> None:
    env = dict(os.environ, INFLUX_PORT=str(held_tcp))
    result = subprocess.run(["bash", str(ROOT / "demo" / "run.sh")], capture_output=True, text=True,
                            env=env, timeout=60, check=False)
    assert result.returncode == 2
    assert f"port {held_tcp} on 127.0.0.1 (INFLUX_PORT) is in use by another program" in result.stderr
    assert result.stdout == ""  # nothing installed, started or polled


def test_a_live_device_port_taken_meanwhile_is_named_so_the_demo_chooses_again(tmp_path):
    # The demo chooses free ports for the live devices, then starts them; here another
    # program takes the HTTP devices' port in between. The live devices must fail on it
    # and the demo must see that it was a taken port (it then lays the estate out again).
    from greenwatch.cli_demo import PortTaken, _start_live
    from simulate.live.layout import LAYOUT, Layout, write_live_estate

    write_live_estate(tmp_path, "http://127.0.0.1:1")
    layout = Layout.load(tmp_path / LAYOUT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", layout.http_port))
        sock.listen()
        with pytest.raises(PortTaken, match="address already in use"):
            live = _start_live(tmp_path)
            live.kill()  # not reached unless the port was not taken after all
