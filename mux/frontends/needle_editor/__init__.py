"""``mux needle edit``: an SDL window to draw and tune a needle's areas.

Parts, from the pure core out: :mod:`.area` (one area, openQA's JSON for it, the
window-to-picture mapping), :mod:`.model` (the editor's state: areas, selection,
drags, typed entries, undo; the needle's JSON), :mod:`.bindings` (keys and toolbar buttons
as commands on the model), :mod:`.live` (the persona's screen through the control
socket, matched in a thread), :mod:`.view` (the pygame window) and :mod:`.app` (files
in and out, the wiring). Importing this package imports none of them.
"""
