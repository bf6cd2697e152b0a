"""Debian packages fetched and checked by mux itself: a local mirror over HTTP on
127.0.0.1 serves copies of the real archive's files (the session's verified index and
packages), and a tampered InRelease, Packages.xz or .deb is refused with its name, with
nothing left in the cache. Also the .deb unpacker on hand-made packages."""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import shutil
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mux.errors import ImageError
from mux.images import archive, deb, images_key
from mux.images import builder as images


@dataclass
class Mirror:
    root: Path  # the served directory: dists/<suite>/..., pool/...
    url: str
    cache: Path  # MUX_CACHE_DIR of the test
    busybox: archive.Package

    @property
    def inrelease(self) -> Path:
        return self.root / "dists" / "trixie" / "InRelease"

    @property
    def packages(self) -> Path:
        return self.root / "dists" / "trixie" / archive.INDEX

    @property
    def busybox_deb(self) -> Path:
        return self.root / self.busybox.filename

    def cached_files(self) -> list[str]:
        return sorted(p.relative_to(self.cache).as_posix() for p in self.cache.rglob("*") if p.is_file())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    """A trixie mirror in ``tmp_path/mirror`` with copies of the real InRelease,
    Packages.xz and busybox-static's .deb, served on 127.0.0.1; the test's cache is empty."""
    monkeypatch.delenv("MUX_IMAGE_SUITE", raising=False)
    monkeypatch.delenv("MUX_CACHE_DIR", raising=False)
    images.build("palette", progress=lambda m: None)  # the real index and packages, verified
    real = archive.cache_home()
    index = archive.load_index(archive.source(), online=False, progress=lambda m: None)
    if index.source.suite != "trixie":
        pytest.skip("the session's images are not built from trixie")
    busybox = index.resolve("linux-image-amd64", ["busybox-static"])["busybox-static"]
    root = tmp_path / "mirror"
    dists = root / "dists" / "trixie"
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    shutil.copy(real / "debian" / "trixie" / "InRelease", dists / "InRelease")
    shutil.copy(real / "debian" / "trixie" / "Packages.xz", dists / archive.INDEX)
    (root / busybox.filename).parent.mkdir(parents=True)
    shutil.copy(real / "debs" / f"{busybox.sha256}.deb", root / busybox.filename)

    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="local-mirror", daemon=True)
    thread.start()
    cache = tmp_path / "cache"
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MUX_DEBIAN_MIRROR", url)
    monkeypatch.setenv("MUX_CACHE_DIR", str(cache))
    try:
        yield Mirror(root, url, cache, busybox)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _fetch_busybox(m: Mirror) -> Path:
    index = archive.load_index(archive.source(), online=True, progress=lambda msg: None)
    package = index.resolve("linux-image-amd64", ["busybox-static"])["busybox-static"]
    return archive.fetch_deb(index.source, package, progress=lambda msg: None)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.services
def test_an_intact_mirror_gives_checked_packages(mirror: Mirror, tmp_path: Path) -> None:
    """The positive control for the tampering tests below."""
    path = _fetch_busybox(mirror)
    assert path == mirror.cache / "debs" / f"{mirror.busybox.sha256}.deb"
    assert mirror.cached_files() == sorted([
        "debian/trixie/InRelease", "debian/trixie/Packages.xz", "debian/trixie/resolved.json",
        f"debs/{mirror.busybox.sha256}.deb"])
    tree = tmp_path / "tree"
    assert deb.unpack(path, tree) > 0
    assert (tree / "usr" / "bin" / "busybox").read_bytes()[:4] == b"\x7fELF"


@pytest.mark.services
def test_a_tampered_inrelease_is_refused(mirror: Mirror) -> None:
    text = mirror.inrelease.read_text()
    mirror.inrelease.write_text(text.replace("\nLabel: Debian\n", "\nLabel: Debian!\n", 1))
    assert mirror.inrelease.read_text() != text
    with pytest.raises(ImageError, match=r"dists/trixie/InRelease: not signed by the Debian archive keys"):
        _fetch_busybox(mirror)
    assert mirror.cached_files() == []


@pytest.mark.services
def test_an_inrelease_of_another_suite_is_refused(mirror: Mirror) -> None:
    bookworm = mirror.root / "dists" / "bookworm"
    bookworm.mkdir()
    shutil.copy(mirror.inrelease, bookworm / "InRelease")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUX_IMAGE_SUITE", "bookworm")
        with pytest.raises(ImageError, match=r"dists/bookworm/InRelease: signed for trixie, not bookworm"):
            archive.load_index(archive.source(), online=True, progress=lambda msg: None)
    assert mirror.cached_files() == []


