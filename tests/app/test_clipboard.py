"""mux's clipboard policy (mux.app.clipboard): the allow rules, the banners, every refusal.

Pure: the links are stand-ins that record what they are asked (only the policy is tested
here; tests/app/test_clipboard_guests.py moves text between real QEMUs). Each "nothing
moved" is checked against the same stand-in that, in the same test, does move text.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from mux.app.clipboard import (
    Clipboard,
    ClipboardLink,
    allowed,
    copied_message,
    pasted_message,
    refusal,
    size_refusal,
)
from mux.app.events import ClipboardChanged, Event, Events
from mux.errors import ClipboardRefused, InputError, RfbError
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from mux.input.keymap import key_code
from mux.input.router import Router, Send, SwitchRequest

SECRET = "hunter2 — the clipboard's text"


class Link:
    """A persona's link as the clipboard sees it: a clipboard text (None: none announced)."""

    def __init__(self, text: str | None = None, *, broken: bool = False) -> None:
        self.text = text
        self.broken = broken
        self.reads = 0

    @property
    def clipboard_available(self) -> bool:
        return self.text is not None

    async def clipboard_text(self, timeout: float) -> str:
        self.reads += 1
        if self.broken or self.text is None:
            raise RfbError(Path("/run/x.vnc"), "no clipboard text in time")
        return self.text

    def set_clipboard(self, text: str) -> None:
        if self.broken:
            raise RfbError(Path("/run/x.vnc"), "connection closed")
        self.text = text


class World:
    """A Clipboard over stand-in links, with the events and banners it produced."""

    def __init__(self, links: dict[str, Link | None], rules: list[str] | None = None,
                 enabled: tuple[str, ...] = ("home", "work", "scratch"), max_bytes: int = 1024) -> None:
        self.links = links
        self.events: list[Event] = []
        self.banners: list[str] = []
        hub = Events()
        hub.subscribe(self.events.append)

        def link_of(name: str) -> ClipboardLink | None:
            return self.links.get(name)

        self.clipboard = Clipboard(enabled, rules, link_of, hub, self.banners.append, max_bytes=max_bytes)


# --- the policy, pure -------------------------------------------------------------------


@pytest.mark.pure
def test_rules_allow_only_the_directions_listed_and_any_when_not_set() -> None:
    rules = ["home -> work", "* -> scratch"]
    assert allowed(rules, "home", "work")
    assert not allowed(rules, "work", "home")  # a rule has one direction
    assert allowed(rules, "work", "scratch") and allowed(rules, "home", "scratch")
    assert not allowed(rules, "scratch", "home")
    assert allowed(rules, "work", "work")  # back where it came from: nothing crosses
    assert not allowed([], "home", "work") and allowed([], "home", "home")
    assert allowed(None, "work", "home") and allowed(None, "scratch", "home")  # not set: any
    assert allowed(["work -> *"], "work", "home") and not allowed(["work -> *"], "home", "work")
    assert allowed(["* -> *"], "home", "work")


@pytest.mark.pure
def test_banners_say_what_moved_by_size_and_names() -> None:
    assert copied_message("home", 42) == "copied 42 characters from home"
    assert copied_message("home", 1) == "copied 1 character from home"
    assert pasted_message("work", 42, "home") == "pasted 42 characters from home into work"
    assert str(ClipboardRefused("paste", "home → work")) == "refused: home → work"


