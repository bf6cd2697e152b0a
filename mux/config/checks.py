"""Reading typed values out of a config's tables, every problem collected with its place.

:class:`Checker` is the shared tool of :mod:`mux.config.parse` and
:mod:`mux.config.machine`: each ``get`` checks a key's type (and optionally its value)
and, on a mistake, records ``(location, message)`` and returns the default, so one pass
over a file finds all its mistakes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mux.errors import Location
from mux.sourcemap import Path_, SourceMap

T = TypeVar("T")


class Checker:
    """Reads typed values out of one table, collecting every problem it meets."""

    def __init__(self, locate: SourceMap, problems: list[tuple[Location, str]]) -> None:
        self.locate = locate
        self.problems = problems

    def fail(self, path: Path_, message: str) -> None:
        self.problems.append((self.locate(path), message))

    def table(self, data: Any, path: Path_, known: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.fail(path, f"{dotted(path)} must be a table, not {kind_of(data)}")
            return {}
        for key in data:
            if key not in known:
                hint = ", ".join(sorted(known))
                self.fail((*path, key), f"unknown key {dotted((*path, key))!r} (known: {hint})")
        return data

    def get(self, table: dict[str, Any], path: Path_, key: str, kind: type[T] | tuple[type, ...],
            default: T, check: Callable[[Any], str | None] | None = None) -> T:
        if key not in table:
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.fail((*path, key), f"{dotted((*path, key))} must be {names}, not {kind_of(value)}")
            return default
        problem = "must not contain a NUL character" if _has_nul(value) else check(value) if check else None
        if problem:
            self.fail((*path, key), f"{dotted((*path, key))}: {problem}")
            return default
        return value  # type: ignore[return-value]

    def choice(self, table: dict[str, Any], path: Path_, key: str, choices: tuple[str, ...],
               default: str) -> Any:
        return self.get(table, path, key, str, default,
                        lambda v: None if v in choices else f"must be one of {', '.join(choices)}")


def dotted(path: Path_) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


def kind_of(value: Any) -> str:
    names: dict[type, str] = {dict: "a table", list: "a list"}
    return names.get(type(value), type(value).__name__)


def _has_nul(value: Any) -> bool:
    """Whether a string in ``value`` holds a NUL, which no path, name or argument may."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | dict):
        return any(_has_nul(item) for item in (value.values() if isinstance(value, dict) else value))
    return False


def positive(value: float) -> str | None:
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return "is too large"
    return None if number > 0 else "must be greater than 0"


def color(value: str) -> str | None:
    return None if re.fullmatch(r"#?[0-9a-fA-F]{6}", value) else "must be a colour like 'c03030'"


def relative_to(base: Path | str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() or not isinstance(base, Path) else base.parent / path
