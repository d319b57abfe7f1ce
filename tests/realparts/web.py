"""aiohttp servers the tests stand up as real HTTP peers (BMCs, plugs, InfluxDB-like
replies, the Carbon Intensity API, Grafana's API...): one way to start one on
127.0.0.1 and learn its URL."""

from __future__ import annotations

from typing import Any

from aiohttp import web

HOST = "127.0.0.1"


async def serve(app: web.Application, port: int = 0, **runner_options: Any) -> tuple[web.AppRunner, str]:
    """Start `app` on 127.0.0.1 (a free port unless one is given) and return its runner
    (stop it with `await runner.cleanup()`) and base URL. The access log is off unless
    asked for: the tests' output is about greenwatch, not the stand-in."""
    runner_options.setdefault("access_log", None)
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    host, bound = runner.addresses[0][:2]
    return runner, f"http://{host}:{bound}"
