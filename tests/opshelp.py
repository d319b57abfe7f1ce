"""Helpers for the operations tests (tests/test_ops_*.py): the service's endpoint
asked over real HTTP, and servers run in a thread beside a `greenwatch run` process."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

TOKEN = "ops-test-token-0123456789abcdef"
# These tests are not about the weekly report: keep the service from writing one.
NO_REPORT = "report:\n  schedule: false\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_block(port: int, token: str | None = TOKEN, **extra: Any) -> str:
    lines = [f"http:\n  port: {port}\n"]
    if token:
        lines.append(f"  token: {token}\n")
    lines += [f"  {k}: {v}\n" for k, v in extra.items()]
    return "".join(lines)


def get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path, with the bearer token if given."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get_json(port: int, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    status, body = get(port, path, token)
    return status, json.loads(body)


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed by prometheus_client's own parser: {(sample name, labels): value}."""
    status, body = get(port, "/metrics")
    assert status == 200, body
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def wait_until(check: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout}s")


class LoopThread:
    """An event loop in a thread, for servers that must answer while the test blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ops-servers", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
