"""Splitting a replay's scenario files over CI runners (``mux replay --shard K/N``).

Theory. A CI matrix runs the same ``mux replay scenarios/*.yaml`` on N runners, each
with its own K; every runner must pick its part of the files without talking to the
others, so the split is a pure function of the file set (and of the durations file, which
every runner reads alike): the same files always give the same split, whatever order
the shell's glob gave them in.

- The unit of the split is a *group*: the files linked by snapshots (a file whose
  ``from_snapshot`` names a snapshot another file of the set saves runs after it, on
  the same runner), each on its own otherwise (:func:`groups`).
- Each group weighs its files' durations from a previous JUnit report (``--durations
  FILE``: :func:`read_durations`, the ``time`` of each ``testsuite``, one per file); a
  file the report does not know weighs the mean of those it does (1 each if it knows
  none).
- :func:`split` is greedy longest-first: the heaviest group first, each into the shard
  with the least weight so far (the lowest K on a tie; groups of equal weight in the
  order of their first file's path), so the shards finish close together.

``--shard`` not given, GitLab's ``parallel:`` sets ``CI_NODE_INDEX`` (1-based) and
``CI_NODE_TOTAL``: :func:`shard_from_env`. No I/O here but reading the durations file.
"""

from __future__ import annotations

import os
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from mux.errors import Location, ScenarioError
from mux.scenario.model import Scenario


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as (K, N), 1 <= K <= N.

    Raises:
        ValueError: not two whole numbers with 1 <= K <= N (the message says so).
    """
    k_text, slash, n_text = text.partition("/")
    try:
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N, two whole numbers (such as 2/3)") from None
    if not slash or not 1 <= k <= n:
        raise ValueError(f"--shard {text!r}: K must be between 1 and N (such as 2/3)")
    return k, n


def shard_from_env(environ: Mapping[str, str]) -> tuple[int, int] | None:
    """GitLab's ``parallel:`` shard (``CI_NODE_INDEX`` of ``CI_NODE_TOTAL``), or None.

    Raises:
        ValueError: the variables are set but not a shard.
    """
    index, total = environ.get("CI_NODE_INDEX"), environ.get("CI_NODE_TOTAL")
    if not index or not total:
        return None
    return parse_shard(f"{index}/{total}")


def _key(path: Path | str) -> str:
    return os.path.normpath(str(path))


def read_durations(path: Path) -> dict[str, float]:
    """Seconds per scenario file, from a JUnit report ``mux replay --junit`` wrote (any
    report whose ``testsuite`` elements carry a ``file`` or a ``name`` and a ``time``).

    Raises:
        ScenarioError: the file cannot be read or is not JUnit XML.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ScenarioError.one(Location(path), f"--durations: cannot read a JUnit report: {exc}") from exc
    durations: dict[str, float] = {}
    for suite in root.iter("testsuite"):
        name = suite.get("file") or suite.get("name")
        try:
            seconds = float(suite.get("time", ""))
        except ValueError:
            continue
        if name and suite.get("skipped", "0") == "0":
            key = _key(name)
            durations[key] = durations.get(key, 0.0) + seconds
    return durations


def groups(scenarios: Sequence[Scenario]) -> list[list[int]]:
    """Indexes of ``scenarios`` that must run on one runner, in their order: a file that
    starts from a snapshot another file of the set saves is in that file's group."""
    parent = list(range(len(scenarios)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    saver: dict[str, int] = {}
    for i, scenario in enumerate(scenarios):
        if scenario.from_snapshot in saver:
            parent[root(i)] = root(saver[scenario.from_snapshot])
        for name in scenario.saves:
            if name in saver:
                parent[root(i)] = root(saver[name])
            saver[name] = i
    found: dict[int, list[int]] = {}
    for i in range(len(scenarios)):
        found.setdefault(root(i), []).append(i)
    return list(found.values())


def weights(files: Sequence[Path | str], durations: Mapping[str, float]) -> list[float]:
    """Each file's seconds in ``durations`` (matched on the normalised path, else on a
    file name only one known file has); the mean of the known ones for the rest."""
    by_name: dict[str, list[float]] = {}
    for key, value in durations.items():
        by_name.setdefault(Path(key).name, []).append(value)
    known: list[float | None] = []
    for file in files:
        seconds = durations.get(_key(file))
        same_name = by_name.get(Path(file).name, [])
        known.append(same_name[0] if seconds is None and len(same_name) == 1 else seconds)
    values = [s for s in known if s is not None]
    mean = statistics.fmean(values) if values else 1.0
    return [mean if s is None else s for s in known]


def split(units: Sequence[tuple[str, float]], shards: int) -> list[list[str]]:
    """Greedy longest-first: each unit (name, weight), heaviest first (ties by name), into
    the shard with the least weight so far (ties: the lowest index). Returns the names
    in each shard, in the order they were given."""
    loads = [0.0] * shards
    chosen: list[set[str]] = [set() for _ in range(shards)]
    for name, weight in sorted(units, key=lambda unit: (-unit[1], unit[0])):
        target = min(range(shards), key=lambda k: (loads[k], k))
        loads[target] += weight
        chosen[target].add(name)
    return [[name for name, _ in units if name in chosen[k]] for k in range(shards)]


def select(scenarios: Sequence[Scenario], shard: tuple[int, int],
           durations: Mapping[str, float] | None = None) -> tuple[list[int], float, float]:
    """The indexes of ``scenarios`` that shard K of N runs (in their order), with its
    weight and the total weight (seconds when ``durations`` are known)."""
    k, n = shard
    sets = groups(scenarios)
    each = weights([s.file for s in scenarios], durations or {})
    units = []
    for members in sets:
        first = min(_key(scenarios[i].file) for i in members)
        units.append((f"{first}#{members[0]}", sum(each[i] for i in members)))
    parts = split(sorted(units), n)
    mine = set(parts[k - 1])
    picked = sorted(i for unit, members in zip((u for u, _ in units), sets, strict=True)
                    if unit in mine for i in members)
    return picked, sum(each[i] for i in picked), sum(each)
