"""``replay_jobs_speedup`` for ``mux bench``: ``mux replay --jobs 2`` against ``--jobs 1``.

Both replay the same :data:`FILES` console scenario files (each boots one ``console``
persona under TCG, waits for ``MUX-READY``, types a line and waits for its echo on the
serial port), in this process, through :func:`mux.scenario.parallel.replay` as ``mux
replay`` does, one after the other in the same run. The figure is the seconds of
``--jobs 1`` over those of ``--jobs 2`` (goal >= 1.5 on 2 cores). Beside it,
``replay_jobs_s`` has both times and ``replay_jobs_boot_s`` the mean seconds a file's
guest took to print ``MUX-READY`` in each mode, which says where the time goes: two TCG
guests booting at once on two cores share them with the controller and everything else
the machine runs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mux.errors import MuxError
from mux.scenario.parallel import replay
from mux.scenario.runner import load_all

FILES = 8


def scenario_files(folder: Path, count: int = FILES) -> list[Path]:
    """``count`` scenario files, each booting one console persona and echoing its own line."""
    paths = []
    for i in range(1, count + 1):
        path = folder / f"bench{i}.yaml"
        path.write_text(f"name: bench {i}\n"
                        "config:\n  mux: {accel: tcg}\n  persona: [{name: w, image: console}]\n"
                        "steps:\n"
                        "  - wait_serial: {persona: w, match: MUX-READY, timeout: 600}\n"
                        f"  - type: \"echo bench-{i} > /dev/ttyS0\\n\"\n"
                        f"  - wait_serial: {{persona: w, match: bench-{i}, timeout: 120}}\n")
        paths.append(path)
    return paths


def _quiet(line: str) -> None:
    pass


async def bench_replay_jobs() -> dict[str, Any]:
    """``{"replay_jobs_speedup", "replay_jobs_s", "replay_jobs_boot_s"}``.

    Raises:
        MuxError: a scenario failed (the figure would mean nothing).
    """
    seconds: dict[str, float] = {}
    boots: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mux-bench-replay-") as directory:
        folder = Path(directory)
        scenarios = load_all(scenario_files(folder))
        for jobs in (1, 2):
            began = time.monotonic()
            results = await replay(scenarios, folder / f"jobs{jobs}", folder / "snapshots", jobs=jobs,
                                   keep_going=True, out=_quiet)
            seconds[f"jobs_{jobs}"] = round(time.monotonic() - began, 2)
            if failed := [r.error for r in results if not r.passed]:
                raise MuxError(f"bench: replay --jobs {jobs}: {len(failed)} scenario(s) failed: {failed[0]}")
            boots[f"jobs_{jobs}"] = round(statistics.fmean(
                (r.startup_s or 0.0) + r.steps[0].duration_s for r in results), 2)
            print(f"bench: replay --jobs {jobs}: {FILES} files in {seconds[f'jobs_{jobs}']:.1f} s")
    return {"replay_jobs_speedup": round(seconds["jobs_1"] / seconds["jobs_2"], 2),
            "replay_jobs_s": seconds, "replay_jobs_boot_s": boots}
