"""demo/run.sh's port helpers: check InfluxDB's port before anything is installed or
started, and tell our listener from someone else's.

    python3 demo/estate.py ports [--influx PORT] [--snmp PORT]
        Print "INFLUX_PORT INFLUX_RPC_PORT SNMP_PORT", all free on 127.0.0.1. A port
        given is used as it is or refused (exit 2) if something else holds it; a port
        not given is the usual one (8086, 1161) if free, else the next free one.
    python3 demo/estate.py owns PID tcp|udp PORT
        Exit 0 if process PID is the one bound to 127.0.0.1:PORT, else 1: so the demo
        never writes into an InfluxDB (or polls an agent) that is not its own.

The estate itself is simulate/live's (greenwatch demo).
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path

# Where to look for a free port when the usual one is taken: the next 100 up.
SEARCH = 100


def port_free(port: int, proto: str) -> bool:
    """Whether 127.0.0.1:PORT can be bound now (as influxd and snmpsim will bind it)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if proto == "tcp":
            # As Go's net.Listen does: a port held only by TIME_WAIT connections is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def pick_port(name: str, given: int | None, usual: int, proto: str, what: str) -> int:
    """`given` if free (else exit 2 with a message); otherwise `usual` or the next free one."""
    if given is not None:
        if not port_free(given, proto):
            print(f"demo: {proto} port {given} on 127.0.0.1 ({name}) is in use by another program; "
                  f"stop it or choose another port, e.g. {name}={given + 10000} ./demo/run.sh", file=sys.stderr)
            sys.exit(2)
        return given
    for port in range(usual, usual + SEARCH):
        if port_free(port, proto):
            if port != usual:
                print(f"demo: {proto} port {usual} on 127.0.0.1 is taken (by {what}?); the demo uses "
                      f"{port} instead (or set {name})", file=sys.stderr)
            return port
    print(f"demo: no free {proto} port on 127.0.0.1 in {usual}-{usual + SEARCH - 1}; set {name}", file=sys.stderr)
    sys.exit(2)


def any_free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def owns(pid: int, proto: str, port: int) -> bool:
    """Whether process `pid` holds the socket bound to 127.0.0.1:PORT (Linux /proc)."""
    listening = "0A" if proto == "tcp" else "07"  # TCP LISTEN; UDP unconnected
    wanted = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == listening:
            inodes.add(f"socket:[{fields[9]}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False  # it has exited, or it is not ours to look at
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:  # closed meanwhile, or not ours to look at
            continue
    return False


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="demo/estate.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ports = sub.add_parser("ports")
    ports.add_argument("--influx", type=int)
    ports.add_argument("--snmp", type=int)
    own = sub.add_parser("owns")
    own.add_argument("pid", type=int)
    own.add_argument("proto", choices=["tcp", "udp"])
    own.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.command == "ports":
        influx = pick_port("INFLUX_PORT", args.influx, 8086, "tcp", "another InfluxDB")
        # influxd's backup/restore RPC port: any free one, the demo never uses it.
        rpc = any_free_tcp_port()
        snmp = pick_port("SNMP_PORT", args.snmp, 1161, "udp", "another SNMP agent")
        print(influx, rpc, snmp)
        return 0
    return 0 if owns(args.pid, args.proto, args.port) else 1


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
