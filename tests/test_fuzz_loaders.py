"""Property-based fuzzing of the config and profile loaders (hypothesis): whatever the
file holds, loading gives a valid result or an InputError whose every line names a
file and a line; never another exception."""

from __future__ import annotations

import copy
import re
import tempfile
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from pydantic import BaseModel

from collector.profiles import ProfileFile, _read_file, load_profiles
from collector.snmp.engines import make_engine
from collector.sources import make_source
from greenwatch.config import Config
from greenwatch.core.yamlfile import InputError
from greenwatch.service import load, make_writer

# One engine for every source built (none is asked anything).
ENGINE = make_engine("pysnmp")

# Nothing of hypothesis's in the repository: no example database (examples are
# generated afresh each run), and its caches in the temp folder.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "greenwatch-hypothesis")

# Counts keep each test to a few seconds: hypothesis takes ~15 ms to build one nested
# document, the loaders ~1 ms to refuse it. About 3,700 files in all per run.
FUZZ = settings(max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROBLEM = re.compile(r"^(?P<file>/.+?):(?P<line>\d+): \S")
YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def field_names(model: type[BaseModel]) -> set[str]:
    """Every key a model and the models inside it know: keys the fuzzer writes so that
    documents get past `unknown key` into the validators below."""
    names: set[str] = set()
    seen: set[type] = set()

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                return
            seen.add(annotation)
            for name, info in annotation.model_fields.items():
                names.add(info.alias or name)
                walk(info.annotation)
        for arg in typing.get_args(annotation):
            walk(arg)
        if isinstance(annotation, types.UnionType):
            for arg in annotation.__args__:
                walk(arg)

    walk(model)
    return names


# Values that reach the validators' edges: durations, sizes, URLs with and without
# credentials, addresses, versions, secrets by reference, units, kinds, OIDs.
EDGY = [
    "60s", "0s", "-1s", "500ms", "5m", "1h", "99999999999h", "1e999", ".inf", "nan", "512MB", "0B", "1GiB",
    "http://127.0.0.1:8086", "https://h:99999", "ftp://x", "http://u:secret-pw@h", "u:secret-pw@h", "http://h/x?q#f",
    "http://[::1", "10.0.0.1", "10.0.0.1:70000", "[::1]:161", "[::1", "h:0", "2c", "1", "3", "v1", "v2", "${UNSET_GW_VAR}",
    "${HOME}", "SHA", "SHA-256", "AES", "DES", "json", "shelly", "tasmota", "pdu", "ups", "meter", "W", "kW", "Wh",
    "watts", "power", "1.3.6.1.4.1.318", "1.3.6.1.*", ".1.3.6", "x.y", "Europe/London", "Mars/Olympus", ".", "",
    "/proc/nope/x.db", "greenwatch.yaml", "if-mib", "ups-mib", "auto", "gufo", "pysnmp", "total", "a/b/c", "~",
]


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(EDGY),
        st.text(max_size=12),
    )


def documents(keys: set[str]) -> st.SearchStrategy[Any]:
    key = st.one_of(st.sampled_from(sorted(keys)), st.text(max_size=6))
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(key, inner, max_size=6),
        ),
        max_leaves=30,
    )


def top_level(keys: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    # Mostly mappings of known keys at the top, as a real file has.
    return st.dictionaries(st.sampled_from(sorted(keys)), documents(keys), min_size=1, max_size=5)


def mutated(seed: str) -> st.SearchStrategy[str]:
    """The seed text with a few characters deleted, inserted or lines repeated: the
    slips a hand-edited file has (YAML syntax errors, stray indentation, repeats)."""
    edit = st.tuples(st.sampled_from(["delete", "insert", "repeat-line"]), st.integers(0, len(seed)),
                     st.sampled_from(list(" \t:-[]{}&*!#|>'\"\n%@`,?\x00\x85\u2028é")))

    def apply(edits: list[tuple[str, int, str]]) -> str:
        text = seed
        for op, at, char in edits:
            at = min(at, len(text))
            if op == "delete":
                text = text[:at] + text[at + 1:]
            elif op == "insert":
                text = text[:at] + char + text[at:]
            else:
                lines = text.splitlines(keepends=True)
                if lines:
                    i = at % len(lines)
                    text = "".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])
        return text

    return st.lists(edit, min_size=1, max_size=4).map(apply)


