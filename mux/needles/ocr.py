"""Text on the screen, read by tesseract (Debian's ``tesseract-ocr-eng`` data) through
``tesserocr``, which keeps the engine loaded between reads.

Measured on a 1024x768 console screen (this repository's ``work-prompt.png``, 2-core
machine): ``tesserocr`` 112 ms a read, ``pytesseract`` (a tesseract process per read)
623 ms; both install without a compiler (``tesserocr`` has manylinux wheels for
CPython 3.11 and 3.13 with its own libtesseract; it needs only the language data).

:class:`TextReader` cuts a picture into text lines at the pixel rows of one colour
between them (:func:`line_bands`) and remembers each line's text by its pixels: while a
step waits for text, or the console scrolls, only lines not seen before are read. Each
line is made black on white on its own (Otsu's threshold, inverted when the text is
light, so an inverted menu bar reads too), the lines to read are put back at their
places on white, and tesseract reads them as one uniform block (page segmentation mode
6: no page layout analysis, a row of text is one line even when its words stand far
apart), in two halves on two threads (``tesserocr`` releases the GIL; each thread has
its own engine). A band taller than :data:`LINE_ROWS` (a picture, or text without a
clear row between lines) is read alone with the automatic page segmentation.

Measured on the bench's dense console screen (``ls -l /bin``, 48 lines, 2-core machine,
CPU time): 96-row bands with automatic segmentation 665 ms, whole screen as one block
720 ms, a line a call (mode 7) 1,080 ms, one block with wide blank gaps squeezed 650 ms
(but more misread characters), the dictionaries off (``load_system_dawg``/
``load_freq_dawg``) no change; the LSTM network is 80% of the time and is spent per
pixel column of text, so the gain is the second core (352 ms a read against 685 on one
thread, quiet host). The automatic segmentation read
the ``ls -l`` columns as separate paragraphs (165 lines for 48); lines as blocks keep
each screen row one line.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
from PIL import Image

from mux.needles.model import RGB

LINE_ROWS = 48  # a band of at most this many rows is a text line
BAND_ROWS = 96  # kept for :func:`bands`
CACHE_LINES = 1024
WORKERS = 2  # threads (each with its own engine) a read is split over
SPLIT_ROWS = 64  # fewer rows than this to read: one thread
MARGIN = 2  # blank rows kept around a line


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
        api.SetVariable("tessedit_do_invert", "0")  # pictures come black on white
        return api

    def _ready(self) -> Any:
        if self._api is None:
            self._api = self._load()
        return self._api

    def read(self, picture: Image.Image) -> str:
        """The text in ``picture``, laid out by tesseract's automatic page segmentation.

        Raises:
            OcrUnavailable: tesserocr or the language data is missing.
        """
        import tesserocr

        with self._lock:
            api = self._ready()
            api.SetPageSegMode(tesserocr.PSM.AUTO)
            api.SetImage(picture)
            return str(api.GetUTF8Text())

    def read_lines(self, picture: Image.Image) -> list[tuple[int, int, str]]:
        """``picture`` read as one uniform block of text: (row of its middle, left column,
        text) of each line tesseract found.

        Raises:
            OcrUnavailable: tesserocr or the language data is missing.
        """
        import tesserocr

        found: list[tuple[int, int, str]] = []
        with self._lock:
            api = self._ready()
            api.SetPageSegMode(tesserocr.PSM.SINGLE_BLOCK)
            api.SetImage(picture)
            api.Recognize()
            level = tesserocr.RIL.TEXTLINE
            iterator = api.GetIterator()
            if iterator is None:
                return found
            for line in tesserocr.iterate_level(iterator, level):
                box = line.BoundingBox(level)
                try:
                    text = line.GetUTF8Text(level)
                except RuntimeError:  # tesserocr's "No text returned": a line of nothing
                    continue
                if box and text.strip():
                    found.append(((box[1] + box[3]) // 2, box[0], " ".join(text.split())))
        return found


_ENGINES = [Engine() for _ in range(WORKERS)]
_ENGINE = _ENGINES[0]
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(WORKERS, thread_name_prefix="ocr")
        return _POOL


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


def line_bands(grey: np.ndarray[Any, Any]) -> list[tuple[int, int]]:
    """(top, bottom) of each run of rows that are not one colour, widened by up to
    :data:`MARGIN` blank rows on each side (never into the next run)."""
    if grey.size == 0:
        return []
    blank = (grey == grey[:, :1]).all(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate(([True], blank, [True])).astype(np.int8)))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    height = grey.shape[0]
    widened = []
    for i, (top, bottom) in enumerate(runs):
        above = (runs[i - 1][1] + top) // 2 if i else 0
        below = (bottom + runs[i + 1][0]) // 2 if i + 1 < len(runs) else height
        widened.append((max(top - MARGIN, above), min(bottom + MARGIN, below)))
    return widened


def black_on_white(grey: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Two levels by Otsu's threshold, the text black (the more common level is paper)."""
    _, two = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return two if two.mean() >= 128 else 255 - two


