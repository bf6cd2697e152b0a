"""A hostile persona: for about a minute a `console` guest ("home") floods everything it can
reach while another persona ("work") is active, and the test measures what reaches mux.

home's shell runs, in the background, busy loops that
- toggle its keyboard LEDs (``/sys/class/leds/input0::{capslock,numlock,scrolllock}``),
- ask for attention (``mux-attention``, with an escape sequence in the text),
- print escape sequences on its serial port (set the terminal title, write the clipboard
  with OSC 52, move the cursor up),
- try to reach a listener on the host's 127.0.0.1 (busybox ``wget`` to 10.0.2.2: with
  ``network = "user"`` through passt, 10.0.2.2 is not the host's loopback).

Measured and asserted, with the real controller, a real mosquitto and real TCG guests:
work gets the keys typed (its own ``MUX-KEY`` lines) and home none; work's picture stays
work's colour; the physical keyboard LEDs (a recording sink, the seam the evdev keyboards
use) are not written while work's LEDs do not change (and are, when caps lock is pressed
in work: the positive control); the controller's RSS stays bounded; home's LED topic on
MQTT stays within ``LED_RATE``; ``mux logs --from`` prints no control character while
``--raw`` does; the host listener is never reached by the guest, while the host itself
reaches it.

Resolution changes are not part of the flood: the console guest cannot change its vesafb
mode (the kernel's built-in vesafb keeps the mode the boot loader set). Resize floods are
covered by tests/guest/test_bounds.py with a scripted VNC server.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from mux.app.attention import ATTENTION_RATE
from mux.config import MqttSection, PersonaConfig
from mux.display.leds import Leds
from mux.guest.rfb import LED_RATE
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from mux.scenario.runner import StepRunner
from tests.conftest import READY_S
from tests.display.test_leds import RecordingSink
from tests.guest.test_network import Counter
from tests.mqtt_helpers import Panel

pytestmark = pytest.mark.heavy

FLOOD_S = 60
KEY_Z = 44  # typed into work: a key the text typed into home never uses
SYN = InputEvent(EV_SYN, 0, 0)
WORK_RGB, HOME_RGB = (0xC0, 0x30, 0x30), (0x30, 0x60, 0xC0)
RSS_GROWTH_MAX_MIB = 100

# Typed into home's shell (busybox ash). Every loop stops once /tmp/s exists, which the last
# job makes after FLOOD_S seconds; MUX-FLOOD lines mark the start and the end on ttyS0.
FLOOD = (
    "F=/tmp/s; L=/sys/class/leds/input0::;"
    " for p in capslock numlock scrolllock; do"
    " (while [ ! -e $F ]; do echo 1 >$L$p/brightness; echo 0 >$L$p/brightness; done) & done;"
    " (while [ ! -e $F ]; do mux-attention ring $(printf '\\033]0;pwned-attention\\007'); done) &"
    " (while [ ! -e $F ]; do printf '\\033]0;pwned\\007\\033]52;c;cHduZWQ=\\007\\033[2Aescaped\\n'"
    " >/dev/ttyS0; done) &"
    " (while [ ! -e $F ]; do wget -q -T 1 -O /dev/null http://10.0.2.2:{port}/;"
    " echo MUX-WGET $? >/dev/ttyS0; done) &"
    " (echo MUX-FLOOD start >/dev/ttyS0; sleep {seconds}; touch $F; echo MUX-FLOOD end >/dev/ttyS0) &\n"
)

NETWORK_UP = ("until ip link set eth0 up; do sleep 1; done; ip addr add 10.0.2.15/24 dev eth0;"
              " ip route add default via 10.0.2.2; echo MUX-NET-UP $? >/dev/ttyS0\n")


class TimedPanel(Panel):
    """A panel that also keeps when each message arrived (time.monotonic())."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, str]] = []

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.arrivals.append((time.monotonic(), message.topic.value))
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            async with self._heard:
                self.messages.append((message.topic.value, payload, bool(message.retain)))
                self.latest[message.topic.value] = payload
                self._heard.notify_all()

    def per_second(self, topic: str, since: float, until: float) -> list[int]:
        """Messages on ``topic`` in each whole second from ``since`` to ``until``."""
        buckets = [0] * max(1, int(until - since))
        for when, heard in self.arrivals:
            if heard == topic and since <= when < since + len(buckets):
                buckets[int(when - since)] += 1
        return buckets


