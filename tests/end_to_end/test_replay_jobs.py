"""``mux replay --jobs 2`` on 8 console scenario files, in a real process: every file passes,
two run at once (their progress lines interleave, each prefixed with its file's name), each
file has its own personas and folder (its guest's serial log holds its own marker and no
other file's), and one merged JUnit report (valid against Jenkins' junit-10.xsd, one
testsuite per file in the files' order) and one results.json come out. The one heavy
replay of issue 26: 8 boots of the console image under TCG.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

SCHEMA = Path(__file__).parent.parent / "data" / "junit-10.xsd"
FILES = 8
pytestmark = pytest.mark.guests


def scenario_files(folder: Path, count: int) -> list[Path]:
    """``count`` files, each booting one console persona and echoing its own marker."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, count + 1):
        path = folder / f"file{i}.yaml"
        path.write_text(f"name: file {i}\n"
                        "config:\n  mux: {accel: tcg}\n  persona: [{name: w, image: console}]\n"
                        "steps:\n"
                        "  - wait_serial: {persona: w, match: MUX-READY, timeout: 600}\n"
                        f"  - type: \"echo marker-{i}-done > /dev/ttyS0\\n\"\n"
                        f"  - wait_serial: {{persona: w, match: marker-{i}-done, timeout: 120}}\n")
        paths.append(path)
    return paths


def replay(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", "replay", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(1800)
def test_jobs_2_runs_8_files_two_at_a_time_into_one_report(tmp_path: Path, console_image: Any) -> None:
    paths = scenario_files(tmp_path / "scenarios", FILES)
    out, report = tmp_path / "out", tmp_path / "junit.xml"
    result = replay(*map(str, paths), "--jobs", "2", "--keep-going", "--artifacts", str(out),
                    "--junit", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{FILES} passed, 0 failed" in result.stdout

    # every progress line of a scenario carries its file's name; two files were under way at once
    lines = result.stdout.splitlines()
    owner = [m.group(1) if (m := re.match(r"\[(file\d+\.yaml)\] ", line)) else None for line in lines]
    for path in paths:
        mine = [n for n, who in enumerate(owner) if who == path.name]
        assert mine and f"scenario 'file {path.stem[4:]}'" in lines[mine[0]]
        assert "passed" in lines[mine[-1]]
    spans = {name: (owner.index(name), len(owner) - 1 - owner[::-1].index(name))
             for name in {o for o in owner if o}}
    overlapping = [(a, b) for a in spans for b in spans if a < b
                   and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]]
    assert overlapping, "no two files' lines interleaved: they ran one after the other"

    # one merged JUnit report, valid, a testsuite per file in the files' order
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    document = etree.parse(str(report))
    assert schema.validate(document), schema.error_log
    suites = document.getroot().findall("testsuite")
    assert [s.get("file") for s in suites] == [str(p) for p in paths]
    assert all(s.get("failures") == "0" and s.get("errors") == "0" for s in suites)

    # one results.json; each file its own folder, its guest's serial log its own
    data = json.loads((out / "results.json").read_text())
    assert data["passed"] == FILES and data["exit_code"] == 0
    assert [s["file"] for s in data["scenarios"]] == [str(p) for p in paths]
    assert len({s["artifacts"] for s in data["scenarios"]}) == FILES
    for i, scenario in enumerate(data["scenarios"], start=1):
        log = (out / scenario["serial_logs"]["w"]).read_text()
        assert f"marker-{i}-done" in log  # the positive control for the line below
        assert not [j for j in range(1, FILES + 1) if j != i and f"marker-{j}-done" in log], log
        assert (out / scenario["artifacts"] / "serial.jsonl").is_file()
