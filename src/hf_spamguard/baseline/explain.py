"""Reasons that name the evidence: the brands, keyword block and hashtags a listing's verdict rests on.

Pure Python over the lexicon (:mod:`hf_spamguard.baseline.lexicon`), no model needed: the baseline's
verdicts (:meth:`~hf_spamguard.baseline.BaselineClassifier.explain`) and the reasons of the listing
model's training data (:mod:`hf_spamguard.training.formatting`) use the same wording.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from hf_spamguard.baseline.lexicon import BRAND_BIGRAM_SET, BRAND_SET, MARKER_RE, tokens


def _brands_in(words: list[str]) -> list[str]:
    """Brand mentions in order, a two-word brand taking precedence over its first word alone."""
    found: list[str] = []
    i = 0
    while i < len(words):
        pair = f"{words[i]} {words[i + 1]}" if i + 1 < len(words) else ""
        if pair in BRAND_BIGRAM_SET:
            found.append(pair)
            i += 2
            continue
        if words[i] in BRAND_SET:
            found.append(words[i])
        i += 1
    return found


def _unique(items: Iterable[str]) -> list[str]:
    """``items`` without repeats, first occurrences in order."""
    return list(dict.fromkeys(items))


def _listing(items: list[str], k: int = 3) -> str:
    """The first ``k`` items joined by commas, with an ellipsis when there are more."""
    return ", ".join(items[:k]) + (", …" if len(items) > k else "")


def describe_evidence(text: str) -> dict[str, Any]:
    """Keyword-stuffing evidence in one listing: the first keyword-block marker (``"tags:"``) and its word,
    the distinct brands (all, and after the marker), the distinct terms after the marker, the distinct
    hashtags (without ``#``) and the number of tokens."""
    low = (text or "").lower()
    marker = MARKER_RE.search(low)
    words = tokens(low)
    brands = _unique(_brands_in(words))
    after_text = low[marker.end() :] if marker else ""
    after_tokens = tokens(after_text)
    hashtags = _unique(re.findall(r"#([a-z0-9_]+)", low))
    return {
        "marker": (marker.group(0).strip() if marker else None),
        "marker_word": (marker.group(1) if marker else None),
        "brands": brands,
        "brands_after_marker": _unique(_brands_in(after_tokens)),
        "terms_after_marker": _unique(after_tokens),
        "hashtags": hashtags,
        "n_tokens": len(words),
    }


def reason_for(text: str, confidence: float, top_terms: Sequence[str] = ()) -> str:
    """A one-line reason naming the evidence behind ``confidence`` (the spam probability)."""
    ev = describe_evidence(text)
    marker = ev["marker"]
    if marker and marker[-1] not in ":-":
        marker = marker.rstrip("=> ")
    if confidence >= 0.5:
        if ev["marker"] and len(ev["brands_after_marker"]) >= 2:
            b = ev["brands_after_marker"]
            return f"lists {len(b)} brands after '{marker}' ({_listing(b)})"
        if ev["marker"] and len(ev["terms_after_marker"]) >= 4:
            t = ev["terms_after_marker"]
            return f"keyword block of {len(t)} terms after '{marker}' ({_listing(t)})"
        if len(ev["brands"]) >= 3:
            return f"mentions {len(ev['brands'])} different brands ({_listing(ev['brands'])})"
        if len(ev["hashtags"]) >= 4:
            tags = ["#" + h for h in ev["hashtags"]]
            return f"{len(tags)} hashtags ({_listing(tags)})"
        if top_terms:
            return f"keyword-like terms: {_listing(list(top_terms), 4)}"
        return "wording typical of keyword-stuffed listings"
    if ev["brands"]:
        return f"reads as an item description; brands mentioned: {_listing(ev['brands'], 2)}"
    return "reads as an ordinary item description, no keyword list"


__all__ = ["describe_evidence", "reason_for"]
