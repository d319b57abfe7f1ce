"""The demo estate: a data centre and offices, laid out as a greenwatch config.

`write_estate_config(dir, influx_url, database)` writes the config file; the history
generator (simulate.history) reads that config back and gives each device a
behaviour from its kind, and the planted problems below from its name. The devices'
addresses are documentation addresses (192.0.2.0/24, RFC 5737): the estate is meant
to be simulated, not polled.

Layout for scale N (15 + 64 x N devices: 79 at scale 1, 1,039 at 16):
- dc-london: a facility meter, two CRAC units, two UPSes (ups-2 lightly loaded), hall-1
  with 4 x N racks and hall-2 (over-cooled) with 2 racks; each rack has one PDU (APC
  and Raritan in turn) with metered outlets and inlet sensors, Redfish servers on its
  outlets (fed_by) and a top-of-rack PoE switch (rack cameras and sensors). IT is
  metered at the UPS outputs (PUE category 1).
- office-1 .. office-N: a floor meter, desks (a desktop PC and its monitor each),
  two printers, smart plugs and two PoE switches. The planted problems are in office-1;
  the other offices are healthy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DC = "dc-london"
# Planted problems: (site, device) -> the behaviour that makes a shipped rule fire.
# Every other device behaves as its kind's healthy default (simulate.history.DEFAULT_ROLE).
PLANTED: dict[tuple[str, str], str] = {
    (DC, "srv-b1-02"): "zombie",           # zombie-server: idle CPU, steady power all week
    (DC, "ups-2"): "light-ups",            # ups-low-load (and ups-low-efficiency: ~84% at ~8% load)
    (DC, "crac-2"): "overcooling",         # overcooling: hall-2's inlets at 15-17 C
    (DC, "pdu-b2"): "hidden-load",         # unlabelled-outlet-load: outlet 8 draws ~90 W, no label
    ("office-1", "pc-03"): "night-owl",    # pc-on-overnight
    ("office-1", "pc-07"): "night-owl",
    ("office-1", "pc-11"): "night-owl",
    ("office-1", "prn-2"): "no-sleep",     # printer-no-sleep
    ("office-1", "sw-office-2"): "idle-ports",  # idle-switch-ports: 40 of 48 ports never up
}
# Appliances on smart plugs: a fridge is on all the time, by design.
PLUG_ROLES = {"plug-kitchen": "fridge", "plug-coffee": "appliance", "plug-screen": "appliance"}
# Site-wide problems that follow from the devices: after-hours-office-load (office-1's
# PCs, printer and fridge after hours) and pue-above-target (dc-london runs at ~1.7).
SITE_PROBLEMS = {("office-1", "after-hours-office-load"), (DC, "pue-above-target")}

# Devices that do not always answer: the share of polls that fail (and a two-hour outage),
# for the collector-health dashboards to show something. No rule reads polls.
UNRELIABLE: dict[tuple[str, str], float] = {("office-1", "mon-05"): 0.03}

DESKS_PER_OFFICE = 12
SERVERS_PER_RACK = 6


def planted_role(site: str, device: str) -> str | None:
    """The behaviour planted on this device, if any."""
    if device in PLUG_ROLES:
        return PLUG_ROLES[device]
    return PLANTED.get((site, device))


def unreliable(site: str, device: str) -> float:
    """The share of this device's polls that fail (0: none)."""
    return UNRELIABLE.get((site, device), 0.0)


def _address(n: int) -> str:
    # 192.0.2.0/24 and 198.51.100.0/24 (documentation ranges): never a real agent.
    return f"192.0.2.{n % 250 + 1}" if n < 250 else f"198.51.100.{n % 250 + 1}"


