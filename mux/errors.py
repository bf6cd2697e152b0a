"""Every error mux raises on purpose derives from :class:`MuxError`.

The tree, and whose fault each one is::

    MuxError
     ├── ConfigError          the user's config or scenario file (file:line: message)
     │    └── ScenarioError   a scenario file specifically
     ├── ImageError           building or finding a guest image
     ├── PersonaError         a QEMU guest
     │    ├── LaunchError     QEMU did not start (exit code, command line, stderr)
     │    └── StateError      a command against a persona in the wrong run state
     ├── DeviceError          a device move that was not made (the device stays where it was)
     │    └── DeviceTimeout   the old guest did not release the device (no DEVICE_DELETED) in time
     ├── ControlError         the control socket (no controller, bad request)
     ├── DisplayError         the display output (SDL could not open a window)
     └── StepFailed           a scenario step's assertion did not hold

Errors from lower layers (``qemu.qmp``, ``OSError``) are translated at the seam that
calls them and chained with ``raise ... from exc``. ``asyncio.CancelledError`` is never
wrapped.
"""

from __future__ import annotations

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


class DeviceError(MuxError):
    """A device could not be attached, detached or moved; the message says where it is now."""


class DeviceTimeout(DeviceError):
    """The guest did not release a device (QMP ``device_del`` never completed) in time."""


class ControlError(MuxError):
    """The control socket could not be reached or refused a request."""


class DisplayError(MuxError):
    """The display output could not be opened (no SDL video driver, no display)."""


class StepFailed(MuxError):
    """A scenario step's check did not hold."""
