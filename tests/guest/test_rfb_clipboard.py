"""The VNC link's clipboard and screen-size requests: the codec, a scripted server, real QEMU 7.2+."""

from __future__ import annotations

import asyncio
import re
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest

from mux import images
from mux.config import PersonaConfig
from mux.errors import RfbError
from mux.guest import rfb_clipboard as codec
from mux.guest.accel import AccelChoice
from mux.guest.persona import Persona
from mux.guest.rfb import ENCODING_EXTENDED_DESKTOP_SIZE, ENCODING_LED_STATE, RfbClient
from mux.guest.rfb_clipboard import (
    MAX_CLIPBOARD_BYTES,
    NOTIFY,
    PROVIDE,
    REQUEST,
    TEXT,
    Changed,
    ClipboardMalformed,
    ClipboardState,
    ClipboardTooBig,
    Provided,
    Refused,
)
from mux.guest.rfb_requests import SizeReply
from tests.conftest import READY_S, wait_until
from tests.guest.test_rfb import rect, scripted_server, serve_handshake, update

TCG = AccelChoice("tcg", "test", proven=True)


def server_cut_text(flags: int, body: bytes = b"") -> bytes:
    """QEMU's extended ServerCutText."""
    return struct.pack(">B3xiI", 3, -(4 + len(body)), flags) + body


def zipped_text(data: bytes, size: int | None = None) -> bytes:
    return zlib.compress(struct.pack(">I", len(data) if size is None else size) + data)


def bomb(size: int, text: bytes, zeros: int) -> bytes:
    """A zlib stream of a size, ``text`` and ``zeros`` zero bytes, made without holding them."""
    packer = zlib.compressobj(9)
    parts = [packer.compress(struct.pack(">I", size) + text)]
    chunk = bytes(1 << 20)
    parts += [packer.compress(chunk) for _ in range(zeros >> 20)]
    return b"".join(parts) + packer.flush()


# --- the codec (pure) ----------------------------------------------------------------------


@pytest.mark.pure
def test_client_messages_are_extended_cut_texts_with_their_flags() -> None:
    assert struct.unpack(">i", bytes.fromhex("c0a1e5ce"))[0] == codec.ENCODING_EXTENDED_CLIPBOARD
    assert codec.request_message() == struct.pack(">B3xiI", 6, -4, REQUEST | TEXT)
    assert codec.notify_message() == struct.pack(">B3xiI", 6, -4, NOTIFY | TEXT)
    assert codec.notify_message(False) == struct.pack(">B3xiI", 6, -4, NOTIFY)
    caps = codec.caps_message()
    assert caps[:4] == b"\x06\x00\x00\x00" and struct.unpack(">iII", caps[4:]) == (
        -8, codec.CAPS | REQUEST | NOTIFY | PROVIDE | TEXT, MAX_CLIPBOARD_BYTES)
    provide = codec.provide_message("héllo\x00\r\nwörld")
    kind, length, flags = struct.unpack(">B3xiI", provide[:12])
    assert (kind, length, flags) == (6, -(len(provide) - 8), PROVIDE | TEXT)
    inflated = zlib.decompress(provide[12:])
    assert inflated == struct.pack(">I", 14) + "héllo\r\nwörld".encode()  # no NUL, none added


@pytest.mark.pure
def test_provided_text_decodes_with_nuls_dropped_and_bad_utf8_replaced() -> None:
    assert codec.decode_text(zipped_text("héllo wörld\n".encode() + b"\x00")) == "héllo wörld\n"
    assert codec.decode_text(zipped_text(b"a\xffb")) == "a\ufffdb"
    assert codec.decode_text(zipped_text(b"")) == ""
    # only the first format's bytes are text (a server may append others)
    two_formats = zlib.compress(struct.pack(">I", 2) + b"ok" + struct.pack(">I", 3) + b"rtf")
    assert codec.decode_text(two_formats) == "ok"