def _read_block(engine: Engine, lines: list[tuple[int, int, np.ndarray[Any, Any]]]) -> list[str]:
    """Lines (top, bottom, black-on-white pixels) put back at their rows and read as one
    block; the text of each, in order (words tesseract saw on one row joined by a space)."""
    first, last = lines[0][0], lines[-1][1]
    canvas = np.full((last - first, max(px.shape[1] for _, _, px in lines)), 255, np.uint8)
    for top, bottom, px in lines:
        canvas[top - first:bottom - first, :px.shape[1]] = px
    said: list[list[tuple[int, str]]] = [[] for _ in lines]
    for middle, left, text in engine.read_lines(Image.fromarray(canvas, "L")):
        row = middle + first
        nearest = min(range(len(lines)), key=lambda i: 0 if lines[i][0] <= row < lines[i][1]
                      else min(abs(row - lines[i][0]), abs(row - lines[i][1])))
        said[nearest].append((left, text))
    return [" ".join(text for _, text in sorted(words)) for words in said]


def _halves(todo: list[tuple[int, int, np.ndarray[Any, Any]]], parts: int) -> list[list[Any]]:
    """``todo`` (in screen order) cut into up to ``parts`` runs of about equal rows."""
    rows = sum(bottom - top for top, bottom, _ in todo)
    if parts < 2 or rows < SPLIT_ROWS or len(todo) < 2:
        return [todo]
    runs: list[list[Any]] = [[]]
    done = 0
    for line in todo:
        if done >= rows * len(runs) / parts and len(runs) < parts:
            runs.append([])
        runs[-1].append(line)
        done += line[1] - line[0]
    return [run for run in runs if run]


class TextReader:
    """Reads screens line by line, remembering what each line's pixels said."""

    def __init__(self, engine: Engine | None = None, engines: list[Engine] | None = None) -> None:
        self.engines = engines or ([engine] if engine is not None else _ENGINES)
        self.engine = self.engines[0]
        self._known: OrderedDict[bytes, str] = OrderedDict()
        self.reads = 0  # lines and tall bands actually read by tesseract (not remembered)

    def _remember(self, key: bytes, said: str) -> None:
        self._known[key] = said
        if len(self._known) > CACHE_LINES:
            self._known.popitem(last=False)

    def _read(self, grey: np.ndarray[Any, Any], found: list[tuple[int, int]],
              todo: list[tuple[int, int, np.ndarray[Any, Any]]], tall: list[int]) -> list[tuple[int, str]]:
        """(index in ``found``, text) of the lines in ``todo`` (read as blocks, split over the
        engines) and of the tall bands (read alone)."""
        index = {top: i for i, (top, _) in enumerate(found)}
        runs = [run for run in _halves(todo, len(self.engines)) if run]
        jobs = len(runs) + len(tall)

        def work(n: int) -> list[tuple[int, str]]:
            engine = self.engines[n % len(self.engines)]
            if n < len(runs):
                run = runs[n]
                return list(zip([index[top] for top, _, _ in run], _read_block(engine, run), strict=True))
            band = tall[n - len(runs)]
            top, bottom = found[band]
            return [(band, engine.read(Image.fromarray(black_on_white(grey[top:bottom]), "L")))]

        if jobs > 1 and len(self.engines) > 1:
            return [pair for said in _pool().map(work, range(jobs)) for pair in said]
        return [pair for n in range(jobs) for pair in work(n)]

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
        found = line_bands(grey)
        texts: list[str] = [""] * len(found)
        keys: list[bytes] = []
        todo: list[tuple[int, int, np.ndarray[Any, Any]]] = []
        tall: list[int] = []
        for i, (top, bottom) in enumerate(found):
            band = np.ascontiguousarray(grey[top:bottom])
            key = hashlib.blake2b(band.tobytes(), digest_size=16).digest() + bytes(str(band.shape), "ascii")
            keys.append(key)
            if key in self._known:
                self._known.move_to_end(key)
                texts[i] = self._known[key]
            elif bottom - top > LINE_ROWS:
                tall.append(i)
            else:
                todo.append((top, bottom, black_on_white(band)))
        for place, line in self._read(grey, found, todo, tall):
            texts[place] = line
            self._remember(keys[place], line)
            self.reads += 1
        lines: list[str] = []
        for said in texts:
            lines += [line.rstrip() for line in said.splitlines() if line.strip()]
        return "\n".join(lines)
