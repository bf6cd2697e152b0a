"""Every error mux raises on purpose derives from :class:`MuxError`.

The whole tree, and whose fault each one is::

    MuxError
     ├── ConfigError          the user's config or scenario file (file:line: message)
     │    └── ScenarioError   a scenario file specifically
     ├── InputError           a key name, chord, hotkey table or text the input side cannot use
     │    └── UnknownKeyError a name that is no Linux key name (suggests close ones)
     ├── UnknownPersona       a request names a persona (or switch target) that is not configured
     ├── SeatError            seats set up wrongly, or a switch a seat may not make (the persona
     │                        is active on another seat, or not one this seat may show)
     ├── ImageError           building or finding a guest image
     ├── PersonaError         a QEMU guest
     │    ├── LaunchError     QEMU did not start (exit code, command line, stderr)
     │    ├── StateError      a command against a persona in the wrong run state
     │    ├── MigrationError  a guest's machine state could not be saved to or loaded from a file
     │    └── AgentError      the guest agent did not answer, broke the protocol or failed
     │                        (defined in mux.guest.agent, with the agent)
     ├── RfbError             a guest's VNC link: refused, broke the protocol, closed, too slow
     ├── DeviceError          a device move that was not made (the device stays where it was)
     │    └── DeviceTimeout   the old guest did not release the device (no DEVICE_DELETED) in time
     ├── ControlError         the control socket (no controller, bad request)
     ├── DisplayError         the display: an output that cannot open, a frame that cannot be read
     │    └── WireError       a seat window process's message is malformed or too large
     │                        (defined in mux.display.window_pipe, with the wire)
     ├── SnapshotError        a snapshot that could not be saved or restored
     ├── SwitchIncomplete     a switch was made, but a part of applying it failed (names the part)
     ├── ClipboardRefused     an explicit copy or paste was not made (the message is the banner's)
     └── StepFailed           a scenario step's assertion did not hold
          └── ScreenMismatch  a screen assertion; carries the screen and the best needle match
                              (defined in mux.scenario.screen_steps, next to those types)

Errors from lower layers (``qemu.qmp``, ``OSError``, Pillow) are translated at the seam
that calls them and chained with ``raise ... from exc``. ``asyncio.CancelledError`` is
never wrapped. A ``KeyError`` or ``ValueError`` that escapes a public method is a bug in
mux, never a user's mistake: callers catch :class:`MuxError`, not those.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


class MuxError(Exception):
    """Root of every error mux raises on purpose."""


@dataclass(frozen=True)
class Location:
    """Where in a user's file something is: 1-based line and column (0 = unknown)."""

    file: Path | str
    line: int = 0
    column: int = 0

    def file_dir(self) -> Path:
        """The directory of the file, for paths written relative to it."""
        return Path(self.file).parent

    def __str__(self) -> str:
        text = str(self.file)
        if self.line:
            text += f":{self.line}"
            if self.column:
                text += f":{self.column}"
        return text


class ConfigError(MuxError):
    """One or more mistakes in a user's file; each names its location."""

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{loc}: {msg}" for loc, msg in problems))

    @classmethod
    def one(cls, location: Location, message: str) -> ConfigError:
        return cls([(location, message)])


class ScenarioError(ConfigError):
    """A mistake in a scenario file."""


class InputError(MuxError):
    """A key name, chord, hotkey table or text that the input side cannot read or type,
    or a router set up with no personas or with reserved names."""


class UnknownKeyError(InputError):
    """A key name that is not a Linux key name; the message suggests close matches."""

    def __init__(self, name: str, suggestions: Sequence[str] = (), chord: str | None = None) -> None:
        self.name = name
        self.chord = chord
        self.suggestions = list(suggestions)
        where = f" in chord {chord!r}" if chord is not None else ""
        hint = (
            f"; did you mean {' or '.join(map(repr, self.suggestions))}?" if self.suggestions
            else " (use Linux names without KEY_, e.g. 'leftshift')"
        )
        super().__init__(f"unknown key name {name!r}{where}{hint}")


class UnknownPersona(MuxError):
    """A request names a persona that is not configured (or a switch target that is none)."""

    def __init__(self, name: str, personas: Iterable[str], *, what: str = "persona") -> None:
        self.name = name
        self.personas = tuple(personas)
        super().__init__(f"unknown {what} {name!r} (personas: {', '.join(self.personas)})")


class SeatError(MuxError):
    """Seats set up wrongly (an empty or duplicate seat name, a seat that may show no or an
    unknown persona, a persona active on two seats), or a switch a seat refuses: the persona
    is active on another seat (and ``[mux] steal`` is false), or the seat may not show it."""


class ImageError(MuxError):
    """A guest image could not be built or found."""


class PersonaError(MuxError):
    """Something went wrong with a persona's QEMU guest."""


class LaunchError(PersonaError):
    """QEMU did not start; carries its exit code, command line and stderr."""

    def __init__(self, persona: str, returncode: int | None, argv: list[str], stderr: str) -> None:
        self.persona = persona
        self.returncode = returncode
        self.argv = argv
        self.stderr = stderr
        super().__init__(
            f"persona {persona!r}: QEMU failed to start (exit code {returncode})\n"
            f"  command: {' '.join(argv)}\n"
            f"  stderr: {stderr.strip() or '(empty)'}"
        )


class StateError(PersonaError):
    """A command needs the persona in another run state."""

    def __init__(self, persona: str, state: object, required: object) -> None:
        self.persona = persona
        self.state = state
        self.required = required
        super().__init__(f"persona {persona!r} is {state}, but this needs it {required}")


class RfbError(MuxError):
    """A guest's VNC server refused us, broke the protocol, went away or did not answer in time."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(f"VNC {path}: {message}")


class MigrationError(PersonaError):
    """A machine state could not be written to, or read from, its file."""


class DeviceError(MuxError):
    """A device could not be attached, detached or moved; the message says where it is now."""


class DeviceTimeout(DeviceError):
    """The guest did not release a device (QMP ``device_del`` never completed) in time."""


class ControlError(MuxError):
    """The control socket could not be reached or refused a request."""


class DisplayError(MuxError):
    """The display output could not be opened (no SDL video driver, no display), or a
    guest's frame could not be read."""


class SnapshotError(MuxError):
    """A snapshot could not be saved or restored."""


class StepFailed(MuxError):
    """A scenario step's check did not hold."""


# --- switching (mux.app.switcher); added by the control-API work -------------------------


class SwitchIncomplete(MuxError):
    """A switch was made (the new persona is active everywhere), but a part of applying
    it (the input routing, the display and LEDs) failed; the message names each part."""

    def __init__(self, persona: str, failures: Sequence[tuple[str, str]]) -> None:
        self.persona = persona
        self.failures = list(failures)
        parts = "; ".join(f"{part}: {message}" for part, message in self.failures)
        super().__init__(f"switched to {persona!r}, but part of the switch failed ({parts})")


# --- the clipboard (mux.app.clipboard) ------------------------------------------------------


class ClipboardRefused(MuxError):
    """An explicit copy or paste was not made; nothing moved. The message is what the
    banner shows (``refused: home → work``); it names personas and sizes, never the text."""

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"refused: {reason}")