def loads_or_names_the_place(loader: Callable[[Path], Any], path: Path, secrets: bool = True) -> Any:
    """The property: a result, or an InputError naming an existing file and a line in
    it (and, in a config, never quoting a URL's credentials back)."""
    try:
        return loader(path)
    except InputError as exc:
        assert exc.problems
        for problem in exc.problems:
            match = PROBLEM.match(problem)
            assert match, problem
            where = Path(match["file"])
            assert where.is_file(), problem
            # Lines as YAML counts them: \r\n, \r, \n, NEL, LS and PS each end one.
            text = where.read_bytes().decode("utf-8", errors="replace")
            lines = len(YAML_BREAK.findall(text)) + 1
            assert 1 <= int(match["line"]) <= lines, problem
            if secrets:
                assert "secret-pw" not in problem, problem
        return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "profiles").mkdir()
    yield path


CONFIG_SEED = """\
influxdb:
  url: http://127.0.0.1:8086
  database: greenwatch
spool: {max_size: 64MB}
defaults: {interval: 60s, timeout: 2s}
collector:
  profile_dirs: [profiles]
sites:
  - name: dc-north
    tags: {region: north}
    devices:
      - &pdu {name: pdu-a1, address: 127.0.0.1:1161, snmp: {version: 2c, community: c1}, tags: {room: hall-1}}
      - {<<: *pdu, name: pdu-a2}
      - name: ups-1
        address: 127.0.0.1:1161
        profile: [ups-mib, if-mib]
        snmp: {version: 3, user: gw, auth_protocol: SHA, auth_key: "12345678"}
      - name: bmc
        redfish: {url: https://10.0.1.7, username: m, password: p}
      - name: meter
        http: {type: json, url: "http://10.0.2.1/s?x=1", fields: {watts: {path: a.b, unit: kW}}}
"""

PROFILE_SEED = """\
description: A meter
sysobjectid: [1.3.6.1.4.1.99999.1, 1.3.6.1.4.1.99999.2.*]
extends: [if-mib]
kind: meter
max_repetitions: 10
metrics:
  - MIB: METER-MIB
    symbol: {OID: 1.3.6.1.4.1.99999.2.1.0, name: meterPower, field: watts, unit: W, scale_factor: 0.1}
  - table: {OID: 1.3.6.1.4.1.99999.3, name: outletTable}
    scope: outlet
    entity: {index: [1]}
    label: {OID: 1.3.6.1.4.1.99999.3.1.2, name: outletName}
    symbols:
      - {OID: 1.3.6.1.4.1.99999.3.1.3, name: outletWatts, field: watts, valid_min: 0}
    metric_tags:
      - {tag: bank, index: 1}
    filter: {index: 1, equals: [1, 2]}
"""


def run_would_start(loaded: Any) -> None:
    """What `run` builds from a config that `check` accepted builds without refusing:
    the InfluxDB writer and every device's source (nothing is connected)."""
    if loaded is None:
        return
    config = loaded.config
    make_writer(config.influxdb)
    for site, device in config.devices():
        make_source(config.defaults, site, device, loaded.profiles, ENGINE)


def test_the_seeds_are_valid(folder):
    # The mutations start from files that load: otherwise they would test only errors.
    config = folder / "greenwatch.yaml"
    config.write_text(CONFIG_SEED)
    loaded = load(config)
    assert len(loaded.config.devices()) == 5
    run_would_start(loaded)
    profile = folder / "profiles" / "seed.yaml"
    profile.write_text(PROFILE_SEED)
    spec, _ = _read_file(profile)
    assert len(spec.metrics) == 2
    profile.unlink()


CONFIG_KEYS = field_names(Config)
PROFILE_KEYS = field_names(ProfileFile)


