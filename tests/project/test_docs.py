"""The docs: the generated reference is current and complete, the README is short and its
links hold, and the site builds with ``mkdocs build --strict`` (no broken link or anchor,
no page left out of the nav).

A throwaway key put into the config schema shows both ways the reference keeps up with
the code: with a description the pages change (so the committed ones are stale and
``tools/gen_docs.py --check`` names them), without one the generator refuses.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import mux.config.schema
from mux.config.schema import MuxSection
from mux.errors import ConfigError, Location
from mux.reference import bench, mqtt
from mux.reference.common import UndocumentedError
from mux.reference.config import TABLES, config_keys, config_page
from mux.reference.pages import pages, stale
from mux.reference.steps import steps_page

REPO = Path(__file__).resolve().parent.parent.parent
DOCS = REPO / "docs"
MKDOCS = Path(sys.executable).parent / "mkdocs"


@dataclass(frozen=True)
class WithDocumentedKey(MuxSection):
    #: A throwaway key that only this test has.
    throwaway_key: int = 0


@dataclass(frozen=True)
class WithUndocumentedKey(MuxSection):
    throwaway_key: int = 0


def committed() -> dict[str, str | None]:
    """The generated pages as they are in docs/ (None: missing)."""
    return {path: (DOCS / path).read_text(encoding="utf-8") if (DOCS / path).is_file() else None
            for path in pages()}


def gen_docs() -> ModuleType:
    """tools/gen_docs.py as a module (its main() is what the command runs)."""
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "tools" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the generated reference ------------------------------------------------------------------


@pytest.mark.pure
def test_the_generated_pages_are_current() -> None:
    assert stale(committed()) == [], "docs/reference is stale: run tools/gen_docs.py"


@pytest.mark.pure
def test_a_documented_key_added_to_the_schema_makes_the_pages_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mux.config.schema, "MuxSection", WithDocumentedKey)
    assert "| `throwaway_key` | integer | `0` | A throwaway key that only this test has. |" in config_page()
    assert set(stale(committed())) == {"reference/config.md", "reference/schema/config.json",
                                       "reference/schema/scenario.json"}


@pytest.mark.pure
def test_an_undocumented_config_key_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mux.config.schema, "MuxSection", WithUndocumentedKey)
    with pytest.raises(UndocumentedError, match=r"config keys without a description: mux\.throwaway_key"):
        pages()


@pytest.mark.pure
def test_gen_docs_check_names_stale_pages_and_writes_them(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    tool = gen_docs()
    assert tool.main(["--check"]) == 0
    monkeypatch.setattr(mux.config.schema, "MuxSection", WithDocumentedKey)
    assert tool.main(["--check"]) == 1
    assert "stale: reference/config.md, reference/schema/config.json" in capsys.readouterr().err
    shutil.copytree(DOCS / "reference", tmp_path / "reference")
    assert tool.main(["--docs", str(tmp_path)]) == 0
    assert "throwaway_key" in (tmp_path / "reference" / "config.md").read_text(encoding="utf-8")
    assert tool.main(["--check", "--docs", str(tmp_path)]) == 0
    monkeypatch.setattr(mux.config.schema, "MuxSection", WithUndocumentedKey)
    assert tool.main(["--check", "--docs", str(tmp_path)]) == 1
    assert "mux.throwaway_key" in capsys.readouterr().err


def loader_keys(data: dict[str, Any]) -> set[str]:
    """The keys the config loader knows where ``data`` has its one unknown key ``zz``."""
    from mux.config import parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config(data, lambda path: Location("probe.toml"), Path("probe.toml"))
    found = re.search(r"unknown key '[a-z.\[\]0-9]*zz' \(known: ([^)]*)\)", str(caught.value))
    assert found, str(caught.value)
    return set(found[1].split(", "))


@pytest.mark.pure
def test_the_reference_has_every_key_the_loader_knows() -> None:
    """The loader's own lists of keys (from its "unknown key" errors) against the schema's."""
    persona = {"name": "a"}
    device = {"id": "d", "type": "disk", "file": "d.img"}
    probes: dict[str, dict[str, Any]] = {
        "mux": {"mux": {"zz": 1}, "persona": [persona]},
        "persona": {"persona": [{**persona, "zz": 1}]},
        "persona.devices": {"persona": [{**persona, "devices": [{**device, "zz": 1}]}]},
        "input": {"input": {"zz": 1}, "persona": [persona]},
        "display": {"display": {"zz": 1}, "persona": [persona]},
        "audio": {"audio": {"zz": 1}, "persona": [persona]},
        "mqtt": {"mqtt": {"url": "mqtt://broker", "zz": 1}, "persona": [persona]},
        "clipboard": {"clipboard": {"zz": 1}, "persona": [persona]},
        "seat": {"seat": [{"name": "s", "zz": 1}], "persona": [persona]},
    }
    keys = config_keys()
    assert [t.name for t in TABLES] == list(probes)
    for table, data in probes.items():
        assert loader_keys(data) == {k.name for k in keys if k.table == table}, table
    assert loader_keys({"zz": 1, "persona": [persona]}) == {t.name for t in TABLES if "." not in t.name}


@pytest.mark.pure
def test_a_step_without_a_description_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    from mux.scenario.model import STEPS, Arg, StepSpec

    monkeypatch.setitem(STEPS, "throwaway_step", StepSpec({"persona": Arg(str, persona=True)}, "persona",
                                                          "a step only this test has"))
    assert "### `throwaway_step`\n\nA step only this test has." in steps_page()
    monkeypatch.setitem(STEPS, "throwaway_step", StepSpec({"flavour": Arg(str)}))
    with pytest.raises(UndocumentedError, match=r"throwaway_step, throwaway_step\.flavour"):
        steps_page()


@pytest.mark.pure
def test_topics_entities_and_figures_must_match_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    cases: list[tuple[dict[str, Any], str, Any, str]] = [
        (mqtt.TOPICS, "sync", None, "undescribed, and describes"),
        (mqtt.TOPICS, "persona/<name>/gone", ("out", "nothing"), "persona/<name>/gone it no longer has"),
        (mqtt.TOPICS, "active/set", ("out", "a name"), "wrong direction: active/set"),
        (mqtt.ENTITIES, "active", None, "undescribed active"),
        (bench.FIGURES, "live_fps", None, "undescribed live_fps"),
        (bench.FIGURES, "gone_ms", ("live", "nothing"), "not written by the bench gone_ms"),
    ]
    for table, key, value, words in cases:
        with monkeypatch.context() as patch:
            if value is None:
                patch.delitem(table, key)
            else:
                patch.setitem(table, key, value)
            with pytest.raises(UndocumentedError, match=re.escape(words)):
                pages()
    pages()  # and all is well again


# --- the README ------------------------------------------------------------------------------------


@pytest.mark.pure
def test_the_readme_is_short_starts_with_the_two_commands_and_its_links_hold() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines() == [
        './bootstrap demo          # the built-in demo: personas "work" and "home", in a window on a desktop',
        "./bootstrap test          # the whole test suite",
    ]
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(targets) > 20
    missing = [t for t in targets if "://" not in t and not (REPO / t).exists()]
    assert missing == []


# --- the site ---------------------------------------------------------------------------------------


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    if not MKDOCS.exists():
        pytest.skip(f"{MKDOCS} is not installed (pip install -e '.[dev]')")
    return subprocess.run([str(MKDOCS), "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site)],
                          cwd=root, capture_output=True, text=True, check=False, timeout=240,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.mark.services
def test_mkdocs_builds_the_site_strictly(tmp_path: Path) -> None:
    result = mkdocs_build(REPO, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    home = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "needle-editor.png" in home
    config = (tmp_path / "site" / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    assert "keep_guests" in config
    security = (tmp_path / "site" / "security" / "index.html").read_text(encoding="utf-8")
    assert "What mux guarantees" in security  # SECURITY.md, included
    assert (tmp_path / "site" / "reference" / "schema" / "scenario.json").is_file()


@pytest.mark.services
@pytest.mark.parametrize(("mistake", "words"), [
    ("orphan", "orphan.md"),
    ("link", "guides/gone.md"),
    ("anchor", "no-such-heading"),
])
def test_mkdocs_fails_on_an_orphan_page_a_broken_link_or_anchor(tmp_path: Path, mistake: str,
                                                                words: str) -> None:
    root = tmp_path / "repo"
    shutil.copytree(DOCS, root / "docs")
    for name in ("mkdocs.yml", "SECURITY.md", "CONTRIBUTING.md", "CHANGELOG.md"):
        shutil.copy(REPO / name, root / name)
    index = root / "docs" / "index.md"
    if mistake == "orphan":
        (root / "docs" / "orphan.md").write_text("# Not in the nav\n")
    elif mistake == "link":
        index.write_text(index.read_text() + "\n[gone](guides/gone.md)\n")
    else:
        index.write_text(index.read_text() + "\n[running](guides/running.md#no-such-heading)\n")
    result = mkdocs_build(root, tmp_path / "site")
    assert result.returncode != 0
    assert words in result.stdout + result.stderr
