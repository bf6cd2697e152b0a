"""The built-in guest images: recipe hashing, the cache, the cpio writer, and real
boots under QEMU/TCG that check the serial contract (MUX-READY/KEY/LED/UEVENT) and
the painted framebuffer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image
from qemu.qmp import QMPClient

from mux.errors import ImageError
from mux.images import archive, initramfs
from mux.images import builder as images
from mux.images import recipes as recipe_module

READY_S = 120.0


# --- fast: recipes, keys, cpio ---------------------------------------------------------


@pytest.mark.pure
def test_image_names() -> None:
    assert images.image_names() == ["console", "debian", "desktop", "palette"]
    # `mux images build` without a name: debian takes minutes and needs root.
    assert images.default_image_names() == ["console", "palette"]
    assert images.load_recipe("debian").kind == "disk"


@pytest.mark.pure
def test_unknown_image_is_an_image_error() -> None:
    known = r"\(known: console, debian, desktop, palette\)"
    with pytest.raises(ImageError, match=r"unknown guest image 'nope' " + known):
        images.build("nope", progress=lambda m: None)
    with pytest.raises(ImageError, match="unknown guest image"):
        images.find_built("../console")


@pytest.mark.pure
def test_cache_root_follows_mux_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MUX_CACHE_DIR", str(tmp_path))
    assert images.cache_root() == tmp_path
    monkeypatch.delenv("MUX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert images.cache_root() == tmp_path / "xdg" / "mux" / "images"


@pytest.fixture
def recipes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private copy of guest_images/ that the module reads instead."""
    copy = tmp_path / "recipes"
    shutil.copytree(recipe_module.RECIPE_DIR, copy)
    monkeypatch.setattr(recipe_module, "RECIPE_DIR", copy)
    return copy


@pytest.mark.pure
def test_recipes_live_at_the_top_level_and_ship_as_mux_guest_images() -> None:
    checkout = Path(__file__).resolve().parent.parent.parent
    assert recipe_module.RECIPE_DIR.resolve() == checkout / "guest_images"  # editable install
    assert (recipe_module.RECIPE_DIR / "keys" / "debian-archive-keyring.pgp").is_file()


@pytest.mark.pure
def test_cache_key_follows_recipe_files_suite_and_versions(recipes: Path) -> None:
    versions = {"linux-image-6.1.0-1-amd64": "6.1.1-1", "busybox-static": "1:1.35.0-4"}

    def key_of(name: str, versions: dict[str, str], suite: str = "trixie") -> str:
        return images.cache_key(images.load_recipe(name), versions, suite)

    key = key_of("console", versions)
    assert key == key_of("console", dict(versions))
    assert key != key_of("palette", versions)
    assert key != key_of("console", versions, "bookworm")

    newer = {**versions, "linux-image-6.1.0-1-amd64": "6.1.1-2"}
    assert key_of("console", newer) != key

    init = recipes / "console" / "init"
    init.write_text(init.read_text() + "\n# edited\n")
    edited = key_of("console", versions)
    assert edited != key

    shared = recipes / "common" / "input.awk"  # a shared file counts for every image
    palette_before = key_of("palette", versions)
    shared.write_text(shared.read_text() + "\n# edited\n")
    assert key_of("console", versions) != edited
    assert key_of("palette", versions) != palette_before


@pytest.mark.pure
def test_broken_recipe_is_an_image_error(recipes: Path) -> None:
    (recipes / "console" / "recipe.toml").write_text("kernel = [unclosed\n")
    with pytest.raises(ImageError, match="broken recipe"):
        images.load_recipe("console")


@pytest.mark.pure
def test_a_recipes_persona_defaults_are_only_persona_keys(recipes: Path) -> None:
    toml = recipes / "console" / "recipe.toml"
    toml.write_text(toml.read_text() + '\n[persona]\nvga = "virtio"\n')
    assert images.load_recipe("console").persona_defaults == {"vga": "virtio"}
    toml.write_text(toml.read_text() + 'name = "x"\n')
    with pytest.raises(ImageError, match="may set agent, clipboard, memory_mb, resize_guest, vga, not name"):
        images.load_recipe("console")


