"""`greenwatch dashboards publish` against a local server holding Grafana's folder,
data-source and dashboard API contract (tests/grafana_standin.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from grafana_standin import GrafanaStandin

from dashboards.build import load
from dashboards.sdk import DATASOURCE_UID
from greenwatch.cli import main

TOKEN = "glsa_standin_0123456789abcdef"
UIDS = {m["uid"] for m in load()}


@pytest.fixture
def grafana() -> Iterator[GrafanaStandin]:
    server = GrafanaStandin(TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _config(tmp_path: Path, url: str, token_line: str | None = "token: {file: grafana.token}",
            extra: str = "") -> Path:
    (tmp_path / "grafana.token").write_text(TOKEN + "\n")
    path = tmp_path / "greenwatch.yaml"
    grafana = "grafana:\n" + f"  url: {url}\n" + (f"  {token_line}\n" if token_line else "") + \
        "  folder: Green IT\n  folder_uid: green-it\n" + extra
    path.write_text("influxdb:\n  url: http://127.0.0.1:8086\n  database: estate\n" + grafana)
    return path


def test_publish_twice_leaves_one_dashboard_per_uid_and_changes_nothing(grafana, tmp_path, capsys) -> None:
    path = _config(tmp_path, grafana.url, extra="  variables: {pue_target: 1.5}\n")
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    first = capsys.readouterr().out
    state = grafana.state
    assert set(state.dashboards) == UIDS and len(UIDS) == 6
    assert state.folders["green-it"]["title"] == "Green IT"
    assert all(d["folderUid"] == "green-it" for d in state.dashboards.values())
    ds = state.datasources[DATASOURCE_UID]
    assert ds["type"] == "influxdb" and ds["url"] == "http://127.0.0.1:8086"
    assert ds["jsonData"]["dbName"] == "estate" and ds["jsonData"]["version"] == "InfluxQL"
    # What Grafana holds is the committed JSON (plus its id and version), with the
    # config's value for the PUE target.
    for model in load():
        stored = {k: v for k, v in state.dashboards[model["uid"]]["dashboard"].items() if k not in ("id", "version")}
        if model["uid"] != "gw-datacentre":
            assert stored == model
    target = next(v for v in state.dashboards["gw-datacentre"]["dashboard"]["templating"]["list"]
                  if v["name"] == "pue_target")
    assert target["query"] == "1.5" and target["current"]["value"] == "1.5"
    assert "8 created" in first  # folder, data source, 6 dashboards
    writes, versions = list(state.writes), {u: d["dashboard"]["version"] for u, d in state.dashboards.items()}

    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    assert "0 created, 0 updated, 8 unchanged" in capsys.readouterr().out
    assert state.writes == writes  # nothing written the second time
    assert {u: d["dashboard"]["version"] for u, d in state.dashboards.items()} == versions
    assert set(state.dashboards) == UIDS


def test_a_dashboard_changed_in_grafana_is_put_back(grafana, tmp_path, capsys) -> None:
    path = _config(tmp_path, grafana.url)
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    stored = grafana.state.dashboards["gw-estate"]["dashboard"]
    stored["panels"][1]["title"] = "edited by hand"
    stored["version"] += 1
    capsys.readouterr()
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "updated: dashboard gw-estate" in out and "0 created, 1 updated, 7 unchanged" in out
    assert grafana.state.dashboards["gw-estate"]["dashboard"]["panels"][1]["title"] != "edited by hand"
    assert grafana.state.dashboards["gw-estate"]["dashboard"]["version"] == 3


def test_a_bad_token_is_401_named_and_exit_2(grafana, tmp_path, capsys) -> None:
    path = _config(tmp_path, grafana.url, token_line="token: glsa_wrong_token_value")
    assert main(["dashboards", "publish", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert "401 Unauthorized" in captured.err and "grafana.token" in captured.err
    assert "glsa_wrong_token_value" not in captured.err + captured.out  # the secret is never printed
    assert grafana.state.writes == [] and grafana.state.dashboards == {}


def test_a_dashboard_saved_in_grafana_meanwhile_is_412_and_not_overwritten(grafana, tmp_path, capsys) -> None:
    path = _config(tmp_path, grafana.url)
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    grafana.state.dashboards["gw-health"]["dashboard"]["title"] = "their own title"
    grafana.state.edit_after_read["gw-health"] = 1  # a colleague saves it just after publish reads it
    capsys.readouterr()
    assert main(["dashboards", "publish", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "dashboard gw-health" in err and "412" in err and "version-mismatch" in err
    assert "changed in Grafana while publishing" in err and "--force" in err
    assert grafana.state.dashboards["gw-health"]["dashboard"]["title"] == "their own title"
    # --force overwrites.
    grafana.state.edit_after_read["gw-health"] = 1
    assert main(["dashboards", "publish", "--config", str(path), "--force"]) == 0
    assert grafana.state.dashboards["gw-health"]["dashboard"]["title"] == "greenwatch: Collector health"


def test_a_title_taken_in_the_folder_is_412_name_exists(grafana, tmp_path, capsys) -> None:
    path = _config(tmp_path, grafana.url)
    grafana.state.folders["green-it"] = {"id": 50, "uid": "green-it", "title": "Green IT", "version": 1}
    grafana.state.dashboards["someone-elses"] = {
        "dashboard": {"id": 51, "uid": "someone-elses", "title": "greenwatch: Estate overview", "version": 4},
        "folderUid": "green-it"}
    assert main(["dashboards", "publish", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "dashboard gw-estate" in err and "412" in err and "same title" in err
    assert "gw-estate" not in grafana.state.dashboards


def test_no_token_is_a_config_error_with_file_and_line(grafana, tmp_path, capsys) -> None:
    path = _config(tmp_path, grafana.url, token_line=None)
    assert main(["dashboards", "publish", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: grafana: no token" in err  # the section's first line and "${GRAFANA_TOKEN}" in err
    assert grafana.state.writes == []


def test_a_token_from_the_environment(grafana, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GREENWATCH_TEST_GRAFANA_TOKEN", TOKEN)
    path = _config(tmp_path, grafana.url, token_line="token: ${GREENWATCH_TEST_GRAFANA_TOKEN}")
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    assert set(grafana.state.dashboards) == UIDS


def test_grafana_unreachable_is_named(tmp_path, capsys) -> None:
    from realparts.ports import free_tcp_port

    path = _config(tmp_path, f"http://127.0.0.1:{free_tcp_port()}")
    assert main(["dashboards", "publish", "--config", str(path)]) == 1
    assert "cannot reach Grafana at http://127.0.0.1:" in capsys.readouterr().err


def test_the_commitment_sets_the_trackers_numbers(grafana, influxdb, influx_db: str, tmp_path, capsys) -> None:
    """Baseline, trajectory today and target of the next tCO2e target, the fixed
    factor and the PUE ceiling go into the commitment tracker's variables, as a hand
    computation of the straight line gives them; grafana.variables still win."""
    import datetime as dt

    path = _config(tmp_path, grafana.url, extra="  variables: {fixed_factor: 0.2}\n")
    text = path.read_text().replace("url: http://127.0.0.1:8086\n  database: estate",
                                    f"url: {influxdb.url}\n  database: {influx_db}")
    path.write_text(text + """commitment:
  baseline: {from: 2024-01-01, to: 2025-01-01, tco2e: 120}
  fixed_factor: 0.18
  targets:
    - {year: 2030, metric: tco2e, cut_percent: 50}
    - {year: 2028, metric: pue, site: dc, max: 1.5}