class _Numbers:
    """Hands out addresses in turn."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return _address(self.n)


def _snmp(ids: _Numbers, profile: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"address": ids.next(), "snmp": {"version": "2c", "community": "public"}, "profile": profile, **extra}


def _http(ids: _Numbers, kind: str, **extra: Any) -> dict[str, Any]:
    if kind == "meter":
        source = {"type": "json", "url": f"http://{ids.next()}/api/status",
                  "fields": {"watts": {"path": "power", "unit": "W"}, "energy_kwh": {"path": "energy", "unit": "kWh"}}}
    else:
        source = {"type": "shelly", "url": f"http://{ids.next()}"}
    return {"http": source, "kind": kind, **extra}


def _data_centre(scale: int, ids: _Numbers) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {"name": "dc-meter", **_http(ids, "meter"), "tags": {"room": "intake"}},
        {"name": "ups-1", **_snmp(ids, "apc-ups"), "tags": {"room": "plant"}},
        {"name": "ups-2", **_snmp(ids, "apc-ups"), "tags": {"room": "plant"}},
        {"name": "crac-1", **_http(ids, "meter"), "kind": "cooling", "tags": {"room": "hall-1"}},
        {"name": "crac-2", **_http(ids, "meter"), "kind": "cooling", "tags": {"room": "hall-2"}},
    ]
    racks = [("hall-1", f"a{i}", "ups-1", SERVERS_PER_RACK) for i in range(1, 4 * scale + 1)]
    racks += [("hall-2", f"b{i}", "ups-2", SERVERS_PER_RACK // 2) for i in (1, 2)]
    for n, (room, rack, ups, servers) in enumerate(racks):
        pdu = f"pdu-{rack}"
        profile = "apc-rpdu2" if n % 2 == 0 else "raritan-pdu2"
        tags = {"room": room, "rack": rack.upper()}
        devices.append({"name": pdu, **_snmp(ids, profile), "tags": tags, "fed_by": f"{ups}/output"})
        for s in range(1, servers + 1):
            devices.append({"name": f"srv-{rack}-{s:02d}", "kind": "server", "tags": tags,
                            "redfish": {"url": f"https://{ids.next()}", "verify_tls": False},
                            "fed_by": f"{pdu}/outlet/{s}"})
        devices.append({"name": f"sw-{rack}", **_snmp(ids, ["power-ethernet", "if-mib"], kind="switch"), "tags": tags,
                        "interval": "5m", "fed_by": f"{pdu}/outlet/{servers + 1}"})
    return {
        "name": DC,
        "timezone": "Europe/London",
        "tags": {"region": "london"},
        "tariff": {"currency": "GBP", "rate": 0.22},
        "energy": {"facility": ["dc-meter"], "it": ["ups-1/output", "ups-2/output"], "category": 1},
        "devices": devices,
    }


def _office(number: int, ids: _Numbers) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [{"name": "floor-meter", **_http(ids, "meter"), "tags": {"floor": "1"}}]
    for d in range(1, DESKS_PER_OFFICE + 1):
        floor = {"floor": "1" if d <= DESKS_PER_OFFICE // 2 else "2"}
        devices.append({"name": f"pc-{d:02d}", **_snmp(ids, "windows", kind="desktop"), "tags": floor})
        devices.append({"name": f"mon-{d:02d}", **_http(ids, "monitor"), "tags": floor})
    for p in (1, 2):
        devices.append({"name": f"prn-{p}", **_snmp(ids, "printer-mib"), "tags": {"floor": str(p)}})
    for plug in PLUG_ROLES:
        devices.append({"name": plug, **_http(ids, "plug"), "tags": {"floor": "1"}})
    for s in (1, 2):
        devices.append({"name": f"sw-office-{s}", **_snmp(ids, ["power-ethernet", "if-mib"], kind="switch"),
                        "tags": {"floor": str(s)}, "interval": "5m"})
    return {
        "name": f"office-{number}",
        "timezone": "Europe/London",
        "tags": {"region": "north"},
        "calendar": {"business_hours": "08:00-18:00", "holidays": {"country": "GB", "subdivision": "ENG"}},
        "tariff": {"currency": "GBP", "rate": 0.26},
        "energy": {"facility": ["floor-meter"]},
        "devices": devices,
    }


def estate(scale: int = 1) -> list[dict[str, Any]]:
    """The estate's sites as config mappings: one data centre and `scale` offices."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    ids = _Numbers()
    return [_data_centre(scale, ids)] + [_office(n, ids) for n in range(1, scale + 1)]


def commitment(scale: int = 1) -> dict[str, Any]:
    """The organisation's commitment: a 2024 baseline about 12% above what the estate
    draws now, halving carbon by 2030; the data centre's PUE, and the offices'
    after-hours share, capped."""
    weekly_kwh = 530 * 4 * scale + 330 + 271 * scale  # what the simulated estate draws in a week
    baseline_kwh = round(weekly_kwh * 52.18 * 1.12, -3)
    return {
        "name": "Leaders in green technology",
        "baseline": {"from": "2024-01-01", "to": "2025-01-01", "kwh": baseline_kwh, "pue": {DC: 1.9}},
        "targets": [
            {"year": 2030, "metric": "tco2e", "cut_percent": 50},
            {"year": 2030, "metric": "kwh", "cut_percent": 30},
            {"year": 2028, "metric": "pue", "site": DC, "max": 1.5},
            {"year": 2027, "metric": "after_hours_share", "max": 0.3},
        ],
    }


def estate_document(influx_url: str, database: str, spool: Path, scale: int = 1) -> dict[str, Any]:
    """The whole config file as a mapping."""
    return {
        "influxdb": {"url": influx_url, "database": database},
        "spool": {"path": str(spool)},
        "defaults": {"interval": "60s", "timeout": "2s"},
        "commitment": commitment(scale),
        "sites": estate(scale),
    }


def write_estate_config(dir: Path, influx_url: str, database: str, *, scale: int = 1,
                        name: str = "greenwatch.yaml") -> Path:
    """Write the demo estate's complete config into `dir` (spool beside it) and return
    its path. `scale` multiplies the racks of hall-1 and the offices."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    path = dir / name
    document = estate_document(influx_url, database, dir / f"{Path(name).stem}.spool.db", scale)
    header = ("# The greenwatch demo estate (simulate/estate.py; docs/simulate.md): generated, simulated,\n"
              "# never polled. `greenwatch simulate --config THIS --days 7` fills InfluxDB with its history.\n")
    path.write_text(header + yaml.safe_dump(document, sort_keys=False, width=120), encoding="utf-8")
    return path
