"""The ``desktop`` recipe without building it: it reuses the ``debian`` image's files
(included, never copied), and the disk builder configures any disk recipe by its own
name, with the recipe's ``[enable]`` units enabled and its ``mask`` ones masked."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mux.errors import ImageError
from mux.images import archive, builder, debian, disk

pytestmark = pytest.mark.pure


def test_the_desktop_recipe_includes_the_debian_files_and_copies_none() -> None:
    desktop, plain = builder.load_recipe("desktop"), builder.load_recipe("debian")
    settings = tomllib.loads(desktop.files["recipe.toml"].decode())
    assert desktop.kind == "disk" and desktop.on_demand
    assert settings["include"] == ["common", "debian"]
    own = {path: data for path, data in desktop.files.items() if "/" not in path}
    shared = {data for path, data in plain.files.items() if path != "recipe.toml"}
    assert not [path for path, data in own.items() if data in shared and path != "recipe.toml"]
    installed = set(settings["install"])
    assert {"debian/mux-report", "debian/mux-report.service", "common/lib.sh"} <= installed
    assert installed <= set(desktop.files), installed - set(desktop.files)
    assert dict(desktop.persona_defaults)["vga"] == "virtio"
    # The guest helpers other code runs through the agent sit at fixed paths (a contract).
    for helper in ("mux-session", "mux-clipboard", "mux-resize", "mux-xsession"):
        assert settings["install"][helper] == f"/usr/lib/mux/{helper}"
        assert desktop.files[helper].startswith(b"#!/bin/sh\n")


def fake_tree(root: Path) -> None:
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.12.1-amd64").write_bytes(b"kernel")
    (root / "boot" / "initrd.img-6.12.1-amd64").write_bytes(b"initrd")
    units = root / "usr" / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in ("systemd-networkd.service", "systemd-networkd.socket"):
        (units / unit).write_text("[Unit]\n")


def test_configure_names_the_tree_after_the_recipe_and_enables_and_masks_its_units(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_tree(root)
    recipe = builder.load_recipe("desktop")
    settings = tomllib.loads(recipe.files["recipe.toml"].decode())
    units = debian.Units(settings["enable"], tuple(settings["mask"]))
    ids = disk.DiskIds.derive("k")
    assert debian.configure(root, recipe.files, settings["install"], ids, "desktop", units) == "6.12.1-amd64"

    system = root / "etc" / "systemd" / "system"
    assert (system / "multi-user.target.wants" / "mux-desktop.service").readlink() == Path(
        "/etc/systemd/system/mux-desktop.service")
    assert (system / "multi-user.target.wants" / "mux-report.service").readlink() == Path(
        "/etc/systemd/system/mux-report.service")  # every disk image's own units too
    assert (system / "getty@tty1.service").readlink() == Path("/dev/null")
    assert (root / "etc" / "hostname").read_text() == "desktop\n"
    assert "\tdesktop\n" in (root / "etc" / "hosts").read_text()
    assert (root / "usr/lib/mux/mux-clipboard").stat().st_mode & 0o777 == 0o755
    assert (root / "etc/default/spice-vdagentd").stat().st_mode & 0o777 == 0o644
    assert (root / "usr/lib/mux/mux-report").read_bytes() == recipe.files["debian/mux-report"]

    missing = debian.Units({"no-such.service": "multi-user.target"})
    with pytest.raises(ImageError, match=r"\[enable\] names 'no-such.service'"):
        debian.configure(root, recipe.files, settings["install"], ids, "desktop", missing)


def mmdebstrap_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, bytes]) -> list[str]:
    """The mmdebstrap command build_disk runs for ``files`` (stopped right there)."""
    ran: list[list[str]] = []

    def stop(argv: list[str], what: str) -> None:
        ran.append(argv)
        raise ImageError("stopped after mmdebstrap")

    monkeypatch.setattr(debian, "check_host", lambda name="debian": None)
    monkeypatch.setattr(debian, "run", stop)
    src = archive.Source("http://mirror.example/debian", "trixie", "a test")
    with pytest.raises(ImageError, match="stopped"):
        debian.build_disk("desktop", files, "k", src, tmp_path / "work", tmp_path, lambda m: None)
    return ran[0]


def test_the_recipe_leaves_documentation_out_but_keeps_the_copyrights(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recipe = builder.load_recipe("desktop")
    argv = mmdebstrap_argv(monkeypatch, tmp_path, recipe.files)
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert argv.index("--dpkgopt=path-include=/usr/share/doc/*/copyright") > argv.index(
        "--dpkgopt=path-exclude=/usr/share/doc/*")  # dpkg: the last matching option wins
    assert any(a.startswith("--include=") and ",twm," in a and a.endswith(",xclip") for a in argv)
    plain = mmdebstrap_argv(monkeypatch, tmp_path, builder.load_recipe("debian").files)
    assert not [a for a in plain if a.startswith("--dpkgopt")]  # the debian image: as before

    table = b'[enable]\n"mux-desktop.service" = "multi-user.target"\n'
    toml = recipe.files["recipe.toml"].replace(table, b"")
    broken = dict(recipe.files, **{"recipe.toml": b'enable = ["mux-desktop.service"]\n' + toml})
    with pytest.raises(ImageError, match=r"desktop: broken recipe\.toml: AttributeError"):
        debian.build_disk("desktop", broken, "k", archive.source(), tmp_path / "work", tmp_path,
                          lambda m: None)