def _read_cpio(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, rdev) for a newc archive; asserts the 4-byte alignment."""
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    pos = 0
    while True:
        assert pos % 4 == 0 and data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            assert pos == len(data)
            return entries
        entries[name] = (mode, body, rdev)


@pytest.mark.pure
def test_cpio_writer_round_trips() -> None:
    cpio = initramfs.Cpio()
    cpio.add_file("bin/busybox", b"\x7fELF" * 5, 0o755)
    cpio.add_file("init", b"#!/bin/sh\n")
    cpio.add_chardev("dev/console", 5, 1)
    cpio.add_symlink("bin/sh", "busybox")
    entries = _read_cpio(cpio.finish())
    assert entries["bin"][0] == 0o040755  # parents are created before their children
    assert list(entries).index("bin") < list(entries).index("bin/busybox")
    assert entries["bin/busybox"] == (0o100755, b"\x7fELF" * 5, (0, 0))
    assert entries["init"][1] == b"#!/bin/sh\n"
    assert entries["dev/console"] == (0o020600, b"", (5, 1))
    assert entries["bin/sh"] == (0o120777, b"busybox", (0, 0))


def _fake_module(path: Path, modinfo: dict[str, str]) -> None:
    """A minimal ELF64 file with just a .modinfo and a section-name table."""
    info = b"".join(f"{k}={v}\0".encode() for k, v in modinfo.items())
    names = b"\0.modinfo\0.shstrtab\0"
    info_off, names_off = 64, 64 + len(info)
    shoff = names_off + len(names)
    header = (
        b"\x7fELF\x02\x01\x01"
        + bytes(9)
        + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)
    )
    null = bytes(64)
    sec_info = struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, info_off, len(info), 0, 0, 1, 0)
    sec_names = struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, names_off, len(names), 0, 0, 1, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + info + names + null + sec_info + sec_names)


@pytest.mark.pure
def test_module_closure_orders_dependencies_first(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel"
    _fake_module(kernel / "usb" / "usb-storage.ko", {"depends": "usbcore,scsi_mod", "name": "x"})
    _fake_module(kernel / "usb" / "usbcore.ko", {"depends": "usb-common"})
    _fake_module(kernel / "usb" / "usb-common.ko", {"depends": ""})
    _fake_module(
        kernel / "scsi" / "scsi_mod.ko",
        {"depends": "scsi_common,builtin_thing", "softdep": "pre: maybe_absent crc"},
    )
    _fake_module(kernel / "scsi" / "scsi_common.ko", {"depends": ""})
    _fake_module(kernel / "crc.ko", {"depends": ""})
    (tmp_path / "modules.builtin").write_text("kernel/lib/builtin_thing.ko\n")
    assert initramfs.modinfo(kernel / "crc.ko") == {"depends": [""]}
    order = [name for name, _ in initramfs.module_closure(tmp_path, ["usb-storage"])]
    assert order == ["usb_common", "usbcore", "scsi_common", "crc", "scsi_mod", "usb_storage"]
    with pytest.raises(ImageError, match="'nosuch' not found"):
        initramfs.module_closure(tmp_path, ["nosuch"])


# --- builds (from the Debian archive) ----------------------------------------------------------


@pytest.fixture
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``MUX_CACHE_DIR`` in ``tmp_path``, holding hard links to the session's verified index
    and downloaded packages (so a build there fetches nothing) but no built image."""
    images.build("palette", progress=lambda m: None)  # the index and packages, in the real cache
    home = archive.cache_home()
    cache = tmp_path / "cache"
    for part in ("debian", "debs"):
        shutil.copytree(home / part, cache / part, copy_function=os.link,
                        ignore=shutil.ignore_patterns(".*"))
    monkeypatch.setenv("MUX_CACHE_DIR", str(cache))
    return cache


def kernel_banner(kernel: Path) -> tuple[str, str]:
    """A bzImage's kernel release and Debian package version, from the version string its
    boot header points to (``6.12.117+deb13-amd64 (...) #1 SMP ... Debian 6.12.117-1 (...)``)."""
    data = kernel.read_bytes()
    assert data[0x202:0x206] == b"HdrS", "not a bzImage"
    (pointer,) = struct.unpack_from("<H", data, 0x20E)
    banner = data[pointer + 0x200:data.index(b"\0", pointer + 0x200)].decode()
    found = re.match(r"(\S+) \(.*\bDebian (\S+) \(", banner)
    assert found, banner
    return found[1], found[2]


