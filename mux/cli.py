"""The ``mux`` command line: the parser of every command, and running the personas.

Exit codes: 0 success; 1 a scenario failed or a command could not be carried out;
2 a bad file or bad usage (argparse's own convention).

:func:`build_parser` builds the whole parser, every command and option with its help in
plain words; :func:`main` runs it, and the completion scripts (``mux completion``) and
the reference documentation are generated from it. The commands that run personas
(``run``, ``demo``, ``down``, ``ps``) live here; the others in ``mux/cli_*.py``, one
module per group, each adding its commands with an ``add_*_parser`` function.

This is also where frontends meet the controller: :func:`frontends` chooses what
``mux run`` serves (the control socket, MQTT if configured) and the controller serves
them through :class:`~mux.app.api.ControlAPI` for as long as it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from mux.cli_common import EXIT_FAILED, EXIT_USAGE, add_command, add_subcommands
from mux.cli_ctl import add_broker_options, add_ctl_parser
from mux.cli_images import add_images_parser
from mux.cli_logs import add_logs_parser
from mux.cli_replay import add_needle_parser, add_replay_parser
from mux.cli_setup import add_setup_parsers
from mux.config import Config, demo_config, load_config
from mux.errors import ConfigError, MuxError
from mux.frontends import control

if TYPE_CHECKING:
    from mux.app.api import Frontend

DESCRIPTION = """\
Run several QEMU virtual machines (personas) that share one keyboard, mouse and screen:
only the active persona gets the input and is shown; the others keep running."""
EPILOG = """\
Exit codes: 0 success; 1 a scenario failed or a command could not be carried out;
2 a bad file or bad usage. "mux COMMAND --help" tells more about each command;
"mux init" writes a starter config and "mux doctor" checks what this machine has."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


