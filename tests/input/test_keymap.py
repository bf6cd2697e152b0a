"""Tests for the generated key tables and mux.input.keymap."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from mux.errors import InputError, MuxError, UnknownKeyError
from mux.input import keycodes
from mux.input.keymap import (
    GENERIC_MODIFIERS,
    key_code,
    key_name,
    parse_chord,
    qmp_key,
    text_to_chords,
)

REPO = Path(__file__).resolve().parent.parent.parent
CSV = REPO / "tests" / "data" / "keycodemapdb" / "keymaps.csv"


def _csv_rows() -> list[dict[str, str]]:
    with CSV.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.pure
def test_well_known_codes() -> None:
    assert key_code("leftshift") == 42
    assert key_code("f6") == 64
    assert key_code("a") == 30
    assert key_code("scrolllock") == 70
    assert key_code("left") == 105  # the arrow key, not the mouse button
    assert key_code("btn_left") == 0x110
    assert key_code("KEY_LEFTSHIFT") == 42
    assert key_code(" Enter ") == 28


@pytest.mark.pure
def test_generic_modifiers_mean_the_left_key_when_sending() -> None:
    assert key_code("ctrl") == key_code("leftctrl") == 29
    assert key_code("alt") == 56
    assert key_code("shift") == 42
    assert key_code("meta") == 125


@pytest.mark.pure
def test_qmp_keys() -> None:
    assert qmp_key(30) == {"type": "qcode", "data": "a"}
    assert qmp_key(42) == {"type": "qcode", "data": "shift"}
    assert qmp_key(58) == {"type": "qcode", "data": "caps_lock"}
    assert qmp_key(59) == {"type": "qcode", "data": "f1"}
    assert qmp_key(99) == {"type": "qcode", "data": "sysrq"}  # the last CSV row wins
    assert qmp_key(key_code("btn_left")) is None
    assert qmp_key(key_code("wimax")) is None  # no qcode, no scan code


@pytest.mark.pure
def test_keys_without_a_qcode_are_not_sent_as_numbers() -> None:
    # F13 has a qcode in the CSV that QEMU 7.2 does not know; QEMU would turn its key
    # number back into the qcode "unmapped", so it is not expressible.
    f13, katakana = key_code("f13"), key_code("katakana")
    assert keycodes.NUMBER_BY_LINUX[f13] == 0x5D
    assert keycodes.NUMBER_BY_LINUX[katakana] == 0x78
    assert keycodes.NUMBER_BY_LINUX[key_code("kbdillumup")] == 0xD9
    assert qmp_key(f13) is None
    assert qmp_key(katakana) is None


@pytest.mark.pure
def test_every_qcode_is_one_qemu_accepts() -> None:
    assert set(keycodes.QCODE_BY_LINUX.values()) <= keycodes.QEMU_QKEYCODES
    assert "unmapped" not in keycodes.QCODE_BY_LINUX.values()
    assert not set(keycodes.QCODE_BY_LINUX) & set(keycodes.NUMBER_BY_LINUX)


@pytest.mark.pure
def test_name_round_trip() -> None:
    for code, name in keycodes.LINUX_NAME_BY_CODE.items():
        assert key_code(name) == code
        assert key_name(code) == name
    for name, code in keycodes.LINUX_NAMES.items():
        assert code in keycodes.LINUX_NAME_BY_CODE, name
    assert key_name(999) == "code 999"


@pytest.mark.pure
def test_every_csv_qcode_is_in_the_tables() -> None:
    expressible = 0
    for row in _csv_rows():
        qcode = row["QEMU QKeyCode"].strip()
        if not row["Linux Name"] or not qcode or qcode == "unmapped":
            continue
        code = int(row["Linux Keycode"], 0)
        expressible += 1
        if qcode in keycodes.QEMU_QKEYCODES:
            assert qmp_key(code) == {"type": "qcode", "data": keycodes.QCODE_BY_LINUX[code]}
        else:  # a qcode newer than QEMU 7.2 (f13..f24): only its key number is known
            assert code in keycodes.NUMBER_BY_LINUX, row["Linux Name"]
            assert qmp_key(code) is None
    assert expressible > 200


@pytest.mark.pure
def test_every_csv_name_is_in_the_tables() -> None:
    for row in _csv_rows():
        if row["Linux Name"]:
            name = row["Linux Name"].lower().removeprefix("key_")
            assert keycodes.LINUX_NAMES[name] == int(row["Linux Keycode"], 0)


@pytest.mark.services
@pytest.mark.parametrize("tool", ["gen_keymap.py", "gen_scancodes.py"])
def test_generated_module_is_up_to_date(tool: str) -> None:
    """mux/input/keycodes.py and scancodes.py are what their tools make of the CSV."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / tool), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.pure
def test_text_to_chords() -> None:
    shift, h, i, one, enter = 42, 35, 23, 2, 28
    assert text_to_chords("Hi!\n") == [(shift, h), (i,), (shift, one), (enter,)]
    assert text_to_chords("\t ") == [(15,), (57,)]
    assert text_to_chords("") == []
    assert text_to_chords('~"|') == [(shift, 41), (shift, 40), (shift, 43)]


@pytest.mark.pure
def test_every_printable_ascii_character_is_typeable() -> None:
    chords = text_to_chords("".join(chr(c) for c in range(0x20, 0x7F)))
    assert len(chords) == 0x7F - 0x20
    assert len(set(chords)) == len(chords)  # no two characters share a chord
    for chord in chords:
        assert all(qmp_key(code) is not None for code in chord)


@pytest.mark.pure
@pytest.mark.parametrize("text", ["héllo", "a\rb", "€"])
def test_untypeable_text_names_the_character(text: str) -> None:
    bad = next(ch for ch in text if ord(ch) > 0x7E or ch == "\r")
    with pytest.raises(InputError, match=repr(bad).replace("\\", "\\\\")):
        text_to_chords(text)


@pytest.mark.pure
def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownKeyError) as info:
        key_code("lefshift")
    assert "leftshift" in str(info.value)
    assert "leftshift" in info.value.suggestions
    assert isinstance(info.value, InputError) and isinstance(info.value, MuxError)
    assert not isinstance(info.value, (KeyError, ValueError))  # a user's mistake, not a bug
    with pytest.raises(UnknownKeyError, match="did you mean 'esc'"):
        key_code("escp")
    with pytest.raises(UnknownKeyError, match=r"unknown key name 'qqqqqq' .*use Linux names"):
        key_code("qqqqqq")


@pytest.mark.pure
def test_parse_chord_for_sending() -> None:
    assert parse_chord("ctrl+alt+f1") == (29, 56, 59)
    assert parse_chord("RightCtrl + Delete") == (97, 111)
    assert parse_chord("a") == (30,)


@pytest.mark.pure
def test_parse_chord_for_matching() -> None:
    assert parse_chord("ctrl+alt+f1", generic_modifiers=True) == (
        frozenset(GENERIC_MODIFIERS["ctrl"]),
        frozenset(GENERIC_MODIFIERS["alt"]),
        frozenset({59}),
    )
    assert parse_chord("leftctrl+x", generic_modifiers=True) == (frozenset({29}), frozenset({45}))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty chord"),
        ("  ", "empty chord"),
        ("ctrl+", "empty key name"),
        ("ctrl++a", "empty key name"),
        ("ctrl+ctrl+a", "twice"),
        ("ctrl+leftctrl+a", "twice"),
        ("ctrl+alt+fl", "unknown key name 'fl' in chord 'ctrl\\+alt\\+fl'"),
    ],
)
@pytest.mark.pure
def test_bad_chords(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_chord(spec, generic_modifiers=True)
