"""The service's HTTP endpoint, JSON logs and `greenwatch status`, on a real `greenwatch
run` process with snmpsim, a silent SNMP address and a private influxd that the test
stops and starts again."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from collectorhelp import RECORDINGS, Running, greenwatch, write_config
from opshelp import NO_REPORT, TOKEN, free_port, get, get_json, http_block, metrics, value, wait_until
from realparts.influx import start_influx_server


@pytest.fixture(scope="module")
def pdu_agent(snmpsim):
    agent = snmpsim.start({"pdu-a1": RECORDINGS / "apc-rpdu2.snmprec"})
    yield agent
    agent.stop()



def write_lines(server, db: str, lines: list[str]) -> None:
    request = urllib.request.Request(f"{server.url}/write?db={db}&precision=s", data="\n".join(lines).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def polls_in_influx(server, db: str) -> dict[tuple[str, int], int]:
    """{(device, up): number of poll points}."""
    counts: dict[tuple[str, int], int] = {}
    for row in server.rows("SELECT device, up FROM poll", db):
        counts[(row["device"], row["up"])] = counts.get((row["device"], row["up"]), 0) + 1
    return counts


def test_endpoint_health_metrics_auth_findings_status_and_json_logs(tmp_path, pdu_agent, silent_agent):
    server = start_influx_server(tmp_path / "influx")
    port = free_port()
    try:
        server.create_database("gw")
        config = write_config(tmp_path, server.url, "gw", f"""\
            - name: dc-north
              devices:
                - name: pdu-a1
                  address: {pdu_agent.address}
                  snmp: {{version: 2c, community: pdu-a1}}
                - name: silent-ups
                  address: {silent_agent}
                  snmp: {{version: 2c, community: public}}
                  profile: ups-mib
            """, interval="2s", extra=http_block(port, max_spool_age="3s") + "logging:\n  format: json\n" + NO_REPORT)
        run = Running(config, tmp_path / "run.log")
        try:
            run.wait_for("HTTP endpoint on")
            status, health = get_json(port, "/healthz", token=None)
            assert status == 200 and health["status"] == "ok", health
            assert health["scheduler_running"] is True and health["influxdb"]["reachable"] is True
            assert health["devices"] == 2

            for path in ("/metrics", "/devices", "/findings"):
                assert get(port, path, token=None)[0] == 401, path
                assert get(port, path, token=TOKEN[:-1] + "x")[0] == 401, path
                assert get(port, path)[0] == 200, path

            devices = wait_until(lambda: (d := get_json(port, "/devices")[1]) and all(x["polls"] for x in d) and d,
                                 what="both devices polled")
            by_name = {d["device"]: d for d in devices}
            assert by_name["pdu-a1"]["up"] is True and by_name["pdu-a1"]["watts"] > 0
            assert by_name["pdu-a1"]["last_error"] is None and by_name["pdu-a1"]["last_poll"].endswith("Z")
            assert by_name["silent-ups"]["up"] is False and "timeout" in by_name["silent-ups"]["last_error"]

            # /metrics against what reached InfluxDB, between two scrapes with nothing
            # polled and nothing pending in between (polls are 2 s apart).
            def settled():
                first = metrics(port)
                counted = polls_in_influx(server, "gw")
                second = metrics(port)
                quiet = first == second and value(first, "greenwatch_spool_pending_points") == 0
                return (first, counted) if quiet else None

            samples, counted = wait_until(settled, what="a quiet moment between polls")
            labels = {"site": "dc-north", "kind": "pdu", "device": "pdu-a1"}
            ups = {"site": "dc-north", "kind": "ups", "device": "silent-ups"}
            assert value(samples, "greenwatch_polls_total", **labels) == counted[("pdu-a1", 1)]
            assert value(samples, "greenwatch_poll_failures_total", **labels) == 0
            assert value(samples, "greenwatch_polls_total", **ups) == counted[("silent-ups", 0)]
            assert value(samples, "greenwatch_poll_failures_total", **ups) == counted[("silent-ups", 0)]
            assert value(samples, "greenwatch_device_up", **labels) == 1
            assert value(samples, "greenwatch_device_up", **ups) == 0
            assert value(samples, "greenwatch_poll_duration_seconds_count", **ups) == counted[("silent-ups", 0)]
            # The silent device's polls each waited out its 1 s timeout.
            assert value(samples, "greenwatch_poll_duration_seconds_sum", **ups) >= 0.9 * counted[("silent-ups", 0)]
            accepted = value(samples, "greenwatch_points_accepted_total")
            assert accepted > sum(counted.values())
            assert value(samples, "greenwatch_points_written_total") == accepted
            assert value(samples, "greenwatch_points_rejected_total") == 0
            assert value(samples, "greenwatch_points_dropped_total") == 0
            assert value(samples, "greenwatch_spool_oldest_age_seconds") == 0
            assert value(samples, "greenwatch_job_runs_total", job="rules") >= 0
            assert value(samples, "greenwatch_reports_sent_total") == 0

            # Open findings: the newest point of each finding decides.
            now = int(time.time())
            write_lines(server, "gw", [
                f'finding,rule=pc-overnight,site=dc-north,device=pc-1,severity=warning open=1i,state="opened",'
                f'id="pc-overnight:dc-north/pc-1",summary="PC on all night",kwh_per_year=180.5 {now - 60}',
                f'finding,rule=printer-sleep,site=dc-north,device=prn-1,severity=info open=1i,state="opened",'
                f'id="printer-sleep:dc-north/prn-1",summary="never sleeps",kwh_per_year=40 {now - 120}',
                f'finding,rule=printer-sleep,site=dc-north,device=prn-1,severity=info open=0i,state="resolved",'
                f'id="printer-sleep:dc-north/prn-1" {now - 30}',
            ])
            status, findings = get_json(port, "/findings")
            assert status == 200
            assert [(f["rule"], f["device"], f["severity"], f["summary"], f["kwh_per_year"]) for f in findings] == [
                ("pc-overnight", "pc-1", "warning", "PC on all night", 180.5)]

            # greenwatch status, from the running service.
            result = greenwatch("status", "--config", str(config), "--json")
            assert result.returncode == 0, result.stderr
            shown = json.loads(result.stdout)
            assert shown["source"] == f"the service at http://127.0.0.1:{port}"
            assert {d["device"]: d["up"] for d in shown["devices"]} == {"pdu-a1": True, "silent-ups": False}
            assert [f["rule"] for f in shown["findings"]] == ["pc-overnight"]

            # InfluxDB down: 503 naming it, then the spool's age too.
            server.stop()
            status, health = wait_until(lambda: (a := get_json(port, "/healthz", token=None))[0] == 503 and a,
                                        what="503 with InfluxDB down")
            assert health["status"] == "failing" and health["influxdb"]["reachable"] is False
            assert any(r.startswith("InfluxDB is not reachable") for r in health["reasons"]), health
            _, health = wait_until(lambda: (a := get_json(port, "/healthz", token=None)) and
                                   any("oldest spooled point" in r for r in a[1]["reasons"]) and a,
                                   what="the spool's age named")
            assert health["spool"]["pending"] > 0 and health["spool"]["oldest_age_s"] > 3
            samples = metrics(port)
            assert value(samples, "greenwatch_spool_pending_points") > 0
            assert value(samples, "greenwatch_spool_oldest_age_seconds") > 3
            assert value(samples, "greenwatch_influxdb_write_retries_total") > 0
            result = greenwatch("status", "--config", str(config), "--json")
            assert result.returncode == 0, result.stderr
            shown = json.loads(result.stdout)
            assert shown["source"].startswith(f"the service at http://127.0.0.1:{port} (findings unavailable: ")
            assert len(shown["devices"]) == 2 and shown["findings"] == []
            server.start()
            wait_until(lambda: get_json(port, "/healthz", token=None)[0] == 200, what="healthy again")
        finally:
            code = run.terminate()
        assert code == 0, run.log()[-3000:]

        # The service is gone: status reads InfluxDB instead.
        result = greenwatch("status", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert f"from InfluxDB at {server.url}: 2 devices, 1 up, 1 down" in result.stdout
        assert "pc-overnight" in result.stdout and "printer-sleep" not in result.stdout
        server.stop()
        result = greenwatch("status", "--config", str(config))
        assert result.returncode == 1
        assert "the service does not answer and InfluxDB cannot be read" in result.stderr
        assert "Traceback" not in result.stderr

        # JSON logs: every line an object; each about a device carries its site and device.
        about_devices = 0
        for line in run.log().splitlines():
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= set(entry)
            for name in ("pdu-a1", "silent-ups"):
                if f"dc-north/{name}" in entry["message"]:
                    assert (entry.get("site"), entry.get("device")) == ("dc-north", name), entry
                    about_devices += 1
        assert about_devices > 4
    finally:
        server.stop()


def test_port_in_use_is_logged_and_polling_goes_on(tmp_path, pdu_agent, influxdb, influx_db):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = write_config(tmp_path, influxdb.url, influx_db, f"""\
            - name: dc-north
              devices:
                - name: pdu-a1
                  address: {pdu_agent.address}
                  snmp: {{version: 2c, community: pdu-a1}}
            """, interval="1s", extra=http_block(port) + NO_REPORT)
        run = Running(config, tmp_path / "run.log")
        try:
            run.wait_for(f"HTTP endpoint not started: cannot listen on 127.0.0.1:{port}")
            before = run.accepted()
            run.wait_for("points accepted")
            time.sleep(2)
            assert run.accepted() > before
        finally:
            assert run.terminate() == 0


def test_bad_http_settings_are_refused_at_load(tmp_path, influxdb, influx_db):
    config = write_config(tmp_path, influxdb.url, influx_db, "- name: a\n  devices: []\n",
                          extra="http:\n  token: short\n  tls_cert: cert.pem\n")
    result = greenwatch("check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}:" in result.stderr and "http" in result.stderr
    assert "tls_cert and tls_key go together" in result.stderr


def test_tls_endpoint_and_status_over_it(tmp_path, pdu_agent, influxdb, influx_db):
    cert, key = tmp_path / "gw.crt", tmp_path / "gw.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=greenwatch",
                    "-keyout", str(key), "-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    config = write_config(tmp_path, influxdb.url, influx_db, f"""\
        - name: dc-north
          devices:
            - name: pdu-a1
              address: {pdu_agent.address}
              snmp: {{version: 2c, community: pdu-a1}}
        """, interval="1s", extra=http_block(port, tls_cert=cert.name, tls_key=key.name) + NO_REPORT)
    run = Running(config, tmp_path / "run.log")
    try:
        run.wait_for(f"HTTP endpoint on https://127.0.0.1:{port}")
        context = ssl.create_default_context(cafile=str(cert))
        request = urllib.request.Request(f"https://127.0.0.1:{port}/devices",
                                         headers={"Authorization": f"Bearer {TOKEN}"})

        def devices_over_tls():
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                body = json.loads(response.read())
            return body if body and body[0]["polls"] else None

        assert wait_until(devices_over_tls, what="a poll over TLS")[0]["up"] is True
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # a client not trusting it
            urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10,
                                   context=ssl.create_default_context())
        result = greenwatch("status", "--config", str(config), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["source"] == f"the service at https://127.0.0.1:{port}"
    finally:
        assert run.terminate() == 0
