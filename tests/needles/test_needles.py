"""openQA needles: loaded unchanged from their JSON + PNG, matched as os-autoinst does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mux.errors import ConfigError
from mux.needles.needles import NeedleLibrary, best_match, load_needle, match_needle
from mux.scenario.screens import difference_picture, psnr, similar

SCENARIOS = Path(__file__).parent.parent.parent / "scenarios"

# A needle as openQA's needle editor writes it (JSON::PP, 3-space indent): tags,
# properties, an exclude area, a match area with a non-default match, an ocr area.
OPENQA_NEEDLE = """\
{
   "area" : [
      {
         "height" : 120,
         "type" : "match",
         "width" : 300,
         "xpos" : 100,
         "ypos" : 100,
         "match" : 90
      },
      {
         "height" : 40,
         "type" : "exclude",
         "width" : 100,
         "xpos" : 150,
         "ypos" : 140
      },
      {
         "height" : 30,
         "type" : "ocr",
         "width" : 200,
         "xpos" : 600,
         "ypos" : 600
      }
   ],
   "properties" : [
      "workaround"
   ],
   "tags" : [
      "desktop",
      "ENV-VIDEOMODE-text"
   ]
}
"""


def screen() -> Image.Image:
    """A 1024x768 'desktop': a dark background, a window with a title and text lines."""
    image = Image.new("RGB", (1024, 768), (30, 60, 90))
    draw = ImageDraw.Draw(image)
    draw.rectangle((100, 100, 399, 219), fill=(220, 220, 220))
    draw.rectangle((100, 100, 399, 120), fill=(40, 80, 200))
    draw.text((108, 104), "Terminal - root@work", fill=(255, 255, 255))
    for row in range(5):
        draw.text((108, 128 + row * 16), f"line {row}: the quick brown fox", fill=(0, 0, 0))
    return image


@pytest.fixture
def openqa_needle(tmp_path: Path) -> Path:
    (tmp_path / "desktop-20240101.json").write_text(OPENQA_NEEDLE)
    screen().save(tmp_path / "desktop-20240101.png")
    return tmp_path / "desktop-20240101.json"


@pytest.mark.pure
def test_real_openqa_needle_loads_with_its_defaults(openqa_needle: Path) -> None:
    library = NeedleLibrary()
    needle = library.file(openqa_needle)
    assert needle is not None and not library.problems
    assert needle.tags == ("desktop", "ENV-VIDEOMODE-text")
    match, exclude, ocr = needle.areas
    assert (match.type, match.match, match.margin) == ("match", 90.0, 50)
    assert (exclude.type, exclude.match, exclude.margin) == ("exclude", 96.0, 50)
    assert ocr.type == "ocr" and needle.ocr_areas == [ocr]
    # ocr areas load as openQA's do (they take no part in matching): no warning
    assert not library.warnings
    assert needle.workaround and needle.has_property("workaround") and not needle.has_property("x")


@pytest.mark.pure
def test_match_as_openqa_exclude_ignored_match_threshold_kept(openqa_needle: Path) -> None:
    needle = load_needle(openqa_needle)
    assert match_needle(screen(), needle).ok
    # a change inside the exclude area (inside the match area, too) does not count
    excluded = screen()
    ImageDraw.Draw(excluded).rectangle((150, 140, 249, 179), fill=(255, 0, 0))
    result = match_needle(excluded, needle)
    assert result.ok and result.areas[0].similarity == 1.0
    # the same change just outside the exclude area, inside the match area, does
    outside = screen()
    ImageDraw.Draw(outside).rectangle((260, 140, 359, 179), fill=(255, 0, 0))
    result = match_needle(outside, needle)
    assert not result.ok and result.areas[0].similarity < 0.9
    # a small change stays within the needle's 90 %
    small = screen()
    ImageDraw.Draw(small).rectangle((300, 190, 303, 192), fill=(255, 0, 0))
    result = match_needle(small, needle)
    assert result.ok and 0.9 <= result.areas[0].similarity < 1.0
    # a change outside every area is not looked at
    elsewhere = screen()
    ImageDraw.Draw(elsewhere).rectangle((500, 300, 900, 700), fill=(255, 255, 0))
    assert match_needle(elsewhere, needle).ok


@pytest.mark.pure
def test_match_area_found_within_its_margin_only(tmp_path: Path) -> None:
    """(An exclude area stays where the needle has it, so this needle has none.)"""
    screen().save(tmp_path / "window.png")
    (tmp_path / "window.json").write_text(json.dumps({"tags": ["window"], "area": [
        {"xpos": 100, "ypos": 100, "width": 300, "height": 120, "type": "match"}]}))
    needle = load_needle(tmp_path / "window.json")
    for (dx, dy), found in (((30, -20), True), ((-45, 40), True), ((70, 0), False)):
        moved = Image.new("RGB", (1024, 768), (30, 60, 90))
        moved.paste(screen(), (dx, dy))
        result = match_needle(moved, needle)
        assert result.ok is found, (dx, dy, result.describe())
        if found:
            assert (result.areas[0].x, result.areas[0].y) == (100 + dx, 100 + dy)


@pytest.mark.pure
def test_a_full_screen_search_finds_the_needle_or_nothing(openqa_needle: Path) -> None:
    """The worst case, searched in vain over the whole screen, ends in no match (how long
    it takes is ``mux bench``'s ``needle_search_ms``, its whole-screen case included)."""
    needle = load_needle(openqa_needle)
    other = Image.new("RGB", (1024, 768), (90, 60, 30))
    assert not match_needle(other, needle).ok
    assert match_needle(screen(), needle).ok


@pytest.mark.pure
def test_grey_matching_like_openqa_colour_alone_does_not_count(tmp_path: Path) -> None:
    """os-autoinst compares grey pictures: red c03030 and blue 3060c0 have nearly one luma."""
    red, blue = Image.new("RGB", (64, 48), (198, 48, 49)), Image.new("RGB", (64, 48), (49, 97, 198))
    red.save(tmp_path / "red.png")
    (tmp_path / "red.json").write_text(json.dumps(
        {"tags": ["red"], "area": [{"xpos": 0, "ypos": 0, "width": 64, "height": 48, "type": "match"}]}))
    assert match_needle(blue, load_needle(tmp_path / "red.json")).ok
    assert psnr(red, blue) < 20 and not similar(red, blue, 47)


@pytest.mark.pure
def test_needle_mistakes_are_all_reported_with_file_line_column(tmp_path: Path) -> None:
    Image.new("RGB", (100, 100)).save(tmp_path / "small.png")
    (tmp_path / "small.json").write_text(
        '{\n  "tags": ["x"],\n  "area": [\n    {"xpos": 50, "ypos": 0, "width": 80, "height": 10},\n'
        '    {"xpos": 0, "ypos": 0, "width": 10, "height": 10, "match": "lots"}\n  ]\n}\n')
    with pytest.raises(ConfigError) as caught:
        load_needle(tmp_path / "small.json")
    problems = caught.value.problems
    assert [(p.line, p.column) for p, _ in problems] == [(5, 55), (4, 5)]
    assert "match must be a percentage" in problems[0][1] and "outside the 100x100 picture" in problems[1][1]

    area = '{"xpos": 0, "ypos": 0, "width": 1, "height": 1}'
    (tmp_path / "nopng.json").write_text(f'{{"tags": ["y"], "area": [{area}]}}')
    with pytest.raises(ConfigError, match=r"nopng.json:1:1: .*nopng.png is missing"):
        load_needle(tmp_path / "nopng.json")
    (tmp_path / "broken.json").write_text('{"tags": ["z"],\n "area": [}\n')
    with pytest.raises(ConfigError, match=r"broken.json:2:11: needle is not JSON"):
        load_needle(tmp_path / "broken.json")


@pytest.mark.pure
def test_tags_paths_and_lists_resolve_in_the_needles_directory(openqa_needle: Path) -> None:
    library = NeedleLibrary()
    base = openqa_needle.parent.parent
    (base / "needles").mkdir()
    openqa_needle.rename(base / "needles" / openqa_needle.name)
    openqa_needle.with_suffix(".png").rename(base / "needles" / openqa_needle.with_suffix(".png").name)
    refs: list[str | list[str]] = ["desktop", "desktop ENV-VIDEOMODE-text", "desktop-20240101", ["desktop"],
                                   "needles/desktop-20240101.json", "needles/desktop-20240101.png"]
    for ref in refs:
        found, error = library.resolve(ref, base)
        assert [n.name for n in found] == ["desktop-20240101"] and error is None, ref
    found, error = library.resolve("desktop nonsense", base)
    assert not found and error and "no needle tagged 'desktop nonsense'" in error and "desktop" in error
    assert library.resolve("needles/absent.json", base)[1] == f"no needle file {base}/needles/absent.json"


@pytest.mark.pure
def test_best_of_several_needles_and_the_difference_picture() -> None:
    library = NeedleLibrary()
    needles = library.directory(SCENARIOS / "needles")
    work = Image.open(SCENARIOS / "needles" / "work-prompt.png")
    best = best_match(work, [n for n in needles if "console-prompt" in n.tags])
    assert best.ok and best.needle.name == "work-prompt"
    home_needle = next(n for n in needles if n.name == "home-prompt")
    failed = match_needle(work, home_needle)
    assert not failed.ok and "did not match" in failed.describe()
    picture = difference_picture(work, failed)
    assert picture.width > 3 * work.width and picture.height > work.height
    # the differences panel marks the prompt red, and nothing far from it
    panel = picture.crop((2 * (work.width + 10), 24, 3 * work.width + 20, 24 + work.height))
    assert panel.getpixel((20, 86)) == (255, 0, 0)
    assert panel.getpixel((500, 500)) != (255, 0, 0)


def needle_repository(base: Path) -> Path:
    """The shipped needles plus three that openQA handles leniently: a broken JSON, a
    needle without its PNG, and one whose match is the string "90" (it loads)."""
    import shutil

    needles = base / "needles"
    shutil.copytree(SCENARIOS / "needles", needles)
    (needles / "broken.json").write_text('{"tags": ["broken"], "area": [}\n')
    (needles / "no-picture.json").write_text(json.dumps(
        {"tags": ["no-picture"], "area": [{"xpos": 0, "ypos": 0, "width": 8, "height": 8}]}))
    data = json.loads((needles / "work-prompt.json").read_text())
    data["tags"] = ["work-prompt-90"]
    data["area"][0]["match"] = "90"
    (needles / "string-match.json").write_text(json.dumps(data, indent=3))
    shutil.copy(needles / "work-prompt.png", needles / "string-match.png")
    scenario = base / "lint.yaml"
    scenario.write_text(
        "name: lint\nconfig:\n  mux: {accel: tcg}\n  persona: [{name: work, image: console}]\nsteps:\n"
        "  - wait_serial: {persona: work, match: MUX-READY, timeout: 120}\n"
        "  - assert_screen: {persona: work, needle: work-prompt-90, timeout: 20}\n"
        "  - assert_screen: {persona: work, needle: console-prompt, timeout: 20}\n")
    return scenario


@pytest.mark.pure
def test_broken_needles_are_skipped_with_one_warning_each(tmp_path: Path) -> None:
    from mux.scenario.parse import load_scenario

    scenario = load_scenario(needle_repository(tmp_path))
    warnings = sorted(f"{location}: {message}" for location, message in scenario.warnings)
    assert len(warnings) == 3, warnings
    assert "broken.json:1:31: needle broken.json skipped: needle is not JSON" in warnings[0]
    assert "no-picture.json:1:1: needle no-picture.json skipped: no PNG beside it" in warnings[1]
    assert "string-match.json:13:10: needle string-match.json: area match '90' is a string" in warnings[2]
    (needle,) = scenario.steps[1].args["_needles"]
    assert needle.name == "string-match" and needle.areas[0].match == 90.0
    work = Image.open(SCENARIOS / "needles" / "work-prompt.png")
    assert match_needle(work, needle).ok
    # a tag only a skipped needle has is still refused before anything boots
    (tmp_path / "lint.yaml").write_text((tmp_path / "lint.yaml").read_text().replace(
        "needle: console-prompt", "needle: no-picture"))
    with pytest.raises(ConfigError, match=r"no needle tagged 'no-picture'.*skipped needles with it: "
                                          r"no-picture.json"):
        load_scenario(tmp_path / "lint.yaml")


@pytest.mark.services
def test_replay_check_loads_without_booting_and_prints_the_warnings(tmp_path: Path) -> None:
    import subprocess
    import sys

    scenario = needle_repository(tmp_path)
    result = subprocess.run([sys.executable, "-m", "mux", "replay", "--check", str(scenario)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("mux: warning:")]
    assert len(warnings) == 3 and {"broken.json", "no-picture.json", "string-match.json"} == {
        name for line in warnings for name in ("broken.json", "no-picture.json", "string-match.json")
        if name in line}
    assert "1 file(s) checked, 3 warning(s)" in result.stdout
    scenario.write_text(scenario.read_text().replace("needle: console-prompt", "needle: nowhere"))
    result = subprocess.run([sys.executable, "-m", "mux", "replay", "--check", str(scenario)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no needle tagged 'nowhere'" in result.stderr
