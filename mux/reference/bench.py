"""The figures of ``mux bench --json``, read from the bench's own table of parts.

:data:`mux.bench.runner.PARTS` lists, per part of the bench, the keys ``--only`` knows;
each must have a line in :data:`FIGURES`. A part also reports keys ``--only`` does not
take (a second ratio, a count of what was measured, why a part was skipped): those are
in :data:`FIGURES` with their part, and each must still be a key the bench's code writes
(found in its source). Either way a mismatch is an
:class:`~mux.reference.common.UndocumentedError`.
"""

from __future__ import annotations

import importlib
import inspect

from mux.reference.common import UndocumentedError, code, header, table

P = "`{p50, p99, n}` in ms"
#: key -> what it measures (for keys not in PARTS: (part, what it measures)).
FIGURES: dict[str, str | tuple[str, str]] = {
    "qmp_roundtrip_ms": f"{P}: a bare QMP `input-send-event` to a running persona (the baseline)",
    "input_latency_ms": f"{P}: an event entering the router until QEMU acknowledges the command it"
                        " became (router, switch lock, dispatch, QMP)",
    "input_latency_ratio": "`input_latency_ms.p99 / qmp_roundtrip_ms.p50` (target <= 1.5)",
    "input_latency_ratio_p50": "`input_latency_ms.p50 / qmp_roundtrip_ms.p50`, like for like",
    "input_latency_ratio_p99": "`input_latency_ms.p99 / qmp_roundtrip_ms.p99`, like for like",
    "needle_search_ms": f"{P}: one needle searched on a fresh 1024x768 screen (blur included), over a"
                        " fixed set of areas and margins, each moved 20 px from its place",
    "needle_search_cases_ms": ("input", "each needle search case's p50 in ms"),
    "ocr_ms": "`{p50, n}` in ms: tesseract reading a whole 1024x768 console screen (banner and prompt)",
    "ocr_dense_ms": ("input", "the same once `ls -l /bin` has filled the screen (41 lines)"),
    "mqtt_switch_latency_ms": f"{P}: publishing `active/set` until `active` comes back, on a private"
                              " loopback mosquitto",
    "mqtt_roundtrip_ms": f"{P}: a bare publish-and-receive on the same broker (the baseline)",
    "mqtt_switch_latency_ratio": "`mqtt_switch_latency_ms.p99 / mqtt_roundtrip_ms.p50`",
    "type_chars_per_s": "`{ps2, virtio}`: characters a second of the `type` step into a `console`"
                        " persona, 2000 characters at the keyboard's pace",
    "type_lost_keys": "`{ps2, virtio}`: key edges sent but not reported by the guest (`MUX-KEY` lines)",
    "type_serial_log_garbled_lines": ("typing", "`{ps2, virtio}`: lines of QEMU's raw serial log file"
                                      " that came out mangled (what the controller read is exact)"),
    "type_shell_got_every_character": ("typing", "`{ps2, virtio}`: whether the shell's copy of the text"
                                       " has the text's MD5"),
    "mqtt_idle_screenshots_per_hour": "screenshots published for an idle `console` persona (its cursor"
                                      " blinking) at the default interval, counted over 120 s, per hour",
    "mqtt_idle_screenshots_taken": ("mqtt_idle", "screenshots taken meanwhile"),
    "mqtt_idle_window_s": ("mqtt_idle", "the seconds counted over"),
    "mqtt_idle_interval_s": ("mqtt_idle", "the `screenshot_interval_s` used"),
    "snapshot_speedup": "`snapshot_cold_boot_s / snapshot_restore_s` (target >= 5)",
    "snapshot_cold_boot_s": "seconds until two personas are ready when booted",
    "snapshot_restore_s": "seconds until two personas are ready when restored from a snapshot",
    "switch_latency_ms": f"{P}: a switch request until the new persona's picture is presented, its LEDs"
                         " written and input routed to it (2 personas, window under SDL's dummy driver)",
    "switch_latency_ms_8": f"{P}: the same with 8 personas running",
    "live_fps": "frames presented a second while the active guest repaints its whole screen about 50"
                " times a second",
    "live_cpu_ms_per_frame": "the controller's CPU milliseconds per presented frame",
    "live_fps_ratio": "presented frames over the updates QEMU's VNC server sends (counted by a second,"
                      " bare VNC client over the same seconds)",
    "controller_cpu_percent": "the controller's CPU (% of one core) over the same seconds",
    "live_fps_ratio_guest": ("live", "presented frames over the guest's repaints"),
    "live_guest_repaints_per_s": ("live", "how often the guest repainted"),
    "live_vnc_updates_per_s": ("live", "the updates a bare VNC client got a second"),
    "idle_cpu_percent": "the controller's CPU with 4 idle personas back-buffered every second",
    "idle_screendumps_per_s": ("idle", "QMP screendumps a second meanwhile"),
    "idle_cpu_percent_8": "the same with 8 idle personas",
    "idle_screendumps_per_s_8": ("idle_8", "QMP screendumps a second meanwhile"),
    "controller_rss_mb": "resident memory of a fresh controller process with 8 personas running",
    "controller_rss_personas": ("rss", "how many personas ran"),
    "controller_rss_all_ready": ("rss", "whether all of them were ready"),
    "debian_boot_s": "the built-in `debian` image, BIOS, TCG, until its guest agent answers (`null` when"
                     " the image is not built)",
    "debian_restore_s": "a `debian` persona started from a snapshot until its agent answers (`null` when"
                        " the image is not built)",
    "agent_exec_ms": "`{p50, p99}` in ms: `exec true` through the guest agent",
    "debian_agent_skipped": ("agent", "why the agent figures are `null`"),
    "audio_switch_ms": "`{p50, p99}` in ms: a switch request until the sound server shows the old"
                       " persona muted and the new one live (`null` without PulseAudio, QEMU's `pa` backend"
                       " or the `debian` image)",
    "audio_skipped": ("audio", "why `audio_switch_ms` is `null`"),
}
#: Where the bench's figures are written (searched for the keys not in PARTS).
SOURCES = ("mux.bench.runner", "mux.bench.display", "mux.bench.keys", "mux.bench.needles", "mux.bench.debian",
           "mux.bench.agent", "mux.bench.audio", "mux.scenario.snapshot")