@pytest.mark.services
def test_build_twice_is_a_cache_hit() -> None:
    first = images.build("console", progress=lambda m: None)
    messages: list[str] = []
    second = images.build("console", progress=messages.append)
    assert second == first
    assert any("cached" in m for m in messages)
    assert images.find_built("console") == first
    meta = json.loads((first.kernel.parent / "image.json").read_text())
    assert first.kernel.parent.name == f"console-{meta['hash']}"
    assert meta["append"] == first.append and "console=ttyS0" in first.append
    assert meta["suite"] == archive.source().suite
    kernel_package = next(iter(meta["packages"]))
    # the release and Debian version the kernel itself carries, whatever the suite's ABI
    release, version = kernel_banner(first.kernel)
    assert kernel_package == f"linux-image-{release}" and meta["kernel_release"] == release
    assert meta["packages"][kernel_package] == version
    assert release.endswith("-amd64") and "cloud" not in release  # the flavour with framebuffer drivers
    assert "busybox-static" in meta["packages"]
    assert meta["files"] == {"vmlinuz": archive.sha256_of(first.kernel),
                             "initrd.img": archive.sha256_of(first.initrd)}
    mods = meta["modules"]
    assert mods.index("usbcore") < mods.index("xhci_pci") < mods.index("usb_storage")
    assert mods.index("scsi_mod") < mods.index("sd_mod")