class LineCounter:
    """Counts the lines of one persona's serial port that match each pattern, after a mark."""

    def __init__(self, patterns: dict[str, str]) -> None:
        self.patterns = {name: re.compile(p) for name, p in patterns.items()}
        self.counts = dict.fromkeys(patterns, 0)
        self.counting = False
        self.samples: dict[str, list[str]] = {name: [] for name in patterns}

    def __call__(self, line: str, when: float) -> None:
        if not self.counting:
            return
        for name, pattern in self.patterns.items():
            if pattern.search(line):
                self.counts[name] += 1
                if len(self.samples[name]) < 5:
                    self.samples[name].append(line)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def dominant(image: Any) -> tuple[int, int, int]:
    colors = image.convert("RGB").getcolors(1 << 22)
    assert colors
    return tuple(max(colors)[1])  # type: ignore[return-value]


def near(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def keys_in(text: str) -> list[tuple[int, int]]:
    return [(int(c), int(v)) for c, v in re.findall(r"MUX-KEY (\d+) (\d+)", text)]


async def mux_logs(*args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mux", "logs", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")
    return out


@pytest.mark.timeout(900)
async def test_a_hostile_background_persona_leaves_the_active_one_and_the_host_alone(
        controller: Any, broker: Any, tmp_path: Path) -> None:
    sink = RecordingSink()
    home_lines = LineCounter({
        "key": r"MUX-KEY \d+ \d+", "wget": r"MUX-WGET \d+", "wget_ok": r"MUX-WGET 0\b",
        "attention": r"MUX-ATTENTION", "escape": "\x1b\\]0;pwned", "led": r"MUX-LED "})
    mqtt = MqttSection(url=broker.url, node_id="hostile", screenshot_interval_s=5.0)
    async with Counter("127.0.0.1", "host-loopback") as listener, \
            TimedPanel(broker).connected("mux/#") as panel, \
            controller(PersonaConfig("work", color="c03030"),
                       PersonaConfig("home", color="3060c0", network="user"), mqtt=mqtt) as ctl:
        ctl.add_led_sink(sink)
        work, home = ctl.persona("work"), ctl.persona("home")
        home.serial.line_listeners.append(home_lines)
        await asyncio.gather(*(p.serial.wait_for(re.compile(f"MUX-READY {p.name}"), READY_S, start=0)
                               for p in (work, home)))
        assert ctl.active == "work"
        runner = StepRunner(ctl)

        # home, while active: its network up, then the flood started in the background
        await ctl.switch("home", "test")
        await runner.step_type({"text": NETWORK_UP})
        await home.serial.wait_for(re.compile("MUX-NET-UP 0"), READY_S, start=0)
        mark = home.serial.end
        await runner.step_type({"text": FLOOD.format(port=listener.port, seconds=FLOOD_S)})
        await home.serial.wait_for(re.compile("MUX-FLOOD start"), 60, start=mark)
        # home's key reports lag behind its flood: the typed line's last key (Enter's
        # release) is reported before the switch, so any key home reports later came after it
        await home.serial.wait_for(re.compile("MUX-KEY 28 0"), 60, start=mark)

        # work active: everything from here on is home in the background
        await ctl.switch("work", "test")
        home_lines.counting = True
        await asyncio.sleep(1.0)  # the switch's own LED write settles
        writes_at_start = len(sink.writes)
        rss_start = rss_mib()
        t0 = time.monotonic()
        rss: list[float] = []
        work_keys_sent = work_keys_seen = 0
        colours: list[tuple[int, int, int]] = []
        presented: set[str] = set()
        while time.monotonic() - t0 < FLOOD_S:
            # keys typed into work (through the router, as a physical keyboard's): work sees them
            mark_work = work.serial.end
            for value in (1, 0):
                await ctl.input([InputEvent(EV_KEY, KEY_Z, value), SYN])
            work_keys_sent += 1
            await work.serial.wait_for(re.compile(f"MUX-KEY {KEY_Z} 0"), 30, start=mark_work,
                                       move_cursor=False)
            assert keys_in(work.serial.since(mark_work)) == [(KEY_Z, 1), (KEY_Z, 0)]
            work_keys_seen += 1
            colours.append(dominant(await ctl.screenshot("work")))
            current = getattr(ctl.output, "_current", None)  # HeadlessOutput: (name, frame)
            if current:
                presented.add(current[0])
            rss.append(rss_mib())
            await asyncio.sleep(1.0)
        t1 = time.monotonic()
        flood_writes = sink.writes[writes_at_start:]
        await home.serial.wait_for(re.compile("MUX-FLOOD end"), 60, start=mark)
        await asyncio.sleep(1.0)  # the last coalesced LED change and MQTT messages arrive
        home_lines.counting = False

        # positive control: caps lock pressed in work does reach the physical keyboard
        before = len(sink.writes)
        await runner.step_press({"keys": "capslock"})
        deadline = time.monotonic() + 20
        while not any(w.caps for w in sink.writes[before:]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        caps_writes = sink.writes[before:]
        await runner.step_press({"keys": "capslock"})
        home_colour = dominant(await ctl.screenshot("home"))
        home_leds = ctl.leds("home")
        kept_lines = len(getattr(ctl.taglog, "_recent", ()))  # for the report: mux logs' bounded memory

        # positive control: the listener works, reached from the host itself
        guest_accepted = listener.count
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        await reader.read()
        writer.close()
        await asyncio.sleep(0.2)
        host_accepted = listener.count - guest_accepted

    logs_dir = tmp_path / "logs"
    escaped, raw = await mux_logs("--from", str(logs_dir)), await mux_logs("--from", str(logs_dir), "--raw")

    seconds = t1 - t0
    led_topic, attention_topic = "mux/hostile/persona/home/leds", "mux/hostile/persona/home/attention"
    rates = {topic: panel.per_second(topic, t0, t1)
             for topic in (led_topic, attention_topic, "mux/hostile/event", "mux/hostile/persona/work/leds")}
    growth = max(rss) - rss_start
    print(f"\nhostile persona, {seconds:.0f} s of flood with work active:")
    print(f"  controller RSS: {rss_start:.1f} MiB at the start, max {max(rss):.1f}, end {rss[-1]:.1f}:"
          f" growth {growth:+.1f} MiB; every 10 s: {[round(r) for r in rss[::10]]};"
          f" serial lines kept in memory for mux logs: {kept_lines}")
    for topic, buckets in rates.items():
        print(f"  MQTT {topic}: {sum(buckets)} messages, max {max(buckets)}/s,"
              f" mean {sum(buckets) / len(buckets):.1f}/s")
    print(f"  home's guest: {home_lines.counts['led']} MUX-LED lines (LED changes it made),"
          f" {home_lines.counts['attention']} attention requests, {home_lines.counts['escape']}"
          f" escape lines, {home_lines.counts['wget']} wget attempts ({home_lines.counts['wget_ok']}"
          f" succeeded), {home_lines.counts['key']} MUX-KEY lines")
    print(f"  physical keyboard LED writes during the flood: {len(flood_writes)}"
          f" ({len(flood_writes) / seconds:.2f}/s); after caps lock in work: {len(caps_writes)}")
    print(f"  host loopback listener: {guest_accepted} connections accepted from the guest,"
          f" {host_accepted} from the host (positive control)")
    print(f"  keys typed into work: {work_keys_sent}, seen by work: {work_keys_seen};"
          f" work's colours {sorted(set(colours))}, presented {presented}; home's colour {home_colour}")
    esc, bel = b"\x1b", b"\x07"
    print(f"  mux logs --from: {len(escaped)} bytes, ESC {escaped.count(esc)}, BEL {escaped.count(bel)};"
          f" --raw: ESC {raw.count(esc)}, BEL {raw.count(bel)}")

    # the flood did happen (else every bound below is trivially met)
    assert home_lines.counts["led"] > 100 and home_lines.counts["escape"] > 100, home_lines.counts
    assert home_lines.counts["attention"] > 10 and home_lines.counts["wget"] > 5, home_lines.counts
    assert home_leds is not None
    # work is unaffected: its keys arrive there and none in home; its picture stays its own
    assert work_keys_seen == work_keys_sent > 10
    assert "z" not in FLOOD + NETWORK_UP
    assert home_lines.counts["key"] == 0, home_lines.samples["key"]
    assert all(near(c, WORK_RGB) for c in colours), colours
    assert near(home_colour, HOME_RGB), home_colour  # the other colour is told apart
    assert presented <= {"work"}, presented
    # the physical keyboard follows work only
    assert flood_writes == [], flood_writes[:20]
    assert any(w == Leds(True, False, False) for w in caps_writes), caps_writes
    # mux's own memory stays bounded
    assert growth < RSS_GROWTH_MAX_MIB, rss
    # MQTT: home's LEDs within LED_RATE a second (one more for a burst's last value)
    assert max(rates[led_topic]) <= LED_RATE + 1, rates[led_topic]
    assert sum(rates[led_topic]) > 0  # and they are published at all
    # ... and its attention requests within ATTENTION_RATE (each is also one `event` message)
    assert max(rates[attention_topic]) <= ATTENTION_RATE + 1, rates[attention_topic]
    assert max(rates["mux/hostile/event"]) <= ATTENTION_RATE + 1, rates["mux/hostile/event"]
    assert sum(rates[attention_topic]) > 0
    # the logs show the escapes made visible, never as bytes; --raw as written
    assert b"\x1b" not in escaped and b"\x07" not in escaped
    assert b"\\x1b]0;pwned\\x07" in escaped
    assert b"\x1b]0;pwned\x07\x1b]52;c;cHduZWQ=\x07\x1b[2A" in raw
    # the host's loopback is out of the guest's reach; the listener itself works
    assert guest_accepted == 0 and home_lines.counts["wget_ok"] == 0
    assert host_accepted == 1
