"""Guest text made safe to show: control characters made visible, as journalctl does.

Theory. A persona is untrusted, and what it prints on its serial port or a command's
output is its own text: it can hold terminal escape sequences that set the window
title, write the clipboard (OSC 52) or move the cursor to rewrite lines already shown,
so a log lies. Every line of guest text mux prints to a terminal or writes to a log
meant for people goes through :func:`visible` (one line) or :func:`visible_lines`
(several, newlines kept): each C0 control except TAB, DEL, and each C1 control (U+0080
to U+009F) becomes ``\\xNN``, its code in hex, so ESC is ``\\x1b``. A carriage return
that ends a line is dropped (a tty ends lines in ``\\r\\n``); one inside a line is shown,
so it cannot send the cursor back over the line. A backslash stays as it is, so the
escaping is one-way, for display: ``\\x1b`` in the output may have been an escape or
those four characters. Data keeps the raw text (the ``*.serial.log`` files,
``serial.jsonl``, JSON output); pure, no I/O.
"""

from __future__ import annotations

CONTROLS = frozenset([*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]) - {0x09}  # TAB is kept
_TABLE = {code: f"\\x{code:02x}" for code in CONTROLS}


def visible(line: str) -> str:
    """One line of guest text with its control characters shown as ``\\xNN`` (a newline in it
    too); a carriage return at its end dropped."""
    return line.rstrip("\r").translate(_TABLE)


def visible_lines(text: str) -> str:
    """Guest text of several lines: each line as :func:`visible` shows it, the newlines kept."""
    return "\n".join(visible(line) for line in text.split("\n"))
