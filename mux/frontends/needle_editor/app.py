"""``mux needle edit NAME.json``: open the needle (or start one), edit it, save it.

Theory. A needle is ``NAME.json`` beside ``NAME.png``. An existing one is read with
:func:`mux.needles.loader.load_needle` (so the editor refuses what a replay would); a
new one starts with no areas and its file name as its tag, its picture taken from the
persona's screen (``--persona``, through the control socket) or an existing
``NAME.png``. Saving writes openQA's JSON (what ``mux needle capture`` writes) and the
picture when it is new or retaken, each through a temporary file renamed into place,
then loads the result back to report any problem the loader finds. Quitting never
asks: unsaved changes are only reported on stdout.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from mux.errors import ConfigError, Location
from mux.frontends.needle_editor.live import LiveMatcher, grab_screen
from mux.frontends.needle_editor.model import EditorModel
from mux.needles.loader import load_needle


def needle_paths(target: Path) -> tuple[Path, Path]:
    """(NAME.json, NAME.png) for ``NAME``, ``NAME.json`` or ``NAME.png``."""
    stem = target.with_suffix("") if target.suffix in (".json", ".png") else target
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".png")


def open_needle(json_path: Path, png_path: Path, socket: Path,
                persona: str | None) -> tuple[EditorModel, Image.Image]:
    """The editor's model and picture for a needle file, or a new needle.

    Raises:
        ConfigError: the needle exists and does not load, or it does not exist and there
            is neither a persona to capture nor a picture beside it.
        ControlError: the persona's screen could not be had.
    """
    if json_path.exists():
        needle = load_needle(json_path)
        with Image.open(png_path) as image:
            return EditorModel.from_needle(needle), image.convert("RGB")
    if persona is not None:
        picture = grab_screen(socket, persona)
        model = EditorModel(picture.size, tags=[json_path.stem])
        model.picture_changed = True
        model.message = f"new needle from {persona}'s screen: drag to draw its match area"
        return model, picture
    if png_path.is_file():
        with Image.open(png_path) as image:
            model = EditorModel(image.size, tags=[json_path.stem])
            model.message = f"new needle on {png_path.name}: drag to draw its match area"
            return model, image.convert("RGB")
    raise ConfigError.one(Location(json_path), "no such needle (and no picture beside it): give --persona P"
                          " to start one from a running mux's persona")


def save_needle(model: EditorModel, picture: Image.Image, json_path: Path, png_path: Path) -> str:
    """Write the needle (the picture only when new or retaken); what to tell the user."""
    problems = model.problems()
    if problems:
        return "not saved: " + "; ".join(problems)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    picture_too = model.picture_changed or not png_path.is_file()
    try:
        if picture_too:
            _replace(png_path, lambda f: picture.save(f, "PNG"))
        text = json.dumps(model.to_json(), indent=3) + "\n"
        _replace(json_path, lambda f: f.write(text.encode()))
    except OSError as exc:
        return f"not saved: {exc}"
    model.mark_saved()
    print(f"mux needle edit: wrote {json_path} ({len(model.areas)} areas)", flush=True)
    try:
        load_needle(json_path)
    except ConfigError as exc:
        return f"saved, but mux would skip it: {exc}"
    return f"saved {json_path.name}" + (f" and {png_path.name}" if picture_too else "")


def _replace(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file beside it, renamed into place."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def edit(target: Path, persona: str | None, socket: Path, screenshot: Path | None = None) -> int:
    """Run the editor until it is quit; 0.

    Raises:
        ConfigError, ControlError: see :func:`open_needle`.
        DisplayError: no window can be opened.
    """
    from mux.frontends.needle_editor.view import EditorWindow

    json_path, png_path = needle_paths(target)
    model, picture = open_needle(json_path, png_path, socket, persona)
    live = LiveMatcher(socket, persona) if persona is not None else None
    window = EditorWindow(model, picture, json_path.stem,
                          lambda shown: save_needle(model, shown, json_path, png_path), live, screenshot)
    window.open()
    try:
        window.run()
    finally:
        window.close()
    if model.dirty:
        print(f"mux needle edit: {json_path} has unsaved changes; quit without writing them", flush=True)
    return 0
