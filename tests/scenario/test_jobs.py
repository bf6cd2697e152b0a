"""How many files ``mux replay`` runs at once when ``--jobs`` is not given, and how each
file's lines and folder are told apart, as docs/guides/scenarios.md says: with
``--keep-going``, min(cores, free memory / the hungriest file's personas (each its
``memory_mb`` plus 128 MiB for QEMU), groups of files); without it, one at a time. Pure:
the cores and memory are given, the files only loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.scenario.model import Scenario
from mux.scenario.parallel import available_memory_mb, default_jobs, labels, prefixed, slugs
from mux.scenario.runner import load_all

pytestmark = pytest.mark.pure


def scenario_files(tmp_path: Path, memory: list[int], name: str = "s") -> list[Path]:
    paths = []
    for i, mb in enumerate(memory):
        folder = tmp_path / f"d{i}"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}{i if name == 's' else ''}.yaml"
        path.write_text(f"name: same name\nconfig:\n  mux: {{accel: tcg}}\n"
                        f"  persona: [{{name: w, memory_mb: {mb}}}, {{name: h, memory_mb: 256}}]\n"
                        "steps:\n  - assert_active: w\n")
        paths.append(path)
    return paths


def loaded(paths: list[Path]) -> list[Scenario]:
    return load_all(paths)


def test_default_jobs_is_the_least_of_cores_memory_and_files(tmp_path: Path) -> None:
    scenarios = loaded(scenario_files(tmp_path, [256, 512, 256, 256]))
    need = 512 + 128 + 256 + 128  # the hungriest file: its two personas
    assert default_jobs(scenarios, True, cpus=2, memory_mb=100 * need)[0] == 2  # cores
    assert default_jobs(scenarios, True, cpus=8, memory_mb=100 * need)[0] == 4  # files
    assert default_jobs(scenarios, True, cpus=8, memory_mb=3 * need + need // 2)[0] == 3  # memory
    assert default_jobs(scenarios, True, cpus=8, memory_mb=need // 2)[0] == 1  # never none
    jobs, why = default_jobs(scenarios, True, cpus=2, memory_mb=3 * need)
    assert jobs == 2 and "2 core(s)" in why and f"{3 * need} MiB free / {need} MiB" in why
    jobs, why = default_jobs(scenarios, False, cpus=8, memory_mb=100 * need)
    assert jobs == 1 and "--keep-going" in why


def test_this_machine_says_its_free_memory(tmp_path: Path) -> None:
    free = available_memory_mb()
    assert free is not None and free > 0
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       8000000 kB\nMemAvailable:    2097152 kB\n")
    assert available_memory_mb(fake) == 2048
    fake.write_text("MemTotal:       8000000 kB\n")
    assert available_memory_mb(fake) is None


def test_each_file_has_its_own_prefix_and_folder(tmp_path: Path) -> None:
    scenarios = loaded(scenario_files(tmp_path, [256, 256, 256], name="boot"))  # d0/boot.yaml, d1/...
    assert labels(scenarios) == [f"[{s.file}] " for s in scenarios]  # same file name: the whole path
    distinct = loaded(scenario_files(tmp_path, [256, 256]))  # d0/s0.yaml, d1/s1.yaml
    assert labels(distinct) == ["[s0.yaml] ", "[s1.yaml] "]
    assert slugs(scenarios) == ["same-name", "same-name-2", "same-name-3"]  # one scenario name thrice
    said: list[str] = []
    prefixed("[s0.yaml] ", said.append)("step failed; last lines:\nline 1\nline 2")
    assert said == ["[s0.yaml] step failed; last lines:\n[s0.yaml] line 1\n[s0.yaml] line 2"]
