#!/usr/bin/env python3
"""SNMP throughput: greenwatch against its peers, on the same OIDs, in the same run.

Starts a real net-snmp `snmpd` on 127.0.0.1 listening on N free UDP ports (N simulated
devices, one agent process), a real `influxd`, and `prometheus-snmp-exporter`, then
reads the same fixed set of table columns with every tool:

  snmpbulkwalk        net-snmp's C tool, one process per table per device poll
  pysnmp bare         pysnmp 7 asyncio bulk_walk_cmd, lookupMib=False (our engine's floor)
  engine <name>       greenwatch's SnmpEngine.walk (pysnmp, gufo) on the same columns
  e2e <name>          SnmpSource.poll through a profile + Collector + Sink: spool
                      (SQLite, fsync) and a real InfluxDB, for each engine
  snmp_exporter       Prometheus' exporter with a hand-written snmp.yml for the same
                      columns, scraped N at a time

and prints OIDs, wall time, OIDs/s, client CPU seconds, OIDs per CPU-second, and the
ratio of OIDs per CPU-second against snmpbulkwalk, bare pysnmp and the exporter.
Client CPU only: snmpd's own CPU is shared by all and shown apart ("agent CPU s").

    python3 bench/snmp_throughput.py                  # 20 devices, 2 rounds
    python3 bench/snmp_throughput.py --devices 50 --rounds 2 --engine gufo

bench/README.md says what each row means. Each Python row runs in its own child
process (this script with --worker), which measures its own RUSAGE_SELF around the
timed rounds (after imports and an untimed warm-up poll).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The fixed workload: whole rows of these tables (every column the agent has), walked
# as table entries. IF-MIB and HOST-RESOURCES-MIB as net-snmp serves them on this host.
TABLES: dict[str, str] = {
    "ifEntry": "1.3.6.1.2.1.2.2.1",
    "ifXEntry": "1.3.6.1.2.1.31.1.1.1",
    "hrStorageEntry": "1.3.6.1.2.1.25.2.3.1",
    "hrDeviceEntry": "1.3.6.1.2.1.25.3.2.1",
    "hrSWRunEntry": "1.3.6.1.2.1.25.4.2.1",
    "hrSWRunPerfEntry": "1.3.6.1.2.1.25.5.1.1",
    "hrSWInstalledEntry": "1.3.6.1.2.1.25.6.3.1",
}

# Column names (from the MIB texts), for readable profile symbols and exporter metrics.
COLUMN_NAMES: dict[str, list[str]] = {
    "ifEntry": ["ifIndex", "ifDescr", "ifType", "ifMtu", "ifSpeed", "ifPhysAddress", "ifAdminStatus",
                "ifOperStatus", "ifLastChange", "ifInOctets", "ifInUcastPkts", "ifInNUcastPkts",
                "ifInDiscards", "ifInErrors", "ifInUnknownProtos", "ifOutOctets", "ifOutUcastPkts",
                "ifOutNUcastPkts", "ifOutDiscards", "ifOutErrors", "ifOutQLen", "ifSpecific"],
    "ifXEntry": ["ifName", "ifInMulticastPkts", "ifInBroadcastPkts", "ifOutMulticastPkts",
                 "ifOutBroadcastPkts", "ifHCInOctets", "ifHCInUcastPkts", "ifHCInMulticastPkts",
                 "ifHCInBroadcastPkts", "ifHCOutOctets", "ifHCOutUcastPkts", "ifHCOutMulticastPkts",
                 "ifHCOutBroadcastPkts", "ifLinkUpDownTrapEnable", "ifHighSpeed", "ifPromiscuousMode",
                 "ifConnectorPresent", "ifAlias", "ifCounterDiscontinuityTime"],
    "hrStorageEntry": ["hrStorageIndex", "hrStorageType", "hrStorageDescr", "hrStorageAllocationUnits",
                       "hrStorageSize", "hrStorageUsed", "hrStorageAllocationFailures"],
    "hrDeviceEntry": ["hrDeviceIndex", "hrDeviceType", "hrDeviceDescr", "hrDeviceID", "hrDeviceStatus",
                      "hrDeviceErrors"],
    "hrSWRunEntry": ["hrSWRunIndex", "hrSWRunName", "hrSWRunID", "hrSWRunPath", "hrSWRunParameters",
                     "hrSWRunType", "hrSWRunStatus"],
    "hrSWRunPerfEntry": ["hrSWRunPerfCPU", "hrSWRunPerfMem"],
    "hrSWInstalledEntry": ["hrSWInstalledIndex", "hrSWInstalledName", "hrSWInstalledID",
                           "hrSWInstalledType", "hrSWInstalledDate"],
}

NUMERIC = ("Integer", "Gauge32", "Counter32", "Counter64", "TimeTicks")

# Every (measurement, field) the schema has: the bench profile gives each numeric
# column of a table its own one, so every walked value ends up in a field of a point.
SCHEMA_FIELDS: list[tuple[str, str]] = [
    ("port", "oper_up"), ("port", "in_octets"), ("port", "out_octets"), ("port", "speed_bps"),
    ("power", "watts"), ("power", "energy_kwh"), ("power", "va"), ("power", "amps"),
    ("power", "volts"), ("power", "power_factor"),
    ("ups", "load_percent"), ("ups", "efficiency_percent"), ("ups", "battery_percent"),
    ("ups", "runtime_s"), ("ups", "on_battery"),
    ("host", "cpu_load_percent"), ("host", "uptime_s"),
    ("printer", "pages"), ("printer", "status"),
    ("environment", "temperature_c"), ("environment", "humidity_percent"),
]

PROFILE_NAME = "bench-netsnmp"
EXPORTER_MODULE = "bench"
COMMUNITY = "public"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- small helpers ----------------------------------------------------------------------


def free_udp_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, from /proc/PID/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def udp_rcvbuf_errors() -> int:
    """UDP datagrams the kernel dropped because a socket's receive buffer was full
    (system-wide, /proc/net/snmp): a dropped reply is a client timeout and retry."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return 0


