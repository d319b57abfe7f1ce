"""Finding rules: the shipped pack (rules/pack/*.yaml), a user's rule folders, and
Python rules registered under the `greenwatch.rules` entry point group. And lint:
every problem named by file, line and field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

from greenwatch.core.influx import InfluxClient, InfluxQueryError
from greenwatch.core.yamlfile import (
    InputError,
    parse_model_with_node,
    problem_at,
)

from .engine import AnyRule, eval_range, rejected, yaml_query
from .model import Rule

PACK_DIR = Path(__file__).parent / "pack"
ENTRY_POINT_GROUP = "greenwatch.rules"
TEST_SUFFIX = ".test.yaml"


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """Rule files in the paths given (folders are searched, test files left out)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.glob("*.yaml") if not p.name.endswith(TEST_SUFFIX))
        elif not path.name.endswith(TEST_SUFFIX):
            out.append(path)
    return out


def rule_test_files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(path.glob("*" + TEST_SUFFIX))
        elif path.name.endswith(TEST_SUFFIX):
            out.append(path)
        else:
            beside = path.with_name(path.name.removesuffix(".yaml") + TEST_SUFFIX)
            if beside.exists():
                out.append(beside)
    return out


def load_rule(path: Path) -> Rule:
    """One YAML rule; InputError naming file, line and field when it is bad."""
    rule, node = parse_model_with_node(Rule, path)
    expected = path.name.removesuffix(".yaml")
    if rule.id != expected:
        raise InputError([problem_at(path, node, ["id"], f"the id must be the file's name ({expected!r})")])
    return rule.model_copy(update={"path": path})


def python_rules() -> list[AnyRule]:
    """Rules registered under the `greenwatch.rules` entry point group."""
    out: list[AnyRule] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        out.append(obj() if isinstance(obj, type) else obj)
    return out


def load_rules(dirs: Sequence[Path] = (), shipped: bool = True) -> list[AnyRule]:
    """The shipped pack (YAML and entry-point rules) and the user's folders; a user's
    rule with a shipped id replaces it. Every bad file's problems are raised at once."""
    by_id: dict[str, AnyRule] = {}
    if shipped:
        for rule in python_rules():
            by_id[rule.id] = rule
    problems: list[str] = []
    for path in rule_files(([PACK_DIR] if shipped else []) + list(dirs)):
        try:
            rule = load_rule(path)
        except InputError as exc:
            problems += exc.problems
            continue
        by_id[rule.id] = rule
    if problems:
        raise InputError(problems)
    return list(by_id.values())


async def check_query(rule: Rule, client: InfluxClient) -> str | None:
    """Run the rule's query over an empty hour: a problem line if InfluxDB rejects it."""
    start, end = eval_range(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), 3600, rule.bucket_s)
    try:
        await client.query(yaml_query(rule, start, end), epoch="s")
    except InfluxQueryError as exc:
        return rejected(rule, exc)
    return None


async def lint(paths: Sequence[Path], client: InfluxClient | None) -> tuple[list[Rule], list[str]]:
    """Check rule files; with a client, also that InfluxDB accepts each query."""
    problems: list[str] = []
    rules: list[Rule] = []
    files = rule_files(paths)
    if not files:
        problems.append(f"{', '.join(map(str, paths))}: no rule files found")
    for path in files:
        try:
            rules.append(load_rule(path))
        except InputError as exc:
            problems += exc.problems
    if client is not None:
        for rule in rules:
            problem = await check_query(rule, client)
            if problem:
                problems.append(problem)
    return rules, problems
