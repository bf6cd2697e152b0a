"""Typing text fast without losing keys: a string's key edges, cut into paced batches.

Theory. QEMU hands every event of one QMP ``input-send-event`` to the guest's keyboard
at once, and what the keyboard cannot hold is dropped without a word:

- **PS/2** (QEMU's ``hw/input/ps2.c``): a 16-byte queue the guest drains one byte per
  interrupt. An ordinary key edge is one byte (the i8042 translates set 2 to set 1, a
  release's ``F0`` prefix included); an extended key (``E0``) two, Pause six. A command
  carrying more bytes than the queue holds, or one sent before the guest has drained the
  last, loses the overflow.
- **virtio** (``virtio-keyboard-pci``): the events of one command and its ``SYN_REPORT``
  go into the guest's 64 event buffers as one report, or all of them are dropped when
  too few buffers are free (``virtio_input_send`` in QEMU).

So a string becomes batches of whole characters that fit the queue. Where the host can
see the keyboard's room (``watched``, :mod:`mux.guest.keyboard`: virtio's free buffers,
or the i8042's "output buffer full" bit, clear once the guest has read every byte of
PS/2's queue), each batch waits until it fits and is sent at once; a PS/2 batch then
fills the queue but for two bytes (a key the user presses meanwhile). That is how the
``type`` step types wherever QEMU answers.

Blind (an older or stranger QEMU that cannot say), batches go no closer than an interval
apart (start to start, the QMP round trip included), each filling at most half the
queue, so one batch the guest has not taken yet still leaves room for the next: a guest
not scheduled for up to two intervals (the host is busy, or a TCG guest loading modules
did not drain its PS/2 queue for tens of milliseconds) loses nothing. Measured by typing
into the ``console`` image under TCG on this 2-core machine and comparing the guest's
``MUX-KEY`` lines with what was sent: PS/2, 32 edges per command lost half of them; 16
edges lost none at 20-25 ms on a quiet machine but a whole batch at 25 ms under a load
of 4-5 (lost keys come 16 at a time: an overflow), while 8 per 25 ms and 16 per 50 ms
lost none there; virtio, 63 edges back to back lost 75%, 128 all, 31 per 15 or 25 ms
none. :data:`PACES`: blind PS/2 8 bytes per 25 ms (about 150 characters a second of
plain text); virtio 30 edges and the SYN per 25 ms.

``rate`` (characters per second) slows typing down for a guest that needs it: batches
then hold ``rate * interval`` characters (at least one) and start ``characters / rate``
apart. Pure: no asyncio, no QEMU.
"""

from __future__ import annotations

from dataclasses import dataclass

from mux.errors import InputError
from mux.input import keymap

#: Key edges as (Linux key code, 1 down / 0 up).
Edge = tuple[int, int]

_PAUSE = 119
_FIRST_EXTENDED = 96  # KEY_KPENTER: from here on, PS/2 set 1 codes carry an E0 prefix


@dataclass(frozen=True)
class Pace:
    """How much one command may carry to a keyboard, and how often."""

    #: What one command may carry: PS/2 queue bytes, or virtio events (its SYN included).
    capacity: int
    #: What it may carry when it is sent only once the keyboard has room for it.
    watched_capacity: int
    #: The shortest time between the starts of two commands.
    interval_s: float
    #: PS/2 counts scancode bytes (extended keys cost more); virtio counts events.
    counts_bytes: bool

    def cost(self, code: int) -> int:
        """What one edge of key ``code`` takes of :attr:`capacity`."""
        if not self.counts_bytes:
            return 1
        return 6 if code == _PAUSE else 2 if code >= _FIRST_EXTENDED else 1


#: The fastest safe pace of each keyboard (see the module docstring for the measurements).
PACES: dict[str, Pace] = {
    # Blind: half the 16-byte queue; watched: all of it but two bytes.
    "ps2": Pace(capacity=8, watched_capacity=14, interval_s=0.025, counts_bytes=True),
    # 30 edges + SYN: half of the 64 buffers, watched or not.
    "virtio": Pace(capacity=31, watched_capacity=31, interval_s=0.025, counts_bytes=False),
}


@dataclass(frozen=True)
class Batch:
    """One command's key edges and how long to wait from its start to the next one's."""

    edges: tuple[Edge, ...]
    characters: int
    wait_s: float
    #: What it takes of the keyboard's room: PS/2 bytes, or virtio events with the SYN.
    cost: int


def chord_edges(chord: tuple[int, ...]) -> list[Edge]:
    """A chord's presses in order, then its releases in reverse."""
    return [(code, 1) for code in chord] + [(code, 0) for code in reversed(chord)]


def type_batches(text: str, keyboard: str = "ps2", rate: float | None = None,
                 watched: bool = False) -> list[Batch]:
    """``text``'s key edges in as few batches as ``keyboard`` takes without losing any;
    ``watched``: each is sent only once the keyboard has room for it.

    Raises:
        InputError: an unknown keyboard, a ``rate`` that is not above zero, or a
            character that cannot be typed (:class:`~mux.errors.UnknownKeyError`).
    """
    if keyboard not in PACES:
        raise InputError(f"keyboard must be one of {', '.join(PACES)}, not {keyboard!r}")
    if rate is not None and not rate > 0:
        raise InputError(f"a typing rate must be above 0 characters a second, not {rate}")
    pace = PACES[keyboard]
    syn = 0 if pace.counts_bytes else 1  # virtio: the SYN takes one
    room = (pace.watched_capacity if watched else pace.capacity) - syn
    most = None if rate is None else max(1, int(rate * pace.interval_s))
    batches: list[Batch] = []
    edges: list[Edge] = []
    used = characters = 0

    def close() -> None:
        nonlocal edges, used, characters
        if edges:
            wait = pace.interval_s if rate is None else max(pace.interval_s, characters / rate)
            batches.append(Batch(tuple(edges), characters, wait, used + syn))
        edges, used, characters = [], 0, 0

    for chord in keymap.text_to_chords(text):
        these = chord_edges(chord)
        cost = sum(pace.cost(code) for code, _ in these)
        if cost > room:
            raise InputError(f"a chord of {len(chord)} keys does not fit one {keyboard} command")
        if used + cost > room or (most is not None and characters >= most):
            close()
        edges += these
        used += cost
        characters += 1
    close()
    return batches