@settings(FUZZ, max_examples=300)
@given(doc=top_level(CONFIG_KEYS))
def test_generated_configs_load_or_name_the_place(folder, doc):
    path = folder / "greenwatch.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    run_would_start(loads_or_names_the_place(load, path))


@settings(FUZZ, max_examples=700)  # the ones that load also load every profile
@given(text=mutated(CONFIG_SEED))
def test_mistyped_configs_load_or_name_the_place(folder, text):
    path = folder / "greenwatch.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    run_would_start(loads_or_names_the_place(load, path))


@settings(FUZZ, max_examples=500)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_load_or_name_the_place(folder, data):
    path = folder / "greenwatch.yaml"
    path.write_bytes(data)
    run_would_start(loads_or_names_the_place(load, path))


@settings(FUZZ, max_examples=300)
@given(doc=st.one_of(top_level(PROFILE_KEYS), documents(PROFILE_KEYS)))
def test_generated_profiles_load_or_name_the_place(folder, doc):
    path = folder / "profiles" / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    loads_or_names_the_place(_read_file, path, secrets=False)


@FUZZ
@given(text=mutated(PROFILE_SEED))
def test_mistyped_profiles_load_or_name_the_place(folder, text):
    path = folder / "profiles" / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    loads_or_names_the_place(_read_file, path, secrets=False)


def places(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a parsed document: each mapping value and list item, deep first."""
    found = [at] if at else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += places(value, at + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += places(value, at + (i,))
    return found


def swapped(seed: str, keys: set[str]) -> st.SearchStrategy[Any]:
    """The seed's document with a few values replaced by odd ones (or whole subtrees
    by generated ones): every validator sees values at its edges, in a file that is
    otherwise right."""
    base = yaml.safe_load(seed)
    spots = places(base)

    def apply(swaps: list[tuple[int, Any]]) -> Any:
        doc = copy.deepcopy(base)
        for index, value in swaps:
            *parents, last = spots[index]
            target = doc
            try:
                for part in parents:
                    target = target[part]
                target[last] = value
            except (KeyError, IndexError, TypeError):
                pass  # an earlier swap replaced this place's parent
        return doc

    swap = st.tuples(st.integers(0, len(spots) - 1), st.one_of(scalars(), scalars(), documents(keys)))
    return st.lists(swap, min_size=1, max_size=3).map(apply)


@settings(FUZZ, max_examples=400)
@given(doc=swapped(CONFIG_SEED, CONFIG_KEYS))
def test_configs_with_odd_values_load_or_name_the_place(folder, doc):
    path = folder / "greenwatch.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    run_would_start(loads_or_names_the_place(load, path))


@settings(FUZZ, max_examples=400)
@given(doc=swapped(PROFILE_SEED, PROFILE_KEYS))
def test_profiles_with_odd_values_load_or_name_the_place(folder, doc):
    path = folder / "profiles" / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    loads_or_names_the_place(_read_file, path, secrets=False)


NAMES = ["p0", "p1", "p2", "p3", "p4", "if-mib", "ups-mib", "nowhere"]


@settings(FUZZ, max_examples=150)
@given(graph=st.dictionaries(st.sampled_from(NAMES[:5]), st.lists(st.sampled_from(NAMES), max_size=3),
                             min_size=1, max_size=5))
def test_extends_graphs_resolve_or_name_the_line(tmp_path_factory, graph):
    """Any extends graph among user profiles (loops, unknown names, diamonds): each
    profile resolves with its bases' metrics first, or the loader names the line."""
    folder = tmp_path_factory.mktemp("graph")
    for name, bases in graph.items():
        (folder / f"{name}.yaml").write_text(f"description: {name}\nextends: {bases}\n".replace("'", ""))
    profiles = loads_or_names_the_place(lambda _: load_profiles([folder]), folder / f"{next(iter(graph))}.yaml")
    if profiles is not None:
        for name, bases in graph.items():
            expected = [m for b in bases for m in profiles.get(b).metrics]
            assert list(profiles.get(name).metrics) == expected
