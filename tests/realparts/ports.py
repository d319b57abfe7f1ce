"""Free local ports for the real parts the tests start.

The kernel picks a free port (bind to port 0); the socket is closed again and the
number handed to the server, so another process may take it in between. Servers that
fail to bind exit or are detected by their fixture, which then retries on a new port.
Ports handed out in this process are remembered so two calls never return the same
one, even if the kernel would offer it again.
"""

from __future__ import annotations

import socket
import threading

__all__ = ["free_tcp_port", "free_udp_port"]

_handed_out: set[tuple[int, int]] = set()
_lock = threading.Lock()


def _free_port(kind: int, host: str) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        with _lock:
            if (kind, port) not in _handed_out:
                _handed_out.add((kind, port))
                return port
    raise RuntimeError(f"no free {'UDP' if kind == socket.SOCK_DGRAM else 'TCP'} port on {host}")


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on `host` that nothing was bound to a moment ago."""
    return _free_port(socket.SOCK_DGRAM, host)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing was bound to a moment ago."""
    return _free_port(socket.SOCK_STREAM, host)
