"""The ``mux`` command line, read from its parser (:func:`mux.cli.build_parser`).

Every command and sub-command gets a section: its summary and description, a usage
line and a table of its arguments with their help, choices and defaults. The usage
line is built here from the parser's actions rather than by argparse's formatter,
whose output depends on the terminal's width and changes between Python versions;
the page must be the same wherever it is generated. Defaults that depend on the user
(the control socket under ``$XDG_RUNTIME_DIR``) are shown as the help says them.
"""

from __future__ import annotations

import argparse
from typing import Any

from mux.reference.common import code, header, table


def parser() -> argparse.ArgumentParser:
    """The whole ``mux`` parser."""
    from mux import cli

    build = getattr(cli, "build_parser", None) or getattr(cli, "_parser")  # noqa: B009 - older trees
    built: argparse.ArgumentParser = build()
    return built


def _subcommands(p: argparse.ArgumentParser) -> tuple[argparse.Action | None, list[tuple[str, str, Any]]]:
    """The subparsers action of ``p`` and its (name, summary, parser) list."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return action, [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return None, []


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar) if not isinstance(action.metavar, tuple) else " ".join(action.metavar)
    if action.choices is not None and not action.option_strings:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _form(action: argparse.Action, flag: str) -> str:
    """How ``action`` is written: ``--for SECONDS``, ``NAME``, ``[NAME ...]``."""
    if action.nargs == 0:
        return flag
    name = _metavar(action)
    shapes: dict[object, str] = {None: name, "?": f"[{name}]", "*": f"[{name} ...]",
                                 "+": f"{name} [{name} ...]", argparse.REMAINDER: "..."}
    shape = shapes.get(action.nargs, name)
    return f"{flag} {shape}" if flag else shape


def _shown(action: argparse.Action) -> bool:
    return not isinstance(action, argparse._HelpAction | argparse._SubParsersAction) \
        and action.help != argparse.SUPPRESS


def usage(prog: str, p: argparse.ArgumentParser) -> str:
    """A usage line: options (exclusive ones as ``[a | b]``), then positionals."""
    groups = {id(a): g for g in p._mutually_exclusive_groups for a in g._group_actions}
    parts: list[str] = []
    done: set[int] = set()
    for action in p._actions:
        if not _shown(action) or not action.option_strings or id(action) in done:
            continue
        group = groups.get(id(action))
        members = [a for a in group._group_actions if _shown(a)] if group else [action]
        done |= {id(a) for a in members}
        parts.append("[" + " | ".join(_form(a, a.option_strings[0]) for a in members) + "]")
    parts += [_form(a, "") for a in p._actions if _shown(a) and not a.option_strings]
    sub, _ = _subcommands(p)
    if sub is not None:
        parts.append(_metavar(sub) + " ...")
    return " ".join([prog, *parts])


def _default(action: argparse.Action) -> str:
    from mux.config import default_control_socket

    value = action.default
    if action.nargs == 0 or value is None or value is argparse.SUPPRESS \
            or (not action.option_strings and value == []):
        return ""
    if str(value) == str(default_control_socket()):
        return "`$XDG_RUNTIME_DIR/mux-UID/control.sock`"
    return code(value)


def _rows(p: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    rows = []
    for action in p._actions:
        if not _shown(action):
            continue
        names = ", ".join(_form(action, flag) for flag in action.option_strings) if action.option_strings \
            else _form(action, "")
        help_ = action.help or ""
        if action.choices is not None and action.metavar is not None:
            help_ += (" " if help_ else "") + "(one of " + ", ".join(code(c) for c in action.choices) + ")"
        rows.append((code(names), help_, _default(action)))
    return rows


def _sections(prog: str, p: argparse.ArgumentParser, summary: str, level: int) -> list[str]:
    out = [f"{'#' * level} `{prog}`\n\n"]
    description = p.description or summary
    if description:
        out.append(f"{' '.join(description.split())}\n\n")
    if p.epilog:
        out.append(f"{' '.join(p.epilog.split())}\n\n")
    out.append(f"```\n{usage(prog, p)}\n```\n\n")
    rows = _rows(p)
    if rows:
        out.append(table(("argument", "meaning", "default"), rows) + "\n")
    _, subs = _subcommands(p)
    if subs:
        out.append(table(("command", "what it does"), [(code(f"{prog} {n}"), s) for n, s, _ in subs]) + "\n")
    for name, sub_summary, sub in subs:
        out += _sections(f"{prog} {name}", sub, sub_summary, min(level + 1, 4))
    return out


INTRO = """\
Every command of `mux`, from its own parser: `mux COMMAND --help` says the same in a
terminal. The [Running personas](../guides/running.md) guide tells what the commands
that run personas do, the [Scenarios](../guides/scenarios.md) guide `mux replay`.
"""


def cli_page() -> str:
    """``docs/reference/cli.md``: every command, its usage, arguments and defaults."""
    p = parser()
    out = [header("Command line", "mux/cli.py (build_parser)", INTRO)]
    out += _sections("mux", p, "", 2)
    return "".join(out).rstrip("\n") + "\n"
