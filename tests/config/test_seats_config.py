"""``[[seat]]`` tables and ``[mux] steal``: what loads, the implicit seat, and mistakes that
name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.config import load_config
from mux.config.seats import seat_hotkeys, seats_of
from mux.errors import ConfigError

pytestmark = pytest.mark.pure

PERSONAS = '[[persona]]\nname = "work"\n[[persona]]\nname = "home"\n[[persona]]\nname = "lab"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mux.toml"
    path.write_text(text)
    return path


def test_two_seats_load_with_their_keys_and_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, PERSONAS + """
[mux]
steal = true
[input]
hotkeys = { "ctrl+alt+f1" = "work" }
[[seat]]
name = "one"
input = ["/dev/input/by-id/usb-A-event-kbd", "/dev/input/by-id/usb-A-event-mouse"]
output = "window"
display = ":1"
[[seat]]
name = "two"
output = "fullscreen"
monitor = 1
hotkeys = { "scrolllock+right" = "next" }
audio_sink = "alsa_output.usb-Speakers"
personas = ["lab", "home"]
"""))
    one, two = seats_of(config)
    assert config.mux.steal and (one.name, two.name) == ("one", "two")
    assert one.input == ("/dev/input/by-id/usb-A-event-kbd", "/dev/input/by-id/usb-A-event-mouse")
    assert (one.output, one.display, one.personas, one.audio_sink) == ("window", ":1", None, None)
    assert (two.output, two.monitor, two.personas) == ("fullscreen", 1, ("lab", "home"))
    assert two.audio_sink == "alsa_output.usb-Speakers"
    assert seat_hotkeys(config, one) == {"ctrl+alt+f1": "work"}  # [input] hotkeys: the default
    assert seat_hotkeys(config, two) == {"scrolllock+right": "next"}


def test_without_seat_tables_one_implicit_seat_is_input_and_display(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, PERSONAS + """
[input]
devices = ["auto"]
[display]
output = "window"
fullscreen = true
"""))
    (seat,) = seats_of(config)
    assert not config.mux.steal and config.seats == ()
    assert (seat.name, seat.input, seat.output, seat.personas) == ("default", ("auto",), "fullscreen", None)


@pytest.mark.parametrize(("text", "line", "words"), [
    ('[[seat]]\nname = "One"\n', 8, "seat name 'One'"),
    ('[[seat]]\nname = "a"\n[[seat]]\nname = "a"\n', 10, "seat name 'a' is used twice"),
    ('[[seat]]\nname = "a"\noutput = "tv"\n', 9, "must be one of window, fullscreen, headless, auto"),
    ('[[seat]]\nname = "a"\npersonas = ["work", "garden"]\n', 9, "unknown persona 'garden'"),
    ('[[seat]]\nname = "a"\npersonas = []\n', 9, "may show no persona"),
    ('[[seat]]\nname = "a"\nmonitor = -1\n', 9, "must be 0 or more"),
    ('[[seat]]\nname = "a"\ncolour = "red"\n', 9, "unknown key 'seat[0].colour'"),
    ('[[seat]]\nname = "a"\ninput = ["/dev/k"]\n[[seat]]\nname = "b"\ninput = ["/dev/k"]\n', 12,
     "input device '/dev/k' is already grabbed by seat 'a'"),
    ('[[seat]]\nname = "a"\npersonas = ["home"]\nhotkeys = { "ctrl+alt+f1" = "work" }\n', 10,
     "targets unknown persona 'work'"),
    ('[input]\ndevices = ["auto"]\n[[seat]]\nname = "a"\n', 8, "each seat has its own"),
    ('[display]\noutput = "window"\n[[seat]]\nname = "a"\n', 8, "each seat has its own"),
    ('[mux]\nsteal = "yes"\n', 8, "must be bool"),
])
def test_seat_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, PERSONAS + text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert words in message, message
    assert f"{path}:{line}" in message, message
