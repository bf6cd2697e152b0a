"""A persona is untrusted, bounded: the pure rate limit, the RFB reader's size limits,
LED bursts through the real VNC-to-keyboard path, and capped guest-agent replies."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import struct
import time
import tracemalloc
from pathlib import Path

import pytest

from mux.display.leds import LedRouter, Leds
from mux.guest.agent import MAX_OUTPUT_BYTES, MAX_REPLY_BYTES, AgentError, GuestAgent
from mux.guest.ratelimit import Coalescer
from mux.guest.rfb import ENCODING_LED_STATE, LED_RATE, RESIZE_RATE, RfbClient, RfbError
from tests.conftest import wait_until
from tests.display.test_leds import RecordingSink
from tests.guest.test_agent import FakeAgent, serving
from tests.guest.test_rfb import raw, rect, scripted_server, serve_handshake, update

pytestmark = pytest.mark.pure

# --- the pure limiter ----------------------------------------------------------------------


def test_coalescer_passes_the_first_holds_the_rest_and_the_last_wins() -> None:
    limit: Coalescer[str] = Coalescer(10.0)  # one per 0.1 s
    went = limit.offer("a", 0.0) + limit.offer("b", 0.02) + limit.offer("c", 0.05)
    assert went == ["a"] and limit.pending and limit.due() == pytest.approx(0.1)
    assert limit.poll(0.09) == []
    assert limit.poll(0.1) == ["c"] and limit.dropped == 1 and limit.end_burst() == 2
    assert limit.offer("d", 0.15) == []  # 0.05 s after "c"
    assert limit.poll(0.2) == ["d"]
    assert limit.offer("e", 0.5) == ["e"] and not limit.pending  # quiet long enough: at once


def test_coalescer_a_long_burst_goes_at_the_rate_and_ends_with_its_last_value() -> None:
    limit: Coalescer[int] = Coalescer(10.0)
    went: list[tuple[float, int]] = []
    for i in range(1000):  # 1000 values over one second
        now = i / 1000
        went += [(now, v) for v in limit.poll(now) + limit.offer(i, now)]
    while (due := limit.due()) is not None:
        went += [(due, v) for v in limit.poll(due)]
    assert 10 <= len(went) <= 11 and went[-1][1] == 999
    assert all(b[0] - a[0] >= 0.1 - 1e-9 for a, b in itertools.pairwise(went))
    assert limit.dropped == 1000 - len(went)
    with pytest.raises(ValueError):
        Coalescer(0)


# --- the RFB reader's bounds ---------------------------------------------------------------


async def test_a_huge_framebuffer_is_refused_before_anything_is_allocated() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=(65535, 65535))

    tracemalloc.start()
    try:
        async with scripted_server(script) as path:
            with pytest.raises(RfbError, match="framebuffer 65535x65535 is over the limit"):
                async with RfbClient(path):
                    pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # the announced framebuffer would be 16 GiB


async def test_a_rectangle_outside_the_framebuffer_or_a_huge_resize_ends_the_link() -> None:
    async def outside(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=(4, 4))
        writer.write(update(rect(2, 2, 60000, 60000, 0)))  # no pixels follow: never read
        await reader.read()

    async def resize(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=(4, 4))
        writer.write(update(rect(0, 0, 65535, 65535, -223)))
        await reader.read()

    async def cut_text(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=(4, 4))
        writer.write(struct.pack(">B3xI", 3, 2**32 - 1))
        await reader.read()

    for script, error in ((outside, r"rectangle \(2, 2, 60000, 60000\) does not fit a 4x4"),
                          (resize, "framebuffer 65535x65535 is over the limit"),
                          (cut_text, "ServerCutText of 4294967295 bytes")):
        tracemalloc.start()
        try:
            async with scripted_server(script) as path, RfbClient(path) as rfb:
                await asyncio.wait_for(rfb.closed(), 5)
                _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert rfb.error is not None and re.search(error, str(rfb.error))
        assert peak < 16 * 2**20


# --- LED bursts: from the VNC link to the physical keyboard ----------------------------------


async def test_a_burst_of_led_changes_reaches_the_keyboard_at_most_n_a_second_and_ends_right() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=(4, 4))
        for i in range(1000):  # caps on and off, 1000 times over about half a second
            writer.write(update(rect(0, 0, 1, 1, ENCODING_LED_STATE, bytes([4 if i % 2 == 0 else 0]))))
            if i % 100 == 0:
                await writer.drain()
                await asyncio.sleep(0.05)
        writer.write(update(rect(0, 0, 1, 1, ENCODING_LED_STATE, b"\x02")))  # last: num lock
        await writer.drain()
        await reader.read()

    router, sink = LedRouter(["p"]), RecordingSink()
    router.add_sink(sink)
    router.switch("p")
    told: list[float] = []
    router.listeners.append(lambda name, leds: told.append(time.monotonic()))
    async with scripted_server(script) as path, \
            RfbClient(path, on_leds=lambda leds: router.guest_set("p", leds)) as rfb:
        began = time.monotonic()
        await wait_until(lambda: rfb.leds == Leds(False, True, False), 10, "the last report read")
        read = time.monotonic()
        await wait_until(lambda: sink.last == Leds(False, True, False), 1 / LED_RATE + 0.2,
                         "the final state on the keyboard")
        assert time.monotonic() - read <= 1 / LED_RATE + 0.2
        seconds = time.monotonic() - began
        assert len(told) <= LED_RATE * seconds + 2 and len(sink.writes) <= len(told)
        assert all(b - a >= 1 / LED_RATE - 0.02 for a, b in itertools.pairwise(told))
        assert router.physical == Leds(False, True, False)


# --- the guest agent's replies ---------------------------------------------------------------


class HugeAgent(FakeAgent):
    """Answers guest-exec-status with 3 MiB of stdout, or a line that never ends."""

    endless = False

    def answer(self, message: dict[str, object]) -> bytes | None:
        if message["execute"] == "guest-exec-status":
            if self.endless:
                return b'{"return": {"exited": true, "out-data": "' + b"A" * (MAX_REPLY_BYTES + 2**20)
            out = base64.b64encode(b"x" * (3 * 2**20)).decode()
            return json.dumps({"return": {"exited": True, "exitcode": 0, "out-data": out}}).encode() + b"\n"
        return super().answer(message)


async def test_exec_output_is_capped_with_a_note_and_an_endless_line_ends_the_session(tmp_path: Path) -> None:
    async with serving(HugeAgent(), tmp_path / "ga.sock") as (fake, path):
        agent = GuestAgent(path, "p")
        await agent.connect(5)
        result = await agent.exec(["cat", "big"], timeout=10)
        assert result.stdout[:MAX_OUTPUT_BYTES] == b"x" * MAX_OUTPUT_BYTES
        assert result.stdout[MAX_OUTPUT_BYTES:] == (f"\n[mux: stdout cut: {3 * 2**20} bytes, the first"
                                                    f" {MAX_OUTPUT_BYTES} kept]\n").encode()
        assert result.stderr == b""
        assert isinstance(fake, HugeAgent)
        fake.endless = True
        with pytest.raises(AgentError, match="over 48 MiB with no end of line: session ended"):
            await agent.exec(["cat", "big"], timeout=20)
        with pytest.raises(AgentError, match="not connected"):
            await agent.ping(1)
        await agent.close()


async def test_a_burst_of_resizes_reaches_the_owner_coalesced_with_the_last_size() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=(4, 4))
        for i in range(20):
            w = 2 + i % 5
            writer.write(update(rect(0, 0, w, 3, -223), raw(w, 3, b"\x00\x00\xff\x00")))
        writer.write(update(rect(0, 0, 7, 2, -223), raw(7, 2, b"\x00\xff\x00\x00")))
        await writer.drain()
        await reader.read()

    sizes: list[tuple[int, int]] = []
    async with scripted_server(script) as path, \
            RfbClient(path, on_frame=lambda frame: sizes.append(frame.size)) as rfb:
        await wait_until(lambda: sizes[-1:] == [(7, 2)], 1 / RESIZE_RATE + 1, "the last size, whole")
        assert rfb.size == (7, 2) and len(sizes) <= 3
