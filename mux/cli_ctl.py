"""``mux ctl``: requests to a running controller, over its control socket.

Each request is one JSON line to :mod:`mux.frontends.control` and one reply; a reply
with ``ok: false`` becomes a :class:`~mux.errors.ControlError` (exit code 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mux.config import default_control_socket
from mux.errors import ControlError
from mux.frontends import control

DEVICE_MOVE_S = 600.0  # a move waits for the old guest's release (release_timeout_s)


def add_ctl_parser(sub: Any) -> None:
    """Add ``ctl`` and its requests to the ``mux`` command's subparsers."""
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
    s = csub.add_parser("attach", help="move a device to a persona (hotplug)")
    s.add_argument("device")
    s.add_argument("name", metavar="persona")
    s.set_defaults(func=cmd_ctl_attach)
    s = csub.add_parser("detach", help="unplug a device from its persona")
    s.add_argument("device")
    s.add_argument("name", metavar="persona", nargs="?", help="must be the persona holding it")
    s.set_defaults(func=cmd_ctl_detach)
    s = csub.add_parser("text", help="print the text on a persona's screen (OCR)")
    s.add_argument("name", metavar="persona")
    s.add_argument("--area", type=_area, metavar="X,Y,W,H", help="read only this part of the screen")
    s.set_defaults(func=cmd_ctl_text)
    s = csub.add_parser("exec", help="run a command in a persona's guest, exit with its status")
    s.add_argument("name", metavar="persona")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds the command may take (60)")
    s.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    s.set_defaults(func=cmd_ctl_exec)
    s = csub.add_parser("clock", help="set a persona's guest clock through its agent")
    s.add_argument("name", metavar="persona")
    s.add_argument("time", help="ISO 8601 (UTC unless it has an offset, e.g. 2031-05-01T09:00:00+02:00)"
                   " or host (the host's current time)")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the agent (60)")
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
