"""``mux ctl``: requests to a running controller, over its control socket or the MQTT broker.

Each request is one JSON line to :mod:`mux.frontends.control` and one reply; a reply
with ``ok: false`` becomes a :class:`~mux.errors.ControlError` (exit code 1).

With ``--mqtt URL --node NODE`` (and the broker options of the config's ``[mqtt]``
table: :func:`add_broker_options`), ``status``, ``switch``, ``start``, ``stop``,
``restart`` and ``screenshot`` go to the node's controller over the broker instead,
through the topics a panel uses (:class:`mux.frontends.mqtt_client.RemoteNode`): a
command waits until the node's retained state shows it carried out, then prints the
node's status. ``mux ps --mqtt URL`` lists the nodes the broker knows (:func:`cmd_ps_mqtt`).

``switch --seat S`` switches one ``[[seat]]`` (default: the first); over MQTT it is refused
with exit code 2 (a seat has its own ``seat/<name>/active/set`` topic there).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from mux.cli_common import EXIT_USAGE, SOCKET_HELP, add_command, add_subcommands
from mux.config import MqttSection, default_control_socket
from mux.errors import ControlError
from mux.frontends import control

DEVICE_MOVE_S = 600.0  # a move waits for the old guest's release (release_timeout_s)
MQTT_TIMEOUT_S = 120.0  # a switch may boot the persona first (start_on_switch)
#: Requests ``mux ctl --mqtt`` carries over the broker.
OVER_MQTT = ("status", "switch", "start", "stop", "restart", "screenshot")


def add_broker_options(p: argparse.ArgumentParser, node: bool) -> None:
    """The broker options of ``mux ctl`` and ``mux ps``: the config's ``[mqtt]`` url, user,
    password and TLS files (``node``: also ``--node`` and ``--base-topic``)."""
    g = p.add_argument_group("over MQTT", "Talk to controllers through their MQTT broker instead (the"
                             " broker's users, passwords and TLS decide who may).")
    g.add_argument("--mqtt", metavar="URL", help="the broker: mqtt://host:1883, or mqtts://host:8883 for TLS")
    if node:
        g.add_argument("--node", metavar="NODE", help="the controller's [mqtt] node_id (with --mqtt)")
        g.add_argument("--base-topic", metavar="TOPIC",
                       help="the node's [mqtt] base_topic, if its config sets one (default: mux/NODE)")
        g.add_argument("--timeout", type=float, default=MQTT_TIMEOUT_S, metavar="SECONDS",
                       help=f"how long the node may take to carry a request out (default {MQTT_TIMEOUT_S:g})")
    g.add_argument("--username", metavar="USER", help="the broker's user name")
    g.add_argument("--password", metavar="PASSWORD",
                   help="the broker's password (default: $MUX_MQTT_PASSWORD; an option is visible to ps)")
    g.add_argument("--tls-ca", type=Path, metavar="PEM", help="a CA certificate to check the broker's with")
    g.add_argument("--tls-cert", type=Path, metavar="PEM", help="a client certificate")
    g.add_argument("--tls-key", type=Path, metavar="PEM", help="the client certificate's key")
    if not node:
        g.add_argument("--discovery-prefix", default="homeassistant", metavar="PREFIX",
                       help="Home Assistant's discovery prefix (default homeassistant)")


def broker_section(args: argparse.Namespace) -> MqttSection:
    """The options of :func:`add_broker_options` as an ``[mqtt]`` table."""
    return MqttSection(url=args.mqtt, username=args.username,
                       password=args.password or os.environ.get("MUX_MQTT_PASSWORD"),
                       tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key,
                       base_topic=getattr(args, "base_topic", None),
                       discovery_prefix=getattr(args, "discovery_prefix", "homeassistant"),
                       node_id=getattr(args, "node", None) or "")


def add_ctl_parser(sub: Any) -> None:
    """Add ``ctl`` and its requests to the ``mux`` command's subparsers."""
    p = add_command(sub, "ctl", "talk to a running controller (mux run, mux demo)",
                    "Each request goes to the controller's control socket; exit code 1 if it could not"
                    " be carried out.")
    p.add_argument("--socket", type=Path, default=default_control_socket(), metavar="PATH", help=SOCKET_HELP)
    add_broker_options(p, node=True)
    csub = add_subcommands(p, "REQUEST", "what to ask the controller")
    add_command(csub, "status", "print the personas, their states, the seats and what each shows (JSON)"
                ).set_defaults(func=cmd_ctl_status)
    s = add_command(csub, "switch", "make a persona the active one (of a seat)",
                    "Prints the seat's new active persona; refused (exit 1) when the seat may not show it"
                    " or it is active on another seat and [mux] steal is off.")
    s.add_argument("name", metavar="PERSONA", help="the persona to make active (or next, previous)")
    s.add_argument("--seat", metavar="SEAT",
                   help="the [[seat]] to switch (default: the first seat; not over MQTT)")
    s.set_defaults(func=cmd_ctl_switch)
    for action in ("start", "stop", "restart"):
        s = add_command(csub, action, f"{action} a persona's guest (over MQTT only: --mqtt)",
                        "Prints the node's status once its state shows it done.")
        s.add_argument("name", metavar="PERSONA", help=f"the persona to {action}")
        s.set_defaults(func=cmd_ctl_persona, action=action)
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
    s = add_command(csub, "clipboard",
                    "copy the active persona's clipboard into mux's, or paste mux's into it",
                    "What scrolllock+c and scrolllock+v do: copy reads the active persona's clipboard into"
                    " mux's own; paste gives mux's text to the active persona (then paste in the guest as"
                    " usual). [clipboard] allow says which directions may be pasted; a refusal exits 1"
                    " with its reason. Prints what was done (sizes and names, never the text).")
    s.add_argument("action", choices=("copy", "paste"),
                   help="copy (from the active persona) or paste (into it)")
    s.set_defaults(func=cmd_ctl_clipboard)


