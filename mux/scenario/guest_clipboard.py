"""A guest session's clipboard, read and set from outside through the guest agent.

Theory. mux's own clipboard (:mod:`mux.app.clipboard`) moves text between personas over
QEMU's clipboard; to test that flow a scenario (and ``mux bench``) must also reach the
clipboard *inside* a guest, as an application there sees it. The built-in ``desktop``
image provides ``/usr/lib/mux/mux-clipboard`` (:data:`HELPER`): ``get`` prints the X
session's CLIPBOARD text, ``set`` makes its stdin the CLIPBOARD. It runs as root through
the persona's QEMU guest agent (``guest-exec``), inside ``/bin/sh`` so a missing helper is
told apart (exit 127) from an agent that does not answer.

The text goes to the guest as an argument of that shell (``printf %s "$1" | ... set``),
so it needs no agent session of its own: at most :data:`MAX_SET_BYTES` of UTF-8, and no
NUL character (a command line cannot carry one). The text read back is the guest's
(untrusted): the agent bounds it (:data:`mux.guest.agent.MAX_OUTPUT_BYTES`), and callers
keep it to themselves: these functions never put clipboard text in an error message.
"""

from __future__ import annotations

from mux.app.controller import Controller
from mux.errors import PersonaError
from mux.guest.text import visible_lines

HELPER = "/usr/lib/mux/mux-clipboard"
MISSING = 127  # the shell's "command not found"
MAX_SET_BYTES = 100_000  # one argument of a command line (Linux: 128 KiB each)
STDERR_CHARS = 300  # of the helper's stderr, in an error message
_GET = f'h={HELPER}; [ -x "$h" ] || exit {MISSING}; exec "$h" get'
_SET = f'h={HELPER}; [ -x "$h" ] || exit {MISSING}; printf %s "$1" | "$h" set'


async def read_clipboard(ctl: Controller, persona: str, timeout: float) -> str:
    """The CLIPBOARD text of ``persona``'s guest session (decoded as UTF-8, bad bytes
    replaced), waiting up to ``timeout`` for its agent.

    Raises:
        UnknownPersona: no such persona.
        PersonaError: it has no agent, the agent did not answer, the image has no
            :data:`HELPER`, or the helper failed (its exit status and stderr).
    """
    result = await _run(ctl, persona, ["/bin/sh", "-c", _GET, "mux-clipboard"], "get", timeout)
    return result.decode("utf-8", errors="replace")


async def set_clipboard(ctl: Controller, persona: str, text: str, timeout: float) -> None:
    """Make ``text`` the CLIPBOARD of ``persona``'s guest session, waiting up to
    ``timeout`` for its agent.

    Raises:
        UnknownPersona: no such persona.
        PersonaError: the text is too long or holds a NUL character, the persona has no
            agent, the agent did not answer, the image has no :data:`HELPER`, or the
            helper failed.
    """
    size = len(text.encode("utf-8"))
    if size > MAX_SET_BYTES:
        raise PersonaError(f"persona {persona!r}: a clipboard text of {size} bytes is over the"
                           f" {MAX_SET_BYTES} a guest's command line takes")
    if "\0" in text:
        raise PersonaError(f"persona {persona!r}: a clipboard text with a NUL character cannot be set"
                           " (a command line cannot carry one)")
    await _run(ctl, persona, ["/bin/sh", "-c", _SET, "mux-clipboard", text], "set", timeout)


async def _run(ctl: Controller, persona: str, argv: list[str], action: str, timeout: float) -> bytes:
    """Run the helper; its stdout. Raises UnknownPersona, PersonaError (see the callers)."""
    guest = ctl.persona(persona)
    if guest.readiness.agent_socket is None:
        raise PersonaError(f"persona {persona!r} has no guest agent: the clipboard steps need"
                           f" agent = true and an image with {HELPER} (the built-in desktop image)")
    result = await ctl.exec(persona, argv, timeout)
    status = result["exitcode"] if result["exitcode"] is not None else 128 + int(result["signal"] or 0)
    if status == MISSING:
        raise PersonaError(f"persona {persona!r}: its image has no {HELPER} (exit status {MISSING});"
                           " the clipboard steps need one, as the built-in desktop image has")
    if status != 0:
        stderr = result["stderr"].decode("utf-8", errors="replace")[:STDERR_CHARS].rstrip("\n")
        raise PersonaError(f"persona {persona!r}: {HELPER} {action} exited with {status}"
                           + (f"; stderr:\n{visible_lines(stderr)}" if stderr else ""))
    stdout = result["stdout"]
    assert isinstance(stdout, bytes)
    return stdout
