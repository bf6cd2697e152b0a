"""``mux init``: each starter config is accepted by ``mux run --dry-run``, and no file is overwritten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mux.cli_setup import STARTERS, starter
from mux.config import demo_config, load_config

MUX = [sys.executable, "-m", "mux"]
VARIANTS = {"console": [], "desktop": ["--desktop"], "ci": ["--ci"], "panel": ["--panel"]}


def mux(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MUX, *args], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.services
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_starter_passes_a_dry_run(variant: str, tmp_path: Path) -> None:
    printed = mux("init", *VARIANTS[variant])
    assert printed.returncode == 0, printed.stderr
    config = tmp_path / "mux.toml"
    config.write_text(printed.stdout)
    dry = mux("run", str(config), "--dry-run")
    assert dry.returncode == 0, f"{variant}: {dry.stderr}"
    assert [line.split(":")[0] for line in dry.stdout.splitlines()] == ["work", "home"], dry.stdout


@pytest.mark.services
def test_init_writes_a_file_and_never_overwrites_one(tmp_path: Path) -> None:
    config = tmp_path / "desk.toml"
    written = mux("init", "--desktop", str(config))
    assert written.returncode == 0, written.stderr
    assert config.read_text() == starter("desktop")
    assert f"mux run {config} --dry-run" in written.stderr
    config.write_text("# mine\n")
    again = mux("init", "--panel", str(config))
    assert again.returncode == 1
    assert f"mux init: {config} already exists" in again.stderr
    assert config.read_text() == "# mine\n"
    both = mux("init", "--ci", "--panel")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


@pytest.mark.pure
def test_the_starters_say_what_their_options_promise(tmp_path: Path) -> None:
    configs = {}
    for variant in STARTERS:
        (tmp_path / f"{variant}.toml").write_text(starter(variant))
        configs[variant] = load_config(tmp_path / f"{variant}.toml")
        assert starter(variant).startswith("# A mux config"), variant
    demo = demo_config()
    assert [(p.name, p.image, p.color, p.restart) for p in configs["console"].personas] == [
        (p.name, p.image, p.color, p.restart) for p in demo.personas]
    assert configs["console"].display == demo.display and configs["console"].mqtt is None
    assert configs["desktop"].display.output == "window"
    assert configs["ci"].mux.keep_guests == "never"
    assert all(p.restart == "no" for p in configs["ci"].personas)
    panel = configs["panel"].mqtt
    assert panel is not None and panel.url == "mqtt://localhost:1883"
