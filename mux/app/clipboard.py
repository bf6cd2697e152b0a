"""mux's own clipboard: text moves between personas only by an explicit copy and paste.

The model is Qubes': no persona's clipboard ever reaches another by itself. A *copy*
(``scrolllock+c``, ``mux ctl clipboard copy``, the panel's button) reads the active
persona's clipboard into mux's own, remembering which persona it came from; a *paste*
(``scrolllock+v``...) makes mux's text the active persona's clipboard, and the user then
pastes as usual inside the guest. Nothing else moves text: mux's VNC links never forward
a guest's clipboard on their own.

Each persona's clipboard is QEMU's, reached over the VNC link mux already keeps
(:class:`~mux.guest.rfb.RfbClient`: ``clipboard_text``, ``set_clipboard``); with
``clipboard = true`` QEMU's ``qemu-vdagent`` joins it to the guest's session.

Policy (pure: :func:`allowed`, :func:`refusal`): a persona without ``clipboard = true``
is never copied from nor pasted into; ``[clipboard] allow`` (rules ``"from -> to"``, each
side a persona or ``*``) lists where text may be pasted, and not set means anywhere;
pasting text back into the persona it came from is always allowed. At most
:data:`~mux.guest.rfb_clipboard.MAX_CLIPBOARD_BYTES` of UTF-8 (1 MiB less 4 bytes: QEMU's
own limit) move at a time, in either direction.

Every copy and paste, made or refused, is published as a
:class:`~mux.app.events.ClipboardChanged` and shown on the output's banner
(``copied 42 characters from home``, ``pasted 42 characters into work``,
``refused: home → work``). The text itself goes nowhere else: events, banners, logs,
status and replies carry persona names and sizes only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any, NoReturn, Protocol

from mux.app.events import ClipboardChanged, Events
from mux.errors import ClipboardRefused, MuxError
from mux.guest.rfb_clipboard import MAX_CLIPBOARD_BYTES
from mux.input.hotkeys import COPY, PASTE

log = logging.getLogger(__name__)

#: How long a copy waits for QEMU to hand over the guest's clipboard, in seconds.
READ_TIMEOUT_S = 5.0
ARROW = "→"


class ClipboardLink(Protocol):
    """What the clipboard needs of a persona's VNC link (:class:`~mux.guest.rfb.RfbClient`)."""

    @property
    def clipboard_available(self) -> bool:
        """QEMU announced text on this persona's clipboard."""
        ...

    async def clipboard_text(self, timeout: float) -> str:
        """The persona's clipboard text. Raises MuxError (none, link down, too slow, too big)."""
        ...

    def set_clipboard(self, text: str) -> None:
        """Make ``text`` the persona's clipboard. Raises MuxError (link down, too big)."""
        ...


#: The link of a persona, or None when it is down (the persona is not running).
LinkOf = Callable[[str], ClipboardLink | None]
#: Shows a banner (:meth:`mux.display.output.Output.notify`).
Notify = Callable[[str], None]


# --- the policy: pure -------------------------------------------------------------------


def allowed(rules: Sequence[str] | None, source: str, target: str) -> bool:
    """Whether text copied from ``source`` may be pasted into ``target``.

    ``rules`` are ``[clipboard] allow``'s normalised ``"from -> to"`` strings (each side a
    persona's name or ``*``); None (not set) allows any direction. Pasting into the
    persona the text came from is always allowed: nothing crosses.
    """
    if rules is None or source == target:
        return True
    for rule in rules:
        left, _, right = rule.partition(" -> ")
        if left.strip() in ("*", source) and right.strip() in ("*", target):
            return True
    return False


def copied_message(persona: str, chars: int) -> str:
    """The banner after a copy: ``copied 42 characters from home``."""
    return f"copied {chars} character{'' if chars == 1 else 's'} from {persona}"


def pasted_message(persona: str, chars: int, origin: str) -> str:
    """The banner after a paste: ``pasted 42 characters from home into work``."""
    return f"pasted {chars} character{'' if chars == 1 else 's'} from {origin} into {persona}"


def refusal(action: str, persona: str | None, *, origin: str | None, enabled: Collection[str],
            rules: Sequence[str] | None) -> str | None:
    """Why ``action`` (copy or paste) on ``persona`` (the active one) is refused before any
    link is asked, or None. ``origin``: where mux's text came from (None: nothing copied)."""
    if persona is None:
        return f"{action}: no persona is active"
    where = f"copy from {persona}" if action == COPY else f"paste into {persona}"
    if action == PASTE and origin is None:
        return "paste: nothing copied yet"
    if persona not in enabled:
        return f"{where}: it has no clipboard (clipboard = true)"
    if action == PASTE and origin is not None and not allowed(rules, origin, persona):
        return f"{origin} {ARROW} {persona}"
    return None


def size_refusal(action: str, persona: str, text: str, limit: int = MAX_CLIPBOARD_BYTES) -> str | None:
    """Why ``text`` is too big to copy or paste (its size in UTF-8 bytes over ``limit``), or None."""
    size = len(text.encode("utf-8", "replace"))
    if size <= limit:
        return None
    where = f"copy from {persona}" if action == COPY else f"paste into {persona}"
    return f"{where}: {size} bytes, over the clipboard's cap of {limit} bytes"


