"""Background personas ask for attention ("the phone rings"): the watcher and its policy.

Theory. A guest asks by one line on its serial port: ``MUX-ATTENTION <text>`` (the
built-in images' ``mux-attention TEXT...`` prints it), or, for any guest, a line that its
persona's ``attention = "REGEX"`` matches (searched in each whole line, ``re.search``).
The request's text is the marker's ``<text>``; for the regex, its first group if it has
groups (and the group took part), else the whole line; either way stripped and cut to
:data:`MAX_TEXT` characters. The watcher hears every whole line as it arrives
(:attr:`mux.guest.serial.SerialLog.line_listeners`), so nothing rescans the log.

A request is published (:class:`~mux.app.events.AttentionRequested`) and stays *pending*
until its persona is made active by a switch (on any seat); then all of that persona's
requests are cleared at once (:class:`~mux.app.events.AttentionCleared`). Pending requests
are shown on the banner (the newest, and how many others) of every seat that may show the
asking persona (``[[seat]] personas``; a config without seats has one seat, which shows
every persona), whatever persona is active there, and listed in ``ctl status``
(``"attention"``). A persona's request made while it is active (on any seat) is shown and
listed too, but it never switches: it is cleared when that persona is next switched to.

``[display] on_attention = "switch"`` also switches to a background persona that asks
(source ``"attention"``), but never under the user's hands: on the first seat (config
order) that may show the persona and has no key or button down
(:meth:`mux.input.seats.Seats.pressed`), and only when no input came for :data:`IDLE_S`
seconds. A request that arrives while the user types waits until they stop (it is not
dropped). Each request may cause one switch at most, and only until the next switch of
any kind on a seat that may show its persona: such a switch (the user's own included)
answers every request of those personas pending at that moment, which stay on the banner
but switch no more. So two personas ringing together bring the first one forward; the
second stays on the banner until visited. The policy is the pure :func:`due`;
:class:`Attention` is the watcher around it.

A guest is untrusted: its requests are taken at most :data:`ATTENTION_RATE` a second per
persona (:mod:`mux.guest.paced`: a faster burst is coalesced, its newest request taken
last, and one log line counts what was dropped), so a flooding guest cannot flood MQTT.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mux.app.events import AttentionCleared, AttentionRequested, Event, Events, Switched
from mux.config import Config
from mux.config.schema import OnAttention
from mux.display.output import Output
from mux.errors import MuxError
from mux.guest.paced import Paced
from mux.guest.persona import Persona
from mux.guest.text import visible
from mux.input.seats import Seats

log = logging.getLogger(__name__)

MARKER = re.compile(r"MUX-ATTENTION(?:[ \t]+(.*))?$")  # anywhere in a line
IDLE_S = 2.0  # no input for this long before an attention switch
MAX_TEXT = 200  # characters of a request's text kept
MAX_PENDING = 20  # a persona's pending requests kept (the oldest go first)
ATTENTION_RATE = 2.0  # a persona's requests taken per second at most (the newest wins)
HISTORY = 50  # recent requests kept for messages (assert_attention's failure)

Switch = Callable[[str, str, str], Awaitable[object]]
"""``switch(target, source, seat)``: :meth:`mux.app.controller.Controller.switch`."""


def request_text(line: str, pattern: re.Pattern[str] | None) -> str | None:
    """The text a serial ``line`` asks for attention with, or None if it does not ask."""
    match = MARKER.search(line)
    if match is not None:
        text = match.group(1) or ""
    elif pattern is not None and (match := pattern.search(line)) is not None:
        text = match.group(1) if pattern.groups and match.group(1) is not None else line
    else:
        return None
    return text.strip()[:MAX_TEXT]


@dataclass(frozen=True)
class SeatView:
    """What the policy needs of one seat: its active persona, the personas it may show and
    whether a key or button of its is down."""

    name: str
    active: str | None
    personas: Collection[str]
    pressed: bool = False


def due(armed: Sequence[AttentionRequested], seats: Sequence[SeatView], on_attention: OnAttention,
        idle_s: float) -> tuple[tuple[str, str] | None, float | None]:
    """The policy: ``((persona, seat) to switch now, None)``, or ``(None, seconds to wait
    before asking again)`` (None: until something happens).

    ``armed`` are the requests that may still switch (oldest first); ``seats`` in config
    order; ``idle_s`` is how long ago the last input came. A request whose persona is active
    on a seat switches nothing; the others go, oldest first, to the first seat that may show
    their persona with no key down.
    """
    shown = {seat.active for seat in seats}
    candidates = [r for r in armed if r.persona not in shown]
    if on_attention != "switch":
        return None, None
    for request in candidates:
        free = [s for s in seats if request.persona in s.personas and not s.pressed]
        if free:
            if idle_s < IDLE_S:
                return None, IDLE_S - idle_s
            return (request.persona, free[0].name), None
    return None, None  # nothing, or every seat busy: a release is an input, it wakes the watcher


def iso_time(when: float) -> str:
    """``time.time()`` as ISO 8601 in UTC with milliseconds (``2031-05-01T09:00:00.000+00:00``)."""
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


class Attention:
    """Watches the personas' serial lines for requests; see the module docstring.

    ``seats`` says who is active where and which keys are down (the controller's own);
    ``outputs`` returns each seat's output, whose banner shows the requests (looked up at
    each change; a seat not there has no banner).
    """

    def __init__(self, config: Config, events: Events, seats: Seats,
                 outputs: Callable[[], Mapping[str, Output]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_attention = config.display.on_attention
        self.patterns = {p.name: re.compile(p.attention) if p.attention else None for p in config.personas}
        self.events = events
        self.seats = seats
        self.outputs = outputs
        self.clock = clock
        self.pending: dict[str, list[AttentionRequested]] = {}
        self.armed: list[AttentionRequested] = []  # may still switch (oldest first)
        self.seen: collections.deque[AttentionRequested] = collections.deque(maxlen=HISTORY)
        self.last_input = float("-inf")
        self._paced: dict[str, Paced[AttentionRequested]] = {}
        self._wake = asyncio.Event()
        events.subscribe(self._on_event)

    # --- what the controller tells it ---------------------------------------------------

    def input_came(self) -> None:
        """Input arrived (any source): an attention switch waits :data:`IDLE_S` from now."""
        self.last_input = self.clock()
        if self.armed:
            self._wake.set()

    def line(self, persona: str, line: str, when: float) -> None:
        """One whole serial line of ``persona``'s, completed at ``when`` (``time.time()``)."""
        text = request_text(line, self.patterns.get(persona))
        if text is not None:
            if persona not in self._paced:
                self._paced[persona] = Paced(ATTENTION_RATE, self.request, f"{persona}: attention requests")
            self._paced[persona](AttentionRequested(persona, text, when))

    def request(self, request: AttentionRequested) -> None:
        """Take a request: pending, published, shown; armed unless its persona is active."""
        kept = self.pending.setdefault(request.persona, [])
        kept.append(request)
        del kept[:-MAX_PENDING]
        self.seen.append(request)
        if self.seats.seat_of(request.persona) is None:
            self.armed.append(request)
            self._wake.set()
        log.info("%s asks for attention: %s", request.persona, visible(request.text))
        self.events.publish(request)
        self._show()

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, Switched):
            return
        # a switch answers every request pending now that the seat could have answered
        self._disarm(self._may_show(event.seat))
        if event.new is not None and event.new in self.pending:
            del self.pending[event.new]
            self.events.publish(AttentionCleared(event.new))
            self._show()

    def _may_show(self, seat: str) -> Collection[str]:
        """The personas ``seat`` may show (every persona for a seat not known)."""
        return self.seats.personas(seat) if seat in self.seats.seats else self.seats.names

    def _show(self) -> None:
        requests = [r for kept in self.pending.values() for r in kept]
        requests.sort(key=lambda r: r.time)
        try:
            outputs = self.outputs()
        except Exception:  # the banner is not worth a lost request
            log.exception("attention: the seats' outputs could not be found")
            return
        for seat in self.seats.seats:
            output = outputs.get(seat)
            if output is None:
                continue
            personas = self.seats.personas(seat)
            try:
                output.show_attention([(r.persona, r.text) for r in requests if r.persona in personas])
            except Exception:  # the banner is not worth a lost request
                log.exception("attention: seat %s's output could not show the banner", seat)

    def seat_views(self) -> list[SeatView]:
        """Each seat, as :func:`due` sees it (now)."""
        return [SeatView(seat, self.seats.active(seat), self.seats.personas(seat), self.seats.pressed(seat))
                for seat in self.seats.seats]

    # --- what others ask ----------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """The pending requests, oldest first, for ``ctl status``: persona, text, time (ISO 8601)."""
        requests = sorted((r for kept in self.pending.values() for r in kept), key=lambda r: r.time)
        return [{"persona": r.persona, "text": r.text, "time": iso_time(r.time)} for r in requests]

    async def wait_for(self, persona: str, pattern: re.Pattern[str], timeout: float) -> AttentionRequested:
        """A request from ``persona`` whose text ``pattern`` matches (``re.search``): a
        pending one, else the next to arrive.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
        """
        for request in self.pending.get(persona, []):
            if pattern.search(request.text):
                return request
        found: asyncio.Future[AttentionRequested] = asyncio.get_running_loop().create_future()

        def heard(event: Event) -> None:
            if (isinstance(event, AttentionRequested) and event.persona == persona
                    and pattern.search(event.text) and not found.done()):
                found.set_result(event)

        unsubscribe = self.events.subscribe(heard)
        try:
            async with asyncio.timeout(timeout):
                return await found
        finally:
            unsubscribe()

    def describe_seen(self) -> str:
        """The recent requests (any persona), for a failure message."""
        if not self.seen:
            return "no requests for attention were seen"
        return "requests seen: " + "; ".join(f"{r.persona} {r.text!r} at {iso_time(r.time)}"
                                              for r in list(self.seen)[-10:])

    # --- the loop -----------------------------------------------------------------------

    async def run(self, personas: Mapping[str, Persona], switch: Switch) -> None:
        """Hear the personas' lines and apply ``on_attention`` until cancelled."""
        listeners = [(p.serial.line_listeners, self._listener(p.name)) for p in personas.values()]
        for where, listener in listeners:
            where.append(listener)
        try:
            while True:
                target, wait = due(self.armed, self.seat_views(), self.on_attention,
                                   self.clock() - self.last_input)
                if target is not None:
                    await self._switch(switch, *target)
                    continue
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            for where, listener in listeners:
                if listener in where:
                    where.remove(listener)

    def _listener(self, name: str) -> Callable[[str, float], None]:
        return lambda line, when: self.line(name, line, when)

    async def _switch(self, switch: Switch, target: str, seat: str) -> None:
        try:
            await switch(target, "attention", seat)
        except MuxError as exc:
            log.error("attention: switching seat %s to %s failed: %s", seat, target, exc)
        self._disarm([target])  # even when refused: one try per request

    def _disarm(self, personas: Iterable[str]) -> None:
        gone = set(personas)
        self.armed = [r for r in self.armed if r.persona not in gone]
