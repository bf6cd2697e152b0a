"""The layout's rules, checked on the code itself: the import contracts of pyproject.toml
(and that breaking one is caught), no import cycle inside mux, the step vocabulary and
its handlers in step, and no module over 400 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

import mux

REPO = Path(__file__).resolve().parent.parent.parent
PACKAGE = Path(mux.__file__).resolve().parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_LINES = 400
GENERATED = {"mux/input/keycodes.py", "mux/input/scancodes.py"}  # tables from tools/gen_*.py


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` run in ``root`` (a checkout: pyproject.toml and mux/ side by side)."""
    if not LINT_IMPORTS.exists():
        pytest.skip(f"{LINT_IMPORTS} is not installed (pip install -e '.[dev]')")
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          check=False, timeout=120)


def import_cycles(package: str) -> list[list[str]]:
    """Every set of modules that import each other in a ring (Tarjan's strongly connected
    components), counting imports inside functions and under ``TYPE_CHECKING``."""
    graph = grimp.build_graph(package, cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # recursion depth is bounded by the number of modules
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            ring = stack[stack.index(module):]
            del stack[stack.index(module):]
            if len(ring) > 1 or module in edges[module]:
                cycles.append(sorted(ring))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


# --- import contracts -------------------------------------------------------------------


@pytest.mark.services
def test_the_import_contracts_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("path", "line", "broken"),
    [
        ("mux/input/router.py", "import asyncio", "mux.input.router -> asyncio"),
        ("mux/display/layout.py", "import pygame", "mux.display.layout -> pygame"),
        ("mux/frontends/control.py", "import mux.app.controller",
         "mux.frontends.control -> mux.app.controller"),
        ("mux/scenario/report.py", "import qemu.qmp", "mux.scenario.report -> qemu"),
        ("mux/guest/serial.py", "import mux.app.controller", "mux.guest.serial -> mux.app.controller"),
    ],
)
@pytest.mark.services
def test_a_broken_contract_makes_lint_imports_fail(tmp_path: Path, path: str, line: str, broken: str) -> None:
    """The same check on a copy of the tree with one forbidden import added."""
    shutil.copytree(PACKAGE, tmp_path / "mux", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    module = tmp_path / path
    text = module.read_text(encoding="utf-8")
    head = "from __future__ import annotations\n"
    assert head in text, f"{path} has no {head!r} to add the import after"
    module.write_text(text.replace(head, f"{head}\n{line}  # deliberately forbidden\n", 1), encoding="utf-8")

    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert broken in result.stdout, result.stdout


@pytest.mark.pure
def test_frontends_are_kept_from_every_app_module_but_the_api() -> None:
    """The frontends contract lists app modules by name: a new one must be added to it."""
    contract = next(c for c in contracts() if c.get("source_modules") == ["mux.frontends"])
    app = {path.stem for path in (PACKAGE / "app").glob("*.py")} - {"__init__"}
    assert "api" in app
    assert set(contract["forbidden_modules"]) == {f"mux.app.{name}" for name in app - {"api"}}  # type: ignore[arg-type]


@pytest.mark.pure
def test_no_import_cycle_inside_mux() -> None:
    assert import_cycles("mux") == []


@pytest.mark.pure
def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive control for the test above: a lazy import inside a function counts."""
    package = tmp_path / "ringpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from ringpkg import b\n")
    (package / "b.py").write_text("def later() -> None:\n    from ringpkg import c\n")
    (package / "c.py").write_text("import ringpkg.a\n")
    (package / "d.py").write_text("import ringpkg.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("ringpkg") == [["ringpkg.a", "ringpkg.b", "ringpkg.c"]]


# --- the step vocabulary ----------------------------------------------------------------


@pytest.mark.pure
def test_every_step_has_a_handler_and_every_handler_a_step() -> None:
    from mux.scenario.model import BLOCKS, STEPS
    from mux.scenario.runner import StepRunner

    handlers = {name.removeprefix("step_") for name in dir(StepRunner) if name.startswith("step_")}
    assert sorted(set(STEPS) - handlers) == [], "steps in STEPS that the runner cannot run"
    assert sorted(handlers - set(STEPS)) == [], "step_* handlers that no scenario can reach"
    assert not set(BLOCKS) & set(STEPS)  # include and repeat are run by the runner itself


# --- module size ------------------------------------------------------------------------


@pytest.mark.pure
def test_no_module_is_over_400_lines_except_generated_tables() -> None:
    """DESIGN.md: no module over about 400 lines. The generated key tables are exempt."""
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(GENERATED) <= {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")}
    over = {path: lines for path, lines in long.items() if path not in GENERATED}
    assert over == {}, f"modules over {MAX_LINES} lines: {over}"


# --- the error tree ---------------------------------------------------------------------


@pytest.mark.pure
def test_every_mux_error_is_drawn_in_the_error_tree() -> None:
    """errors.py's docstring draws the whole tree: each public MuxError subclass in it."""
    import importlib
    import pkgutil

    from mux import errors

    for info in pkgutil.walk_packages([str(PACKAGE)], "mux."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: set[type[errors.MuxError]] = set()
    pending: list[type[errors.MuxError]] = [errors.MuxError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(sub for sub in cls.__subclasses__() if sub.__module__.startswith("mux."))
    drawing = errors.__doc__ or ""
    missing = sorted(f"{c.__module__}.{c.__name__}" for c in found
                     if not c.__name__.startswith("_") and f"── {c.__name__} " not in drawing
                     and c is not errors.MuxError)
    assert "MuxError\n" in drawing
    assert missing == [], "MuxError subclasses missing from the drawing in mux/errors.py"
    assert len(found) > 15  # the walk found the tree, not just the root
