"""The ``mux`` command line.

Exit codes: 0 success; 1 a scenario failed or a command could not be carried out;
2 a bad file or bad usage (argparse's own convention).

This is also where frontends meet the controller: :func:`frontends` chooses what
``mux run`` serves (the control socket, MQTT if configured) and the controller serves
them through :class:`~mux.app.api.ControlAPI` for as long as it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mux import images
from mux.cli_ctl import add_ctl_parser, ask
from mux.cli_logs import add_logs_parser
from mux.config import Config, default_control_socket, demo_config, load_config
from mux.errors import ConfigError, MuxError
from mux.frontends import control

if TYPE_CHECKING:
    from mux.app.api import Frontend

EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="mux: %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("qemu").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"mux: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MuxError as exc:
        print(f"mux: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mux", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the personas of a config until SIGINT/SIGTERM")
    p.add_argument("config", type=Path)
    p.add_argument("--dry-run", action="store_true", help="check the config, print QEMU command lines")
    p.add_argument("--for", dest="duration", type=float, help="stop after this many seconds")
    p.add_argument("--restart-changed", action="store_true",
                   help="restart kept guests whose config changed (default: report, leave running)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("down", help="stop a config's kept guests (and its controller), or every config's")
    p.add_argument("config", type=Path, nargs="?")
    p.set_defaults(func=cmd_down)
    sub.add_parser("ps", help="list every guest mux keeps running").set_defaults(func=cmd_ps)

    p = sub.add_parser("demo", help="the built-in demo: two console personas, work and home, headless")
    p.add_argument("--for", dest="duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("images", help="build or list the built-in guest images")
    isub = p.add_subparsers(required=True, metavar="ACTION")
    b = isub.add_parser("build", help="build one image, or those built by default (not debian)")
    b.add_argument("name", nargs="?", choices=images.image_names())
    b.add_argument("--all", action="store_true", help="also the on-demand images (debian: root, minutes)")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.set_defaults(func=cmd_images_build)
    isub.add_parser("list", help="list images and their cache state").set_defaults(func=cmd_images_list)
    k = isub.add_parser("key", help="print one cache key for the default images (or those named),"
                        " for a CI cache of ~/.cache/mux")
    k.add_argument("names", nargs="*", metavar="NAME")
    k.set_defaults(func=cmd_images_key)

    p = sub.add_parser("import", help="print a [[persona]] table for a VM of another tool")
    p.add_argument("kind", choices=["libvirt"], help="libvirt: FILE is `virsh dumpxml NAME` output")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("replay", help="replay scenario files against fresh personas")
    p.add_argument("scenarios", type=Path, nargs="+")
    p.add_argument("--artifacts", type=Path, default=Path("mux-artifacts"))
    p.add_argument("--keep-going", action="store_true", help="run the rest after a failure")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report")
    p.add_argument("--snapshots", type=Path, metavar="DIR",
                   help="where snapshots are kept (default $MUX_SNAPSHOT_DIR or ~/.cache/mux/snapshots)")
    p.add_argument("--check", action="store_true",
                   help="only load and check the files (needles, includes), boot nothing: exit 0 or 2")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("needle", help="openQA needles")
    nsub = p.add_subparsers(required=True, metavar="ACTION")
    n = nsub.add_parser("capture", help="write NAME.json + NAME.png from a live persona (full-screen match)")
    n.add_argument("persona")
    n.add_argument("name", type=Path, help="the needle's path without .json (its file name is its tag)")
    n.add_argument("--socket", type=Path, default=default_control_socket())
    n.set_defaults(func=cmd_needle_capture)
    n = nsub.add_parser("edit", help="draw and tune a needle's areas in a window"
                        " (a new needle with --persona)")
    n.add_argument("name", type=Path, help="NAME.json (beside NAME.png); its file name is a new needle's tag")
    n.add_argument("--persona", help="match live against this persona of a running mux (and take a new"
                   " needle's picture from its screen)")
    n.add_argument("--socket", type=Path, default=default_control_socket())
    n.add_argument("--screenshot", type=Path, metavar="FILE", help="where F12 saves a picture of the window")
    n.set_defaults(func=cmd_needle_edit)

    p = sub.add_parser("bench", help="measure performance (figures as ratios to a same-run baseline)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--events", type=int, default=2000, help="input events to measure")
    p.add_argument("--only", metavar="KEY,...",
                   help="measure only what these keys need (e.g. live_fps,idle_cpu_percent)")
    p.set_defaults(func=cmd_bench)

    add_ctl_parser(sub)
    add_logs_parser(sub)
    return parser


# --- run / demo ------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.dry_run:
        return _dry_run(config)
    return asyncio.run(_run(config, args.duration, args.restart_changed))


def cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(_run(demo_config(), args.duration))


def cmd_down(args: argparse.Namespace) -> int:
    """``mux down [CONFIG]``: see :func:`mux.app.keep.down`."""
    from mux.app import keep

    root = keep.guests_root()
    dirs = [keep.keep_dir(load_config(args.config))] if args.config else sorted(root.glob("*"))
    stopped = sum(asyncio.run(keep.down(d, lambda m: print(f"mux: {m}"))) for d in dirs if d.exists())
    print(f"mux down: {len(dirs)} config(s) down, {stopped} guest(s) stopped without a controller")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    """``mux ps``: every kept guest still running (config, persona, pid, uptime, attached)."""
    from mux.app.keep import kept_guests

    print(f"{'PERSONA':12} {'PID':>8} {'UPTIME':>9} {'ATTACHED':8} CONFIG")
    for g in kept_guests():
        print(f"{g.persona:12} {g.pid:>8} {g.uptime_s:>8.0f}s {'yes' if g.attached else 'no':8} {g.config}")
    return 0


def _dry_run(config: Config) -> int:
    """Print each persona's QEMU command line without booting anything (nor asking apt):
    see :func:`mux.app.dryrun.dry_run_lines`."""
    from mux.app.dryrun import dry_run_lines

    print("\n".join(dry_run_lines(config)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``mux import libvirt FILE.xml``: see :mod:`mux.config.libvirt`."""
    from mux.config.libvirt import import_domain

    print(import_domain(args.file), end="")
    return 0


