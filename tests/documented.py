"""Figures the documentation states, for tests to expect instead of mux's own constants.

A test of a limit (200 characters of an attention request, a 16-byte PS/2 queue) compares
what mux does with the number a user reads in README.md or docs/**/*.md, not with the
constant in the code, so a changed constant fails until the documentation says so too.
:func:`documented` finds a figure by a regex over every page (each page's lines joined
with single spaces, so a sentence may wrap anywhere); it fails the test, naming the
pattern, when no page states it any more, and when two pages state different figures.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Number words the documentation writes out ("but for two bytes").
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
         "eight": 8, "nine": 9, "ten": 10}


def pages() -> list[Path]:
    """Every page of the documentation: README.md and docs/**/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def documented(pattern: str, group: int = 1) -> str:
    """The text ``pattern``'s ``group`` takes in the documentation (the same on every page
    that states it).

    Raises:
        pytest.fail.Exception: no page matches ``pattern``, or pages disagree.
    """
    regex = re.compile(pattern)
    found: dict[str, list[str]] = {}
    for page in pages():
        if not page.is_file():
            continue
        text = " ".join(page.read_text(encoding="utf-8").split())
        for match in regex.finditer(text):
            found.setdefault(match.group(group), []).append(str(page.relative_to(ROOT)))
    if not found:
        pytest.fail(f"the documentation (README.md, docs/**/*.md) no longer states /{pattern}/:"
                    " say it there again, or change what this test expects", pytrace=False)
    if len(found) > 1:
        pytest.fail(f"the documentation disagrees on /{pattern}/: {found}", pytrace=False)
    return next(iter(found))


def documented_number(pattern: str, group: int = 1) -> float:
    """:func:`documented`, as a number (digits, or a number word up to ten)."""
    text = documented(pattern, group)
    if text.lower() in WORDS:
        return float(WORDS[text.lower()])
    try:
        return float(text)
    except ValueError:
        pytest.fail(f"/{pattern}/ found {text!r} in the documentation, not a number", pytrace=False)
