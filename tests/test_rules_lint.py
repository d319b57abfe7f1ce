"""A broken rule fails `greenwatch rules lint` (and `rules run`) with file, line and
what is wrong, exit 2, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenwatch.cli import main
from rules.loader import PACK_DIR

GOOD = (PACK_DIR / "pc-on-overnight.yaml").read_text()


def _databases(influxdb) -> set[str]:
    series = influxdb.query("SHOW DATABASES")["results"][0].get("series", [])
    return {row[0] for s in series for row in s.get("values", [])}


def _lint(tmp_path: Path, name: str, text: str, influxdb, capsys) -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(text)
    before = _databases(influxdb)
    code = main(["rules", "lint", "--influx", influxdb.url, str(path)])
    assert _databases(influxdb) == before  # the scratch database is gone, nothing else made
    captured = capsys.readouterr()
    return code, captured.err.replace("\n", "")


def test_the_shipped_pack_lints_clean(influxdb, capsys):
    assert main(["rules", "lint", "--influx", influxdb.url]) == 0
    assert "no problems" in capsys.readouterr().out


def test_a_yaml_syntax_error_names_file_and_line(tmp_path, influxdb, capsys):
    text = GOOD.replace("severity: warning", "severity: [warning")
    code, err = _lint(tmp_path, "pc-on-overnight.yaml", text, influxdb, capsys)
    assert code == 2
    assert f"{tmp_path / 'pc-on-overnight.yaml'}:" in err and "not valid YAML" in err


@pytest.mark.parametrize(
    ("old", "new", "line_key", "message"),
    [
        ("  threshold: 25", "  treshold: 25", "treshold", "condition.treshold: unknown key"),
        ("  field: watts", "  field: wats", "field", "measurement power has no field 'wats'"),
        ("  kinds: [desktop]", "  kinds: [desktops]", "kinds", "unknown kind 'desktops'"),
        ("window: nights", "window: night", "window", "window: Input should be"),
        ("for: 6h", "for: six hours", "for", "for: expected a duration"),
        ("{hours:.0f} night hours", "{hourz} night hours", "summary", "unknown placeholder {hourz}"),
        ("  threshold: 25", "  threshold: 1.0e+300", "threshold", "less than or equal to 1000000000000000"),
        ("  excess_over: 3", "  excess_over: -7.0e+305", "excess_over", "greater than or equal to -1000000000000000"),
    ],
)
def test_an_unknown_or_bad_field_names_file_line_and_field(tmp_path, influxdb, capsys, old, new, line_key, message):
    assert old in GOOD
    text = GOOD.replace(old, new)
    code, err = _lint(tmp_path, "pc-on-overnight.yaml", text, influxdb, capsys)
    assert code == 2
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.lstrip().startswith(line_key + ":")
                or (line_key in l and l.startswith(line_key)))
    if line_key in ("field", "kinds"):
        line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("select:"))
        # pydantic reports a model validator's problem at the model (select)
        assert f"pc-on-overnight.yaml:{line + 1}" in err or f"pc-on-overnight.yaml:{line}" in err, err
    else:
        assert f"pc-on-overnight.yaml:{line}:" in err, err
    assert message in err, err


def test_a_condition_influxdb_rejects_is_named_with_its_line(tmp_path, influxdb, capsys):
    text = (PACK_DIR / "pue-above-target.yaml").read_text().replace('sum("kwh") / sum("it_kwh")', 'sum("kwh") / ')
    code, err = _lint(tmp_path, "pue-above-target.yaml", text, influxdb, capsys)
    assert code == 2
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("query:"))
    assert f"pue-above-target.yaml:{line}: query: InfluxDB rejects the rule's query" in err, err


def test_an_unknown_aggregate_function_is_refused_before_influxdb(tmp_path, influxdb, capsys):
    text = GOOD.replace("aggregate: mean", "aggregate: average")
    code, err = _lint(tmp_path, "pc-on-overnight.yaml", text, influxdb, capsys)
    assert code == 2 and "condition.aggregate" in err


def test_the_id_must_match_the_file_name(tmp_path, influxdb, capsys):
    code, err = _lint(tmp_path, "pc-left-on.yaml", GOOD, influxdb, capsys)
    assert code == 2 and "pc-left-on.yaml:1: id: the id must be the file's name" in err


def test_rules_run_with_a_broken_rule_exits_2_and_writes_nothing(tmp_path, influxdb, influx_db, capsys):
    rules_dir = tmp_path / "myrules"
    rules_dir.mkdir()
    (rules_dir / "pc-on-overnight.yaml").write_text(GOOD.replace("op: \">\"", "op: \"=>\""))
    config = tmp_path / "greenwatch.yaml"
    config.write_text(f"influxdb: {{url: '{influxdb.url}', database: {influx_db}}}\n"
                      f"rules: {{dirs: [myrules]}}\nsites: [{{name: hq}}]\n")
    assert main(["rules", "run", "--config", str(config), "--at", "2026-03-03T08:00:00Z"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert f"{rules_dir / 'pc-on-overnight.yaml'}:" in err and "condition.op" in err
    assert influxdb.count("finding", influx_db) == 0
    assert influxdb.query("SHOW MEASUREMENTS", db=influx_db)["results"][0].get("series") is None


def test_a_bad_test_file_names_file_line_and_series_and_exits_2(tmp_path, influxdb, capsys):
    (tmp_path / "pc-on-overnight.yaml").write_text(GOOD)
    test = (PACK_DIR / "pc-on-overnight.test.yaml").read_text()
    bad = test.replace('"60x96 60x32 5x64"', '"60x96 sixty 5x64"')
    assert bad != test
    (tmp_path / "pc-on-overnight.test.yaml").write_text(bad)
    assert main(["rules", "test", "--influx", influxdb.url, str(tmp_path)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    line = next(i for i, l in enumerate(bad.splitlines(), 1) if "sixty" in l)
    assert f"pc-on-overnight.test.yaml:{line}: series" in err and "cannot read 'sixty'" in err, err


def test_rules_run_with_a_query_influxdb_rejects_exits_2_and_writes_nothing(tmp_path, influxdb, influx_db, capsys):
    rules_dir = tmp_path / "myrules"
    rules_dir.mkdir()
    text = (PACK_DIR / "pue-above-target.yaml").read_text().replace('sum("kwh") / sum("it_kwh")', 'sum("kwh") / ')
    (rules_dir / "pue-above-target.yaml").write_text(text)
    config = tmp_path / "greenwatch.yaml"
    config.write_text(f"influxdb: {{url: '{influxdb.url}', database: {influx_db}}}\n"
                      f"rules: {{dirs: [myrules]}}\nsites: [{{name: hq}}]\n")
    assert main(["rules", "run", "--config", str(config), "--at", "2026-03-03T08:00:00Z"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("query:"))
    assert f"pue-above-target.yaml:{line}: query: InfluxDB rejects the rule's query" in err, err
    assert influxdb.query("SHOW MEASUREMENTS", db=influx_db)["results"][0].get("series") is None


def test_check_names_a_bad_rule_in_the_config_s_rule_folders(tmp_path, capsys):
    rules_dir = tmp_path / "myrules"
    rules_dir.mkdir()
    (rules_dir / "pc-on-overnight.yaml").write_text(GOOD.replace("window: nights", "window: nightly"))
    config = tmp_path / "greenwatch.yaml"
    config.write_text("rules: {dirs: [myrules]}\nsites: [{name: hq}]\n")
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    line = next(i for i, l in enumerate(GOOD.splitlines(), 1) if l.startswith("window:"))
    assert f"{rules_dir / 'pc-on-overnight.yaml'}:{line}: window:" in err, err
