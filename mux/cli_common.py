"""What every part of the ``mux`` command line shares: exit codes and how a command is added.

Each command is added with :func:`add_command`, which gives it both a one-line summary
(shown in its parent's list of commands) and a description (shown by ``mux COMMAND
--help``), in plain words: the help output is read in a terminal, so it carries no
reStructuredText markup. The whole parser is built by :func:`mux.cli.build_parser`;
the completion scripts (:mod:`mux.cli_completion`) and the reference documentation
are generated from it.
"""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # a scenario failed, or a command could not be carried out
EXIT_USAGE = 2  # a bad file or bad usage (argparse's own convention)

#: The help of every ``--socket`` option (its default depends on the user: not shown as is).
SOCKET_HELP = ("the running controller's control socket (default: $XDG_RUNTIME_DIR/mux-UID/control.sock,"
               " where a config without control_socket puts it)")


def add_command(sub: Any, name: str, summary: str, more: str = "",
                **kwargs: Any) -> argparse.ArgumentParser:
    """Add command ``name`` to the subparsers ``sub``: ``summary`` is its line in the
    parent's list (lower case, no full stop); its description is the summary as a
    sentence, then ``more``."""
    description = summary[:1].upper() + summary[1:] + "." + (f" {more}" if more else "")
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description,
                                                     **kwargs)
    return parser


def add_subcommands(parser: argparse.ArgumentParser, metavar: str, what: str) -> Any:
    """The (required) subparsers of ``parser``, listed under ``metavar`` with ``what`` as help."""
    return parser.add_subparsers(required=True, metavar=metavar, title="commands" if metavar == "COMMAND"
                                 else f"{metavar.lower()}s", help=what)