@pytest.mark.pure
def test_refusals_before_any_link_is_asked() -> None:
    enabled = {"home", "work"}

    def why(action: str, persona: str | None, origin: str | None,
            rules: list[str] | None = None) -> str | None:
        return refusal(action, persona, origin=origin, enabled=enabled, rules=rules)

    assert why("copy", None, None) == "copy: no persona is active"
    assert why("copy", "home", None) is None
    assert why("copy", "lab", None) == "copy from lab: it has no clipboard (clipboard = true)"
    assert why("paste", "work", None) == "paste: nothing copied yet"
    assert why("paste", "work", "home") is None
    assert why("paste", "lab", "home") == "paste into lab: it has no clipboard (clipboard = true)"
    assert why("paste", "work", "home", ["work -> home"]) == "home → work"
    assert why("paste", "home", "work", ["work -> home"]) is None
    assert size_refusal("copy", "home", "é" * 512, limit=1024) is None  # 1024 bytes: at the cap
    assert size_refusal("copy", "home", "é" * 513, limit=1024) == \
        "copy from home: 1026 bytes, over the clipboard's cap of 1024 bytes"


@pytest.mark.pure
def test_clipboard_events_have_no_field_for_the_text() -> None:
    names = [f.name for f in dataclasses.fields(ClipboardChanged)]
    assert names == ["action", "persona", "origin", "chars", "source", "refused"]


# --- mux's clipboard over stand-in links ------------------------------------------------


