"""Tests for mux.input.hotkeys: parsing and matching chords."""

from __future__ import annotations

import pytest

from mux.errors import InputError
from mux.input.hotkeys import DEFAULT_HOTKEYS, HotkeyMatcher, parse_hotkey, parse_hotkeys
from mux.input.keymap import key_code

pytestmark = pytest.mark.pure

LCTRL, RCTRL, LALT, RALT, LSHIFT = 29, 97, 56, 100, 42
F1, F2, RIGHT, LEFT, SCROLL, A = 59, 60, 106, 105, 70, 30


def test_parse_hotkey() -> None:
    hotkey = parse_hotkey("ctrl+alt+f1", "work")
    assert hotkey.prefix == (frozenset({LCTRL, RCTRL}), frozenset({LALT, RALT}))
    assert hotkey.final == frozenset({F1})
    assert hotkey.target == "work"
    assert hotkey.codes == {LCTRL, RCTRL, LALT, RALT, F1}


def test_defaults_avoid_common_guest_shortcuts() -> None:
    matcher = HotkeyMatcher(DEFAULT_HOTKEYS)
    assert matcher.completes([SCROLL], RIGHT) == "next"
    assert matcher.completes([SCROLL], LEFT) == "previous"
    for prefix in ([LCTRL, LALT], [LCTRL]):
        for final in (F1, RIGHT, LEFT):
            assert matcher.completes(prefix, final) is None
    assert matcher.completes([SCROLL], key_code("down")) == "overview"
    assert matcher.completes([SCROLL], key_code("c")) == "copy"
    assert matcher.completes([SCROLL], key_code("v")) == "paste"
    assert set(DEFAULT_HOTKEYS.values()) == {"next", "previous", "overview", "copy", "paste"}


def test_generic_modifiers_match_either_side() -> None:
    matcher = HotkeyMatcher({"ctrl+alt+f1": "work"})
    for ctrl in (LCTRL, RCTRL):
        for alt in (LALT, RALT):
            assert matcher.completes([ctrl, alt], F1) == "work"
            assert matcher.completes([alt, ctrl], F1) == "work"  # prefix order is free
            assert matcher.could_begin([ctrl])
            assert matcher.could_begin([alt, ctrl])


def test_sided_modifiers_match_one_side() -> None:
    matcher = HotkeyMatcher({"leftctrl+f1": "work"})
    assert matcher.completes([LCTRL], F1) == "work"
    assert matcher.completes([RCTRL], F1) is None
    assert not matcher.could_begin([RCTRL])


def test_prefix_must_match_exactly() -> None:
    matcher = HotkeyMatcher({"ctrl+alt+f1": "work", "alt+f2": "play"})
    assert matcher.completes([LCTRL], F1) is None  # alt missing
    assert matcher.completes([LCTRL, LALT, LSHIFT], F1) is None  # extra held-back key
    assert matcher.completes([LCTRL, RCTRL], F1) is None  # both ctrls, no alt
    assert matcher.completes([LCTRL, LALT], F2) is None
    assert matcher.completes([RALT], F2) == "play"
    assert matcher.completes([LCTRL, LALT], A) is None
    assert not matcher.could_begin([LCTRL, RCTRL])
    assert not matcher.could_begin([F1])
    assert not matcher.could_begin([])


def test_single_key_hotkey() -> None:
    matcher = HotkeyMatcher({"pause": "next"})
    assert matcher.completes([], key_code("pause")) == "next"
    assert not matcher.could_begin([key_code("pause")])


def test_targets_are_checked_against_personas() -> None:
    HotkeyMatcher({"scrolllock+1": "work"}, personas=["work"])
    with pytest.raises(InputError, match=r"unknown target 'wrok'.*work"):
        HotkeyMatcher({"scrolllock+1": "wrok"}, personas=["work"])


@pytest.mark.parametrize(
    ("hotkeys", "message"),
    [
        ({"ctrl+alt+fone": "next"}, "unknown key name 'fone'"),
        ({"scrolllock+rigth": "next"}, "did you mean 'right'"),
        ({"": "next"}, "empty chord"),
        ({"ctrl++f1": "next"}, "empty key name"),
        ({"ctrl+f1": ""}, "empty target"),
        ({"alt+ctrl+alt+f1": "next"}, "'alt' twice"),
        ({"ctrl+alt+f1": "next", "Alt+Ctrl+F1": "previous"}, "same keys"),
        ({"ctrl+f1": "next", "leftctrl+f1": "previous"}, "same keys"),
        ({"ctrl+alt": "next", "ctrl+alt+f1": "previous"}, "fires before"),
        ({"scrolllock+right": "next", "scrolllock": "previous"}, "fires before"),
    ],
)
def test_bad_hotkeys(hotkeys: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        HotkeyMatcher(hotkeys)


def test_every_problem_is_reported() -> None:
    with pytest.raises(InputError) as info:
        HotkeyMatcher({"ctrl+nope": "next", "": "next", "a": ""})
    text = str(info.value)
    assert "nope" in text and "empty chord" in text and "empty target" in text


def test_non_conflicting_overlaps_are_allowed() -> None:
    matcher = HotkeyMatcher({"alt+f1": "next", "ctrl+alt+f1": "previous", "leftctrl+f2": "a"})
    assert matcher.completes([LALT], F1) == "next"
    assert matcher.completes([LCTRL, LALT], F1) == "previous"
    assert matcher.completes([LCTRL], F2) == "a"


def test_parse_hotkeys_keeps_config_order() -> None:
    parsed = parse_hotkeys({"scrolllock+right": "next", "ctrl+alt+f1": "work"}, ["work"])
    assert [(h.spec, h.target) for h in parsed] == [
        ("scrolllock+right", "next"),
        ("ctrl+alt+f1", "work"),
    ]
    assert parse_hotkeys({}) == ()
