"""SNMPv3 authPriv through `greenwatch poll --once` against net-snmp's real snmpd,
on each engine: the right keys read the host; a wrong key is a clear per-device
error that does not stop the other devices."""

from __future__ import annotations

import pytest
import yaml
from collectorhelp import greenwatch, write_config

from collector.snmp.engines import ENGINE_NAMES


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_v3_authpriv_and_wrong_keys(tmp_path, snmpd, influxdb, influx_db, engine):
    good = snmpd.v3_user("SHA256", "AES")
    sha1 = snmpd.v3_user("SHA", "AES")

    def v3(user, auth_key=None, priv_key=None):
        return {"version": 3, "user": user.name, "auth_protocol": user.auth_proto,
                "auth_key": auth_key or user.auth_key, "priv_protocol": user.priv_proto,
                "priv_key": priv_key or user.priv_key}

    devices = [
        {"name": "host-sha256", "address": snmpd.address, "snmp": v3(good)},
        {"name": "host-sha1", "address": snmpd.address, "snmp": v3(sha1)},
        {"name": "wrong-auth", "address": snmpd.address, "snmp": v3(good, auth_key="not-the-auth-key")},
        {"name": "wrong-priv", "address": snmpd.address, "snmp": v3(sha1, priv_key="not-the-priv-key")},
    ]
    config = write_config(tmp_path, influxdb.url, influx_db,
                          yaml.safe_dump([{"name": "lab", "devices": devices}]),
                          extra=f"collector:\n  snmp_engine: {engine}\n")
    result = greenwatch("poll", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    secrets = [good.auth_key, good.priv_key, sha1.auth_key, sha1.priv_key, "not-the-auth-key", "not-the-priv-key"]
    for secret in secrets:
        assert secret not in result.stdout + result.stderr

    polls = {r["device"]: r for r in influxdb.rows("SELECT * FROM poll", influx_db)}
    assert polls["host-sha256"]["up"] == 1 and polls["host-sha1"]["up"] == 1, polls
    assert polls["wrong-auth"]["up"] == 0
    assert "authentication" in polls["wrong-auth"]["error"].lower()
    # snmpd drops what it cannot decrypt, so a wrong priv key looks like silence.
    assert polls["wrong-priv"]["up"] == 0 and "timeout" in polls["wrong-priv"]["error"]
    # The good ones were matched by sysObjectID to the net-snmp Linux profile and read.
    hosts = influxdb.rows("SELECT uptime_s, device, kind FROM host WHERE scope = 'device'", influx_db)
    assert {r["device"] for r in hosts} == {"host-sha256", "host-sha1"}
    assert all(r["kind"] == "host" and r["uptime_s"] >= 0 for r in hosts)