@pytest.mark.pure
def test_text_over_the_limit_is_refused_both_ways() -> None:
    at_limit = "é" * (MAX_CLIPBOARD_BYTES // 2)  # 2 bytes each in UTF-8: exactly the limit
    assert codec.decode_text(codec.provide_message(at_limit)[12:]) == at_limit
    with pytest.raises(ClipboardTooBig, match=f"{MAX_CLIPBOARD_BYTES + 1} bytes is over the limit"):
        codec.provide_message(at_limit + "x")
    with pytest.raises(ClipboardTooBig):
        codec.decode_text(zipped_text(b"x" * (MAX_CLIPBOARD_BYTES + 2)))
    with pytest.raises(ClipboardTooBig):  # the size alone says too much
        codec.decode_text(zipped_text(b"x", size=2**32 - 1))


@pytest.mark.pure
def test_a_zlib_bomb_is_inflated_only_up_to_the_limit() -> None:
    small = bomb(10, b"0123456789", 128 << 20)  # 128 MiB of zeros after the text
    big = bomb(128 << 20, b"", 128 << 20)  # 128 MiB of "text"
    assert len(small) < 200_000 and len(big) < 200_000
    tracemalloc.start()
    try:
        assert codec.decode_text(small) == "0123456789"
        with pytest.raises(ClipboardTooBig):
            codec.decode_text(big)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"inflating took {peak} bytes"


@pytest.mark.pure
@pytest.mark.parametrize("body, why", [
    (b"\x00\x01", "no flags"),
    (struct.pack(">I", codec.CAPS | TEXT), "caps for 1 formats"),
    (struct.pack(">I", PROVIDE | TEXT) + b"not zlib", "does not inflate"),
    (struct.pack(">I", PROVIDE | TEXT) + zlib.compress(b"\x00\x00"), "no text size"),
    (struct.pack(">I", PROVIDE | TEXT) + zipped_text(b"short", size=9), "5 bytes of text says 9"),
])
def test_malformed_server_messages_are_errors(body: bytes, why: str) -> None:
    with pytest.raises(ClipboardMalformed, match=why):
        ClipboardState().received(body)


@pytest.mark.pure
def test_state_offers_ours_until_another_owner_takes_the_clipboard() -> None:
    state = ClipboardState()
    reply, event = state.received(struct.pack(">III", codec.CAPS | PROVIDE | TEXT, 0, 0))
    assert reply == codec.caps_message() and event == codec.Caps(codec.CAPS | PROVIDE | TEXT, (0,))
    assert state.received(struct.pack(">I", REQUEST | TEXT)) == (b"", None)  # nothing offered yet
    assert state.offer("mine") == codec.notify_message()
    assert (state.owned, state.announced, state.text) == (True, True, "mine")
    reply, event = state.received(struct.pack(">I", REQUEST | TEXT))
    assert reply == codec.provide_message("mine") and event is None
    assert state.received(struct.pack(">I", NOTIFY | TEXT)) == (b"", Changed(True))
    assert (state.owned, state.announced, state.text) == (False, True, None)
    provided = struct.pack(">I", PROVIDE | TEXT) + zipped_text(b"theirs")
    assert state.received(provided) == (b"", Provided("theirs"))
    assert state.text == "theirs"
    big = struct.pack(">I", PROVIDE | TEXT) + zipped_text(b"x" * (MAX_CLIPBOARD_BYTES + 2))
    assert state.received(big) == (b"", Refused(MAX_CLIPBOARD_BYTES + 2))
    assert state.text == "theirs"
    assert state.received(struct.pack(">I", NOTIFY)) == (b"", Changed(False))
    assert not state.announced
    with pytest.raises(ClipboardTooBig):
        state.offer("x" * (MAX_CLIPBOARD_BYTES + 1))
    assert state.offered == codec.provide_message("mine")  # a refused offer changes nothing


# --- RfbClient against a scripted server (pure: a unix socket) -----------------------------


async def read_client_cut_text(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    kind, length, flags = struct.unpack(">B3xiI", await reader.readexactly(12))
    assert kind == 6 and length < 0
    return flags, await reader.readexactly(-length - 4)


@pytest.mark.pure
async def test_client_asks_for_text_refuses_too_much_and_ends_on_a_broken_provide() -> None:
    requested = asyncio.Event()
    go_on = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        encodings = await serve_handshake(reader, writer)
        assert codec.ENCODING_EXTENDED_CLIPBOARD in encodings and ENCODING_EXTENDED_DESKTOP_SIZE in encodings
        writer.write(server_cut_text(codec.CAPS | REQUEST | NOTIFY | PROVIDE | TEXT, bytes(4)))
        assert await read_client_cut_text(reader) == (codec.CAPS | REQUEST | NOTIFY | PROVIDE | TEXT,
                                                       struct.pack(">I", MAX_CLIPBOARD_BYTES))
        await go_on.wait()
        writer.write(server_cut_text(NOTIFY | TEXT))
        assert await read_client_cut_text(reader) == (REQUEST | TEXT, b"")
        requested.set()
        writer.write(server_cut_text(PROVIDE | TEXT, zipped_text("grüße\x00".encode())))
        writer.write(server_cut_text(NOTIFY | TEXT))  # a new copy: asked again
        assert await read_client_cut_text(reader) == (REQUEST | TEXT, b"")
        writer.write(server_cut_text(PROVIDE | TEXT, zipped_text(b"x" * (MAX_CLIPBOARD_BYTES + 2))))
        writer.write(update(rect(0, 0, 1, 1, ENCODING_LED_STATE, b"\x04")))  # the link goes on
        writer.write(server_cut_text(PROVIDE | TEXT, b"garbage"))
        await reader.read()

    async with scripted_server(script) as path, RfbClient(path) as rfb:
        with pytest.raises(RfbError, match="announced no clipboard text"):
            await rfb.clipboard_text(1)
        assert not rfb.clipboard_available
        await wait_until(lambda: rfb.clipboard_listening, 5, "the server's caps")
        go_on.set()
        await wait_until(lambda: rfb.clipboard_available, 5, "the server's notify")
        assert await rfb.clipboard_text(5) == "grüße"
        assert requested.is_set()
        await wait_until(lambda: rfb.clipboard_changes == 2, 5, "the second notify")
        with pytest.raises(RfbError, match="over the limit"):
            await rfb.clipboard_text(5)
        await asyncio.wait_for(rfb.closed(), 5)
        assert rfb.leds is not None and rfb.leds.caps  # read after the refused text
        assert rfb.error is not None and "does not inflate" in str(rfb.error)
        with pytest.raises(RfbError, match="not connected"):
            await rfb.clipboard_text(1)
        with pytest.raises(RfbError, match="not connected"):
            rfb.set_clipboard("late")


@pytest.mark.pure
async def test_set_clipboard_notifies_then_provides_on_request() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer)
        assert await read_client_cut_text(reader) == (NOTIFY | TEXT, b"")
        writer.write(server_cut_text(REQUEST | TEXT))
        flags, body = await read_client_cut_text(reader)
        assert flags == PROVIDE | TEXT and codec.decode_text(body) == "pasted\n"
        writer.write(server_cut_text(REQUEST | TEXT))  # asked again (another peer): answered again
        assert (await read_client_cut_text(reader))[0] == PROVIDE | TEXT

    async with scripted_server(script) as path, RfbClient(path) as rfb:
        rfb.set_clipboard("pasted\n")
        assert rfb.clipboard_available and await rfb.clipboard_text(1) == "pasted\n"  # ours: at once
        with pytest.raises(RfbError, match="over the limit"):
            rfb.set_clipboard("x" * (MAX_CLIPBOARD_BYTES + 1))
        await asyncio.wait_for(rfb.closed(), 5)
        assert rfb.error is None


@pytest.mark.pure
async def test_set_desktop_size_waits_for_the_announced_screen() -> None:
    asked = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, (640, 480))
        await asked.wait()
        screen = b"\x01\x00\x00\x00" + struct.pack(">IHHHHI", 7, 0, 0, 640, 480, 0x55)
        # the reply to a full update request: same size, no resize
        writer.write(update(rect(0, 0, 640, 480, ENCODING_EXTENDED_DESKTOP_SIZE, screen)))
        kind, width, height, screens = struct.unpack(">BxHHBx", await reader.readexactly(8))
        assert (kind, width, height, screens) == (251, 800, 600, 1)
        assert await reader.readexactly(16) == struct.pack(">IHHHHI", 7, 0, 0, 800, 600, 0x55)
        writer.write(update(rect(1, 4, 640, 480, ENCODING_EXTENDED_DESKTOP_SIZE, screen)))
        await reader.read()

    async with scripted_server(script) as path, RfbClient(path) as rfb:
        with pytest.raises(RfbError, match="over the limit"):
            rfb.set_desktop_size(9000, 600)
        with pytest.raises(RfbError, match="not a size"):
            rfb.set_desktop_size(0, 600)
        rfb.set_desktop_size(800, 600)  # before the announcement: sent when it comes
        asked.set()
        await wait_until(lambda: rfb.size_reply is not None, 5, "the server's answer")
        assert rfb.size_reply == SizeReply(4, 640, 480) and rfb.size == (640, 480)
    rfb.set_desktop_size(1024, 768)  # not connected: nothing


