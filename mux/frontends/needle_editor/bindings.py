"""The editor's keys and toolbar buttons, pure: each is a command on the model.

Theory. A key is its name (SDL's, lower case: ``tab``, ``return``, ``left``, ``e``), the
modifiers held (``ctrl``, ``shift``, ``alt``) and the text it types. While an entry is
open (a match level, a margin, the tags being typed) keys edit the entry; otherwise
:func:`key` turns each into a :data:`COMMANDS` name and :func:`run` carries it out on
the model. A toolbar button is a command too, so everything has a key and a button,
except typing tags (keys only) and drawing with the mouse (N and the arrows do it).
Commands that need the world (save, quit, retake, the live view) come back as an
:class:`Effect` for the window to carry out. No pygame: the tests press keys as lists.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from mux.frontends.needle_editor.model import EditorModel


class Effect(Enum):
    SAVE = "save"
    QUIT = "quit"
    RETAKE = "retake"  # the persona's screen becomes the needle's picture
    VIEW = "view"  # show the live screen instead of the needle's picture, or back
    SCREENSHOT = "screenshot"


BIG_STEP = 10  # Ctrl with the arrows
ARROWS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

#: Every command: what it does to the model, or the effect the window carries out.
COMMANDS: dict[str, Callable[[EditorModel], Effect | None]] = {
    "new": lambda m: m.new_area(),
    "next": lambda m: m.select_next(1),
    "previous": lambda m: m.select_next(-1),
    "delete": lambda m: m.delete(),
    "type": lambda m: m.cycle_type(),
    "match": lambda m: m.set_type("match"),
    "exclude": lambda m: m.set_type("exclude"),
    "ocr": lambda m: m.set_type("ocr"),
    "match-": lambda m: m.step_match(-1),
    "match+": lambda m: m.step_match(1),
    "margin-": lambda m: m.step_margin(-10),
    "margin+": lambda m: m.step_margin(10),
    "click": lambda m: m.toggle_click(),
    "undo": lambda m: m.undo(),
    "redo": lambda m: m.redo(),
    "margin": lambda m: m.begin_entry("margin", f"{m.current.margin}" if m.current else ""),
    "tags": lambda m: m.begin_entry("tags", " ".join(m.tags)),
    "help": lambda m: setattr(m, "show_help", not m.show_help),
    "save": lambda m: Effect.SAVE,
    "quit": lambda m: Effect.QUIT,
    "retake": lambda m: Effect.RETAKE,
    "view": lambda m: Effect.VIEW,
    "screenshot": lambda m: Effect.SCREENSHOT,
}

#: Plain keys (no Ctrl or Alt) and their commands.
KEYS = {"tab": "next", "return": "new", "enter": "new", "n": "new", "delete": "delete",
        "backspace": "delete", "m": "match", "e": "exclude", "o": "ocr", "y": "type", "-": "match-",
        "=": "match+", "+": "match+", "[": "margin-", "]": "margin+", "g": "margin", "t": "tags",
        "c": "click", "v": "view", "r": "retake", "escape": "quit", "q": "quit", "f1": "help",
        "h": "help", "f12": "screenshot"}
CTRL_KEYS = {"s": "save", "z": "undo", "y": "redo"}

#: The toolbar, left to right: (label, command); a label may name the selected area's value.
BUTTONS: list[tuple[str, str]] = [
    ("New", "new"), ("<", "previous"), (">", "next"), ("Type: {type}", "type"),
    ("-", "match-"), ("match {match}", ""), ("+", "match+"), ("-", "margin-"),
    ("margin {margin}", ""), ("+", "margin+"), ("Click point", "click"), ("Delete", "delete"),
    ("Undo", "undo"), ("Redo", "redo"), ("Live/needle", "view"), ("Retake", "retake"),
    ("Help", "help"), ("Save", "save"), ("Quit", "quit"),
]

#: Always shown under the toolbar.
HELP_LINES = [
    "Drag: draw an area | click, Tab: select | N, Enter: new area | arrows: move, Shift+arrows: resize,"
    " Ctrl: x10",
    "M E O: match/exclude/ocr | 90 Enter: match level | G: margin | C: click point | T: tags |"
    " Del | Ctrl+Z/Y | Ctrl+S: save | Esc, Q: quit | F1: all keys",
]

HELP = [
    "Mouse: drag on the picture to draw a match area; drag inside the selected area to move it,",
    "  from its corner to resize it; click an area to select it (again: the next one under it);",
    "  right-click inside the selected area puts its click point there; the toolbar does the rest.",
    "Keys: Tab / Shift+Tab select the next / previous area; N or Enter makes a new area.",
    "  Arrows move the selected area 1 px, Shift+arrows resize it, with Ctrl 10 px at a time;",
    "  Alt+arrows move its click point, C puts it in the middle or takes it away.",
    "  M, E, O make it a match, exclude or ocr area (Y: the next type).",
    "  Type a number and Enter for its match level (Esc: never mind); - and + step it by 1.",
    "  G types its margin (Enter), [ and ] step it by 10; T types the tags (spaces between).",
    "  Delete or Backspace deletes it; Ctrl+Z undoes, Ctrl+Y redoes; Ctrl+S saves.",
    "  V shows the persona's live screen or the needle's picture; R retakes the picture.",
    "  F12 saves a picture of this window; Esc or Q quits (unsaved changes are not written).",
    "F1, H or the Help button hides this.",
]


def key(model: EditorModel, name: str, mods: frozenset[str] = frozenset(), text: str = "") -> Effect | None:
    """One key pressed: ``name`` as SDL names it (lower case), ``mods`` among ctrl, shift,
    alt, ``text`` what it types. Returns what the window must do, if anything."""
    if model.entry is not None:
        if name in ("return", "enter"):
            model.commit_entry()
        elif name == "escape":
            model.cancel_entry()
        elif name == "backspace":
            model.backspace()
        elif text and text.isprintable() and not mods & {"ctrl", "alt"}:
            model.type_text(text)
        return None
    step = BIG_STEP if "ctrl" in mods else 1
    if name in ARROWS:
        dx, dy = ARROWS[name]
        if "alt" in mods:
            model.move_click(dx * step, dy * step)
        elif "shift" in mods:
            model.resize(dx * step, dy * step)
        else:
            model.move(dx * step, dy * step)
        return None
    if "ctrl" in mods:
        command = CTRL_KEYS.get(name)
        if name == "z" and "shift" in mods:
            command = "redo"
        return run(model, command) if command else None
    if "alt" in mods:
        return None
    if name == "tab" and "shift" in mods:
        return run(model, "previous")
    if len(text) == 1 and (text.isdigit() or text == "."):
        model.begin_entry("match", text)  # typing a number sets the match level
        return None
    command = KEYS.get(name) or KEYS.get(text)
    return run(model, command) if command else None


def run(model: EditorModel, command: str) -> Effect | None:
    """Carry out one command (a key's or a button's); unknown names do nothing."""
    action = COMMANDS.get(command)
    return action(model) if action else None


def label(model: EditorModel, text: str) -> str:
    """A button's label with the selected area's values filled in (``-`` when none)."""
    area = model.current
    return text.format(type=area.type if area else "-", match=f"{area.match:g}" if area else "-",
                       margin=area.margin if area else "-")
