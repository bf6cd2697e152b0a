"""The feature table in tests/README.md keeps up with the code: every config key, scenario
step, command and MQTT topic mux has is a row, every row is one mux still has, every test
a row names exists, and no row is left ``untested``.

The features are read from the code each time, never from a list kept here: the config
keys from the schema's dataclasses (the tables of :mod:`mux.reference.config`, the same
the config reference is generated from), the steps, blocks and modifiers from
:data:`mux.scenario.model.STEPS`, ``BLOCKS`` and ``MODIFIERS``, the commands by walking
the parser of :func:`mux.cli.build_parser`, the topics from the bridge's own code
(:func:`mux.reference.mqtt.code_topics`, which reads :mod:`mux.frontends.mqtt_topics`).
The tests that exist are the test functions found by parsing every ``tests/**/test_*.py``
with :mod:`ast` (no pytest subprocess: this file is in the pure tier). The last tests
show the checks catch drift: a throwaway config key or step put into the code, and a
row naming a test that does not exist.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "tests" / "README.md"
UNTESTED = "untested"


def config_features() -> list[str]:
    """``[section] key`` / ``[[persona]] key`` for every field of every config table."""
    from mux.reference.config import TABLES, schema_class

    found = []
    for table in TABLES:
        for field in dataclasses.fields(schema_class(table)):
            if field.name not in table.skip:
                section = f"[[{table.name}]]" if table.array else f"[{table.name}]"
                found.append(f"{section} {field.name}")
    return found


def step_features() -> list[str]:
    """``step: NAME`` for every step, ``block: NAME`` and ``modifier: NAME`` for the flow control."""
    from mux.scenario import model

    return ([f"step: {name}" for name in model.STEPS] + [f"block: {name}" for name in model.BLOCKS]
            + [f"modifier: {name}" for name in model.MODIFIERS])


def command_features() -> list[str]:
    """``mux COMMAND [SUBCOMMAND]`` for every command of the parser, at every depth."""
    from mux.cli import build_parser

    found: list[str] = []

    def walk(parser: argparse.ArgumentParser, prog: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append(f"{prog} {name}")
                    walk(sub, f"{prog} {name}")

    walk(build_parser(), "mux")
    return found


def topic_features() -> list[str]:
    """``topic: T`` for every topic under the base topic that mux publishes or reads."""
    from mux.reference.mqtt import code_topics

    return [f"topic: {topic}" for topic in code_topics()]


def features() -> list[str]:
    return config_features() + step_features() + command_features() + topic_features()


@dataclass(frozen=True)
class Row:
    """One row of the table: ``| `feature` | `test` <br> `test` | how |``."""

    feature: str
    tests: tuple[str, ...]
    how: str  # "live", "static", or "untested: why"
    line: int


def parse_table(text: str) -> list[Row]:
    """The rows of the table under the ``## Feature table`` heading."""
    rows: list[Row] = []
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            inside = line.strip() == "## Feature table"
            continue
        if not inside or not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) != 3:
            raise AssertionError(f"tests/README.md:{number}: a row has 3 cells (feature | tests | how):"
                                 f" {line}")
        feature = cells[0].strip("`")
        rows.append(Row(feature, tuple(re.findall(r"`(tests/[^`]+)`", cells[1])), cells[2], number))
    return rows


def collected_tests(root: Path = ROOT) -> set[str]:
    """Every test's node id (``tests/x/test_y.py::test_z``, ``...::TestC::test_z``), by ast."""
    found: set[str] = set()

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                found.add(prefix + node.name)
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                visit(node.body, f"{prefix}{node.name}::")

    for path in sorted((root / "tests").rglob("test_*.py")):
        visit(ast.parse(path.read_text(), str(path)).body, f"{path.relative_to(root).as_posix()}::")
    return found


def missing_rows(wanted: list[str], rows: list[Row]) -> list[str]:
    """Features the code has and the table has no row for."""
    listed = {row.feature for row in rows}
    return [feature for feature in wanted if feature not in listed]


def stale_rows(wanted: list[str], rows: list[Row]) -> list[str]:
    """Rows for features the code no longer has, and rows given twice."""
    seen: set[str] = set()
    stale = []
    for row in rows:
        if row.feature not in wanted or row.feature in seen:
            stale.append(f"line {row.line}: {row.feature}")
        seen.add(row.feature)
    return stale


