"""Lay out the demo estate: one snmpsim data file per device and the config that
polls them. Usage: python3 demo/estate.py DATA_DIR SNMP_PORT INFLUX_PORT"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "recordings"

# (site, device, recording, profile (None: matched by sysObjectID), tags)
ESTATE = [
    ("dc-north", "pdu-a1", "apc-rpdu2", None, {"room": "hall-1", "rack": "A1"}),
    ("dc-north", "pdu-a2", "apc-rpdu2", None, {"room": "hall-1", "rack": "A2"}),
    ("dc-north", "ups-1", "ups-mib", "ups-mib", {"room": "plant"}),
    ("hq", "core-sw-1", "if-mib", "if-mib", {"floor": "2"}),
    ("hq", "printer-2f", "printer-mib", "printer-mib", {"floor": "2"}),
]


def main(data: Path, snmp_port: int, influx_port: int) -> None:
    snmp_dir = data / "snmp"
    for old in snmp_dir.glob("*.snmprec"):
        old.unlink()
    sites: dict[str, list[str]] = {}
    for site, device, recording, profile, tags in ESTATE:
        source = RECORDINGS / f"{recording}.snmprec"
        if not source.exists():
            continue  # a recording not written yet: leave that device out
        shutil.copy(source, snmp_dir / f"{device}.snmprec")
        tag_text = ", ".join(f"{k}: {v}" for k, v in tags.items())
        sites.setdefault(site, []).append(
            f"      - name: {device}\n"
            f"        address: 127.0.0.1:{snmp_port}\n"
            f"        snmp: {{version: 2c, community: {device}}}\n"
            f"        tags: {{{tag_text}}}\n"
            + (f"        profile: {profile}\n" if profile else "")
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
