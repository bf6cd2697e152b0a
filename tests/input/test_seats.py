"""Tests for mux.input.seats: one active persona per seat, refusals, steal, next/previous.

The property tests at the end drive two seats with random keys, hotkeys and switches and
check the issue's invariants after every step; and one seat named "default" against a lone
Router, action for action. Budgets: :func:`tests.config.test_fuzz_files.budget`
(``HYPOTHESIS_PROFILE=fuzz`` runs many more, randomised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import event as note
from hypothesis import given
from hypothesis import strategies as st

from mux.errors import InputError, MuxError, SeatError, UnknownPersona
from mux.input.events import EV_KEY, EV_REL, EV_SYN, SYN_REPORT, InputEvent
from mux.input.keymap import qmp_key
from mux.input.router import Action, Router, Send, SwitchRequest
from mux.input.seats import DEFAULT_SEAT, Seat, SeatMove, Seats
from tests.config.test_fuzz_files import FUZZING, budget

pytestmark = pytest.mark.pure

LCTRL, RCTRL, LALT, LSHIFT = 29, 97, 56, 42
A, F1, F2, RIGHT, LEFT, SCROLL = 30, 59, 60, 106, 105, 70
BTN_LEFT = 0x110
REL_X = 0
SYN = InputEvent(EV_SYN, SYN_REPORT, 0)


def frame(seats: Seats, seat: str, *events: InputEvent) -> list[Action]:
    """Feed events then SYN_REPORT to ``seat``; nothing may come out before the SYN."""
    for event in events:
        assert seats.feed(seat, event) == []
    return seats.feed(seat, SYN)


def press(seats: Seats, seat: str, code: int) -> list[Action]:
    return frame(seats, seat, InputEvent(EV_KEY, code, 1))


def release(seats: Seats, seat: str, code: int) -> list[Action]:
    return frame(seats, seat, InputEvent(EV_KEY, code, 0))


def key(code: int, down: bool) -> dict[str, Any]:
    return {"type": "key", "data": {"down": down, "key": qmp_key(code)}}


def two_seats(**kwargs: Any) -> Seats:
    """home and work on seat one and two; games may only be shown on seat two."""
    kwargs.setdefault("active", {"one": "home", "two": "work"})
    return Seats(["home", "work", "games"],
                 [Seat("one", ["home", "work"]), Seat("two")], **kwargs)


# --- the assignment -------------------------------------------------------------------------


def test_each_seat_routes_to_its_own_persona() -> None:
    seats = two_seats()
    assert press(seats, "one", A) == [Send("home", [key(A, True)])]
    assert press(seats, "two", A) == [Send("work", [key(A, True)])]  # its own keyboard
    assert seats.held("home") == seats.held("work") == {A}
    assert seats.active("one") == "home" and seats.seat_of("work") == "two"
    assert seats.seat_of("games") is None and seats.held("games") == frozenset()
    assert release(seats, "one", A) == [Send("home", [key(A, False)])]
    assert seats.pressed("two") and not seats.pressed("one")


def test_a_persona_active_on_another_seat_is_refused() -> None:
    seats = two_seats()
    press(seats, "one", A)
    with pytest.raises(SeatError, match="persona 'work' is active on seat 'two'"):
        seats.plan_switch("one", "work")
    assert (seats.active("one"), seats.active("two")) == ("home", "work")  # nothing changed
    assert seats.held("home") == {A}


def test_a_persona_the_seat_may_not_show_is_refused() -> None:
    seats = two_seats()
    with pytest.raises(SeatError, match=r"seat 'one' may not show persona 'games' \(it shows: home, work\)"):
        seats.plan_switch("one", "games", steal=True)
    with pytest.raises(UnknownPersona, match="unknown switch target 'overview'"):
        seats.plan_switch("one", "overview")
    with pytest.raises(SeatError, match="unknown seat 'three'"):
        seats.plan_switch("three", "home")


def test_a_switch_releases_what_the_persona_left_holds() -> None:
    seats = two_seats()
    press(seats, "two", LSHIFT)
    plan = seats.plan_switch("two", "games")
    assert plan.moves == (SeatMove("two", "work", "games"),) and plan.stolen_from is None
    assert seats.active("two") == "work"  # a plan changes nothing
    assert seats.apply(plan) == [Send("work", [key(LSHIFT, False)])]
    assert seats.active("two") == "games"
    assert release(seats, "two", LSHIFT) == []  # never down in games
    assert seats.switch("two", "games") == []  # the active one: nothing to do


def test_steal_moves_the_persona_and_the_other_seat_goes_back() -> None:
    seats = two_seats(steal=True)
    seats.switch("two", "games")
    seats.switch("two", "work")  # two: games, then work
    press(seats, "one", A)
    press(seats, "two", LSHIFT)
    plan = seats.plan_switch("one", "work")
    assert plan.moves == (SeatMove("one", "home", "work"), SeatMove("two", "work", "games"))
    assert plan.stolen_from == "two"
    actions = seats.apply(plan)
    assert actions == [Send("home", [key(A, False)]), Send("work", [key(LSHIFT, False)])]
    assert (seats.active("one"), seats.active("two")) == ("work", "games")
    # The stolen persona's keys were released on its old seat; its new one starts clean.
    assert release(seats, "two", LSHIFT) == [] and release(seats, "one", A) == []
    assert press(seats, "one", A) == [Send("work", [key(A, True)])]
    assert press(seats, "two", A) == [Send("games", [key(A, True)])]


def test_steal_per_request_and_a_swap() -> None:
    seats = two_seats()
    seats.switch("two", "home", steal=True)  # one had only home: nothing to go back to
    assert (seats.active("one"), seats.active("two")) == (None, "home")
    assert press(seats, "one", A) == []  # no active persona: dropped
    seats.switch("one", "work")
    # two showed work before home; one leaves work, so two gets it back: a swap.
    assert seats.switch("one", "home", steal=True) == []
    assert (seats.active("one"), seats.active("two")) == ("home", "work")


def test_steal_never_takes_a_persona_from_a_third_seat() -> None:
    seats = Seats(["a", "b", "c", "d"], [Seat("one"), Seat("two"), Seat("three")],
                  active={"one": "a", "two": "b", "three": "c"}, steal=True)
    seats.switch("two", "d")  # two showed b, then d
    seats.switch("three", "b")  # b was free
    plan = seats.plan_switch("one", "d")
    # Losing d, two may not go back to b: it is on three. a (left by one) it never showed.
    assert plan.moves == (SeatMove("one", "a", "d"), SeatMove("two", "d", None))
    seats.apply(plan)
    assert [seats.active(s) for s in seats.seats] == ["d", None, "b"]


def test_a_plan_made_before_another_switch_is_stale() -> None:
    seats = two_seats()
    plan = seats.plan_switch("two", "games")
    seats.switch("one", "home")  # no change: the plan stays good
    seats.switch("one", "work", steal=True)  # changes seat two: the plan is stale
    with pytest.raises(SeatError, match="plan it again"):
        seats.apply(plan)
    assert (seats.active("one"), seats.active("two")) == ("work", None)  # two showed only work


# --- next and previous ----------------------------------------------------------------------


def test_next_and_previous_skip_personas_active_elsewhere() -> None:
    seats = Seats(["a", "b", "c", "d"], [Seat("one"), Seat("two")], active={"one": "a", "two": "b"})
    assert seats.plan_switch("one", "next").persona == "c"  # b is on two
    assert seats.plan_switch("one", "previous").persona == "d"
    assert seats.plan_switch("two", "next").persona == "c"
    assert seats.plan_switch("two", "previous").persona == "d"  # a is on one
    assert seats.plan_switch("one", "next", steal=True).persona == "b"  # steal skips none
    assert seats.plan_switch("one", "next", steal=True).stolen_from == "two"


def test_next_stays_when_nothing_else_is_free_and_is_refused_with_nothing_at_all() -> None:
    seats = Seats(["a", "b"], [Seat("one"), Seat("two", ["a"])], active={"one": "a"})
    with pytest.raises(SeatError, match=r"seat 'two': every persona it may show \(a\) is active"):
        seats.plan_switch("two", "next")
    seats.switch("one", "b")
    seats.switch("two", "next")
    assert seats.active("two") == "a"
    plan = seats.plan_switch("one", "next")
    assert plan.persona == "b" and plan.moves == ()  # a is on two: one stays on b
    seats.switch("one", "a", steal=True)
    assert (seats.active("one"), seats.active("two")) == ("a", None)  # two showed only a


# --- setup ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seats", "active", "error", "message"),
    [
        ([], None, SeatError, "at least one seat"),
        ([Seat(" ")], None, SeatError, "empty name"),
        ([Seat("one"), Seat("one")], None, SeatError, "seat 'one' is defined twice"),
        ([Seat("one", [])], None, SeatError, "seat 'one' may show no persona"),
        ([Seat("one", ["a", "a"])], None, SeatError, "lists persona 'a' twice"),
        ([Seat("one", ["z"])], None, UnknownPersona, "unknown persona of seat 'one' 'z'"),
        ([Seat("one")], {"two": "a"}, SeatError, "unknown seat 'two'"),
        ([Seat("one", ["a"])], {"one": "b"}, SeatError, "seat 'one' may not show persona 'b'"),
        ([Seat("one"), Seat("two")], {"one": "a", "two": "a"}, SeatError,
         "'a' is active on more than one seat"),
        ([Seat("one", ["a"], {"scrolllock+f1": "b"})], None, InputError,
         "(?s)seat 'one': bad hotkeys.*unknown target 'b'"),
        ([Seat("one", None, {"scrolllock+nokey": "a"})], None, InputError,
         "(?s)seat 'one': bad hotkeys.*unknown key name 'nokey'"),
    ],
)
def test_bad_seats(seats: list[Seat], active: dict[str, str] | None, error: type[MuxError],
                   message: str) -> None:
    with pytest.raises(error, match=message):
        Seats(["a", "b"], seats, active=active)


@pytest.mark.parametrize("names", [[], ["a", "a"], ["a", "next"]])
def test_bad_persona_names(names: list[str]) -> None:
    with pytest.raises(InputError, match="persona"):
        Seats(names, [Seat("one", ["a"])])


def test_each_seat_has_its_own_hotkeys() -> None:
    seats = Seats(["a", "b"], [Seat("one"), Seat("two", None, {"ctrl+alt+f2": "b"})],
                  active={"one": "a"})
    assert press(seats, "one", SCROLL) == []
    assert press(seats, "one", RIGHT) == [SwitchRequest("next")]  # the defaults
    assert press(seats, "two", SCROLL) == []  # no persona on two; scrolllock is no chord there
    assert press(seats, "two", LCTRL) == press(seats, "two", LALT) == []
    assert press(seats, "two", F2) == [SwitchRequest("b")]


def test_router_switch_to_none_releases_and_drops() -> None:
    router = Router(["a", "b"], active="a")
    press_actions = router.feed(InputEvent(EV_KEY, A, 1)) + router.feed(SYN)
    assert press_actions == [Send("a", [key(A, True)])]
    router.feed(InputEvent(EV_KEY, SCROLL, 1))
    router.feed(SYN)  # held back: may begin a chord
    assert router.switch(None) == [Send("a", [key(A, False)])]
    assert router.active is None
    assert router.switch(None) == []
    router.feed(InputEvent(EV_KEY, F1, 1))
    assert router.feed(SYN) == []  # no active persona
    router.feed(InputEvent(EV_KEY, SCROLL, 0))
    assert router.feed(SYN) == []  # swallowed at the switch: it never reaches anyone


# --- property tests ---------------------------------------------------------------------------

PERSONAS = ["a", "b", "c", "d"]
ALLOWED = {"one": PERSONAS, "two": ["b", "c", "d"]}
HOTKEYS = {
    "one": {"scrolllock+right": "next", "scrolllock+left": "previous", "ctrl+alt+f1": "c"},
    "two": {"scrolllock+right": "next", "scrolllock+left": "previous", "ctrl+alt+f2": "b"},
}
CHORDS = [(SCROLL, RIGHT), (SCROLL, LEFT), (LCTRL, LALT, F1), (RCTRL, LALT, F2)]
KEYS = [LCTRL, RCTRL, LALT, LSHIFT, SCROLL, RIGHT, LEFT, F1, F2, A, BTN_LEFT]
CODE_OF = {str((qmp_key(c) or {}).get("data")): c for c in KEYS}  # QMP name -> Linux code
CODE_OF["left-button"] = BTN_LEFT
TARGETS = [*PERSONAS, "next", "previous"]
CI_EXAMPLES = 250
MIN_STEPS = 10_000
SEAT = st.sampled_from(["one", "two"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("toggle"), SEAT, st.sampled_from(KEYS)),
        st.tuples(st.just("chord"), SEAT, st.sampled_from(CHORDS)),
        st.tuples(st.just("repeat"), SEAT, st.sampled_from(KEYS)),
        st.tuples(st.just("motion"), SEAT, st.integers(-3, 3)),
        st.tuples(st.just("switch"), SEAT,
                  st.tuples(st.sampled_from(TARGETS), st.sampled_from([None, False, True]))),
    ),
    min_size=30,
    max_size=70,
)
steps_run = [0]  # the property test's steps, over every example


def code_of(event: dict[str, Any]) -> tuple[int, bool]:
    data = event["data"]
    name = data["key"]["data"] if event["type"] == "key" else f"{data['button']}-button"
    return CODE_OF[name], data["down"]


def expected_landing(model: Model, seat: str, target: str, steal: bool) -> str | None:
    """Where a switch lands, written from the docs with loops (None: refused)."""
    allowed, old = ALLOWED[seat], model.active[seat]
    elsewhere = {p for s, p in model.active.items() if s != seat}
    if target not in ("next", "previous"):
        return target if target in allowed and (steal or target not in elsewhere) else None
    if old is None:
        order = list(allowed)
    else:
        i = allowed.index(old)
        order = allowed[i + 1:] + allowed[:i + 1]
    if target == "previous":
        order = [*reversed(order[:-1]), order[-1]] if old is not None else list(reversed(order))
    return next((p for p in order if steal or p == old or p not in elsewhere), None)


@dataclass
class Model:
    """The test's own picture: who is active where, what each seat showed, what is down."""

    seats: Seats
    active: dict[str, str | None]
    history: dict[str, list[str]] = field(default_factory=lambda: {"one": [], "two": []})
    physical: dict[str, set[int]] = field(default_factory=lambda: {"one": set(), "two": set()})
    # persona -> (seat, code) it was sent down and not up yet
    down: dict[str, set[tuple[str, int]]] = field(
        default_factory=lambda: {p: set() for p in PERSONAS})
    autorepeat: str = "pass"

    def check_invariants(self) -> None:
        actives = [self.seats.active(s) for s in ("one", "two")]
        assert actives == [self.active["one"], self.active["two"]], (actives, self.active)
        assert actives[0] is None or actives[0] != actives[1], "a persona active on two seats"
        for seat in ("one", "two"):
            if not self.physical[seat]:  # every key of this seat is up: nothing is down from it
                assert not any(s == seat for held in self.down.values() for s, _ in held), self.down
                if (persona := self.active[seat]) is not None:
                    assert self.seats.held(persona) == frozenset()

    def input(self, seat: str, actions: list[Action]) -> None:
        """A seat's router output: every Send is for the persona active on that seat."""
        for action in actions:
            if isinstance(action, Send):
                assert action.persona == self.active[seat], f"{seat} sent to {action.persona}"
                for event in action.events:
                    if event["type"] in ("key", "btn"):
                        self.replay(seat, action.persona, *code_of(event))
            elif isinstance(action, SwitchRequest):
                note("hotkey")
                self.switch(seat, action.target, None)
            else:
                raise AssertionError(f"unexpected {action}")

    def replay(self, seat: str, persona: str, code: int, down: bool) -> None:
        held = self.down[persona]
        if down:
            assert code in self.physical[seat], f"{persona} got {code} not down on {seat}"
            assert (seat, code) not in held or self.autorepeat == "pass", "double press"
            held.add((seat, code))
        else:
            assert (seat, code) in held, f"{persona} got a release of {code} it never had down"
            held.remove((seat, code))

    def switch(self, seat: str, target: str, steal: bool | None) -> None:
        stealing = self.seats.steal if steal is None else steal
        landing = expected_landing(self, seat, target, stealing)
        try:
            plan = self.seats.plan_switch(seat, target, steal=steal)
        except SeatError:
            assert landing is None, f"{seat} -> {target} refused, expected {landing}"
            note("switch refused")
            return
        assert plan.persona == landing, (seat, target, plan, landing)
        note("switch stole" if plan.stolen_from else "switch moved" if plan.moves else "switch stayed")
        old = {m.old: m.seat for m in plan.moves if m.old is not None}
        for action in self.seats.apply(plan):  # only releases, owed to a persona left
            assert isinstance(action, Send) and action.persona in old, action
            for event in action.events:
                self.replay(old[action.persona], action.persona, *code_of(event))
                assert not code_of(event)[1], "a switch sent a press"
        for persona in old:
            assert self.down[persona] == set(), f"{persona} keeps keys down after leaving"
        self.move(seat, landing)

    def move(self, seat: str, persona: str | None) -> None:
        """The docs' rule for the seat's new state, and a stolen-from seat's fallback."""
        other = next((s for s, p in self.active.items() if s != seat and p == persona), None)
        self.show(seat, persona)
        if other is not None:
            back = next((p for p in reversed(self.history[other]) if p != persona), None)
            self.show(other, back)

    def show(self, seat: str, persona: str | None) -> None:
        self.active[seat] = persona
        if persona is not None:
            self.history[seat] = [p for p in self.history[seat] if p != persona] + [persona]

    def toggle(self, seat: str, code: int) -> None:
        value = 0 if code in self.physical[seat] else 1
        if value:
            self.physical[seat].add(code)
        self.input(seat, frame(self.seats, seat, InputEvent(EV_KEY, code, value)))
        if not value:  # after: releasing a held-back key sends its press first
            self.physical[seat].discard(code)


