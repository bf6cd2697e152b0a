"""``mux logs``: every persona's serial output, merged in time order, each line tagged.

Theory. The lines come from the tagged log (:mod:`mux.app.taglog`): a running
controller's, over its control socket (``{"cmd": "logs"}``, streamed: see
:mod:`mux.frontends.control`), or with ``--from DIR`` a finished run's ``serial.jsonl``
(a ``mux run`` log folder, a replay scenario's artifacts folder). Either way each record
is ``{"t", "persona", "line"}``; they are printed as ``name  | line``, the names padded
to the longest, as ``docker compose logs`` does, the name in the persona's colour (from
the config, kept in the log's header; else a fixed palette) when standard output is a
terminal and ``NO_COLOR`` is not set. A guest is untrusted: its line is shown with its
control characters made visible (ESC as ``\\x1b``: :func:`mux.guest.text.visible`), so its
escape sequences cannot act on the terminal; ``--raw`` prints it as the guest wrote it.
``--json`` prints the records themselves, one JSON object a line: JSON escapes the C0
controls, and DEL and the C1 controls, which it would leave as they are, are written
``\\u007f`` and so on too. ``-t`` puts each line's UTC time before it.

``--since`` takes an ISO 8601 time (UTC unless it has an offset) or a time ago (``30s``,
``10m``, ``2h``, ``1d``, ``1h30m``): :func:`mux.guest.clock.parse_since`. ``-f``
follows a running controller until Ctrl-C, or until the controller stops (a note on
stderr, exit 0); a reader that falls 8 MiB behind is cut off (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mux.app.taglog import FILE_NAME
from mux.cli_common import SOCKET_HELP, add_command
from mux.config import default_control_socket
from mux.display.layout import parse_color
from mux.errors import ControlError, DisplayError
from mux.frontends import control
from mux.guest.clock import TimeError, parse_since, utc_text
from mux.guest.text import visible

PALETTE = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)  # ANSI colours, as docker compose picks them
_JSON_SAFE = {code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0))}  # they occur only in strings


def add_logs_parser(sub: Any) -> None:
    """Add ``logs`` to the ``mux`` command's subparsers."""
    p = add_command(sub, "logs", "print every persona's serial output, merged in time order, tagged",
                    "From a running controller (its control socket) or a finished run's log folder"
                    " (--from). The guest's control characters are shown escaped, as \\xNN, unless"
                    " --raw.")
    p.add_argument("personas", nargs="*", metavar="PERSONA", help="only these personas (default: all)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="go on printing new lines as they come, until Ctrl-C or the controller stops")
    p.add_argument("--since", metavar="TIME", type=_since,
                   help="only lines from TIME: ISO 8601 (UTC unless it has an offset) or a time ago:"
                        " 30s, 10m, 2h, 1d, 1h30m")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON object a line: {t, persona, line}")
    form.add_argument("--raw", action="store_true",
                      help="print each line as the guest wrote it, escape sequences and all (by default"
                           " control characters are shown as \\xNN)")
    p.add_argument("-t", "--timestamps", action="store_true", help="each line's UTC time before it")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--socket", type=Path, default=default_control_socket(), metavar="PATH",
                        help=SOCKET_HELP)
    source.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                        help="a finished run's log folder (mux run) or a replay scenario's artifacts folder")
    p.set_defaults(func=cmd_logs, usage_error=p.error)


def cmd_logs(args: argparse.Namespace) -> int:
    since: float | None = args.since
    if args.from_dir is not None:
        if args.follow:
            args.usage_error("-f follows a running controller (--socket); --from reads a finished run")
        records: Iterable[dict[str, Any]] = read_folder(args.from_dir, args.personas, since)
        where = str(args.from_dir)
    else:
        records = control.stream(args.socket, {"cmd": "logs", "follow": args.follow, "since": since,
                                               "personas": args.personas or None})
        where = str(args.socket)
    printer = Printer(color=_color_wanted(), json_lines=args.json, timestamps=args.timestamps,
                      only=args.personas, raw=args.raw)
    ended = None
    try:
        for record in records:
            if "end" in record:
                ended = record["end"]
            elif "personas" in record:
                printer.header(record)
            elif "line" in record:  # from since on: the source filtered them
                printer.line(record)
    except BrokenPipeError:  # mux logs | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if ended == "behind":
        raise ControlError(f"logs: the controller on {where} ended the stream: this reader fell too far"
                           " behind (8 MiB)")
    if args.follow and ended != "done":
        print(f"mux logs: the stream from {where} ended: the controller stopped", file=sys.stderr)
    return 0


