"""`greenwatch demo` as a user runs it: a day of history, the weekly report, the
dashboards published (to a stand-in holding Grafana's API contract), then live polling of
the simulated estate (real influxd, snmpsim agents, Redfish and plug HTTP servers) with
the simulator's readings; Ctrl-C (SIGINT), or SIGTERM earlier on, stops it with exit 0
and leaves none of its processes."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from grafana_standin import GrafanaStandin

from greenwatch.config import load_config
from simulate.live.readings import LiveEstate

OPEN_TIMEOUT_S = 240.0
GRAFANA_TOKEN = "glsa_demo_standin_0123456789abcdef"


def free_port() -> int:
    """A free port for the demo's InfluxDB: tests never take the usual 8086 (a user's, or
    another test's demo)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux /proc), children and their children."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def query(url: str, q: str) -> list[dict]:
    params = urllib.parse.urlencode({"db": "greenwatch", "q": q, "epoch": "s"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as reply:
        result = json.load(reply)["results"][0]
    return result.get("series", [])


def read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float, lines: list[str]) -> None:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not sel.select(timeout=1):
            assert proc.poll() is None, "".join(lines)
            continue
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise AssertionError("the demo ended early:\n" + "".join(lines))
        lines.append(line)
        if marker in line:
            return
    raise AssertionError(f"no {marker!r} within {timeout_s:g} s:\n" + "".join(lines))


def test_demo_runs_polls_live_and_ctrl_c_stops_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "demo"
    # A stand-in holding Grafana's API contract (no Grafana runs here): the demo publishes to it.
    grafana = GrafanaStandin(GRAFANA_TOKEN)
    grafana.start()
    monkeypatch.setenv("GRAFANA_TOKEN", GRAFANA_TOKEN)  # the demo's config names the variable; so do we, to load it
    env = dict(os.environ, COLUMNS="200", GRAFANA_URL=grafana.url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenwatch.cli", "demo", "--dir", str(data), "--days", "1", "--interval", "5",
         "--influx-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    lines: list[str] = []
    children: set[int] = set()
    try:
        read_until(proc, "Ctrl-C stops everything", OPEN_TIMEOUT_S, lines)
        text = "".join(lines)
        started = time.time()
        children = descendants(proc.pid)
        assert "open these:" in text
        report = Path(re.search(r"report written: (\S+)", text).group(1))
        assert report.is_file() and report.with_suffix(".pdf").is_file()
        assert f"report:      {report}" in text
        influx = re.search(r"InfluxDB:    (http://127\.0\.0\.1:\d+)", text).group(1)
        assert re.search(r"status page: http://127\.0\.0\.1:\d+/healthz", text)
        built = {json.loads(p.read_text())["uid"] for p in (data / "dashboards").glob("*.json")}
        assert len(built) >= 6
        # Published: every dashboard built, in greenwatch's folder; the token never printed.
        assert set(grafana.state.dashboards) == built and "greenwatch" in grafana.state.folders
        assert all(f"created: dashboard {uid} " in text for uid in built) and GRAFANA_TOKEN not in text
        assert GRAFANA_TOKEN not in (data / "greenwatch.yaml").read_text()
        # The history went in, rolled up and judged: a planted night-owl PC was found.
        assert "rules as of" in text and "pc-on-overnight:office-1/pc-03" in text
        # influxd, the live devices and the snmpsim agents below them, all started by the demo.
        names = {Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode() for p in children
                 if alive(p)}
        assert any("influxd" in n for n in names) and any("simulate.live" in n for n in names)
        assert any("snmpsim-command-responder" in n for n in names)

        # A first live poll of each protocol, written to InfluxDB after the demo said "open these".
        wanted = {"ups-2": "snmp", "srv-b1-02": "redfish", "plug-kitchen": "shelly", "dc-meter": "json"}
        deadline = time.monotonic() + 60
        up: dict[str, float] = {}
        while time.monotonic() < deadline and set(up) != set(wanted):
            for series in query(influx, f"SELECT last(up) FROM poll WHERE time >= {int(started) - 1}s GROUP BY device"):
                if series["tags"]["device"] in wanted and series["values"][0][1] == 1:
                    up[series["tags"]["device"]] = series["values"][0][0]
            time.sleep(1)
        assert set(up) == set(wanted), (up, "".join(lines))

        # What the live devices answer is the simulator's reading: the same minute reads the
        # same in every process. Redfish answers for the minute of the request; an SNMP
        # agent's file is rewritten each minute, so it holds this minute's or the last one's.
        estate = LiveEstate(load_config(data / "greenwatch.yaml"))
        since = f"time >= {int(started) - 1}s"
        (at, watts), = [s["values"][0] for s in query(influx, f"SELECT last(watts) FROM power WHERE device = 'srv-b1-02' AND {since}")]
        # (at is the poll's start, in whole seconds: its request may fall in the next minute)
        assert watts in {round(estate.watts("dc-london", "srv-b1-02", at + lag), 1) for lag in (0, 2)}, watts
        (at, watts), = [s["values"][0] for s in query(
            influx, f"SELECT last(watts) FROM power WHERE device = 'ups-2' AND scope = 'output' AND {since}")]
        assert watts in {round(estate.watts("dc-london", "ups-2", at - lag)) for lag in (-2, 0, 60)}, watts
        assert watts > 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        grafana.stop()
    lines.append(rest)
    assert proc.returncode == 0, "".join(lines)
    assert "demo stopped" in rest
    assert children, "no child processes seen"
    left = [p for p in children if alive(p)]
    assert left == [], f"still running after Ctrl-C: {left}"


def test_sigterm_while_the_history_is_written_leaves_nothing_running(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenwatch.cli", "demo", "--dir", str(tmp_path / "demo"), "--days", "3",
         "--influx-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, COLUMNS="200"))
    lines: list[str] = []
    try:
        read_until(proc, "history:", OPEN_TIMEOUT_S, lines)
        children = descendants(proc.pid)
        assert len([p for p in children if alive(p)]) >= 3  # influxd, the live devices, an snmpsim agent
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    text = "".join(lines) + rest
    assert proc.returncode == 0, text
    assert "report written" not in text and "demo stopped" in text
    assert [p for p in children if alive(p)] == []
