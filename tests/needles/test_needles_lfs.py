"""A needle PNG that is a Git LFS pointer (the repository was cloned without ``git lfs
pull``) loads as openQA loads it, and is named as such wherever it is skipped: in
``mux replay --check`` and in the message of a screen step that found no match."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mux.errors import StepFailed
from mux.needles.loader import NeedleLibrary
from mux.needles.model import Needle, lfs_pointer
from mux.scenario.screen_steps import ScreenMismatch
from tests.needles.test_needles_openqa import DIALOG, desktop, write_needle
from tests.scenario.test_screen_search import FakeController, Steps

POINTER = ("version https://git-lfs.github.com/spec/v1\n"
           "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
           "size 48213\n")


def lfs_repository(tmp_path: Path) -> tuple[Path, Path]:
    """A needle repository cloned without its LFS objects: (work tree, scenario file).
    ``dialog`` and ``menu`` are pointers; ``other`` is a picture that does not match."""
    repo = tmp_path / "distri"
    (repo / ".git").mkdir(parents=True)
    tests = repo / "tests"
    for name, tags in (("dialog", ["dialog"]), ("menu", ["menu", "dialog-or-menu"]),
                       ("other", ["dialog-or-menu"])):
        write_needle(tests / "needles", name, desktop(), [DIALOG], tags=tags)
    for name in ("dialog", "menu"):
        (tests / "needles" / f"{name}.png").write_text(POINTER)
    scenario = tests / "lfs.yaml"
    scenario.write_text(
        "name: lfs\nconfig:\n  mux: {accel: tcg}\n  persona: [{name: work, image: console}]\nsteps:\n"
        "  - assert_screen: {persona: work, needle: dialog, timeout: 5}\n"
        "  - check_screen: {persona: work, needle: dialog-or-menu}\n")
    return repo, scenario


def message(name: str, repo: Path) -> str:
    return f"{name}.png is a Git LFS pointer: run `git lfs pull` in {repo.resolve()}"


@pytest.mark.services
def test_replay_check_names_each_lfs_pointer_and_the_repository(tmp_path: Path) -> None:
    repo, scenario = lfs_repository(tmp_path)
    result = subprocess.run([sys.executable, "-m", "mux", "replay", "--check", str(scenario)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("mux: warning:")]
    assert len(warnings) == 2, warnings
    for name, line in zip(("dialog", "menu"), sorted(warnings), strict=True):
        assert f"needles/{name}.json:1:1: needle {name}.json: {message(name, repo)}" in line, line
    assert "1 file(s) checked, 2 warning(s)" in result.stdout


@pytest.mark.pure
def test_the_repository_is_the_work_tree_else_the_needle_directory(tmp_path: Path) -> None:
    repo, _ = lfs_repository(tmp_path)
    pngs = repo / "tests" / "needles"
    assert lfs_pointer(pngs / "dialog.png") == message("dialog", repo)
    (repo / ".git").rmdir()
    (repo / ".git").write_text("gitdir: ../.git/worktrees/distri\n")  # a linked work tree
    assert lfs_pointer(pngs / "dialog.png") == message("dialog", repo)
    (repo / ".git").unlink()
    assert lfs_pointer(pngs / "dialog.png") == message("dialog", pngs)
    # a picture, and a text that only starts like a pointer, are no pointers
    assert lfs_pointer(pngs / "other.png") is None
    (pngs / "menu.png").write_text("version https://git-lfs.github.com/spec/v1\n")
    assert lfs_pointer(pngs / "menu.png") is None


def needles(repo: Path, tag: str) -> list[Needle]:
    found, error = NeedleLibrary().resolve(tag, repo / "tests")
    assert error is None, error
    return found


@pytest.mark.pure
async def test_a_failing_screen_step_names_the_lfs_pointers_it_skipped(tmp_path: Path) -> None:
    repo, _ = lfs_repository(tmp_path)
    steps = Steps(FakeController(desktop()), tmp_path)
    # the only needle with the tag is a pointer: the step fails at once, saying so
    with pytest.raises(StepFailed) as caught:
        await steps.step_assert_screen({"persona": "work", "_needles": needles(repo, "dialog"), "timeout": 5})
    assert str(caught.value) == f"work: no needle could be matched (needle dialog: {message('dialog', repo)})"
    # with a picture that does not match, the closest candidate and the skipped pointer
    steps = Steps(FakeController(Image.new("RGB", (1024, 768), (200, 120, 40))), tmp_path)
    found = needles(repo, "dialog-or-menu")
    with pytest.raises(ScreenMismatch) as mismatch:
        await steps.step_assert_screen({"persona": "work", "_needles": found, "timeout": 0})
    text = str(mismatch.value)
    assert text.startswith("work: needle other did not match") and mismatch.value.match.needle.name == "other"
    assert text.endswith(f"; skipped needle menu: {message('menu', repo)}"), text
    await steps.step_check_screen({"persona": "work", "_needles": found, "timeout": 0})
    assert steps.message.endswith(f"; skipped needle menu: {message('menu', repo)}"), steps.message
    # once pulled, the needle matches, and nothing is said about it
    desktop().save(repo / "tests" / "needles" / "menu.png")
    steps = Steps(FakeController(desktop()), tmp_path)
    await steps.step_assert_screen({"persona": "work", "_needles": needles(repo, "menu"), "timeout": 0})
    assert steps.message == "work: needle menu matched: area 270x150+378+221: 100.0% (needs 96%)"

