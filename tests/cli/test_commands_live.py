"""Documented commands run as a user runs them, as real processes: ``mux images build``
into an empty cache, ``mux bench --only``, ``mux down`` without a config, a second
``mux run`` of a running config, and the control socket's permissions.

Each expectation comes from the docs (docs/reference/cli.md, bench.md, the guides
running.md and images.md); the guests are real console guests under TCG.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from mux.guest.record import start_ticks
from mux.images import archive
from tests.app.test_keep_guests import MUX, Run, all_running, home, mux, status, wait_for
from tests.conftest import READY_S, SESSION_DIR, session_qemus

DOCS = Path(__file__).parent.parent.parent / "docs"
__all__ = ["home"]  # the fixture, shared with tests/app/test_keep_guests.py


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- mux images build ------------------------------------------------------------------------


def private_cache(tmp_path: Path) -> Path:
    """An image cache with no image in it, holding only the verified package index and the
    ``.deb`` files this machine fetched before (``MUX_CACHE_DIR`` keeps all three in one
    place): a build there is a real build, with no download."""
    shared = archive.cache_home()
    suite = archive.source().suite
    cache = tmp_path / "cache"
    index = cache / "debian" / suite
    index.mkdir(parents=True)
    for each in (shared / "debian" / suite).iterdir():
        shutil.copy2(each, index / each.name)
    os.utime(index / "InRelease")  # fresh: nothing asks the mirror for a newer one
    (cache / "debs").mkdir()
    for deb in (shared / "debs").glob("*.deb"):
        try:
            os.link(deb, cache / "debs" / deb.name)
        except OSError:
            shutil.copy2(deb, cache / "debs" / deb.name)
    return cache


@pytest.mark.guests  # builds the palette image (seconds of CPU): with the images' tier
def test_images_build_builds_into_the_cache_then_hits_it_and_an_unknown_name_exits_2(
        tmp_path: Path) -> None:
    cache = private_cache(tmp_path)
    # Offline: a mirror nothing listens on, so nothing here can be downloaded.
    env = {**os.environ, "MUX_CACHE_DIR": str(cache), "MUX_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}

    listed = mux("images", "list", env=env)
    assert listed.returncode == 0 and re.search(r"^palette\s+not built$", listed.stdout, re.M), listed

    first = mux("images", "build", "palette", env=env)
    assert first.returncode == 0, first.stderr
    built = re.search(r"^palette: (\S+)$", first.stdout, re.M)
    assert built, first.stdout
    entry = Path(built.group(1))
    assert entry.parent == cache and re.fullmatch(r"palette-[0-9a-f]{16}", entry.name), entry
    progress = [line for line in first.stdout.splitlines() if "palette" in line and line != built.group(0)]
    assert len(progress) >= 2, first.stdout  # it says what it does (unpacking, packing...)
    assert "downloading" not in first.stdout  # from the cache, as the list said: not built before
    meta = json.loads((entry / "image.json").read_text())
    for name in ("vmlinuz", "initrd.img"):
        assert sha256(entry / name) in json.dumps(meta), f"image.json records no SHA256 of {name}"
    # Reproducible (images.md): byte for byte the build in this machine's own cache, if any.
    own = Path.home() / ".cache" / "mux" / "images" / entry.name
    if (own / "initrd.img").is_file():
        assert sha256(own / "initrd.img") == sha256(entry / "initrd.img")

    before = {name: (entry / name).stat() for name in ("vmlinuz", "initrd.img", "image.json")}
    second = mux("images", "build", "palette", env=env)
    assert second.returncode == 0, second.stderr
    assert f"palette: {entry}\n" in second.stdout, second.stdout
    for name, was in before.items():
        now = (entry / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (was.st_ino, was.st_mtime_ns), f"{name} was built again"
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith("palette-")) == [entry.name]
    listed = mux("images", "list", env=env)
    assert re.search(rf"^palette\s+built at {re.escape(str(entry))}$", listed.stdout, re.M), listed.stdout

    unknown = mux("images", "build", "nosuch", env=env)
    assert unknown.returncode == 2 and "'nosuch'" in unknown.stderr, unknown.stderr
    assert "palette" in unknown.stderr  # it names the images there are


# --- mux bench ---------------------------------------------------------------------------


def documented_bench_keys(part: str) -> set[str]:
    """The JSON keys docs/reference/bench.md gives for one part of ``mux bench``."""
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|", (DOCS / "reference" / "bench.md").read_text(), re.M)
    return {key for key, each in rows if each == part}


@pytest.mark.guests
def test_bench_only_one_figure_runs_its_part_and_reports_its_documented_keys(tmp_path: Path) -> None:
    expected = documented_bench_keys("mqtt")
    assert "mqtt_switch_latency_ms" in expected and len(expected) == 3, expected
    out = tmp_path / "bench.json"
    result = subprocess.run([*MUX, "bench", "--only", "mqtt_switch_latency_ms", "--json", str(out)],
                            capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == expected, figures  # its whole part, and no other part
    for key in expected:  # and printed
        assert re.search(rf"^{key}\b", result.stdout, re.M), f"{key} not printed:\n{result.stdout}"
    for key in ("mqtt_switch_latency_ms", "mqtt_roundtrip_ms"):  # {p50, p99, n} in ms
        assert set(figures[key]) == {"p50", "p99", "n"} and 0 < figures[key]["p50"] <= figures[key]["p99"]
    ratio = figures["mqtt_switch_latency_ms"]["p99"] / figures["mqtt_roundtrip_ms"]["p50"]
    assert figures["mqtt_switch_latency_ratio"] == pytest.approx(ratio, rel=0.01)

    refused = subprocess.run([*MUX, "bench", "--only", "mqtt_switch_latency_ms,nonsense"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "nonsense" in refused.stderr
    assert "mqtt_switch_latency_ms" in refused.stderr  # the list of known keys


# --- mux down, a second mux run ------------------------------------------------------------


def one_persona_config(directory: Path, state: Path, name: str) -> tuple[Path, Path]:
    """A config of one console persona, its guests kept (``on-crash``, the default)."""
    directory.mkdir()
    sock, config = directory / "c.sock", directory / "c.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{state}"\ncontrol_socket = "{sock}"\n'
                      f'[[persona]]\nname = "{name}"\n')
    return config, sock


@pytest.mark.guests
def test_down_without_a_config_stops_every_configs_kept_guests(
        tmp_path: Path, home: tuple[Path, dict[str, str]], console_image: Any) -> None:
    state, env = home
    pids: dict[str, int] = {}
    for name in ("work", "play"):
        config, sock = one_persona_config(tmp_path / name, state, name)
        run = Run(config, env, tmp_path / f"{name}.log")
        try:
            got = wait_for(all_running(sock, env, run), READY_S, f"{name}'s guest running")
            pids[name] = got["personas"][0]["pid"]
            run.kill()  # SIGKILL: the guest runs on (on-crash)
        finally:
            run.stop()
    assert all(start_ticks(pid) is not None for pid in pids.values()), "a guest died with its controller"
    listed = mux("ps", env=env).stdout
    assert all(f" {pid} " in listed for pid in pids.values()), listed
    assert set(session_qemus([str(state)])) == set(pids.values())

    down = mux("down", env=env)
    assert down.returncode == 0, down.stderr
    wait_for(lambda: all(start_ticks(pid) is None for pid in pids.values()), 30, "both QEMUs to be gone")
    assert session_qemus([str(state)]) == {}
    assert list((state / "mux" / "guests").iterdir()) == []  # their state directories removed
    assert mux("ps", env=env).stdout.count("\n") == 1  # the header alone


@pytest.mark.guests
def test_a_second_run_of_a_running_config_is_refused_and_the_first_runs_on(
        tmp_path: Path, home: tuple[Path, dict[str, str]], console_image: Any) -> None:
    state, env = home
    config, sock = one_persona_config(tmp_path / "c", state, "work")
    first = Run(config, env, tmp_path / "first.log")
    try:
        got = wait_for(all_running(sock, env, first), READY_S, "the first controller's guest")
        pid = got["personas"][0]["pid"]
        second = subprocess.run([*MUX, "run", "--for", "60", str(config)], capture_output=True,
                                text=True, timeout=300, env=env)
        assert second.returncode == 1, second.stdout + second.stderr  # could not be carried out
        assert str(config) in second.stderr and f"pid {first.proc.pid}" in second.stderr, second.stderr
        assert first.proc.poll() is None, first.output()
        again = status(sock, env)  # the first still answers, with the same guest
        assert again is not None and again["personas"][0]["pid"] == pid, again
        assert again["personas"][0]["state"] == "running" and start_ticks(pid) is not None
        assert set(session_qemus([str(state)])) == {pid}  # the second started no QEMU
    finally:
        first.stop()
    assert first.proc.returncode == 0, first.output()


# --- the control socket ------------------------------------------------------------------


@pytest.mark.services
def test_the_control_socket_is_0600_in_a_0700_directory_whatever_the_umask(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(dir=SESSION_DIR))
    base.chmod(0o755)  # so a 0700 below it is mux's doing
    env = {**os.environ, "XDG_RUNTIME_DIR": str(base), "XDG_STATE_HOME": str(tmp_path / "state")}
    config = tmp_path / "c.toml"  # no control_socket, no runtime_dir: the defaults
    config.write_text('[mux]\naccel = "tcg"\nkeep_guests = "never"\n'
                      '[[persona]]\nname = "work"\nautostart = false\n')
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        run = subprocess.Popen([*MUX, "run", str(config)], stdout=out, stderr=subprocess.STDOUT,
                               env=env, umask=0)  # every file it makes would be 0666/0777 by itself
    try:
        def answering() -> dict[str, Any] | None:
            assert run.poll() is None, log.read_text()
            result = mux("ctl", "status", env=env)  # no --socket: the documented default
            return json.loads(result.stdout) if result.returncode == 0 else None

        got = wait_for(answering, 120, "the controller's control socket")
        sock = base / f"mux-{os.getuid()}" / "control.sock"
        mode = sock.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, oct(mode)
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700, oct(sock.parent.stat().st_mode)
        runtime = Path(got["runtime_dir"])
        assert runtime.parent == base and runtime.name.startswith("mux-")
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0, log.read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(30)
    assert not runtime.exists(), "the runtime directory outlived its controller"