def _logs_dir() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
    return state / "mux" / "logs" / time.strftime("%Y%m%d-%H%M%S")


def frontends(config: Config, control_socket: Path | None = None) -> list[Frontend]:
    """What a running mux serves: the control socket (at ``control_socket``, by default
    the config's), and the MQTT bridge if the config has an ``[mqtt]`` section."""
    serving: list[Frontend] = [control.ControlServer(control_socket or config.mux.control_socket)]
    if config.mqtt is not None:
        from mux.frontends.mqtt import MqttBridge

        serving.append(MqttBridge(config.mqtt))
    return serving


async def _run(config: Config, duration: float | None, restart_changed: bool = False) -> int:
    from mux.app.controller import Controller

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logs = _logs_dir()
    async with Controller(config, frontends=frontends(config), logs_dir=logs, remember_active=True,
                          keep_guests=config.mux.keep_guests, restart_changed=restart_changed) as ctl:
        print(f"mux: {len(ctl.personas)} personas, active {ctl.active};"
              f" control socket {config.mux.control_socket}")
        print(f"mux: tagged serial lines go to {logs}/serial.jsonl (mux logs), the raw serial logs on exit;"
              " Ctrl-C stops every guest"
              + (" (keep_guests = always: they run on)" if config.mux.keep_guests == "always" else ""))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        print("mux: stopping")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mux.bench.runner import parts_for, run_bench

    only = {key.strip() for key in args.only.split(",") if key.strip()} if args.only else None
    try:
        parts_for(only)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    asyncio.run(run_bench(args.json, events=args.events, only=only))
    return 0


# --- images ----------------------------------------------------------------------------


