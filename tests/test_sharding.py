"""`--shard I/N`: N collectors together poll every device exactly once."""

from __future__ import annotations

import subprocess
import sys

import yaml
from collectorhelp import RECORDINGS, write_config

from greenwatch.service import in_shard


def test_shards_partition_any_inventory():
    names = [(f"site-{s}", f"dev-{d}") for s in range(7) for d in range(300)]
    for count in (1, 2, 3, 5):
        owners = [[i for i in range(count) if in_shard(site, dev, i, count)] for site, dev in names]
        assert all(len(o) == 1 for o in owners)  # each device in exactly one shard
        sizes = [sum(1 for o in owners if o == [i]) for i in range(count)]
        assert min(sizes) > 0.8 * len(names) / count  # and the shares are even


def test_two_processes_poll_every_device_exactly_once(tmp_path, snmpsim, influxdb, influx_db):
    agent = snmpsim.start({"pdu": RECORDINGS / "apc-rpdu2.snmprec"})
    try:
        sites = [
            {"name": f"site-{s}", "devices": [
                {"name": f"pdu-{d}", "address": agent.address, "snmp": {"version": "2c", "community": "pdu"}}
                for d in range(12)
            ]}
            for s in range(3)
        ]
        config = write_config(tmp_path, influxdb.url, influx_db, yaml.safe_dump(sites))
        procs = [
            subprocess.Popen([sys.executable, "-m", "greenwatch.cli", "poll", "--once", "--config", str(config),
                              "--shard", f"{i}/2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in (1, 2)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        agent.stop()
    polls = influxdb.rows("SELECT up, site, device FROM poll", influx_db)
    seen = [(r["site"], r["device"]) for r in polls]
    expected = {(f"site-{s}", f"pdu-{d}") for s in range(3) for d in range(12)}
    assert sorted(seen) == sorted(expected)  # none missed, none twice
    assert all(r["up"] == 1 for r in polls)
    # Each shard kept its own spool beside the config.
    assert (tmp_path / "spool.shard1of2.once.db").exists() and (tmp_path / "spool.shard2of2.once.db").exists()
