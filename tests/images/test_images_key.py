"""``mux images key``, run as a CI job runs it: one key for the default images' cache
entries, which changes when any of their keys does (docs/guides/images.md, ci.md).

The key is checked against the cache itself: each built image's directory is named
after its own key (``<cache>/<name>-<key>``, as ``mux images list`` prints), so the
images' key must follow from those names, and naming images changes it."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.services

MUX = [sys.executable, "-m", "mux"]


def mux(*args: str) -> str:
    result = subprocess.run([*MUX, *args], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def entry_keys() -> dict[str, str]:
    """Each built image's own key, from the directory ``mux images list`` names."""
    keys = {}
    for line in mux("images", "list").splitlines():
        if match := re.fullmatch(r"(\w+)\s+built at .*/(\w+)-([0-9a-f]{16})", line.strip()):
            assert match[1] == match[2], line
            keys[match[1]] = match[3]
    return keys


def test_the_key_follows_the_cache_entries_of_the_images_it_names() -> None:
    mux("images", "build")  # the default images: console and palette (docs/guides/images.md)
    keys = entry_keys()
    assert {"console", "palette"} <= keys.keys()

    default = mux("images", "key").strip()
    assert re.fullmatch(r"[0-9a-f]{16}", default), default
    assert mux("images", "key").strip() == default  # the same cache, the same key

    def expected(*names: str) -> str:
        text = "".join(f"{name}={keys[name]}\n" for name in names)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    assert default == expected("console", "palette")
    assert mux("images", "key", "console", "palette").strip() == default
    console_only = mux("images", "key", "console").strip()
    assert console_only == expected("console") != default


def test_an_unknown_image_is_an_error_naming_it() -> None:
    result = subprocess.run([*MUX, "images", "key", "nosuch"], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode != 0 and "nosuch" in result.stderr
    assert result.stdout == ""
