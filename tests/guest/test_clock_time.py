"""Times as mux reads them (mux.guest.clock): a guest's clock (set_clock, ctl clock) and
``mux logs --since``; and the set_clock step's checks at load (file:line)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mux.errors import ScenarioError
from mux.guest.clock import TimeError, parse_guest_time, parse_iso, parse_since, utc_text
from mux.scenario.parse import load_scenario

pytestmark = pytest.mark.pure

NOW = 1_900_000_000.0  # 2030-03-17T17:46:40Z


def utc(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(("text", "expected"), [
    ("2031-05-01T09:00:00", utc(2031, 5, 1, 9)),  # naive: UTC
    ("2031-05-01 09:00:00.5", utc(2031, 5, 1, 9) + 0.5),
    ("2031-05-01", utc(2031, 5, 1)),  # a date: its midnight UTC
    ("2031-05-01T09:00:00+02:00", utc(2031, 5, 1, 7)),  # an offset is honoured
    ("2031-05-01T09:00:00Z", utc(2031, 5, 1, 9)),
    ("  2031-05-01T09:00:00-05:30 ", utc(2031, 5, 1, 14, 30)),
])
def test_iso_times_are_utc_unless_they_carry_an_offset(text: str, expected: float) -> None:
    assert parse_iso(text) == expected
    assert parse_guest_time(text, NOW) == expected


@pytest.mark.parametrize("word", ["host", "now", "HOST", " now "])
def test_host_and_now_are_the_hosts_current_time(word: str) -> None:
    assert parse_guest_time(word, NOW) == NOW


@pytest.mark.parametrize(("text", "message"), [
    ("tomorrow", "not an ISO 8601 time"),
    ("2031-13-01", "not an ISO 8601 time"),
    ("", "not an ISO 8601 time"),
    ("1969-12-31T23:59:59", "from 1970 to 2069"),
    ("2070-01-01", "from 1970 to 2069"),
])
def test_a_bad_guest_time_says_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(TimeError, match=message):
        parse_guest_time(text, NOW)


@pytest.mark.parametrize(("text", "ago"), [
    ("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1.5m", 90), ("0s", 0),
])
def test_since_takes_a_time_ago(text: str, ago: float) -> None:
    assert parse_since(text, NOW) == NOW - ago


def test_since_takes_an_iso_time_and_refuses_anything_else() -> None:
    assert parse_since("2031-05-01T09:00:00+01:00", NOW) == utc(2031, 5, 1, 8)
    for bad in ("10", "10 m", "m", "-5m", "yesterday"):
        with pytest.raises(TimeError, match="neither a time ago"):
            parse_since(bad, NOW)


def test_utc_text() -> None:
    assert utc_text(utc(2031, 5, 1, 9, 0, 7)) == "2031-05-01T09:00:07Z"


SCENARIO = """\
name: clocks
config:
  persona:
    - {name: deb, kernel: /k, agent: true}
steps:
  - set_clock: {persona: deb, time: "2031-05-01T09:00:00+02:00"}
  - set_clock: {time: host}
  - set_clock: {persona: deb, time: "next tuesday"}
  - set_clock: {persona: nobody, time: host}
  - set_clock: {persona: deb}
"""


def test_set_clock_steps_are_checked_at_load_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "clocks.yaml"
    path.write_text(SCENARIO)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = str(caught.value)
    assert f"{path}:8" in text and "'next tuesday' is not an ISO 8601 time" in text
    assert f"{path}:9" in text and "unknown persona 'nobody'" in text
    assert f"{path}:10" in text and "set_clock: missing argument 'time'" in text
    assert f"{path}:6" not in text and f"{path}:7" not in text  # the good ones
