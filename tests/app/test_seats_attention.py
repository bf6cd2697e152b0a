"""Attention with two seats: a request shows on the banner of every seat that may show the
asking persona, and ``on_attention = "switch"`` brings it to the first such seat whose keys
are all up. The policy (pure), the watcher on two seats with headless outputs, and real
console guests (TCG): seat one holds a key, seat two takes the request; seat one's keys up,
seat one, first in order, takes the next."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

from mux.app import attention as attention_module
from mux.app.attention import SeatView, due
from mux.app.events import AttentionCleared, AttentionRequested, Event, Switched
from mux.config import DisplaySection, PersonaConfig
from mux.config.schema import SeatSection
from mux.input.events import EV_KEY, EV_SYN, SYN_REPORT, InputEvent
from mux.input.seats import Seat
from tests.app.test_attention import Watched, request, run_in
from tests.conftest import READY_S, wait_until
from tests.documented import documented_number

SYN = InputEvent(EV_SYN, SYN_REPORT, 0)
#: Seat one may show every persona, seat two only home and lab.
SEATS = (SeatSection("one"), SeatSection("two", personas=("home", "lab")))
PERSONAS = (PersonaConfig("work", color="c03030"), PersonaConfig("home", color="30a040"),
            PersonaConfig("lab", color="3060c0"))


@pytest.mark.pure
def test_the_policy_picks_the_first_seat_that_may_show_the_persona_with_keys_up() -> None:
    def seats(one: str | None, two: str | None, one_pressed: bool = False,
              two_pressed: bool = False) -> list[SeatView]:
        return [SeatView("one", one, ("alpha", "beta", "gamma"), one_pressed),
                SeatView("two", two, ("beta", "gamma"), two_pressed)]

    gamma = [request("gamma")]
    assert due(gamma, seats("alpha", "beta"), "switch", 9) == (("gamma", "one"), None)  # config order
    assert due(gamma, seats("alpha", "beta", one_pressed=True), "switch", 9) == (("gamma", "two"), None)
    assert due(gamma, seats("alpha", "beta", True, True), "switch", 9) == (None, None)  # both busy
    assert due(gamma, seats("alpha", "beta", one_pressed=True), "switch", 0.5) == (None, 1.5)  # idle first
    assert due(gamma, seats("alpha", "beta", one_pressed=True), "notify", 9) == (None, None)
    # a persona active on any seat is seen already: its request switches no seat
    assert due([request("beta")], seats("alpha", "beta"), "switch", 9) == (None, None)
    assert due([request("beta")], seats("alpha", "gamma"), "switch", 9) == (("beta", "one"), None)
    # alpha may only be on seat one: seat one busy, seat two's free keys do not take it...
    alpha = [request("alpha", when=1)]
    assert due(alpha, seats("gamma", "beta", one_pressed=True), "switch", 9) == (None, None)
    assert due(alpha, seats("gamma", "beta"), "switch", 9) == (("alpha", "one"), None)  # (control)
    # ...and a newer request that seat two can take goes first
    both = [*alpha, request("gamma", when=2)]
    assert due(both, seats("beta", None, one_pressed=True), "switch", 9) == (("gamma", "two"), None)


#: Seat one may show every persona, seat two only beta and gamma.
TWO_SEATS = [Seat("one"), Seat("two", ("beta", "gamma"))]


@pytest.mark.pure
def test_each_seat_shows_the_requests_of_the_personas_it_may_show_until_one_is_visited() -> None:
    w = Watched(seats=TWO_SEATS)
    w.switched("alpha", seat="one")
    w.switched("beta", seat="two")
    one, two = w.outputs["one"], w.outputs["two"]
    w.attention.line("gamma", "MUX-ATTENTION ring", 1.0)
    w.attention.line("alpha", "MUX-ATTENTION mine", 2.0)  # active on one; seat two may not show it
    w.attention.line("beta", "MUX-ATTENTION me too", 3.0)  # active on two
    assert one.attention == [("gamma", "ring"), ("alpha", "mine"), ("beta", "me too")]
    assert two.attention == [("gamma", "ring"), ("beta", "me too")]
    assert [r["persona"] for r in w.attention.status()] == ["gamma", "alpha", "beta"]
    assert [r.persona for r in w.attention.armed] == ["gamma"]  # those active somewhere never switch
    w.switched("gamma", seat="two")  # visited on seat two: cleared on both seats
    assert AttentionCleared("gamma") in w.heard
    assert one.attention == [("alpha", "mine"), ("beta", "me too")] and two.attention == [("beta", "me too")]
    w.switched("beta", seat="one")  # beta, free again, visited on seat one
    assert one.attention == [("alpha", "mine")] and two.attention == []
    assert [r["persona"] for r in w.attention.status()] == ["alpha"]


@pytest.mark.pure
def test_a_seats_switch_answers_only_the_requests_it_could_have_answered() -> None:
    w = Watched("switch", seats=TWO_SEATS)
    w.switched("delta", seat="one")
    w.switched("beta", seat="two")
    w.attention.line("alpha", "MUX-ATTENTION a", 1.0)  # only seat one may show alpha
    w.attention.line("gamma", "MUX-ATTENTION g", 2.0)
    assert [r.persona for r in w.attention.armed] == ["alpha", "gamma"]
    w.switched("gamma", seat="two")  # seat two's switch: gamma's answered (and visited)...
    assert [r.persona for r in w.attention.armed] == ["alpha"]  # ...alpha's still may switch
    w.switched("beta", seat="one")  # seat one's switch answers alpha's too (the control)
    assert w.attention.armed == [] and w.outputs["one"].attention == [("alpha", "a")]


@pytest.fixture
def quick_idle(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    monkeypatch.setattr(attention_module, "IDLE_S", 0.3)
    yield 0.3


@pytest.mark.pure
async def test_an_attention_switch_goes_to_a_seat_whose_keys_are_all_up(quick_idle: float) -> None:
    """Both seats hold a key: no switch; seat two lets go: gamma comes to seat two (seat
    one, first in order, still holds its key), once idle."""
    w = Watched("switch", seats=TWO_SEATS)
    w.attention.clock = asyncio.get_running_loop().time
    w.switched("alpha", seat="one")
    w.switched("beta", seat="two")
    switches: list[tuple[str, str, str, float]] = []

    async def switch(target: str, source: str, seat: str) -> str:
        switches.append((target, source, seat, asyncio.get_running_loop().time()))
        w.switched(target, seat=seat)
        return target

    def keys(seat: str, value: int) -> None:
        for event in (InputEvent(EV_KEY, 42, value), SYN):  # left shift
            w.seats.feed(seat, event)
        w.attention.input_came()

    task = asyncio.create_task(w.attention.run({}, switch))
    try:
        keys("one", 1)
        keys("two", 1)
        w.attention.line("gamma", "MUX-ATTENTION ring", 1.0)
        await asyncio.sleep(quick_idle * 3)
        assert switches == [] and w.seats.pressed("one") and w.seats.pressed("two")
        keys("two", 0)
        released = asyncio.get_running_loop().time()
        while not switches:
            await asyncio.sleep(0.01)
        assert switches[0][:3] == ("gamma", "attention", "two")
        assert switches[0][3] - released >= quick_idle - 0.01
        assert w.seats.active("one") == "alpha" and w.seats.active("two") == "gamma"
        assert w.outputs["one"].attention == [] == w.outputs["two"].attention  # visited: cleared
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- real guests ----------------------------------------------------------------------------


def banner(ctl: Any, seat: str) -> list[tuple[str, str]]:
    """What ``seat``'s (headless) output's banner shows."""
    return list(ctl.display.screens[seat].output.attention)


def switches(heard: list[Event]) -> list[tuple[str | None, str, str]]:
    return [(e.new, e.source, e.seat) for e in heard if isinstance(e, Switched)]


async def all_ready(ctl: Any) -> None:
    await asyncio.gather(*(ctl.persona(p.name).serial.wait_for(re.compile(f"MUX-READY {p.name}"), READY_S)
                           for p in PERSONAS))


@pytest.mark.guests
async def test_a_request_shows_on_the_seats_that_may_show_it_and_switches_a_seat_with_keys_up(
        controller: Any) -> None:
    async with controller(*PERSONAS, seats=SEATS, display=DisplaySection(on_attention="switch")) as ctl:
        heard: list[Event] = []
        ctl.subscribe(heard.append)
        await all_ready(ctl)
        if ctl.active_on("one") != "work":
            await ctl.switch("work", "test", "one")
        await ctl.switch("home", "test", "two")
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("work", "home")

        # work's own request (active on seat one): on seat one's banner only (seat two may not
        # show work), and it switches nothing
        await run_in(ctl.persona("work"), "mux-attention from work", "MUX-ATTENTION from work")
        await wait_until(lambda: banner(ctl, "one") == [("work", "from work")], 30, "seat one's banner")
        assert banner(ctl, "two") == []

        # seat one holds a key: lab's request goes to seat two, whose keys are up
        await ctl.input([InputEvent(EV_KEY, 42, 1), SYN], seat="one")  # left shift down on seat one
        await run_in(ctl.persona("lab"), "mux-attention ring", "MUX-ATTENTION ring")
        await wait_until(lambda: any(isinstance(e, AttentionRequested) and e.persona == "lab" for e in heard),
                         10, "lab's request")
        # lab may be on either seat: both banners show it until the switch clears it
        await wait_until(lambda: ("lab", "ring") in banner(ctl, "two") or ctl.active_on("two") == "lab",
                         10, "lab's request on seat two's banner")
        await wait_until(lambda: ("lab", "attention", "two") in switches(heard), 60, "lab to seat two")
        assert ctl.active_on("one") == "work" and ctl.seating.pressed("one")
        assert banner(ctl, "one") == [("work", "from work")] and banner(ctl, "two") == []  # lab's cleared

        # seat one lets go: home (free again) asks and comes to seat one, first in config order
        await ctl.input([InputEvent(EV_KEY, 42, 0), SYN], seat="one")
        idle_s = documented_number(r"no input came for (\d+(?:\.\d+)?) s\b")
        await asyncio.sleep(idle_s)
        await run_in(ctl.persona("home"), "mux-attention home calls", "MUX-ATTENTION home calls")
        await wait_until(lambda: ("home", "attention", "one") in switches(heard), 60, "home to seat one")
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("home", "lab")
        assert [s for s in switches(heard) if s[1] == "attention"] == [("lab", "attention", "two"),
                                                                      ("home", "attention", "one")]
        assert [r["persona"] for r in ctl.status()["attention"]] == ["work"]  # work's own: still pending
