"""The steps that ask the guest itself, mixed into the runner: ``wait_ready``, ``exec`` and
``assert_attention``.

``wait_ready`` waits until the persona's guest is ready for work (:mod:`mux.guest.ready`:
its guest agent answers, or a built-in image printed ``MUX-READY`` once its prompt was
on the screen). ``exec`` runs a command in the guest through its QEMU guest agent (the
persona needs ``agent = true``): a string is a shell command line run by ``/bin/sh -c``,
a list a program and its arguments. The step fails unless the exit status is
``status`` (0) and, if given, ``match`` (a regex, multi-line) is found in its stdout.
Its exit status, stdout and stderr are the step's message in ``results.json`` and
progress lines in the JUnit ``system-out``, with their control characters made visible
(:func:`mux.guest.text.visible_lines`: a guest is untrusted), as are the serial lines in
``wait_ready``'s failure. A step whose ``persona`` is left out asks the active persona.
``assert_attention`` passes when ``persona`` has a pending request for
attention whose text ``match`` finds (``re.search``; default: any), or one arrives within
``timeout`` (:mod:`mux.app.attention`); its failure lists the requests seen.

``set_clock`` sets the guest's clock through its agent (``guest-set-time``) to ``time``:
ISO 8601, UTC unless it has an offset, or ``host`` for the host's time when the step
runs (:mod:`mux.guest.clock`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from mux.app.controller import Controller
from mux.errors import StepFailed
from mux.guest.clock import parse_guest_time, utc_text
from mux.guest.text import visible_lines

OUTPUT_CHARS = 4000  # of each stream, in messages (the rest is cut, the end kept)


class GuestSteps:
    """``step_*`` methods for the guest itself; the runner provides what is declared here."""

    ctl: Controller
    message: str
    say: Callable[[str], None]

    def timeout(self, seconds: float) -> float:
        raise NotImplementedError

    def _persona(self, a: dict[str, Any]) -> str:
        raise NotImplementedError

    async def step_wait_ready(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        persona = self.ctl.persona(name)
        timeout = self.timeout(a["timeout"])
        try:
            await persona.readiness.wait(timeout)
        except TimeoutError:
            what = "its guest agent did not answer" if persona.agent_socket else "no MUX-READY"
            raise StepFailed(f"{name} was not ready within {timeout:.0f}s ({what}; state {persona.state});"
                             f" last serial lines:\n{visible_lines(persona.serial.tail(10))}") from None

    async def step_exec(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        command = a["command"]
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(c) for c in command]
        result = await self.ctl.exec(name, argv, self.timeout(a["timeout"]))
        stdout = result["stdout"].decode(errors="replace")
        stderr = result["stderr"].decode(errors="replace")
        status = result["exitcode"] if result["exitcode"] is not None else 128 + int(result["signal"] or 0)
        report = exec_report(status, stdout, stderr)
        for line in report.splitlines():
            self.say(f"    {name}$ {line}")
        self.message = report
        if status != a["status"]:
            raise StepFailed(f"{command!r} on {name} exited with {status}, expected {a['status']}; {report}")
        if a["match"] is not None and not re.search(a["match"], stdout, re.MULTILINE):
            raise StepFailed(f"{command!r} on {name}: stdout does not match {a['match']!r}; {report}")

    async def step_set_clock(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        seconds = parse_guest_time(a["time"], time.time())
        await self.ctl.set_clock(name, seconds, self.timeout(a["timeout"]))
        self.message = f"{name}: clock set to {utc_text(seconds)}"
        self.say(f"    {self.message}")


    async def step_assert_attention(self, a: dict[str, Any]) -> None:
        name, timeout = self.ctl.persona(a["persona"]).name, self.timeout(a["timeout"])
        try:
            found = await self.ctl.attention.wait_for(name, re.compile(a["match"]), timeout)
        except TimeoutError:
            raise StepFailed(f"no request for attention from {name} matching {a['match']!r} within"
                             f" {timeout:.0f}s; {self.ctl.attention.describe_seen()}") from None
        self.message = f"{name} asks for attention: {found.text!r}"


def exec_report(status: int, stdout: str, stderr: str) -> str:
    """A command's exit status and output as one message (long output cut, its end kept), the
    output's control characters made visible."""
    def cut(text: str) -> str:
        return text if len(text) <= OUTPUT_CHARS else f"[...{len(text) - OUTPUT_CHARS} chars cut]" \
            + text[-OUTPUT_CHARS:]
    parts = [f"exit status {status}"]
    for label, text in (("stdout", stdout), ("stderr", stderr)):
        if text:
            parts.append(f"{label}:\n{visible_lines(cut(text).rstrip(chr(10)))}")
    return "\n".join(parts)
