"""mux's state directory: what outlives one run (the active persona, per config).

``$XDG_STATE_HOME/mux/`` (default ``~/.local/state/mux/``), mode 0700 since it says
what the user runs. Each remembered value is a small file; :func:`remembered_active`
and :func:`remember_active` keep the active persona per config file, keyed by a hash
of the config's absolute path so two configs never share a value. Reading never fails
(a missing or unreadable file means "nothing remembered"); :func:`remember_switches`
writes on every :class:`~mux.app.events.Switched` and logs a failure to write.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from mux.app.events import Event, Events, Switched, Unsubscribe

log = logging.getLogger(__name__)


def state_dir() -> Path:
    """``$XDG_STATE_HOME/mux`` (or ``~/.local/state/mux``), created with mode 0700.

    Raises:
        OSError: it cannot be created.
    """
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
    path = base / "mux"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _active_file(source: Path | str) -> Path:
    key = str(Path(source).absolute()) if isinstance(source, Path) else f"<{source}>"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return state_dir() / f"active-{digest}"


def remembered_active(source: Path | str) -> str | None:
    """The persona that was active when mux last ran this config (None: not known)."""
    try:
        name = _active_file(source).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name or None


def remember_active(source: Path | str, persona: str) -> None:
    """Remember ``persona`` as the active one of this config (written atomically).

    Raises:
        OSError: the state directory or the file cannot be written.
    """
    path = _active_file(source)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(persona + "\n", encoding="utf-8")
    tmp.replace(path)


def remember_switches(events: Events, source: Path | str, first_seat: str = "default") -> Unsubscribe:
    """Remember every switch's new active persona of the first seat for ``source`` (failures
    are logged)."""

    def on_event(event: Event) -> None:
        if isinstance(event, Switched) and event.new is not None and event.seat == first_seat:
            try:
                remember_active(source, event.new)
            except OSError as exc:
                log.warning("could not remember the active persona: %s", exc)

    return events.subscribe(on_event)
