"""The committed dashboard JSON is what the code builds, and the provisioning files
and docker-compose agree with it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from grafana_queries import panels

from dashboards import build
from dashboards.sdk import DATASOURCE_UID
from greenwatch.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_json_is_what_the_code_builds() -> None:
    assert build.stale() == [], "run `greenwatch dashboards build` and commit dashboards/json/"


def test_check_names_a_stale_missing_or_extra_file(tmp_path, capsys, monkeypatch) -> None:
    assert main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(p.name for p in build.JSON_DIR.glob("*.json"))
    assert build.stale(tmp_path) == []
    estate = tmp_path / "gw-estate.json"
    model = json.loads(estate.read_text())
    model["panels"][1]["title"] = "edited by hand"
    estate.write_text(json.dumps(model))
    (tmp_path / "gw-health.json").unlink()
    (tmp_path / "old.json").write_text("{}")
    assert build.stale(tmp_path) == [f"{estate}: differs from what the code builds",
                                     f"{tmp_path / 'gw-health.json'}: missing", f"{tmp_path / 'old.json'}: no longer built"]
    monkeypatch.setattr(build, "JSON_DIR", tmp_path)
    monkeypatch.setattr(build.stale, "__defaults__", (tmp_path,))
    capsys.readouterr()
    assert main(["dashboards", "check"]) == 1
    assert "gw-estate.json: differs" in capsys.readouterr().err
    # build puts it right, and removes what is no longer built
    assert main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    assert main(["dashboards", "check"]) == 0
    assert not (tmp_path / "old.json").exists()


def test_the_json_is_a_model_grafana_loads() -> None:
    models = build.load()
    assert len({m["uid"] for m in models}) == len(models) == 6
    for model in models:
        assert model["schemaVersion"] >= 39 and len(model["uid"]) <= 40 and model["title"]
        ids = [p["id"] for p in panels(model)]
        assert len(ids) == len(set(ids)), model["uid"]
        for panel in panels(model):
            where = f"{model['uid']} / {panel.get('title')}"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
            if panel["type"] != "row":
                assert panel.get("description"), f"{where}: a reader needs to know what it shows"
            if panel.get("targets"):
                config = panel["fieldConfig"]
                units = [config["defaults"]] + [{p["id"]: p["value"] for p in o["properties"]}
                                                for o in config["overrides"]]
                assert any("unit" in u and "decimals" in u for u in units), f"{where}: unit and decimals set"
        names = [v["name"] for v in model["templating"]["list"]]
        assert names[0] == "site" and len(names) == len(set(names)), model["uid"]


def test_dashboards_carry_the_variables_asked_for() -> None:
    by_uid = {m["uid"]: [v["name"] for v in m["templating"]["list"]] for m in build.load()}
    assert {"site", "room", "rack", "device"} <= set(by_uid["gw-datacentre"])
    assert {"site", "floor", "device"} <= set(by_uid["gw-workplace"])
    for variable in next(m for m in build.load() if m["uid"] == "gw-datacentre")["templating"]["list"]:
        if variable["type"] == "query":
            # All is the regex .*: a device without the tag still matches.
            assert variable["includeAll"] and variable["multi"] and variable["allValue"] == ".*"


def test_provisioning_and_compose_agree_with_the_json() -> None:
    sources = yaml.safe_load((build.PROVISIONING_DIR / "datasources" / "greenwatch.yaml").read_text())
    (source,) = sources["datasources"]
    assert sources["apiVersion"] == 1
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL" and source["jsonData"]["dbName"] == "greenwatch"
    providers = yaml.safe_load((build.PROVISIONING_DIR / "dashboards" / "greenwatch.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"] if m.startswith("./")}
    assert mounts[provider["options"]["path"]] == "./dashboards/json"
    assert mounts["/etc/grafana/provisioning/dashboards"] == "./dashboards/provisioning/dashboards"
    # Compose runs InfluxDB 2.x, so it mounts its own data-source file (the same source
    # with the token header); it must name the same uid, type, database and URL.
    (compose_source,) = yaml.safe_load((ROOT / mounts["/etc/grafana/provisioning/datasources/greenwatch.yaml"])
                                       .read_text())["datasources"]
    for key in ("uid", "type", "url"):
        assert compose_source[key] == source[key], key
    for key in ("dbName", "version", "httpMode"):
        assert compose_source["jsonData"][key] == source["jsonData"][key], key
    assert source["url"] == "http://influxdb:8086"
    assert compose["services"]["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"] == source["jsonData"]["dbName"]


def test_the_config_knows_every_number_variable() -> None:
    from dashboards.config import NUMBER_VARIABLES

    textboxes = {v["name"] for m in build.load() for v in m["templating"]["list"] if v["type"] == "textbox"}
    assert textboxes == set(NUMBER_VARIABLES)


def test_an_unknown_variable_in_the_config_is_file_and_line(tmp_path, capsys) -> None:
    path = tmp_path / "greenwatch.yaml"
    path.write_text("grafana:\n  token: x\n  variables:\n    pue_targte: 1.4\n")
    assert main(["dashboards", "publish", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4:" in err and "pue_targte" in err and "pue_target" in err
