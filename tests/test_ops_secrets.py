"""No secret leaks: a real `greenwatch run` (DEBUG logs) with an SNMPv3 user (right and
wrong keys, against net-snmp's snmpd), a Redfish BMC with a password (right and
wrong), an InfluxDB token, an SMTP password (the weekly report's server refuses the
login) and the endpoint's own token. Every log line and every /healthz, /metrics,
/devices and /findings answer, and `greenwatch status`, are searched for each secret
as written, URL-quoted and in HTTP basic auth's base64; none may appear."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from collectorhelp import Running, greenwatch, write_config
from opshelp import TOKEN, LoopThread, free_port, get, http_block, metrics, value, wait_until
from test_redfish import MOCKUPS, MockBMC

BMC_USER, BMC_PASSWORD = "gw-reader", "bmc-Pa55word-7731"
INFLUX_TOKEN = "influx-token-5bd1e0c2a9"
SMTP_USER, SMTP_PASSWORD = "mailer", "smtp-Secret-99c1"


class RefuseLogins:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "530 5.7.0 not authenticated"


def _refuse(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    return AuthResult(success=False, handled=False)


def forms(secret: str) -> list[str]:
    return [secret, urllib.parse.quote(secret), base64.b64encode(secret.encode()).decode()]


def test_no_secret_in_logs_or_answers(tmp_path, snmpd, influxdb, influx_db):
    v3 = snmpd.v3_user("SHA256", "AES")
    servers = LoopThread()
    bmc = servers.call(MockBMC(MOCKUPS / "legacy-only", username=BMC_USER, password=BMC_PASSWORD).start())
    basic_bmc = servers.call(MockBMC(MOCKUPS / "legacy-only", username=BMC_USER, password=BMC_PASSWORD,
                                     basic=True).start())
    smtp = Controller(RefuseLogins(), hostname="127.0.0.1", port=free_port(), auth_required=True,
                      auth_require_tls=False, authenticator=_refuse)
    smtp.start()
    port = free_port()
    try:
        def snmp(auth_key: str, priv_key: str) -> dict:
            return {"version": 3, "user": v3.name, "auth_protocol": v3.auth_proto, "auth_key": auth_key,
                    "priv_protocol": v3.priv_proto, "priv_key": priv_key}

        devices = [
            {"name": "host-v3", "address": snmpd.address, "snmp": snmp(v3.auth_key, v3.priv_key)},
            {"name": "host-wrong-auth", "address": snmpd.address, "snmp": snmp(v3.auth_key[::-1], v3.priv_key)},
            {"name": "bmc", "redfish": {"url": bmc.url, "username": BMC_USER, "password": BMC_PASSWORD}},
            {"name": "bmc-basic", "redfish": {"url": basic_bmc.url, "username": BMC_USER, "password": BMC_PASSWORD,
                                              "auth": "basic"}},
            {"name": "bmc-wrong", "redfish": {"url": bmc.url, "username": BMC_USER, "password": BMC_PASSWORD[::-1]}},
        ]
        report = {"report": {"out_dir": str(tmp_path / "reports"), "recipients": [{"to": ["ops@example.org"]}],
                             "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                                      "username": SMTP_USER, "password": SMTP_PASSWORD, "attempts": 1}}}
        config = write_config(tmp_path, influxdb.url, influx_db, yaml.safe_dump([{"name": "lab", "devices": devices}]),
                              interval="2s", extra=http_block(port) + yaml.safe_dump(report)
                              + "collector:\n  snmp_engine: gufo\n")
        text = config.read_text().replace(influx_db + "\n", f"{influx_db}\n  token: {INFLUX_TOKEN}\n", 1)
        config.write_text(text)
        assert f"token: {INFLUX_TOKEN}" in config.read_text()

        run = Running(config, tmp_path / "run.log")
        answers = []
        try:
            run.wait_for("HTTP endpoint on")
            # Every device polled a few times, the wrong ones down with their errors.
            samples = wait_until(lambda: (m := metrics(port)) and all(
                m.get(("greenwatch_polls_total", (("device", d["name"]), ("kind", k), ("site", "lab"))), 0) >= 2
                for d, k in zip(devices, ["host", "host", "server", "server", "server"])) and m,
                timeout=60, what="three polls of each device")
            assert value(samples, "greenwatch_device_up", site="lab", device="host-v3", kind="host") == 1
            assert value(samples, "greenwatch_device_up", site="lab", device="bmc", kind="server") == 1
            assert value(samples, "greenwatch_device_up", site="lab", device="bmc-basic", kind="server") == 1
            assert value(samples, "greenwatch_device_up", site="lab", device="host-wrong-auth", kind="host") == 0
            assert value(samples, "greenwatch_device_up", site="lab", device="bmc-wrong", kind="server") == 0
            run.wait_for("Authentication credentials invalid", timeout=60)  # the report job tried to log in
            for path in ("/healthz", "/metrics", "/devices", "/findings"):
                status, body = get(port, path)
                assert status == 200, (path, body)
                answers.append(body)
            status = greenwatch("status", "--config", str(config), "--json")
            assert status.returncode == 0, status.stderr
            answers.append(status.stdout + status.stderr)
        finally:
            assert run.terminate() == 0
        log = run.log()
        assert "lab/host-wrong-auth: down" in log and "lab/bmc-wrong: down" in log
        assert bmc.logins > 0  # the password did go to the BMC
        everything = "\n".join([log, *answers])
        secrets = {"SNMPv3 auth key": v3.auth_key, "SNMPv3 priv key": v3.priv_key,
                   "wrong SNMPv3 auth key": v3.auth_key[::-1], "Redfish password": BMC_PASSWORD,
                   "wrong Redfish password": BMC_PASSWORD[::-1], "InfluxDB token": INFLUX_TOKEN,
                   "SMTP password": SMTP_PASSWORD, "endpoint token": TOKEN}
        for what, secret in secrets.items():
            for form in forms(secret):
                assert form not in everything, f"{what} appears as {form!r}"
        for user_secret in (f"{BMC_USER}:{BMC_PASSWORD}", f"{SMTP_USER}:{SMTP_PASSWORD}", f"\0{SMTP_USER}\0{SMTP_PASSWORD}"):
            assert base64.b64encode(user_secret.encode()).decode() not in everything
    finally:
        smtp.stop()
        servers.call(bmc.stop())
        servers.call(basic_bmc.stop())
        servers.close()
