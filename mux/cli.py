"""The ``mux`` command line.

Exit codes: 0 success; 1 a scenario failed or a command could not be carried out;
2 a bad file or bad usage (argparse's own convention).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from mux import control, images
from mux.config import Config, default_control_socket, demo_config, load_config
from mux.errors import ConfigError, ControlError, MuxError

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
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the built-in demo: two console personas, work and home, headless")
    p.add_argument("--for", dest="duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("images", help="build or list the built-in guest images")
    isub = p.add_subparsers(required=True, metavar="ACTION")
    b = isub.add_parser("build", help="build one image, or all")
    b.add_argument("name", nargs="?", choices=images.image_names())
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.set_defaults(func=cmd_images_build)
    isub.add_parser("list", help="list images and their cache state").set_defaults(func=cmd_images_list)

    p = sub.add_parser("replay", help="replay scenario files against fresh personas")
    p.add_argument("scenarios", type=Path, nargs="+")
    p.add_argument("--artifacts", type=Path, default=Path("mux-artifacts"))
    p.add_argument("--keep-going", action="store_true", help="run the rest after a failure")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("bench", help="measure performance (figures as ratios to a same-run baseline)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--events", type=int, default=2000, help="input events to measure")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("ctl", help="talk to a running controller")
    p.add_argument("--socket", type=Path, default=default_control_socket())
    csub = p.add_subparsers(required=True, metavar="REQUEST")
    csub.add_parser("status", help="personas, states, active").set_defaults(func=cmd_ctl_status)
    s = csub.add_parser("switch", help="make a persona active")
    s.add_argument("name")
    s.set_defaults(func=cmd_ctl_switch)
    s = csub.add_parser("screenshot", help="save a persona's screen (PNG by extension)")
    s.add_argument("name")
    s.add_argument("file", type=Path)
    s.set_defaults(func=cmd_ctl_screenshot)
    return parser


# --- run / demo ------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.dry_run:
        return _dry_run(config)
    return asyncio.run(_run(config, args.duration))


def cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(_run(demo_config(), args.duration))


def _dry_run(config: Config) -> int:
    """Print each persona's QEMU command line without booting anything."""
    from mux.accel import choose_accel
    from mux.persona import qemu_argv

    accel = choose_accel(config.mux.accel)
    runtime = config.mux.runtime_dir / "mux-DRYRUN"
    for persona in config.personas:
        boot = None
        if persona.image:
            built = images.find_built(persona.image)
            boot = (built.kernel, built.initrd, built.append) if built else (
                Path(f"<{persona.image} kernel>"), Path(f"<{persona.image} initrd>"), "")
        print(f"{persona.name}: {shlex.join(qemu_argv(persona, runtime, accel, boot))}")
    return 0


def _logs_dir() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
    return state / "mux" / "logs" / time.strftime("%Y%m%d-%H%M%S")


async def _run(config: Config, duration: float | None) -> int:
    from mux.controller import Controller

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logs = _logs_dir()
    async with Controller(config, control_socket=config.mux.control_socket, logs_dir=logs) as ctl:
        print(f"mux: {len(ctl.personas)} personas, active {ctl.active}; control socket {ctl.control_path}")
        print("mux: serial logs are copied to", logs, "on exit; Ctrl-C stops every guest")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        print("mux: stopping")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mux.bench import run_bench

    asyncio.run(run_bench(args.json, events=args.events))
    return 0


# --- images ----------------------------------------------------------------------------


def cmd_images_build(args: argparse.Namespace) -> int:
    for name in [args.name] if args.name else images.image_names():
        built = images.build(name, progress=lambda m: print(f"mux: {m}"), force=args.force)
        print(f"{name}: {built.kernel.parent}")
    return 0


def cmd_images_list(args: argparse.Namespace) -> int:
    for name, built in images.list_images():
        print(f"{name:10} {'built at ' + str(built.kernel.parent) if built else 'not built'}")
    return 0


# --- replay ----------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from mux.replay import load_all, run_scenario

    scenarios = load_all(args.scenarios)

    async def replay_all() -> int:
        failed = 0
        for scenario in scenarios:
            result = await run_scenario(scenario, args.artifacts)
            if not result.passed:
                failed += 1
                if not args.keep_going:
                    break
        print(f"mux replay: {len(scenarios) - failed} passed, {failed} failed")
        return EXIT_FAILED if failed else 0

    return asyncio.run(replay_all())


# --- ctl -------------------------------------------------------------------------------


def _ctl(args: argparse.Namespace, message: dict[str, object]) -> dict[str, object]:
    reply = control.request(args.socket, message)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    return reply


def cmd_ctl_status(args: argparse.Namespace) -> int:
    print(json.dumps(_ctl(args, {"cmd": "status"})["status"], indent=2))
    return 0


def cmd_ctl_switch(args: argparse.Namespace) -> int:
    print(_ctl(args, {"cmd": "switch", "persona": args.name})["active"])
    return 0


def cmd_ctl_screenshot(args: argparse.Namespace) -> int:
    print(_ctl(args, {"cmd": "screenshot", "persona": args.name, "file": str(args.file.resolve())})["file"])
    return 0
