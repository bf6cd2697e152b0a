"""Running the host tools the image builders use (mmdebstrap, mtools, mke2fs, ...):
one wrapper that turns a failure into an ImageError carrying the tool's own words."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from mux.errors import ImageError


def run(argv: list[str], what: str, cwd: Path | None = None,
        env: Mapping[str, str] | None = None) -> str:
    """Run ``argv``; its stdout. Raises ImageError when it cannot start or fails (exit
    code, command line and the end of its stderr, else stdout)."""
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                              env={**os.environ, **env} if env else None)
    except OSError as exc:
        raise ImageError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise ImageError(
            f"{what} failed (exit code {proc.returncode}): {' '.join(argv)}\n"
            f"{(proc.stderr.strip() or proc.stdout.strip())[-4000:]}"
        )
    return proc.stdout
