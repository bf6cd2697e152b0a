"""``mux --version`` and the help texts: every command and option explained, in plain words.

The help is read in a terminal, so it must carry none of the reStructuredText of the
docstrings (``literal``, :func:`roles`); the parser is walked whole, as the completion
scripts and the reference documentation walk it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata

import pytest

from mux.cli import build_parser

MUX = [sys.executable, "-m", "mux"]
#: reStructuredText that must not reach the help output: ``literal``, :role:`x`, `link`_, .. directive::
RST = re.compile(r"``|:[a-z]+:`|`[^`]+`_|^\s*\.\. \w+::", re.M)


def parsers(parser: argparse.ArgumentParser, path: str = "mux"
            ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, f"{path} {name}")


ALL = list(parsers(build_parser()))


@pytest.mark.pure
def test_the_parser_has_every_command() -> None:
    names = {path for path, _ in ALL}
    for command in ("mux run", "mux images build", "mux ctl exec", "mux logs", "mux init", "mux doctor",
                    "mux schema", "mux completion", "mux replay", "mux needle edit"):
        assert command in names


@pytest.mark.pure
@pytest.mark.parametrize(("path", "parser"), ALL, ids=[path for path, _ in ALL])
def test_every_parser_has_a_description_and_every_argument_help(path: str,
                                                                 parser: argparse.ArgumentParser) -> None:
    assert parser.description and parser.description[0].isupper(), path
    for action in parser._actions:
        name = "/".join(action.option_strings) or action.metavar or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{path}: {name} has no help"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{path} {choice.dest}: no summary"


@pytest.mark.pure
@pytest.mark.parametrize(("path", "parser"), ALL, ids=[path for path, _ in ALL])
def test_help_output_has_no_rst_markup(path: str, parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert not RST.search(text), f"{path} --help:\n{text}"


@pytest.mark.pure
def test_the_rst_pattern_catches_what_it_should() -> None:
    """The check above cannot pass on a pattern that matches nothing."""
    for bad in ("The ``mux`` command line.", "see :func:`main`", "`the docs`_", ".. note::"):
        assert RST.search(bad), bad
    assert not RST.search("mux run CONFIG: run the personas (default: `mux demo`'s)")


@pytest.mark.services
def test_version_prints_the_package_version() -> None:
    result = subprocess.run([*MUX, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mux {metadata.version('mux')}"


@pytest.mark.services
def test_help_is_plain_words() -> None:
    result = subprocess.run([*MUX, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "``" not in result.stdout and "The ``mux`` command line" not in result.stdout
    assert result.stdout.startswith("usage: mux ")
    assert re.search(r"^ +doctor +check this machine", result.stdout, re.M), result.stdout
    replay = subprocess.run([*MUX, "replay", "--help"], capture_output=True, text=True, timeout=60)
    assert re.search(r"--artifacts DIR +where results\.json", replay.stdout), replay.stdout
