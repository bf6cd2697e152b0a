"""The serial log: waits from the cursor, a bounded tail searched incrementally, line ends."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from mux.guest.serial import SerialLog

pytestmark = pytest.mark.pure


async def test_waits_start_after_the_previous_match_and_lines_end_without_cr(tmp_path: Path) -> None:
    log = SerialLog(tmp_path / "p.serial.log")
    await log.append("MUX-READY p\r\nhi\r")
    await log.append("\nhi again\r\n")
    first = await log.wait_for(re.compile(r"^hi$", re.MULTILINE), 1)
    second = await log.wait_for(re.compile(r"^hi", re.MULTILINE), 1)
    assert first.group(0) == "hi" and second.start() > first.start()
    with pytest.raises(TimeoutError):
        await log.wait_for(re.compile("MUX-READY"), 0.2)  # already passed
    later = asyncio.create_task(log.wait_for(re.compile("late line"), 2))
    await asyncio.sleep(0.05)
    await log.append("a late line\r\n")
    assert (await later).group(0) == "late line"
    log.close()
    assert "\r" not in (tmp_path / "p.serial.log").read_text()


async def test_memory_keeps_a_bounded_tail_and_the_file_keeps_everything(tmp_path: Path) -> None:
    log = SerialLog(tmp_path / "p.serial.log", tail_chars=100_000)
    for i in range(300):
        await log.append(f"line {i:05d} " + "x" * 1000 + "\n")
    total = 300 * 1012
    assert log.end == total and log.start > 0
    assert 100_000 <= len(log.text) <= 100_000 + 4096  # the bound, plus at most one chunk
    assert log.text == log.since(log.start) and log.text.endswith("line 00299 " + "x" * 1000 + "\n")
    assert log.since(log.end - 10) == "x" * 9 + "\n" and log.since(0) == log.text
    log.close()
    on_disk = (tmp_path / "p.serial.log").read_text()
    assert len(on_disk) == total and on_disk.startswith("line 00000 ")


async def test_byte_at_a_time_output_is_kept_in_few_strings(tmp_path: Path) -> None:
    log = SerialLog(tmp_path / "p.serial.log", tail_chars=50_000)
    for _ in range(100_000):
        await log.append("y")
    assert log.end == 100_000 and len(log.text) >= 50_000
    assert len(log._chunks) < 50_000 // 1000  # joined into chunks of about 4 KiB
    log.close()


async def test_a_wait_whose_previous_match_fell_out_of_memory_starts_at_the_oldest_kept(
        tmp_path: Path) -> None:
    log = SerialLog(tmp_path / "p.serial.log", tail_chars=10_000)
    await log.append("MARK one\n")
    await log.wait_for(re.compile("MARK"), 1)
    await log.append("MARK lost\n" + "z" * 20_000 + "\n")  # the cursor is now out of memory
    assert log.cursor < log.start
    with pytest.raises(TimeoutError):  # "MARK lost" is only in the file now
        await log.wait_for(re.compile("MARK"), 0.2)
    await log.append("MARK kept\n")
    assert (await log.wait_for(re.compile(r"MARK \w+"), 1)).group(0) == "MARK kept"
    assert "MARK lost" in (tmp_path / "p.serial.log").read_text()
    log.close()


class CountingPattern:
    """A regex that counts how many characters each search had to look at."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)
        self.looked_at: list[int] = []

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        self.looked_at.append(len(text) - pos)
        return self.pattern.search(text, pos)


async def test_a_wait_searches_only_new_text_and_finds_matches_across_chunks(tmp_path: Path) -> None:
    log = SerialLog(tmp_path / "p.serial.log")
    await log.append("old output\n" * 50_000)  # 550 KB before the wait begins
    pattern = CountingPattern("MAR+KER")
    waiting = asyncio.create_task(log.wait_for(pattern, 10, start=log.end))  # type: ignore[arg-type]
    for _ in range(200):
        await log.append("q" * 2000 + "\n")
        await asyncio.sleep(0)
    await log.append("...MA")
    await asyncio.sleep(0)
    await log.append("RKER...")
    assert (await waiting).group(0) == "MARKER"
    assert len(pattern.looked_at) > 100
    assert max(pattern.looked_at) <= 2001 + 4096 + 1  # the new text and the overlap, never the log
    log.close()


async def test_assert_no_serial_watch_sees_the_kept_output_then_only_new_text(tmp_path: Path) -> None:
    log = SerialLog(tmp_path / "p.serial.log")
    await log.append("boot\nMUX-KEY 30 1\n")
    assert log.watch(re.compile("MUX-KEY"), log.start).check() is not None  # already printed
    watch = log.watch(re.compile("MUX-LED"), log.start)
    assert watch.check() is None
    await log.append("more\n")
    assert watch.check() is None
    await log.append("MUX-L")
    assert watch.check() is None
    await log.append("ED caps=1\n")
    match = watch.check()
    assert match is not None and match.group(0) == "MUX-LED"
    log.close()


async def test_a_character_split_between_two_reads_of_the_serial_socket_arrives_whole(tmp_path: Path) -> None:
    from mux.guest.process import pump_serial

    path = tmp_path / "serial.sock"
    sent = asyncio.Event()

    async def guest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        encoded = "naïve\n".encode()
        writer.write(encoded[:3])  # "na" and the first byte of "ï"
        await writer.drain()
        await asyncio.sleep(0.2)  # the pump has read the first part on its own
        writer.write(encoded[3:])
        await writer.drain()
        writer.close()
        sent.set()

    server = await asyncio.start_unix_server(guest, str(path))
    log = SerialLog(tmp_path / "serial.log")
    async with server:
        reader, writer = await asyncio.open_unix_connection(str(path))
        await asyncio.wait_for(pump_serial(reader, writer, log), 10)
    assert sent.is_set()
    assert log.text == "naïve\n"
