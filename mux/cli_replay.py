"""``mux replay`` (scenario files against fresh personas) and ``mux needle`` (openQA
needles: capture one from a running persona, or draw and tune one in the editor)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from mux.cli_common import EXIT_FAILED, EXIT_OK, SOCKET_HELP, add_command, add_subcommands
from mux.cli_ctl import ask
from mux.config import default_control_socket


def add_replay_parser(sub: Any) -> None:
    """Add ``replay`` to the ``mux`` command's subparsers."""
    p = add_command(sub, "replay", "replay scenario files against fresh personas",
                    "Every file is loaded and checked first (its config, steps, includes and needles);"
                    " then each scenario boots its own personas, runs its steps and writes what it saw"
                    " to the artifacts folder. Exit code 1 if a scenario failed.")
    p.add_argument("scenarios", type=Path, nargs="+", metavar="FILE", help="scenario files (YAML)")
    p.add_argument("--artifacts", type=Path, default=Path("mux-artifacts"), metavar="DIR",
                   help="where results.json and each scenario's screenshots and serial logs go"
                        " (default: mux-artifacts)")
    p.add_argument("--keep-going", action="store_true", help="run the other scenarios after one failed")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report to FILE")
    p.add_argument("--snapshots", type=Path, metavar="DIR",
                   help="where snapshots are kept (default: $MUX_SNAPSHOT_DIR or ~/.cache/mux/snapshots)")
    p.add_argument("--check", action="store_true",
                   help="only load and check the files (needles, includes), boot nothing: exit 0 or 2")
    p.add_argument("-j", "--jobs", type=_jobs, metavar="N",
                   help="run N files at once, each with its own personas (default with --keep-going: what"
                        " the cores and free memory allow, printed; without it: 1)")
    p.add_argument("--shard", metavar="K/N",
                   help="run only part K of N of the files, for a CI matrix (default: GitLab's"
                        " CI_NODE_INDEX/CI_NODE_TOTAL when set); the same files always split alike")
    p.add_argument("--durations", type=Path, metavar="FILE",
                   help="a previous run's JUnit report: balance the shards by its durations (a FILE"
                        " that does not exist yet is noted, and every file weighs the same)")
    p.set_defaults(func=cmd_replay, usage_error=p.error)


def add_needle_parser(sub: Any) -> None:
    """Add ``needle`` and its actions to the ``mux`` command's subparsers."""
    p = add_command(sub, "needle", "make and edit openQA needles (reference pictures for scenarios)")
    nsub = add_subcommands(p, "ACTION", "what to do with a needle")
    n = add_command(nsub, "capture", "write NAME.json and NAME.png from the screen of a running persona",
                    "The needle's tag is its file name; it has one match area, the whole screen.")
    n.add_argument("persona", metavar="PERSONA", help="the persona whose screen to take")
    n.add_argument("name", type=Path, metavar="NAME",
                   help="the needle's path without .json (its file name is its tag)")
    n.add_argument("--socket", type=Path, default=default_control_socket(), metavar="PATH",
                   help=SOCKET_HELP)
    n.set_defaults(func=cmd_needle_capture)
    n = add_command(nsub, "edit", "draw and tune a needle's areas in a window (a new needle with --persona)")
    n.add_argument("name", type=Path, metavar="NAME.json",
                   help="the needle (NAME.png beside it); its file name is a new needle's tag")
    n.add_argument("--persona", help="match live against this persona of a running mux (and take a new"
                   " needle's picture from its screen)")
    n.add_argument("--socket", type=Path, default=default_control_socket(), metavar="PATH",
                   help=SOCKET_HELP)
    n.add_argument("--screenshot", type=Path, metavar="FILE", help="where F12 saves a picture of the window")
    n.set_defaults(func=cmd_needle_edit)


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def cmd_replay(args: argparse.Namespace) -> int:
    """Check every file, pick this shard's, run them (N at once), write results.json (and JUnit)."""
    import os

    from mux.scenario import parallel, shard, snapshot
    from mux.scenario.report import write_junit, write_results
    from mux.scenario.runner import load_all

    store = args.snapshots or snapshot.default_dir()
    try:
        part = shard.parse_shard(args.shard) if args.shard else shard.shard_from_env(os.environ)
    except ValueError as exc:
        args.usage_error(str(exc))
    if args.durations and not part:
        args.usage_error("--durations balances shards: give --shard K/N too")
    scenarios = load_all(args.scenarios, store)
    for scenario in scenarios:
        for location, warning in scenario.warnings:
            print(f"mux: warning: {location}: {warning}", file=sys.stderr)
    if part:
        durations = {}
        if args.durations and not args.durations.exists():  # a CI's first run: no report yet
            print(f"mux replay: --durations {args.durations}: no such file yet; every file weighs the same",
                  file=sys.stderr)
        elif args.durations:
            durations = shard.read_durations(args.durations)
        picked, mine, total = shard.select(scenarios, part, durations)
        weight = f", {mine:.0f} s of {total:.0f} s by {args.durations}" if durations else ""
        print(f"mux replay: shard {part[0]}/{part[1]} runs {len(picked)} of {len(scenarios)} file(s)"
              f"{weight}: {' '.join(str(scenarios[i].file) for i in picked) or '(none)'}")
        scenarios = [scenarios[i] for i in picked]
    if args.check:
        print(f"mux replay: {len(scenarios)} file(s) checked, "
              f"{sum(len(s.warnings) for s in scenarios)} warning(s)")
        return 0
    if args.jobs:
        jobs = args.jobs
    else:
        jobs, why = parallel.default_jobs(scenarios, args.keep_going)
        if len(scenarios) > 1:
            print(f"mux replay: {why}")
    with parallel.artifacts_lock(args.artifacts):
        results = asyncio.run(parallel.replay(scenarios, args.artifacts, store, jobs=jobs,
                                              keep_going=args.keep_going))
        failed = sum(not r.passed and not r.not_run for r in results)
        skipped = sum(r.not_run for r in results)
        code = EXIT_FAILED if failed else EXIT_OK
        print(f"mux replay: results in {write_results(results, args.artifacts, code)}")
    if args.junit:
        print(f"mux replay: JUnit report in {write_junit(results, args.junit)}")
    print(f"mux replay: {len(results) - failed - skipped} passed, {failed} failed"
          + (f", {skipped} skipped" if skipped else ""))
    return code


def cmd_needle_capture(args: argparse.Namespace) -> int:
    """Save the persona's screen as NAME.png and a needle skeleton NAME.json beside it."""
    from PIL import Image

    stem = args.name.with_suffix("") if args.name.suffix in (".json", ".png") else args.name
    png, json_path = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".json")
    png.parent.mkdir(parents=True, exist_ok=True)
    ask(args, {"cmd": "screenshot", "persona": args.persona, "file": str(png.resolve())})
    with Image.open(png) as image:
        width, height = image.size
    needle = {"tags": [stem.name], "properties": [],
              "area": [{"xpos": 0, "ypos": 0, "width": width, "height": height, "type": "match"}]}
    json_path.write_text(json.dumps(needle, indent=3) + "\n", encoding="utf-8")
    print(json_path)
    return 0


def cmd_needle_edit(args: argparse.Namespace) -> int:
    """The needle editor: see :mod:`mux.frontends.needle_editor.app`."""
    from mux.frontends.needle_editor.app import edit

    return edit(args.name, args.persona, args.socket, args.screenshot)