def rusage_cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class Processes:
    """Everything this run starts, stopped by pid at the end (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def add(self, name: str, proc: subprocess.Popen) -> subprocess.Popen:
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
                except ProcessLookupError:
                    pass
        self.procs.clear()


# -- the parts: snmpd, influxd, exporter ------------------------------------------------


def start_snmpd(procs: Processes, tmp: Path, ports: list[int]) -> subprocess.Popen:
    binary = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not os.access(binary, os.X_OK):
        sys.exit("snmpd not found: apt-get install snmpd")
    conf = tmp / "snmpd.conf"
    persist = tmp / "snmpd-persist"
    persist.mkdir()
    addresses = ",".join(f"udp:127.0.0.1:{p}" for p in ports)
    conf.write_text(f"agentaddress {addresses}\nrocommunity {COMMUNITY} 127.0.0.1\n")
    log = open(tmp / "snmpd.log", "ab")
    proc = procs.add("snmpd", subprocess.Popen(
        [binary, "-f", "-C", "-c", str(conf), "-Lf", str(tmp / "snmpd.log"), "-I", "-smux",
         f"--persistentDir={persist}", "-M", "/nonexistent", "-m", ""],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MIBS": "", "SNMPCONFPATH": str(tmp)},
    ))
    log.close()
    # Ready when it answers on the first and the last port.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"snmpd exited with {proc.returncode}: {(tmp / 'snmpd.log').read_text()[-2000:]}")
        ok = all(
            subprocess.run(_snmpbulkwalk_args(p, "1.3.6.1.2.1.1.3"), capture_output=True,
                           timeout=15).stdout.startswith(b".")
            for p in (ports[0], ports[-1])
        )
        if ok:
            return proc
        time.sleep(0.1)
    sys.exit("snmpd did not answer within 15 s")


def start_influxd(procs: Processes, tmp: Path) -> Any:
    """A real influxd through the tests' helper (tests/realparts/influx.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from realparts.influx import InfluxServer, _influxd_binary  # noqa: PLC0415

    binary = _influxd_binary()
    if binary is None:
        sys.exit("influxd not found: apt-get install influxdb")
    base = tmp / "influxdb"
    base.mkdir()
    server = InfluxServer(binary, base)
    server.start()
    procs.add("influxd", server._daemon._proc)  # stopped with the rest, by pid
    server.create_database("bench")
    return server


def start_exporter(procs: Processes, tmp: Path, config: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("prometheus-snmp-exporter") or "/usr/bin/prometheus-snmp-exporter"
    if not os.access(binary, os.X_OK):
        sys.exit("prometheus-snmp-exporter not found: apt-get install prometheus-snmp-exporter")
    check = subprocess.run([binary, f"--config.file={config}", "--dry-run"], capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"snmp_exporter refused {config}: {check.stdout}{check.stderr}")
    port = free_tcp_port()
    log = open(tmp / "exporter.log", "ab")
    proc = procs.add("snmp_exporter", subprocess.Popen(
        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    ))
    log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"snmp_exporter exited: {(tmp / 'exporter.log').read_text()[-2000:]}")
            time.sleep(0.05)
    sys.exit("snmp_exporter did not answer within 15 s")