@budget(CI_EXAMPLES)
@given(ops=OPS, steal=st.booleans(), autorepeat=st.sampled_from(["pass", "drop"]),
       start=st.sampled_from([(None, None), ("a", "b"), ("c", None), (None, "d")]))
def run_two_seats(ops: list[tuple[str, str, Any]], steal: bool,
                  autorepeat: Literal["pass", "drop"], start: tuple[str | None, str | None]) -> None:
    active = {"one": start[0], "two": start[1]}
    seats = Seats(PERSONAS, [Seat(s, ALLOWED[s], HOTKEYS[s]) for s in ("one", "two")],
                  steal=steal, active=active, autorepeat=autorepeat)
    model = Model(seats, dict(active), autorepeat=autorepeat)
    for seat, persona in active.items():
        model.show(seat, persona)
    for op, seat, arg in ops:
        steps_run[0] += 1
        if op == "toggle":
            model.toggle(seat, arg)
        elif op == "chord":
            for code in arg:
                if code not in model.physical[seat]:
                    model.toggle(seat, code)
        elif op == "repeat" and arg in model.physical[seat]:
            model.input(seat, frame(seats, seat, InputEvent(EV_KEY, arg, 2)))
        elif op == "motion":
            model.input(seat, frame(seats, seat, InputEvent(EV_REL, REL_X, arg)))
        elif op == "switch":
            model.switch(seat, *arg)
        model.check_invariants()
    for seat in ("one", "two"):
        for code in sorted(model.physical[seat]):
            model.toggle(seat, code)
            model.check_invariants()
    assert all(held == set() for held in model.down.values()), model.down
    assert all(seats.held(p) == frozenset() for p in PERSONAS)


