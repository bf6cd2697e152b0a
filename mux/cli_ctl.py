"""``mux ctl``: requests to a running controller, over its control socket.

Each request is one JSON line to :mod:`mux.frontends.control` and one reply; a reply
with ``ok: false`` becomes a :class:`~mux.errors.ControlError` (exit code 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mux.cli_common import SOCKET_HELP, add_command, add_subcommands
from mux.config import default_control_socket
from mux.errors import ControlError
from mux.frontends import control

DEVICE_MOVE_S = 600.0  # a move waits for the old guest's release (release_timeout_s)


def add_ctl_parser(sub: Any) -> None:
    """Add ``ctl`` and its requests to the ``mux`` command's subparsers."""
    p = add_command(sub, "ctl", "talk to a running controller (mux run, mux demo)",
                    "Each request goes to the controller's control socket; exit code 1 if it could not"
                    " be carried out.")
    p.add_argument("--socket", type=Path, default=default_control_socket(), metavar="PATH", help=SOCKET_HELP)
    csub = add_subcommands(p, "REQUEST", "what to ask the controller")
    add_command(csub, "status", "print the personas, their states and which one is active (JSON)"
                ).set_defaults(func=cmd_ctl_status)
    s = add_command(csub, "switch", "make a persona the active one")
    s.add_argument("name", metavar="PERSONA", help="the persona to make active")
    s.set_defaults(func=cmd_ctl_switch)
    s = add_command(csub, "screenshot", "save a persona's screen to a file")
    s.add_argument("name", metavar="PERSONA", help="the persona whose screen to save")
    s.add_argument("file", type=Path, metavar="FILE", help="the picture file (PNG or PPM, by its extension)")
    s.set_defaults(func=cmd_ctl_screenshot)
    s = add_command(csub, "attach", "move a device to a persona (hotplug)")
    s.add_argument("device", metavar="DEVICE", help="the device's id in the config")
    s.add_argument("name", metavar="PERSONA", help="the persona to plug it into")
    s.set_defaults(func=cmd_ctl_attach)
    s = add_command(csub, "detach", "unplug a device from its persona")
    s.add_argument("device", metavar="DEVICE", help="the device's id in the config")
    s.add_argument("name", metavar="PERSONA", nargs="?", help="the persona holding it (checked if given)")
    s.set_defaults(func=cmd_ctl_detach)
    s = add_command(csub, "text", "print the text on a persona's screen, read by OCR (tesseract)")
    s.add_argument("name", metavar="PERSONA", help="the persona whose screen to read")
    s.add_argument("--area", type=_area, metavar="X,Y,W,H", help="read only this part of the screen (pixels)")
    s.set_defaults(func=cmd_ctl_text)
    s = add_command(csub, "exec", "run a command in a persona's guest and exit with its exit status",
                    "Through the QEMU guest agent (agent = true); its output is printed as it is.")
    s.add_argument("name", metavar="PERSONA", help="the persona whose guest runs the command")
    s.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long the command may take (default 60)")
    s.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]",
                   help="the command and its arguments, after --")
    s.set_defaults(func=cmd_ctl_exec)
    s = add_command(csub, "clock", "set a persona's guest clock through its guest agent")
    s.add_argument("name", metavar="PERSONA", help="the persona whose clock to set")
    s.add_argument("time", metavar="TIME",
                   help="an ISO 8601 time (UTC unless it has an offset, e.g. 2031-05-01T09:00:00+02:00)"
                        " or host (the host's current time)")
    s.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the guest agent (default 60)")
    s.set_defaults(func=cmd_ctl_clock)


def ask(args: argparse.Namespace, message: dict[str, object], timeout: float = 30.0) -> dict[str, object]:
    """Send one request to the control socket; its reply, or ControlError if it failed."""
    reply = control.request(args.socket, message, timeout)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    return reply


def cmd_ctl_status(args: argparse.Namespace) -> int:
    print(json.dumps(ask(args, {"cmd": "status"})["status"], indent=2))
    return 0


def cmd_ctl_switch(args: argparse.Namespace) -> int:
    print(ask(args, {"cmd": "switch", "persona": args.name})["active"])
    return 0


def cmd_ctl_screenshot(args: argparse.Namespace) -> int:
    print(ask(args, {"cmd": "screenshot", "persona": args.name, "file": str(args.file.resolve())})["file"])
    return 0


def cmd_ctl_attach(args: argparse.Namespace) -> int:
    reply = ask(args, {"cmd": "attach", "device": args.device, "persona": args.name}, timeout=DEVICE_MOVE_S)
    print(_device_line(reply["device"]))
    return 0


def cmd_ctl_detach(args: argparse.Namespace) -> int:
    reply = ask(args, {"cmd": "detach", "device": args.device, "persona": args.name}, timeout=DEVICE_MOVE_S)
    print(_device_line(reply["device"]))
    return 0


def cmd_ctl_text(args: argparse.Namespace) -> int:
    print(ask(args, {"cmd": "text", "persona": args.name, "area": args.area}, timeout=120)["text"])
    return 0


def cmd_ctl_exec(args: argparse.Namespace) -> int:
    return control.exec_in_guest(args.socket, args.name, args.command, args.timeout)


def cmd_ctl_clock(args: argparse.Namespace) -> int:
    reply = ask(args, {"cmd": "clock", "persona": args.name, "time": args.time, "timeout": args.timeout},
                timeout=args.timeout + 30.0)
    print(f"{args.name}: clock set to {reply['time']}")
    return 0


def _area(value: str) -> list[int]:
    """``X,Y,W,H`` as four whole numbers (argparse type)."""
    try:
        parts = [int(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or min(parts) < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not X,Y,W,H (four whole numbers >= 0)")
    return parts


def _device_line(device: object) -> str:
    entry = device if isinstance(device, dict) else {}
    where = f"attached to {entry.get('persona')}" if entry.get("persona") else "detached"
    return f"{entry.get('id')}: {where}"
