"""``mux replay --shard K/N`` in a real process: the shard prints the files it runs; shards
1/3, 2/3 and 3/3 together name every file exactly once, whatever order the files are
given in; GitLab's ``CI_NODE_INDEX``/``CI_NODE_TOTAL`` pick the same shard as ``--shard``;
and a real sharded run replays exactly the files its printout names (one console boot).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PREFIX = "mux replay: shard "


def scenario_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, count + 1):
        path = folder / f"part{i}.yaml"
        path.write_text(f"name: part {i}\nconfig:\n  mux: {{accel: tcg}}\n  persona: [{{name: w}}]\n"
                        "steps:\n  - wait_serial: {persona: w, match: MUX-READY, timeout: 600}\n")
        paths.append(path)
    return paths


def replay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "mux", "replay", *args], capture_output=True,
                            text=True, timeout=900, env=env)
    return result


def shard_line(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The files a shard's printout names."""
    line = next(line for line in result.stdout.splitlines() if line.startswith(PREFIX))
    names = line.split(": ", 2)[2]
    return [] if names == "(none)" else names.split(" ")


def without_gitlab() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("CI_NODE_INDEX", "CI_NODE_TOTAL")}


@pytest.mark.services
def test_three_shards_together_run_every_file_once(tmp_path: Path) -> None:
    paths = scenario_files(tmp_path / "scenarios", 8)
    env = without_gitlab()
    shards = []
    for k in (1, 2, 3):
        result = replay("--check", "--shard", f"{k}/3", *map(str, paths), env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        shards.append(shard_line(result))
        assert f"{len(shards[-1])} file(s) checked" in result.stdout
    assert sorted(f for shard in shards for f in shard) == sorted(map(str, paths))  # each once
    assert all(shards) and max(map(len, shards)) - min(map(len, shards)) <= 1
    # the same files in another order split alike; GitLab's variables pick a shard too
    backwards = [str(p) for p in reversed(paths)]
    for k in (1, 2, 3):
        assert sorted(shard_line(replay("--check", "--shard", f"{k}/3", *backwards, env=env))) \
            == sorted(shards[k - 1])
        gitlab = replay("--check", *map(str, paths),
                        env={**env, "CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": "3"})
        assert shard_line(gitlab) == shards[k - 1]
    # no shard: no selection, every file checked (the control for the printouts above)
    whole = replay("--check", *map(str, paths), env=env)
    assert PREFIX not in whole.stdout and "8 file(s) checked" in whole.stdout


@pytest.mark.services
def test_a_bad_shard_is_a_usage_error(tmp_path: Path) -> None:
    paths = scenario_files(tmp_path / "scenarios", 2)
    bad = replay("--check", "--shard", "4/3", *map(str, paths), env=without_gitlab())
    assert bad.returncode == 2 and "K must be between 1 and N" in bad.stderr
    good = replay("--check", "--shard", "3/3", *map(str, paths), env=without_gitlab())
    assert good.returncode == 0 and shard_line(good) == []  # more shards than files: one is empty


@pytest.mark.guests
@pytest.mark.timeout(900)
def test_a_sharded_run_replays_exactly_the_files_it_names(tmp_path: Path, console_image: Any) -> None:
    paths = scenario_files(tmp_path / "scenarios", 3)
    out = tmp_path / "out"
    result = replay("--shard", "2/3", "--artifacts", str(out), "--junit", str(tmp_path / "junit.xml"),
                    *map(str, paths), env=without_gitlab())
    assert result.returncode == 0, result.stdout + result.stderr
    named = shard_line(result)
    assert len(named) == 1 and named[0] in map(str, paths)
    data = json.loads((out / "results.json").read_text())
    assert [s["file"] for s in data["scenarios"]] == named and data["passed"] == 1
    assert "1 passed, 0 failed" in result.stdout
