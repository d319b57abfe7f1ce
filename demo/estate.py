"""Lay out the demo estate: one snmpsim data file per device and the config that
polls them. Usage: python3 demo/estate.py DATA_DIR SNMP_PORT INFLUX_PORT"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "recordings"

# Each device: where it sits, which recording plays it, its profile (None: matched by
# sysObjectID), its kind where the profile does not say, and its inventory tags.
ESTATE = [
    dict(site="dc-north", device="pdu-a1", recording="apc-rpdu2", tags={"room": "hall-1", "rack": "A1"}),
    dict(site="dc-north", device="pdu-a2", recording="apc-rpdu2", tags={"room": "hall-1", "rack": "A2"}),
    dict(site="dc-north", device="pdu-b1", recording="raritan-pdu2", tags={"room": "hall-1", "rack": "B1"}),
    dict(site="dc-north", device="ups-1", recording="ups-mib", profile="ups-mib", tags={"room": "plant"}),
    dict(site="dc-north", device="ups-2", recording="apc-ups", tags={"room": "plant"}),
    dict(site="hq", device="core-sw-1", recording="if-mib", profile="if-mib", kind="switch", tags={"floor": "2"}),
    dict(site="hq", device="poe-sw-2", recording="power-ethernet", profile="power-ethernet", kind="switch",
         tags={"floor": "2"}),
    dict(site="hq", device="printer-2f", recording="printer-mib", profile="printer-mib", tags={"floor": "2"}),
]


def main(data: Path, snmp_port: int, influx_port: int) -> None:
    snmp_dir = data / "snmp"
    for old in snmp_dir.glob("*.snmprec"):
        old.unlink()
    sites: dict[str, list[str]] = {}
    for item in ESTATE:
        site, device = item["site"], item["device"]
        source = RECORDINGS / f"{item['recording']}.snmprec"
        if not source.exists():
            continue  # a recording not written yet: leave that device out
        shutil.copy(source, snmp_dir / f"{device}.snmprec")
        tag_text = ", ".join(f"{k}: {v}" for k, v in item["tags"].items())
        sites.setdefault(site, []).append(
            f"      - name: {device}\n"
            f"        address: 127.0.0.1:{snmp_port}\n"
            f"        snmp: {{version: 2c, community: {device}}}\n"
            f"        tags: {{{tag_text}}}\n"
            + (f"        profile: {item['profile']}\n" if item.get("profile") else "")
            + (f"        kind: {item['kind']}\n" if item.get("kind") else "")
        )
    config = (
        f"influxdb:\n  url: http://127.0.0.1:{influx_port}\n  database: greenwatch\n"
        f"defaults:\n  interval: 10s\n  timeout: 2s\n"
        f"spool:\n  path: {data / 'spool.db'}\n"
        "sites:\n"
        + "".join(f"  - name: {site}\n    devices:\n" + "".join(devs) for site, devs in sites.items())
    )
    (data / "greenwatch.yaml").write_text(config)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
