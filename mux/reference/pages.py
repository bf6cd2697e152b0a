"""Every generated page of the docs site, path (under ``docs/``) -> its text.

``tools/gen_docs.py`` writes them, or with ``--check`` names those whose file differs;
the tests do the same. The JSON Schemas are published beside the reference pages so an
editor can point at them (``docs/reference/schema/``).
"""

from __future__ import annotations

import json

from mux.reference.bench import bench_page
from mux.reference.cli import cli_page
from mux.reference.config import config_page
from mux.reference.jsonschema import KINDS, json_schema
from mux.reference.mqtt import mqtt_page
from mux.reference.steps import steps_page


def pages() -> dict[str, str]:
    """The generated pages, in a stable order.

    Raises:
        UndocumentedError: something in the code that no page can describe.
    """
    found = {
        "reference/config.md": config_page(),
        "reference/scenario-steps.md": steps_page(),
        "reference/mqtt.md": mqtt_page(),
        "reference/cli.md": cli_page(),
        "reference/bench.md": bench_page(),
    }
    for kind in KINDS:
        found[f"reference/schema/{kind}.json"] = json.dumps(json_schema(kind), indent=2) + "\n"
    return found


def stale(docs: dict[str, str | None]) -> list[str]:
    """The generated pages whose current text (``docs``: path -> text, None if missing)
    is not what the code generates now."""
    return [path for path, text in pages().items() if docs.get(path) != text]