# --- real QEMU -----------------------------------------------------------------------------


def boot(image: images.BuiltImage) -> tuple[Path, Path | None, str]:
    return (image.kernel, image.initrd, image.append)


async def changed_on(link: RfbClient, before: int) -> None:
    await wait_until(lambda: link.clipboard_changes > before, 10, "QEMU's notify of the change")


@pytest.mark.guests
async def test_two_vnc_clients_share_qemus_clipboard_up_to_the_limit(
        tmp_path: Path, console_image: images.BuiltImage) -> None:
    config = PersonaConfig("p", clipboard=True)
    async with Persona(config, tmp_path, TCG, boot(console_image)) as p:
        argv = p.argv()
        assert "qemu-vdagent,id=mux-vdagent,name=vdagent,clipboard=on,mouse=off" in argv
        assert "virtserialport,bus=mux-vserial.0,chardev=mux-vdagent,name=com.redhat.spice.0" in argv
        await p.start()
        chardevs = {c["label"] for c in await p.execute("query-chardev")}
        assert "mux-vdagent" in chardevs
        async with p.vnc_link() as one, p.vnc_link() as two:
            # QEMU registers a client for its clipboard as it reads its SetEncodings (then its caps come)
            await wait_until(lambda: one.clipboard_listening and two.clipboard_listening, 10, "QEMU's caps")
            assert not two.clipboard_available  # nothing copied since connecting
            before = two.clipboard_changes
            one.set_clipboard("héllo")
            await changed_on(two, before)
            assert two.clipboard_available and await two.clipboard_text(10) == "héllo"

            before = one.clipboard_changes
            two.set_clipboard("wörld\nline two\n")  # the other way: one's offer ends
            await changed_on(one, before)
            assert await one.clipboard_text(10) == "wörld\nline two\n"

            at_limit = "é" * (MAX_CLIPBOARD_BYTES // 2)
            before = two.clipboard_changes
            one.set_clipboard(at_limit)
            await changed_on(two, before)
            assert await two.clipboard_text(30) == at_limit
            before = (one.clipboard_changes, two.clipboard_changes)
            with pytest.raises(RfbError, match="over the limit"):
                two.set_clipboard(at_limit + "x")
            one.set_clipboard("after")  # positive control: a change still reaches two
            await changed_on(two, before[1])
            assert await two.clipboard_text(10) == "after"
            assert one.clipboard_changes == before[0]  # two's refused text never became one's


@pytest.mark.guests
async def test_a_persona_without_clipboard_has_no_vdagent_and_boots(
        tmp_path: Path, console_image: images.BuiltImage) -> None:
    async with Persona(PersonaConfig("p", agent=True), tmp_path, TCG, boot(console_image)) as p:
        argv = p.argv()
        assert not any("vdagent" in arg or "spice" in arg for arg in argv)
        assert "virtio-serial-pci,id=mux-vserial" in argv  # the agent's bus alone
        await p.start()
        await p.serial.wait_for(re.compile("MUX-READY p"), READY_S)
        assert "mux-vdagent" not in {c["label"] for c in await p.execute("query-chardev")}


@pytest.mark.guests
@pytest.mark.parametrize("vga, status", [("virtio", 4), ("std", 3)])
async def test_set_desktop_size_is_forwarded_by_virtio_and_refused_by_std_vga(
        tmp_path: Path, console_image: images.BuiltImage, vga: str, status: int) -> None:
    """QEMU 7.2 answers SetDesktopSize at once: status 4 ("forwarded" to the display device)
    for virtio-vga, 3 ("invalid screen layout") for the standard VGA, with the framebuffer's
    size then. The console image has no virtio-gpu driver (it draws on vesafb), so nothing in
    the guest applies the hint: the framebuffer stays 1024x768."""
    config = PersonaConfig("p", vga="virtio" if vga == "virtio" else "std")
    async with Persona(config, tmp_path, TCG, boot(console_image)) as p:
        await p.start()
        await p.serial.wait_for(re.compile("MUX-READY p"), READY_S)
        async with p.vnc_link() as rfb:
            await rfb.frame(10)  # a full update request: QEMU announces its screen with it
            assert rfb.size == (1024, 768)
            rfb.set_desktop_size(800, 600)
            await wait_until(lambda: rfb.size_reply is not None, 10, "QEMU's answer")
            assert rfb.size_reply == SizeReply(status, 1024, 768)
            await rfb.frame(10)
            assert rfb.size == (1024, 768)
