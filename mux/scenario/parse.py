"""Reading a scenario file: its top-level keys, its config, then its steps.

:func:`load_scenario` reads YAML with a source map (:func:`mux.scenario.model.read_yaml`),
checks ``name``, ``snapshot``, ``from_snapshot`` and the inline ``config`` (the TOML
schema, :mod:`mux.config`), then hands ``steps`` to :mod:`mux.scenario.steps`. Every
problem is collected and raised at once as a :class:`~mux.errors.ScenarioError`, so a
file reports all its mistakes before anything boots. Pure: no asyncio, QEMU or I/O but
reading files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mux.config import Config, PersonaConfig, parse_config
from mux.config.seats import DEFAULT_SEAT, seats_of
from mux.errors import ConfigError, Location, ScenarioError
from mux.needles.needles import NeedleLibrary
from mux.scenario.model import SNAPSHOT_NAME, Scenario, SnapshotConfigs, read_yaml
from mux.scenario.steps import Context, parse_steps
from mux.sourcemap import SourceMap


def load_scenario(path: Path, snapshots: SnapshotConfigs | None = None) -> Scenario:
    """Read and check one scenario file (and the files it includes, and its needles).

    ``snapshots`` says which snapshot names exist (and the config each was saved with);
    without it ``from_snapshot`` is not checked and the scenario must have a config.

    Raises:
        ScenarioError: every problem in the file, each with file:line:column.
    """
    data, locate = read_yaml(path, Location(path))
    return parse_scenario(data, locate, path, snapshots)


def parse_scenario(data: Any, locate: SourceMap, path: Path,
                   snapshots: SnapshotConfigs | None = None) -> Scenario:
    """Check plain scenario data; see :func:`load_scenario`."""
    problems: list[tuple[Location, str]] = []
    if not isinstance(data, dict):
        raise ScenarioError([(locate(()), "a scenario is a mapping with name, config and steps")])
    known = ("name", "config", "steps", "snapshot", "from_snapshot")
    for key in data:
        if key not in known:
            problems.append((locate((key,)), f"unknown key {key!r} ({', '.join(known)})"))
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        problems.append((locate(("name",)), "name must be a string"))
        name = path.stem
    snapshot, start_from = (_snapshot_name(data, key, locate, problems)
                            for key in ("snapshot", "from_snapshot"))
    saved_config = snapshots(start_from) if snapshots and start_from else None
    if start_from and snapshots and saved_config is None:
        problems.append((locate(("from_snapshot",)), f"no snapshot {start_from!r}: no earlier scenario"
                         " in this run saves it, and none is stored from an earlier run"))
    config: Config | None = None
    if "config" not in data:
        config = saved_config
        if config is None and not (start_from and snapshots):
            problems.append((locate(()), "a scenario needs a config (with at least one persona)"))
    else:
        try:
            config = parse_config(data["config"], locate, path, prefix=("config",))
        except ConfigError as exc:
            problems.extend(exc.problems)
        if config and saved_config and _machines(config) != _machines(saved_config):
            problems.append((locate(("config",)), f"the personas differ from those snapshot"
                             f" {start_from!r} was saved with; leave config out to use theirs"))

    names = config.names if config else _raw_persona_names(data.get("config"))
    seats = _seats(config) if config else _raw_seats(data.get("config"))
    ctx = Context(locate, names, problems, NeedleLibrary(), path, (path.parent,), (path.resolve(),), seats)
    steps = parse_steps(data.get("steps"), ("steps",), ctx)
    problems.extend(ctx.needles.problems)
    if problems or config is None:
        raise ScenarioError(_unique(problems))
    return Scenario(name, path, config, steps, snapshot, start_from, data.get("config"),
                    _unique(ctx.needles.warnings))


def _snapshot_name(data: dict[str, Any], key: str, locate: SourceMap,
                   problems: list[tuple[Location, str]]) -> str | None:
    value = data.get(key)
    if value is not None and not (isinstance(value, str) and SNAPSHOT_NAME.match(value)):
        problems.append((locate((key,)), f"{key} must be a name of letters, digits, '.', '_' or '-'"))
        return None
    return value


def _machines(config: Config) -> list[tuple[Any, ...]]:
    """What a snapshot depends on: each persona's machine, not its policies."""
    def machine(p: PersonaConfig) -> tuple[Any, ...]:
        return (p.name, p.image, p.kernel, p.initrd, p.append, p.disk, p.memory_mb, p.color, p.autostart,
                p.cdrom, p.boot, p.firmware, p.cpus, p.machine, p.vga, p.network, p.forward, p.overlay,
                p.qemu_args, p.agent)
    return [machine(p) for p in config.personas]


def _unique(problems: list[tuple[Location, str]]) -> list[tuple[Location, str]]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for loc, message in problems:
        if (str(loc), message) not in seen:
            seen.add((str(loc), message))
            kept.append((loc, message))
    return kept


def _raw_persona_names(config: Any) -> list[str] | None:
    """Persona names from a config that failed its checks, so steps can still be checked."""
    personas = config.get("persona") if isinstance(config, dict) else None
    if not isinstance(personas, list):
        return None
    return [p["name"] for p in personas if isinstance(p, dict) and isinstance(p.get("name"), str)]


def _seats(config: Config) -> dict[str, tuple[str, ...] | None]:
    """The config's seats (its ``[[seat]]`` tables, or its one implicit seat) and the
    personas each may show (None: every one)."""
    return {seat.name: seat.personas for seat in seats_of(config)}


def _raw_seats(config: Any) -> dict[str, tuple[str, ...] | None] | None:
    """Seat names from a config that failed its checks (None when they cannot be told: the
    steps' seats are then checked when they run)."""
    seats = config.get("seat") if isinstance(config, dict) else None
    if seats is None and isinstance(config, dict):
        return {DEFAULT_SEAT: None}
    if not isinstance(seats, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                              for s in seats):
        return None
    return {s["name"]: None for s in seats}
