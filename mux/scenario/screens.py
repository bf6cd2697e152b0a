"""Comparing whole screens, and the picture that shows where a needle did not match.

``wait_screen_change`` and ``wait_still_screen`` compare two frames of one persona as
os-autoinst does: the peak signal-to-noise ratio over RGB in dB (identical frames give
1000000; a blinking text cursor on a 1024x768 console about 47; a new background
colour under 20). A ``similarity`` of 1 or less is read instead as the fraction of
pixels that must be exactly unchanged, which is easier to reason about for a small
change on a large screen.

:func:`difference_picture` is saved beside a failed screen assertion: the needle, the
screen with each match area where it came closest, and the screen dimmed with every
pixel of those places that differs visibly from the needle (16 grey levels or more
after the blur) in red.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from mux.needles.match import NeedleMatch, prep
from mux.needles.model import EXCLUDED, paint_excludes

SQUARES = [i * i for i in range(256)]


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB over RGB, as os-autoinst compares whole screens
    (``wait_screen_change``, ``wait_still_screen``); 1000000 for identical pictures, 0 for
    pictures of different sizes."""
    if a.size != b.size:
        return 0.0
    histogram = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).histogram()
    noise = sum(count * SQUARES[i % 256] for i, count in enumerate(histogram))
    if noise == 0:
        return 1000000.0
    return 10 * math.log10(255 * 255 * 3 * a.width * a.height / noise)


def unchanged_fraction(a: Image.Image, b: Image.Image) -> float:
    """The fraction of pixels that are exactly the same (0 for different sizes)."""
    if a.size != b.size:
        return 0.0
    bands = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).split()
    changed = ImageChops.lighter(ImageChops.lighter(bands[0], bands[1]), bands[2]).point(
        [0] + [255] * 255).histogram()[255]
    return 1 - changed / (a.width * a.height)


def similar(a: Image.Image, b: Image.Image, level: float) -> bool:
    """Whether two screens count as the same: ``level`` > 1 is a PSNR in dB (openQA's
    ``similarity_level``), ``level`` <= 1 the fraction of pixels that must be unchanged."""
    return psnr(a, b) >= level if level > 1 else unchanged_fraction(a, b) >= level


def difference_picture(screen: Image.Image, match: NeedleMatch) -> Image.Image:
    """Three panels: the needle (its match areas blue, exclude areas green), the screen
    (each match area where it came closest, green if it passed, red if not), and the
    screen dimmed with every pixel of those places that differs from the needle (by 16
    grey levels or more after the blur) in red.

    Raises:
        NeedleImageMissing: the needle's picture cannot be read.
    """
    screen = screen.convert("RGB")
    needle = match.needle.image()
    expected = Image.new("RGB", screen.size, (40, 40, 40))
    expected.paste(needle, (0, 0))
    scene = prep(paint_excludes(np.asarray(screen), match.needle.excludes))
    target = prep(match.needle.rgb())
    differs = np.zeros(scene.shape, dtype=np.uint8)
    for result in match.areas:
        a = result.area
        if result.x + a.width > scene.shape[1] or result.y + a.height > scene.shape[0] \
                or a.xpos + a.width > target.shape[1] or a.ypos + a.height > target.shape[0]:
            continue
        here = scene[result.y:result.y + a.height, result.x:result.x + a.width].astype(np.int16)
        wanted = target[a.ypos:a.ypos + a.height, a.xpos:a.xpos + a.width].astype(np.int16)
        far = np.abs(here - wanted) >= 16
        differs[result.y:result.y + a.height, result.x:result.x + a.width][far] = 255
    dimmed = screen.point([v // 3 for v in range(256)] * 3)
    diff = Image.composite(Image.new("RGB", screen.size, (255, 0, 0)), dimmed, Image.fromarray(differs, "L"))
    shown = screen.copy()
    for image in (expected, shown, diff):
        draw = ImageDraw.Draw(image)
        for result in match.areas:
            a = result.area
            found = (result.x, result.y, result.x + a.width, result.y + a.height)
            box = a.box if image is expected else found
            color = (60, 120, 255) if image is expected else (255, 255, 0) if image is diff \
                else (0, 220, 0) if result.ok else (255, 0, 0)
            draw.rectangle(_rect(box), outline=color, width=3)
        if image is expected:
            for area in match.needle.excludes:
                draw.rectangle(_rect(area.box), outline=EXCLUDED, width=2)
    width, height = screen.size
    picture = Image.new("RGB", (width * 3 + 20, height + 24), (0, 0, 0))
    labels = ImageDraw.Draw(picture)
    for index, (image, label) in enumerate(((expected, f"needle {match.needle.name}"),
                                            (shown, "screen (closest places)"), (diff, "differences"))):
        picture.paste(image, (index * (width + 10), 24))
        labels.text((index * (width + 10) + 4, 6), label, fill=(255, 255, 255))
    return picture


def _rect(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return box[0], box[1], box[2] - 1, box[3] - 1
