"""Where each live device answers, and the config that polls it there.

`live_document()` takes the demo estate's config (simulate.estate.estate_document, whose
addresses are documentation addresses) and points every device at a live endpoint:
SNMP devices at snmpsim agents (at most AGENT_FILES data files each, one community per
device), plugs, monitors and meters at one HTTP port (a path per device), Redfish
servers at a port each. The layout (live.json) tells `python -m simulate.live` what to
serve where."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# snmpsim slows down past ~30 data files per process: more agents instead.
AGENT_FILES = 25
LAYOUT = "live.json"


@dataclass
class Agent:
    """One snmpsim process: its UDP port, data directory, and devices (site, device, profiles)."""

    port: int
    data_dir: str
    devices: list[tuple[str, str, list[str]]] = field(default_factory=list)


@dataclass
class Layout:
    bind: str
    http_port: int
    redfish: dict[int, tuple[str, str]] = field(default_factory=dict)
    agents: list[Agent] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Layout:
        data = json.loads(path.read_text())
        return cls(data["bind"], data["http_port"],
                   {int(p): (s, d) for p, (s, d) in data["redfish"].items()},
                   [Agent(a["port"], a["data_dir"], [(s, d, list(p)) for s, d, p in a["devices"]])
                    for a in data["agents"]])

    def ports(self) -> list[tuple[str, int]]:
        """Every (protocol, port) the live devices listen on."""
        return [("tcp", self.http_port)] + [("tcp", p) for p in self.redfish] + [("udp", a.port) for a in self.agents]


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ports(base: int | None, bind: str) -> Iterator[tuple[int, int]]:
    """(tcp, udp) port pairs: consecutive from `base` (docker-compose), else free ones."""
    n = 0
    while True:
        if base is None:
            yield free_port(socket.SOCK_STREAM, bind), free_port(socket.SOCK_DGRAM, bind)
        else:
            yield base + n, base + n
        n += 1


def community(site: str, device: str) -> str:
    return f"{site}--{device}"


def live_document(document: dict[str, Any], data_dir: Path, host: str = "127.0.0.1", bind: str = "127.0.0.1",
                  base_port: int | None = None) -> tuple[dict[str, Any], Layout]:
    """The estate's config with every device pointed at `host`, and the layout to serve.
    `base_port`: fixed ports from there (for containers), else free ones on `bind`."""
    ports = _ports(base_port, bind)
    http_port = next(ports)[0]
    layout = Layout(bind, http_port)
    agent: Agent | None = None
    for site in document["sites"]:
        for dev in site["devices"]:
            name = f"{site['name']}/{dev['name']}"
            if "snmp" in dev:
                if agent is None or len(agent.devices) >= AGENT_FILES:
                    port = next(ports)[1]
                    agent = Agent(port, str(data_dir / "snmp" / f"agent-{len(layout.agents) + 1}"))
                    layout.agents.append(agent)
                profiles = dev["profile"] if isinstance(dev.get("profile"), list) else [dev["profile"]]
                agent.devices.append((site["name"], dev["name"], profiles))
                dev["address"] = f"{host}:{agent.port}"
                dev["snmp"] = {**dev["snmp"], "community": community(site["name"], dev["name"])}
            elif "redfish" in dev:
                port = next(ports)[0]
                layout.redfish[port] = (site["name"], dev["name"])
                dev["redfish"] = {"url": f"http://{host}:{port}"}
            elif "http" in dev:
                url = f"http://{host}:{http_port}/{name}"
                dev["http"] = {**dev["http"], "url": url + "/api/status" if dev["http"]["type"] == "json" else url}
    return document, layout


def write_live_estate(data_dir: Path, influx_url: str, database: str = "greenwatch", *, scale: int = 1,
                      host: str = "127.0.0.1", bind: str = "127.0.0.1", base_port: int | None = None,
                      extra: dict[str, Any] | None = None) -> Path:
    """Write the live estate's config (DATA_DIR/greenwatch.yaml: the demo estate pointed at
    its live devices, `extra` merged over the top level) and its layout (live.json)."""
    import yaml

    from simulate.estate import estate_document

    data_dir.mkdir(parents=True, exist_ok=True)
    document = estate_document(influx_url, database, data_dir / "greenwatch.spool.db", scale)
    document, layout = live_document(document, data_dir, host, bind, base_port)
    for key, value in (extra or {}).items():
        document[key] = {**document[key], **value} if isinstance(value, dict) and isinstance(document.get(key), dict) \
            else value
    layout.save(data_dir / LAYOUT)
    path = data_dir / "greenwatch.yaml"
    header = ("# The greenwatch demo estate, live (simulate/live): every device answers on this machine\n"
              "# with the simulator's readings. Written by `greenwatch demo`; rewritten on each start.\n")
    path.write_text(header + yaml.safe_dump(document, sort_keys=False, width=120), encoding="utf-8")
    return path
