"""``mux ctl switch --seat`` and ``{"cmd": "switch", "seat": ...}`` on the control socket.

Pure: a stand-in controller with two seats behind the real control socket and the real
``mux ctl`` (in this process): the seat reaches the controller, an unknown seat is refused
naming the seats (the controller is not asked), a refused switch's SeatError message is
the reply, a request without ``seat`` is the first seat's as before seats, and ``--seat``
over MQTT is refused with exit code 2 before any broker is asked.

Live: the same through a real controller on console guests (two ``[[seat]]`` tables),
``mux ctl`` run as a process: seat two switches, seat one keeps its persona, ``ctl status``
lists both seats, and a switch to a persona active on the other seat exits 1 with why.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mux.cli import main
from mux.config import PersonaConfig, SeatSection
from mux.errors import SeatError, UnknownPersona
from mux.frontends import control


class TwoSeats:
    """What the control socket asks of a controller with seats ``one`` and ``two``."""

    names = ("work", "home", "lab")
    seats: Sequence[str] = ("one", "two")

    def __init__(self) -> None:
        self.shown: dict[str, str | None] = {"one": "work", "two": "home"}
        self.asked: list[tuple[str, str, str | None]] = []

    @property
    def active(self) -> str | None:
        return self.shown["one"]

    def status(self) -> dict[str, Any]:
        return {"active": self.active, "seats": [
            {"name": s, "active": self.shown[s], "output": "headless",
             "personas": list(self.names if s == "one" else ("home", "lab"))} for s in self.seats]}

    async def switch(self, target: str, source: str, seat: str | None = None) -> str:
        self.asked.append((target, source, seat))
        where = seat or "one"
        if target not in self.names:
            raise UnknownPersona(target, self.names)
        other = next((s for s, p in self.shown.items() if p == target and s != where), None)
        if other is not None:
            raise SeatError(f"persona {target!r} is active on seat {other!r} (switch that seat away first,"
                            " or set [mux] steal = true)")
        self.shown[where] = target
        return target


@pytest.mark.pure
async def test_the_seat_reaches_the_controller_and_an_unknown_one_is_refused_naming_the_seats(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api, sock = TwoSeats(), tmp_path / "control.sock"
    async with control.ControlServer(sock).serve(api):  # type: ignore[arg-type]
        def ask(message: dict[str, Any]) -> dict[str, Any]:
            return control.request(sock, message)

        def ctl(*args: str) -> int:
            return main(["ctl", "--socket", str(sock), *args])

        assert await asyncio.to_thread(ask, {"cmd": "switch", "persona": "lab", "seat": "two"}) == {
            "ok": True, "active": "lab", "seat": "two"}
        assert api.asked[-1] == ("lab", "control socket", "two")
        assert api.shown == {"one": "work", "two": "lab"}
        # no seat: the first seat, as before seats (and the reply as before: no seat in it)
        reply = await asyncio.to_thread(ask, {"cmd": "switch", "persona": "home"})
        assert reply == {"ok": True, "active": "home"}
        assert api.asked[-1] == ("home", "control socket", None)
        asked = len(api.asked)
        for seat in ("three", 2, ""):
            reply = await asyncio.to_thread(ask, {"cmd": "switch", "persona": "lab", "seat": seat})
            assert reply == {"ok": False, "error": f"switch: unknown seat {seat!r} (seats: one, two)"}
        assert len(api.asked) == asked  # refused before the controller was asked
        # the command line: prints the seat's new active persona
        capsys.readouterr()
        assert api.shown == {"one": "home", "two": "lab"}
        assert await asyncio.to_thread(ctl, "switch", "--seat", "two", "home") == 1  # home is seat one's
        assert "persona 'home' is active on seat 'one'" in capsys.readouterr().err
        assert await asyncio.to_thread(ctl, "switch", "lab", "--seat", "one") == 1
        assert "persona 'lab' is active on seat 'two'" in capsys.readouterr().err
        assert api.shown == {"one": "home", "two": "lab"}
        assert await asyncio.to_thread(ctl, "switch", "work") == 0
        assert capsys.readouterr().out == "work\n"
        assert await asyncio.to_thread(ctl, "switch", "--seat", "two", "home") == 0
        assert capsys.readouterr().out == "home\n" and api.shown == {"one": "work", "two": "home"}
        assert await asyncio.to_thread(ctl, "switch", "--seat", "garden", "home") == 1
        assert "unknown seat 'garden' (seats: one, two)" in capsys.readouterr().err
        assert await asyncio.to_thread(ctl, "status") == 0
        seats = json.loads(capsys.readouterr().out)["seats"]
        assert [(s["name"], s["active"]) for s in seats] == [("one", "work"), ("two", "home")]


@pytest.mark.pure
def test_seat_over_mqtt_is_refused_with_exit_code_2_not_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    # port 9 on loopback: nothing is asked (a broker would have to answer there otherwise)
    code = main(["ctl", "--mqtt", "mqtt://127.0.0.1:9", "--node", "n1", "switch", "--seat", "two", "lab"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--seat works only over the control socket" in err and "seat/two/active/set" in err


def mux_ctl(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", "ctl", "--socket", str(sock), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.guests
async def test_mux_ctl_switches_seat_two_of_a_running_controller(tmp_path: Path, controller: Any) -> None:
    seats = (SeatSection(name="one"), SeatSection(name="two", personas=("home", "lab")))
    personas = (PersonaConfig("work"), PersonaConfig("home"), PersonaConfig("lab"))
    async with controller(*personas, seats=seats) as ctl:
        await asyncio.gather(*(p.serial.wait_for(re.compile(f"MUX-READY {p.name}"), 120, start=0)
                               for p in ctl.personas.values()))
        sock = ctl.config.mux.control_socket
        await ctl.switch("work", "test", "one")
        await ctl.switch("home", "test", "two")
        done = await asyncio.to_thread(mux_ctl, sock, "switch", "--seat", "two", "lab")
        assert (done.returncode, done.stdout) == (0, "lab\n"), done.stderr
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("work", "lab")
        # seat two's output presents lab; seat one's still work
        assert ctl.output_of("two").current_frame()[0] == "lab"
        assert ctl.output_of("one").current_frame()[0] == "work"
        refused = await asyncio.to_thread(mux_ctl, sock, "switch", "--seat", "one", "lab")
        assert refused.returncode == 1 and "persona 'lab' is active on seat 'two'" in refused.stderr
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("work", "lab")
        unknown = await asyncio.to_thread(mux_ctl, sock, "switch", "--seat", "three", "lab")
        assert unknown.returncode == 1 and "unknown seat 'three' (seats: one, two)" in unknown.stderr
        status = await asyncio.to_thread(mux_ctl, sock, "status")
        assert status.returncode == 0, status.stderr
        listed = json.loads(status.stdout)["seats"]
        assert [(s["name"], s["active"], s["personas"]) for s in listed] == [
            ("one", "work", ["work", "home", "lab"]), ("two", "lab", ["home", "lab"])]
