"""The tagged serial log (mux.app.taglog), its stream over the control socket, and
``mux logs`` (mux.cli_logs): merging, formatting, filters, errors. No guests here:
real SerialLogs fed by hand, a real control socket served by a small stand-in of the
ControlAPI's two calls it uses. tests/app/test_clock_logs_personas.py does it with guests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mux.app.taglog import FILE_NAME, TaggedLog
from mux.cli_logs import Printer, read_folder
from mux.errors import ControlError
from mux.frontends.control import ControlServer, stream
from mux.guest.serial import SerialLog


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.pure
async def test_every_whole_line_is_tagged_in_the_file_and_in_memory(tmp_path: Path) -> None:
    work, home = SerialLog(tmp_path / "work.serial.log"), SerialLog(tmp_path / "home.serial.log")
    log = TaggedLog(tmp_path / "logs", {"work": "c03030", "home": "3060c0"})
    with log.watching({"work": work, "home": home}):
        await work.append("one\r\ntw")
        await home.append("uno\n")
        await work.append("o\nthree")  # "three" never ends: not a line yet
    await work.append("after\n")  # the controller is gone: not tagged
    saved = records(tmp_path / "logs" / FILE_NAME)
    assert saved[0]["personas"] == ["work", "home"] and saved[0]["colors"]["home"] == "3060c0"
    assert [(r["persona"], r["line"]) for r in saved[1:]] == [
        ("work", "one"), ("home", "uno"), ("work", "two")]
    times = [r["t"] for r in saved[1:]]
    assert times == sorted(times) and times[0] >= saved[0]["t"]
    kept = [r async for r in log.lines()]
    assert kept[0]["personas"] == ["work", "home"]
    assert [r.get("line") for r in kept[1:-1]] == ["one", "uno", "two"] and kept[-1] == {"end": "done"}
    since = [r.get("line") async for r in log.lines(since=times[1])]
    assert since[1:-1] == ["uno", "two"]
    assert [r async for r in log.lines(follow=True)][-1] == {"end": "stopped"}  # closed: no wait


@pytest.mark.pure
async def test_a_follower_gets_the_kept_lines_then_each_new_one_then_the_end(tmp_path: Path) -> None:
    work = SerialLog(tmp_path / "work.serial.log")
    log = TaggedLog(None, {"work": "c03030"})  # no folder: memory only
    got: list[dict[str, Any]] = []
    with log.watching({"work": work}):
        await work.append("before\n")

        async def follow() -> None:
            async for record in log.lines(follow=True):
                got.append(record)

        task = asyncio.create_task(follow())
        while len(got) < 2:
            await asyncio.sleep(0.01)
        await work.append("after\n")
        while len(got) < 3:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(task, 10)
    assert [r.get("line") for r in got[1:3]] == ["before", "after"]
    assert got[-1] == {"end": "stopped"}


@pytest.mark.pure
def test_the_printer_pads_tags_colours_them_only_when_asked_and_prints_json(tmp_path: Path) -> None:
    header = {"personas": ["work", "household"], "colors": {"work": "c03030", "household": "nonsense"}}
    line = {"t": 1.5, "persona": "work", "line": "hi"}
    plain = Printer(color=False, json_lines=False, timestamps=False, only=[])
    plain.header(header)
    assert plain.format(line) == "work      | hi"
    coloured = Printer(color=True, json_lines=False, timestamps=True, only=[])
    coloured.header(header)
    assert coloured.format(line) == "\033[38;2;192;48;48mwork      |\033[0m 1970-01-01T00:00:01Z hi"
    assert coloured.format({"t": 2, "persona": "household", "line": "x"}).startswith("\033[33m")  # palette
    only = Printer(color=False, json_lines=False, timestamps=False, only=["work"])
    only.header(header)
    assert only.format(line) == "work | hi"  # padded to the personas shown
    as_json = Printer(color=True, json_lines=True, timestamps=True, only=[])
    assert json.loads(as_json.format(line)) == line


def write_log(folder: Path, *lines: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header = {"t": 0, "mux": "serial log", "personas": ["work", "home"], "colors": {}}
    (folder / FILE_NAME).write_text("".join(json.dumps(r) + "\n" for r in (header, *lines)))


@pytest.mark.pure
def test_a_folder_is_read_in_time_order_filtered_and_unknown_names_are_refused(tmp_path: Path) -> None:
    write_log(tmp_path / "run", {"t": 3, "persona": "home", "line": "c"},
              {"t": 1, "persona": "work", "line": "a"}, {"t": 2, "persona": "home", "line": "b"},
              {"t": 3, "persona": "work", "line": "d"})
    got = read_folder(tmp_path / "run", [], None)
    assert [r["line"] for r in got[1:]] == ["a", "b", "c", "d"]  # equal times keep the file's order
    assert [r["line"] for r in read_folder(tmp_path / "run", ["home"], 2.5)[1:]] == ["c"]
    with pytest.raises(ControlError, match=r"no persona 'play' in .* \(personas: work, home\)"):
        read_folder(tmp_path / "run", ["work", "play"], None)
    with pytest.raises(ControlError, match=r"no tagged log .*these folders in it have one: .*run"):
        read_folder(tmp_path, [], None)


def mux(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", "logs", *args], capture_output=True, text=True,
                          timeout=60, check=False, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})


@pytest.mark.services
def test_mux_logs_from_a_folder_and_its_usage_errors(tmp_path: Path) -> None:
    write_log(tmp_path, {"t": 2, "persona": "home", "line": "b"}, {"t": 1, "persona": "work", "line": "a"})
    result = mux("--from", str(tmp_path))
    assert (result.returncode, result.stdout) == (0, "work | a\nhome | b\n"), result.stderr
    result = mux("--from", str(tmp_path), "--json", "home")
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"t": 2, "persona": "home", "line": "b"}]
    bad = mux("--from", str(tmp_path), "nobody")
    assert bad.returncode == 1 and "no persona 'nobody'" in bad.stderr
    assert "personas: work, home" in bad.stderr
    bad = mux("--since", "ten minutes")
    assert bad.returncode == 2 and "--since" in bad.stderr and "30s, 10m" in bad.stderr
    bad = mux("--from", str(tmp_path), "-f")
    assert bad.returncode == 2 and "-f follows a running controller" in bad.stderr
    bad = mux("--from", str(tmp_path), "--socket", str(tmp_path / "s"))
    assert bad.returncode == 2 and "not allowed with" in bad.stderr
    bad = mux("--socket", str(tmp_path / "none.sock"))
    assert bad.returncode == 1 and "no controller answers" in bad.stderr


class Lines:
    """The part of the ControlAPI a logs request uses: the names, and serial_lines."""

    def __init__(self, log: TaggedLog) -> None:
        self.log = log
        self.names = ("work", "home")

    def serial_lines(self, since: float | None = None, follow: bool = False) -> AsyncIterator[dict[str, Any]]:
        return self.log.lines(since, follow)


@pytest.mark.pure
async def test_the_control_socket_streams_the_lines_and_refuses_unknown_names(tmp_path: Path) -> None:
    work, home = SerialLog(tmp_path / "w.log"), SerialLog(tmp_path / "h.log")
    log = TaggedLog(None, {"work": "c03030", "home": "3060c0"})
    path = tmp_path / "control.sock"
    with log.watching({"work": work, "home": home}):
        async with ControlServer(path).serve(Lines(log)):  # type: ignore[arg-type]
            await work.append("w1\n")
            await home.append("h1\n")
            got = await asyncio.to_thread(lambda: list(stream(path, {"cmd": "logs", "personas": ["home"]})))
            assert got[0]["ok"] and got[0]["personas"] == ["work", "home"]
            assert [(r["persona"], r["line"]) for r in got[1:-1]] == [("home", "h1")]
            assert got[-1] == {"ok": True, "end": "done"}
            with pytest.raises(ControlError, match=r"no persona 'x' \(personas: work, home\)"):
                await asyncio.to_thread(lambda: list(stream(path, {"cmd": "logs", "personas": ["x"]})))
            followed: list[dict[str, Any]] = []

            def follow() -> None:
                followed.extend(stream(path, {"cmd": "logs", "follow": True}))

            reader = asyncio.create_task(asyncio.to_thread(follow))
            while len(followed) < 3:
                await asyncio.sleep(0.02)
            await work.append("w2\n")
            while len(followed) < 4:
                await asyncio.sleep(0.02)
            assert followed[3]["line"] == "w2"
        # The server closed: the follower's stream ended (no end line: the controller stopped).
        await asyncio.wait_for(reader, 10)
    assert "end" not in followed[-1]


@pytest.mark.pure
def test_bad_records_in_a_folder_name_their_line(tmp_path: Path) -> None:
    write_log(tmp_path)
    with (tmp_path / FILE_NAME).open("a") as f:
        f.write("{not json}\n")
    with pytest.raises(ControlError, match=rf"{FILE_NAME}:2: not a JSON line"):
        read_folder(tmp_path, [], None)
    write_log(tmp_path, {"t": 1, "persona": "work", "line": "a"})
    with (tmp_path / FILE_NAME).open("a") as f:
        f.write('{"t": 2, "persona": "wo')  # cut off by a crash: skipped
    assert [r["line"] for r in read_folder(tmp_path, [], None)[1:]] == ["a"]


@pytest.mark.pure
async def test_memory_keeps_the_newest_lines_within_bounds_and_a_stuck_follower_is_ended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mux.app import taglog

    monkeypatch.setattr(taglog, "KEEP_CHARS", 10)
    monkeypatch.setattr(taglog, "FOLLOW_BEHIND", 8)
    log = TaggedLog(tmp_path, {"work": "c03030"})
    with log.watching({}):
        follower = log.lines(follow=True)
        assert "personas" in await anext(follower)  # then it waits for lines
        waiting = asyncio.ensure_future(anext(follower))
        await asyncio.sleep(0)
        for n in range(5):
            log.add("work", f"line{n}", float(n))  # 5 characters each
        kept = [r.get("line") async for r in log.lines()]
        assert kept[1:-1] == ["line3", "line4"]  # 10 characters, the newest
        # The follower got one line (5 characters); the second would pass 8: it is ended.
        assert (await waiting)["line"] == "line0"
        assert [r async for r in follower] == [{"end": "behind"}]
    assert len(records(tmp_path / FILE_NAME)) == 6  # the file keeps everything


@pytest.mark.pure
async def test_a_follower_that_hangs_up_is_dropped_at_the_next_line(tmp_path: Path) -> None:
    work = SerialLog(tmp_path / "w.log")
    log = TaggedLog(None, {"work": "c03030"})
    path = tmp_path / "control.sock"
    with log.watching({"work": work}):
        async with ControlServer(path).serve(Lines(log)) as server:  # type: ignore[arg-type]
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b'{"cmd": "logs", "follow": true}\n')
            assert json.loads(await reader.readline())["ok"]
            assert len(log._followers) == 1 and len(server.streams) == 1
            writer.close()
            await writer.wait_closed()
            for n in range(100):  # the server notices when it writes to the closed socket
                await work.append(f"line {n}\n")
                await asyncio.sleep(0.05)
                if not log._followers:
                    break
            assert not log._followers and not server.streams


@pytest.mark.pure
async def test_a_follower_from_a_later_time_gets_only_the_lines_from_then_on(tmp_path: Path) -> None:
    """``since`` filters where the lines are kept, followed ones too (mux logs does not again)."""
    log = TaggedLog(None, {"work": "c03030"})
    got: list[dict[str, Any]] = []
    with log.watching({}):  # lines added by hand, with the times they say
        log.add("work", "old", 100.0)
        task = asyncio.create_task(_collect(log.lines(since=200.0, follow=True), got))
        await asyncio.sleep(0.05)
        log.add("work", "still old", 150.0)
        log.add("work", "new", 300.0)  # positive control: a line from after since comes through
        while not any(r.get("line") == "new" for r in got):
            await asyncio.sleep(0.01)
    await asyncio.wait_for(task, 10)
    assert [r["line"] for r in got if "line" in r] == ["new"]


async def _collect(lines: Any, into: list[dict[str, Any]]) -> None:
    async for record in lines:
        into.append(record)
