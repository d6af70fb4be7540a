"""Reasons that name the evidence: the brands, keyword block and hashtags a listing's verdict rests on.

Pure Python over the lexicon (:mod:`hf_spamguard.baseline.lexicon`), no model needed: the baseline's
verdicts (:meth:`~hf_spamguard.baseline.BaselineClassifier.explain`) and the reasons of the listing
model's training data (:mod:`hf_spamguard.training.formatting`) use the same wording.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from hf_spamguard.baseline.lexicon import (
    BRAND_BIGRAM_SET,
    BRAND_SET,
    MARKER_RE,
    STOP_WORDS,
    TRIM_CHARS,
    brand_key,
    broad_marker_index,
    tokens,
)

#: A run of this many tokens with no stop word and no sentence end is named as a keyword list.
KEYWORD_RUN = 12
_SENTENCE_END = tuple(".!?:;)")


def _brands_in(words: list[str]) -> list[str]:
    """Brand mentions in order (as written, e.g. "h&m"), a two-word brand taking precedence over its first
    word alone; words are matched through :func:`~hf_spamguard.baseline.lexicon.brand_key`."""
    found: list[str] = []
    keys = [brand_key(w) for w in words]
    i = 0
    while i < len(words):
        pair = f"{keys[i]} {keys[i + 1]}" if i + 1 < len(words) else ""
        if pair in BRAND_BIGRAM_SET:
            found.append(f"{words[i]} {words[i + 1]}")
            i += 2
            continue
        if keys[i] in BRAND_SET:
            found.append(words[i])
        i += 1
    return found


def _unique(items: Iterable[str]) -> list[str]:
    """``items`` without repeats (brands compared by their lookup spelling), first occurrences in order."""
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(" ".join(brand_key(w) for w in item.split()), item)
    return list(seen.values())


def _listing(items: list[str], k: int = 3) -> str:
    """The first ``k`` items joined by commas, with an ellipsis when there are more."""
    return ", ".join(items[:k]) + (", …" if len(items) > k else "")


def _longest_run(low: str) -> list[str]:
    """The longest run of tokens with no stop word, cut after a token that ends a sentence (the
    featuriser's ``log_longest_run``)."""
    best: list[str] = []
    run: list[str] = []
    for piece in low.split():
        word = piece.strip(TRIM_CHARS)
        if not word:
            continue
        if word in STOP_WORDS:
            run = []
            continue
        run.append(word)
        if len(run) > len(best):
            best = list(run)
        if piece.endswith(_SENTENCE_END):
            run = []
    return best


def _broad_marker(words: list[str]) -> tuple[str, int] | None:
    """The broad marker's words as written (e.g. "tags for exposure" reads "for exposure") and the index
    of its last word, or None."""
    i = broad_marker_index(words)
    if i is None:
        return None
    if words[i] in ("exposure", "terms", "term"):
        return f"{words[i - 1]} {words[i]}", i
    return words[i], i


def describe_evidence(text: str) -> dict[str, Any]:
    """Keyword-stuffing evidence in one listing: the first keyword-block marker (``"tags:"``; else the
    broad one, e.g. ``"ignore"`` or ``"for exposure"``) and its word, the distinct brands (all, and after
    the marker), the distinct terms after the marker, the longest run of tokens with no stop word or
    sentence end (a keyword list without a marker), the distinct hashtags (without ``#``) and the number
    of tokens."""
    low = (text or "").lower()
    words = tokens(low)
    marker = MARKER_RE.search(low)
    if marker:
        marker_text, marker_word = marker.group(0).strip(), marker.group(1)
        after_tokens = tokens(low[marker.end() :])
    elif broad := _broad_marker(words):
        marker_text, marker_word = broad[0], broad[0]
        after_tokens = words[broad[1] + 1 :]
    else:
        marker_text = marker_word = None
        after_tokens = []
    return {
        "marker": marker_text,
        "marker_word": marker_word,
        "marker_kind": "strict" if marker else ("broad" if marker_text else None),
        "brands": _unique(_brands_in(words)),
        "brands_after_marker": _unique(_brands_in(after_tokens)),
        "terms_after_marker": list(dict.fromkeys(after_tokens)),
        "keyword_run": _longest_run(low),
        "hashtags": list(dict.fromkeys(re.findall(r"#([a-z0-9_]+)", low))),
        "n_tokens": len(words),
    }


def reason_for(text: str, confidence: float, top_terms: Sequence[str] = ()) -> str:
    """A one-line reason naming the evidence behind ``confidence`` (the spam probability).

    A listing judged clean that still has a keyword block or a long keyword run says so ("... though it
    has a keyword block after 'ignore:' (h&m, jumper, sweater, …)") instead of claiming there is none.
    """
    ev = describe_evidence(text)
    marker = ev["marker"]
    if marker and marker[-1] not in ":-":
        marker = marker.rstrip("=> ")
    run = ev["keyword_run"] if len(ev["keyword_run"]) >= KEYWORD_RUN else []
    terms = ev["terms_after_marker"]
    if confidence >= 0.5:
        if marker and len(ev["brands_after_marker"]) >= 2:
            b = ev["brands_after_marker"]
            return f"lists {len(b)} brands after '{marker}' ({_listing(b)})"
        if marker and len(terms) >= 4:
            return f"keyword block of {len(terms)} terms after '{marker}' ({_listing(terms)})"
        if len(ev["brands"]) >= 3:
            return f"mentions {len(ev['brands'])} different brands ({_listing(ev['brands'])})"
        if len(ev["hashtags"]) >= 4:
            tags = ["#" + h for h in ev["hashtags"]]
            return f"{len(tags)} hashtags ({_listing(tags)})"
        if run:
            return f"a list of {len(run)} terms with no sentence around them ({_listing(run)})"
        if top_terms:
            return f"keyword-like terms: {_listing(list(top_terms), 4)}"
        return "wording typical of keyword-stuffed listings"
    if marker and len(terms) >= 4:
        return f"reads as an item description, though it has a keyword block after '{marker}' ({_listing(terms)})"
    if run:
        return f"reads as an item description, though it lists {len(run)} terms in a row ({_listing(run)})"
    if ev["brands"]:
        return f"reads as an item description; brands mentioned: {_listing(ev['brands'], 2)}"
    return "reads as an ordinary item description, no keyword list"


__all__ = ["KEYWORD_RUN", "describe_evidence", "reason_for"]
