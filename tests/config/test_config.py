"""Config loading: the schema, defaults, and errors that name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.config import demo_config, load_config
from mux.errors import ConfigError, UnknownPersona

pytestmark = pytest.mark.pure


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mux.toml"
    path.write_text(text)
    return path


def test_full_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[mux]
accel = "tcg"

[[persona]]
name = "work"
color = "#C03030"
restart = "on-failure"

[[persona]]
name = "home"
image = "palette"
memory_mb = 128

[input]
hotkeys = { "ctrl+alt+f1" = "work", "ctrl+alt+right" = "next" }
"""))
    assert config.mux.accel == "tcg"
    assert config.names == ["work", "home"]
    assert config.persona("work").color == "c03030"
    assert config.persona("work").restart == "on-failure"
    assert config.persona("home").image == "palette"
    assert config.persona("home").memory_mb == 128
    assert config.persona("home").restart == "no"
    assert config.input.hotkeys == {"ctrl+alt+f1": "work", "ctrl+alt+right": "next"}
    assert config.display.output == "headless"
    assert config.mqtt is None


@pytest.mark.parametrize(("text", "line", "words"), [
    ('[mux]\naccel = "tcg"\nbogus = 1\n[[persona]]\nname = "a"\n', 3, "unknown key 'mux.bogus'"),
    ('[mux]\naccel = "fast"\n[[persona]]\nname = "a"\n', 2, "must be one of auto, kvm, tcg"),
    ('[[persona]]\nname = "a"\n\n[[persona]]\nname = "b"\nmemory_mb = "lots"\n', 6, "must be int"),
    ('[[persona]]\nname = "a"\n[[persona]]\nname = "a"\n', 4, "used twice"),
    ('[[persona]]\nname = "a"\nimage = "nope"\n', 3, "unknown image 'nope'"),
    ('[[persona]]\nname = "a"\nrestart = "sometimes"\n', 3, "on-failure"),
    ('[[persona]]\nname = "a"\n[input]\nhotkeys = { "ctrl+f1" = "zzz" }\n', 4, "unknown persona 'zzz'"),
    ('[[persona]]\nname = "a"\n[input]\nhotkeys = { "ctrl+fone" = "a" }\n', 4, "unknown key name 'fone'"),
    ('[[persona]\nname = "a"\n', 1, "TOML syntax error"),
    ('[mux]\naccel = "tcg"\n', 0, "at least one [[persona]]"),
    ('[[persona]]\nname = "a"\nkernel = "k"\nimage = "console"\n', 4, "either image or kernel"),
    ('[[persona]]\nname = "a"\ninitrd = "i"\n', 3, "only for a persona with its own kernel"),
    ('[[persona]]\nname = "a"\ndisk = "gone.qcow2"\n', 3, "gone.qcow2: no such file"),
    ('[[persona]]\nname = "a"\nfirmware = "coreboot"\n', 3, "must be one of bios, uefi"),
    ('[[persona]]\nname = "a"\nqemu_args = ["-display", "gtk"]\n', 3, "-display is set by mux"),
    ('[[persona]]\nname = "none"\n[mqtt]\nurl = "mqtt://localhost"\n', 2, "clear the selection"),
    ('[[persona]]\nname = "a"\n[[persona]]\nname = "detached"\n[mqtt]\nurl = "mqtt://h"\n', 4,
     "Home Assistant"),
    ('[[persona]]\nname = "copy"\n', 2, "reserved for hotkeys"),
    ('[[persona]]\nname = "a"\n[clipboard]\nallow = ["a => b"]\n', 4, 'reads "from -> to"'),
    ('[[persona]]\nname = "a"\n[clipboard]\nallow = ["a -> b"]\n', 4, "unknown persona 'b'"),
    ('[[persona]]\nname = "a"\n[clipboard]\nallow = "a -> a"\n', 4, "must be list"),
    ('[[persona]]\nname = "a"\n[clipboard]\nzz = 1\n', 4, "unknown key 'clipboard.zz'"),
    ('[[persona]]\nname = "a"\n[display]\nresize_guest = "yes"\n', 4, "must be bool"),
])
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert words in message
    if line:
        assert f"{path}:{line}" in message


