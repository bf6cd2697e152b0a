"""Whether a screen changed in a way a person would notice (the MQTT screenshot rule).

Theory. A blinking cursor or a clock's seconds change a screen all the time, yet nobody
looking at it would say it changed; a new line of text, a window, a colour would be
noticed. The rule, on two pictures of the same size (a different size is a change):

1. a pixel changed if one of its channels differs by more than :data:`LEVEL` (JPEG
   noise and dithering stay below it);
2. changed pixels less than a few pixels apart are grouped (dilated by
   :data:`GAP_X` x :data:`GAP_Y`, so the letters of a word, or a cursor and the
   character it moved past, are one group);
3. a group whose box fits in :data:`SMALL` (32x32 pixels: a cursor, a character or two,
   a clock's seconds in an 8x16 console font) is ignored;
4. the change is noticeable when the groups left hold at least :data:`MIN_PIXELS`
   changed pixels.

Compared with the last picture *published* (not the last one taken), so small changes
that add up (a word typed a letter at a time) are published once they are big enough.
Pure: no asyncio, no QEMU; OpenCV and numpy, as needle matching.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

LEVEL = 32
GAP_X, GAP_Y = 9, 5
SMALL = (32, 32)
MIN_PIXELS = 64


def changed_pixels(old: Image.Image, new: Image.Image) -> int:
    """How many changed pixels lie in groups bigger than :data:`SMALL` (see the module
    docstring); every pixel of ``new`` when the sizes differ."""
    if old.size != new.size:
        return new.width * new.height
    a = np.asarray(old.convert("RGB"), dtype=np.int16)
    b = np.asarray(new.convert("RGB"), dtype=np.int16)
    changed = (np.abs(a - b).max(axis=2) > LEVEL).astype(np.uint8)
    if not changed.any():
        return 0
    grouped = cv2.dilate(changed, np.ones((GAP_Y, GAP_X), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    big = [i for i in range(1, count)
           if stats[i, cv2.CC_STAT_WIDTH] > SMALL[0] or stats[i, cv2.CC_STAT_HEIGHT] > SMALL[1]]
    if not big:
        return 0
    return int(np.count_nonzero(changed[np.isin(labels, big)]))


def noticeable(old: Image.Image | None, new: Image.Image) -> bool:
    """Whether ``new`` differs from ``old`` in a way a person would notice (None: there
    was no picture before, so yes)."""
    return old is None or changed_pixels(old, new) >= MIN_PIXELS
