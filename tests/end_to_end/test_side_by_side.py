"""Two controllers side by side on one machine: two ``mux run`` of different configs started
in the same second each get their own logs folder with their own tagged serial log.

The folder is ``$XDG_STATE_HOME/mux/logs/<time>-<suffix>/`` (docs/guides/logs.md); before
issue 26 it was named after the second only, and both controllers appended to one
``serial.jsonl``. No guest boots here: a controller writes its log's header (naming its
personas, from its config) as it starts, which is enough to tell whose file is whose.
Two ``mux replay`` side by side are refused one artifacts folder (the second would mix
its results into the first's), and left alone in two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mux.app.taglog import FILE_NAME, new_logs_folder
from mux.errors import MuxError
from mux.scenario.parallel import artifacts_lock
from tests.conftest import SESSION_DIR

MUX = [sys.executable, "-m", "mux"]


@pytest.mark.pure
def test_two_logs_folders_made_in_one_second_differ_and_sort_by_time(tmp_path: Path) -> None:
    now = time.mktime((2031, 5, 1, 9, 0, 0, 0, 0, -1))
    first, second = new_logs_folder(tmp_path / "logs", now), new_logs_folder(tmp_path / "logs", now)
    later = new_logs_folder(tmp_path / "logs", now + 1)
    assert first != second and first.is_dir() and second.is_dir() and not any(first.iterdir())
    assert first.name.startswith("20310501-090000-") and second.name.startswith("20310501-090000-")
    assert sorted([later, second, first])[-1] == later  # the name sorts by the second it was made


def config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{SESSION_DIR}"\n'
                    f'control_socket = "{tmp_path / name}.sock"\n'
                    f'[[persona]]\nname = "{name}"\nautostart = false\n')
    return path


def start_together(configs: list[Path], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen([*MUX, "run", "--for", "2", str(c)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in configs]
    results = []
    for proc, c in zip(procs, configs, strict=True):
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        assert proc.returncode == 0, (c, out, err)
    return results


def logs_folder(stdout: str) -> Path:
    line = next(line for line in stdout.splitlines() if "tagged serial lines go to" in line)
    return Path(line.split("go to ", 1)[1].split(f"/{FILE_NAME}", 1)[0])


@pytest.mark.services
def test_two_controllers_started_in_one_second_write_their_own_serial_logs(tmp_path: Path) -> None:
    configs = [config(tmp_path, "alpha"), config(tmp_path, "beta")]
    for attempt in range(5):  # until both named their folder in the same second (the case to test)
        state = tmp_path / f"state{attempt}"
        env = {**os.environ, "XDG_STATE_HOME": str(state)}
        time.sleep(1.05 - time.time() % 1)  # just after a second begins: both start within it
        results = start_together(configs, env)
        folders = [logs_folder(r.stdout) for r in results]
        if folders[0].name[:15] == folders[1].name[:15]:
            break
    else:
        pytest.fail(f"the two controllers never named their folders in the same second: {folders}")
    assert folders[0] != folders[1]
    assert sorted(p.name for p in (state / "mux" / "logs").iterdir()) == sorted(f.name for f in folders)
    for folder, name in zip(folders, ("alpha", "beta"), strict=True):
        records = [json.loads(line) for line in (folder / FILE_NAME).read_text().splitlines()]
        headers = [r for r in records if r.get("mux") == "serial log"]
        assert [h["personas"] for h in headers] == [[name]], (folder, records)


@pytest.mark.pure
def test_one_artifacts_folder_is_held_by_one_replay_at_a_time(tmp_path: Path) -> None:
    with artifacts_lock(tmp_path / "out"):
        with pytest.raises(MuxError, match="another mux replay is writing"), artifacts_lock(tmp_path / "out"):
            pass
        with artifacts_lock(tmp_path / "other"):  # the control: another folder is free
            pass
    with artifacts_lock(tmp_path / "out"):  # and this one again once the first let go
        pass
    assert list((tmp_path / "out").iterdir()) == []  # the lock leaves nothing in the folder


@pytest.mark.services
def test_a_second_replay_into_a_held_artifacts_folder_is_refused(tmp_path: Path) -> None:
    """No guest boots: the persona does not autostart, so the one step fails at once."""
    scenario = tmp_path / "idle.yaml"
    scenario.write_text("name: idle\nconfig:\n  mux: {accel: tcg}\n  persona: [{name: w, autostart: false}]\n"
                        "steps:\n  - assert_state: {persona: w, state: stopped}\n")

    def replay(out: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MUX, "replay", str(scenario), "--artifacts", str(out)], capture_output=True,
                              text=True, timeout=300)

    with artifacts_lock(tmp_path / "held"):  # as a replay running in it would
        refused = replay(tmp_path / "held")
        free = replay(tmp_path / "free")
    assert refused.returncode == 1 and "another mux replay is writing" in refused.stderr, refused
    assert not (tmp_path / "held" / "results.json").exists()
    assert free.returncode == 0 and "1 passed" in free.stdout, free  # the control, at the same time
    assert (tmp_path / "free" / "results.json").is_file()
