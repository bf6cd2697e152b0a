"""The needle editor: its pure model driven with lists (mouse, keys, JSON through the
loader), its window under SDL's dummy driver with the mouse alone, and the whole story
on Xvfb: a real ``mux run``, the editor on its persona driven by ``xdotool``, the saved
needle passing a real ``mux replay``.

The last test also takes the README's picture of the editor: with
``MUX_DOCS_SCREENSHOTS=1`` it writes ``docs/images/needle-editor.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mux.errors import ConfigError
from mux.frontends.needle_editor import bindings
from mux.frontends.needle_editor.app import open_needle, save_needle
from mux.frontends.needle_editor.area import EditArea, Viewport
from mux.frontends.needle_editor.bindings import Effect
from mux.frontends.needle_editor.live import grab_screen, match_areas
from mux.frontends.needle_editor.model import EditorModel
from mux.needles.loader import load_needle
from mux.needles.match import match_needle

REPO = Path(__file__).resolve().parent.parent.parent
PROMPT = REPO / "scenarios" / "needles" / "work-prompt"
MUX = [sys.executable, "-m", "mux"]
SIZE = (1024, 768)


def keys(model: EditorModel, *presses: str) -> list[Effect | None]:
    """Press keys as ``name`` or ``ctrl+shift+name``; a one-character name types itself."""
    effects = []
    for press in presses:
        *mods, name = press.split("+") if press != "+" else ["+"]
        effects.append(bindings.key(model, name, frozenset(mods), name if len(name) == 1 else ""))
    return effects


def drag(model: EditorModel, *points: tuple[int, int]) -> None:
    model.press(points[0])
    for point in points[1:]:
        model.motion(point)
    model.release(points[-1])


# --- the pure model ---------------------------------------------------------------------


@pytest.mark.pure
def test_dragging_draws_areas_in_picture_pixels_and_clicks_select() -> None:
    model = EditorModel(SIZE, tags=["prompt"])
    drag(model, (0, 76), (40, 80), (88, 96))
    drag(model, (112, 96), (88, 76))  # drawn backwards: the same kind of box
    assert model.areas == [EditArea(0, 76, 88, 20), EditArea(88, 76, 24, 20)]
    assert model.selected == 1 and model.dirty
    drag(model, (10, 10), (11, 11))  # hardly moved: a click on nothing
    assert model.selected is None and len(model.areas) == 2
    drag(model, (5, 80), (5, 80))  # a click on the first
    assert model.selected == 0
    drag(model, (40, 86), (50, 96))  # inside the selected area: moves it
    assert model.areas[0] == EditArea(10, 86, 88, 20)
    drag(model, (97, 105), (107, 115))  # its bottom-right corner: resizes it
    assert model.areas[0] == EditArea(10, 86, 98, 30)
    drag(model, (1020, 760), (1100, 900))  # clamped to the picture
    assert model.areas[2] == EditArea(1020, 760, 4, 8)
    model.undo()
    model.undo()
    assert model.areas[0] == EditArea(10, 86, 88, 20)
    model.redo()
    assert model.areas[0] == EditArea(10, 86, 98, 30)
    stacked = EditorModel(SIZE, [EditArea(0, 0, 500, 500), EditArea(10, 10, 20, 20)])
    drag(stacked, (15, 15), (15, 15))
    drag(stacked, (15, 15), (15, 15))  # clicked again: the next area under the pointer
    assert stacked.selected == 0
    drag(stacked, (15, 15), (15, 15))
    assert stacked.selected == 1
    drag(stacked, (200, 200), (260, 240))  # outside the selection, inside another area: draws
    assert stacked.areas[-1] == EditArea(200, 200, 60, 40)


@pytest.mark.pure
def test_the_viewport_maps_window_pixels_to_picture_edges() -> None:
    assert Viewport().to_picture((88, 96), SIZE) == (88, 96)
    assert Viewport().to_picture((2000, -5), SIZE) == (1024, 0)
    half = Viewport(10, 20, 0.5)
    assert half.to_picture((54, 58), SIZE) == (88, 76)
    assert half.to_window((88, 76)) == (54, 58)


@pytest.mark.pure
def test_the_keyboard_alone_makes_and_tunes_areas() -> None:
    model = EditorModel(SIZE, tags=["prompt"])
    assert keys(model, "n") == [None]
    assert model.areas == [EditArea(462, 364, 100, 40)]
    keys(model, "right", "right", "ctrl+down", "shift+left", "ctrl+shift+up")
    assert model.areas[0] == EditArea(464, 374, 99, 30)
    keys(model, "9", "0", "return")
    assert model.areas[0].match == 90
    keys(model, "1", "5", "0", "return")  # not a percentage: refused, said so
    assert model.areas[0].match == 90 and "percentage" in model.message
    keys(model, "-", "-", "=")
    assert model.areas[0].match == 89
    keys(model, "g", "backspace", "backspace", "2", "0", "return", "]")
    assert model.areas[0].margin == 30
    keys(model, "c", "alt+right", "alt+ctrl+down")
    assert model.areas[0].click == (50.5, 25.0)
    keys(model, "return", "e", "tab", "shift+tab")
    assert [a.type for a in model.areas] == ["match", "exclude"] and model.selected == 1
    keys(model, "o", "y", "y")
    assert model.areas[1].type == "exclude"
    keys(model, "t", "x", "space", "return")
    assert model.tags == ["promptx"]  # "space" types nothing here: the view gives its text
    keys(model, "t", *" login", "return")
    assert model.tags == ["promptx", "login"]
    keys(model, "t", "escape", "m")
    assert model.tags == ["promptx", "login"] and model.areas[1].type == "match"
    keys(model, "delete")
    assert len(model.areas) == 1 and model.selected == 0
    keys(model, "ctrl+z")
    assert len(model.areas) == 2
    keys(model, "ctrl+shift+z", "ctrl+y")
    assert len(model.areas) == 1
    assert keys(model, "ctrl+s", "r", "v", "f12", "escape", "q") == [
        Effect.SAVE, Effect.RETAKE, Effect.VIEW, Effect.SCREENSHOT, Effect.QUIT, Effect.QUIT]
    keys(model, "f1")
    assert model.show_help


@pytest.mark.pure
def test_every_button_and_help_line_names_a_real_command() -> None:
    for _, command in bindings.BUTTONS:
        assert command == "" or command in bindings.COMMANDS
    for command in [*bindings.KEYS.values(), *bindings.CTRL_KEYS.values()]:
        assert command in bindings.COMMANDS
    help_text = " ".join(bindings.HELP_LINES + bindings.HELP)
    for words in ("Tab", "Enter", "arrows", "Ctrl+S", "Esc", "Ctrl+Z", "click point", "margin", "tags"):
        assert words in help_text
    assert bindings.label(EditorModel(SIZE, [EditArea(0, 0, 5, 5, match=90)]), "match {match}") == "match 90"


@pytest.mark.pure
def test_json_round_trip_through_the_loader(tmp_path: Path) -> None:
    model = EditorModel(SIZE, tags=["work-prompt", "console"], properties=["workaround"])
    model.areas = [EditArea(0, 76, 88, 20, "match", 90, 30, (12, 10)), EditArea(88, 76, 24, 20, "exclude"),
                   EditArea(0, 0, 300, 40, "ocr", 96, 50)]
    picture = Image.open(PROMPT.with_suffix(".png")).convert("RGB")
    json_path = tmp_path / "needles" / "edited.json"
    message = save_needle(model, picture, json_path, json_path.with_suffix(".png"))
    assert message == "saved edited.json and edited.png" and not model.dirty
    data = json.loads(json_path.read_text())
    assert data == {"tags": ["work-prompt", "console"], "properties": ["workaround"], "area": [
        {"xpos": 0, "ypos": 76, "width": 88, "height": 20, "type": "match", "match": 90, "margin": 30,
         "click_point": {"xpos": 12, "ypos": 10}},
        {"xpos": 88, "ypos": 76, "width": 24, "height": 20, "type": "exclude", "match": 96},
        {"xpos": 0, "ypos": 0, "width": 300, "height": 40, "type": "ocr", "match": 96}]}
    needle = load_needle(json_path)
    assert needle.workaround and needle.areas[0].click_point is not None
    assert match_needle(picture, needle).ok
    again = EditorModel.from_needle(needle)
    assert again.areas == model.areas and again.to_json() == model.to_json()
    shipped, _ = open_needle(PROMPT.with_suffix(".json"), PROMPT.with_suffix(".png"), tmp_path, None)
    assert shipped.to_json()["area"][0] == {"xpos": 0, "ypos": 76, "width": 88, "height": 20,
                                           "type": "match", "match": 96}


@pytest.mark.pure
def test_saving_refuses_a_needle_the_loader_would_skip_and_a_new_one_needs_a_picture(tmp_path: Path) -> None:
    json_path = tmp_path / "new.json"
    model = EditorModel(SIZE, [EditArea(0, 0, 10, 10, "exclude")])
    assert save_needle(model, Image.new("RGB", SIZE), json_path, tmp_path / "new.png").startswith(
        "not saved: a needle needs a match area")
    assert not json_path.exists()
    with pytest.raises(ConfigError, match="give --persona"):
        open_needle(json_path, tmp_path / "new.png", tmp_path / "none.sock", None)
    Image.new("RGB", (640, 480)).save(tmp_path / "new.png")
    model, picture = open_needle(json_path, tmp_path / "new.png", tmp_path / "none.sock", None)
    assert model.tags == ["new"] and model.size == picture.size == (640, 480) and not model.areas


@pytest.mark.pure
def test_the_live_match_finds_each_area_where_it_moved() -> None:
    needle = Image.open(PROMPT.with_suffix(".png")).convert("RGB")
    moved = Image.new("RGB", needle.size, needle.getpixel((500, 500)))
    moved.paste(needle.crop((0, 0, 1000, 700)), (7, 5))
    prompt, cursor = EditArea(0, 76, 88, 20, match=90), EditArea(600, 600, 50, 50, "exclude")
    found = match_areas(needle, moved, (prompt, cursor))
    assert list(found) == [prompt]
    assert (found[prompt].x, found[prompt].y) == (7, 81) and found[prompt].ok
    assert found[prompt].similarity > 0.99


# --- the window, with the mouse alone (SDL's dummy driver) ------------------------------


@pytest.mark.pure
def test_the_mouse_alone_draws_tunes_and_saves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from mux.frontends.needle_editor.view import EditorWindow, pygame

    shutil.copy(PROMPT.with_suffix(".png"), tmp_path / "mouse.png")
    json_path = tmp_path / "mouse.json"
    model, picture = open_needle(json_path, tmp_path / "mouse.png", tmp_path / "none.sock", None)
    window = EditorWindow(model, picture, "mouse",
                          lambda shown: save_needle(model, shown, json_path, tmp_path / "mouse.png"),
                          screenshot=tmp_path / "window.png")
    window.open()
    try:
        assert pygame.display.get_caption()[0] == "mux needle edit: mouse"
        # the dummy driver's "screen" is 1024x768: the picture is scaled down to leave room
        # for the toolbar, and the mouse is mapped back to picture pixels
        scale = window.viewport.scale
        assert 0.7 < scale < 1
        size = pygame.display.get_surface().get_size()
        assert size == (round(1024 * scale), round(768 * scale) + window.panel_height)

        def at(point: tuple[int, int]) -> tuple[int, int]:
            return window.viewport.to_window(point)

        def post(kind: int, **attributes: Any) -> None:
            pygame.event.post(pygame.event.Event(kind, **attributes))

        def click(pos: tuple[int, int], button: int = 1) -> None:
            post(pygame.MOUSEBUTTONDOWN, pos=pos, button=button)
            post(pygame.MOUSEBUTTONUP, pos=pos, button=button)

        def press(command: str, times: int = 1) -> None:
            rect = next(r for r, _, c in window.buttons if c == command)
            for _ in range(times):
                click(rect.center)

        post(pygame.MOUSEBUTTONDOWN, pos=at((0, 76)), button=1)
        post(pygame.MOUSEMOTION, pos=at((50, 90)), rel=(50, 14), buttons=(1, 0, 0))
        post(pygame.MOUSEBUTTONUP, pos=at((88, 96)), button=1)
        press("match-", 6)
        press("margin+")
        click(at((20, 80)), 3)  # the right button: the click point
        press("new")
        press("type")
        press("save")
        post(pygame.KEYDOWN, key=pygame.K_F12, mod=0, unicode="", scancode=69)
        press("quit")
        window.run()  # handles the queued events, returns at Quit
    finally:
        window.close()
    data = json.loads(json_path.read_text())
    drawn = data["area"][0]
    click = drawn.pop("click_point")
    assert abs(click["xpos"] - 20) <= 1 and abs(click["ypos"] - 4) <= 1
    # a window pixel is 1/scale picture pixels: edges land within one
    assert all(abs(drawn.pop(key) - value) <= 1 for key, value in
               {"xpos": 0, "ypos": 76, "width": 88, "height": 20}.items())
    assert drawn == {"type": "match", "match": 90, "margin": 60}
    assert data["area"][1] == {"xpos": 462, "ypos": 364, "width": 100, "height": 40, "type": "exclude",
                               "match": 96}
    assert data["tags"] == ["mouse"] and not model.dirty
    assert Image.open(tmp_path / "window.png").size == size  # F12
    assert load_needle(json_path).areas[1].type == "exclude"


# --- the whole story on Xvfb --------------------------------------------------------------


def xdotool(*args: str, check: bool = True) -> str:
    if shutil.which("xdotool") is None:
        pytest.fail("xdotool is missing: run ./bootstrap test (it installs Debian's xdotool)")
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=30, check=check).stdout


def xdotool_ok(*args: str) -> bool:
    return subprocess.run(["xdotool", *args], capture_output=True, timeout=30).returncode == 0


def focus_root(display_name: str) -> None:
    """The keyboard focus to the root window, the pointer to the screen's corner."""
    from Xlib import X
    from Xlib.display import Display

    display = Display(display_name)
    try:
        root = display.screen().root
        root.warp_pointer(0, 0)
        display.set_input_focus(root, X.RevertToParent, X.CurrentTime)
        display.sync()
    finally:
        display.close()