def test_two_seats_keep_every_invariant() -> None:
    """The issue's acceptance: random keys, hotkeys and switches (by name, next, previous,
    with and without steal) on two seats; the invariants after every step are in
    :class:`Model`: no Send to a persona from a seat it is not active on, no persona active
    on two seats, no key held once its seat's keys are all up; and every landing as the docs
    say. At least :data:`MIN_STEPS` steps in all."""
    steps_run[0] = 0
    run_two_seats()
    print(f"two seats: {steps_run[0]} steps")
    assert steps_run[0] >= (MIN_STEPS * (10 if FUZZING else 1))


@budget(150)
@given(ops=OPS, autorepeat=st.sampled_from(["pass", "drop"]), active=st.sampled_from([None, "b"]))
def test_one_default_seat_is_a_lone_router(ops: list[tuple[str, str, Any]],
                                           autorepeat: Literal["pass", "drop"],
                                           active: str | None) -> None:
    """A config without [[seat]]: the same events give the same actions, switch for switch."""
    hotkeys = HOTKEYS["one"]
    router = Router(PERSONAS, hotkeys, autorepeat, active)
    seats = Seats.single(PERSONAS, hotkeys, autorepeat, active)
    assert seats.seats == (DEFAULT_SEAT,)
    physical: set[int] = set()

    def both(events: list[InputEvent]) -> None:
        for event in [*events, SYN]:
            alone, seated = router.feed(event), seats.feed(DEFAULT_SEAT, event)
            assert alone == seated
            for action in alone:
                if isinstance(action, SwitchRequest):
                    switch(action.target)

    def switch(target: str) -> None:
        assert router.switch(router.resolve(target)) == seats.switch(DEFAULT_SEAT, target)
        assert router.active == seats.active(DEFAULT_SEAT)

    for op, _, arg in ops:
        if op in ("toggle", "chord"):
            for code in (arg,) if op == "toggle" else arg:
                value = 0 if code in physical and op == "toggle" else 1
                (physical.add if value else physical.discard)(code)
                both([InputEvent(EV_KEY, code, value)])
        elif op == "repeat":
            both([InputEvent(EV_KEY, arg, 2)])
        elif op == "motion":
            both([InputEvent(EV_REL, REL_X, arg)])
        elif op == "switch":
            switch(arg[0])
        assert all(router.held(p) == seats.held(p) for p in PERSONAS)
    both([InputEvent(EV_KEY, code, 0) for code in sorted(physical)])
    assert all(router.held(p) == seats.held(p) == frozenset() for p in PERSONAS)
