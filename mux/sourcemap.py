"""Load a user's TOML or YAML file as plain data plus a map back to its lines.

Validation works on plain dicts and lists, but its errors must name the file and the
line a user has to edit. Each loader therefore returns the data together with a
``SourceMap``: a function from a key path such as ``("persona", 1, "memory_mb")`` to a
:class:`~mux.errors.Location`. YAML keeps exact positions (PyYAML's node marks).
``tomllib`` keeps none, so the TOML map scans the text for table headers and
``key =`` lines, and places the inline tables of an array that spans lines
(``devices = [`` then one ``{ id = ... }`` a line); a path it cannot place falls back
to its nearest placed parent.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import yaml

from mux.errors import ConfigError, Location

Path_ = tuple[str | int, ...]
SourceMap = Callable[[Path_], Location]


def locate_in(marks: dict[Path_, Location], file: Path | str) -> SourceMap:
    """A SourceMap that answers with the longest known prefix of the path."""

    def locate(path: Path_) -> Location:
        for end in range(len(path), -1, -1):
            if path[:end] in marks:
                return marks[path[:end]]
        return Location(file)

    return locate


# --- YAML -------------------------------------------------------------------------

_SCALARS = yaml.constructor.SafeConstructor()


def load_yaml_text(text: str, file: Path | str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain data and the position of every node.

    Raises:
        ConfigError: the text is not valid YAML (with the parser's line and column).
    """
    marks: dict[Path_, Location] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = _construct(root, (), marks, file) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise ConfigError.one(loc, f"YAML syntax error: {exc.problem or exc}") from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character)
        raise ConfigError.one(_line_of(text, exc.position, file), f"YAML: {exc}") from exc
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        # a value the constructors refuse (a date 2001-13-45, an unhashable key), or
        # nesting deeper than the parser's recursion: at the last node placed
        where = marks[max(marks, key=len)] if marks else Location(file)
        problem = str(exc)[:200] or type(exc).__name__
        raise ConfigError.one(where, f"YAML that cannot be read: {problem}") from exc
    return data, locate_in(marks, file)


def _line_of(text: str, position: int, file: Path | str) -> Location:
    """The location of character ``position`` of ``text``."""
    before = text[:position]
    return Location(file, before.count("\n") + 1, position - before.rfind("\n"))


def _construct(node: yaml.Node, path: Path_, marks: dict[Path_, Location], file: Path | str) -> Any:
    marks[path] = Location(file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            key = _SCALARS.construct_object(key_node, deep=True)
            child = (*path, key) if isinstance(key, str | int) else path
            result[key] = _construct(value_node, child, marks, file)
            marks[child] = Location(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), marks, file) for i, item in enumerate(node.value)]
    return _SCALARS.construct_object(node, deep=True)


# --- TOML -------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")
_INLINE_KEY = re.compile(r"([A-Za-z0-9_\-]+)\s*=")


def load_toml_text(text: str, file: Path | str) -> tuple[dict[str, Any], SourceMap]:
    """Parse TOML text into plain data and the lines of its tables and keys.

    Raises:
        ConfigError: the text is not valid TOML (tomllib reports the line in its message).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+), column (\d+)", str(exc))
        loc = Location(file, int(match[1]), int(match[2])) if match else Location(file)
        raise ConfigError.one(loc, f"TOML syntax error: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; deep nesting
        problem = str(exc)[:200] or type(exc).__name__
        raise ConfigError.one(Location(file), f"TOML that cannot be read: {problem}") from exc
    marks: dict[Path_, Location] = {}
    table: Path_ = ()
    counts: dict[Path_, int] = {}
    array: _InlineArray | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if array is not None and not header:  # a header means the scan lost track: stop
            array = array.scan(line, 0, number)
            continue
        array = None
        if header:
            names = tuple(part.strip().strip("\"'") for part in header[2].split("."))
            if header[1] == "[[":
                index = counts.get(names, 0)
                counts[names] = index + 1
                table = (*names, index)
            else:
                table = names
            marks.setdefault(table, Location(file, number, 1))
            continue
        key = _KEY.match(line)
        if key:
            marks.setdefault((*table, key[1].strip('"')), Location(file, number, line.index(key[1]) + 1))
            value = line[key.end():].lstrip()
            if value.startswith("["):
                array = _InlineArray((*table, key[1].strip('"')), marks, file)
                array = array.scan(line, len(line) - len(value), number)
    return data, locate_in(marks, file)


class _InlineArray:
    """Places the inline tables (and their keys) of one array value, line by line."""

    def __init__(self, path: Path_, marks: dict[Path_, Location], file: Path | str) -> None:
        self.path, self.marks, self.file = path, marks, file
        self.depth = 0  # [ ] and { } nesting inside the array
        self.index = 0
        self.element: Path_ | None = None

    def scan(self, line: str, start: int, number: int) -> _InlineArray | None:
        """Read ``line`` from ``start``; returns None once the array is closed."""
        i, quote = start, ""
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "\\" and quote == '"':
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch in "[{":
                if ch == "{" and self.depth == 1:
                    self.element = (*self.path, self.index)
                    self.index += 1
                    self.marks.setdefault(self.element, Location(self.file, number, i + 1))
                self.depth += 1
            elif ch in "]}":
                self.depth -= 1
                if self.depth == 0:
                    return None
            elif self.depth == 2 and self.element is not None and line[:i].rstrip()[-1:] in ("{", ","):
                key = _INLINE_KEY.match(line, i)
                if key:
                    self.marks.setdefault((*self.element, key[1]), Location(self.file, number, i + 1))
                    i = key.end() - 1
            i += 1
        return self


def load_file(path: Path) -> tuple[Any, SourceMap]:
    """Load ``path`` as TOML or YAML (by its suffix).

    Raises:
        ConfigError: the file cannot be read or parsed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.one(Location(path), f"cannot read: {exc}") from exc
    if path.suffix in (".yaml", ".yml"):
        return load_yaml_text(text, path)
    return load_toml_text(text, path)
