"""Seats' figure for ``mux bench``: a switch of one seat while another holds its persona.

- ``switch_latency_ms_2seats`` {p50, p99, n}: two ``[[seat]]`` tables, both headless;
  seat ``one`` holds ``work`` while seat ``two`` switches between ``home`` and ``lab``,
  timed from the switch request until it returns, by which time seat two's output
  presents the new persona's back-buffered picture (checked after every switch, with
  seat one still showing ``work`` on its own output);
- ``switch_latency_ms_1seat`` {p50, p99, n}: the baseline, the same switches between two
  personas of a config with no ``[[seat]]`` (its one implicit seat, headless too), in
  another controller running at the same time, interleaved sample by sample (the machine
  is shared and noisy: both see the same load);
- ``switch_latency_2seats_ratio``: ``switch_latency_ms_2seats.p50`` over
  ``switch_latency_ms_1seat.p50``: what the second seat costs a switch (about 1 expected).

Headless, not a window as ``switch_latency_ms`` (:mod:`mux.bench.display`) measures: the
two outputs of a config with seats are windows in processes of their own, which would
time the window processes, not the switch; the ratio compares like with like.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mux.app.controller import Controller
from mux.bench.display import percentiles, ready
from mux.config import Config, DisplaySection, MuxSection, PersonaConfig, SeatSection

SWITCHES = 200
HELD, SWITCHED = ("work",), ("home", "lab")  # seat one's persona; seat two's pair
BASELINE = ("play", "shop")  # the one-seat controller's pair (its own names: its own sockets)
SETTLE_S = 2.0  # every persona back-buffered before the first sample
GAP_S = 0.02  # between samples, as switch_latency_ms's


def two_seat_config() -> Config:
    """Three ``console`` personas; seat ``one`` may show all, seat ``two`` home and lab; both headless."""
    return Config(mux=MuxSection(accel="tcg"),
                  personas=tuple(PersonaConfig(name) for name in (*HELD, *SWITCHED)),
                  seats=(SeatSection(name="one", output="headless"),
                         SeatSection(name="two", output="headless", personas=SWITCHED)))


def one_seat_config() -> Config:
    """The baseline: two ``console`` personas, no ``[[seat]]``, headless."""
    return Config(mux=MuxSection(accel="tcg"), personas=tuple(PersonaConfig(name) for name in BASELINE),
                  display=DisplaySection(output="headless"))


def _shows(ctl: Controller, seat: str | None, persona: str) -> bool:
    """Whether ``seat``'s output presents ``persona``'s picture and routes to it."""
    current = ctl.output_of(seat).current_frame()
    active = ctl.active if seat is None else ctl.active_on(seat)
    return current is not None and current[0] == persona and active == persona


async def _timed_switch(ctl: Controller, target: str, seat: str | None) -> float:
    """Milliseconds of one switch request. Raises AssertionError if it returned before the
    seat's output presented ``target``."""
    t0 = time.perf_counter()
    await ctl.switch(target, "bench", seat)
    elapsed = (time.perf_counter() - t0) * 1000
    assert _shows(ctl, seat, target), f"seat {seat}: {ctl.output_of(seat).current_frame()}"
    return elapsed


async def bench_seats(switches: int = SWITCHES) -> dict[str, Any]:
    """The figures of the module docstring, over ``switches`` switches of each controller.

    Raises:
        AssertionError: a switch returned before its seat's output showed the new persona,
            or seat one's persona moved.
        TimeoutError: a persona's shell did not come up.
    """
    async with Controller(two_seat_config(), progress=lambda m: None) as seated, \
            Controller(one_seat_config(), progress=lambda m: None) as single:
        await asyncio.gather(ready(seated), ready(single))
        await seated.switch(HELD[0], "bench", "one")
        await seated.switch(SWITCHED[0], "bench", "two")
        await single.switch(BASELINE[0], "bench")
        await asyncio.sleep(SETTLE_S)
        two: list[float] = []
        one: list[float] = []
        for i in range(switches):
            two.append(await _timed_switch(seated, SWITCHED[(i + 1) % 2], "two"))
            held = seated.output_of("one").current_frame()
            assert _shows(seated, "one", HELD[0]), f"seat one moved: {held}"
            await asyncio.sleep(GAP_S)
            one.append(await _timed_switch(single, BASELINE[(i + 1) % 2], None))
            await asyncio.sleep(GAP_S)
    seats, baseline = percentiles(two), percentiles(one)
    return {"switch_latency_ms_2seats": seats, "switch_latency_ms_1seat": baseline,
            "switch_latency_2seats_ratio": round(seats["p50"] / max(baseline["p50"], 0.001), 3)}
