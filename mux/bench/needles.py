"""Needle search and OCR figures for ``mux bench`` (no guest: pictures drawn here).

- ``needle_search_ms``: one needle searched on a fresh 1024x768 screen (the screen's
  grey blur included, as in an assertion), over a fixed set: a 645x160 area at margin
  50 and at margin 700, a 645x10 (thin) area at margin 50, and a whole-screen area;
  every needle's area has moved 20 px, so none is taken at its own place.
  ``needle_search_cases_ms`` gives each case's p50.
- ``ocr_ms``: tesseract reading a whole 1024x768 console screen of a running guest
  (its banner and prompt; nothing remembered), and ``ocr_dense_ms`` the same screen
  once ``ls -l /bin`` has filled it (48 rows of the 8x16 console font).
- ``ocr_dense_ratio``: ``ocr_dense_ms`` over the plain ``tesseract`` command reading the
  same screen saved as PNG, interleaved read by read in the same run
  (``ocr_dense_cli_ms``; ``one_thread`` is the command with ``OMP_THREAD_LIMIT=1``:
  Debian's tesseract spreads its work over OpenMP threads, which on a loaded machine
  spin against each other). ``ocr_dense_accuracy`` compares each reading with the
  listing the guest printed on its serial port too: the screen's lines read exactly,
  and the share of its words read (in any order).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
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
        TextReader().text(screen)  # the engines loaded
        taken = []
        for _ in range(rounds):
            began = time.perf_counter()
            TextReader().text(screen)
            taken.append((time.perf_counter() - began) * 1000)
    except OcrUnavailable as exc:
        return {"error": str(exc)}
    return {"p50": round(statistics.median(taken), 1), "n": len(taken)}


def _cli_ms(png: Path, one_thread: bool) -> tuple[float, str]:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"} if one_thread else None
    began = time.perf_counter()
    said = subprocess.run(["tesseract", str(png), "-"], capture_output=True, text=True, check=True,
                          env=env, timeout=300).stdout
    return (time.perf_counter() - began) * 1000, said


def accuracy(said: str, expected: list[str]) -> dict[str, Any]:
    """How much of ``expected`` (the screen's lines) ``said`` has: lines read exactly (in
    order, white space runs as one space) and the share of the words read (in any order)."""
    got = [" ".join(line.split()) for line in said.splitlines() if line.strip()]
    want = [" ".join(line.split()) for line in expected]
    words = Counter(word for line in want for word in line.split())
    read = Counter(word for line in got for word in line.split())
    return {"exact_lines": sum(1 for a, b in zip(got, want, strict=False) if a == b), "of": len(want),
            "words_read": round(sum((words & read).values()) / max(sum(words.values()), 1), 3)}


def bench_ocr_dense(screen: Image.Image, expected: list[str] | None,
                    rounds: int = OCR_ROUNDS) -> dict[str, Any]:
    """``ocr_dense_ms`` and, when the ``tesseract`` command is installed, the same screen read
    by it, interleaved read by read: ``ocr_dense_ratio`` (p50 over p50) and the accuracy."""
    from mux.needles.ocr import OcrUnavailable, TextReader

    results: dict[str, Any] = {}
    try:
        TextReader().text(screen)  # the engines loaded
    except OcrUnavailable as exc:
        return {"ocr_dense_ms": {"error": str(exc)}}
    with tempfile.TemporaryDirectory(prefix="mux-ocr-") as tmp:
        png = Path(tmp) / "dense.png"
        screen.save(png)
        cli = shutil.which("tesseract") is not None
        taken: list[float] = []
        plain: list[float] = []
        one: list[float] = []
        said = cli_said = ""
        for _ in range(rounds):
            began = time.perf_counter()
            said = TextReader().text(screen)
            taken.append((time.perf_counter() - began) * 1000)
            if cli:
                ms, cli_said = _cli_ms(png, False)
                plain.append(ms)
                one.append(_cli_ms(png, True)[0])
    results["ocr_dense_ms"] = {"p50": round(statistics.median(taken), 1), "n": len(taken)}
    if cli:
        results["ocr_dense_cli_ms"] = {"p50": round(statistics.median(plain), 1),
                                       "one_thread": round(statistics.median(one), 1), "n": len(plain),
                                       "ratio_one_thread": round(statistics.median(taken)
                                                                 / statistics.median(one), 3)}
        results["ocr_dense_ratio"] = round(statistics.median(taken) / statistics.median(plain), 3)
    else:
        results["ocr_dense_ratio"] = None
        results["ocr_dense_cli_ms"] = {"error": "no tesseract command (Debian: tesseract-ocr)"}
    if expected:
        results["ocr_dense_accuracy"] = {"mux": accuracy(said, expected),
                                         **({"cli": accuracy(cli_said, expected)} if cli else {})}
    return results


async def console_screens(ctl: Any) -> tuple[Image.Image, Image.Image, list[str]]:
    """The active persona's console as it booted, once ``ls -l /bin`` filled it, and the
    lines that screen shows (the listing printed again on the serial port, whose last
    lines are on the screen above the prompt; one screen row is 16 pixels)."""
    import asyncio
    import re

    from mux.scenario.runner import StepRunner

    name = ctl.active
    serial = ctl.persona(name).serial
    await serial.wait_for(re.compile("MUX-READY"), 120, start=0)
    await asyncio.sleep(1)
    plain = await ctl.screenshot(name)
    await StepRunner(ctl).step_type({"text": "ls -l /bin | head -60\n"})
    await asyncio.sleep(5)
    dense = await ctl.screenshot(name)
    start = serial.end
    await StepRunner(ctl).step_type({"text": "ls -l /bin | head -60 | sed 's/^/MUX-LS /' > /dev/ttyS0;"
                                             " echo MUX-LS-END > /dev/ttyS0\n"})
    await serial.wait_for(re.compile("MUX-LS-END"), 120, start=start)
    listing = re.findall(r"^MUX-LS (.*?)\r?$", serial.since(start), re.MULTILINE)
    rows = dense.height // 16
    return plain, dense, [*listing, f"{name}:/root#"][-rows:]


def bench_needles(plain: Image.Image, dense: Image.Image,
                  expected: list[str] | None = None) -> dict[str, Any]:
    """The needle search and OCR figures (a few seconds)."""
    return {**bench_needle_search(), "ocr_ms": bench_ocr(plain), **bench_ocr_dense(dense, expected)}
