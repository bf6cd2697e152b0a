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
    "ocr_dense_ms": ("input", "the same once `ls -l /bin` has filled the screen (48 rows of the console"
                     " font)"),
    "ocr_dense_ratio": ("input", "`ocr_dense_ms.p50` over the plain `tesseract` command's p50 reading the"
                        " same screen as PNG, interleaved in the same run (target <= 0.5; `null` without"
                        " the command)"),
    "ocr_dense_cli_ms": ("input", "`{p50, one_thread, n, ratio_one_thread}` in ms: the `tesseract` command"
                         " on that PNG, plain and with `OMP_THREAD_LIMIT=1` (its OpenMP threads spin against"
                         " each other on a loaded machine), and `ocr_dense_ms` over the latter"),
    "ocr_dense_accuracy": ("input", "`{mux, cli}`, each `{exact_lines, of, words_read}`: the dense screen's"
                           " lines read exactly and the share of its words read, against the listing the"
                           " guest also printed on its serial port"),
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
    "mqtt_nodes_switch_ms": f"{P}: publishing `mux/<node>/active/set` until `active` comes back, on one of"
                            " five controllers sharing one loopback mosquitto, each under its own topics",
    "mqtt_nodes_strays": ("mqtt_nodes", "`active` messages of the other four nodes heard meanwhile (0)"),
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
    "desktop_boot_s": "the built-in `desktop` image, BIOS, TCG, `vga = \"virtio\"`, until its X session"
                      " prints `MUX-READY` (`null` when the image is not built)",
    "clipboard_copy_ms": "`{p50, p99, n}` in ms: text set in one `desktop` persona's session, then"
                         " `scrolllock+c`, a switch and `scrolllock+v`, until the other's session has it"
                         " (`null` when the `desktop` image is not built)",
    "clipboard_copy_skipped": ("clipboard", "why `clipboard_copy_ms` is `null`"),
    "debian_restore_s": "a `debian` persona started from a snapshot until its agent answers (`null` when"
                        " the image is not built)",
    "agent_exec_ms": "`{p50, p99}` in ms: `exec true` through the guest agent",
    "debian_agent_skipped": ("agent", "why the agent figures are `null`"),
    "audio_switch_ms": "`{p50, p99}` in ms: a switch request until the sound server shows the old"
                       " persona muted and the new one live (`null` without PulseAudio, QEMU's `pa` backend"
                       " or the `debian` image)",
    "audio_skipped": ("audio", "why `audio_switch_ms` is `null`"),
    "replay_jobs_speedup": "seconds of `mux replay --jobs 1` over `--jobs 2`, the same 8 `console` scenario"
                           " files (each boots a persona, types a line, waits for its echo), same run"
                           " (target >= 1.5 on 2 cores)",
    "replay_jobs_s": ("replay_jobs", "`{jobs_1, jobs_2}`: the seconds of each replay"),
    "replay_jobs_boot_s": ("replay_jobs", "`{jobs_1, jobs_2}`: the mean seconds until a file's guest"
                           " printed `MUX-READY`, in each replay (where the time goes)"),
    "background_low_ratio": "a CPU-bound shell loop's rate in the active `console` guest with 3 background"
                            " personas running a busy loop, over its rate with them idle, under"
                            " `[mux] background = \"low\"` (target >= 0.85)",
    "background_run_ratio": "the same under `background = \"run\"` (every guest equal), measured beside it",
    "background_cpu_percent": ("background", "`{low, run}`, each `{active_cpu_percent,"
                               " background_cpu_percent}`: the CPU (% of one core) the active guest's"
                               " QEMU and the 3 busy ones' took meanwhile"),
    "idle_cpu_percent_16": "the controller's CPU with 16 idle `console` personas of 96 MiB back-buffered"
                           " every second (`null` when the host has not the memory)",
    "switch_latency_ms_16": f"{P}: `switch_latency_ms` with 16 personas of 96 MiB running",
    "controller_rss_mb_16": "`controller_rss_mb` with 16 personas of 96 MiB running",
    "controller_rss_personas_16": ("rss_16", "how many personas ran"),
    "controller_rss_all_ready_16": ("rss_16", "whether all of them were ready"),
    "idle_screendumps_per_s_16": ("idle_16", "QMP screendumps a second meanwhile"),
    "personas_16_skipped": ("idle_16", "why the 16-persona figures are `null` (free memory)"),
    "frame_copy_ms": "the median ms of copying one 1024x768 frame (32 bits a pixel) in memory, on this host",
    "frame_copy_ms_1080": "the same for a 1920x1080 frame",
    "live_cpu_frame_in_copies": "`live_cpu_ms_per_frame` over `frame_copy_ms`: the live picture's CPU a frame"
                                " in frame copies, the same on any host (target <= 5)",
    "live_copies_detail": ("live_copies", "the `live` part's figures it was computed from"),
    "live_cpu_frame_in_copies_1080": "the same with the guest at 1920x1080 (the console image with"
                                     " `vga=0x390`), over `frame_copy_ms_1080` (target <= 5)",
    "live_1080_detail": ("live_1080", "the `live` part's figures at 1920x1080"),
    "quick_boot_s": "seconds from a `mux run` process's start until its `console` persona, saved by quick"
                    " boot at the previous run's clean stop, runs and is ready again (median of 3;"
                    " target <= 1.0)",
    "quick_boot_debian_s": "the same for a `debian` persona with `agent = true`, ready when its agent"
                           " answers (`null` when the image is not built; target <= 3.0)",
    "switch_latency_ms_2seats": f"{P}: two `[[seat]]` tables, headless: seat two switches between two"
                                " personas while seat one holds a third, a switch request until seat two's"
                                " output presents the new persona's picture",
    "switch_latency_ms_1seat": ("seats", f"{P}: the baseline, the same switches of a config without"
                                " `[[seat]]` (headless), in a second controller at the same time,"
                                " interleaved sample by sample"),
    "switch_latency_2seats_ratio": "`switch_latency_ms_2seats.p50 / switch_latency_ms_1seat.p50`: what"
                                   " the second seat costs a switch",
}
#: Where the bench's figures are written (searched for the keys not in PARTS).
SOURCES = ("mux.bench.runner", "mux.bench.display", "mux.bench.keys", "mux.bench.needles", "mux.bench.debian",
           "mux.bench.desktop", "mux.bench.clipboard",
           "mux.bench.agent", "mux.bench.audio", "mux.scenario.snapshot", "mux.bench.replay_jobs",
           "mux.bench.nodes", "mux.bench.scale", "mux.bench.seats")


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
            or (f'"{key}"' not in source and key.removesuffix("_8").removesuffix("_16") not in source))]
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
