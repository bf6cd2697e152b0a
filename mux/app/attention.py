"""Background personas ask for attention ("the phone rings"): the watcher and its policy.

Theory. A guest asks by one line on its serial port: ``MUX-ATTENTION <text>`` (the
built-in images' ``mux-attention TEXT...`` prints it), or, for any guest, a line that its
persona's ``attention = "REGEX"`` matches (searched in each whole line, ``re.search``).
The request's text is the marker's ``<text>``; for the regex, its first group if it has
groups (and the group took part), else the whole line; either way stripped and cut to
:data:`MAX_TEXT` characters. The watcher hears every whole line as it arrives
(:attr:`mux.guest.serial.SerialLog.line_listeners`), so nothing rescans the log.

A request is published (:class:`~mux.app.events.AttentionRequested`) and stays *pending*
until its persona is made active by a switch; then all of that persona's requests are
cleared at once (:class:`~mux.app.events.AttentionCleared`). Pending requests are shown
on the output's banner (the newest, and how many others), whatever persona is active, and
listed in ``ctl status`` (``"attention"``). The active persona's own request is shown and
listed too, but it never switches: it is cleared when that persona is next switched to.

``[display] on_attention = "switch"`` also switches to a background persona that asks
(source ``"attention"``), but never under the user's hands: only when no key or button is
down (:meth:`mux.input.router.Router.pressed`) and no input came for :data:`IDLE_S`
seconds. A request that arrives while the user types waits until they stop (it is not
dropped). Each request may cause one switch at most, and only until the next switch of
any kind: a switch (the user's own included) answers every request pending at that
moment, which stay on the banner but switch no more. So two personas ringing together
bring the first one forward; the second stays on the banner until visited. The policy is
the pure :func:`due`; :class:`Attention` is the watcher around it.

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
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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
from mux.input.router import Router

log = logging.getLogger(__name__)

MARKER = re.compile(r"MUX-ATTENTION(?:[ \t]+(.*))?$")  # anywhere in a line
IDLE_S = 2.0  # no input for this long before an attention switch
MAX_TEXT = 200  # characters of a request's text kept
MAX_PENDING = 20  # a persona's pending requests kept (the oldest go first)
ATTENTION_RATE = 2.0  # a persona's requests taken per second at most (the newest wins)
HISTORY = 50  # recent requests kept for messages (assert_attention's failure)

Switch = Callable[[str, str], Awaitable[str]]


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


def due(armed: Sequence[AttentionRequested], active: str | None, on_attention: OnAttention,
        keys_down: bool, idle_s: float) -> tuple[str | None, float | None]:
    """The policy: ``(persona to switch to now, None)``, or ``(None, seconds to wait before
    asking again)`` (None: until something happens).

    ``armed`` are the requests that may still switch (oldest first); ``idle_s`` is how
    long ago the last input came.
    """
    candidates = [r for r in armed if r.persona != active]
    if on_attention != "switch" or not candidates or keys_down:
        return None, None  # a release is an input: it wakes the watcher
    if idle_s < IDLE_S:
        return None, IDLE_S - idle_s
    return candidates[0].persona, None


def iso_time(when: float) -> str:
    """``time.time()`` as ISO 8601 in UTC with milliseconds (``2031-05-01T09:00:00.000+00:00``)."""
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


class Attention:
    """Watches the personas' serial lines for requests; see the module docstring.

    ``output`` returns the output the banner is drawn on (looked up at each change).
    """

    def __init__(self, config: Config, events: Events, router: Router,
                 output: Callable[[], Output], clock: Callable[[], float] = time.monotonic) -> None:
        self.on_attention = config.display.on_attention
        self.patterns = {p.name: re.compile(p.attention) if p.attention else None for p in config.personas}
        self.events = events
        self.router = router
        self.output = output
        self.clock = clock
        self.active: str | None = None
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
        if request.persona != self.active:
            self.armed.append(request)
            self._wake.set()
        log.info("%s asks for attention: %s", request.persona, visible(request.text))
        self.events.publish(request)
        self._show()

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, Switched):
            return
        self.active = event.new
        self.armed.clear()  # a switch answers every request pending now (module docstring)
        if self.pending.pop(event.new, None):
            self.events.publish(AttentionCleared(event.new))
            self._show()

    def _show(self) -> None:
        requests = [r for kept in self.pending.values() for r in kept]
        requests.sort(key=lambda r: r.time)
        try:
            self.output().show_attention([(r.persona, r.text) for r in requests])
        except Exception:  # the banner is not worth a lost request
            log.exception("attention: the output could not show the banner")

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
                target, wait = due(self.armed, self.active, self.on_attention, self.router.pressed(),
                                   self.clock() - self.last_input)
                if target is not None:
                    await self._switch(switch, target)
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

    async def _switch(self, switch: Switch, target: str) -> None:
        try:
            await switch(target, "attention")
        except MuxError as exc:
            log.error("attention: switching to %s failed: %s", target, exc)
        self._disarm([target])  # even when refused: one try per request

    def _disarm(self, personas: Iterable[str]) -> None:
        gone = set(personas)
        self.armed = [r for r in self.armed if r.persona not in gone]
