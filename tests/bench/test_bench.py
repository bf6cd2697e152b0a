"""mux bench's key selection (the figures themselves are measured by ``mux bench``, not tests)."""

from __future__ import annotations

import pytest

from mux.bench.runner import PARTS, parts_for
from mux.cli import main

pytestmark = pytest.mark.pure


def test_only_runs_the_parts_that_measure_the_keys_asked_for() -> None:
    assert parts_for(None) == set(PARTS)
    assert parts_for({"live_fps_ratio", "idle_cpu_percent"}) == {"live", "idle"}
    assert parts_for({"idle_cpu_percent_8", "switch_latency_ms_8"}) == {"idle_8", "switch_8"}
    assert parts_for({"type_chars_per_s", "type_lost_keys"}) == {"typing"}
    with pytest.raises(ValueError, match="unknown key live_fsp"):
        parts_for({"live_fsp"})


def test_an_unknown_key_is_refused_before_anything_boots(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "live_fps,nonsense"]) == 2
    assert "unknown key nonsense" in capsys.readouterr().err
