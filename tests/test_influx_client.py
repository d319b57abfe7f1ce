"""The InfluxDB writers.

`InfluxClient` runs against the real influxd 1.x from tests/realparts/influx.py
(plus two more started here: one with auth on, one with TLS). What 1.x cannot be
made to answer (429, 503 with Retry-After) and InfluxDB 2.x's native
`/api/v2/write` (no InfluxDB 2 can be installed here) are checked against small
aiohttp servers that hold those documented contracts.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from realparts.influx import InfluxServer, free_port, start_influx_server
from realparts.web import serve as serve_app

from greenwatch.core.influx import (
    InfluxAuthError,
    InfluxClient,
    InfluxQueryError,
    InfluxRejectedError,
    InfluxRetryableError,
    InfluxTooLargeError,
    InfluxV2Writer,
    LineWriter,
)
from greenwatch.core.schema import Sample

T0 = 1_700_000_000_000_000_000
ADMIN = ("admin", "adm1n-pw-not-for-logs")
PASSWORD = "s3cret-pw-not-for-logs"
TOKEN = "tok-3n-not-for-logs"


# -- extra real servers ------------------------------------------------------------


@pytest.fixture(scope="module")
def influx_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """influxd with auth on: an admin, and a writer user with WRITE on db 'metrics'."""
    server = start_influx_server(tmp_path_factory.mktemp("influx-auth"), auth_enabled=True)
    try:
        # With auth on and no users yet, 1.x allows exactly this first statement.
        server.query(f"CREATE USER {ADMIN[0]} WITH PASSWORD '{ADMIN[1]}' WITH ALL PRIVILEGES")
        server.admin = ADMIN
        server.create_database("metrics")
        server.query(f"CREATE USER writer WITH PASSWORD '{PASSWORD}'")
        server.query('GRANT WRITE ON "metrics" TO writer')
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("tls")
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def influx_tls(tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]) -> Iterator[InfluxServer]:
    server = start_influx_server(tmp_path_factory.mktemp("influx-tls"), tls=tls_files)
    try:
        server.create_database("metrics")
        yield server
    finally:
        server.stop()


# -- small HTTP servers ------------------------------------------------------------


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    # auto_decompress=False: handlers see the body exactly as the client sent it.
    return await serve_app(app, auto_decompress=False)


@pytest.fixture
async def recording_proxy(influxdb: InfluxServer) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A pass-through proxy in front of the real influxd that records each request,
    to see what went over the wire while the real server does the answering."""
    seen: list[dict[str, Any]] = []
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append({"path": request.path, "query": dict(request.query), "headers": dict(request.headers), "body": body})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(
            request.method, influxdb.url + request.path_qs, data=body, headers=headers
        ) as upstream:
            return web.Response(status=upstream.status, body=await upstream.read(), headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in ("content-length", "transfer-encoding")
            })

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner, url = await serve(app)
    yield url, seen
    await runner.cleanup()
    await session.close()


def status_app(status: int, headers: dict[str, str], body: str) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, headers=headers, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


# -- writes against the real influxd -----------------------------------------------


async def test_written_points_come_back_from_influxdb(influxdb: InfluxServer, influx_db: str) -> None:
    samples = [
        Sample("power", {"site": "lon 1", "device": "pdu,a", "kind": "pdu", "entity": "x=1"},
               {"watts": 120.5, "energy_kwh": 1234.25, "on": True, "note": 'say "hi" \\ there'}, T0),
        Sample("power", {"site": "lon 1", "device": "pdu,a", "kind": "pdu", "entity": "x=1"},
               {"watts": 130.0, "count": 7}, T0 + 1_000_000_000),
    ]
    async with InfluxClient(influxdb.url, influx_db) as client:
        await client.write([s.to_line() for s in samples])
        data = await client.query('SELECT * FROM "power"', epoch="ns")

    series = data["results"][0]["series"][0]
    rows = [dict(zip(series["columns"], values)) for values in series["values"]]
    assert [r["time"] for r in rows] == [T0, T0 + 1_000_000_000]
    assert rows[0]["watts"] == 120.5 and rows[1]["watts"] == 130
    assert rows[0]["energy_kwh"] == 1234.25
    assert rows[0]["on"] is True
    assert rows[0]["note"] == 'say "hi" \\ there'
    assert rows[1]["count"] == 7
    # tags with space, comma and '=' survive the escaping
    assert (rows[0]["site"], rows[0]["device"], rows[0]["entity"]) == ("lon 1", "pdu,a", "x=1")
    assert influxdb.count("power", influx_db, "watts") == 2


