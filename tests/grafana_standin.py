"""A local HTTP server that holds Grafana's documented API contract for what
`greenwatch dashboards publish` uses (no Grafana can run on the test machines):

- every request needs `Authorization: Bearer <token>`, else 401;
- folders: GET /api/folders/{uid} (404 when missing), POST /api/folders {uid, title},
  PUT /api/folders/{uid} {title, version, overwrite} (412 on a stale version);
- data sources: GET /api/datasources/uid/{uid}, POST /api/datasources (409 on a taken
  name or uid), PUT /api/datasources/uid/{uid}; secureJsonData is kept but never read
  back (secureJsonFields says which are set), as Grafana does;
- dashboards: GET /api/dashboards/uid/{uid} -> {dashboard, meta}; POST /api/dashboards/db
  {dashboard, folderUid, overwrite, message} upserts by uid: without overwrite, a
  version other than the stored one is 412 `version-mismatch`, and another dashboard
  of the same title in the folder is 412 `name-exists`; each save bumps the version.

It runs an aiohttp server on 127.0.0.1 (a free port) in a thread of its own, so the
synchronous grafana-client can talk to it from the test, and records every write.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from realparts.web import serve


@dataclass
class State:
    token: str
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {dashboard, folderUid}
    writes: list[str] = field(default_factory=list)  # "POST /api/..." of every accepted write
    # uid -> how many times someone else saves that dashboard right after it is read
    # (a colleague editing in the UI while publish runs).
    edit_after_read: dict[str, int] = field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


def _json(status: int, body: Any) -> web.Response:
    return web.json_response(body, status=status)


def _app(state: State) -> web.Application:
    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {state.token}":
            return _json(401, {"message": "invalid API key"})
        return await handler(request)

    async def get_folder(request: web.Request) -> web.Response:
        folder = state.folders.get(request.match_info["uid"])
        return _json(200, folder) if folder else _json(404, {"message": "folder not found"})

    async def post_folder(request: web.Request) -> web.Response:
        body = await request.json()
        uid = body.get("uid")
        if uid in state.folders:
            return _json(409, {"message": "a folder with the same uid already exists"})
        state.folders[uid] = {"id": state.new_id(), "uid": uid, "title": body["title"], "version": 1}
        state.writes.append(f"POST /api/folders {uid}")
        return _json(200, state.folders[uid])

    async def put_folder(request: web.Request) -> web.Response:
        folder = state.folders.get(request.match_info["uid"])
        if not folder:
            return _json(404, {"message": "folder not found"})
        body = await request.json()
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            return _json(412, {"status": "version-mismatch", "message": "the folder has been changed by someone else"})
        folder.update(title=body["title"], version=folder["version"] + 1)
        state.writes.append(f"PUT /api/folders/{folder['uid']}")
        return _json(200, folder)

    def _public(ds: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in ds.items() if k != "secureJsonData"}
        shown["secureJsonFields"] = {k: True for k in ds.get("secureJsonData", {})}
        return shown

    async def get_datasource(request: web.Request) -> web.Response:
        ds = state.datasources.get(request.match_info["uid"])
        return _json(200, _public(ds)) if ds else _json(404, {"message": "Data source not found"})

    async def post_datasource(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("uid") in state.datasources or any(d["name"] == body.get("name") for d in state.datasources.values()):
            return _json(409, {"message": "data source with the same name already exists"})
        ds = {"id": state.new_id(), "orgId": 1, "readOnly": False, "basicAuth": False, **body}
        state.datasources[body["uid"]] = ds
        state.writes.append(f"POST /api/datasources {body['uid']}")
        return _json(200, {"datasource": _public(ds), "id": ds["id"], "message": "Datasource added"})

    async def put_datasource(request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        if uid not in state.datasources:
            return _json(404, {"message": "Data source not found"})
        body = await request.json()
        old = state.datasources[uid]
        state.datasources[uid] = {"id": old["id"], "orgId": 1, "readOnly": False, "basicAuth": False,
                                  "secureJsonData": old.get("secureJsonData", {}), **body}
        state.writes.append(f"PUT /api/datasources/uid/{uid}")
        return _json(200, {"datasource": _public(state.datasources[uid]), "message": "Datasource updated"})

    async def get_dashboard(request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        stored = state.dashboards.get(uid)
        if not stored:
            return _json(404, {"message": "Dashboard not found"})
        answer = {"dashboard": copy.deepcopy(stored["dashboard"]),
                  "meta": {"folderUid": stored["folderUid"], "version": stored["dashboard"]["version"],
                           "slug": uid, "url": f"/d/{uid}/{uid}"}}
        if state.edit_after_read.get(uid):
            state.edit_after_read[uid] -= 1
            stored["dashboard"]["version"] += 1  # someone saves it in the UI meanwhile
        return _json(200, answer)

    async def post_dashboard(request: web.Request) -> web.Response:
        body = await request.json()
        dashboard = body.get("dashboard") or {}
        uid, folder_uid, overwrite = dashboard.get("uid"), body.get("folderUid"), bool(body.get("overwrite"))
        if not uid or not dashboard.get("title"):
            return _json(400, {"message": "Dashboard title and uid are needed"})
        if folder_uid and folder_uid not in state.folders:
            return _json(400, {"message": "folder not found"})
        existing = state.dashboards.get(uid)
        if not overwrite:
            if existing and dashboard.get("version") != existing["dashboard"]["version"]:
                return _json(412, {"status": "version-mismatch",
                                   "message": "The dashboard has been changed by someone else"})
            for other_uid, other in state.dashboards.items():
                if (other_uid != uid and other["folderUid"] == folder_uid
                        and other["dashboard"]["title"] == dashboard["title"]):
                    return _json(412, {"status": "name-exists",
                                       "message": "A dashboard with the same name in the folder already exists"})
        version = existing["dashboard"]["version"] + 1 if existing else 1
        stored = {**copy.deepcopy(dashboard), "id": existing["dashboard"]["id"] if existing else state.new_id(),
                  "version": version}
        state.dashboards[uid] = {"dashboard": stored, "folderUid": folder_uid}
        state.writes.append(f"POST /api/dashboards/db {uid}")
        return _json(200, {"id": stored["id"], "uid": uid, "url": f"/d/{uid}/{uid}", "status": "success",
                           "version": version, "slug": uid})

    app = web.Application(middlewares=[auth])
    app.router.add_get("/api/folders/{uid}", get_folder)
    app.router.add_post("/api/folders", post_folder)
    app.router.add_put("/api/folders/{uid}", put_folder)
    app.router.add_get("/api/datasources/uid/{uid}", get_datasource)
    app.router.add_post("/api/datasources", post_datasource)
    app.router.add_put("/api/datasources/uid/{uid}", put_datasource)
    app.router.add_get("/api/dashboards/uid/{uid}", get_dashboard)
    app.router.add_post("/api/dashboards/db", post_dashboard)
    return app


class GrafanaStandin:
    """Start with `start()`, stop with `stop()`; `url` and `state` in between."""

    def __init__(self, token: str) -> None:
        self.state = State(token)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grafana-standin", daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        self._runner, self.url = await serve(_app(self.state))

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
