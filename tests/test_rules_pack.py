"""Every shipped rule has a test beside it, and `greenwatch rules test` passes them all
against the real influxd; a wrong expectation fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenwatch.cli import main
from rules.loader import PACK_DIR, load_rules, rule_test_files

REQUIRED = {
    "after-hours-office-load", "pc-on-overnight", "printer-no-sleep", "zombie-server", "idle-switch-ports",
    "ups-low-load", "ups-low-efficiency", "overcooling", "pue-above-target", "unlabelled-outlet-load",
    "dc-flat-weekend-load",
}


def test_the_pack_has_every_required_rule_each_with_a_test():
    ids = {rule.id for rule in load_rules()}
    assert REQUIRED <= ids
    tested = {p.name.removesuffix(".test.yaml") for p in rule_test_files([PACK_DIR])}
    assert ids <= tested, f"rules without a test file: {sorted(ids - tested)}"


@pytest.mark.parametrize("path", rule_test_files([PACK_DIR]), ids=lambda p: p.name)
def test_each_shipped_rule_test_passes(path: Path, influxdb, capsys):
    assert main(["rules", "test", "--influx", influxdb.url, str(path)]) == 0, capsys.readouterr().out
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_each_test_file_shows_its_rule_firing_and_not_firing():
    """Every test expects at least one finding and has a series the rule must ignore
    (an unexpected finding fails the test), so each shows both."""
    import yaml

    for path in rule_test_files([PACK_DIR]):
        data = yaml.safe_load(path.read_text())
        assert any(e.get("findings") for e in data["evaluations"]), path
        expected = {f.get("device") or f.get("site") for e in data["evaluations"] for f in e.get("findings", [])}
        subjects = {key for key in data["series"]}
        assert len(subjects) > len(expected), f"{path}: no series that must not fire"


def test_a_wrong_expectation_fails_and_names_the_place(tmp_path, influxdb, capsys):
    for name in ("pc-on-overnight.yaml", "pc-on-overnight.test.yaml"):
        (tmp_path / name).write_text((PACK_DIR / name).read_text())
    test = tmp_path / "pc-on-overnight.test.yaml"
    test.write_text(test.read_text().replace("kwh_per_year: [180, 260]", "kwh_per_year: 999"))
    assert main(["rules", "test", "--influx", influxdb.url, str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "kwh_per_year" in out and "0 passed, 1 failed" in out
    assert f"{test}:" in out.replace("\n", "")


def test_rules_test_starts_its_own_influxd_when_no_url_is_given(capsys):
    assert main(["rules", "test", str(PACK_DIR / "ups-low-efficiency.test.yaml")]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