def ask(args: argparse.Namespace, message: dict[str, object], timeout: float = 30.0) -> dict[str, object]:
    """Send one request to the control socket; its reply, or ControlError if it failed."""
    _socket_only(args, str(message["cmd"]))
    reply = control.request(args.socket, message, timeout)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    return reply


def remote(args: argparse.Namespace) -> Any:
    """The node ``--mqtt``/``--node`` name (None without ``--mqtt``).

    Raises:
        ControlError: ``--mqtt`` without ``--node``.
    """
    if not args.mqtt:
        return None
    from mux.frontends.mqtt_client import RemoteNode

    if not args.node:
        raise ControlError("mux ctl --mqtt needs --node NODE (the controller's [mqtt] node_id)")
    return RemoteNode(broker_section(args), args.timeout)


def cmd_ctl_status(args: argparse.Namespace) -> int:
    node = remote(args)
    status = asyncio.run(node.status()) if node else ask(args, {"cmd": "status"})["status"]
    print(json.dumps(status, indent=2))
    return 0


def cmd_ctl_switch(args: argparse.Namespace) -> int:
    """Switch a seat; prints its new active persona (over MQTT: the node's status).

    Raises:
        ControlError: the controller refused or could not be reached.
    """
    seat = getattr(args, "seat", None)
    if args.mqtt and seat is not None:
        print("mux: ctl switch --seat works only over the control socket (over MQTT, publish to the node's"
              f" seat/{seat}/active/set topic)", file=sys.stderr)
        return EXIT_USAGE
    if node := remote(args):
        print(json.dumps(asyncio.run(node.command("switch", args.name)), indent=2))
        return 0
    message: dict[str, object] = {"cmd": "switch", "persona": args.name}
    if seat is not None:
        message["seat"] = seat
    print(ask(args, message)["active"])
    return 0


def cmd_ctl_persona(args: argparse.Namespace) -> int:
    """``start``, ``stop``, ``restart``: over MQTT (the control socket has no such request)."""
    action = args.action
    if not args.mqtt:
        raise ControlError(f"mux ctl {action} works only over MQTT (--mqtt URL --node NODE)")
    node = remote(args)
    print(json.dumps(asyncio.run(node.command(action, args.name)), indent=2))
    return 0


def cmd_ctl_screenshot(args: argparse.Namespace) -> int:
    if node := remote(args):
        from PIL import Image

        picture = asyncio.run(node.screenshot(args.name))
        if args.file.suffix.lower() in (".jpg", ".jpeg"):
            args.file.write_bytes(picture)
        else:
            Image.open(io.BytesIO(picture)).save(args.file)
        print(args.file.resolve())
        return 0
    print(ask(args, {"cmd": "screenshot", "persona": args.name, "file": str(args.file.resolve())})["file"])
    return 0


def cmd_ps_mqtt(args: argparse.Namespace) -> int:
    """``mux ps --mqtt URL``: every node the broker knows, one line each."""
    from mux.frontends.mqtt_client import list_nodes

    nodes = asyncio.run(list_nodes(broker_section(args)))
    print(f"{'NODE':16} {'AVAILABILITY':12} {'HOST':20} {'PID':>8} BASE_TOPIC")
    for n in nodes:
        host, pid = n["host"] or "-", n["pid"] or "-"
        print(f"{n['node']:16} {n['availability']:12} {host:20} {pid:>8} {n['base_topic']}")
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


def _socket_only(args: argparse.Namespace, request: str) -> None:
    if getattr(args, "mqtt", None):
        raise ControlError(f"mux ctl {request} works only over the control socket (over MQTT: "
                           f"{', '.join(OVER_MQTT)})")


def cmd_ctl_exec(args: argparse.Namespace) -> int:
    _socket_only(args, "exec")
    return control.exec_in_guest(args.socket, args.name, args.command, args.timeout)


def cmd_ctl_clock(args: argparse.Namespace) -> int:
    reply = ask(args, {"cmd": "clock", "persona": args.name, "time": args.time, "timeout": args.timeout},
                timeout=args.timeout + 30.0)
    print(f"{args.name}: clock set to {reply['time']}")
    return 0


def cmd_ctl_clipboard(args: argparse.Namespace) -> int:
    reply = ask(args, {"cmd": "clipboard", "action": args.action})
    print(reply.get("message"))
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
