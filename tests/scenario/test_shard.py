"""Splitting scenario files over CI runners (``mux replay --shard K/N``), as
docs/guides/ci.md describes it: greedy longest-first by the durations of a previous JUnit
report, each file (or group of files linked by a snapshot) into the least-loaded shard,
a file the report does not know weighing the mean of those it knows; the same file set
always splits alike, the shards together run every file exactly once; ``CI_NODE_INDEX``
and ``CI_NODE_TOTAL`` stand in for ``--shard``. No process boots: the files are only loaded.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mux.errors import ScenarioError
from mux.scenario import shard
from mux.scenario.model import Scenario
from mux.scenario.runner import load_all

pytestmark = pytest.mark.pure


def write(tmp_path: Path, name: str, extra: str = "", config: bool = True) -> Path:
    path = tmp_path / f"{name}.yaml"
    body = "config:\n  mux: {accel: tcg}\n  persona: [{name: w}]\n" if config else ""
    path.write_text(f"name: {name}\n{body}steps:\n  - assert_active: w\n{extra}")
    return path


def load(paths: list[Path], tmp_path: Path) -> list[Scenario]:
    return load_all(paths, tmp_path / "snapshots")


def junit(tmp_path: Path, times: dict[Path, float]) -> Path:
    """A report in the shape ``mux replay --junit`` writes: one testsuite per file."""
    suites = "".join(f'<testsuite name="{p}" file="{p}" tests="1" failures="0" errors="0" skipped="0"'
                     f' time="{t:.3f}"><testcase name="{p.stem}" classname="{p.stem}" time="{t:.3f}"/>'
                     f"</testsuite>" for p, t in times.items())
    path = tmp_path / "previous.xml"
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n'
                    f'<testsuites name="mux replay">{suites}</testsuites>')
    return path


def shard_files(scenarios: list[Scenario], k: int, n: int,
                durations: dict[str, float] | None = None) -> list[str]:
    picked, _, _ = shard.select(scenarios, (k, n), durations)
    return [scenarios[i].file.stem for i in picked]


def test_durations_split_longest_first_into_the_least_loaded_shard(tmp_path: Path) -> None:
    seconds = {"a": 50.0, "b": 40.0, "c": 30.0, "d": 20.0, "e": 10.0}
    paths = [write(tmp_path, n) for n in [*seconds, "f"]]  # f: not in the report
    durations = shard.read_durations(junit(tmp_path, {tmp_path / f"{n}.yaml": t for n, t in seconds.items()}))
    scenarios = load(paths, tmp_path)
    assert shard.weights([s.file for s in scenarios], durations) == [50, 40, 30, 20, 10, 30]  # f: the mean
    # a 50 -> 1; b 40 -> 2; c 30 -> 2 (70); f 30 -> 1 (80); d 20 -> 2 (90); e 10 -> 1 (90)
    assert shard_files(scenarios, 1, 2, durations) == ["a", "e", "f"]
    assert shard_files(scenarios, 2, 2, durations) == ["b", "c", "d"]
    assert shard.select(scenarios, (1, 2), durations)[1:] == (90, 180)
    # the control: without durations every file weighs the same, and the split differs
    assert shard_files(scenarios, 1, 2) == ["a", "c", "e"]


def test_the_same_files_split_alike_whatever_order_they_come_in(tmp_path: Path) -> None:
    paths = [write(tmp_path, f"s{i}") for i in range(8)]
    durations = {str(p): float(i % 3 + 1) for i, p in enumerate(paths)}
    expected = [sorted(shard_files(load(paths, tmp_path), k, 3, durations)) for k in (1, 2, 3)]
    shuffled = paths[:]
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert [sorted(shard_files(load(shuffled, tmp_path), k, 3, durations)) for k in (1, 2, 3)] == expected
    assert all(expected)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_the_shards_together_run_every_file_exactly_once(tmp_path: Path, n: int) -> None:
    scenarios = load([write(tmp_path, f"s{i}") for i in range(8)], tmp_path)
    ran = [name for k in range(1, n + 1) for name in shard_files(scenarios, k, n)]
    assert sorted(ran) == sorted(s.file.stem for s in scenarios)
    sizes = [len(shard_files(scenarios, k, n)) for k in range(1, n + 1)]
    assert max(sizes) - min(sizes) <= 1  # equal weights: as even as can be


def test_a_file_starting_from_a_snapshot_runs_after_its_saver_on_the_same_shard(tmp_path: Path) -> None:
    paths = [write(tmp_path, "saver", "snapshot: booted\n"), *(write(tmp_path, f"x{i}") for i in range(4)),
             write(tmp_path, "user", "from_snapshot: booted\n", config=False)]
    scenarios = load(paths, tmp_path)
    assert [sorted(scenarios[i].file.stem for i in g) for g in shard.groups(scenarios)] == [
        ["saver", "user"], ["x0"], ["x1"], ["x2"], ["x3"]]
    for k in (1, 2, 3):
        files = shard_files(scenarios, k, 3)
        assert ("saver" in files) == ("user" in files)
        if "saver" in files:
            assert files.index("saver") < files.index("user") and len(files) == 2  # the group weighs 2


def test_durations_match_the_same_file_written_another_way(tmp_path: Path) -> None:
    paths = [write(tmp_path, n) for n in ("a", "b", "c")]
    report = {f"{tmp_path}/./a.yaml": 7.0, "elsewhere/b.yaml": 3.0, "x/c.yaml": 1.0, "y/c.yaml": 2.0}
    durations = {shard._key(k): v for k, v in report.items()}
    # a: the same path normalised; b: the only known file of that name; c: two of that name,
    # so unknown: the mean of the given files that are known
    assert shard.weights(paths, durations) == [7.0, 3.0, 5.0]


def test_shard_from_the_command_line_or_gitlab(tmp_path: Path) -> None:
    assert shard.parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            shard.parse_shard(bad)
    assert shard.shard_from_env({"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}) == (2, 4)
    assert shard.shard_from_env({"CI_NODE_TOTAL": "4"}) is None and shard.shard_from_env({}) is None


def test_a_durations_file_that_is_no_junit_report_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "junit.xml"
    bad.write_text("not xml <")
    with pytest.raises(ScenarioError, match=r"junit\.xml.*--durations"):
        shard.read_durations(bad)
    assert shard.read_durations(junit(tmp_path, {Path("a.yaml"): 2.5})) == {"a.yaml": 2.5}
