"""Property-based fuzzing (hypothesis) of the rule loader (rules/loader.py, rules/model.py)
and of rule test files (rules/testing.py): whatever a file holds, loading gives an
InputError whose every line names the file and a line, or a rule the engine can run
(its InfluxQL built, its summary filled with the engine's values, a finite saving) or
a test whose series are read; never a traceback."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz_loaders import (  # the loader fuzzers' generators and property, not copied
    FUZZ,
    documents,
    field_names,
    loads_or_names_the_place,
    mutated,
    scalars,
    swapped,
)

from greenwatch.core.yamlfile import InputError
from rules.engine import eval_range, yaml_query
from rules.loader import PACK_DIR, load_rule
from rules.model import SUMMARY_KEYS, Rule
from rules.testing import RuleTest, load_test

# The shipped pack's files are the seeds: a select rule, a query rule, and a test file.
SELECT_SEED = (PACK_DIR / "after-hours-office-load.yaml").read_text()
QUERY_SEED = (PACK_DIR / "pue-above-target.yaml").read_text()
TEST_SEED = (PACK_DIR / "after-hours-office-load.test.yaml").read_text()
RULE_KEYS = field_names(Rule) | {"for"}
TEST_KEYS = field_names(RuleTest)
AT = dt.datetime(2026, 3, 3, 8, 0, tzinfo=dt.UTC)
# What the engine fills a summary with (rules/engine.py, Engine._finding): the types matter.
ENGINE_VALUES: dict[str, Any] = {
    "site": "hq", "device": "pc-1", "entity": "", "label": "", "value": 212.5, "hours": 14.0,
    "threshold": 150.0, "count": 3, "kwh_per_year": 934.2, "cost_per_year": 233.5, "currency": "GBP",
    "kgco2e_per_year": 193.1,
}
assert set(ENGINE_VALUES) == set(SUMMARY_KEYS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-rules")


def the_engine_can_run(rule: Rule | None) -> None:
    if rule is None:
        return
    query = yaml_query(rule, *eval_range(AT, rule.lookback_s, rule.bucket_s))
    assert query.startswith("SELECT") and "$range" not in query
    assert isinstance(rule.summary.format_map(ENGINE_VALUES), str)
    for value in (0.0, rule.condition.threshold, 1e6):
        assert math.isfinite(rule.savings.watts(value, 250.0)), rule.savings


def check_rule(path: Path) -> None:
    # Rules hold no secrets: a bad value is named back as written.
    the_engine_can_run(loads_or_names_the_place(load_rule, path, secrets=False))


def check_test_file(path: Path) -> None:
    loaded = loads_or_names_the_place(load_test, path, secrets=False)
    if loaded is not None:
        test, _, sites, samples = loaded
        assert all(math.isfinite(v) for s in samples for v in s.fields.values())
        assert set(sites) == set(test.sites)


def test_the_seeds_are_valid(folder):
    for seed, name in ((SELECT_SEED, "after-hours-office-load"), (QUERY_SEED, "pue-above-target")):
        path = folder / f"{name}.yaml"
        path.write_text(seed)
        rule = load_rule(path)
        assert rule.id == name
        the_engine_can_run(rule)
    path = folder / "after-hours-office-load.test.yaml"
    path.write_text(TEST_SEED)
    _, _, _, samples = load_test(path)
    assert len(samples) == 7 * 128 + 32 + 40 + 56 + 128


@settings(FUZZ, max_examples=600)
@given(text=st.one_of(mutated(SELECT_SEED), mutated(QUERY_SEED)))
def test_mistyped_rules_load_or_name_the_place(folder, text):
    # Under the seeds' names, so a rule that survives its slips also passes the id check.
    name = "pue-above-target" if "site_energy" in text else "after-hours-office-load"
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_rule(path)


SUMMARIES = st.one_of(
    st.builds(lambda key, spec: "{" + key + spec + "} x", st.sampled_from(SUMMARY_KEYS),
              st.sampled_from(["", ":.1f", ":.0f", ":d", ":>8", ":,", ":%", "!r", "!s", "!z", ":.1q", "[0]",
                               ".real", ":{x}", ":%Y"])),
    st.sampled_from(["{", "}", "{}", "{0}", "{value:.1f", "{{device}}", "{nope}"]),
)


@settings(FUZZ, max_examples=500)
@given(seed=st.sampled_from([SELECT_SEED, QUERY_SEED]), summary=SUMMARIES,
       numbers=st.dictionaries(st.sampled_from(["excess_over", "shortfall_below", "per_unit", "fixed_watts"]),
                               st.one_of(st.floats(), scalars()), max_size=2))
def test_summaries_and_savings_load_or_name_the_place(folder, seed, summary, numbers):
    doc = yaml.safe_load(seed)
    doc["summary"] = summary
    doc["savings"] = {**{k: v for k, v in doc["savings"].items() if k == "base"}, **numbers}
    path = folder / f"{doc['id']}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check_rule(path)


@settings(FUZZ, max_examples=600)
@given(doc=st.one_of(swapped(SELECT_SEED, RULE_KEYS), swapped(QUERY_SEED, RULE_KEYS)))
def test_rules_with_odd_values_load_or_name_the_place(folder, doc):
    # Under the rule's id when that can be a file's name, so valid rules pass the id check.
    rule_id = doc.get("id")
    name = rule_id if isinstance(rule_id, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]{0,60}", rule_id) else "odd-id"
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check_rule(path)


@settings(FUZZ, max_examples=300)
@given(doc=st.one_of(st.dictionaries(st.sampled_from(sorted(RULE_KEYS)), documents(RULE_KEYS), min_size=1),
                     documents(RULE_KEYS)))
def test_generated_rules_load_or_name_the_place(folder, doc):
    path = folder / "generated.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check_rule(path)


@settings(FUZZ, max_examples=500)
@given(text=mutated(TEST_SEED))
def test_mistyped_rule_tests_load_or_name_the_place(folder, text):
    path = folder / "after-hours-office-load.test.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_test_file(path)


SERIES = st.lists(st.one_of(
    st.sampled_from(["60", "60x3", "_", "_x2", "10+5x4", "50-10x3", "1e3", "-0", "x3", "60x", "+5", "60x0",
                     "1.5-0.5x2", "60x99999999999", "_x99999999999", "nan", "inf", "60 x3"]),
    st.text(max_size=6)), max_size=4).map(" ".join)
KEYS = st.one_of(
    st.sampled_from(['power{site="hq",device="pc-1"} watts', 'power{} watts', 'power{site="a\\"b"} watts',
                     'poll{device="d"} up', 'power{site=hq} watts', 'power watts', '{site="x"} watts',
                     'power{site="hq",} watts', 'site_energy{site="hq"} kwh']),
    st.text(max_size=20))


@settings(FUZZ, max_examples=500)
@given(series=st.dictionaries(KEYS, st.one_of(SERIES, scalars()), min_size=1, max_size=3),
       step=st.one_of(st.sampled_from(["15m", "15m", "15m", "1s", "0s", "-1m", "1y"]), scalars()))
def test_rule_test_series_load_or_name_the_place(folder, series, step):
    doc = yaml.safe_load(TEST_SEED)
    doc["series"], doc["step"] = series, step
    path = folder / "after-hours-office-load.test.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check_test_file(path)


@settings(FUZZ, max_examples=400)
@given(doc=swapped(TEST_SEED, TEST_KEYS | RULE_KEYS))
def test_rule_tests_with_odd_values_load_or_name_the_place(folder, doc):
    path = folder / "after-hours-office-load.test.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check_test_file(path)


def test_a_huge_repeat_count_is_named_not_built(folder):
    # Found by the fuzzer above: 60x99999999999 was built as a list until memory ran out.
    doc = yaml.safe_load(TEST_SEED)
    doc["series"] = {'power{site="hq",device="pc-1"} watts': "60x10 _x99999999999"}
    path = folder / "after-hours-office-load.test.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError) as caught:
        load_test(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:") and "more than 1,000,000 steps" in problem, problem


def test_a_summary_the_engine_cannot_fill_is_named(folder):
    # Found by the fuzzer above: {value:.} and {device:.1f} loaded, then failed at the first finding.
    for summary in ("{site}: {value:.} W", "{device:.1f}", "{value!z}", "{value:d}"):
        doc = yaml.safe_load(SELECT_SEED)
        doc["summary"] = summary
        path = folder / "after-hours-office-load.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(InputError) as caught:
            load_rule(path)
        [problem] = caught.value.problems
        assert problem.startswith(f"{path}:") and "summary" in problem and "cannot be filled in" in problem, problem


def test_an_infinite_savings_limit_is_named(folder):
    # Found by the fuzzer above: shortfall_below: .inf loaded and made every saving infinite.
    for key in ("excess_over", "shortfall_below"):
        doc = yaml.safe_load(SELECT_SEED)
        doc["savings"] = {key: float("inf")}
        path = folder / "after-hours-office-load.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(InputError) as caught:
            load_rule(path)
        [problem] = caught.value.problems
        assert problem.startswith(f"{path}:") and f"savings.{key}" in problem, problem
