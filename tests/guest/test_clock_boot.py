"""``clock`` at boot, as the guest reads its own clock: console guests (TCG) print
``date -u`` on their serial port.

The console image keeps its RTC in UTC (Linux's default) and runs no NTP client, so
its ``date -u`` is the RTC QEMU started: ``"utc"`` the host's UTC time, ``"host"`` the
host's local time (the test gives QEMU a time zone 5 h 45 min east of UTC, so the two
cannot be mistaken), ``"2031-05-01T09:00:00"`` that time plus the time since boot.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mux.config import PersonaConfig
from mux.scenario.runner import StepRunner
from tests.conftest import READY_S

pytestmark = pytest.mark.guests

#: POSIX TZ: local time is UTC + 5:45 (no tz database needed), QEMU's and this test's.
ZONE, EAST = "MUX-05:45", dt.timedelta(hours=5, minutes=45)
#: How far a guest's clock may be from the expected one when it is read (its RTC has
#: whole seconds, its line takes a moment to arrive; the zone offset is far larger).
SLACK = dt.timedelta(seconds=90)
DATE = re.compile(r"MUX-DATE-(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's local time zone, for this test and the QEMUs it starts."""
    monkeypatch.setenv("TZ", ZONE)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def guest_date(ctl: Any, name: str) -> tuple[dt.datetime, dt.datetime]:
    """The guest's ``date -u`` and the host's UTC time when the line arrived."""
    persona = ctl.persona(name)
    await persona.serial.wait_for(re.compile(f"MUX-READY {name}"), READY_S, start=0)
    await ctl.switch(name, "test")
    mark = persona.serial.end
    await StepRunner(ctl).step_type({"text": "date -u +MUX-DATE-%Y-%m-%dT%H:%M:%S >/dev/ttyS0\n"})
    match = await persona.serial.wait_for(DATE, READY_S, start=mark)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return dt.datetime.fromisoformat(match[1]), now


async def test_utc_host_and_a_fixed_start_set_the_guests_clock(controller: Any, zone: None) -> None:
    fixed = dt.datetime(2031, 5, 1, 9, 0, 0)
    local = dt.datetime.now()  # the host's local time, in ZONE
    assert abs(local - dt.datetime.now(dt.UTC).replace(tzinfo=None) - EAST) < dt.timedelta(seconds=5)
    began = time.monotonic()
    async with controller(PersonaConfig("utc", clock="utc"), PersonaConfig("host", clock="host"),
                          PersonaConfig("fixed", clock="2031-05-01T09:00:00")) as ctl:
        guest, now = await guest_date(ctl, "utc")
        assert abs(guest - now) < SLACK, (guest, now)  # the control: UTC is the host's UTC
        guest, now = await guest_date(ctl, "host")
        assert abs(guest - (now + EAST)) < SLACK, (guest, now)  # the host's local time
        guest, _now = await guest_date(ctl, "fixed")
        since_boot = dt.timedelta(seconds=time.monotonic() - began)
        assert fixed <= guest <= fixed + since_boot + SLACK, (guest, since_boot)