# --- mux's clipboard ----------------------------------------------------------------------


class Clipboard:
    """mux's own clipboard: the text of the last copy and the persona it came from."""

    def __init__(self, enabled: Collection[str], rules: Sequence[str] | None, link_of: LinkOf,
                 events: Events, notify: Notify, *, timeout: float = READ_TIMEOUT_S,
                 max_bytes: int = MAX_CLIPBOARD_BYTES) -> None:
        """``enabled``: the personas with ``clipboard = true``; ``rules``: ``[clipboard] allow``."""
        self.enabled = frozenset(enabled)
        self.rules = None if rules is None else tuple(rules)
        self.link_of = link_of
        self.events = events
        self.notify = notify
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._text: str | None = None
        self._origin: str | None = None

    def status(self) -> dict[str, Any] | None:
        """``{"chars": N, "from": persona}`` (no text), or None before the first copy."""
        if self._text is None:
            return None
        return {"chars": len(self._text), "from": self._origin}

    async def copy(self, persona: str | None, source: str) -> dict[str, Any]:
        """Read ``persona``'s clipboard (the active one's) into mux's own, for ``source``
        (who asked: ``hotkey``, ``control socket``...); returns
        ``{"action": "copy", "persona", "chars", "from", "message"}``.

        Raises:
            ClipboardRefused: no persona is active, it has no clipboard, its link is down,
                its clipboard has no text or could not be read, or the text is over the
                cap. mux's clipboard then keeps what it had.
        """
        self._check(COPY, persona, source)
        assert persona is not None
        link = self._link(COPY, persona, source)
        if not link.clipboard_available:
            self._refuse(COPY, persona, source, f"copy from {persona}: its clipboard is empty")
        try:
            text = await link.clipboard_text(self.timeout)
        except MuxError as exc:
            self._refuse(COPY, persona, source, f"copy from {persona}: its clipboard could not be read"
                                                f" ({exc})")
        if (reason := size_refusal(COPY, persona, text, self.max_bytes)) is not None:
            self._refuse(COPY, persona, source, reason)
        self._text, self._origin = text, persona
        message = copied_message(persona, len(text))
        self._done(COPY, persona, persona, len(text), source, message)
        return {"action": COPY, "persona": persona, "chars": len(text), "from": persona, "message": message}

    async def paste(self, persona: str | None, source: str) -> dict[str, Any]:
        """Make mux's text ``persona``'s clipboard (the active one's), for ``source``;
        returns ``{"action": "paste", "persona", "chars", "from", "message"}``.

        Raises:
            ClipboardRefused: nothing was copied yet, no persona is active, it has no
                clipboard, ``[clipboard] allow`` has no rule from where the text came to
                it, its link is down, or the link refused the text. The persona's
                clipboard is then unchanged.
        """
        self._check(PASTE, persona, source)
        assert persona is not None and self._text is not None and self._origin is not None
        text, origin = self._text, self._origin
        if (reason := size_refusal(PASTE, persona, text, self.max_bytes)) is not None:
            self._refuse(PASTE, persona, source, reason, origin)
        link = self._link(PASTE, persona, source)
        try:
            link.set_clipboard(text)
        except MuxError as exc:
            self._refuse(PASTE, persona, source, f"paste into {persona}: {exc}", origin)
        message = pasted_message(persona, len(text), origin)
        self._done(PASTE, persona, origin, len(text), source, message)
        return {"action": PASTE, "persona": persona, "chars": len(text), "from": origin, "message": message}

    # --- helpers ------------------------------------------------------------------------

    def _check(self, action: str, persona: str | None, source: str) -> None:
        """Raises ClipboardRefused: the policy refuses ``action`` on ``persona``."""
        reason = refusal(action, persona, origin=self._origin, enabled=self.enabled, rules=self.rules)
        if reason is not None:
            self._refuse(action, persona, source, reason, self._origin if action == PASTE else None)

    def _link(self, action: str, persona: str, source: str) -> ClipboardLink:
        """The persona's link. Raises ClipboardRefused: it is down."""
        link = self.link_of(persona)
        if link is None:
            where = f"copy from {persona}" if action == COPY else f"paste into {persona}"
            self._refuse(action, persona, source, f"{where}: its display link is down (is it running?)",
                         self._origin if action == PASTE else None)
        return link

    def _done(self, action: str, persona: str, origin: str, chars: int, source: str, message: str) -> None:
        log.info("clipboard (%s): %s", source, message)  # names and sizes only, never the text
        self.events.publish(ClipboardChanged(action, persona, origin, chars, source))
        self._banner(message)

    def _refuse(self, action: str, persona: str | None, source: str, reason: str,
                origin: str | None = None) -> NoReturn:
        """Publish, show and raise a refusal. Raises ClipboardRefused, always."""
        error = ClipboardRefused(action, reason)
        log.info("clipboard (%s): %s", source, error)
        self.events.publish(ClipboardChanged(action, persona, origin, 0, source, refused=str(error)))
        self._banner(str(error))
        raise error

    def _banner(self, text: str) -> None:
        try:
            self.notify(text)
        except Exception:  # a broken output must not undo a copy or hide a refusal
            log.exception("clipboard: the output could not show %r", text)
