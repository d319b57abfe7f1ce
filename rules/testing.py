"""Rule unit tests, in the manner of `promtool test rules`: NAME.test.yaml beside
NAME.yaml gives input series in a compact notation, evaluation times, and the
findings expected at each. Run against a real InfluxDB, each file in a fresh database.

Series notation (one string per series, tokens separated by spaces, one token per
step of `step`, starting at `start`):
  `60`       one sample of 60        `60x120`   120 samples of 60
  `_`        one step with no sample `_x30`     30 steps with no sample
  `10+5x4`   4 samples: 10 15 20 25  `50-10x3`  3 samples: 50 40 30
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from greenwatch.core.config import Duration, SiteSettings, Strict
from greenwatch.core.influx import InfluxClient
from greenwatch.core.schema import FIELDS, INTEGER_DIMENSIONS, Sample, encode_lines
from greenwatch.core.yamlfile import InputError, parse_model_with_node, problem_at

from .config import RuleOverride
from .engine import AnyRule, Engine, Finding, quote_ident, to_ns
from .loader import load_rule, python_rules

_KEY = re.compile(r"^\s*([A-Za-z_][\w]*)\s*\{(.*)\}\s+([A-Za-z_]\w*)\s*$")
_TAG = re.compile(r'\s*([A-Za-z_]\w*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_TOKEN = re.compile(r"^(?:(_)|(-?\d+(?:\.\d+)?)(?:([+-])(\d+(?:\.\d+)?))?)(?:x(\d+))?$")
REL_TOLERANCE = 0.02
# A year of minutes is ~526k steps; no rule test needs more than this per series.
MAX_STEPS = 1_000_000


def parse_key(key: str) -> tuple[str, dict[str, str], str]:
    """'power{site="hq",device="pc-1"} watts' -> ('power', {...}, 'watts')."""
    match = _KEY.match(key)
    if not match:
        raise ValueError(f'expected measurement{{tag="value",...}} field, got {key!r}')
    tags: dict[str, str] = {}
    rest = match.group(2).strip()
    while rest:
        tag = _TAG.match(rest)
        if not tag:
            raise ValueError(f'expected tag="value" pairs separated by commas in {key!r}')
        tags[tag.group(1)] = tag.group(2).replace('\\"', '"')
        rest = rest[tag.end():]
    return match.group(1), tags, match.group(3)


def parse_values(text: str) -> list[float | None]:
    """The notation above -> one value (or None for no sample) per step."""
    out: list[float | None] = []
    for token in str(text).split():
        match = _TOKEN.match(token)
        if not match:
            raise ValueError(f"cannot read {token!r}: expected V, VxN, V+DxN, V-DxN, _ or _xN")
        gap, start, sign, step, count = match.groups()
        n = int(count) if count else 1
        # Checked before the list is built: 60x99999999999 would exhaust memory.
        if len(out) + n > MAX_STEPS:
            raise ValueError(f"{text!r} has more than {MAX_STEPS:,} steps: expected a shorter series")
        if gap:
            out += [None] * n
            continue
        delta = float(step) * (-1 if sign == "-" else 1) if step else 0.0
        out += [float(start) + i * delta for i in range(n)]
    return out


class Expected(Strict):
    """One finding event expected at an evaluation; numbers within 2% unless a
    [low, high] range is given."""

    site: str | None = None
    device: str | None = None
    entity: str | None = None
    rule: str | None = None
    severity: str | None = None
    state: str | None = None
    value: float | list[float] | None = None
    kwh_per_year: float | list[float] | None = None
    cost_per_year: float | list[float] | None = None
    kgco2e_per_year: float | list[float] | None = None
    summary_contains: str | None = None


def aware(value: dt.datetime) -> dt.datetime:
    """A test's times carry their zone: a bare time would mean the runner's own."""
    if value.tzinfo is None:
        raise ValueError("give the time zone, e.g. 2026-03-02T08:00:00Z")
    return value


class Evaluation(Strict):
    at: dt.datetime
    findings: list[Expected] = []

    _aware = field_validator("at")(aware)


class RuleTest(Strict):
    rule: str | None = None  # the rule's id; default: the file's name
    start: dt.datetime
    step: Duration = 60.0
    sites: dict[str, dict[str, Any]] = {}
    overrides: list[RuleOverride] = []
    series: dict[str, str] = Field(min_length=1)
    evaluations: list[Evaluation] = Field(min_length=1)

    _aware = field_validator("start")(aware)


@dataclass
class RuleTestResult:
    path: Path
    failures: list[str] = field(default_factory=list)
    evaluations: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def load_test(path: Path) -> tuple[RuleTest, Any, dict[str, SiteSettings], list[Sample]]:
    """Parse a test file and its series; InputError naming file, line and field."""
    test, node = parse_model_with_node(RuleTest, path)
    problems: list[str] = []
    sites: dict[str, SiteSettings] = {}
    for name, raw in test.sites.items():
        try:
            sites[name] = SiteSettings.model_validate({**raw, "name": name})
        except ValueError as exc:
            problems.append(problem_at(path, node, ["sites", name], str(exc).replace("\n", " ")))
    samples: list[Sample] = []
    start_ns = to_ns(test.start)
    for key, text in test.series.items():
        try:
            measurement, tags, fld = parse_key(key)
            values = parse_values(text)
        except ValueError as exc:
            problems.append(problem_at(path, node, ["series", key], str(exc)))
            continue
        integer = FIELDS.get(measurement, {}).get(fld) in INTEGER_DIMENSIONS
        for i, value in enumerate(values):
            if value is None:
                continue
            v: float | int = round(value) if integer else value
            samples.append(Sample(measurement, tags, {fld: v}, start_ns + int(i * test.step * 1e9)))
    if problems:
        raise InputError(problems)
    return test, node, sites, samples


def _close(got: float, want: float | list[float]) -> bool:
    if isinstance(want, list):
        return want[0] <= got <= want[1]
    return math.isclose(got, want, rel_tol=REL_TOLERANCE, abs_tol=1e-6)


def _matches(f: Finding, e: Expected) -> list[str]:
    """What differs between a finding and what was expected (empty when it matches)."""
    diffs = []
    for name in ("site", "device", "entity", "rule", "severity", "state"):
        want = getattr(e, name)
        if want is not None and getattr(f, name) != want:
            diffs.append(f"{name} {getattr(f, name)!r} != {want!r}")
    for name in ("value", "kwh_per_year", "cost_per_year", "kgco2e_per_year"):
        want = getattr(e, name)
        if want is not None and not _close(getattr(f, name), want):
            diffs.append(f"{name} {getattr(f, name):.4g} not {want}")
    if e.summary_contains and e.summary_contains not in f.summary:
        diffs.append(f"summary {f.summary!r} lacks {e.summary_contains!r}")
    return diffs


def describe(f: Finding) -> str:
    return (f"{f.state} {f.id} value={f.value:.4g} kwh_per_year={f.kwh_per_year:.4g} "
            f"cost_per_year={f.cost_per_year:.4g} kgco2e_per_year={f.kgco2e_per_year:.4g}")


def _find_rule(path: Path, test: RuleTest, node: Any, extra_rules: list[AnyRule]) -> AnyRule:
    rule_id = test.rule or path.name.removesuffix(".test.yaml")
    for rule in extra_rules:
        if rule.id == rule_id:
            return rule
    raise InputError([problem_at(path, node, ["rule"] if test.rule else [],
                                 f"no rule {rule_id!r} beside the test or among the entry-point rules")])


async def run_test_file(path: Path, url: str, rules: list[AnyRule] | None = None) -> RuleTestResult:
    """Run one test file against InfluxDB at `url`, in a database of its own (dropped
    afterwards). `rules`: the rules to look the test's rule up in (default: the rules
    beside the file, then the entry-point rules)."""
    result = RuleTestResult(path)
    test, node, sites, samples = load_test(path)
    if rules is None:
        # Only the rule under test (a broken neighbour must not fail this test),
        # else the entry-point rules.
        beside = path.parent / f"{test.rule or path.name.removesuffix('.test.yaml')}.yaml"
        rules = [load_rule(beside)] if beside.exists() else python_rules()
    rule = _find_rule(path, test, node, rules)
    db = f"rules_test_{uuid.uuid4().hex[:12]}"
    admin = InfluxClient(url, db)
    client = InfluxClient(url, db)
    try:
        await admin.query(f"CREATE DATABASE {quote_ident(db)}", db="")
        lines = encode_lines(samples)
        for i in range(0, len(lines), 5000):
            await client.write(lines[i:i + 5000])
        engine = Engine(client, [rule], sites, test.overrides)
        for index, evaluation in enumerate(test.evaluations):
            result.evaluations += 1
            events = await engine.run(evaluation.at)
            where = problem_at(path, node, ["evaluations", index], f"at {evaluation.at.isoformat()}")
            unmatched = list(events)
            for e_index, expected in enumerate(evaluation.findings):
                best = None
                for f in unmatched:
                    if not _matches(f, expected):
                        best = f
                        break
                if best is None:
                    nearest = [f"{describe(f)} ({'; '.join(_matches(f, expected))})" for f in unmatched]
                    result.failures.append(f"{where}: expected finding [{e_index}] "
                                           f"{expected.model_dump(exclude_none=True)} not found; got: "
                                           f"{'; '.join(nearest) or 'no findings'}")
                else:
                    unmatched.remove(best)
            for f in unmatched:
                result.failures.append(f"{where}: unexpected finding {describe(f)}")
    finally:
        try:
            await admin.query(f"DROP DATABASE {quote_ident(db)}", db="")
        finally:
            await admin.close()
            await client.close()
    return result
