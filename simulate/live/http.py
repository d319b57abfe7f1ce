"""The live HTTP devices, one aiohttp application for all of them:

- smart plugs and monitors (Shelly Gen2 API): `GET /{site}/{device}/rpc/Switch.GetStatus`
- meters and CRAC units (a JSON status): `GET /{site}/{device}/api/status`
- Redfish servers, each on a port of its own (Redfish links are absolute paths):
  `/redfish/v1/` -> `Chassis` -> `Chassis/1` -> `EnvironmentMetrics` (PowerWatts).

Every answer is the simulator's reading for this minute (simulate.live.readings)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from simulate.live.readings import LiveEstate

ESTATE = web.AppKey("estate", LiveEstate)
REDFISH_PORTS = web.AppKey("redfish_ports", dict)  # port -> (site, device)


def _energy_kwh(estate: LiveEstate, site: str, device: str) -> float | None:
    for r in estate.readings(site, device):
        if r.tags.get("scope") == "device" and "energy_kwh" in r.fields:
            return r.fields["energy_kwh"]
    return None


async def shelly(request: web.Request) -> web.Response:
    estate, site, device = request.app[ESTATE], request.match_info["site"], request.match_info["device"]
    watts = estate.watts(site, device)
    kwh = _energy_kwh(estate, site, device)
    body: dict[str, Any] = {"id": int(request.query.get("id", "0")), "source": "init", "output": watts > 1.0,
                            "apower": round(watts, 1), "voltage": 230.1,
                            "current": round(watts / 230.1, 3)}
    if kwh is not None:
        body["aenergy"] = {"total": round(kwh * 1000, 3)}
    return web.json_response(body)


async def meter(request: web.Request) -> web.Response:
    estate, site, device = request.app[ESTATE], request.match_info["site"], request.match_info["device"]
    body: dict[str, Any] = {"power": round(estate.watts(site, device), 1)}
    kwh = _energy_kwh(estate, site, device)
    if kwh is not None:
        body["energy"] = round(kwh, 3)
    return web.json_response(body)


def _odata(path: str, **doc: Any) -> dict[str, Any]:
    return {"@odata.id": path, **doc}


async def redfish(request: web.Request) -> web.Response:
    port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
    served = request.app[REDFISH_PORTS].get(port)
    if served is None:
        raise web.HTTPNotFound()
    site, device = served
    path = "/" + request.match_info["tail"].strip("/")
    root = "/redfish/v1"
    docs: dict[str, dict[str, Any]] = {
        root: _odata(root, Id="RootService", Name=f"{device} (simulated)", RedfishVersion="1.15.0",
                     Chassis={"@odata.id": f"{root}/Chassis"}),
        f"{root}/Chassis": _odata(f"{root}/Chassis", Name="Chassis Collection", **{"Members@odata.count": 1},
                                  Members=[{"@odata.id": f"{root}/Chassis/1"}]),
        f"{root}/Chassis/1": _odata(f"{root}/Chassis/1", Id="1", Name=device, ChassisType="RackMount",
                                    EnvironmentMetrics={"@odata.id": f"{root}/Chassis/1/EnvironmentMetrics"}),
    }
    if path == f"{root}/Chassis/1/EnvironmentMetrics":
        estate = request.app[ESTATE]
        return web.json_response(_odata(path, Id="EnvironmentMetrics", Name="Chassis Environment Metrics",
                                        PowerWatts={"Reading": round(estate.watts(site, device), 1)}))
    if path not in docs:
        raise web.HTTPNotFound()
    return web.json_response(docs[path])


def application(estate: LiveEstate, redfish_ports: dict[int, tuple[str, str]]) -> web.Application:
    app = web.Application()
    app[ESTATE] = estate
    app[REDFISH_PORTS] = redfish_ports
    app.router.add_get("/{site}/{device}/rpc/Switch.GetStatus", shelly)
    app.router.add_get("/{site}/{device}/api/status", meter)
    app.router.add_get("/{tail:redfish/v1.*}", redfish)
    return app