# -- the workload: which columns, of which types ----------------------------------------


def discover(port: int, max_repetitions: int) -> dict[str, dict[str, Any]]:
    """Walk each table once with greenwatch's pysnmp engine: its columns and their
    SMI types (the workload every tool then reads)."""
    from collector.snmp.engine import Target
    from collector.snmp.pysnmp_engine import PysnmpEngine

    async def run() -> dict[str, dict[str, Any]]:
        engine = PysnmpEngine()
        target = Target("127.0.0.1", port, "2c", community=COMMUNITY, timeout=5, retries=1,
                        max_repetitions=max_repetitions)
        out: dict[str, dict[str, Any]] = {}
        try:
            for table, entry in TABLES.items():
                rows = (await engine.walk(target, [entry]))[entry]
                columns: dict[str, dict[str, Any]] = {}
                for suffix, var in rows.items():
                    col, _, _index = suffix.partition(".")
                    c = columns.setdefault(col, {"types": set(), "rows": 0, "printable": True})
                    c["types"].add(var.type)
                    c["rows"] += 1
                    if isinstance(var.value, bytes) and not _printable(var.value):
                        c["printable"] = False
                out[table] = {
                    "entry": entry,
                    "oids": len(rows),
                    "columns": {
                        f"{entry}.{col}": {
                            "n": int(col),
                            "type": sorted(c["types"])[0] if len(c["types"]) == 1 else "mixed",
                            "rows": c["rows"],
                            "printable": c["printable"],
                        }
                        for col, c in sorted(columns.items(), key=lambda kv: int(kv[0]))
                    },
                }
        finally:
            await engine.close()
        return out

    return asyncio.run(run())


def _printable(value: bytes) -> bool:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t" for ch in text)


def column_name(table: str, n: int) -> str:
    names = COLUMN_NAMES.get(table, [])
    return names[n - 1] if 0 < n <= len(names) else f"{table}Col{n}"


def write_profile(workload: dict[str, dict[str, Any]], folder: Path) -> Path:
    """A greenwatch profile reading every column of every table: each numeric column
    feeds its own schema field, every other column is a tag. Field meanings are not
    real (a process's memory is not watts): the point is that every walked value goes
    through the reader, the schema and the line protocol, as in a real profile."""
    import yaml

    metrics = []
    for table, info in workload.items():
        symbols, tags = [], []
        slot = 0
        for oid, col in info["columns"].items():
            name = column_name(table, col["n"])
            if col["type"] in NUMERIC:
                measurement, field = SCHEMA_FIELDS[slot % len(SCHEMA_FIELDS)]
                slot += 1
                symbols.append({"OID": oid, "name": name, "field": field, "measurement": measurement})
            else:
                tags.append({"tag": name, "column": {"OID": oid, "name": name}})
        metrics.append({
            "MIB": "bench",
            "measurement": symbols[0]["measurement"],
            "table": {"OID": info["entry"].rsplit(".", 1)[0], "name": table.replace("Entry", "Table")},
            "scope": table.replace("Entry", ""),
            "symbols": symbols,
            "metric_tags": tags,
        })
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{PROFILE_NAME}.yaml"
    path.write_text(yaml.safe_dump({
        "description": "bench: every column of the snmp_throughput tables (generated)",
        "kind": "host",
        "metrics": metrics,
    }, sort_keys=False))
    return path


def write_exporter_config(workload: dict[str, dict[str, Any]], path: Path, max_repetitions: int) -> Path:
    """snmp.yml for snmp_exporter 0.21 (module-level auth, no generator): walk the same
    table entries; one metric per column, indexed by the table's integer index."""
    import yaml

    metrics = []
    for table, info in workload.items():
        for oid, col in info["columns"].items():
            t = col["type"]
            if t in ("Counter32", "Counter64"):
                kind = "counter"
            elif t in NUMERIC:
                kind = "gauge"
            elif t == "OctetString" and not col["printable"]:
                kind = "OctetString"
            else:
                kind = "DisplayString"  # text, and OBJECT IDENTIFIER values
            metrics.append({
                "name": f"bench_{column_name(table, col['n'])}",
                "oid": oid,
                "type": kind,
                "help": f"{table} column {col['n']} - {oid}",
                "indexes": [{"labelname": "index", "type": "gauge"}],
            })
    path.write_text(yaml.safe_dump({
        EXPORTER_MODULE: {
            "walk": [info["entry"] for info in workload.values()],
            "metrics": metrics,
            "version": 2,
            "max_repetitions": max_repetitions,
            "retries": 1,
            "timeout": "5s",
            "auth": {"community": COMMUNITY},
        }
    }, sort_keys=False))
    return path


