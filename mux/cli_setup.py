"""Getting started with mux: ``mux init`` (a starter config), ``mux doctor`` (what this
machine has and lacks), ``mux schema`` (the files' JSON Schemas) and ``mux completion``
(shell completion scripts).

The starter configs are package data (``mux/data/init-*.toml``), commented for a reader
and using only keys of the config schema; the tests hold each to ``mux run --dry-run``.
The doctor's checks are in :mod:`mux.doctor`; the completion scripts are generated
from the parser itself by :mod:`mux.cli_completion`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from mux.cli_common import EXIT_FAILED, EXIT_OK, add_command
from mux.cli_completion import add_completion_parser

#: ``mux init``'s variants: option -> (starter file, what it is for).
STARTERS = {
    "console": ("init-console.toml", "two console personas, work and home, headless (the default)"),
    "desktop": ("init-desktop.toml", "work and home personas shown in a window, with the input keys"
                " explained"),
    "ci": ("init-ci.toml", "personas for replaying scenarios in CI, nothing kept after the job"),
    "panel": ("init-panel.toml", "personas with an [mqtt] section, for Home Assistant or another panel"),
}
SCHEMA_KINDS = ("config", "scenario")


def add_setup_parsers(sub: Any, whole: Callable[[], argparse.ArgumentParser]) -> None:
    """Add ``init``, ``doctor``, ``schema`` and ``completion`` to the ``mux`` command's
    subparsers; ``whole`` builds the whole parser (for the completion scripts)."""
    p = add_command(sub, "init", "write a commented starter config",
                    "Without a variant option: the plain two-persona console config that mux demo"
                    " runs. Check the result with mux run FILE --dry-run.")
    variant = p.add_mutually_exclusive_group()
    for name in ("desktop", "ci", "panel"):
        variant.add_argument(f"--{name}", dest="variant", action="store_const", const=name,
                             help=STARTERS[name][1])
    p.add_argument("file", type=Path, nargs="?", metavar="FILE",
                   help="where to write it (default: print it); an existing file is never overwritten")
    p.set_defaults(func=cmd_init, variant="console")

    p = add_command(sub, "doctor", "check this machine for everything mux can use",
                    "Each piece is listed as ok, missing (the config needs it: exit code 1) or optional"
                    " (the config does not need it); for each one not here, what that costs and the"
                    " command that installs it. Exit code 0 when everything the config needs is here.")
    p.add_argument("config", type=Path, nargs="?", metavar="CONFIG",
                   help="the config whose needs count (default: the built-in demo config of mux demo)")
    p.set_defaults(func=cmd_doctor)

    p = add_command(sub, "schema", "print the JSON Schema of a config or scenario file",
                    "For editors and CI linters (check-jsonschema, the YAML language server).")
    p.add_argument("kind", choices=SCHEMA_KINDS, metavar="KIND",
                   help="config (the TOML config of mux run) or scenario (the YAML files of mux replay)")
    p.set_defaults(func=cmd_schema)

    add_completion_parser(sub, whole)


def starter(variant: str) -> str:
    """The text of a starter config (``console``, ``desktop``, ``ci`` or ``panel``)."""
    return resources.files("mux").joinpath("data", STARTERS[variant][0]).read_text(encoding="utf-8")


def cmd_init(args: argparse.Namespace) -> int:
    text = starter(args.variant)
    if args.file is None:
        print(text, end="")
        return EXIT_OK
    try:
        with open(args.file, "x", encoding="utf-8") as out:  # "x": never over an existing file
            out.write(text)
    except FileExistsError:
        print(f"mux init: {args.file} already exists; it was left as it is (remove it, or name"
              " another file)", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"mux init: cannot write {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(f"mux init: wrote {args.file}; check it with: mux run {args.file} --dry-run", file=sys.stderr)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from mux import doctor
    from mux.config import demo_config

    if args.config is None:
        config, what = demo_config(), "the built-in demo config (mux demo)"
    else:
        config, what = doctor.load_for_doctor(args.config), str(args.config)
    text, code = doctor.report(doctor.examine(config), what)
    print(text, end="")
    return code


def cmd_schema(args: argparse.Namespace) -> int:
    from mux.reference.jsonschema import json_schema

    print(json.dumps(json_schema(args.kind), indent=2))
    return EXIT_OK
