"""The serial log: waits from the cursor, whole-output searches, line ends a regex understands."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from mux.guest.serial import SerialLog


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
