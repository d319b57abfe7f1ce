"""docs/rules.md's worked example is a rule that lints and whose described test passes;
the rule-format example there is a valid rule."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from greenwatch.cli import main

DOC = (Path(__file__).parent.parent / "docs" / "rules.md").read_text()


def _yaml_block_after(marker: str) -> str:
    start = DOC.index(marker)
    match = re.search(r"```yaml\n(.*?)```", DOC[start:], re.S)
    assert match, marker
    return textwrap.dedent(match.group(1))


def test_the_worked_example_lints_and_its_test_passes(tmp_path, influxdb, capsys):
    rules = tmp_path / "my-rules"
    rules.mkdir()
    (rules / "monitor-on-weekends.yaml").write_text(_yaml_block_after("1. Write `my-rules/monitor-on-weekends.yaml`"))
    (rules / "monitor-on-weekends.test.yaml").write_text(
        "start: 2026-03-02T00:00:00Z\nstep: 1h\nseries:\n"
        "  'power{site=\"hq\",device=\"mon-1\",kind=\"monitor\",scope=\"device\",entity=\"total\"} watts': \"20x168\"\n"
        "  'power{site=\"hq\",device=\"mon-2\",kind=\"monitor\",scope=\"device\",entity=\"total\"} watts': "
        "\"20x120 0.3x48\"\n"
        "evaluations:\n  - at: 2026-03-09T00:00:00Z\n    findings:\n"
        "      - {device: mon-1, state: opened, kwh_per_year: [45, 52]}\n")
    assert main(["rules", "lint", "--influx", influxdb.url, str(rules)]) == 0
    assert main(["rules", "test", "--influx", influxdb.url, str(rules)]) == 0, capsys.readouterr().out
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_the_format_example_is_a_valid_rule(tmp_path, capsys):
    text = _yaml_block_after("## The rule format")
    (tmp_path / "pc-on-overnight.yaml").write_text(text)
    assert main(["rules", "lint", "--offline", str(tmp_path)]) == 0, capsys.readouterr().err
