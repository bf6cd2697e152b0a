"""``mux bench``'s seats part: ``--only`` finds it, its keys are documented, and a short run of
it on real console guests gives the figures with seat one's persona held throughout."""

from __future__ import annotations

from typing import Any

import pytest

from mux.bench import seats
from mux.bench.runner import parts_for
from mux.input.seats import Seat, Seats
from mux.reference.bench import figures


@pytest.mark.pure
def test_only_finds_the_seats_part_and_its_keys_are_documented() -> None:
    assert parts_for({"switch_latency_ms_2seats"}) == {"seats"}
    assert parts_for({"switch_latency_2seats_ratio"}) == {"seats"}
    rows = {key: (part, only) for key, part, only, _ in figures()}
    assert rows["switch_latency_ms_2seats"] == ("seats", True)
    assert rows["switch_latency_ms_1seat"] == ("seats", False)  # the baseline, reported beside it


@pytest.mark.pure
def test_the_two_seat_config_holds_seat_ones_persona_apart_from_seat_twos_pair() -> None:
    config = seats.two_seat_config()
    assert [s.output for s in config.seats] == ["headless", "headless"]
    seating = Seats(config.names, [Seat(s.name, s.personas) for s in config.seats],
                    active={"one": seats.HELD[0], "two": seats.SWITCHED[0]})
    assert seating.switch("two", seats.SWITCHED[1]) == []  # seat two's pair: free to switch between
    assert seating.active("one") == seats.HELD[0] and seats.HELD[0] not in seating.personas("two")
    assert not set(seats.BASELINE) & set(config.names)  # the baseline's guests have names of their own


@pytest.mark.guests
@pytest.mark.timeout(600)
async def test_a_short_run_gives_both_latencies_and_their_ratio(console_image: Any) -> None:
    result = await seats.bench_seats(switches=6)
    two, one = result["switch_latency_ms_2seats"], result["switch_latency_ms_1seat"]
    assert two["n"] == one["n"] == 6
    assert 0 < two["p50"] <= two["p99"] and 0 < one["p50"] <= one["p99"]
    assert result["switch_latency_2seats_ratio"] == round(two["p50"] / one["p50"], 3)
