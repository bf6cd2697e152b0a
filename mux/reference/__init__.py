"""The reference documentation, generated from the code it describes.

Each module here is a set of pure functions that read one part of mux and return
Markdown (or, for :mod:`mux.reference.jsonschema`, a JSON Schema as a dict): the config
keys from the schema's dataclasses (:mod:`mux.reference.config`), the scenario steps
from the step table (:mod:`mux.reference.steps`), the MQTT topics and Home Assistant
entities from the bridge's pure modules (:mod:`mux.reference.mqtt`), the command line
from its parser (:mod:`mux.reference.cli`) and the bench's figures
(:mod:`mux.reference.bench`). :func:`mux.reference.pages.pages` gathers them, and
``tools/gen_docs.py`` writes them into ``docs/reference/`` (``--check``: fails naming
the pages that are stale). A key, step, topic or figure the code has and the reference
cannot describe is an error (:class:`~mux.reference.common.UndocumentedError`), never a
silent gap.

This package reads everything and nothing imports it but the command line (``mux
schema``) and the tool: it sits beside :mod:`mux.cli` at the top of the layers.
"""
