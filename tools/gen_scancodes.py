#!/usr/bin/env python3
"""Generate ``mux/input/scancodes.py`` (SDL scancode -> Linux key code) from keycodemapdb's keymaps.csv.

Run from the repository root::

    .venv/bin/python tools/gen_scancodes.py            # rewrite mux/input/scancodes.py
    .venv/bin/python tools/gen_scancodes.py --check    # exit 1 if mux/input/scancodes.py is stale

SDL2's scancodes 4..231 are, by definition, the USB HID keyboard usage IDs (page 0x07;
see SDL_scancode.h: "The values in this enumeration are based on the USB usage page
standard"). Above 231 SDL numbers its own keys (media keys from 258 on), which are not
USB usages, so only 4..231 are taken from the CSV's ``USB Keycodes`` column. Where
several Linux names share a usage (``KEY_SHIFT`` and ``KEY_LEFTSHIFT``) they share the
code too, so the table is unambiguous.

Raises ``SystemExit`` with a message if the CSV is missing or malformed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gen_keymap import generate  # this folder is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "mux" / "input" / "scancodes.py"
COMMAND = ".venv/bin/python tools/gen_scancodes.py"
SDL_USB_RANGE = range(4, 232)


def build_table(rows: list[dict[str, str]]) -> dict[int, tuple[int, str]]:
    """USB usage (= SDL scancode) -> (Linux code, Linux name).

    Raises ValueError if one usage maps to two different Linux codes.
    """
    table: dict[int, tuple[int, str]] = {}
    for row in rows:
        usb, code, name = row["USB Keycodes"].strip(), row["Linux Keycode"].strip(), row["Linux Name"].strip()
        if not (usb and code and name):
            continue
        usage = int(usb, 0)
        if usage not in SDL_USB_RANGE:
            continue
        linux = int(code, 0)
        if usage in table and table[usage][0] != linux:
            raise ValueError(f"USB usage {usage:#x} maps to Linux codes {table[usage][0]} and {linux}")
        table[usage] = (linux, name)  # last row wins, like keymap-gen
    return table


def render(csv_path: Path, digest: str, rows: list[dict[str, str]]) -> str:
    """The text of ``mux/input/scancodes.py``."""
    table = build_table(rows)
    return "\n".join([
        '"""SDL scancodes (USB HID keyboard usages 4..231) to Linux key codes. GENERATED: do not edit.',
        "",
        f"Regenerate with ``{COMMAND}`` from the repository root.",
        f"Source: keycodemapdb {csv_path.name} (sha256 {digest[:16]}...).",
        "See tools/gen_scancodes.py for why only 4..231 are mapped.",
        '"""',
        "",
        "# fmt: off",
        "LINUX_BY_SDL_SCANCODE: dict[int, int] = {",
        *(f"    {usage}: {linux},  # {name}" for usage, (linux, name) in sorted(table.items())),
        "}",
        "# fmt: on",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    return generate(render, DEFAULT_OUT, COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