async def test_backslashes_in_names_and_values_round_trip(influxdb: InfluxServer, influx_db: str) -> None:
    # Windows hosts (DOMAIN\host), paths in sysDescr: a backslash must arrive as one.
    values = ["CORP\\pdu-1", "x\\ y", "a\\,b", "trailing\\"]
    samples = [
        Sample("power", {"device": value, "site": "lon"}, {"watts": 1.0, "note": value}, T0 + i)
        for i, value in enumerate(values)
    ]
    async with InfluxClient(influxdb.url, influx_db) as client:
        await client.write([s.to_line() for s in samples])
    rows = influxdb.rows('SELECT * FROM "power"', influx_db)
    assert [r["note"] for r in rows] == values  # string fields keep every backslash
    # tags: exact, except a trailing backslash, which line protocol cannot carry
    assert [r["device"] for r in rows] == ["CORP\\pdu-1", "x\\ y", "a\\,b", "trailing"]


async def test_write_to_a_retention_policy(influxdb: InfluxServer, influx_db: str) -> None:
    influxdb.query(f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION 1h REPLICATION 1')
    now = time.time_ns()  # inside the 1h policy's shard range
    async with InfluxClient(influxdb.url, influx_db, retention_policy="short") as client:
        await client.write([f"m v=1 {now}", f"m v=2 {now + 1}"])
    rows = influxdb.rows('SELECT v FROM "short"."m"', influx_db)
    assert [r["v"] for r in rows] == [1, 2]
    assert influxdb.count("m", influx_db) == 0  # nothing in the default policy


async def test_token_header_is_accepted_by_1x_with_auth_off(
    recording_proxy: tuple[str, list[dict[str, Any]]], influxdb: InfluxServer, influx_db: str
) -> None:
    url, seen = recording_proxy
    async with InfluxClient(url, influx_db, token=TOKEN) as client:
        await client.write([f"m v=1 {T0}"])
    assert seen[0]["headers"]["Authorization"] == f"Token {TOKEN}"
    assert influxdb.count("m", influx_db) == 1


async def test_gzip_goes_over_the_wire_and_influxdb_accepts_it(
    recording_proxy: tuple[str, list[dict[str, Any]]], influxdb: InfluxServer, influx_db: str
) -> None:
    url, seen = recording_proxy
    lines = [f"power,device=pdu{i % 7} watts={i}.5 {T0 + i}" for i in range(2000)]
    async with InfluxClient(url, influx_db, gzip=True) as client:
        await client.write(lines)
    request = seen[0]
    assert request["path"] == "/write"
    assert request["query"] == {"db": influx_db, "precision": "ns"}
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert request["body"][:2] == b"\x1f\x8b"
    assert gzip.decompress(request["body"]).decode() == "\n".join(lines)
    assert len(request["body"]) < len("\n".join(lines)) / 3
    assert influxdb.count("power", influx_db) == 2000


async def test_a_bad_line_is_rejected_with_influxdbs_error_text(influxdb: InfluxServer, influx_db: str) -> None:
    async with InfluxClient(influxdb.url, influx_db) as client:
        with pytest.raises(InfluxRejectedError) as caught:
            await client.write(["m,tag=only-tags"])
    assert caught.value.status == 400
    assert "unable to parse" in caught.value.server_message
    assert "unable to parse" in str(caught.value)
    assert not isinstance(caught.value, InfluxRetryableError)


async def test_a_partial_write_is_rejected_though_1x_stored_the_good_points(
    influxdb: InfluxServer, influx_db: str
) -> None:
    async with InfluxClient(influxdb.url, influx_db) as client:
        await client.write([f"m v=1.5 {T0}"])
        with pytest.raises(InfluxRejectedError) as caught:
            # the second point conflicts with v's type (float): 1.x stores the
            # others and answers 400 "partial write"
            await client.write([f"m v=2.5 {T0 + 1}", f'm v="text" {T0 + 2}', f"m v=3.5 {T0 + 3}"])
    assert "partial write" in caught.value.server_message
    assert "field type conflict" in caught.value.server_message
    assert [r["v"] for r in influxdb.rows("SELECT v FROM m", influx_db)] == [1.5, 2.5, 3.5]


async def test_missing_database_is_retryable_not_rejected(influxdb: InfluxServer) -> None:
    # someone can create it while greenwatch runs; the data must wait, not go
    async with InfluxClient(influxdb.url, "no_such_db_here") as client:
        with pytest.raises(InfluxRetryableError) as caught:
            await client.write([f"m v=1 {T0}"])
    assert caught.value.status == 404
    assert "database not found" in str(caught.value)


async def test_too_large_body_raises_too_large(tmp_path: Path) -> None:
    server = start_influx_server(tmp_path, max_body_size=500)
    try:
        server.create_database("metrics")
        async with InfluxClient(server.url, "metrics") as client:
            with pytest.raises(InfluxTooLargeError) as caught:
                await client.write([f"m v={i} {T0 + i}" for i in range(100)])
            assert caught.value.status == 413
            assert isinstance(caught.value, InfluxRejectedError)
            await client.write([f"m v=1 {T0}"])  # small enough
        assert server.count("m", "metrics") == 1
    finally:
        server.stop()


async def test_connection_refused_is_retryable(influxdb: InfluxServer) -> None:
    port = free_port()  # nothing listens there
    async with InfluxClient(f"http://127.0.0.1:{port}", "db", username="u", password=PASSWORD) as client:
        with pytest.raises(InfluxRetryableError) as caught:
            await client.write([f"m v=1 {T0}"])
    assert caught.value.status is None
    assert PASSWORD not in str(caught.value)


async def test_timeout_is_retryable() -> None:
    # A server that accepts and never answers (until the test lets it go).
    release = asyncio.Event()
    handlers: list[asyncio.Task[None]] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await release.wait()
        finally:
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with InfluxClient(f"http://127.0.0.1:{port}", "db", timeout_s=0.3) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(InfluxRetryableError, match="no answer within 0.3 s"):
                await client.write([f"m v=1 {T0}"])
            assert loop.time() - started < 2
    finally:
        release.set()
        await asyncio.gather(*handlers)
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("status", "headers", "body", "retry_after"),
    [
        (429, {"Retry-After": "7"}, '{"code":"too many requests","message":"org over quota"}', 7.0),
        (503, {"Retry-After": "2"}, '{"error":"service unavailable"}', 2.0),
        (500, {}, '{"error":"timeout"}', None),
        (502, {}, "<html>bad gateway</html>", None),
    ],
)
async def test_overload_and_server_errors_are_retryable_with_retry_after(
    status: int, headers: dict[str, str], body: str, retry_after: float | None
) -> None:
    # InfluxDB 2.x/3.x (and proxies in front of any version) answer like this.
    runner, url = await serve(status_app(status, headers, body))
    try:
        async with InfluxClient(url, "db") as client:
            with pytest.raises(InfluxRetryableError) as caught:
                await client.write([f"m v=1 {T0}"])
    finally:
        await runner.cleanup()
    assert caught.value.status == status
    assert caught.value.retry_after_s == retry_after
    assert not isinstance(caught.value, InfluxAuthError)