def cmd_images_build(args: argparse.Namespace) -> int:
    names = images.image_names() if args.all else images.default_image_names()
    for name in [args.name] if args.name else names:
        built = images.build(name, progress=lambda m: print(f"mux: {m}"), force=args.force)
        print(f"{name}: {built.kernel.parent}")
    return 0


def cmd_images_key(args: argparse.Namespace) -> int:
    """The key on stdout alone; what it fetched on stderr."""
    print(images.images_key(args.names or None, progress=lambda m: print(f"mux: {m}", file=sys.stderr)))
    return 0


def cmd_images_list(args: argparse.Namespace) -> int:
    for name, built in images.list_images():
        print(f"{name:10} {'built at ' + str(built.kernel.parent) if built else 'not built'}")
    return 0


# --- replay ----------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    """Check every file, run the scenarios, write results.json (and the JUnit file)."""
    from mux.scenario import snapshot
    from mux.scenario.report import ScenarioResult, write_junit, write_results
    from mux.scenario.runner import load_all, run_scenario

    store = args.snapshots or snapshot.default_dir()
    scenarios = load_all(args.scenarios, store)
    for scenario in scenarios:
        for location, warning in scenario.warnings:
            print(f"mux: warning: {location}: {warning}", file=sys.stderr)
    if args.check:
        print(f"mux replay: {len(scenarios)} file(s) checked, "
              f"{sum(len(s.warnings) for s in scenarios)} warning(s)")
        return 0

    async def replay_all() -> list[ScenarioResult]:
        results: list[ScenarioResult] = []
        dirs: set[str] = set()
        missing: dict[str, str] = {}  # snapshots this run should have saved, but did not
        stop = False
        for scenario in scenarios:
            if stop:
                results.append(ScenarioResult(scenario, not_run=True))
                continue
            slug = _unique_dir(scenario.name, dirs)
            result = await run_scenario(scenario, args.artifacts, snapshots=store,
                                        directory=args.artifacts / slug, missing=missing)
            results.append(result)
            for name in scenario.saves:
                if result.passed:
                    missing.pop(name, None)
                else:
                    missing[name] = f"scenario {scenario.name!r} ({scenario.file}) failed"
            stop = not result.passed and not args.keep_going
        return results

    results = asyncio.run(replay_all())
    failed = sum(not r.passed and not r.not_run for r in results)
    skipped = sum(r.not_run for r in results)
    code = EXIT_FAILED if failed else 0
    print(f"mux replay: results in {write_results(results, args.artifacts, code)}")
    if args.junit:
        print(f"mux replay: JUnit report in {write_junit(results, args.junit)}")
    print(f"mux replay: {len(results) - failed - skipped} passed, {failed} failed"
          + (f", {skipped} skipped" if skipped else ""))
    return code


def _unique_dir(name: str, taken: set[str]) -> str:
    import re

    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "scenario"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def cmd_needle_capture(args: argparse.Namespace) -> int:
    """Save the persona's screen as NAME.png and a needle skeleton NAME.json beside it."""
    from PIL import Image

    stem = args.name.with_suffix("") if args.name.suffix in (".json", ".png") else args.name
    png, json_path = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".json")
    png.parent.mkdir(parents=True, exist_ok=True)
    ask(args, {"cmd": "screenshot", "persona": args.persona, "file": str(png.resolve())})
    with Image.open(png) as image:
        width, height = image.size
    needle = {"tags": [stem.name], "properties": [],
              "area": [{"xpos": 0, "ypos": 0, "width": width, "height": height, "type": "match"}]}
    json_path.write_text(json.dumps(needle, indent=3) + "\n", encoding="utf-8")
    print(json_path)
    return 0


def cmd_needle_edit(args: argparse.Namespace) -> int:
    """The needle editor: see :mod:`mux.frontends.needle_editor.app`."""
    from mux.frontends.needle_editor.app import edit

    return edit(args.name, args.persona, args.socket, args.screenshot)


# --- ctl -------------------------------------------------------------------------------
