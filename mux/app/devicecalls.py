"""The controller's device calls (:mod:`mux.devices.hotplug` does the work): a mixin."""

from __future__ import annotations

from typing import Any

from mux.devices.hotplug import Hotplug
from mux.guest.persona import Persona


class DeviceCalls:
    """``attach``, ``detach`` and ``devices``; the controller provides what is declared here."""

    hotplug: Hotplug

    def persona(self, name: str) -> Persona:
        raise NotImplementedError

    async def attach(self, device: str, persona: str, timeout: float | None = None) -> dict[str, Any]:
        """Move ``device`` to ``persona`` (QMP hotplug if it runs); returns the device's status.

        Raises:
            DeviceError: unknown device or persona, or the move failed; the message says where
                the device is now (where it was, unless even putting it back failed).
            DeviceTimeout: the guest holding it did not release it; it stays there.
        """
        return await self.hotplug.attach(device, persona, timeout)

    async def detach(self, device: str, persona: str | None = None,
                     timeout: float | None = None) -> dict[str, Any]:
        """Unplug ``device`` from its persona (which must be ``persona`` if given).

        Raises:
            DeviceError: unknown device, attached elsewhere, or QEMU refused the unplug.
            DeviceTimeout: the guest did not release it; it stays attached.
        """
        return await self.hotplug.detach(device, persona, timeout)

    def devices(self, persona: str) -> list[dict[str, Any]]:
        """The devices ``persona`` holds now, as JSON-ready dicts. Raises UnknownPersona."""
        return self.hotplug.devices(self.persona(persona).name)