@pytest.mark.guests  # builds the console image twice (seconds of CPU): with the images' tier
def test_the_same_packages_give_the_same_bytes(private_cache: Path) -> None:
    """A second build of the same recipe, in another cache, is byte for byte the first."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MUX_CACHE_DIR")
        shared = images.build("palette", progress=lambda m: None)
    again = images.build("palette", progress=lambda m: None)
    assert again.kernel.parent != shared.kernel.parent
    assert again.kernel.read_bytes() == shared.kernel.read_bytes()
    assert again.initrd.read_bytes() == shared.initrd.read_bytes()


@pytest.mark.services
def test_without_an_index_find_built_falls_back_to_the_same_recipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = images.build("console", progress=lambda m: None)

    def no_index(*args: object, **kwargs: object) -> archive.Index:
        raise ImageError("cannot fetch http://mirror/: no route")

    monkeypatch.setattr(archive, "load_index", no_index)
    assert images.find_built("console") == built
    assert images.find_built("console", offline=True) == built
    monkeypatch.setenv("MUX_IMAGE_SUITE", "bookworm")  # another suite's build is not this one
    assert images.find_built("console", offline=True) != built
    monkeypatch.delenv("MUX_IMAGE_SUITE")
    with pytest.raises(ImageError, match="no route"):
        images.build("console", progress=lambda m: None)


@pytest.mark.guests  # rebuilds the palette image (seconds of CPU): with the images' tier
def test_force_rebuilds_in_place(private_cache: Path) -> None:
    assert images.find_built("palette") is None
    first = images.build("palette", progress=lambda m: None)
    stamp = first.initrd.stat().st_ino
    again = images.build("palette", progress=lambda m: None, force=True)
    assert again == first and again.initrd.stat().st_ino != stamp
    assert [p.name for p in private_cache.glob("palette-*")] == [first.kernel.parent.name]
    assert dict(images.list_images())["palette"] == first


@pytest.mark.services
def test_unknown_package_in_a_recipe(recipes: Path) -> None:
    toml = recipes / "palette" / "recipe.toml"
    toml.write_text(toml.read_text().replace('"busybox-static"', '"busybox-static", "mux-nope"'))
    with pytest.raises(ImageError, match="has no package 'mux-nope'"):
        images.build("palette", progress=lambda m: None)


@pytest.mark.pure
def test_an_unknown_suite_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUX_IMAGE_SUITE", "sid")
    with pytest.raises(ImageError, match=r"MUX_IMAGE_SUITE='sid'.*bookworm or trixie"):
        images.build("palette", progress=lambda m: None)


# --- boots under QEMU (TCG) -------------------------------------------------------------------


@dataclass
class Guest:
    qmp: QMPClient
    lines: list[str] = field(default_factory=list)

    async def wait_line(self, wanted: str, timeout: float, start: int = 0) -> int:
        """Index of the first serial line from ``start`` on that starts with ``wanted``."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(start, len(self.lines)):
                if self.lines[i].startswith(wanted):
                    return i
            if time.monotonic() > deadline:
                raise AssertionError(f"no {wanted!r} in {timeout} s; serial: {self.lines}")
            await asyncio.sleep(0.05)

    def key_reports(self) -> int:
        """How many key presses and releases the guest has reported (not autorepeats)."""
        return sum(1 for ln in self.lines if ln.startswith("MUX-KEY") and not ln.endswith(" 2"))

    async def key(self, qcode: str, down: bool) -> None:
        """Send one key edge and wait until the guest reports it: PS/2 holds 16 bytes and
        QEMU drops what does not fit, so a busy TCG guest must take each edge first."""
        reported = self.key_reports()
        event = {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}
        await self.qmp.execute("input-send-event", {"events": [event]})
        deadline = time.monotonic() + 30
        while self.key_reports() == reported:
            if time.monotonic() > deadline:
                raise AssertionError(f"no report of {qcode} {down} in 30 s; serial: {self.lines}")
            await asyncio.sleep(0.005)

    async def tap(self, *qcodes: str) -> None:
        for qcode in qcodes:
            await self.key(qcode, True)
            await self.key(qcode, False)

    async def type(self, text: str) -> None:
        names = {" ": "spc", "/": "slash", ".": "dot", "\n": "ret", ">": "dot", ":": "semicolon"}
        for ch in text:
            shifted = ch in ">:"
            if shifted:
                await self.key("shift", True)
            await self.tap(names.get(ch, ch))
            if shifted:
                await self.key("shift", False)

    def dominant(self, path: Path) -> tuple[tuple[int, int, int], float]:
        with Image.open(path) as im:
            raw = im.convert("RGB").tobytes()
        pixels = Counter(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
        colour, count = pixels.most_common(1)[0]
        return colour, count / (len(raw) // 3)

    async def screendump(self, path: Path) -> tuple[tuple[int, int, int], float]:
        await self.qmp.execute("screendump", {"filename": str(path)})
        return self.dominant(path)


@contextlib.asynccontextmanager
async def boot(
    image: images.BuiltImage, tmp: Path, persona: str, color: str, *extra: str
) -> AsyncIterator[Guest]:
    sock = tmp / f"{persona}.qmp"
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "256",
        "-nodefaults",
        "-no-user-config",
        "-vga",
        "std",
        "-display",
        "none",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        f"{image.append} mux.persona={persona} mux.color={color}",
        "-serial",
        "stdio",
        "-qmp",
        f"unix:{sock},server=on,wait=off",
        *extra,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []

    async def read_serial() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            lines.append(line.decode(errors="replace").rstrip("\r\n"))

    reader = asyncio.create_task(read_serial(), name=f"serial-{persona}")
    qmp = QMPClient(persona)
    try:
        for _ in range(200):
            if sock.exists() or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await qmp.connect(str(sock))
        yield Guest(qmp, lines)
    finally:
        with contextlib.suppress(Exception):
            await qmp.disconnect()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await asyncio.wait_for(reader, 5)


@pytest.fixture(scope="module")
def console() -> images.BuiltImage:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is missing")
    return images.build("console", progress=lambda m: None)


@pytest.fixture(scope="module")
def palette() -> images.BuiltImage:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is missing")
    return images.build("palette", progress=lambda m: None)


WORK_RED = (198, 48, 49)  # c03030 as a 16-bit (RGB565) screendump shows it


@pytest.mark.guests
async def test_console_reports_keys_leds_and_paints_the_colour(
    console: images.BuiltImage, tmp_path: Path
) -> None:
    async with boot(console, tmp_path, "work", "c03030") as guest:
        ready = await guest.wait_line("MUX-READY work", READY_S)
        await guest.wait_line("MUX-LED caps=0 num=0 scroll=0", 30)

        mark = len(guest.lines)
        await guest.tap("a")
        await guest.wait_line("MUX-KEY 30 0", 30, mark)
        assert [ln for ln in guest.lines[mark:] if ln.startswith("MUX-KEY")] == [
            "MUX-KEY 30 1",
            "MUX-KEY 30 0",
        ]

        mark = len(guest.lines)
        await guest.tap("caps_lock")
        await guest.wait_line("MUX-LED caps=1 num=0 scroll=0", 30, mark)
        await guest.tap("caps_lock")
        await guest.wait_line("MUX-LED caps=0 num=0 scroll=0", 30, mark)

        mark = len(guest.lines)  # the guest sets its own LED through sysfs
        await guest.type("\necho 1 > /sys/class/leds/input0::numlock/brightness\n")
        await guest.wait_line("MUX-LED caps=0 num=1 scroll=0", 30, mark)

        # 60 keys one after another: every event arrives, once, in order.
        mark = len(guest.lines)
        keys = "qwertyuiopasdfghjklzxcvbnm1234567890qwertyuiopasdfghjklzxcvb"
        codes = {q: c for c, q in enumerate("1234567890", 2)}
        codes |= {q: c for c, q in enumerate("qwertyuiop", 16)}
        codes |= {q: c for c, q in enumerate("asdfghjkl", 30)}
        codes |= {q: c for c, q in enumerate("zxcvbnm", 44)}
        await guest.tap(*keys)
        expected = [f"MUX-KEY {codes[q]} {v}" for q in keys for v in (1, 0)]
        assert [ln for ln in guest.lines[mark:] if ln.startswith("MUX-KEY")] == expected

        colour, share = await guest.screendump(tmp_path / "console.ppm")
        assert colour == WORK_RED and share > 0.9

        # Nothing but MUX lines on ttyS0: no kernel log, no shell noise.
        assert all(ln.startswith("MUX-") for ln in guest.lines if ln.strip()), guest.lines
        assert ready == guest.lines.index("MUX-READY work")


@pytest.mark.guests
async def test_console_with_xhci_reports_usb_storage_uevents(
    console: images.BuiltImage, tmp_path: Path
) -> None:
    disk = tmp_path / "stick.img"
    disk.write_bytes(bytes(4 << 20))
    extra = ("-device", "qemu-xhci", "-device", "usb-tablet")
    async with boot(console, tmp_path, "home", "3060c0", *extra) as guest:
        await guest.wait_line("MUX-READY home", READY_S)
        await guest.wait_line("MUX-UEVENT add usb", 30)  # xhci root hubs and the tablet
        mark = len(guest.lines)
        await guest.tap("b")
        await guest.wait_line("MUX-KEY 48 0", 30, mark)

        await guest.qmp.execute(
            "blockdev-add",
            {"node-name": "stick", "driver": "raw", "file": {"driver": "file", "filename": str(disk)}},
        )
        await guest.qmp.execute("device_add", {"driver": "usb-storage", "id": "stick", "drive": "stick"})
        await guest.wait_line("MUX-UEVENT add block sda", 60, mark)
        await guest.qmp.execute("device_del", {"id": "stick"})
        await guest.wait_line("MUX-UEVENT remove block sda", 30, mark)
        colour, share = await guest.screendump(tmp_path / "home.ppm")
        assert share > 0.9 and abs(colour[2] - 0xC0) < 8 and abs(colour[0] - 0x30) < 8


@pytest.mark.guests
async def test_palette_cycles_full_screen_colours(palette: images.BuiltImage, tmp_path: Path) -> None:
    async with boot(palette, tmp_path, "saver", "c03030") as guest:
        await guest.wait_line("MUX-READY saver", READY_S)
        await guest.wait_line("MUX-LED ", 30)
        full: set[tuple[int, int, int]] = set()  # colours that filled the whole screen
        deadline = time.monotonic() + 60  # it changes colour twice a second
        while (len(full) < 3 or WORK_RED not in full) and time.monotonic() < deadline:
            colour, share = await guest.screendump(tmp_path / "palette.ppm")
            if share > 0.99:  # not caught mid-repaint; no text, no cursor
                full.add(colour)
            await asyncio.sleep(0.2)
        assert len(full) >= 3, full
        assert WORK_RED in full
        mark = len(guest.lines)
        await guest.tap("num_lock")
        await guest.wait_line("MUX-LED caps=0 num=1 scroll=0", 30, mark)


@pytest.mark.services
def test_list_images_names_every_recipe() -> None:
    names = [name for name, _ in images.list_images()]
    assert names == images.image_names()
