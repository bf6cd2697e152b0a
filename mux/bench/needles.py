"""Needle search and OCR figures for ``mux bench`` (no guest: pictures drawn here).

- ``needle_search_ms``: one needle searched on a fresh 1024x768 screen (the screen's
  grey blur included, as in an assertion), over a fixed set: a 645x160 area at margin
  50 and at margin 700, a 645x10 (thin) area at margin 50, and a whole-screen area;
  every needle's area has moved 20 px, so none is taken at its own place.
  ``needle_search_cases_ms`` gives each case's p50.
- ``ocr_ms``: tesseract reading a whole 1024x768 console screen of a running guest
  (its banner and prompt; nothing remembered), and ``ocr_dense_ms`` the same screen
  once ``ls -l /bin`` has filled it (41 lines).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mux.needles.match import Screen, match_needle
from mux.needles.model import Area, Needle

ROUNDS = 30
OCR_ROUNDS = 5
SHIFT = 20


def console_screen(shift: int = 0) -> Image.Image:
    """A 1024x768 text console: 40 lines of white text on the persona colour."""
    image = Image.new("RGB", (1024, 768), (192, 48, 48))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    for row in range(40):
        draw.text((8 + shift, 4 + row * 19 + shift), f"work:/root# ls -l /var/log/installer/{row:02d}  "
                  f"-rw-r--r-- 1 root root {row * 977 % 10000:5d} Dec  2 01:{row:02d} syslog.{row}",
                  fill=(255, 255, 255), font=font)
    return image


def needle(picture: Image.Image, area: Area) -> Needle:
    found = Needle(f"bench-{area.width}x{area.height}-m{area.margin}", Path("bench.json"), Path("bench.png"),
                   ("bench",), (area,), picture.size)
    found._rgb = np.asarray(picture)
    return found


def cases() -> dict[str, Area]:
    return {
        "large_645x160_margin50": Area(100, 200, 645, 160, margin=50),
        "large_645x160_margin700": Area(100, 200, 645, 160, margin=700),
        "thin_645x10_margin50": Area(100, 300, 645, 10, margin=50),
        "whole_screen": Area(0, 0, 1024, 768, margin=50, match=80),
    }


def bench_needle_search(rounds: int = ROUNDS) -> dict[str, Any]:
    reference, moved = console_screen(), np.asarray(console_screen(SHIFT))
    samples: list[float] = []
    per_case: dict[str, float] = {}
    for name, area in cases().items():
        probe = needle(reference, area)
        match_needle(Screen(moved), probe)  # the needle's own blur, once, as a loaded needle keeps it
        taken = []
        for _ in range(rounds):
            began = time.perf_counter()
            match_needle(Screen(moved), probe)
            taken.append((time.perf_counter() - began) * 1000)
        samples += taken
        per_case[name] = round(statistics.median(taken), 3)
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"needle_search_ms": {"p50": round(q[49], 3), "p99": round(q[98], 3), "n": len(ordered)},
            "needle_search_cases_ms": per_case}


def bench_ocr(screen: Image.Image, rounds: int = OCR_ROUNDS) -> dict[str, Any]:
    """p50 of whole-screen reads with nothing remembered (the engine loaded first)."""
    from mux.needles.ocr import OcrUnavailable, TextReader

    try:
        engine = TextReader().engine
        TextReader(engine).text(screen)
        taken = []
        for _ in range(rounds):
            began = time.perf_counter()
            TextReader(engine).text(screen)
            taken.append((time.perf_counter() - began) * 1000)
    except OcrUnavailable as exc:
        return {"error": str(exc)}
    return {"p50": round(statistics.median(taken), 1), "n": len(taken)}


async def console_screens(ctl: Any) -> tuple[Image.Image, Image.Image]:
    """The active persona's console as it booted, and once ``ls -l /bin`` filled it."""
    import asyncio
    import re

    from mux.scenario.runner import StepRunner

    name = ctl.active
    await ctl.persona(name).serial.wait_for(re.compile("MUX-READY"), 120, start=0)
    await asyncio.sleep(1)
    plain = await ctl.screenshot(name)
    await StepRunner(ctl).step_type({"text": "ls -l /bin | head -60\n"})
    await asyncio.sleep(5)
    return plain, await ctl.screenshot(name)


def bench_needles(plain: Image.Image, dense: Image.Image) -> dict[str, Any]:
    """The needle search and OCR figures (a few seconds)."""
    return {**bench_needle_search(), "ocr_ms": bench_ocr(plain), "ocr_dense_ms": bench_ocr(dense)}
