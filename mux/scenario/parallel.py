"""Replaying scenario files side by side on one machine (``mux replay --jobs N``).

Theory. A scenario's time is almost all its guests' (QEMU under TCG keeps a core busy
while a guest boots); the controller itself mostly waits. So N files run as N asyncio
tasks in this one process, each with its own :class:`~mux.app.controller.Controller`:
each controller makes its own private runtime directory (``mkdtemp``: its QMP, VNC and
serial sockets, screendumps), each file has its own artifacts folder (named before
anything runs, in the order the files were given), and a replay's controllers serve no
control socket and no MQTT, so nothing they make is shared. One process keeps the
records as they are (:class:`~mux.scenario.report.ScenarioResult`), so the JUnit report
and ``results.json`` are written once, merged, in the files' order; subprocesses would
each write their own and need a merge, for no isolation the controllers lack.

- Files linked by a snapshot (one saves what another starts from) are one *group*
  (:func:`mux.scenario.shard.groups`) and run one after the other in one task, so a
  snapshot is saved before it is used; groups run in parallel.
- Each progress line is prefixed with its file's name (``[boot.yaml] ...``) when more
  than one job runs.
- Two ``mux replay`` at once on one machine are side by side too, but not in one
  artifacts folder: the second is refused (:func:`artifacts_lock`, an ``flock`` on the
  folder itself, so nothing is left in it).
- Without ``--keep-going`` the first failure stops the run: no new file starts (those
  are skipped), the ones running finish. Since that makes the order matter, the default
  is then one job at a time; with ``--keep-going`` the default is :func:`default_jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mux.errors import MuxError
from mux.scenario.model import Scenario
from mux.scenario.report import ScenarioResult
from mux.scenario.runner import run_scenario
from mux.scenario.shard import groups

#: What a persona costs beyond its guest memory (QEMU itself, TCG's translated code).
QEMU_OVERHEAD_MB = 128


@contextlib.contextmanager
def artifacts_lock(artifacts: Path) -> Iterator[Path]:
    """Hold ``artifacts`` (created if need be) for this replay alone while inside.

    Raises:
        MuxError: another replay holds it, or it cannot be created.
    """
    try:
        artifacts.mkdir(parents=True, exist_ok=True)
        fd = os.open(artifacts, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise MuxError(f"cannot use the artifacts folder {artifacts}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MuxError(f"another mux replay is writing to the artifacts folder {artifacts}:"
                           " give this one another (--artifacts DIR)") from None
        yield artifacts
    finally:
        os.close(fd)  # and the lock with it


def available_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """``MemAvailable`` in MiB, or None where the kernel does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_jobs(scenarios: Sequence[Scenario], keep_going: bool, *, cpus: int | None = None,
                 memory_mb: int | None = None) -> tuple[int, str]:
    """How many files to run at once when ``--jobs`` is not given, and one line saying why:
    min(cores, free memory / the hungriest file's personas, groups of files)."""
    if not keep_going:
        return 1, ("one file at a time: without --keep-going the first failure stops the run"
                   " (--jobs N runs N at once)")
    cpus = cores() if cpus is None else cpus
    memory_mb = available_memory_mb() if memory_mb is None else memory_mb
    need = max((sum(p.memory_mb + QEMU_OVERHEAD_MB for p in s.config.personas) for s in scenarios),
               default=QEMU_OVERHEAD_MB)
    fits = cpus if memory_mb is None else max(1, memory_mb // need)
    units = max(1, len(groups(scenarios)))
    jobs = max(1, min(cpus, fits, units))
    memory = "free memory unknown" if memory_mb is None else \
        f"{memory_mb} MiB free / {need} MiB for a file's personas = {fits}"
    return jobs, f"{jobs} job(s) at a time: {cpus} core(s), {memory}, {units} file group(s)"


def slugs(scenarios: Sequence[Scenario]) -> list[str]:
    """Each scenario's artifacts folder name: its name made safe, unique in the run."""
    taken: set[str] = set()
    found = []
    for scenario in scenarios:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", scenario.name).strip("-") or "scenario"
        slug, n = base, 1
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        taken.add(slug)
        found.append(slug)
    return found


def labels(scenarios: Sequence[Scenario]) -> list[str]:
    """Each file's prefix: its file name, or the whole path where two share a name."""
    names = [s.file.name for s in scenarios]
    return [f"[{s.file.name if names.count(s.file.name) == 1 else s.file}] " for s in scenarios]


async def replay(scenarios: Sequence[Scenario], artifacts: Path, snapshots: Path, *, jobs: int,
                 keep_going: bool, out: Callable[[str], None] = print) -> list[ScenarioResult]:
    """Run the scenarios, ``jobs`` groups at a time; their results in the files' order."""
    folders, prefixes = slugs(scenarios), labels(scenarios)
    results: list[ScenarioResult | None] = [None] * len(scenarios)
    pending = groups(scenarios) if jobs > 1 else [list(range(len(scenarios)))]  # one: in the files' order
    missing: dict[str, str] = {}  # snapshots this run should have saved, but did not
    stop = False

    async def run_group(members: list[int]) -> None:
        nonlocal stop
        for i in members:
            scenario = scenarios[i]
            if stop:
                results[i] = ScenarioResult(scenario, not_run=True)
                continue
            prefix = prefixes[i] if jobs > 1 else ""
            result = await run_scenario(scenario, artifacts, out=prefixed(prefix, out) if prefix else out,
                                        snapshots=snapshots, directory=artifacts / folders[i],
                                        missing=missing)
            results[i] = result
            for name in scenario.saves:
                if result.passed:
                    missing.pop(name, None)
                else:
                    missing[name] = f"scenario {scenario.name!r} ({scenario.file}) failed"
            stop = stop or (not result.passed and not keep_going)

    async def worker() -> None:
        while pending:
            await run_group(pending.pop(0))

    async with asyncio.TaskGroup() as tasks:
        for n in range(max(1, min(jobs, len(pending)))):
            tasks.create_task(worker(), name=f"replay:job{n + 1}")
    return [r for r in results if r is not None]


def prefixed(prefix: str, say: Callable[[str], None]) -> Callable[[str], None]:
    """``say`` with every line of a message prefixed."""
    return lambda text: say("\n".join(prefix + line for line in text.splitlines() or [""]))
