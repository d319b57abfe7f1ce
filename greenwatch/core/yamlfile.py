"""YAML files with errors that name the file, the line and the field.

Config and profiles are validated by pydantic; its error locations are paths
(`sites.0.devices.1.snmp.version`). This module maps such a path back to the line
of the YAML file where that value stands, so a user is pointed at the place to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(Exception):
    """Bad input from a file the user wrote: one message per problem, each naming
    the file, the line where known, the field and what was expected."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; return the data and its node tree (for line numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    # One parse gives both the node tree (for line numbers) and the data built from
    # it; libyaml's C parser where PyYAML has it, as a 10,000-device inventory is
    # megabytes of YAML.
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError([f"{where}: not valid YAML: {problem}"]) from exc
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, loc: Iterable[Any]) -> int | None:
    """The 1-based line of the value at `loc` in a composed YAML tree (or the
    deepest ancestor found, for a missing key)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def format_loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def problem_at(path: Path, node: yaml.Node | None, loc: Iterable[Any], message: str) -> str:
    """'file:line: field.path: message' for the value at `loc`."""
    loc = list(loc)
    line = line_of(node, loc)
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {format_loc(loc)}: {message}"


def validation_problems(path: Path, node: yaml.Node | None, exc: ValidationError) -> list[str]:
    """Turn a pydantic error into file:line: field: message lines."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        # pydantic adds the union/validator member's name to the path; drop
        # those parts that are not keys in the file.
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against the reference)"
        problems.append(problem_at(path, node, loc, msg))
    return problems


def parse_model(model: type[BaseModel], path: Path, context: dict[str, Any] | None = None) -> Any:
    """Load `path` and validate it as `model`, raising InputError that names places."""
    return parse_model_with_node(model, path, context)[0]


def parse_model_with_node(
    model: type[BaseModel], path: Path, context: dict[str, Any] | None = None
) -> tuple[Any, yaml.Node | None]:
    """As parse_model, also returning the YAML node tree for checks made afterwards."""
    data, node = load_yaml(path)
    if data is None:
        data = {}
    try:
        return model.model_validate(data, context=context), node
    except ValidationError as exc:
        raise InputError(validation_problems(path, node, exc)) from None
