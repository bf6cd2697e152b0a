"""How many key events a persona's virtio keyboard can take right now (typing's flow control).

Theory. QEMU drops a whole report when the guest has not made enough event buffers
available (``virtio_input_send``), and nothing tells the host when the guest has taken
the last one. But the count is in plain sight: the guest publishes its buffers in the
event queue's *available ring*, whose index (a little-endian u16 two bytes into the
ring) counts every buffer it ever made available, and QEMU's ``last-avail-idx`` counts
every buffer it took. Their difference is the room left. QMP gives both: the ring's
guest-physical address and ``last-avail-idx`` from ``x-query-virtio-queue-status``, the
index itself from ``pmemsave`` of those two bytes. Only key events take buffers, so
between the look and the send the room can only grow: a batch that fits is never dropped.
"""

from __future__ import annotations

from pathlib import Path

from mux.errors import PersonaError
from mux.guest.cmdline import VIRTIO_KEYBOARD_PATH
from mux.guest.persona import Persona


async def virtio_room(persona: Persona, scratch: Path) -> int | None:
    """Event buffers the guest has made available to ``persona``'s virtio keyboard and
    QEMU has not used yet; None when QEMU cannot say (no such keyboard, an older QEMU).

    ``scratch`` is a file QEMU may write (two bytes), in a directory only mux can reach.

    Raises:
        StateError: the persona is not running.
    """
    try:
        status = await persona.execute("x-query-virtio-queue-status",
                                       {"path": VIRTIO_KEYBOARD_PATH, "queue": 0})
        ring, taken = int(status["vring-avail"]), int(status["last-avail-idx"])
        if not ring:
            return 0  # the driver has not set the queue up yet
        await persona.execute("pmemsave", {"val": ring + 2, "size": 2, "filename": str(scratch)})
        made = int.from_bytes(scratch.read_bytes()[:2], "little")
    except (PersonaError, KeyError, TypeError, ValueError, OSError):
        return None
    return (made - taken) % 65536