def read_folder(folder: Path, personas: list[str], since: float | None) -> list[dict[str, Any]]:
    """A finished run's tagged log: its header first, then its lines in time order (a line's
    order in the file breaks ties). Unknown persona names are an error naming the known.

    Raises:
        ControlError: no tagged log there (the message says where there are some), a bad
            file, or an unknown persona.
    """
    path = folder / FILE_NAME
    if not path.is_file():
        inside = sorted(p.parent for p in folder.glob(f"*/{FILE_NAME}")) if folder.is_dir() else []
        hint = (f"; these folders in it have one: {', '.join(map(str, inside))}" if inside else
                "; a mux run log folder ($XDG_STATE_HOME/mux/logs/<time>-<suffix>/) or a replay scenario's"
                " artifacts folder has one")
        raise ControlError(f"logs: no tagged log {path}{hint}")
    header: dict[str, Any] = {"personas": [], "colors": {}}
    lines: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, text in enumerate(stream, 1):
            try:
                record = json.loads(text)
            except ValueError:
                if text.endswith("\n"):  # a last line cut off by a crash is skipped
                    raise ControlError(f"logs: {path}:{number}: not a JSON line") from None
                continue
            if "personas" in record:
                header = record
            elif "line" in record:
                lines.append(record)
    known = list(dict.fromkeys([*header.get("personas", []), *(r["persona"] for r in lines)]))
    if unknown := [n for n in personas if n not in known]:
        raise ControlError(f"logs: no persona {', '.join(map(repr, unknown))} in {path}"
                           f" (personas: {', '.join(known) or 'none'})")
    lines.sort(key=lambda r: r["t"])
    picked = [r for r in lines if (not personas or r["persona"] in personas)
              and (since is None or r["t"] >= since)]
    return [{**header, "personas": known}, *picked]


class Printer:
    """Formats records: ``name  | line``, coloured or not, the guest's line escaped (unless
    ``raw``), or JSON lines."""

    def __init__(self, *, color: bool, json_lines: bool, timestamps: bool, only: list[str],
                 out: Any = None, raw: bool = False) -> None:
        self.color, self.json_lines, self.timestamps, self.raw = color, json_lines, timestamps, raw
        self.only = only
        self.out = out or sys.stdout
        self.width = max(map(len, only), default=0)
        self.colors: dict[str, str] = {}

    def header(self, record: dict[str, Any]) -> None:
        names = [n for n in record.get("personas", []) if not self.only or n in self.only]
        self.width = max([self.width, *map(len, names)])
        for index, name in enumerate(record.get("personas", [])):
            self.colors[name] = _sgr(record.get("colors", {}).get(name), index)

    def format(self, record: dict[str, Any]) -> str:
        if self.json_lines:
            fields = {k: record[k] for k in ("t", "persona", "line")}
            return json.dumps(fields, ensure_ascii=False).translate(_JSON_SAFE)
        name = str(record["persona"])
        self.width = max(self.width, len(name))
        tag = f"{name:<{self.width}} |"
        if self.color:
            sgr = self.colors.setdefault(name, _sgr(None, len(self.colors)))
            tag = f"\033[{sgr}m{tag}\033[0m"
        stamp = f"{utc_text(float(record['t']))} " if self.timestamps else ""
        line = str(record["line"])
        return f"{tag} {stamp}{line if self.raw else visible(line)}"

    def line(self, record: dict[str, Any]) -> None:
        print(self.format(record), file=self.out, flush=True)


def _sgr(color: object, index: int) -> str:
    """The SGR parameters of a persona's colour: its config colour as 24-bit, else the palette."""
    if isinstance(color, str):
        try:
            return "38;2;{};{};{}".format(*parse_color(color))
        except DisplayError:
            pass
    return str(PALETTE[index % len(PALETTE)])


def _since(text: str) -> float:
    """``--since`` (argparse type): seconds since the epoch."""
    try:
        return parse_since(text, time.time())
    except TimeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _color_wanted() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")