sites:
  - name: dc
""")
    before = dt.datetime.now(dt.UTC)
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    after = dt.datetime.now(dt.UTC)
    board = grafana.state.dashboards["gw-commitment"]["dashboard"]
    values = {v["name"]: float(v["query"]) for v in board["templating"]["list"] if v["type"] == "textbox"}
    # A straight line from 120 t/yr at the baseline's end (2025-01-01) to 60 t/yr at
    # the end of 2030; 2024 is a leap year, so the baseline's 366 days scale to 365.
    start, end = dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    baseline = 120 * 365 / 366
    lows = [baseline + (baseline / 2 - baseline) * (t - start) / (end - start) for t in (before, after)]
    assert values["baseline_tco2e"] == pytest.approx(baseline, abs=1e-3)
    assert values["target_tco2e"] == pytest.approx(baseline / 2, abs=1e-3)
    assert min(lows) - 1e-3 <= values["trajectory_tco2e"] <= max(lows) + 1e-3
    assert values["fixed_factor"] == 0.2  # the config's grafana.variables win over the commitment's 0.18
    pue = next(v for v in grafana.state.dashboards["gw-datacentre"]["dashboard"]["templating"]["list"]
               if v["name"] == "pue_target")
    assert pue["query"] == "1.5"


def test_a_renamed_folder_and_a_changed_data_source_are_put_right(grafana, tmp_path, capsys) -> None:
    path = _config(tmp_path, grafana.url)
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    grafana.state.folders["green-it"].update(title="Renamed by hand", version=2)
    grafana.state.datasources[DATASOURCE_UID]["jsonData"]["dbName"] = "elsewhere"
    capsys.readouterr()
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "updated: folder green-it" in out and f"updated: data source {DATASOURCE_UID}" in out
    assert "0 created, 2 updated, 6 unchanged" in out
    assert grafana.state.folders["green-it"]["title"] == "Green IT"
    assert grafana.state.datasources[DATASOURCE_UID]["jsonData"]["dbName"] == "estate"
    assert len(grafana.state.datasources) == 1


def test_influxdb_credentials_go_to_secure_json_and_are_not_read_back(grafana, tmp_path, capsys) -> None:
    path = _config(tmp_path, grafana.url)
    path.write_text(path.read_text().replace("database: estate", "database: estate\n  token: influx-secret-123"))
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    ds = grafana.state.datasources[DATASOURCE_UID]
    assert ds["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret-123"}
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert "influx-secret-123" not in capsys.readouterr().out
    writes = list(grafana.state.writes)
    assert main(["dashboards", "publish", "--config", str(path)]) == 0
    assert grafana.state.writes == writes  # the secret, never read back, does not count as a change