async def test_422_is_rejected() -> None:
    # InfluxDB 2.x answers 422 for points outside the bucket's retention.
    runner, url = await serve(status_app(422, {}, '{"code":"unprocessable entity","message":"points beyond retention"}'))
    try:
        async with InfluxClient(url, "db") as client:
            with pytest.raises(InfluxRejectedError, match="points beyond retention"):
                await client.write([f"m v=1 {T0}"])
    finally:
        await runner.cleanup()


# -- auth against a real influxd with auth on --------------------------------------


async def test_basic_auth_and_query_parameter_auth_work(influx_auth: InfluxServer) -> None:
    async with InfluxClient(influx_auth.url, "metrics", username="writer", password=PASSWORD) as client:
        await client.write([f"basic v=1 {T0}"])
    async with InfluxClient(
        influx_auth.url, "metrics", username="writer", password=PASSWORD, auth_in_query=True
    ) as client:
        await client.write([f"inquery v=1 {T0}"])
    assert influx_auth.count("basic", "metrics") == 1
    assert influx_auth.count("inquery", "metrics") == 1


@pytest.mark.parametrize("auth_in_query", [False, True])
async def test_wrong_password_is_an_auth_error_that_never_shows_the_password(
    influx_auth: InfluxServer, auth_in_query: bool
) -> None:
    wrong = "wr0ng-" + PASSWORD
    client = InfluxClient(influx_auth.url, "metrics", username="writer", password=wrong, auth_in_query=auth_in_query)
    async with client:
        with pytest.raises(InfluxAuthError) as caught:
            await client.write([f"m v=1 {T0}"])
        with pytest.raises(InfluxAuthError):
            await client.query("SHOW MEASUREMENTS")
    error = caught.value
    assert error.status == 401
    assert isinstance(error, InfluxRetryableError)
    assert "credentials refused" in str(error)
    for text in (str(error), repr(error), repr(client), str(vars(client)), str(error.__cause__)):
        assert wrong not in text
        assert PASSWORD not in text
    assert error.__cause__ is None  # no chained aiohttp error carrying the URL


