"""The steps that read text off a screen, mixed into the runner: ``assert_text`` and ``check_text``.

They read the persona's back-buffered frame (:meth:`Controller.screenshot`; without a
``persona``, the active one of the step's ``seat``) with tesseract
(:class:`~mux.needles.ocr.TextReader`, which re-reads only the bands of the screen that
changed), optionally only an ``area`` of it, and poll until the ``text`` regex (``^`` and
``$`` at each line) is found or the timeout passes. ``assert_text``'s failure quotes what
was read last (cut to :data:`QUOTE_CHARS`); ``check_text`` only records whether it matched.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from mux.errors import StepFailed
from mux.needles.ocr import OcrUnavailable, TextReader
from mux.scenario.seated import SeatedSteps

SCREEN_POLL_S = 0.25
QUOTE_CHARS = 600  # of the text read, in a failure's message


class TextSteps(SeatedSteps):
    """``step_*`` methods that read text; the runner provides what is declared here."""

    message: str
    text_reader: TextReader | None = None

    def timeout(self, seconds: float) -> float:
        raise NotImplementedError

    async def read_text(self, a: dict[str, Any]) -> tuple[bool, str, str]:
        """Poll the screen (or its ``area``) until the ``text`` regex is in what tesseract
        reads, or the timeout passes; returns (found, persona, the text read last).

        Raises:
            StepFailed: OCR is not installed.
        """
        name = self._persona(a)
        wanted = re.compile(a["text"], re.MULTILINE)  # ^ and $ match at each line read
        area = a.get("area")
        box = None
        if area:
            box = (int(area["xpos"]), int(area["ypos"]), int(area["width"]), int(area["height"]))
        if self.text_reader is None:
            self.text_reader = TextReader()
        deadline = time.monotonic() + self.timeout(a["timeout"])
        while True:
            screen = await self.ctl.screenshot(name)
            try:
                text = await asyncio.to_thread(self.text_reader.text, screen, box)
            except OcrUnavailable as exc:
                raise StepFailed(f"cannot read text: {exc}") from exc
            if wanted.search(text):
                return True, name, text
            if time.monotonic() >= deadline:
                return False, name, text
            await asyncio.sleep(SCREEN_POLL_S)

    async def step_assert_text(self, a: dict[str, Any]) -> None:
        found, name, text = await self.read_text(a)
        if not found:
            raise StepFailed(f"{name}: no text matching {a['text']!r} on the screen"
                             f" (waited {self.timeout(a['timeout']):.0f}s); read: {quote(text)}")
        self.message = f"{name}: found {a['text']!r}"

    async def step_check_text(self, a: dict[str, Any]) -> None:
        found, name, text = await self.read_text(a)
        self.message = f"{name}: {'found' if found else 'no'} {a['text']!r}" + (
            "" if found else f"; read: {quote(text)}")


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` as a Python literal, cut to ``limit`` characters."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)
