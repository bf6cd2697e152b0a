"""``mux completion bash|zsh|fish``: scripts generated from mux's own parser, run in the real shells.

bash runs the completion function as readline would call it (``COMP_WORDS`` and
``COMP_CWORD`` set, ``COMPREPLY`` read back). zsh runs the same walk with its completion
builtins (``compadd``, ``_describe``, ``_files``) replaced by functions that print what
they were given, since they work only inside zle; fish answers ``complete -C``. A shell
that is not installed is skipped with the reason.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mux.cli import build_parser
from mux.cli_completion import script, tree

MUX = [sys.executable, "-m", "mux"]


def completion(shell: str, tmp_path: Path) -> Path:
    result = subprocess.run([*MUX, "completion", shell], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"mux.{shell}"
    path.write_text(result.stdout)
    return path


def need(shell: str) -> str:
    found = shutil.which(shell)
    if found is None:
        pytest.skip(f"{shell} is not installed (apt-get install {shell})")
    return found


def bash_complete(script_path: Path, *words: str) -> list[str]:
    """COMPREPLY for the command line ``words`` (the last one is under the cursor)."""
    program = (f"source {shlex.quote(str(script_path))}\n"
               f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
               "_mux\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True,
                            text=True, timeout=60, cwd=script_path.parent)
    assert result.returncode == 0 and not result.stderr, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.services
def test_bash_completes_commands_options_and_values(tmp_path: Path) -> None:
    need("bash")
    path = completion("bash", tmp_path)
    (tmp_path / "scenario.yaml").write_text("")
    assert bash_complete(path, "mux", "re") == ["replay"]
    assert bash_complete(path, "mux", "images", "b") == ["build"]
    images = ["console", "debian", "desktop", "palette"]
    assert bash_complete(path, "mux", "-v", "images", "build", "") == images
    assert bash_complete(path, "mux", "completion", "") == ["bash", "zsh", "fish"]
    assert bash_complete(path, "mux", "run", "--d") == ["--dry-run"]
    assert bash_complete(path, "mux", "init", "--") == ["--help", "--desktop", "--ci", "--panel"]
    # an option's value: a file for --artifacts, then the positionals are files too
    assert bash_complete(path, "mux", "replay", "--artifacts", "sce") == ["scenario.yaml"]
    assert bash_complete(path, "mux", "replay", "a.yaml", "sce") == ["scenario.yaml"]
    # the value of --socket is skipped when finding the request
    assert bash_complete(path, "mux", "ctl", "--socket", "/tmp/x", "sw") == ["switch"]
    assert bash_complete(path, "mux", "ctl", "switch", "") == []  # a persona's name: nothing to offer


@pytest.mark.services
def test_bash_script_has_every_command_of_the_parser(tmp_path: Path) -> None:
    """Generated, not written by hand: each command path of the parser is in the script."""
    need("bash")
    text = completion("bash", tmp_path).read_text()
    for command in tree(build_parser()).walk():
        assert f'"{command.key}|options")' in text, command.key
    assert bash_complete(completion("bash", tmp_path), "mux", "ctl", "") == list(
        tree(build_parser()).commands["ctl"].commands)


@pytest.mark.services
def test_zsh_script_parses_and_walks(tmp_path: Path) -> None:
    zsh = need("zsh")
    path = completion("zsh", tmp_path)
    parsed = subprocess.run([zsh, "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    program = f"""
compdef() {{ :; }}
compadd() {{ [[ $1 == -- ]] && shift; print -r -- "compadd: $*"; }}
_describe() {{ print -r -- "describe: ${{(P)4}}"; }}
_files() {{ print -r -- "files"; }}
source {shlex.quote(str(path))}
words=(mux re); CURRENT=2; _mux
words=(mux images build ""); CURRENT=4; _mux
words=(mux -v run --d); CURRENT=4; _mux
words=(mux replay --artifacts ""); CURRENT=4; _mux
"""
    result = subprocess.run([zsh, "-f", "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("describe: run:run the personas of a config") and "replay:replay" in lines[0]
    assert lines[1:] == ["compadd: console debian desktop palette",
                         "compadd: -h --help --dry-run --for --restart-changed", "files"]


@pytest.mark.services
def test_fish_script_parses_and_completes(tmp_path: Path) -> None:
    fish = need("fish")
    path = completion("fish", tmp_path)
    parsed = subprocess.run([fish, "--no-execute", str(path)], capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    program = (f"source {shlex.quote(str(path))}; complete -C 'mux re'; echo ---;"
               " complete -C 'mux ctl --socket /tmp/x sw'; echo ---; complete -C 'mux run --dr'")
    result = subprocess.run([fish, "--no-config", "-c", program], capture_output=True, text=True,
                            timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    replay, switch, dry_run = result.stdout.split("---\n")
    assert replay == "replay\treplay scenario files against fresh personas\n"
    assert switch.startswith("switch\tmake a persona the active one")
    assert dry_run.startswith("--dry-run\tonly check the config")


@pytest.mark.pure
def test_words_that_would_break_a_script_are_refused() -> None:
    parser = argparse.ArgumentParser(prog="mux")
    parser.add_argument("--mode", choices=["a b"], help="a choice with a space")
    with pytest.raises(ValueError, match="'a b' cannot go into a completion script"):
        script(parser, "bash")
