"""docker-compose.yml, checked without a Docker engine: its services, that every file it
mounts exists in the repo, that InfluxDB 2.x's org, bucket, token and DBRP mapping agree
with the config the greenwatch containers read and with Grafana's data source, and that
the config the agents container writes loads and points at the agents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from greenwatch.config import load_config
from greenwatch.service import load
from simulate.live import __main__ as live
from simulate.live.layout import LAYOUT, Layout

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_services_are_there() -> None:
    assert set(SERVICES) == {"influxdb", "agents", "history", "greenwatch", "grafana"}
    assert re.fullmatch(r"influxdb:2\.\d+", SERVICES["influxdb"]["image"])
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana:")
    for name in ("agents", "history", "greenwatch"):
        assert SERVICES[name]["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert SERVICES["greenwatch"]["command"][:1] == ["run"]
    history = SERVICES["history"]
    assert history["entrypoint"] == ["sh", "-c"] and history["command"][0].startswith("exec greenwatch simulate ")
    # The history ends now (compose turns $$ into the shell's $), where live polling takes over.
    assert '--end "$$(date -u +%FT%T)"' in history["command"][0]
    assert SERVICES["agents"]["entrypoint"] == ["python", "-m", "simulate.live"]
    # The Dockerfile's entry point is the CLI, and it installs what the agents need (snmpsim).
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["greenwatch"]' in dockerfile and ".[demo]" in dockerfile
    # The live SNMP devices read tests/recordings inside the image: never left out of it.
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ".venv" in ignored and not any(p.startswith(("tests", "simulate", "collector")) for p in ignored)
    extras = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^demo = \[.*"snmpsim', extras, re.MULTILINE)


def test_every_mount_from_the_repo_exists() -> None:
    named = set(COMPOSE.get("volumes") or {})
    checked = 0
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            assert target.startswith("/"), (name, mount)
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} is not in the repo"
                checked += 1
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    assert checked >= 4


def test_influxdb_setup_dbrp_and_grafana_agree_with_the_config(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    env = SERVICES["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    bucket, org = env["DOCKER_INFLUXDB_INIT_BUCKET"], env["DOCKER_INFLUXDB_INIT_ORG"]
    token_ref = env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    token_var = re.fullmatch(r"\$\{(\w+)(:-[^}]*)?\}", token_ref).group(1)
    # The init script maps the v1 database (the bucket's name) to the bucket.
    init = next(m.split(":")[0] for m in SERVICES["influxdb"]["volumes"] if "docker-entrypoint-initdb.d" in m)
    script = "".join(p.read_text() for p in sorted((ROOT / init).glob("*.sh")))
    assert "influx v1 dbrp create" in script and '--db "$DOCKER_INFLUXDB_INIT_BUCKET"' in script
    assert "--default" in script

    # The greenwatch containers get the same token variable that InfluxDB was set up with.
    agents = SERVICES["agents"]
    command = agents["command"]
    assert option(command, "--influx-token-env") == token_var
    for name in ("agents", "history", "greenwatch"):
        assert SERVICES[name]["environment"][token_var] == token_ref, name
        assert any(m.endswith(":/demo") for m in SERVICES[name]["volumes"])
    influx_url = option(command, "--write-config")
    assert influx_url == "http://influxdb:8086"

    # The config the agents container writes: loads (the token from the environment),
    # writes to the mapped database, and polls the agents at their host name.
    monkeypatch.setenv(token_var, "a-token-for-the-test-0123456789")
    assert command[0] == "/demo"  # the volume every greenwatch container mounts
    args = live.parser().parse_args([str(tmp_path), *command[1:]])
    path = live.write_config(args)
    assert "a-token-for-the-test" not in path.read_text()  # the name of the variable, not the token
    config = load(path).config
    assert config.influxdb.database == bucket and org == "greenwatch"
    assert config.influxdb.token.get_secret_value() == "a-token-for-the-test-0123456789"
    layout = Layout.load(tmp_path / LAYOUT)
    base = int(option(command, "--base-port"))
    assert all(base <= port < base + 200 for _, port in layout.ports())
    for site, device in config.devices():
        target = (device.address or "") + (device.redfish.url if device.redfish else "") + \
            (device.http.url if device.http else "")
        assert "agents:" in target, (site.name, device.name, target)

    # Grafana: the data source reads the mapped database with the same token variable, and
    # the dashboards name its uid.
    grafana = SERVICES["grafana"]
    assert grafana["environment"][token_var] == token_ref
    source_file = next(m.split(":")[0] for m in grafana["volumes"] if "provisioning/datasources" in m)
    source = yaml.safe_load((ROOT / source_file).read_text())["datasources"][0]
    assert source["jsonData"]["dbName"] == bucket and source["jsonData"]["version"] == "InfluxQL"
    assert source["url"] == influx_url
    assert source["secureJsonData"]["httpHeaderValue1"] == f"Token ${token_var}"
    json_dir = next(m.split(":")[0] for m in grafana["volumes"] if m.split(":")[1].startswith("/var/lib/grafana/dashboards"))
    boards = list((ROOT / json_dir).glob("*.json"))
    assert boards and all(source["uid"] in b.read_text() for b in boards)
    # In its container the service's endpoint listens beyond loopback (compose maps 9108).
    assert load_config(path).http.listen == "0.0.0.0"
    assert any(p.endswith(":9108") for p in SERVICES["greenwatch"]["ports"])


def test_the_grafana_dashboards_folder_is_the_one_provisioned() -> None:
    grafana = SERVICES["grafana"]
    mounts = dict(m.split(":")[:2] for m in grafana["volumes"] if m.startswith("./"))
    provider_dir = ROOT / next(s for s, t in mounts.items() if t.endswith("provisioning/dashboards"))
    provider = yaml.safe_load((provider_dir / "greenwatch.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert path in mounts.values()
    source = next(s for s, t in mounts.items() if t == path)
    assert all(json.loads(p.read_text()).get("uid") for p in (ROOT / source).glob("*.json"))