def test_none_and_detached_are_persona_names_without_mqtt(tmp_path: Path) -> None:
    """The control for the two cases above: only Home Assistant's selects mind the words."""
    config = load_config(write(tmp_path, '[[persona]]\nname = "none"\n[[persona]]\nname = "detached"\n'))
    assert config.names == ["none", "detached"]


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, '[mux]\naccel = 3\n[[persona]]\nname = "A B"\nautostart = "yes"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [loc.line for loc, _ in caught.value.problems] == [2, 4, 5]


def test_demo_config_has_two_personas() -> None:
    config = demo_config()
    assert config.names == ["work", "home"]
    assert config.persona("work").color != config.persona("home").color
    assert config.display.output == "auto" and config.persona("work").image == "console"
    assert not config.persona("work").clipboard


def test_the_desktop_demo_takes_its_defaults_from_the_image_recipe() -> None:
    """``mux demo --desktop``: the desktop recipe's [persona] table gives vga, agent, clipboard,
    memory and resize_guest; the same keys in a file win over it."""
    from mux.config.machine import follows_window
    from mux.images import load_recipe

    defaults = load_recipe("desktop").persona_defaults
    work = demo_config(desktop=True).persona("work")
    assert (work.image, work.vga, work.agent, work.clipboard, work.memory_mb) == (
        "desktop", defaults["vga"], defaults["agent"], defaults["clipboard"], defaults["memory_mb"])
    assert follows_window(demo_config(desktop=True).display, work) is bool(defaults["resize_guest"])
    console = demo_config().persona("work")
    assert (console.vga, console.agent, console.memory_mb) == ("std", False, 256)
    assert not follows_window(demo_config().display, console)


def test_a_files_own_keys_win_over_the_images_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[[persona]]
name = "a"
image = "desktop"
clipboard = false
vga = "std"
memory_mb = 2048

[display]
resize_guest = true
"""))
    from mux.config.machine import follows_window

    a = config.persona("a")
    assert (a.clipboard, a.vga, a.memory_mb, a.agent) == (False, "std", 2048, True)
    assert not follows_window(config.display, a)  # resize_guest needs vga = "virtio"


def test_clipboard_rules_are_kept_in_one_spelling(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[[persona]]
name = "home"
[[persona]]
name = "work"
[clipboard]
allow = ["home->work", " * ->  home "]
"""))
    assert config.clipboard.allow == ("home -> work", "* -> home")
    assert load_config(write(tmp_path, '[[persona]]\nname = "a"\n')).clipboard.allow is None


def test_asking_for_a_persona_that_is_not_configured_is_a_mux_error() -> None:
    config = demo_config()
    assert config.persona("home").name == "home"
    with pytest.raises(UnknownPersona, match="unknown persona 'office' \\(personas: work, home\\)"):
        config.persona("office")


def test_a_persona_with_only_a_disk_boots_it_instead_of_the_console(tmp_path: Path) -> None:
    (tmp_path / "vm.img").write_bytes(b"\0" * 512)
    (tmp_path / "setup.iso").write_bytes(b"\0" * 2048)
    config = load_config(write(tmp_path, '[[persona]]\nname = "a"\ndisk = "vm.img"\n'
                                         '[[persona]]\nname = "b"\ncdrom = "setup.iso"\n'
                                         '[[persona]]\nname = "c"\n'))
    a, b, c = config.personas
    assert (a.image, a.disk, a.boot) == (None, tmp_path / "vm.img", "disk")
    assert (b.image, b.cdrom, b.boot) == (None, tmp_path / "setup.iso", "cdrom")
    assert c.image == "console"
    assert (a.firmware, a.machine, a.cpus, a.vga, a.network, a.overlay, a.agent) == (
        "bios", "pc", 1, "std", "none", False, False)
