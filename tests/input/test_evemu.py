"""Tests for mux.input.evemu: parsing, framing and writing evemu-record recordings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mux.errors import ConfigError
from mux.input.evemu import (
    Recorded,
    format_recording,
    frames,
    parse_recording,
    read_recording,
    write_recording,
)
from mux.input.events import EV_KEY, EV_REL, EV_SYN, InputEvent

pytestmark = pytest.mark.pure

DATA = Path(__file__).parent.parent / "data"
EV_MSC, MSC_SCAN = 4, 4
KEY_ENTER, KEY_LEFTSHIFT, KEY_A, KEY_B = 28, 42, 30, 48
REL_X, REL_Y, REL_WHEEL, BTN_LEFT = 0, 1, 8, 0x110
SYN = InputEvent(EV_SYN, 0, 0)


def key(code: int, value: int) -> InputEvent:
    return InputEvent(EV_KEY, code, value)


def test_keyboard_recording_events_and_timing() -> None:
    events = read_recording(DATA / "keyboard.evemu")
    assert len(events) == 19
    assert events[:3] == [
        Recorded(0.000001, InputEvent(EV_MSC, MSC_SCAN, 42)),
        Recorded(0.000001, key(KEY_LEFTSHIFT, 1)),
        Recorded(0.000001, SYN),
    ]
    assert events[4] == Recorded(0.120004, key(KEY_A, 1))
    assert [r.event for r in events[-6:-2]] == [key(KEY_ENTER, 1), SYN, key(KEY_ENTER, 2), SYN]
    assert [r.time for r in events[-2:]] == [1.3, 1.3]


def test_keyboard_recording_frames() -> None:
    batches = [[r.event for r in frame] for frame in frames(read_recording(DATA / "keyboard.evemu"))]
    assert batches[:3] == [
        [InputEvent(EV_MSC, MSC_SCAN, 42), key(KEY_LEFTSHIFT, 1), SYN],
        [InputEvent(EV_MSC, MSC_SCAN, 30), key(KEY_A, 1), SYN],
        [key(KEY_A, 0), key(KEY_LEFTSHIFT, 0), SYN],
    ]
    assert len(batches) == 8
    assert all(batch[-1] == SYN for batch in batches)


def test_mouse_recording_relative_motion_and_negative_values() -> None:
    batches = [[r.event for r in frame] for frame in frames(read_recording(DATA / "mouse.evemu"))]
    assert batches == [
        [InputEvent(EV_REL, REL_X, 3), InputEvent(EV_REL, REL_Y, -2), SYN],
        [InputEvent(EV_REL, REL_X, 5), SYN],
        [InputEvent(EV_MSC, MSC_SCAN, 589825), key(BTN_LEFT, 1), SYN],
        [key(BTN_LEFT, 0), SYN],
        [InputEvent(EV_REL, REL_WHEEL, -1), SYN],
    ]


def test_frames_drop_an_unfinished_last_frame() -> None:
    text = "E: 0.000001 0001 001e 0001\nE: 0.000001 0000 0000 0000\nE: 0.100000 0001 001e 0000\n"
    assert frames(parse_recording(text)) == [[Recorded(0.000001, key(KEY_A, 1)), Recorded(0.000001, SYN)]]


def test_bad_line_in_a_file_names_file_and_line() -> None:
    path = DATA / "bad_timestamp.evemu"
    with pytest.raises(ConfigError) as info:
        read_recording(path)
    assert str(info.value).startswith(f"{path}:6: not an evemu line: 'E: 0.5 0001 001e 0000'")
    assert "6 digits" in str(info.value)


@pytest.mark.parametrize(
    "line",
    [
        "E: 0.000001 0001 001e",  # no value
        "E: 0.000001 0001 001g 0001",  # not hex
        "E: 0.000001 00001 001e 0001",  # type wider than 16 bits
        "E: 1 0001 001e 0001",  # no microseconds
        "E: 0.000001 0001 001e 1.5",  # value not an integer
        "X: something",  # unknown line kind
        "garbage",
    ],
)
def test_bad_lines_are_refused(line: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_recording(f"# EVEMU 1.3\nN: dev\n{line}\n", "rec.evemu")
    assert str(info.value).startswith("rec.evemu:3: not an evemu line")
    assert info.value.problems[0][0].line == 3


def test_value_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"rec:1: event value 4294967296 does not fit in 32 bits"):
        parse_recording("E: 0.000001 0003 0000 4294967296", "rec")


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.evemu"
    with pytest.raises(ConfigError, match=f"^{missing}: cannot read the recording"):
        read_recording(missing)


def test_write_then_read(tmp_path: Path) -> None:
    events = [Recorded(0.0, key(KEY_B, 1)), Recorded(0.0, SYN), Recorded(2.5, InputEvent(EV_REL, REL_Y, -7))]
    path = tmp_path / "out.evemu"
    write_recording(events, path, name="test # device")
    assert read_recording(path) == events
    text = path.read_text()
    assert "N: test # device\n" in text
    assert "E: 2.500000 0002 0001 -007\n" in text  # evemu's own "%04d" for values


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**9),  # microseconds
            st.integers(0, 0x1F),
            st.integers(0, 0x2FF),
            st.integers(-(2**31), 2**31 - 1),
        )
    )
)
def test_format_then_parse_round_trips(rows: list[tuple[int, int, int, int]]) -> None:
    events = [Recorded(us / 1_000_000, InputEvent(t, c, v)) for us, t, c, v in sorted(rows)]
    assert parse_recording(format_recording(events)) == events