# -- row 1: snmpbulkwalk ------------------------------------------------------------------


def _snmpbulkwalk_args(port: int, oid: str, max_repetitions: int = 25) -> list[str]:
    # -m "": load no MIB modules (numeric output, -On); -Cr: GETBULK max-repetitions.
    return [shutil.which("snmpbulkwalk") or "/usr/bin/snmpbulkwalk", "-m", "", "-v2c", "-c", COMMUNITY,
            "-On", f"-Cr{max_repetitions}", "-t", "5", "-r", "1", f"127.0.0.1:{port}", oid]


def bench_snmpbulkwalk(ports: list[int], entries: list[str], rounds: int, max_repetitions: int,
                       snmpd_pid: int, oid_override: list[str] | None = None) -> dict[str, Any]:
    """N threads, one per device; each runs one snmpbulkwalk per table per round.
    CPU: RUSAGE_CHILDREN (the walk processes only: the long-running parts are not
    reaped until the end)."""
    env = {**os.environ, "MIBS": ""}
    oids = oid_override or entries
    lock = threading.Lock()
    count = [0]
    procs = [0]

    def device(port: int, n_rounds: int) -> None:
        got = 0
        for _ in range(n_rounds):
            for oid in oids:
                out = subprocess.run(_snmpbulkwalk_args(port, oid, max_repetitions), capture_output=True,
                                     env=env, timeout=120)
                if out.returncode != 0:
                    raise RuntimeError(f"snmpbulkwalk failed: {out.stderr.decode()[:500]}")
                got += sum(1 for line in out.stdout.split(b"\n") if line.startswith(b".1."))
        with lock:
            count[0] += got
            procs[0] += n_rounds * len(oids)

    def run(n_rounds: int) -> None:
        with ThreadPoolExecutor(len(ports)) as pool:
            for f in [pool.submit(device, p, n_rounds) for p in ports]:
                f.result()

    run(1)  # warm-up: agent caches, page cache
    count[0] = procs[0] = 0
    drops0 = udp_rcvbuf_errors()
    agent0, cpu0, t0 = proc_cpu_s(snmpd_pid), rusage_cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    run(rounds)
    wall = time.perf_counter() - t0
    cpu = rusage_cpu(resource.RUSAGE_CHILDREN) - cpu0
    return {"oids": count[0], "wall": wall, "cpu": cpu, "agent_cpu": proc_cpu_s(snmpd_pid) - agent0,
            "udp_drops": udp_rcvbuf_errors() - drops0, "processes": procs[0]}


# -- row 6: snmp_exporter --------------------------------------------------------------------


_PDUS = re.compile(rb"^snmp_scrape_pdus_returned(?:\{[^}]*\})? (\S+)$", re.M)


def bench_exporter(exporter_pid: int, exporter_port: int, ports: list[int], rounds: int,
                   snmpd_pid: int) -> dict[str, Any]:
    """N threads, one per device, each scraping /snmp for its device once per round.
    CPU: the exporter process's utime+stime from /proc."""
    lock = threading.Lock()
    totals = {"oids": 0, "series": 0}

    def device(port: int, n_rounds: int) -> None:
        url = f"http://127.0.0.1:{exporter_port}/snmp?target=127.0.0.1:{port}&module={EXPORTER_MODULE}"
        oids = series = 0
        for _ in range(n_rounds):
            with urllib.request.urlopen(url, timeout=120) as resp:
                body = resp.read()
            m = _PDUS.search(body)
            if m is None:
                raise RuntimeError(f"exporter answered without snmp_scrape_pdus_returned: {body[:500]!r}")
            oids += int(float(m.group(1)))
            series += sum(1 for line in body.split(b"\n") if line.startswith(b"bench_"))
        with lock:
            totals["oids"] += oids
            totals["series"] += series

    def run(n_rounds: int) -> None:
        with ThreadPoolExecutor(len(ports)) as pool:
            for f in [pool.submit(device, p, n_rounds) for p in ports]:
                f.result()

    run(1)
    totals.update(oids=0, series=0)
    drops0 = udp_rcvbuf_errors()
    agent0, cpu0, t0 = proc_cpu_s(snmpd_pid), proc_cpu_s(exporter_pid), time.perf_counter()
    run(rounds)
    wall = time.perf_counter() - t0
    return {"oids": totals["oids"], "series": totals["series"], "wall": wall,
            "cpu": proc_cpu_s(exporter_pid) - cpu0, "agent_cpu": proc_cpu_s(snmpd_pid) - agent0,
            "udp_drops": udp_rcvbuf_errors() - drops0}