def version() -> str:
    """mux's version, from the installed package's metadata (else the source tree's)."""
    try:
        return metadata.version("mux")
    except metadata.PackageNotFoundError:
        from mux import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The whole ``mux`` parser: every command, its options and their help."""
    parser = argparse.ArgumentParser(prog="mux", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging details too")
    parser.add_argument("--version", action="version", version=f"mux {version()}",
                        help="print mux's version and exit")
    sub = add_subcommands(parser, "COMMAND", "what to do (each has its own --help)")

    p = add_command(sub, "run", "run the personas of a config until Ctrl-C (SIGINT) or SIGTERM",
                    "Guests a killed mux run of the same config left running are adopted; on exit"
                    " every guest is stopped, unless the config keeps them (keep_guests).")
    p.add_argument("config", type=Path, metavar="CONFIG", help="the config file (TOML)")
    p.add_argument("--dry-run", action="store_true",
                   help="only check the config and print each persona's QEMU command line; boot nothing")
    p.add_argument("--for", dest="duration", type=float, metavar="SECONDS",
                   help="stop after this many seconds")
    p.add_argument("--restart-changed", action="store_true",
                   help="restart kept guests whose config changed (by default they are reported and"
                        " left running)")
    p.set_defaults(func=cmd_run)

    p = add_command(sub, "demo", "run the built-in demo: two personas, work and home, in a window if it can",
                    "The same as mux run on the built-in config that mux init writes by default. It shows"
                    " itself in a window when a display is reachable ($WAYLAND_DISPLAY or $DISPLAY that"
                    " SDL can open), else runs headless; one line says which.")
    p.add_argument("--for", dest="duration", type=float, metavar="SECONDS",
                   help="stop after this many seconds")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--window", dest="output", action="store_const", const="window", default="auto",
                       help="show a window; fail if none can be opened")
    shown.add_argument("--headless", dest="output", action="store_const", const="headless",
                       help="open no window, even if a display is reachable")
    p.add_argument("--desktop", action="store_true",
                   help="desktop personas (the desktop image, built on demand: minutes, needs root)"
                        " that follow the window's size")
    p.set_defaults(func=cmd_demo)

    p = add_command(sub, "down", "stop a config's kept guests (and its controller), or every config's",
                    "Works whether or not a controller runs, and removes the guests' state directory.")
    p.add_argument("config", type=Path, nargs="?", metavar="CONFIG",
                   help="the config whose guests to stop (default: every config's)")
    p.set_defaults(func=cmd_down)
    p = add_command(sub, "ps", "list every guest mux keeps running (--mqtt: every node on a broker)",
                    "One line each: persona, process id, uptime, whether a controller has it, config. With"
                    " --mqtt, one line per controller the broker knows: node, availability, host, pid."
                    " Then each persona state quick boot saved (quick_boot), with its size.")
    add_broker_options(p, node=False)
    p.set_defaults(func=cmd_ps)

    add_images_parser(sub)
    p = add_command(sub, "import", "print a [[persona]] table for a virtual machine of another tool")
    p.add_argument("kind", choices=["libvirt"], metavar="KIND",
                   help="the tool: libvirt (FILE is the output of virsh dumpxml NAME)")
    p.add_argument("file", type=Path, metavar="FILE", help="the other tool's description of the machine")
    p.set_defaults(func=cmd_import)

    add_replay_parser(sub)
    add_needle_parser(sub)

    p = add_command(sub, "bench", "measure performance (figures as ratios to a baseline of the same run)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to this file")
    p.add_argument("--events", type=int, default=2000, metavar="N",
                   help="how many input events to measure (default 2000)")
    p.add_argument("--only", metavar="KEY,...",
                   help="measure only what these figures need (e.g. live_fps,idle_cpu_percent)")
    p.set_defaults(func=cmd_bench)

    add_ctl_parser(sub)
    add_logs_parser(sub)
    add_setup_parsers(sub, build_parser)
    return parser


#: The old name of :func:`build_parser`.
_parser = build_parser


# --- run / demo ------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.dry_run:
        return _dry_run(config)
    return asyncio.run(_run(config, args.duration, args.restart_changed))


def cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(_run(demo_config(desktop=args.desktop, output=args.output), args.duration))


def cmd_down(args: argparse.Namespace) -> int:
    """``mux down [CONFIG]``: see :func:`mux.app.keep.down`."""
    from mux.app import keep

    root = keep.guests_root()
    dirs = [keep.keep_dir(load_config(args.config))] if args.config else sorted(root.glob("*"))
    stopped = sum(asyncio.run(keep.down(d, lambda m: print(f"mux: {m}"))) for d in dirs if d.exists())
    print(f"mux down: {len(dirs)} config(s) down, {stopped} guest(s) stopped without a controller")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    """``mux ps``: every kept guest still running (config, persona, pid, uptime, attached);
    with ``--mqtt``, every node the broker knows (:func:`mux.cli_ctl.cmd_ps_mqtt`)."""
    from mux.app.keep import kept_guests

    if args.mqtt:
        from mux.cli_ctl import cmd_ps_mqtt

        return cmd_ps_mqtt(args)

    print(f"{'PERSONA':12} {'PID':>8} {'UPTIME':>9} {'ATTACHED':8} CONFIG")
    for g in kept_guests():
        print(f"{g.persona:12} {g.pid:>8} {g.uptime_s:>8.0f}s {'yes' if g.attached else 'no':8} {g.config}")
    from mux.guest.quickboot import listing, mib

    if saved := listing():  # quick boot: the states a clean stop saved, resumed at the next start
        print(f"\n{'SAVED':12} {'SIZE':>12} CONFIG")
        for config, persona, size in saved:
            print(f"{persona:12} {mib(size):>12} {config}")
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
    from mux.app.taglog import new_logs_folder

    return new_logs_folder(state / "mux" / "logs", time.time())  # unique: two runs in one second differ


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
                          keep_guests=config.mux.keep_guests, restart_changed=restart_changed,
                          quick_boot=config.mux.quick_boot) as ctl:
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
