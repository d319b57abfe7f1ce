"""YAML files with errors that name the file, the line and the field.

Config and profiles are validated by pydantic; its error locations are paths
(`sites.0.devices.1.snmp.version`). This module maps such a path back to the line
of the YAML file where that value stands, so a user is pointed at the place to fix.

Before anything is built, what YAML itself would accept but greenwatch must not is
refused with its line: text that is not UTF-8, a key written twice in one mapping,
nesting past MAX_DEPTH, aliases that contain themselves or expand past the limits
below, values PyYAML cannot build, and empty files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# No config or profile nests deeper than about ten levels. libyaml's composer recurses
# in C, so a few hundred thousand brackets crash the process before any Python
# error could be raised: depth is checked on the event stream, before composing.
MAX_DEPTH = 50
# An alias repeats what its anchor holds, so a few lines can stand for billions of
# values ("billion laughs") that validation would then walk. Aliases may expand a
# file to this many values, or to EXPANSION_RATIO times what is written, if more.
MAX_EXPANDED = 100_000
EXPANSION_RATIO = 10


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """The safe loader, with values it cannot build (`!!int abc`, an implicit
    timestamp such as 2001-13-45) reported at their line instead of as a bare
    ValueError from deep inside PyYAML."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError):
            # The value itself is not quoted back: it may be a secret.
            kind = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"not a valid {kind} (quote it if it is text)", node.start_mark) from None


class InputError(Exception):
    """Bad input from a file the user wrote: one message per problem, each naming
    the file, the line where known, the field and what was expected."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def read_text(path: Path) -> str:
    """A file's text, which must be UTF-8 (a BOM is allowed)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError([f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                          "save the file as UTF-8"]) from None


def load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; return the data and its node tree (for line numbers).

    Refused with the line: text that is not UTF-8, a key written twice in one mapping
    (PyYAML would silently keep the last), nesting deeper than MAX_DEPTH, aliases
    that refer to themselves or expand past the limits above."""
    text = read_text(path)
    try:
        _check_events(path, text)
        # One parse gives both the node tree (for line numbers) and the data built
        # from it; libyaml's C parser where PyYAML has it, as a 10,000-device
        # inventory is megabytes of YAML.
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise InputError([f"{_where(path, text, exc)}: not valid YAML: {_problem(exc)}"]) from None
    return data, node


def _where(path: Path, text: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        # At the end of a file without a final newline the mark is on the line after.
        return f"{path}:{min(mark.line + 1, len(_BREAKS.findall(text)) + 1)}"
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML refuses
    if isinstance(position, int):
        # libyaml counts bytes of the UTF-8 text; PyYAML's own reader, characters.
        if _Base is yaml.SafeLoader:
            before = text[:position]
        else:
            before = text.encode("utf-8")[:position].decode("utf-8", "replace")
        return f"{path}:{len(_BREAKS.findall(before)) + 1}"
    return str(path)


# Line breaks as YAML counts them.
_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        return f"character U+{char:04X} is not allowed ({exc.reason})"
    problem = getattr(exc, "problem", None)
    if not problem:
        return str(exc)
    context = getattr(exc, "context", None)  # e.g. "expected a single document in the stream"
    return f"{context}, {problem}" if context else problem


class _Open:
    """A mapping or sequence being read in _check_events."""

    __slots__ = ("mapping", "expect_key", "keys", "key", "index", "anchor", "start")

    def __init__(self, mapping: bool, anchor: str | None, start: int) -> None:
        self.mapping = mapping
        self.expect_key = True
        self.keys: dict[str, int] = {}  # key -> line, for duplicates
        self.key: str | None = None  # the current key (mappings)
        self.index = -1  # the current item (sequences)
        self.anchor = anchor
        self.start = start  # values expanded before it began


def _check_events(path: Path, text: str) -> None:
    """One pass over the parser's events (no tree is built): duplicate keys, depth,
    self-referring and exploding aliases. Raises InputError naming the line."""
    stack: list[_Open] = []
    sizes: dict[str, int] = {}  # anchor -> how many values it stands for
    written = expanded = 0
    biggest: tuple[int, str, int] | None = None  # (values, anchor, line) of the largest alias

    def place(*more: str) -> str:
        return format_loc([o.key if o.mapping else o.index for o in stack] + list(more))

    for event in yaml.parse(text, Loader=_Base):
        kind = type(event)
        if kind in _NODE_STARTS:
            line = event.start_mark.line + 1
            if stack:
                top = stack[-1]
                if not top.mapping:
                    top.index += 1
                elif top.expect_key:
                    key = event.value if kind is yaml.ScalarEvent else None
                    if key is not None and key in top.keys:
                        stack.pop()  # the place is the mapping's, then the key
                        raise InputError([f"{path}:{line}: {place(key)}: appears twice in this "
                                          f"mapping (first on line {top.keys[key]}): keep one"])
                    if key is not None:
                        top.keys[key] = line
                    top.key = key if key is not None else "?"
            written += 1
            if kind is yaml.AliasEvent:
                if any(o.anchor == event.anchor for o in stack):
                    raise InputError([f"{path}:{line}: {place()}: alias *{event.anchor} is inside its own "
                                      "anchor (a value that contains itself)"])
                size = sizes.get(event.anchor, 1)
                if biggest is None or size > biggest[0]:
                    biggest = (size, event.anchor, line)
                expanded += size
            else:
                expanded += 1
            if kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                stack.append(_Open(kind is yaml.MappingStartEvent, event.anchor, expanded - 1))
                if len(stack) > MAX_DEPTH:
                    raise InputError([f"{path}:{line}: nested deeper than {MAX_DEPTH} levels"])
                continue
            if kind is yaml.ScalarEvent and event.anchor:
                sizes[event.anchor] = 1
        elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
            done = stack.pop()
            if done.anchor:
                sizes[done.anchor] = expanded - done.start
        else:
            continue
        # A node is complete: in a mapping, a key is followed by its value and a value
        # by the next key.
        if stack and stack[-1].mapping:
            stack[-1].expect_key = not stack[-1].expect_key
    limit = max(MAX_EXPANDED, EXPANSION_RATIO * written)
    if expanded > limit and biggest is not None:
        size, anchor, line = biggest
        raise InputError([f"{path}:{line}: alias *{anchor} stands for {size:,} values; with aliases the "
                          f"file expands to {expanded:,} values from {written:,} written (at most {limit:,}): "
                          "write the values out or alias smaller parts"])


_NODE_STARTS = frozenset({yaml.ScalarEvent, yaml.AliasEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent})


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
    """`sites[0].devices[1].snmp`; a key that is not a plain word is quoted (and cut
    short), so that spaces, empty keys and control characters show."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = str(part)
        if not _PLAIN_KEY.fullmatch(text):
            text = repr(text) if len(text) <= 40 else repr(text[:37]) + "..."
        out += f".{text}" if out else text
    return out or "(top level)"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$<>/-]+")


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
    if data is None or data == {}:
        # An empty file (only comments, or {}) is more likely a mistake than a wish
        # for every default: say so rather than run with nothing in it.
        line = node.start_mark.line + 1 if node is not None else 1
        raise InputError([f"{path}:{line}: the file is empty: expected a YAML mapping (key: value lines)"])
    try:
        return model.model_validate(data, context=context), node
    except ValidationError as exc:
        raise InputError(validation_problems(path, node, exc)) from None