@pytest.mark.pure
async def test_copy_then_paste_moves_the_text_and_reports_only_sizes(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    home, work = Link(SECRET), Link("work's own")
    w = World({"home": home, "work": work})
    assert w.clipboard.status() is None
    done = await w.clipboard.copy("home", "hotkey")
    chars = len(SECRET)
    assert done == {"action": "copy", "persona": "home", "chars": chars, "from": "home",
                    "message": f"copied {chars} characters from home"}
    assert work.text == "work's own"  # a copy moves nothing into a guest
    assert w.clipboard.status() == {"chars": chars, "from": "home"}
    done = await w.clipboard.paste("work", "control socket")
    assert work.text == SECRET
    assert done["message"] == f"pasted {chars} characters from home into work"
    assert w.events == [ClipboardChanged("copy", "home", "home", chars, "hotkey"),
                        ClipboardChanged("paste", "work", "home", chars, "control socket")]
    assert w.banners == [f"copied {chars} characters from home",
                         f"pasted {chars} characters from home into work"]
    assert "hunter2" not in caplog.text and "hunter2" not in repr(w.events) + repr(done)
    assert f"copied {chars} characters from home" in caplog.text  # the log does say what moved


@pytest.mark.pure
async def test_a_direction_not_allowed_is_refused_and_the_guest_keeps_its_clipboard() -> None:
    home, work = Link(SECRET), Link("work's own")
    w = World({"home": home, "work": work}, rules=["work -> home"])
    await w.clipboard.copy("home", "hotkey")
    with pytest.raises(ClipboardRefused) as refused:
        await w.clipboard.paste("work", "hotkey")
    assert str(refused.value) == "refused: home → work"
    assert work.text == "work's own"
    assert w.banners[-1] == "refused: home → work"
    assert w.events[-1] == ClipboardChanged("paste", "work", "home", 0, "hotkey",
                                            refused="refused: home → work")
    # Positive control on the same links: the allowed direction moves text.
    await w.clipboard.copy("work", "hotkey")
    await w.clipboard.paste("home", "hotkey")
    assert home.text == "work's own"


@pytest.mark.pure
async def test_every_refusal_names_its_reason_and_keeps_muxs_clipboard() -> None:
    home = Link(SECRET)
    w = World({"home": home, "work": Link(None), "scratch": None, "lab": Link("lab")},
              enabled=("home", "work", "scratch"))

    async def refused(action: str, persona: str | None) -> str:
        call = w.clipboard.copy if action == "copy" else w.clipboard.paste
        with pytest.raises(ClipboardRefused) as info:
            await call(persona, "test")
        assert w.banners[-1] == str(info.value)
        event = w.events[-1]
        assert isinstance(event, ClipboardChanged) and event.refused == str(info.value) and event.chars == 0
        return str(info.value)

    assert await refused("paste", "home") == "refused: paste: nothing copied yet"
    assert await refused("copy", None) == "refused: copy: no persona is active"
    assert await refused("copy", "lab") == "refused: copy from lab: it has no clipboard (clipboard = true)"
    assert await refused("copy", "work") == "refused: copy from work: its clipboard is empty"
    assert await refused("copy", "scratch") == \
        "refused: copy from scratch: its display link is down (is it running?)"
    assert w.clipboard.status() is None  # nothing refused changed mux's clipboard
    await w.clipboard.copy("home", "test")  # positive control: home's text does copy
    assert w.clipboard.status() == {"chars": len(SECRET), "from": "home"}
    home.broken = True
    message = await refused("copy", "home")
    assert message.startswith("refused: copy from home: its clipboard could not be read (VNC ")
    assert await refused("paste", "home") == "refused: paste into home: VNC /run/x.vnc: connection closed"
    assert await refused("paste", "scratch") == \
        "refused: paste into scratch: its display link is down (is it running?)"
    assert w.clipboard.status() == {"chars": len(SECRET), "from": "home"}


@pytest.mark.pure
async def test_the_size_cap_holds_both_ways() -> None:
    big, work = Link("x" * 1025), Link("work's own")
    w = World({"home": big, "work": work})
    with pytest.raises(ClipboardRefused, match="copy from home: 1025 bytes, over the clipboard's cap"):
        await w.clipboard.copy("home", "test")
    assert w.clipboard.status() is None
    big.text = "x" * 1024
    await w.clipboard.copy("home", "test")  # at the cap: copied
    w.clipboard.max_bytes = 1000  # a smaller cap on the way out
    with pytest.raises(ClipboardRefused, match="paste into work: 1024 bytes, over the clipboard's cap"):
        await w.clipboard.paste("work", "test")
    assert work.text == "work's own"
    w.clipboard.max_bytes = 1024
    await w.clipboard.paste("work", "test")
    assert work.text == "x" * 1024


@pytest.mark.pure
async def test_a_broken_banner_does_not_undo_a_copy(caplog: pytest.LogCaptureFixture) -> None:
    w = World({"home": Link(SECRET)})

    def broken(text: str) -> None:
        raise RuntimeError("no output")

    w.clipboard.notify = broken
    await w.clipboard.copy("home", "test")
    assert w.clipboard.status() == {"chars": len(SECRET), "from": "home"}
    assert "could not show 'copied" in caplog.text


# --- the hotkeys, in the router ---------------------------------------------------------


def chord(*names: str) -> list[InputEvent]:
    """Press the keys in order, then release them in reverse, a frame per edge."""
    codes = [key_code(n) for n in names]
    edges = [(c, 1) for c in codes] + [(c, 0) for c in reversed(codes)]
    return [e for c, v in edges for e in (InputEvent(EV_KEY, c, v), InputEvent(EV_SYN, 0, 0))]


@pytest.mark.pure
def test_copy_and_paste_are_default_hotkeys_whose_keys_reach_no_guest() -> None:
    router = Router(["home", "work"], active="home")
    actions = [a for e in [*chord("scrolllock", "c"), *chord("scrolllock", "v")] for a in router.feed(e)]
    assert actions == [SwitchRequest("copy"), SwitchRequest("paste")]
    assert router.active == "home" and not router.pressed()
    # Positive control: a plain c, and scroll lock on its own, do reach the guest.
    sent = [a for e in [*chord("c"), *chord("scrolllock")] for a in router.feed(e)]
    assert [(ev["data"]["key"]["data"], ev["data"]["down"]) for a in sent if isinstance(a, Send)
            for ev in a.events] == [("c", True), ("c", False), ("scroll_lock", True), ("scroll_lock", False)]


@pytest.mark.pure
def test_a_persona_cannot_be_called_copy_or_paste() -> None:
    for name in ("copy", "paste"):
        with pytest.raises(InputError, match=f"bad persona name '{name}'"):
            Router(["home", name])
