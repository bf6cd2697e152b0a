"""The CI templates in docs/ci: valid against GitHub's and GitLab's published schemas
(the copies check-jsonschema ships, so offline), and every ``mux ...`` command in them
parses with mux's own argument parser, so renaming a flag breaks this test. Both spread
the scenarios over 3 jobs (a GitHub matrix, GitLab ``parallel:``) that together are
every shard of ``mux replay --shard K/N`` once."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mux.cli import _parser

DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "ci"
GITHUB = DOCS / "github-actions.yml"
GITLAB = DOCS / "gitlab-ci.yml"
SCHEMAS = {GITHUB: "vendor.github-workflows", GITLAB: "vendor.gitlab-ci"}
CHECK = Path(sys.executable).parent / "check-jsonschema"
# Any network access fails fast: the schemas must come from inside the package.
OFFLINE = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "NO_PROXY": ""}


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    assert CHECK.is_file(), f"{CHECK} is missing: pip install check-jsonschema (in the test extras)"
    return subprocess.run([str(CHECK), "--builtin-schema", schema, str(path)], capture_output=True,
                          text=True, timeout=60, env=OFFLINE)


@pytest.mark.services
@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_template_is_valid_against_its_published_schema(path: Path) -> None:
    result = check_jsonschema(SCHEMAS[path], path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("path", "old", "new", "error"), [
    (GITHUB, "    runs-on: ubuntu-24.04\n", "", "'runs-on' is a required property"),
    (GITLAB, "\n  script:\n", "\n  scritp:\n", "'scritp' was unexpected"),
], ids=["github-without-runs-on", "gitlab-misspelled-script"])
@pytest.mark.services
def test_schema_check_rejects_a_broken_copy(path: Path, old: str, new: str, error: str,
                                            tmp_path: Path) -> None:
    text = path.read_text()
    assert text.count(old) == 1
    broken = tmp_path / path.name
    broken.write_text(text.replace(old, new))
    result = check_jsonschema(SCHEMAS[path], broken)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Schema validation errors were encountered" in output and error in output, output


# --- the mux commands ------------------------------------------------------------------

SHELL_KEYS = {"run", "script", "before_script", "after_script"}  # GitHub steps; GitLab jobs
# `mux` where a command starts: a line's start, after `$(`, `;`, `&&`, `||` or `|`.
MUX_COMMAND = re.compile(r"(?:^|\$\(|;|&&|\|\||\|)\s*(mux\s[^;&|)#\n]*)")


def shell_texts(node: Any, key: object = None) -> Iterator[str]:
    """The shell scripts of a workflow or pipeline document: the strings under SHELL_KEYS."""
    if isinstance(node, dict):
        for k, value in node.items():
            yield from shell_texts(value, k)
    elif isinstance(node, list):
        for item in node:
            yield from shell_texts(item, key)
    elif isinstance(node, str) and key in SHELL_KEYS:
        yield node


def mux_commands(path: Path) -> list[list[str]]:
    commands = []
    for text in shell_texts(yaml.safe_load(path.read_text())):
        for line in text.replace("\\\n", " ").splitlines():
            if line.lstrip().startswith("#"):
                continue
            commands += [shlex.split(m)[1:] for m in MUX_COMMAND.findall(line)]
    return commands


COMMANDS = [(path, argv) for path in (GITHUB, GITLAB) for argv in mux_commands(path)]


@pytest.mark.pure
def test_the_templates_run_the_expected_mux_commands() -> None:
    """The extraction finds the commands, so the test below cannot pass on nothing."""
    for path in (GITHUB, GITLAB):
        found = {" ".join(argv[:2]) for p, argv in COMMANDS if p == path}
        assert {"images key", "images build", "replay --check"} <= found, (path.name, found)
    replay = {p: [argv for p2, argv in COMMANDS if p2 == p and argv[0] == "replay" and "--junit" in argv]
              for p in (GITHUB, GITLAB)}
    tail = ["--junit", "mux-artifacts/junit.xml", "--artifacts", "mux-artifacts"]
    assert replay[GITHUB] == [["replay", "scenarios/*.yaml", "--keep-going", "--shard",
                               "${{ matrix.shard }}/3", "--durations", "scenarios/durations.xml", *tail]]
    # GitLab: no --shard; mux reads CI_NODE_INDEX/CI_NODE_TOTAL, which `parallel:` sets
    assert replay[GITLAB] == [["replay", "scenarios/*.yaml", "--keep-going", "--durations",
                               "scenarios/durations.xml", *tail]]


@pytest.mark.pure
def test_the_jobs_together_are_every_shard_once() -> None:
    """The GitHub matrix's values, put in ``--shard``, are shards 1..N of the N the command
    names; GitLab's ``parallel: N`` makes CI_NODE_INDEX 1..N of CI_NODE_TOTAL N."""
    from mux.scenario.shard import parse_shard, shard_from_env

    github = yaml.safe_load(GITHUB.read_text())["jobs"]["replay"]
    values = github["strategy"]["matrix"]["shard"]
    assert github["strategy"]["fail-fast"] is False  # one failing shard does not cancel the others
    spec = next(argv[argv.index("--shard") + 1] for p, argv in COMMANDS if p == GITHUB and "--shard" in argv)
    shards = [parse_shard(spec.replace("${{ matrix.shard }}", str(v))) for v in values]
    total = shards[0][1]
    assert sorted(shards) == [(k, total) for k in range(1, total + 1)] and total > 1
    parallel = yaml.safe_load(GITLAB.read_text())["mux-replay"]["parallel"]
    assert [shard_from_env({"CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": str(parallel)})
            for k in range(1, parallel + 1)] == [(k, parallel) for k in range(1, parallel + 1)]
    assert parallel > 1
    # each job keeps its own artifacts: GitHub names them per shard (GitLab does per job itself)
    upload = next(s for s in github["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "${{ matrix.shard }}" in upload["with"]["name"]


def exact_parser() -> argparse.ArgumentParser:
    """mux's parser, but taking no abbreviated flags: a flag renamed to a longer one
    (``--keep-going`` to ``--keep-going-on``) must break the template's command too."""
    parser = _parser()
    parsers = [parser]
    while parsers:
        p = parsers.pop()
        p.allow_abbrev = False
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += action.choices.values()
    return parser


@pytest.mark.parametrize(("path", "argv"), COMMANDS,
                         ids=[f"{path.stem}:mux {' '.join(argv)}" for path, argv in COMMANDS])
@pytest.mark.pure
def test_mux_command_parses(path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        args = exact_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{path.name}: `mux {shlex.join(argv)}` does not parse (exit {exc.code}):\n"
                    f"{capsys.readouterr().err}")
    assert callable(args.func)
