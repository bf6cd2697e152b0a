"""Fuzzing what a persona (or a panel) sends the controller: VNC, serial, agent, MQTT.

A persona is untrusted: its VNC server, its serial port and its guest agent may send
anything. The property of each parser: a hostile stream ends the link (or the call) with
mux's own error (:class:`~mux.errors.RfbError`, :class:`~mux.guest.agent.AgentError`),
never another exception type, never a hang (each example runs under
``asyncio.timeout``), and never asks for more memory than :data:`LIMIT` (checked by a
spy on the allocations a peer's numbers decide, before they are made). Serial lines,
the ``MUX-*`` markers in them and attention patterns give their lines, whatever the
chunking; an MQTT payload on any topic gives a command or an error naming the topic.

Budgets come from :func:`tests.config.test_fuzz_files.budget` (``HYPOTHESIS_PROFILE=fuzz`` for
many more). Every bug found is fixed; its input stays as a test of its own at the end
of the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mux.app.attention import request_text
from mux.display.backbuffer import Pixels
from mux.errors import RfbError
from mux.frontends.mqtt_topics import MAX_PAYLOAD, Command, CommandError, parse_command
from mux.guest import agent as agent_module
from mux.guest import rfb as rfb_module
from mux.guest.agent import AgentError, GuestAgent
from mux.guest.ready import MARKER as READY
from mux.guest.rfb import ENCODING_DESKTOP_SIZE, ENCODING_EXTENDED_DESKTOP_SIZE, ENCODING_LED_STATE, RfbClient
from mux.guest.rfb_reader import RfbReader
from mux.guest.serial import _COALESCE, SerialLog
from tests.config.test_fuzz_files import budget
from tests.documented import documented_number

#: The longest attention text the docs allow.
MAX_TEXT = documented_number(r"else the whole line; at most (\d+) characters")

pytestmark = pytest.mark.pure

LIMIT = 64 << 20  # bytes a peer may make mux allocate at once (a 4096x4096 framebuffer)
EXAMPLE_S = 10.0  # one example's time, hang included


class PastLimit(Exception):
    """The spy's refusal: a peer's numbers asked for more than :data:`LIMIT` bytes."""


@contextlib.contextmanager
def allocation_spy() -> Iterator[None]:
    """Refuse (raise :class:`PastLimit`) a framebuffer or a read bigger than :data:`LIMIT`,
    before it is allocated, so a hostile size cannot take the test machine down."""
    pixels = Pixels
    readexactly = RfbReader.readexactly

    def checked_pixels(width: int, height: int) -> Any:
        if width * height * 4 > LIMIT:
            raise PastLimit(f"framebuffer {width}x{height}")
        return pixels(width, height)

    async def checked_read(self: RfbReader, count: int) -> bytes:
        if count > LIMIT:
            raise PastLimit(f"readexactly({count})")
        return await readexactly(self, count)

    with mock.patch.object(rfb_module, "Pixels", checked_pixels), \
            mock.patch.object(RfbReader, "readexactly", checked_read):
        yield


# --- RFB: a hostile VNC server on a real unix socket ----------------------------------------


@contextlib.asynccontextmanager
async def hostile_server(chunks: list[bytes], linger: bool = False) -> AsyncIterator[Path]:
    """A unix socket whose server sends ``chunks`` (one write each) and closes (or, with
    ``linger``, stays silent until the client goes)."""
    directory = Path(tempfile.mkdtemp(prefix="rfbfuzz-", dir="/tmp"))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0)
            if linger:
                await reader.read()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, directory / "s.vnc")
    try:
        async with server:
            yield directory / "s.vnc"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def talk_to(chunks: list[bytes], *, live: bool = False, linger: bool = False,
                  timeout: float = 2.0) -> None:
    """Connect a client to a server that sends ``chunks``; return once the link ended.

    Raises what the client lets through: RfbError (the handshake), or a bug.
    """
    async with asyncio.timeout(EXAMPLE_S), hostile_server(chunks, linger) as path:
        client = RfbClient(path, on_leds=lambda leds: None, on_frame=lambda frame: None,
                           timeout=EXAMPLE_S / 2)  # the handshake: generous, the machine is shared
        client.live = live
        async with client:
            with contextlib.suppress(RfbError):  # the link ends while a frame is awaited
                await client.frame(timeout)
            if linger:  # a silent server is an idle link, not a broken one: it may stay
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.closed(), timeout)
            else:
                await client.closed()


GREETING = b"RFB 003.008\n"


def server_init(width: int, height: int, name: bytes) -> bytes:
    return struct.pack(">HH", width, height) + bytes(16) + struct.pack(">I", len(name)) + name


def handshake(width: int = 64, height: int = 48) -> bytes:
    return GREETING + b"\x01\x01" + struct.pack(">I", 0) + server_init(width, height, b"fuzz")


SIZES = st.integers(0, 300) | st.integers(0, 65535)
HANDSHAKES = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda v, types, result, w, h, name, tail: v + types + result + server_init(w, h, name) + tail,
              st.sampled_from([GREETING, b"RFB 003.003\n", b"RFB 004.001\n", b"XXX"]),
              st.sampled_from([b"\x01\x01", b"\x00", b"\x02\x02\x01", b"\x01\x02", b""])
              | st.binary(max_size=4).map(lambda b: bytes([len(b)]) + b),
              st.sampled_from([struct.pack(">I", 0), struct.pack(">I", 1) + struct.pack(">I", 3) + b"no!",
                               b"\x00"]),
              SIZES, SIZES, st.binary(max_size=40), st.binary(max_size=20)),
)


@budget(120)
@given(stream=HANDSHAKES, cut=st.integers(1, 40))
@example(stream=GREETING + b"\x00" + struct.pack(">I", 5) + b"nope!", cut=3)
@example(stream=GREETING + b"\x01\x01" + struct.pack(">I", 1) + struct.pack(">I", 2) + b"\xff\xfe", cut=1)
def test_rfb_handshake_from_a_hostile_server_ends_in_rfb_error(stream: bytes, cut: int) -> None:
    chunks = [stream[i:i + cut] for i in range(0, len(stream), cut)]
    with allocation_spy(), contextlib.suppress(RfbError):
        asyncio.run(talk_to(chunks))


def rect(x: int, y: int, w: int, h: int, encoding: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, encoding) + payload


U16 = st.integers(0, 65535)
SMALL = st.integers(0, 80)
RECTS = st.one_of(
    st.builds(lambda x, y, w, h, fill: rect(x, y, w, h, 0, (fill * (w * h * 4))[:w * h * 4]),
              SMALL, SMALL, SMALL, SMALL, st.binary(min_size=1, max_size=8)),
    st.builds(lambda x, y, w, h, cut: rect(x, y, w, h, 0, bytes(max(0, w * h * 4 - cut))),
              SMALL | U16, SMALL | U16, SMALL, SMALL, st.integers(0, 50)),
    st.builds(lambda led: rect(0, 0, 0, 0, ENCODING_LED_STATE, bytes([led])), st.integers(0, 255)),
    st.builds(lambda w, h: rect(0, 0, w, h, ENCODING_DESKTOP_SIZE), SIZES, SIZES),
    st.builds(lambda y, w, h, n, more: rect(0, y, w, h, ENCODING_EXTENDED_DESKTOP_SIZE,
                                            bytes([n, 0, 0, 0]) + bytes(16 * n)[:more]),
              st.integers(0, 2), SIZES, SIZES, st.integers(0, 255), st.integers(0, 4096)),
    st.builds(lambda x, y, w, h, e: rect(x, y, w, h, e), U16, U16, U16, U16, st.integers(-(2**31), 2**31 - 1)
              .filter(lambda e: e not in (ENCODING_DESKTOP_SIZE, ENCODING_EXTENDED_DESKTOP_SIZE))),
)
MESSAGES = st.one_of(
    st.builds(lambda rects, extra: struct.pack(">BxH", 0, min(len(rects) + extra, 65535)) + b"".join(rects),
              st.lists(RECTS, max_size=4), st.sampled_from([0, 0, 0, 1, 65535])),
    st.builds(lambda first, n, short: struct.pack(">BxHH", 1, first, n) + bytes(max(0, 6 * n - short)),
              U16, st.integers(0, 300) | U16, st.integers(0, 10)),
    st.just(b"\x02"),
    st.builds(lambda n, text: struct.pack(">B3xI", 3, n) + text,
              st.integers(0, 40) | st.integers(0, 2**32 - 1), st.binary(max_size=40)),
    st.binary(max_size=24),
)


@budget(100)  # 40 times that under tox -e fuzz
@given(messages=st.lists(MESSAGES, max_size=6), cut=st.sampled_from([1, 3, 7, 64, 1 << 20]),
       live=st.booleans(), linger=st.booleans())
@example(messages=[struct.pack(">BxH", 0, 1) + rect(60, 40, 10, 10, 0, bytes(400))], cut=1 << 20,
         live=False, linger=False)  # a rectangle outside the 64x48 framebuffer
@example(messages=[struct.pack(">B3xI", 3, 2**32 - 1)], cut=1, live=True, linger=False)
@example(messages=[b"\x07"], cut=1, live=False, linger=True)  # unknown message type, server silent
def test_rfb_stream_from_a_hostile_server_ends_the_link_quietly(
        messages: list[bytes], cut: int, live: bool, linger: bool) -> None:
    stream = handshake() + b"".join(messages)
    chunks = [stream[i:i + cut] for i in range(0, len(stream), cut)]
    with allocation_spy():
        asyncio.run(talk_to(chunks, live=live, linger=linger, timeout=0.1 if linger else 2.0))


# --- serial lines and the MUX-* markers -----------------------------------------------------


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


LINE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=60)
MARKED = st.one_of(
    LINE_TEXT,
    st.builds(lambda a, m, b: a + m + b, LINE_TEXT,
              st.sampled_from(["MUX-ATTENTION", "MUX-ATTENTION ", "MUX-ATTENTION\t", "MUX-READY",
                               "MUX-READY x", "MUX-LED caps=1 num=0 scroll=1", "MUX-KEY 30 1",
                               "MUX-ATTENTIONX"]), LINE_TEXT),
)


@budget(200)
@given(lines=st.lists(MARKED, max_size=8), end=st.sampled_from(["\n", "\r\n", "\n\r"]),
       cuts=st.lists(st.integers(0, 10**6), max_size=12), tail=st.integers(8, 300))
def test_serial_lines_and_markers_do_not_depend_on_chunking(lines: list[str], end: str, cuts: list[int],
                                                            tail: int) -> None:
    text = "".join(line + end for line in lines)
    told: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="serialfuzz-"))
    log = SerialLog(directory / "serial.log", tail_chars=tail)
    log.line_listeners.append(lambda line, when: told.append(line))

    async def feed() -> None:
        for chunk in chunked(text, cuts):
            await log.append(chunk)

    asyncio.run(feed())
    log.close()
    plain = text.replace("\r", "")
    assert told == [line.replace("\r", "") for line in lines]  # none is longer than _COALESCE
    assert (directory / "serial.log").read_text(encoding="utf-8") == plain
    assert log.end == len(plain) and plain.endswith(log.text) and len(log.text) >= min(tail, len(plain))
    attention = [request_text(line, None) for line in told]
    assert attention == [request_text(line.replace("\r", ""), None) for line in lines]
    for asked in attention:
        assert asked is None or (len(asked) <= MAX_TEXT and asked == asked.strip())
    kept_ready = READY.search(log.text) is not None
    assert (log.search(READY, log.start) is not None) == kept_ready
    shutil.rmtree(directory, ignore_errors=True)


@budget(100)
@given(chunks=st.lists(st.text(max_size=3000) | st.just("x" * (_COALESCE + 5)), max_size=6))
def test_serial_never_holds_an_endless_line(chunks: list[str]) -> None:
    told: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="serialfuzz-"))
    log = SerialLog(directory / "serial.log", tail_chars=1000)
    log.line_listeners.append(lambda line, when: told.append(line))

    async def feed() -> None:
        for chunk in chunks:
            await log.append(chunk)
            assert len(log._partial) <= _COALESCE

    asyncio.run(feed())
    log.close()
    shutil.rmtree(directory, ignore_errors=True)
    assert "".join(told) + log._partial == "".join(chunks).replace("\r", "").replace("\n", "")


def told_requests(text: str, size: int) -> list[str | None]:
    """The attention requests in ``text`` fed to a serial log in chunks of ``size``."""
    told: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="serialfuzz-"))
    log = SerialLog(directory / "serial.log")
    log.line_listeners.append(lambda line, when: told.append(line))

    async def feed() -> None:
        for start in range(0, len(text), size):
            await log.append(text[start:start + size])

    asyncio.run(feed())
    log.close()
    shutil.rmtree(directory, ignore_errors=True)
    return [asked for line in told if (asked := request_text(line, None)) is not None]


@budget(60)
@given(before=st.integers(0, 3 * _COALESCE), words=st.booleans(), size=st.sampled_from([1, 2, 5, 64, 4000]))
@example(before=_COALESCE - 6, words=False, size=1)  # the cut fell inside the marker: request lost
@example(before=_COALESCE - 16, words=False, size=1)  # the cut fell inside its text: "" for "ring"
@example(before=_COALESCE - 16, words=True, size=1)
def test_serial_attention_marker_after_a_long_line_is_heard_whatever_the_chunking(
        before: int, words: bool, size: int) -> None:
    text = ("ab " * before)[:before] if words else "x" * before
    text += " MUX-ATTENTION ring\n"
    assert told_requests(text, size) == told_requests(text, len(text)) == ["ring"]


PATTERNS = st.sampled_from([r"RING (\w+)", r"phone", r"(a)|(b)", r"(x)?y", r"^$", r"(?P<t>.*)", r"()",
                            r"\d+"]) | st.text(max_size=8).filter(lambda p: _compiles(p))


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


@budget(300)
@given(line=MARKED | st.text(max_size=400), pattern=st.none() | PATTERNS)
@example(line="MUX-ATTENTION " + "x" * 1000, pattern=None)
@example(line="ab", pattern=r"(a)|(b)")
@example(line="y", pattern=r"(x)?y")
def test_attention_request_text_is_a_short_stripped_line_or_none(line: str, pattern: str | None) -> None:
    compiled = re.compile(pattern) if pattern is not None else None
    text = request_text(line, compiled)
    if re.search(r"MUX-ATTENTION(?:[ \t]|$)", line):
        assert text is not None
    if text is not None:
        assert len(text) <= MAX_TEXT and text == text.strip()


# --- the guest agent: a hostile qemu-ga on a unix socket -------------------------------------

Reply = Callable[[dict[str, Any]], Awaitable[bytes]]


@contextlib.asynccontextmanager
async def fake_agent(answer: Callable[[dict[str, Any]], bytes]) -> AsyncIterator[Path]:
    """An agent socket that answers each command line with ``answer(command)``."""
    directory = Path(tempfile.mkdtemp(prefix="agentfuzz-", dir="/tmp"))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    command = json.loads(line.lstrip(b"\xff"))
                except ValueError:
                    continue
                writer.write(answer(command))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, directory / "qga.sock")
    try:
        async with server:
            yield directory / "qga.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
ERRORS = st.fixed_dictionaries({}, optional={"class": JSON_VALUES, "desc": JSON_VALUES})
REPLIES = st.one_of(
    st.builds(lambda value: {"return": value}, JSON_VALUES),
    st.builds(lambda error: {"error": error}, ERRORS | JSON_VALUES),
    st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3),
)


NOISE = st.binary(max_size=40)


def encoded(reply: Any) -> bytes:
    return json.dumps(reply).encode() + b"\n"


@budget(75)  # 40 times that under tox -e fuzz
@given(noise=NOISE, reply=REPLIES | JSON_VALUES, sync_noise=NOISE)
@example(noise=b"\xff{\"return\": 1", reply={"return": 2}, sync_noise=b"{\n")
@example(noise=b"", reply=[1, 2], sync_noise=b"\xff\xff\xff")
def test_agent_replies_give_a_value_or_agent_error(noise: bytes, reply: Any, sync_noise: bytes) -> None:
    def answer(command: dict[str, Any]) -> bytes:
        if command.get("execute") == "guest-sync-delimited":
            return sync_noise + b"\xff" + encoded({"return": command["arguments"]["id"]})
        return noise + encoded(reply)

    async def run() -> None:
        async with asyncio.timeout(EXAMPLE_S), fake_agent(answer) as path:
            agent = GuestAgent(path, "fuzz")
            await agent.connect(5.0)
            try:
                await agent.execute("guest-ping", timeout=0.3)
            except AgentError:
                pass
            finally:
                await agent.close()

    asyncio.run(run())


@budget(300)
@given(buffer=st.binary(max_size=200) | st.lists(st.sampled_from([b"{", b"}", b"\n", b"\xff", b" ", b'"a"',
                                                                    b":", b"1", b"[", b"]", b","]),
                                                   max_size=60).map(b"".join))
@example(buffer=b"{\n{}\n\xff\xff{\"a\": 1}\n{")
def test_agent_reply_parsing_takes_objects_and_always_ends(buffer: bytes) -> None:
    agent = GuestAgent(Path("/nonexistent"), "fuzz")
    agent._buffer = bytearray(buffer)
    for _ in range(len(buffer) + 2):
        before = len(agent._buffer)
        reply = agent._take()
        if reply is None:
            break
        assert isinstance(reply, dict) and len(agent._buffer) < before
    else:
        pytest.fail("_take never ran dry")


# --- MQTT commands --------------------------------------------------------------------------

PERSONAS = ["work", "home"]
DEVICES = ["usb1", "disk2"]
SEGMENTS = st.sampled_from(["active", "set", "persona", "devices", "device", "work", "home", "nobody", "usb1",
                            "disk2", "", "+", "#", "state"]) | st.text(max_size=5)
TOPICS = st.builds(lambda base, parts: "/".join([base, *parts]),
                   st.sampled_from(["mux", "mux/x", "", "other"]), st.lists(SEGMENTS, max_size=5)) \
    | st.text(max_size=30)
PAYLOADS = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(["work", "home", "start", "stop", "restart", "none", "attach usb1", "detach disk2",
                     "attach", "attach a b", " work \n", "usb1"]).map(str.encode),
    st.text(max_size=40).map(str.encode),
    st.integers(MAX_PAYLOAD - 2, MAX_PAYLOAD + 2).map(lambda n: b"w" * n),
)


@budget(500)
@given(topic=TOPICS, payload=PAYLOADS)
@example(topic="mux/persona/work/devices/set", payload=b"attach \xc3")
@example(topic="mux/device/usb1/set", payload="work\u2028".encode())
def test_mqtt_payloads_give_a_command_or_an_error_naming_the_topic(topic: str, payload: bytes) -> None:
    command = parse_command(topic, payload, "mux", PERSONAS, DEVICES)
    if isinstance(command, CommandError):
        assert command.topic == topic and command.error
        assert len(command.payload) <= 200 * 4 + 3
        assert json.loads(command.to_json())["topic"] == topic
        return
    assert isinstance(command, Command) and topic.startswith("mux/") and topic.endswith("/set")
    assert command.kind in ("switch", "persona", "device")
    assert command.persona in (*PERSONAS, "")
    if command.kind == "persona":
        assert command.action in ("start", "stop", "restart")
    if command.kind == "device":
        assert command.action in ("attach", "detach") and command.device


# --- known bugs in files these tests do not own ------------------------------------------------

# --- what a hostile VNC server's numbers may ask for (found by the fuzzing above) -------------------


@pytest.mark.parametrize("stream", [
    GREETING + b"\x01\x01" + struct.pack(">I", 0) + server_init(65535, 65535, b"x"),  # 17 GB
    GREETING + b"\x01\x01" + struct.pack(">I", 0) + struct.pack(">HH", 64, 48) + bytes(16)
    + struct.pack(">I", 2**32 - 1),  # a desktop name of 4 GiB
    GREETING + b"\x00" + struct.pack(">I", 2**32 - 1),  # a refusal reason of 4 GiB
], ids=["server-init-size", "desktop-name", "refusal-reason"])
def test_rfb_handshake_numbers_are_limited(stream: bytes) -> None:
    with allocation_spy(), pytest.raises(RfbError, match="limit"):
        asyncio.run(talk_to([stream]))


@pytest.mark.parametrize("message", [
    struct.pack(">BxH", 0, 1) + rect(0, 0, 65535, 65535, ENCODING_DESKTOP_SIZE),  # 17 GB
    struct.pack(">BxH", 0, 1) + rect(0, 0, 65535, 65535, ENCODING_EXTENDED_DESKTOP_SIZE, bytes(4)),
    struct.pack(">B3xI", 3, 2**32 - 1),  # ServerCutText of 4 GiB
], ids=["desktop-size", "extended-desktop-size", "cut-text"])
def test_rfb_stream_numbers_are_limited(message: bytes) -> None:
    with allocation_spy():
        asyncio.run(talk_to([handshake() + message]))




async def _agent_call(reply: bytes, call: Callable[[GuestAgent], Awaitable[Any]]) -> None:
    def answer(command: dict[str, Any]) -> bytes:
        if command.get("execute") == "guest-sync-delimited":
            return b"\xff" + encoded({"return": command["arguments"]["id"]})
        return reply

    async with asyncio.timeout(EXAMPLE_S), fake_agent(answer) as path:
        agent = GuestAgent(path, "fuzz")
        await agent.connect(5.0)
        try:
            await call(agent)
        except AgentError:
            pass
        finally:
            await agent.close()


def test_agent_error_that_is_no_object_is_an_agent_error() -> None:
    asyncio.run(_agent_call(b'{"error": 1}\n', lambda agent: agent.execute("guest-ping", timeout=1)))


def test_agent_deeply_nested_reply_is_an_agent_error() -> None:
    asyncio.run(_agent_call(b'{"a": ' + b"[" * 100000 + b"\n",
                            lambda agent: agent.execute("guest-ping", timeout=1)))


def test_agent_exec_with_a_return_that_is_no_object_is_an_agent_error() -> None:
    asyncio.run(_agent_call(b'{"return": []}\n', lambda agent: agent.exec(["true"], timeout=1)))


def test_agent_exec_output_that_is_not_base64_is_an_agent_error() -> None:
    reply = b'{"return": {"pid": 1, "exited": true, "out-data": "x"}}\n'
    asyncio.run(_agent_call(reply, lambda agent: agent.exec(["true"], timeout=1)))


def test_agent_reply_without_an_end_of_line_ends_the_session_at_the_limit() -> None:
    agent = GuestAgent(Path("/nonexistent"), "fuzz")

    async def run() -> None:  # execute's loop: take a reply, else read more
        agent._reader = asyncio.StreamReader()
        agent._reader.feed_data(b"{" + b" " * (4 << 20))  # an answer that never ends its line
        while agent._take() is None:
            await agent._fill(float("inf"), "guest-ping")

    with mock.patch.object(agent_module, "MAX_REPLY_BYTES", 1 << 20), pytest.raises(AgentError, match="MiB"):
        asyncio.run(run())
    assert len(agent._buffer) <= 1 << 20
