"""Tests for mux.input.router: routing rules, hotkey swallowing, and a property test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mux.errors import MuxError, UnknownPersona
from mux.input.events import EV_ABS, EV_KEY, EV_REL, EV_SYN, SYN_DROPPED, SYN_REPORT, InputEvent
from mux.input.hotkeys import HotkeyMatcher
from mux.input.keymap import key_code, qmp_key
from mux.input.router import Action, Router, Send, SwitchRequest, Unmapped, switch_target

pytestmark = pytest.mark.pure

LCTRL, RCTRL, LALT, LSHIFT = 29, 97, 56, 42
A, B, X, F1, RIGHT, LEFT, SCROLL = 30, 48, 45, 59, 106, 105, 70
BTN_LEFT, BTN_RIGHT, BTN_TASK = 0x110, 0x111, 0x117
REL_X, REL_Y, REL_HWHEEL, REL_WHEEL, REL_WHEEL_HI_RES = 0, 1, 6, 8, 11
WIMAX = key_code("wimax")  # a key QEMU cannot express
SYN = InputEvent(EV_SYN, SYN_REPORT, 0)


def ev(type_: int, code: int, value: int) -> InputEvent:
    return InputEvent(type_, code, value)


def frame(router: Router, *events: InputEvent) -> list[Action]:
    """Feed events then SYN_REPORT; nothing may come out before the SYN."""
    for event in events:
        assert router.feed(event) == []
    return router.feed(SYN)


def press(router: Router, code: int) -> list[Action]:
    return frame(router, ev(EV_KEY, code, 1))


def release(router: Router, code: int) -> list[Action]:
    return frame(router, ev(EV_KEY, code, 0))


def repeat(router: Router, code: int) -> list[Action]:
    return frame(router, ev(EV_KEY, code, 2))


def key(code: int, down: bool) -> dict[str, Any]:
    return {"type": "key", "data": {"down": down, "key": qmp_key(code)}}


def btn(button: str, down: bool) -> dict[str, Any]:
    return {"type": "btn", "data": {"down": down, "button": button}}


def send(persona: str, *events: dict[str, Any]) -> Send:
    return Send(persona, list(events))


def router_ab(**kwargs: Any) -> Router:
    kwargs.setdefault("active", "a")
    return Router(["a", "b", "c"], **kwargs)


# --- frames -------------------------------------------------------------------------------


def test_a_frame_is_one_batch() -> None:
    router = router_ab()
    actions = frame(router, ev(EV_REL, REL_X, 5), ev(EV_REL, REL_Y, -3), ev(EV_KEY, A, 1))
    assert actions == [
        send(
            "a",
            {"type": "rel", "data": {"axis": "x", "value": 5}},
            {"type": "rel", "data": {"axis": "y", "value": -3}},
            key(A, True),
        )
    ]


def test_events_wait_for_syn_report() -> None:
    router = router_ab()
    assert router.feed(ev(EV_KEY, A, 1)) == []
    assert router.feed(ev(EV_KEY, A, 0)) == []
    assert router.feed(SYN) == [send("a", key(A, True), key(A, False))]
    assert router.feed(SYN) == []  # an empty frame sends nothing


def test_syn_dropped_discards_until_the_next_report() -> None:
    router = router_ab()
    router.feed(ev(EV_KEY, A, 1))
    assert router.feed(InputEvent(EV_SYN, SYN_DROPPED, 0)) == []
    assert router.feed(ev(EV_KEY, B, 1)) == []
    assert router.feed(SYN) == []  # the end of the dropped stretch
    assert press(router, X) == [send("a", key(X, True))]


# --- ownership and switching -----------------------------------------------------------------


def test_keys_go_to_the_active_persona() -> None:
    router = router_ab()
    assert press(router, A) == [send("a", key(A, True))]
    assert router.held("a") == {A}
    assert release(router, A) == [send("a", key(A, False))]
    assert router.held("a") == frozenset()


def test_switch_releases_everything_held_in_the_old_persona() -> None:
    router = router_ab()
    press(router, LSHIFT)
    press(router, A)
    frame(router, ev(EV_KEY, BTN_LEFT, 1))
    assert router.switch("b") == [
        send("a", btn("left", False), key(A, False), key(LSHIFT, False))  # newest first
    ]
    assert router.active == "b"
    assert router.held("a") == router.held("b") == frozenset()
    # Their physical releases go nowhere: already released, and never down in b.
    assert release(router, A) == []
    assert release(router, LSHIFT) == []
    assert frame(router, ev(EV_KEY, BTN_LEFT, 0)) == []


def test_switch_to_the_active_persona_changes_nothing() -> None:
    router = router_ab()
    press(router, A)
    assert router.switch("a") == []
    assert router.held("a") == {A}


def test_release_of_a_key_nobody_has_down_is_dropped() -> None:
    router = router_ab()
    assert release(router, A) == []


def test_duplicate_press_is_ignored() -> None:
    router = router_ab()
    press(router, A)
    assert press(router, A) == []
    assert release(router, A) == [send("a", key(A, False))]


def test_no_active_persona_drops_input() -> None:
    router = Router(["a", "b"])
    assert router.active is None
    assert press(router, A) == []
    assert frame(router, ev(EV_REL, REL_X, 3), ev(EV_ABS, 0, 100)) == []
    assert router.switch("a") == []
    assert release(router, A) == []  # its press went nowhere, so does its release
    assert press(router, B) == [send("a", key(B, True))]


def test_resolve() -> None:
    router = Router(["a", "b", "c"])
    assert router.resolve("next") == "a"
    assert router.resolve("previous") == "c"
    router.switch("c")
    assert router.resolve("next") == "a"
    assert router.resolve("previous") == "b"
    assert router.resolve("b") == "b"
    with pytest.raises(UnknownPersona, match="unknown switch target 'd'"):
        router.resolve("d")


def test_unknown_personas_raise() -> None:
    router = router_ab()
    with pytest.raises(UnknownPersona, match="unknown persona 'z'"):
        router.switch("z")
    with pytest.raises(UnknownPersona, match="unknown persona 'z'"):
        router.held("z")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"personas": []}, "at least one persona"),
        ({"personas": ["a", "a"]}, "duplicated"),
        ({"personas": ["next"]}, "reserved"),
        ({"personas": ["a"], "active": "b"}, "unknown active persona 'b'"),
        ({"personas": ["a"], "autorepeat": "sometimes"}, "autorepeat"),
        ({"personas": ["a"], "hotkeys": {"scrolllock+f1": "b"}}, "unknown target 'b'"),
        ({"personas": ["a"], "abs_ranges": {0: (5, 5)}}, "empty range"),
    ],
)
def test_bad_router_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(MuxError, match=message):
        Router(**kwargs)


# --- autorepeat ---------------------------------------------------------------------------


def test_autorepeat_pass_sends_another_press_to_the_holder() -> None:
    router = router_ab(autorepeat="pass")
    press(router, A)
    assert repeat(router, A) == [send("a", key(A, True))]
    assert repeat(router, X) == []  # not held anywhere
    router.switch("b")
    assert repeat(router, A) == []  # released at the switch, not held in b


def test_autorepeat_drop() -> None:
    router = router_ab(autorepeat="drop")
    press(router, A)
    assert repeat(router, A) == []
    assert release(router, A) == [send("a", key(A, False))]


# --- hotkeys --------------------------------------------------------------------------------


def test_hotkey_is_swallowed_entirely() -> None:
    router = router_ab()
    assert press(router, SCROLL) == []  # held back: it may begin a chord
    assert press(router, RIGHT) == [SwitchRequest("next")]
    assert router.active == "a"  # the caller switches
    assert router.switch(router.resolve("next")) == []
    assert repeat(router, RIGHT) == []
    assert release(router, RIGHT) == []
    assert release(router, SCROLL) == []
    assert router.held("a") == router.held("b") == frozenset()


def test_shift_held_across_a_hotkey_switch() -> None:
    """The acceptance scenario: A sees shift down and up, B sees nothing."""
    router = router_ab()
    out: list[Action] = []
    out += press(router, LSHIFT)
    out += press(router, SCROLL)
    out += press(router, RIGHT)
    assert out[-1] == SwitchRequest("next")
    out += router.switch(router.resolve("next"))
    for code in (RIGHT, SCROLL, LSHIFT):
        out += release(router, code)
    assert out == [
        send("a", key(LSHIFT, True)),
        SwitchRequest("next"),
        send("a", key(LSHIFT, False)),
    ]


def test_held_back_key_is_flushed_before_a_key_that_is_no_chord() -> None:
    router = router_ab()
    press(router, SCROLL)
    assert press(router, A) == [send("a", key(SCROLL, True), key(A, True))]
    assert router.held("a") == {SCROLL, A}
    assert release(router, SCROLL) == [send("a", key(SCROLL, False))]


def test_held_back_key_released_alone_is_tapped() -> None:
    router = router_ab()
    press(router, SCROLL)
    assert repeat(router, SCROLL) == []  # repeats of a held-back key decide nothing
    assert release(router, SCROLL) == [send("a", key(SCROLL, True), key(SCROLL, False))]


def test_modifiers_are_held_back_in_order_and_either_side() -> None:
    router = router_ab(hotkeys={"ctrl+alt+f1": "c"})
    press(router, RCTRL)
    press(router, LALT)
    assert press(router, X) == [send("a", key(RCTRL, True), key(LALT, True), key(X, True))]
    release(router, X)
    release(router, LALT)
    release(router, RCTRL)
    press(router, LALT)  # prefix keys in any order
    press(router, RCTRL)
    assert press(router, F1) == [SwitchRequest("c")]


def test_released_prefix_key_flushes_all_held_back_keys() -> None:
    router = router_ab(hotkeys={"ctrl+alt+f1": "c"})
    press(router, LCTRL)
    press(router, LALT)
    assert release(router, LCTRL) == [
        send("a", key(LCTRL, True), key(LALT, True), key(LCTRL, False))
    ]
    assert press(router, F1) == [send("a", key(F1, True))]  # alt already went to the guest


def test_same_side_twice_is_not_a_chord() -> None:
    router = router_ab(hotkeys={"ctrl+alt+f1": "c"})
    press(router, LCTRL)
    # Both ctrls cannot be one chord: the first goes to the guest, the second may begin one.
    assert press(router, RCTRL) == [send("a", key(LCTRL, True))]
    press(router, LALT)
    assert press(router, F1) == [SwitchRequest("c")]
    assert router.held("a") == {LCTRL}


def test_armed_prefix_fires_again() -> None:
    router = router_ab()
    press(router, SCROLL)
    assert press(router, RIGHT) == [SwitchRequest("next")]
    router.switch("b")
    release(router, RIGHT)
    assert press(router, RIGHT) == [SwitchRequest("next")]
    router.switch("c")
    assert press(router, LEFT) == [SwitchRequest("previous")]
    router.switch("b")
    assert release(router, RIGHT) == release(router, LEFT) == []
    assert press(router, A) == [send("b", key(A, True))]  # disarms; scrolllock stays swallowed
    assert press(router, RIGHT) == [send("b", key(RIGHT, True))]
    assert release(router, SCROLL) == []


def test_external_switch_swallows_held_back_keys() -> None:
    router = router_ab()
    press(router, SCROLL)
    assert router.switch("b") == []
    assert press(router, A) == [send("b", key(A, True))]
    assert release(router, SCROLL) == []
    assert router.held("b") == {A}


def test_wheel_flushes_held_back_keys_but_motion_does_not() -> None:
    router = router_ab(hotkeys={"ctrl+alt+f1": "c"})
    press(router, LCTRL)
    assert frame(router, ev(EV_REL, REL_X, 1)) == [
        send("a", {"type": "rel", "data": {"axis": "x", "value": 1}})
    ]
    assert frame(router, ev(EV_REL, REL_WHEEL, 1)) == [
        send("a", key(LCTRL, True), btn("wheel-up", True), btn("wheel-up", False))
    ]


def test_chord_in_one_frame_then_more_keys() -> None:
    router = router_ab()
    actions = frame(router, ev(EV_KEY, SCROLL, 1), ev(EV_KEY, RIGHT, 1), ev(EV_KEY, A, 1))
    assert actions == [send("a", key(A, True)), SwitchRequest("next")]


# --- mouse and unmapped keys -------------------------------------------------------------------


def test_buttons() -> None:
    router = router_ab()
    assert frame(router, ev(EV_KEY, BTN_LEFT, 1)) == [send("a", btn("left", True))]
    assert frame(router, ev(EV_KEY, BTN_RIGHT, 1), ev(EV_KEY, BTN_LEFT, 0)) == [
        send("a", btn("right", True), btn("left", False))
    ]
    assert router.held("a") == {BTN_RIGHT}


def test_wheel_notches_become_button_taps() -> None:
    router = router_ab()
    assert frame(router, ev(EV_REL, REL_WHEEL, -2), ev(EV_REL, REL_WHEEL_HI_RES, -240)) == [
        send(
            "a",
            btn("wheel-down", True),
            btn("wheel-down", False),
            btn("wheel-down", True),
            btn("wheel-down", False),
        )
    ]
    assert frame(router, ev(EV_REL, REL_HWHEEL, 1)) == [
        send("a", btn("wheel-right", True), btn("wheel-right", False))
    ]


def test_abs_passes_through_or_scales() -> None:
    def abs_x(value: int) -> dict[str, Any]:
        return {"type": "abs", "data": {"axis": "x", "value": value}}

    assert frame(router_ab(), ev(EV_ABS, 0, 1234)) == [send("a", abs_x(1234))]
    router = router_ab(abs_ranges={0: (0, 4095), 1: (-100, 100)})
    assert frame(router, ev(EV_ABS, 0, 4095), ev(EV_ABS, 1, 0), ev(EV_ABS, 0, 9999)) == [
        send(
            "a",
            abs_x(0x7FFF),
            {"type": "abs", "data": {"axis": "y", "value": 0x4000}},
            abs_x(0x7FFF),  # clamped
        )
    ]


def test_unmapped_keys_are_reported_once() -> None:
    router = router_ab()
    assert press(router, WIMAX) == [Unmapped(WIMAX)]
    assert router.held("a") == frozenset()
    assert release(router, WIMAX) == []
    assert press(router, WIMAX) == []
    assert frame(router, ev(EV_KEY, BTN_TASK, 1)) == [Unmapped(BTN_TASK)]


def test_keys_with_only_a_key_number_are_unmapped() -> None:
    router = router_ab()
    f13 = key_code("f13")  # no qcode in QEMU 7.2
    assert press(router, f13) == [Unmapped(f13)]
    assert release(router, f13) == []


# --- property test ------------------------------------------------------------------------------

PERSONAS = ["a", "b", "c"]
#: Where a switch lands, (active, target) -> persona, written out from the docs: next and
#: previous walk the configured order around; with none active, the first and the last.
LANDS = {(active, target): landing
         for active, nxt, prev in ((None, "a", "c"), ("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b"))
         for target, landing in (("next", nxt), ("previous", prev), ("a", "a"), ("b", "b"), ("c", "c"))}
HOTKEYS = {"scrolllock+right": "next", "scrolllock+left": "previous", "ctrl+alt+f1": "b"}
KEYS = [LCTRL, RCTRL, LALT, LSHIFT, SCROLL, RIGHT, LEFT, F1, A, BTN_LEFT]
CODE_OF = {str((qmp_key(c) or {}).get("data")): c for c in KEYS}  # QMP name -> Linux code
CODE_OF["left-button"] = BTN_LEFT


@dataclass(eq=False)
class Press:
    code: int
    reached: bool = False  # some guest got an event for this physical press


@dataclass
class Harness:
    router: Router
    autorepeat: str
    physical: dict[int, Press] = field(default_factory=dict)
    replay: dict[str, set[int]] = field(default_factory=lambda: {p: set() for p in PERSONAS})
    chords: list[tuple[Press, list[list[Press]]]] = field(default_factory=list)
    matcher: HotkeyMatcher = field(default_factory=lambda: HotkeyMatcher(HOTKEYS))

    def take(self, actions: list[Action], pressed: Press | None = None) -> None:
        for action in actions:
            if isinstance(action, Send):
                for event in action.events:
                    self.replay_event(action.persona, event)
            elif isinstance(action, SwitchRequest):
                assert pressed is not None, "a switch request without a key press"
                self.record_chord(action.target, pressed)
                self.switch(LANDS[self.router.active, action.target])
            else:
                raise AssertionError(f"unexpected {action}")

    def replay_event(self, persona: str, event: dict[str, Any]) -> None:
        data = event["data"]
        name = data["key"]["data"] if event["type"] == "key" else f"{data['button']}-button"
        code = CODE_OF[name]
        assert code in self.physical, f"{persona} got {name} that is not physically down"
        self.physical[code].reached = True
        held = self.replay[persona]
        if data["down"]:
            assert code not in held or self.autorepeat == "pass", f"{persona}: double press"
            held.add(code)
        else:
            assert code in held, f"{persona} got a release of {name} it never had down"
            held.remove(code)

    def record_chord(self, target: str, final: Press) -> None:
        (hotkey,) = [h for h in self.matcher.hotkeys if h.target == target]
        assert final.code in hotkey.final
        slots = [[p for p in self.physical.values() if p.code in slot] for slot in hotkey.prefix]
        self.chords.append((final, slots))

    def switch(self, persona: str) -> None:
        self.take(self.router.switch(persona))
        for other in PERSONAS:  # everything held in the persona left was released there
            if other != persona:
                assert self.router.held(other) == frozenset()
                assert self.replay[other] == set(), (other, self.replay)

    def toggle(self, code: int) -> None:
        if code in self.physical:
            self.take(release(self.router, code))
            del self.physical[code]
        else:
            self.physical[code] = pressed = Press(code)
            self.take(press(self.router, code), pressed)


# Presses of every key of one chord (either side for generic modifiers), in order.
CHORDS = [(SCROLL, RIGHT), (SCROLL, LEFT), (LCTRL, LALT, F1), (LALT, RCTRL, F1)]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("toggle"), st.sampled_from(KEYS)),
        st.tuples(st.just("chord"), st.sampled_from(CHORDS)),
        st.tuples(st.just("repeat"), st.sampled_from(KEYS)),
        st.tuples(st.just("switch"), st.sampled_from(PERSONAS)),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(
    steps=ops,
    autorepeat=st.sampled_from(["pass", "drop"]),
    active=st.sampled_from([None, "a"]),
)
def test_routing_invariants(
    steps: list[tuple[str, Any]], autorepeat: Literal["pass", "drop"], active: str | None
) -> None:
    router = Router(PERSONAS, HOTKEYS, autorepeat=autorepeat, active=active)
    harness = Harness(router, autorepeat)
    for op, arg in steps:
        if op == "toggle":
            harness.toggle(arg)
        elif op == "repeat" and arg in harness.physical:
            harness.take(repeat(router, arg))
        elif op == "chord":
            for code in arg:
                if code not in harness.physical:
                    harness.toggle(code)
        elif op == "switch":
            harness.switch(arg)
    for code in list(harness.physical):
        harness.toggle(code)
    # (1) once every physical key is up, nothing is held anywhere ...
    assert all(router.held(p) == frozenset() for p in PERSONAS)
    # ... and (2) every guest got a release for every press it got (checked per event).
    assert all(held == set() for held in harness.replay.values()), harness.replay
    # (3) the keys of a completed chord never reached a guest, before or after.
    for final, slots in harness.chords:
        assert not final.reached, f"final key {final.code} of a chord reached a guest"
        for candidates in slots:
            assert any(not p.reached for p in candidates), f"prefix {candidates} leaked"


def test_the_switcher_lands_where_the_router_and_the_docs_do() -> None:
    """next/previous: the switcher, the router and ``switch_target`` all land as documented."""
    from mux.app.events import Events
    from mux.app.switcher import Switcher

    async def nothing(old: str | None, new: str) -> None:
        pass

    for active in (None, *PERSONAS):
        router = Router(PERSONAS, active=active)
        switcher = Switcher(PERSONAS, Events(), prepare=nothing, parts=[], active=active)
        for target in ("next", "previous", *PERSONAS):
            landing = LANDS[active, target]
            assert switcher.resolve(target) == landing, (active, target)
            assert router.resolve(target) == landing, (active, target)
            assert switch_target(PERSONAS, active, target) == landing, (active, target)
        assert switch_target(PERSONAS, active, "nobody") is None