def dead_references(rows: list[Row], known: set[str]) -> list[str]:
    """Rows naming a test that does not exist (a parametrised id counts as its function)."""
    return [f"line {row.line}: {row.feature} names {test}" for row in rows for test in row.tests
            if re.sub(r"\[.*\]$", "", test) not in known]


def problems(rows: list[Row], wanted: list[str], known: set[str]) -> list[str]:
    """Everything wrong with the table but its untested rows (those are reported apart)."""
    bad = [f"no row for {feature}" for feature in missing_rows(wanted, rows)]
    bad += [f"no such feature in the code: {stale}" for stale in stale_rows(wanted, rows)]
    bad += dead_references(rows, known)
    bad += [f"line {row.line}: {row.feature} is {row.how!r}, but names no test" for row in rows
            if not row.how.startswith(UNTESTED) and not row.tests]
    bad += [f"line {row.line}: {row.feature}: how is live, static or untested: ..., not {row.how!r}"
            for row in rows if row.how not in ("live", "static") and not row.how.startswith(UNTESTED + ": ")]
    return bad


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return parse_table(README.read_text())


def test_the_enumeration_finds_each_kind_of_feature() -> None:
    """Positive control for the checks below: each kind is found, with a feature the docs name."""
    found = features()
    for feature in ("[mux] accel", "[[persona]] restart", "[[persona.devices]] follow", "[mqtt] discovery",
                    "step: assert_screen", "block: include", "modifier: if", "mux run", "mux ctl switch",
                    "mux images build", "topic: active/set", "topic: persona/<name>/leds"):
        assert feature in found, feature
    assert len(found) == len(set(found))


def test_every_feature_has_a_row_and_every_named_test_exists(rows: list[Row]) -> None:
    assert len(rows) > 100  # the table was found and read
    bad = problems(rows, features(), collected_tests())
    assert not bad, "tests/README.md, Feature table:\n" + "\n".join(bad)


@pytest.mark.xfail(strict=True, reason="two device keys (format, readonly) have no guest-side test"
                   " yet (tests/README.md); strict: once none is left this passes and the mark goes")
def test_no_feature_is_untested(rows: list[Row]) -> None:
    """The acceptance wants none; while some are left this fails listing each with its reason."""
    left = [f"line {row.line}: {row.feature}: {row.how}" for row in rows if row.how.startswith(UNTESTED)]
    assert not left, f"{len(left)} of {len(rows)} features untested:\n" + "\n".join(left)


def test_a_throwaway_config_key_is_caught(monkeypatch: pytest.MonkeyPatch, rows: list[Row]) -> None:
    from mux.config import schema

    known = collected_tests()
    before = set(problems(rows, features(), known))  # whatever the table's own state

    @dataclass(frozen=True)
    class AudioWithAThrowawayKey(schema.AudioSection):
        throwaway_key: int = 0

    monkeypatch.setattr(schema, "AudioSection", AudioWithAThrowawayKey)
    assert "[audio] throwaway_key" in features()  # control: the enumeration sees it
    assert set(problems(rows, features(), known)) - before == {"no row for [audio] throwaway_key"}


def test_a_throwaway_step_a_removed_step_and_a_missing_test_are_caught(
        monkeypatch: pytest.MonkeyPatch, rows: list[Row]) -> None:
    from mux.scenario import model

    known = collected_tests()
    assert "tests/project/test_feature_table.py::test_no_feature_is_untested" in known  # control
    monkeypatch.setitem(model.STEPS, "throwaway_step", model.STEPS["sleep"])
    monkeypatch.delitem(model.STEPS, "record_info")
    ghost = Row("step: switch", ("tests/end_to_end/test_nothing.py::test_ghost",), "live", 999)
    assert "step: throwaway_step" in features() and "step: record_info" not in features()  # control
    bad = problems([*rows, ghost], features(), known)
    assert "no row for step: throwaway_step" in bad
    assert any(b.endswith(": step: record_info") and b.startswith("no such feature") for b in bad), bad
    assert "line 999: step: switch names tests/end_to_end/test_nothing.py::test_ghost" in bad
