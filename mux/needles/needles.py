"""openQA needles, one import away: loading (:mod:`mux.needles.loader`), the needle
model (:mod:`mux.needles.model`) and matching (:mod:`mux.needles.match`)."""

from mux.needles.loader import NeedleLibrary, load_needle, read_needle
from mux.needles.match import (
    AreaResult,
    NeedleMatch,
    Screen,
    SearchResult,
    best_match,
    match_needle,
    prep,
    search,
    search_margin,
)
from mux.needles.model import EXCLUDED, Area, ClickPoint, Needle, NeedleImageMissing

__all__ = ["EXCLUDED", "Area", "AreaResult", "ClickPoint", "Needle", "NeedleImageMissing", "NeedleLibrary",
           "NeedleMatch", "Screen", "SearchResult", "best_match", "load_needle", "match_needle", "prep",
           "read_needle", "search", "search_margin"]