def figures() -> list[tuple[str, str, bool, str]]:
    """(key, part, whether ``--only`` takes it, what it measures), part by part.

    Raises:
        UndocumentedError: a key of PARTS without a line here, or a line for a key the bench
            does not write.
    """
    parts: dict[str, tuple[str, ...]] = importlib.import_module("mux.bench.runner").PARTS
    listed = {key: part for part, keys in parts.items() for key in keys}
    missing = [key for key in listed if key not in FIGURES]
    source = "".join(inspect.getsource(importlib.import_module(m)) for m in SOURCES)
    gone = [key for key, what in FIGURES.items() if key not in listed and (
            not isinstance(what, tuple) or what[0] not in parts
            or (f'"{key}"' not in source and key.removesuffix("_8") not in source))]
    if missing or gone:
        raise UndocumentedError(f"mux bench figures: undescribed {', '.join(missing) or 'none'}; described"
                                f" but not written by the bench {', '.join(gone) or 'none'}"
                                " (mux/reference/bench.py, FIGURES)")
    rows: list[tuple[str, str, bool, str]] = []
    for part, keys in parts.items():
        for key in keys:
            rows.append((key, part, True, str(FIGURES[key])))
        rows += [(key, part, False, what[1]) for key, what in FIGURES.items()
                 if isinstance(what, tuple) and what[0] == part]
    return rows


INTRO = """\
`mux bench` measures mux on real TCG guests and prints each figure; `--json FILE` also
writes them to a file, one key each, as below. The machine is shared and noisy, so each
figure is measured next to its baseline, interleaved sample by sample, and reported raw
and as a ratio. `mux bench --only KEY,...` runs only the parts that measure those keys
(each part reports all of its keys; an unknown key is refused with the list). The
[Performance guide](../guides/performance.md) tells how the display's figures are taken
and what was measured here.
"""


def bench_page() -> str:
    """``docs/reference/bench.md``: every key of ``mux bench --json``.

    Raises:
        UndocumentedError: see :func:`figures`.
    """
    rows = [(code(key), part, "yes" if only else "", what) for key, part, only, what in figures()]
    return (header("mux bench figures", "mux/bench/runner.py (PARTS)", INTRO)
            + table(("key", "part", "`--only` takes it", "what it measures"), rows))