# -- rows 2 to 5: Python workers, each in its own process ---------------------------------


def run_worker(kind: str, spec: dict[str, Any], tmp: Path, snmpd_pid: int,
               cprofile: Path | None = None) -> dict[str, Any]:
    spec_path = tmp / f"spec-{kind}.json"
    spec_path.write_text(json.dumps({**spec, "cprofile": str(cprofile) if cprofile else None}))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--spec", str(spec_path)]
    agent0 = proc_cpu_s(snmpd_pid)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT), timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # The agent's CPU over the whole worker (warm-up included); the worker reports
    # the timed share of it itself.
    result.setdefault("agent_cpu", proc_cpu_s(snmpd_pid) - agent0)
    return result


def worker_main(kind: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    if kind == "bare":
        result = asyncio.run(_worker_bare(spec))
    elif kind.startswith("engine-"):
        result = asyncio.run(_worker_engine(spec, kind.split("-", 1)[1]))
    elif kind.startswith("e2e-"):
        result = asyncio.run(_worker_e2e(spec, kind.split("-", 1)[1]))
    else:
        raise SystemExit(f"unknown worker {kind}")
    print(json.dumps(result))


_PROFILER: Any = None


def _timed_start(spec: dict[str, Any]) -> tuple[float, float, float, int]:
    """Start of the timed rounds (and of cProfile, with --cprofile: timed rounds only)."""
    global _PROFILER
    if spec.get("cprofile"):
        import cProfile

        _PROFILER = cProfile.Profile()
        _PROFILER.enable()
    return (proc_cpu_s(spec["snmpd_pid"]), rusage_cpu(resource.RUSAGE_SELF), time.perf_counter(),
            udp_rcvbuf_errors())


def _timed_end(spec: dict[str, Any], start: tuple[float, float, float, int]) -> dict[str, float]:
    agent0, cpu0, t0, drops0 = start
    result = {"wall": time.perf_counter() - t0, "cpu": rusage_cpu(resource.RUSAGE_SELF) - cpu0,
              "agent_cpu": proc_cpu_s(spec["snmpd_pid"]) - agent0, "udp_drops": udp_rcvbuf_errors() - drops0}
    if _PROFILER is not None:
        _PROFILER.disable()
        _PROFILER.dump_stats(spec["cprofile"])
    return result


async def _worker_bare(spec: dict[str, Any]) -> dict[str, Any]:
    """pysnmp 7 as its docs show it: bulk_walk_cmd per table, numeric OIDs,
    lookupMib=False, one SnmpEngine for all devices; values are counted, not converted."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData, ContextData, ObjectIdentity, ObjectType, SnmpEngine, UdpTransportTarget, bulk_walk_cmd,
    )

    engine = SnmpEngine()
    auth = CommunityData(COMMUNITY, mpModel=1)
    targets = [await UdpTransportTarget.create(("127.0.0.1", p), timeout=5, retries=1) for p in spec["ports"]]
    entries = spec["entries"]
    reps = spec["max_repetitions"]

    async def device(target: Any, rounds: int) -> int:
        n = 0
        for _ in range(rounds):
            for entry in entries:
                async for indication, status, _index, var_binds in bulk_walk_cmd(
                    engine, auth, target, ContextData(), 0, reps, ObjectType(ObjectIdentity(entry)),
                    lexicographicMode=False, lookupMib=False,
                ):
                    if indication or status:
                        raise RuntimeError(f"bulk_walk_cmd: {indication or status.prettyPrint()}")
                    n += len(var_binds)
        return n

    await device(targets[0], 1)  # warm-up: pysnmp builds its MIB view on first use
    start = _timed_start(spec)
    counts = await asyncio.gather(*(device(t, spec["rounds"]) for t in targets))
    result = {"oids": sum(counts), **_timed_end(spec, start)}
    engine.close_dispatcher()
    return result


async def _worker_engine(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """greenwatch's SnmpEngine.walk, one call per table with all its columns side by
    side, the tables of one device in parallel (as SnmpSource.poll does)."""
    from collector.snmp.engine import Target
    from collector.snmp.engines import make_engine

    engine = make_engine(name)
    targets = [Target("127.0.0.1", p, "2c", community=COMMUNITY, timeout=5.0, retries=1,
                      max_repetitions=spec["max_repetitions"]) for p in spec["ports"]]
    groups = spec["column_groups"]

    async def device(target: Target, rounds: int) -> int:
        n = 0
        for _ in range(rounds):
            replies = await asyncio.gather(*(engine.walk(target, cols) for cols in groups))
            n += sum(len(rows) for reply in replies for rows in reply.values())
        return n

    # Warm-up: gufo learns each agent's column types on its first poll, so every
    # device is polled once; pysnmp has nothing per device to learn (one device).
    await asyncio.gather(*(device(t, 1) for t in (targets if name != "pysnmp" else targets[:1])))
    ref0 = getattr(engine, "reference_calls", 0)
    start = _timed_start(spec)
    counts = await asyncio.gather(*(device(t, spec["rounds"]) for t in targets))
    result = {"oids": sum(counts), **_timed_end(spec, start)}
    result["reference_calls"] = getattr(engine, "reference_calls", 0) - ref0
    await engine.close()
    return result


class _CountingEngine:
    """Passes calls through to an engine, counting the values its walks return."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.oids = 0

    async def get(self, target: Any, oids: Any) -> Any:
        reply = await self.inner.get(target, oids)
        self.oids += sum(1 for v in reply.values() if v is not None)
        return reply

    async def walk(self, target: Any, columns: Any) -> Any:
        reply = await self.inner.walk(target, columns)
        self.oids += sum(len(rows) for rows in reply.values())
        return reply

    async def close(self) -> None:
        await self.inner.close()


async def _worker_e2e(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The whole collection path: Collector.poll -> SnmpSource.poll (profile, engine,
    reader) -> Sink.write (line protocol into the SQLite spool, fsync) -> the sink's
    drain task -> InfluxDB /write. Timed until the spool is empty again."""
    from collector.profiles import load_profiles
    from collector.scheduler import Collector, Entry
    from collector.snmp.engines import make_engine
    from collector.snmp.source import SnmpSource
    from collector.config import Defaults, Device
    from greenwatch.config import Site
    from greenwatch.core.config import InfluxConfig
    from greenwatch.core.influx import InfluxClient
    from greenwatch.core.sink import Sink
    from greenwatch.core.spool import Spool
    from greenwatch.service import tune_gc

    tune_gc()  # as `greenwatch run` does
    profiles = load_profiles([Path(spec["profile_dir"])])
    profile = profiles.get(PROFILE_NAME)
    devices = [
        Device.model_validate({"name": f"dev{i:03d}", "address": f"127.0.0.1:{p}",
                               "snmp": {"version": "2c", "community": COMMUNITY}, "profile": PROFILE_NAME})
        for i, p in enumerate(spec["ports"])
    ]
    site = Site(name="bench", devices=devices)
    defaults = Defaults(timeout=5.0, retries=1, max_repetitions=spec["max_repetitions"],
                        **({"rewalk": spec["rewalk"]} if spec.get("rewalk") else {}))
    engine = _CountingEngine(make_engine(name))
    spool = Spool(Path(spec["spool_dir"]) / f"spool-{name}.db")
    writer = InfluxClient(spec["influx_url"], spec["influx_db"])
    # As `greenwatch run` drains: the configured batch size and flush interval's defaults.
    influx = InfluxConfig(url=spec["influx_url"])
    sink = Sink(spool, writer, batch_size=influx.batch_size, flush_interval_s=influx.flush_interval)
    sink.start()
    entries = [Entry(site, d, SnmpSource(site, d, defaults, engine, profiles, profile), interval=3600.0)
               for d in devices]
    collector = Collector(entries, sink, concurrency=len(entries))

    problems: list[str] = []

    async def round_() -> list[str]:
        results = await collector.poll_all()
        for r in results:
            problems.extend(r.problems)
        return [r.error for r in results if r.error]

    errors = await round_()  # warm-up: counter state, gufo's type learning, influx series
    if errors:
        raise RuntimeError(f"warm-up poll failed: {errors[:3]}")
    if not await sink.flush(120):
        raise RuntimeError("warm-up: spool did not drain to InfluxDB in 120 s")
    written0, accepted0, engine.oids = sink.stats().written, collector.accepted, 0
    problems.clear()
    ref0 = getattr(engine.inner, "reference_calls", 0)
    start = _timed_start(spec)
    for _ in range(spec["rounds"]):
        errors = await round_()
        if errors:
            raise RuntimeError(f"poll failed: {errors[:3]}")
    drained = await sink.flush(300)
    result = _timed_end(spec, start)
    stats = sink.stats()
    result.update(
        oids=engine.oids,
        points=collector.accepted - accepted0,
        written=stats.written - written0,
        rejected=stats.rejected,
        drained=drained,
        problems=len(problems),
        problem_examples=sorted(set(problems))[:3],
        readings=sum(e.stats.last_readings for e in entries),
        reference_calls=getattr(engine.inner, "reference_calls", 0) - ref0,
    )
    await sink.close(10)
    await writer.close()
    spool.close()
    await engine.close()
    return result


# -- the table --------------------------------------------------------------------------------


def fmt_ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def print_table(rows: list[dict[str, Any]]) -> str:
    def eff(name: str) -> float | None:
        for r in rows:
            if r["tool"] == name:
                return r["oids"] / r["cpu"] if r["cpu"] > 0 else None
        return None

    ref_walk, ref_bare, ref_exp = eff("snmpbulkwalk"), eff("pysnmp bare"), eff("snmp_exporter")
    headers = ["tool", "OIDs", "wall s", "OIDs/s", "CPU s", "OIDs/CPU-s", "vs snmpbulkwalk",
               "vs pysnmp bare", "vs snmp_exporter", "agent CPU s", "UDP drops"]
    table = []
    for r in rows:
        e = r["oids"] / r["cpu"] if r["cpu"] > 0 else None
        table.append([
            r["tool"], f"{r['oids']:,}", f"{r['wall']:.2f}", f"{r['oids'] / r['wall']:,.0f}",
            f"{r['cpu']:.2f}", f"{e:,.0f}" if e else "-",
            fmt_ratio(e, ref_walk), fmt_ratio(e, ref_bare), fmt_ratio(e, ref_exp), f"{r['agent_cpu']:.2f}",
            str(r.get("udp_drops", "-")),
        ])
    widths = [max([len(h)] + [len(row[i]) for row in table]) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))) + " |",
        "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|",
    ]
    for row in table:
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                        for i, (c, w) in enumerate(zip(row, widths))) + " |")
    text = "\n".join(lines)
    print(text)
    return text


def print_cprofile(path: Path, worker: str, top: int = 25) -> None:
    import pstats

    print(f"\n--- cProfile of the {worker} worker (timed rounds only), top {top} by own time ---")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)
    print(f"--- top {top} by cumulative time ---")
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20, help="simulated devices = concurrent pollers (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="timed polls per device per tool (default 2)")
    parser.add_argument("--engine", default="all",
                        help="greenwatch engine(s) for the engine and e2e rows: all (installed ones), pysnmp, gufo")
    parser.add_argument("--max-repetitions", type=int, default=25, help="GETBULK max-repetitions for every tool")
    parser.add_argument("--rewalk", type=float, metavar="SECONDS",
                        help="defaults.rewalk for the e2e rows (default: greenwatch's); 1: every poll walks")
    parser.add_argument("--skip", default="", help="comma list of rows to skip: walk,bare,engine,e2e,exporter")
    parser.add_argument("--cprofile", metavar="WORKER",
                        help="also run these workers (comma list) under cProfile and print their hotspots: "
                             "bare, engine-pysnmp, engine-gufo, e2e-pysnmp, e2e-gufo")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, args.spec)
        return

    from collector.snmp.engines import available_engines

    engines = available_engines() if args.engine == "all" else [e.strip() for e in args.engine.split(",")]
    engines = sorted(engines, key=lambda e: ("pysnmp", "gufo").index(e) if e in ("pysnmp", "gufo") else 9)
    missing = [e for e in engines if e not in available_engines()]
    if missing:
        sys.exit(f"engine(s) not importable here: {missing}; available: {available_engines()}")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    n, rounds = args.devices, args.rounds

    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-snmp-"))
    procs = Processes()
    rows: list[dict[str, Any]] = []
    try:
        ports = free_udp_ports(n)
        snmpd = start_snmpd(procs, tmp, ports)
        workload = discover(ports[0], args.max_repetitions)
        per_poll = sum(t["oids"] for t in workload.values())
        print(f"greenwatch SNMP throughput bench - {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
        print(f"snmpd (net-snmp) pid {snmpd.pid} on 127.0.0.1, {n} ports = {n} devices; "
              f"{rounds} timed rounds after a warm-up; GETBULK max-repetitions {args.max_repetitions}")
        print(f"workload per device poll: {per_poll} OIDs in {len(workload)} tables, "
              f"{sum(len(t['columns']) for t in workload.values())} columns:")
        for table, info in workload.items():
            print(f"  {table:20s} {info['entry']:24s} {len(info['columns']):3d} columns {info['oids']:6d} OIDs")
        print(f"expected per tool: about {per_poll * n * rounds:,} OIDs (hrSWRun rows come and go with processes)\n")

        entries = [info["entry"] for info in workload.values()]
        groups = [list(info["columns"]) for info in workload.values()]
        profile_dir = tmp / "profiles"
        write_profile(workload, profile_dir)
        exporter_conf = write_exporter_config(workload, tmp / "snmp.yml", args.max_repetitions)
        spec = {"ports": ports, "rounds": rounds, "max_repetitions": args.max_repetitions, "rewalk": args.rewalk,
                "entries": entries, "column_groups": groups, "snmpd_pid": snmpd.pid,
                "profile_dir": str(profile_dir), "spool_dir": str(tmp)}

        def report(row: dict[str, Any]) -> None:
            rows.append(row)
            extra = {k: v for k, v in row.items() if k not in ("tool", "oids", "wall", "cpu", "agent_cpu", "udp_drops")}
            print(f"  {row['tool']:22s} {row['oids']:>9,} OIDs {row['wall']:7.2f} s wall {row['cpu']:7.2f} s CPU"
                  + (f"  {extra}" if extra else ""), flush=True)

        if "walk" not in skip:
            r = bench_snmpbulkwalk(ports, entries, rounds, args.max_repetitions, snmpd.pid)
            report({"tool": "snmpbulkwalk", **r})
            # What one process start costs: a walk of a single scalar, same flags.
            s = bench_snmpbulkwalk(ports, entries, 1, args.max_repetitions, snmpd.pid,
                                   oid_override=["1.3.6.1.2.1.1.3"] * 4)
            per_proc = s["cpu"] / s["processes"]
            net = dict(r, tool="snmpbulkwalk net of exec", cpu=max(r["cpu"] - per_proc * r["processes"], 1e-9))
            net["exec_cpu_ms"] = round(per_proc * 1000, 2)
            report(net)
        if "bare" not in skip:
            report({"tool": "pysnmp bare", **run_worker("bare", spec, tmp, snmpd.pid)})
        if "engine" not in skip:
            for e in engines:
                report({"tool": f"engine {e}", **run_worker(f"engine-{e}", spec, tmp, snmpd.pid)})
        influx = None
        if "e2e" not in skip or "e2e" in (args.cprofile or ""):
            influx = start_influxd(procs, tmp)
            spec.update(influx_url=influx.url, influx_db="bench")
        if "e2e" not in skip:
            for e in engines:
                r = run_worker(f"e2e-{e}", spec, tmp, snmpd.pid)
                report({"tool": f"e2e {e}", **r})
        if "exporter" not in skip:
            exporter, exporter_port = start_exporter(procs, tmp, exporter_conf)
            report({"tool": "snmp_exporter", **bench_exporter(exporter.pid, exporter_port, ports, rounds, snmpd.pid)})

        print()
        text = print_table(rows)
        print("\nOIDs/CPU-s = OIDs read / client CPU seconds (user+system) of the tool's own process(es);"
              "\nratios compare OIDs/CPU-s (above 1 = cheaper per OID than that peer). agent CPU s = snmpd's"
              "\nCPU in the same interval (shared by all, not in the client's CPU).")
        for r in rows:
            if r["tool"].startswith("e2e"):
                print(f"{r['tool']}: {r['points']:,} points ({r['points'] / r['wall']:,.0f} points/s), "
                      f"{r['written']:,} lines written to InfluxDB, {r['rejected']} rejected, "
                      f"spool drained: {r['drained']}, pysnmp reference calls (gufo type learning): "
                      f"{r['reference_calls']}")
        if influx is not None and "e2e" not in skip:
            counts = {}
            for m in ("port", "power", "ups", "host", "printer", "environment", "poll"):
                counts[m] = influx.count(m, "bench")
            print(f"InfluxDB 'bench' database, points per measurement (all e2e rows, warm-up included): {counts}")
        for worker in filter(None, (args.cprofile or "").split(",")):
            prof = tmp / f"{worker}.prof"
            run_worker(worker, spec, tmp, snmpd.pid, cprofile=prof)
            print_cprofile(prof, worker)
        if args.json:
            Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                   "devices": n, "rounds": rounds, "rows": rows,
                                                   "workload": {k: v["oids"] for k, v in workload.items()},
                                                   "table": text}, indent=2, default=str))
    finally:
        procs.stop_all()
        if args.keep_tmp:
            print(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
