"""Text on the screen, read by tesseract (Debian's ``tesseract-ocr-eng`` data) through
``tesserocr``, which keeps the engine loaded between reads.

Measured on a 1024x768 console screen (this repository's ``work-prompt.png``, 2-core
machine): ``tesserocr`` 112 ms a read, ``pytesseract`` (a tesseract process per read)
623 ms; both install without a compiler (``tesserocr`` has manylinux wheels for
CPython 3.11 and 3.13 with its own libtesseract; it needs only the language data).

:class:`TextReader` reads a picture in horizontal bands cut where a whole pixel row is
one colour (between text lines), and remembers each band's text by its pixels: while a
step waits for text, only the bands that changed are read again. Each band is made
black on white first (Otsu's threshold, inverted when the text is light), so tesseract
need not try inverted text itself: a dense 1024x768 console screen reads in about
0.8 s instead of 1.2 s.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
from collections import OrderedDict
from typing import Any

import cv2
import numpy as np
from PIL import Image

from mux.needles.model import RGB

BAND_ROWS = 96  # bands grow to about this many pixel rows before a cut
CACHE_BANDS = 512


class OcrUnavailable(Exception):
    """tesserocr or tesseract's English data is not installed."""


def tessdata_dir() -> str:
    """Where tesseract's ``eng.traineddata`` is: ``$TESSDATA_PREFIX``, else Debian's place.

    Raises:
        OcrUnavailable: no ``eng.traineddata`` found.
    """
    debian = sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"))
    candidates = [os.environ.get("TESSDATA_PREFIX", ""), *debian, "/usr/share/tessdata"]
    for directory in candidates:
        if directory and os.path.isfile(os.path.join(directory, "eng.traineddata")):
            return directory
    raise OcrUnavailable("no tesseract English data (eng.traineddata): install Debian's tesseract-ocr-eng"
                         " or set TESSDATA_PREFIX")


class Engine:
    """One loaded tesseract engine; reads are serialised (the engine is not thread-safe)."""

    def __init__(self) -> None:
        self._api: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        try:
            import tesserocr
        except ImportError as exc:
            raise OcrUnavailable(f"tesserocr is not installed: {exc}") from exc
        try:
            api = tesserocr.PyTessBaseAPI(path=tessdata_dir(), lang="eng")
        except RuntimeError as exc:
            raise OcrUnavailable(f"tesseract would not start: {exc}") from exc
        api.SetVariable("tessedit_do_invert", "0")  # bands come black on white
        return api

    def read(self, picture: Image.Image) -> str:
        """The text in ``picture``.

        Raises:
            OcrUnavailable: tesserocr or the language data is missing.
        """
        with self._lock:
            if self._api is None:
                self._api = self._load()
            self._api.SetImage(picture)
            return str(self._api.GetUTF8Text())


_ENGINE = Engine()


def bands(grey: np.ndarray[Any, Any], rows: int = BAND_ROWS) -> list[tuple[int, int]]:
    """(top, bottom) row ranges covering the picture, cut at rows of one colour once a band
    is ``rows`` high (a band never splits a text line that has blank rows around it)."""
    height = grey.shape[0]
    if height == 0:
        return []
    blank = (grey == grey[:, :1]).all(axis=1)
    cuts, top = [], 0
    for row in range(height):
        if blank[row] and row - top >= rows:
            cuts.append((top, row))
            top = row
    cuts.append((top, height))
    return cuts


def black_on_white(grey: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Two levels by Otsu's threshold, the text black (the more common level is paper)."""
    _, two = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return two if two.mean() >= 128 else 255 - two


class TextReader:
    """Reads screens band by band, remembering what each band's pixels said."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or _ENGINE
        self._known: OrderedDict[bytes, str] = OrderedDict()
        self.reads = 0  # bands actually read by tesseract (not remembered)

    def text(self, picture: Image.Image | RGB, area: tuple[int, int, int, int] | None = None) -> str:
        """The text in ``picture`` (or in its ``area`` x, y, width, height), one line a line.

        Raises:
            OcrUnavailable: tesserocr or the language data is missing.
        """
        rgb = np.asarray(picture.convert("RGB")) if isinstance(picture, Image.Image) else picture
        if area is not None:
            x, y, width, height = area
            rgb = rgb[max(y, 0):y + height, max(x, 0):x + width]
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.size \
            else np.zeros((0, 0), np.uint8)
        lines: list[str] = []
        for top, bottom in bands(grey):
            band = np.ascontiguousarray(grey[top:bottom])
            key = hashlib.blake2b(band.tobytes(), digest_size=16).digest() + bytes(str(band.shape), "ascii")
            if key in self._known:
                self._known.move_to_end(key)
                said = self._known[key]
            elif not band.size or (band == band[:1, :1]).all():
                said = ""
            else:
                said = self.engine.read(Image.fromarray(black_on_white(band), "L"))
                self.reads += 1
                self._known[key] = said
                if len(self._known) > CACHE_BANDS:
                    self._known.popitem(last=False)
            lines += [line.rstrip() for line in said.splitlines() if line.strip()]
        return "\n".join(lines)
