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

PS/2's 16-byte queue is not in plain sight, but whether it is empty is: the i8042's
status register (I/O port 0x64, read without side effects by HMP's ``i``) has its
output-buffer-full bit set while any byte waits for the guest, as QEMU raises it again
after each byte the guest reads until the queue is empty. So the room is the whole queue
when that bit is clear and none while it is set. (A guest that disabled the keyboard's
i8042 port leaves the bit clear while the queue fills; guests do so only for a moment
while they set the keyboard up.)
"""

from __future__ import annotations

import re
from pathlib import Path

from mux.errors import PersonaError
from mux.guest.cmdline import VIRTIO_KEYBOARD_PATH
from mux.guest.persona import Persona


async def virtio_room(persona: Persona, scratch: Path) -> int | None:
    """Event buffers the guest has made available to ``persona``'s virtio keyboard and
    QEMU has not used yet; None when QEMU cannot say (no such keyboard, an older QEMU, the
    persona is not running).

    ``scratch`` is a file QEMU may write (two bytes), in a directory only mux can reach.
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


PS2_QUEUE_BYTES = 16  # QEMU's PS2_QUEUE_SIZE
_OUTPUT_FULL = 0x01  # i8042 status bit: a byte waits for the guest
_NO_CONTROLLER = 0xFF
_PORT_VALUE = re.compile(r"=\s*0x([0-9a-fA-F]+)")


async def ps2_room(persona: Persona) -> int | None:
    """Bytes ``persona``'s PS/2 keyboard queue can take now: all of it when the guest has
    read every byte, else 0; None when QEMU cannot say (or the persona is not running)."""
    try:
        said = await persona.execute("human-monitor-command", {"command-line": "i /b 0x64"})
        found = _PORT_VALUE.search(str(said))
    except PersonaError:
        return None
    status = int(found.group(1), 16) if found is not None else _NO_CONTROLLER
    if status == _NO_CONTROLLER:  # a machine without an i8042 reads all ones
        return None
    return 0 if status & _OUTPUT_FULL else PS2_QUEUE_BYTES