@pytest.mark.services
def test_a_tampered_package_index_is_refused(mirror: Mirror) -> None:
    _flip_byte(mirror.packages, mirror.packages.stat().st_size // 2)
    with pytest.raises(ImageError, match=r"main/binary-amd64/Packages.xz: SHA256 \w+ is not"):
        _fetch_busybox(mirror)
    assert mirror.cached_files() == []


@pytest.mark.services
def test_a_tampered_package_is_refused(mirror: Mirror) -> None:
    _flip_byte(mirror.busybox_deb, mirror.busybox_deb.stat().st_size - 100)
    with pytest.raises(ImageError, match=re.escape(mirror.busybox.filename) + ": SHA256"):
        _fetch_busybox(mirror)
    assert not any(name.startswith("debs/") for name in mirror.cached_files())


@pytest.mark.services
def test_a_longer_package_is_refused_without_reading_it_all(mirror: Mirror) -> None:
    with mirror.busybox_deb.open("ab") as f:
        f.write(b"\0" * (10 << 20))
    with pytest.raises(ImageError, match=rf"{re.escape(mirror.busybox.filename)}: "
                                         rf"{mirror.busybox.size + 1} bytes"):
        _fetch_busybox(mirror)
    assert not any(name.startswith("debs/") for name in mirror.cached_files())


@pytest.mark.services
def test_a_cached_index_is_checked_again_when_read(mirror: Mirror) -> None:
    _fetch_busybox(mirror)
    _flip_byte(mirror.cache / "debian" / "trixie" / "Packages.xz", 1000)
    with pytest.raises(ImageError, match=r"debian/trixie/Packages.xz: SHA256"):
        archive.load_index(archive.source(), online=False, progress=lambda msg: None)


@pytest.mark.services
def test_an_unreachable_mirror_is_named(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUX_DEBIAN_MIRROR", f"{mirror.url}/nothing-here")
    with pytest.raises(ImageError, match=r"cannot fetch http://127\.0\.0\.1:\d+/nothing-here/dists/trixie/InRelease"):
        images_key(["palette"], progress=lambda msg: None)


@pytest.mark.services
def test_without_gpgv_nothing_is_trusted(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(mirror.root))  # a PATH with no gpgv on it
    with pytest.raises(ImageError, match=r"needs gpgv, which is not installed: install gpgv"):
        _fetch_busybox(mirror)
    assert mirror.cached_files() == []


# --- the .deb unpacker ---------------------------------------------------------------------


def _make_deb(path: Path, members: dict[str, bytes], data_name: str = "data.tar.xz") -> None:
    """An ar archive: debian-binary, an empty control.tar.xz, and ``members`` as a tar."""
    def tar(files: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as t:
            for name, body in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(body), 0o755
                t.addfile(info, io.BytesIO(body))
        return buffer.getvalue()

    out = bytearray(deb.AR_MAGIC)
    for name, body in [("debian-binary", b"2.0\n"), ("control.tar.xz", tar({})),
                       (data_name, tar(members))]:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    path.write_bytes(bytes(out))


@pytest.mark.pure
def test_deb_unpack_writes_files_and_refuses_to_leave_the_tree(tmp_path: Path) -> None:
    good = tmp_path / "good.deb"
    _make_deb(good, {"./usr/bin/tool": b"#!/bin/sh\n", "./boot/vmlinuz-x": b"kernel"})
    assert deb.unpack(good, tmp_path / "tree") == 2
    assert (tmp_path / "tree" / "boot" / "vmlinuz-x").read_bytes() == b"kernel"
    assert os.access(tmp_path / "tree" / "usr" / "bin" / "tool", os.X_OK)

    evil = tmp_path / "evil.deb"
    _make_deb(evil, {"./usr/../../escaped": b"x"})
    with pytest.raises(ImageError, match=r"evil.deb: member .* outside the tree"):
        deb.unpack(evil, tmp_path / "tree2")
    assert not (tmp_path / "escaped").exists()

    zst = tmp_path / "zst.deb"
    _make_deb(zst, {"./x": b"x"}, data_name="data.tar.zst")
    with pytest.raises(ImageError, match="zstd-compressed"):
        deb.unpack(zst, tmp_path / "tree3")
    (tmp_path / "not.deb").write_bytes(b"PK\x03\x04")
    with pytest.raises(ImageError, match="not a Debian package"):
        deb.unpack(tmp_path / "not.deb", tmp_path / "tree4")
