#!/usr/bin/env python3
"""Generate ``mux/input/keycodes.py`` from QEMU's key-code database (keycodemapdb's keymaps.csv).

Run from the repository root::

    .venv/bin/python tools/gen_keymap.py            # rewrite mux/input/keycodes.py
    .venv/bin/python tools/gen_keymap.py --check    # exit 1 if mux/input/keycodes.py is stale

The CSV has one row per (Linux key, other system's key) pairing, so a Linux code can
appear on several rows. Like QEMU's own ``keymap-gen``, the last non-empty value of a
column wins for each Linux code (so ``KEY_SYSRQ`` maps to the qcode ``sysrq``, not
``print``, exactly as QEMU's ``input-linux`` does).

Three tables come out:

``LINUX_NAMES``
    Every Linux name in the CSV, lower case. ``KEY_`` is stripped (``KEY_LEFT`` ->
    ``"left"`` = 105); ``BTN_`` names keep a ``btn_`` prefix (``BTN_LEFT`` ->
    ``"btn_left"`` = 0x110), so key names and button names never collide. Aliases
    (``BTN_MOUSE`` and ``BTN_LEFT``, ``KEY_SHIFT`` and ``KEY_LEFTSHIFT``) are all kept.
``QCODE_BY_LINUX``
    Linux code -> QMP ``QKeyCode`` name. The CSV column already holds the QAPI names
    (``caps_lock``, ``ret``, ``shift_r``), but the CSV is newer than the QEMU the
    project runs: only names in ``QEMU_QKEYCODES`` (the enum of QEMU 7.2, read with
    ``query-qmp-schema``) are used, because QMP rejects a whole ``input-send-event``
    command that names an unknown qcode.
``NUMBER_BY_LINUX``
    Linux code -> QEMU key number ("qnum") for keys that have no usable qcode but an
    AT set 1 scan code. The qnum is set 1 with the ``0xe0`` prefix folded into bit 7
    (``0xe05b`` -> ``0xdb``), and Hangeul/Hanja (``0xf1``/``0xf2``) lose bit 7: the
    same derivation as keymap-gen's ``MAP_QNUM``. This table is kept for reference
    only: QMP ``input-send-event`` turns a ``number`` key back into a qcode through
    QEMU's own qnum table before any device sees it, so a key without a qcode arrives
    as ``unmapped`` (seen on QEMU 7.2 with ``-trace input_event_key*``: numbers 0x5d,
    0x76 and 0xd9 all became ``unmapped``). ``mux.input.keymap.qmp_key`` therefore never
    sends numbers.

Raises ``SystemExit`` with a message if the CSV is missing or malformed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CSV = REPO / "tests" / "data" / "keycodemapdb" / "keymaps.csv"
DEFAULT_OUT = REPO / "mux" / "input" / "keycodes.py"
COMMAND = ".venv/bin/python tools/gen_keymap.py"

# The QKeyCode enum of QEMU 7.2 (Debian 12), from ``query-qmp-schema``.
# fmt: off
QEMU_QKEYCODES = (
    "unmapped", "shift", "shift_r", "alt", "alt_r", "ctrl", "ctrl_r", "menu", "esc", "1", "2",
    "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equal", "backspace", "tab", "q", "w", "e",
    "r", "t", "y", "u", "i", "o", "p", "bracket_left", "bracket_right", "ret", "a", "s", "d",
    "f", "g", "h", "j", "k", "l", "semicolon", "apostrophe", "grave_accent", "backslash", "z",
    "x", "c", "v", "b", "n", "m", "comma", "dot", "slash", "asterisk", "spc", "caps_lock", "f1",
    "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "num_lock", "scroll_lock",
    "kp_divide", "kp_multiply", "kp_subtract", "kp_add", "kp_enter", "kp_decimal", "sysrq",
    "kp_0", "kp_1", "kp_2", "kp_3", "kp_4", "kp_5", "kp_6", "kp_7", "kp_8", "kp_9", "less",
    "f11", "f12", "print", "home", "pgup", "pgdn", "end", "left", "up", "down", "right",
    "insert", "delete", "stop", "again", "props", "undo", "front", "copy", "open", "paste",
    "find", "cut", "lf", "help", "meta_l", "meta_r", "compose", "pause", "ro", "hiragana",
    "henkan", "yen", "muhenkan", "katakanahiragana", "kp_comma", "kp_equals", "power", "sleep",
    "wake", "audionext", "audioprev", "audiostop", "audioplay", "audiomute", "volumeup",
    "volumedown", "mediaselect", "mail", "calculator", "computer", "ac_home", "ac_back",
    "ac_forward", "ac_refresh", "ac_bookmarks", "lang1", "lang2",
)
# fmt: on

HANJA_HANGEUL = (0xF1, 0xF2)


def _int(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def qnum_from_atset1(at1: int) -> int:
    """QEMU's key number for an AT set 1 scan code.

    Raises ValueError for a code that is neither one byte nor ``0xe0``-prefixed.
    """
    if at1 in HANJA_HANGEUL:
        return at1 & 0x7F
    if at1 > 0x7F:
        if at1 & ~0x7F != 0xE000:
            raise ValueError(f"unexpected AT set 1 code {at1:#x}")
        return 0x80 | (at1 & 0x7F)
    return at1


def short_name(linux_name: str) -> str:
    """``KEY_LEFTSHIFT`` -> ``leftshift``; ``BTN_LEFT`` -> ``btn_left``.

    Raises ValueError for a name with neither prefix.
    """
    if linux_name.startswith("KEY_"):
        return linux_name[4:].lower()
    if linux_name.startswith("BTN_"):
        return linux_name.lower()
    raise ValueError(f"unexpected Linux key name {linux_name!r}")


def build_tables(
    rows: list[dict[str, str]],
) -> tuple[dict[str, int], dict[int, str], dict[int, str], dict[int, int]]:
    """Return (names, preferred name by code, qcode by code, number by code).

    Raises ValueError if two different codes claim the same short name.
    """
    names: dict[str, int] = {}
    name_by_code: dict[int, str] = {}
    qcode: dict[int, str] = {}
    at1: dict[int, int] = {}
    known = set(QEMU_QKEYCODES) - {"unmapped"}
    for row in rows:
        name = row["Linux Name"].strip()
        if not name:
            continue  # codes with no Linux name are not keys anyone can press
        code = _int(row["Linux Keycode"].strip())
        short = short_name(name)
        if names.get(short, code) != code:
            raise ValueError(f"name {short!r} used for codes {names[short]} and {code}")
        names[short] = code
        name_by_code[code] = short  # last row wins, like keymap-gen
        if (q := row["QEMU QKeyCode"].strip()) and q in known:
            qcode[code] = q
        if a := row["AT set1 keycode"].strip():
            at1[code] = _int(a)
    number = {code: qnum_from_atset1(a) for code, a in at1.items() if code not in qcode}
    return names, name_by_code, qcode, number


def render(csv_path: Path, digest: str, rows: list[dict[str, str]]) -> str:
    """The text of ``mux/input/keycodes.py``."""
    names, name_by_code, qcode, number = build_tables(rows)
    out = [
        '"""Linux key codes and their QEMU names. GENERATED: do not edit.',
        "",
        f"Regenerate with ``{COMMAND}`` from the repository root.",
        f"Source: keycodemapdb {csv_path.name} (sha256 {digest[:16]}...).",
        "See tools/gen_keymap.py for what each table holds and why.",
        '"""',
        "",
        "# fmt: off",
        "LINUX_NAMES: dict[str, int] = {",
        *(f"    {n!r}: {c}," for n, c in sorted(names.items(), key=lambda kv: (kv[1], kv[0]))),
        "}",
        "",
        "LINUX_NAME_BY_CODE: dict[int, str] = {",
        *(f"    {c}: {n!r}," for c, n in sorted(name_by_code.items())),
        "}",
        "",
        "QCODE_BY_LINUX: dict[int, str] = {",
        *(f"    {c}: {q!r},  # {name_by_code[c]}" for c, q in sorted(qcode.items())),
        "}",
        "",
        "NUMBER_BY_LINUX: dict[int, int] = {",
        *(f"    {c}: {n:#04x},  # {name_by_code[c]}" for c, n in sorted(number.items())),
        "}",
        "",
        "QEMU_QKEYCODES: frozenset[str] = frozenset({",
        *(f"    {q!r}," for q in sorted(QEMU_QKEYCODES)),
        "})",
        "# fmt: on",
        "",
    ]
    return "\n".join(out)


Render = Callable[[Path, str, list[dict[str, str]]], str]


def generate(render: Render, default_out: Path, command: str, argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) a module generated from keymaps.csv.

    Shared by the generators in this folder. Returns the exit code; raises SystemExit
    with a message when the CSV is missing or malformed.
    """
    parser = argparse.ArgumentParser(description=f"generate {default_out.name} from keymaps.csv")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--check", action="store_true", help="fail if --out is out of date")
    args = parser.parse_args(argv)
    try:
        data = args.csv.read_bytes()
    except OSError as exc:
        raise SystemExit(f"cannot read {args.csv}: {exc}") from exc
    try:
        rows = list(csv.DictReader(data.decode("utf-8").splitlines()))
        text = render(args.csv, hashlib.sha256(data).hexdigest(), rows)
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"{args.csv}: malformed key-code database: {exc}") from exc
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date; run {command}", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    return generate(render, DEFAULT_OUT, COMMAND, argv)


if __name__ == "__main__":
    raise SystemExit(main())
