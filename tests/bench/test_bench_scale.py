"""The bench's 16-persona, background and frame-copy keys: ``--only`` finds their parts,
and the 16-persona config is one the config checks accept (the figures themselves are
measured by ``mux bench``, not tests)."""

from __future__ import annotations

import pytest

from mux.bench import display, scale
from mux.bench.runner import parts_for
from mux.config.schema import NAME_PATTERN

pytestmark = pytest.mark.pure


def test_only_runs_the_part_of_each_new_key() -> None:
    assert parts_for({"background_low_ratio"}) == {"background"}
    assert parts_for({"background_run_ratio"}) == {"background"}
    assert parts_for({"idle_cpu_percent_16", "switch_latency_ms_16", "controller_rss_mb_16"}) == {
        "idle_16", "switch_16", "rss_16"}
    assert parts_for({"frame_copy_ms_1080"}) == {"frame_copy"}
    assert parts_for({"live_cpu_frame_in_copies", "live_cpu_frame_in_copies_1080"}) == {
        "live_copies", "live_1080"}


def test_sixteen_personas_have_sixteen_valid_names_and_the_small_memory() -> None:
    config = display.display_config(16, memory_mb=scale.SMALL_MEMORY_MB)
    names = [p.name for p in config.personas]
    assert len(set(names)) == 16 and all(NAME_PATTERN.fullmatch(n) for n in names)
    assert {p.memory_mb for p in config.personas} == {scale.SMALL_MEMORY_MB}
    assert [p.name for p in display.display_config(8).personas] == names[:8]  # the 8-persona figures' own


def test_the_memory_check_names_what_is_missing() -> None:
    assert scale._memory_for(0) is None  # nothing asked: the host holds it
    reason = scale._memory_for(10**6)  # a million personas: no host holds them
    assert reason is not None and "MiB available" in reason
