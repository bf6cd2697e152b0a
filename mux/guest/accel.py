"""Choosing QEMU's accelerator: KVM only where it is proven to boot a guest.

On some hosts ``/dev/kvm`` exists and QEMU accepts ``accel=kvm`` but a normal Linux
guest hangs in early boot: the host's KVM is ``kvm_pvm`` (it runs only PVM guest
kernels) and the CPU shows neither ``vmx`` nor ``svm``. ``auto`` therefore picks KVM only
when the host looks able to run it, and the persona that boots first under KVM must
print on its serial port within :data:`KVM_PROOF_S`; if it does not, the controller
falls back to TCG (see :class:`mux.guest.persona.Persona`). A forced ``kvm`` on such a
host is refused, naming the obstacle. Every choice carries its reason, which the
controller prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mux.errors import PersonaError

KVM_PROOF_S = 20.0


@dataclass(frozen=True)
class AccelChoice:
    accel: Literal["kvm", "tcg"]
    reason: str
    proven: bool  # False: KVM still has to prove itself on the first boot

    def __str__(self) -> str:
        return f"{self.accel} ({self.reason})"


def kvm_obstacle(root: Path = Path("/")) -> str | None:
    """Why KVM cannot be used on this host, or None when it looks usable."""
    kvm = root / "dev/kvm"
    if not kvm.exists():
        return "/dev/kvm does not exist"
    if not os.access(kvm, os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    if (root / "sys/module/kvm_pvm").exists():
        return "the host's KVM is kvm_pvm, which hangs ordinary guest kernels"
    try:
        cpuinfo = (root / "proc/cpuinfo").read_text()
    except OSError:
        return "cannot read /proc/cpuinfo"
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    if " vmx" not in flags and " svm" not in flags:
        return "the CPU shows no vmx or svm flag"
    return None


def choose_accel(requested: Literal["auto", "kvm", "tcg"], root: Path = Path("/")) -> AccelChoice:
    """Turn the config's ``accel`` into a concrete choice with its reason.

    Raises:
        PersonaError: ``kvm`` is forced on a host whose KVM cannot run a guest (the
            obstacle is named): there QEMU fails, or the guest hangs without a word.
    """
    if requested == "tcg":
        return AccelChoice("tcg", "configured", proven=True)
    obstacle = kvm_obstacle(root)
    if requested == "kvm":
        if obstacle:
            raise PersonaError(f'accel = "kvm", but KVM cannot run guests on this host: {obstacle};'
                               ' use accel = "auto" (KVM where it works, else TCG) or "tcg"')
        return AccelChoice("kvm", "configured", proven=True)
    if obstacle:
        return AccelChoice("tcg", f"auto: {obstacle}", proven=True)
    return AccelChoice("kvm", f"auto: must print on serial within {KVM_PROOF_S:.0f}s", proven=False)
