#!/usr/bin/env python3
"""Generate the reference pages of the docs site from the code: docs/reference/*.md and
the JSON Schemas in docs/reference/schema/ (see mux/reference/).

    tools/gen_docs.py            write every generated page that changed
    tools/gen_docs.py --check    write nothing; exit 1 naming the pages that are stale

Run it after changing the config schema, the step table, the MQTT topics or entities,
the command line or the bench's figures; the tests fail while a page is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mux.reference.common import UndocumentedError  # noqa: E402 - after the path is set
from mux.reference.pages import pages  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is stale")
    parser.add_argument("--docs", type=Path, default=REPO / "docs",
                        help="the docs directory (default: docs/)")
    args = parser.parse_args(argv)
    try:
        generated = pages()
    except UndocumentedError as exc:
        print(f"gen_docs: {exc}", file=sys.stderr)
        return 1
    stale = []
    for relative, text in generated.items():
        path = args.docs / relative
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"gen_docs: stale: {', '.join(stale)} (run tools/gen_docs.py)", file=sys.stderr)
        return 1
    for relative in stale:
        print(f"gen_docs: wrote docs/{relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