def wait_for(what: str, timeout: float, check: Any) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
    return result


def prompt_shown(sock: Path) -> bool:
    try:
        return match_needle(grab_screen(sock, "work"), load_needle(PROMPT.with_suffix(".json"))).ok
    except Exception:
        return False


@pytest.mark.guests
def test_draw_a_needle_on_a_live_persona_with_xdotool_and_replay_it(tmp_path: Path, console_image: Any,
                                                                    x_display: str) -> None:
    from tests.display.test_window import x_screenshot

    sock = tmp_path / "control.sock"
    config = tmp_path / "work.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nkeep_guests = "never"\ncontrol_socket = "{sock}"\n'
                      '[[persona]]\nname = "work"\nimage = "console"\n')
    run = subprocess.Popen([*MUX, "run", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    needle = tmp_path / "needles" / "edited-prompt.json"
    try:
        wait_for("the persona's prompt", 240, lambda: run.poll() is None and prompt_shown(sock))
        editor = subprocess.Popen([*MUX, "needle", "edit", str(needle), "--persona", "work", "--socket",
                                   str(sock)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            window = wait_for("the editor's window on the screen", 60, lambda: xdotool(
                "search", "--onlyvisible", "--pid", str(editor.pid), check=False).split()[:1])[0]
            assert "edited-prompt" in xdotool("getwindowname", window)  # the title names the needle

            def mouse_drag(start: tuple[int, int], end: tuple[int, int]) -> None:
                mid = ((start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
                xdotool("mousemove", "--window", window, *map(str, start), "mousedown", "1", "sleep", "0.1",
                        "mousemove", "--window", window, *map(str, mid), "sleep", "0.1",
                        "mousemove", "--window", window, *map(str, end), "sleep", "0.1", "mouseup", "1")
                time.sleep(0.3)

            # SDL focuses its window when it maps it (no window manager here). A busy editor
            # (here: stopped) then reads the focus and the first drag at once, and SDL drops
            # a click read within 10 ms of the focus unless told otherwise: the first drag
            # would be lost (as seen on a loaded machine).
            os.kill(editor.pid, signal.SIGSTOP)
            try:
                focus_root(x_display)
                wait_for("the editor's window to take the focus", 20,
                         lambda: xdotool_ok("windowfocus", "--sync", window))
                mouse_drag((0, 76), (88, 96))  # the prompt "work:/root#": the window is 1:1
            finally:
                os.kill(editor.pid, signal.SIGCONT)
            mouse_drag((88, 76), (112, 96))  # the cursor, which blinks...
            xdotool("key", "--delay", "100", "e", "Tab", "9", "0", "Return", "ctrl+s")  # ...excluded
            try:
                wait_for("the saved needle", 20,
                         lambda: needle.exists() and needle.with_suffix(".png").exists())
            except AssertionError:  # the status line says why (the editor's own screenshot: F12)
                x_screenshot(x_display).save(tmp_path / "unsaved.png")
                raise AssertionError(f"the needle was not saved: see {tmp_path / 'unsaved.png'}") from None
            time.sleep(2.5)  # a live match or two
            shell = xdotool("getwindowgeometry", "--shell", window)
            geometry = dict(line.split("=") for line in shell.split())
            x, y, width, height = (int(geometry[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
            shot = x_screenshot(x_display).crop((x, y, x + width, y + height))
            assert shot.getpixel((40, 76))[:3] == (40, 220, 40)  # the selected match area's edge, 1:1
            docs = REPO / "docs" / "images" / "needle-editor.png"
            if os.environ.get("MUX_DOCS_SCREENSHOTS"):
                docs.parent.mkdir(parents=True, exist_ok=True)
                shot.crop((0, 0, width, height)).save(docs, optimize=True)
            shot.save(tmp_path / "needle-editor.png")
            xdotool("key", "Escape")
            out, err = editor.communicate(timeout=30)
        finally:
            editor.kill()
        assert editor.returncode == 0, err
        assert "wrote" in out and "unsaved" not in out, out
        data = json.loads(needle.read_text())
        assert data["tags"] == ["edited-prompt"]
        boxes = [(a["xpos"], a["ypos"], a["width"], a["height"], a["type"]) for a in data["area"]]
        expected = [(0, 76, 88, 20, "match"), (88, 76, 24, 20, "exclude")]
        assert [b[4] for b in boxes] == [e[4] for e in expected]
        assert all(abs(b[i] - e[i]) <= 1 for b, e in zip(boxes, expected, strict=True) for i in range(4)), \
            boxes
        assert data["area"][0]["match"] == 90
    finally:
        run.send_signal(signal.SIGTERM)
        try:
            run.communicate(timeout=60)
        finally:
            run.kill()
    scenario = tmp_path / "edited.yaml"
    scenario.write_text("name: the edited needle matches\nconfig:\n  mux: {accel: tcg}\n"
                        "  persona: [{name: work, image: console}]\nsteps:\n"
                        "  - wait_serial: {persona: work, match: MUX-READY, timeout: 180}\n"
                        "  - assert_screen: {persona: work, needle: edited-prompt, timeout: 60}\n")
    replay = subprocess.run([*MUX, "replay", str(scenario), "--artifacts", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    steps = json.loads((tmp_path / "out" / "results.json").read_text())["scenarios"][0]["steps"]
    assert "needle edited-prompt matched" in steps[1]["message"]