async def test_user_without_read_permission_gets_auth_error_on_query(influx_auth: InfluxServer) -> None:
    async with InfluxClient(influx_auth.url, "metrics", username="writer", password=PASSWORD) as client:
        with pytest.raises(InfluxAuthError) as caught:
            await client.query('SELECT * FROM "basic"')
    assert caught.value.status == 403


def test_secrets_are_not_in_reprs() -> None:
    v1 = InfluxClient("http://127.0.0.1:8086", "db", token=TOKEN)
    v2 = InfluxV2Writer("http://127.0.0.1:8086", "org", "bucket", TOKEN)
    for obj in (v1, v2):
        assert TOKEN not in repr(obj)
        assert TOKEN not in str(vars(obj))


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="either a token or a username"):
        InfluxClient("http://h:8086", "db", username="u", password="p", token="t")
    with pytest.raises(ValueError, match="not in the url"):
        InfluxClient("http://u:pw@h:8086", "db")
    with pytest.raises(ValueError, match="http"):
        InfluxClient("h:8086", "db")
    with pytest.raises(ValueError, match="token"):
        InfluxV2Writer("http://h:8086", "org", "bucket", "")


# -- TLS against a real influxd with https on --------------------------------------


async def test_tls_is_verified_by_default(influx_tls: InfluxServer, tls_files: tuple[Path, Path]) -> None:
    async with InfluxClient(influx_tls.url, "metrics") as client:
        with pytest.raises(InfluxRetryableError, match="TLS failed"):
            await client.write([f"m v=1 {T0}"])
    async with InfluxClient(influx_tls.url, "metrics", ca_file=str(tls_files[0])) as client:
        await client.write([f"m v=2 {T0 + 1}"])
    async with InfluxClient(influx_tls.url, "metrics", verify_tls=False) as client:
        await client.write([f"m v=3 {T0 + 2}"])
    assert [r["v"] for r in influx_tls.rows("SELECT v FROM m", "metrics")] == [2, 3]


# -- query and ping ----------------------------------------------------------------


async def test_query_and_ping(influxdb: InfluxServer, influx_db: str) -> None:
    async with InfluxClient(influxdb.url, influx_db) as client:
        assert (await client.ping()).startswith("1.")
        await client.query(f'CREATE RETENTION POLICY "week" ON "{influx_db}" DURATION 7d REPLICATION 1')
        data = await client.query("SHOW RETENTION POLICIES")
        names = [row[0] for row in data["results"][0]["series"][0]["values"]]
        assert "week" in names
        with pytest.raises(InfluxQueryError, match="error parsing query"):
            await client.query("SELEC nothing")
        with pytest.raises(InfluxQueryError, match="database not found"):
            await client.query("SELECT * FROM m", db="no_such_db_here")


async def test_ping_of_a_stopped_server_is_retryable(influxdb: InfluxServer) -> None:
    influxdb.stop()
    try:
        async with InfluxClient(influxdb.url, "db") as client:
            with pytest.raises(InfluxRetryableError):
                await client.ping()
    finally:
        influxdb.start()


# -- InfluxDB 2.x native write: a stand-in holding the documented contract ---------


class V2Standin:
    """POST /api/v2/write?org=&bucket=&precision= with `Authorization: Token`: 204 on
    success; 401 {"code":"unauthorized"} on a wrong token; 404 {"code":"not found"}
    for an unknown bucket; 400 {"code":"invalid"} naming the first bad line, and
    then nothing of the body is written (InfluxDB OSS 2.x)."""

    def __init__(self, org: str, bucket: str, token: str) -> None:
        self.org, self.bucket, self.token = org, bucket, token
        self.points: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/api/v2/write", self.write)

    async def write(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append({"query": dict(request.query), "headers": dict(request.headers), "raw": raw})
        if request.headers.get("Authorization") != f"Token {self.token}":
            return web.json_response({"code": "unauthorized", "message": "unauthorized access"}, status=401)
        if request.query.get("org") != self.org:
            return web.json_response({"code": "not found", "message": f'organization name "{request.query.get("org")}" not found'}, status=404)
        if request.query.get("bucket") != self.bucket:
            return web.json_response({"code": "not found", "message": f'bucket "{request.query.get("bucket")}" not found'}, status=404)
        if request.query.get("precision", "ns") not in ("ns", "us", "ms", "s"):
            return web.json_response({"code": "invalid", "message": "invalid precision"}, status=400)
        # The runner is made with auto_decompress=False, so this is the body as
        # sent: decode it here, which also proves the client really compressed.
        body = gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw
        lines = [line for line in body.decode().split("\n") if line.strip()]
        for number, line in enumerate(lines, 1):
            head, _, rest = line.partition(" ")
            if not head or "=" not in rest.split(" ")[0]:
                return web.json_response(
                    {"code": "invalid", "message": f"unable to parse '{line}': missing fields (line {number})"},
                    status=400,
                )
        self.points.extend(lines)
        return web.Response(status=204)


@pytest.fixture
async def v2_standin() -> AsyncIterator[tuple[V2Standin, str]]:
    standin = V2Standin("green-org", "power-bucket", TOKEN)
    runner, url = await serve(standin.app)
    yield standin, url
    await runner.cleanup()


@pytest.mark.parametrize("use_gzip", [False, True])
async def test_v2_writer_writes_with_org_bucket_precision_and_token(
    v2_standin: tuple[V2Standin, str], use_gzip: bool
) -> None:
    standin, url = v2_standin
    lines = [f"power,device=ups{i} watts={i}.0 {T0 + i}" for i in range(3)]
    writer = InfluxV2Writer(url, "green-org", "power-bucket", TOKEN, gzip=use_gzip)
    assert isinstance(writer, LineWriter)
    async with writer:
        await writer.write(lines)
    assert standin.points == lines
    request = standin.requests[0]
    assert request["query"] == {"org": "green-org", "bucket": "power-bucket", "precision": "ns"}
    assert request["headers"]["Authorization"] == f"Token {TOKEN}"
    assert (request["headers"].get("Content-Encoding") == "gzip") is use_gzip


async def test_v2_writer_wrong_token_is_auth_error_without_the_token(v2_standin: tuple[V2Standin, str]) -> None:
    standin, url = v2_standin
    wrong = "x" + TOKEN
    async with InfluxV2Writer(url, "green-org", "power-bucket", wrong) as writer:
        with pytest.raises(InfluxAuthError) as caught:
            await writer.write([f"m v=1 {T0}"])
    assert caught.value.status == 401
    assert "unauthorized access" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert standin.points == []


async def test_v2_writer_bad_line_is_rejected_with_the_servers_message(v2_standin: tuple[V2Standin, str]) -> None:
    standin, url = v2_standin
    async with InfluxV2Writer(url, "green-org", "power-bucket", TOKEN) as writer:
        with pytest.raises(InfluxRejectedError) as caught:
            await writer.write([f"m v=1 {T0}", "broken"])
    assert caught.value.status == 400
    assert caught.value.server_message == "unable to parse 'broken': missing fields (line 2)"
    assert standin.points == []


async def test_v2_writer_unknown_bucket_is_retryable(v2_standin: tuple[V2Standin, str]) -> None:
    _, url = v2_standin
    async with InfluxV2Writer(url, "green-org", "nope", TOKEN) as writer:
        with pytest.raises(InfluxRetryableError, match='bucket "nope" not found') as caught:
            await writer.write([f"m v=1 {T0}"])
    assert caught.value.status == 404


async def test_v2_writer_connection_refused_and_503(influxdb: InfluxServer) -> None:
    port = free_port()
    async with InfluxV2Writer(f"http://127.0.0.1:{port}", "o", "b", TOKEN) as writer:
        with pytest.raises(InfluxRetryableError) as caught:
            await writer.write([f"m v=1 {T0}"])
    assert caught.value.status is None
    runner, url = await serve(status_app(503, {"Retry-After": "3"}, '{"code":"unavailable","message":"busy"}'))
    try:
        async with InfluxV2Writer(url, "o", "b", TOKEN) as writer:
            with pytest.raises(InfluxRetryableError) as caught:
                await writer.write([f"m v=1 {T0}"])
        assert (caught.value.status, caught.value.retry_after_s) == (503, 3.0)
    finally:
        await runner.cleanup()

