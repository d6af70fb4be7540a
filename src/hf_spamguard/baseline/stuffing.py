"""Keyword-stuffing features of a chunk of listings, vectorised (:data:`STUFFING_FEATURES`, in order).

What they measure, beyond the n-grams: length; hashtags; the strict keyword-block marker ("tags:",
"ignore -") and the broad one (:func:`~hf_spamguard.baseline.lexicon.broad_marker_index`: "IGNORE pink
...", "tags for exposure", "tags~~~"), with the tokens and brands after them; brand mentions (spelled
through :func:`~hf_spamguard.baseline.lexicon.brand_key`, so "H&M" and "Levi’s" count), their density and
how many sit in the last 40% of the text; keyword lists without any marker: the share of stop words
(overall and in the last 30 tokens), the longest run of tokens with no stop word and no sentence end, the
last such run, the share of tokens in runs of 8 or more; short comma / slash / hashtag / line separated
items; distinct style words and garment categories; punctuation and capitals.

Everything is computed per distinct token of the chunk (Arrow's dictionary) and then by token position
(``bincount`` / ``reduceat`` over document-ordered tokens), never per listing in Python, and never by a
pass over every byte or a regex over the text: markers, hashtags, punctuation and capitals are read
from the first / last byte of each whitespace piece (the strict marker "tags:" is a marker word whose
piece ends with, or is followed by a piece starting with, ``: - = >``). The old per-byte counts, the
regex split at the strict marker and the "repetition" feature (a sort of every token) cost about a
quarter of the featuriser's time; the token-level versions measure the same things (``has_marker``:
r = 0.98 with the regex version on the Depop listings), and repetition is gone. The features feed the
gradient-boosted second stage raw; a linear model sees them standardised
(:class:`~hf_spamguard.baseline.featurizer.Featurizer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hf_spamguard.baseline.hashing import (
    PAIR,
    Tokens,
    hash_set,
    lookup,
    member,
    pair_hash_py,
    sorted_unique,
    string_bytes,
    token_hash_py,
)
from hf_spamguard.baseline.lexicon import (
    BRAND_BIGRAMS,
    BRANDS,
    CATEGORY_WORDS,
    EXPOSURE_BEFORE,
    IGNORE_WORDS,
    MARKER_WORDS,
    NOT_A_BLOCK_BEFORE,
    STOP_WORDS,
    STYLE_WORDS,
    TAG_WORDS,
)

#: The stuffing features, in column order.
STUFFING_FEATURES: tuple[str, ...] = (
    "log_bytes",
    "log_tokens",
    "log_hashtags",
    "hashtag_share",
    "has_marker",
    "log_tokens_after_marker",
    "log_brand_mentions",
    "brand_density",
    "log_distinct_brands",
    "log_brands_after_marker",
    "punct_per_token",
    "capitalised_share",
    "stop_share",
    "tail_stop_share",
    "log_longest_run",
    "log_tail_run",
    "long_run_share",
    "log_short_items",
    "log_distinct_style",
    "style_density",
    "n_categories",
    "n_categories_tail",
    "log_brands_tail",
    "has_broad_marker",
    "log_tokens_after_broad",
    "log_brands_after_broad",
)

#: A run of this many tokens without a stop word or sentence end counts as a keyword list.
LONG_RUN = 8
#: The last ``TAIL_SHARE`` of a listing's tokens is its tail (where keyword blocks sit).
TAIL_SHARE = 0.4
#: Stop-word share of the tail is measured over the last ``TAIL_TOKENS`` tokens.
TAIL_TOKENS = 30

_BRANDS = hash_set(b for b in BRANDS if " " not in b)
_BRAND_BIGRAMS = np.array(
    sorted({pair_hash_py(*(token_hash_py(t) for t in b.split())) for b in BRAND_BIGRAMS}), dtype=np.uint64
)
# first words of the brand bigrams: only tokens among these can start one, so pairs are hashed and
# looked up for those few tokens instead of every adjacent pair
_BRAND_BIGRAM_FIRST = hash_set(b.split()[0] for b in BRAND_BIGRAMS)
_STOP = hash_set(STOP_WORDS)
_STYLE = hash_set(STYLE_WORDS)
_CATEGORY = sorted((token_hash_py(w), i) for i, ws in enumerate(CATEGORY_WORDS.values()) for w in ws)
_CATEGORY_HASHES = np.array([h for h, _ in _CATEGORY], dtype=np.uint64)
_CATEGORY_IDS = np.array([i for _, i in _CATEGORY], dtype=np.int64)
_IGNORE = hash_set(IGNORE_WORDS)
_TAG = hash_set(TAG_WORDS)
_NOT_BEFORE = hash_set(NOT_A_BLOCK_BEFORE)
_EXPOSURE_BEFORE = hash_set(EXPOSURE_BEFORE)
_EXPOSURE = hash_set(["exposure"])
_TERMS = hash_set(["terms", "term"])
_SEARCH = hash_set(["search"])
# the strict marker (lexicon.MARKER_RE) token by token: a marker word ("search terms" is "terms" after
# "search") whose piece ends with, or is followed by a piece starting with, one of : - = >
_STRICT = hash_set(w for w in MARKER_WORDS if " " not in w)
_MARKER_PUNCT = np.zeros(256, dtype=bool)
_MARKER_PUNCT[list(b":-=>")] = True
_PUNCT = np.zeros(256, dtype=bool)
_PUNCT[list(b".,!?;")] = True
_SENTENCE_END = np.zeros(256, dtype=bool)
_SENTENCE_END[list(b".!?:;)")] = True
_ITEM_END = np.zeros(256, dtype=bool)
_ITEM_END[list(b",/|;~")] = True


class _Docs:
    """Per-document sums over document-ordered tokens by ``np.add.reduceat`` (an order of magnitude
    cheaper than a weighted ``np.bincount`` over the same tokens)."""

    def __init__(self, doc: np.ndarray, n: int) -> None:
        self.n = n
        self.bounds = np.searchsorted(doc, np.arange(n + 1))  # tokens of doc i: bounds[i]:bounds[i + 1]
        self.count = np.diff(self.bounds)
        self.nonempty = self.count > 0
        self.first = self.bounds[:-1][self.nonempty]  # strictly increasing, each < len(doc)
        self.last = self.bounds[1:][self.nonempty] - 1

    def sum(self, values: np.ndarray) -> np.ndarray:
        if values.dtype == bool:
            # counts: differences of an integer running sum, exact and several times cheaper than a
            # reduceat that casts every byte to float64 (which was the featuriser's costliest call)
            running = np.zeros(values.size + 1, dtype=np.int64)
            np.cumsum(values, dtype=np.int64, out=running[1:])
            return (running[self.bounds[1:]] - running[self.bounds[:-1]]).astype(np.float64)
        out = np.zeros(self.n)
        if self.first.size:
            out[self.nonempty] = np.add.reduceat(values, self.first, dtype=np.float64)
        return out


def _distinct_per_doc(doc: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """Distinct ``key`` values per document (few tokens: one sort of doc-and-key packed together)."""
    with np.errstate(over="ignore"):
        packed = (doc.astype(np.uint64) << np.uint64(40)) | (key.astype(np.uint64) >> np.uint64(24))
    return np.bincount((sorted_unique(packed) >> np.uint64(40)).astype(np.int64), minlength=n)


def _first_per_doc(idx: np.ndarray, doc: np.ndarray, n: int, missing: int) -> np.ndarray:
    """The first of the (sorted) token indices ``idx`` in each document; ``missing`` where none."""
    out = np.full(n, missing, dtype=np.int64)
    if idx.size:
        d = doc[idx]
        first = np.r_[True, d[1:] != d[:-1]]
        out[d[first]] = idx[first]
    return out


# bits of a dictionary entry's code (looked up once per distinct token of the chunk)
_BITS = {"brand": 1, "bigram_first": 2, "style": 4, "category": 8, "ignore": 16, "tag": 32, "not_before": 64}
_BITS.update({"terms": 128, "search": 256, "exposure": 512, "exposure_before": 1024, "strict": 2048})
_SETS = {"style": _STYLE, "ignore": _IGNORE, "tag": _TAG, "not_before": _NOT_BEFORE, "terms": _TERMS}
_SETS["strict"] = _STRICT
_SETS.update({"search": _SEARCH, "exposure": _EXPOSURE, "exposure_before": _EXPOSURE_BEFORE})


def stuffing_features(arr: Any, low: Any, tok: Tokens) -> np.ndarray:
    """The :data:`STUFFING_FEATURES` of a chunk: ``(n, len(STUFFING_FEATURES))`` float64.

    ``arr`` is the chunk as an Arrow large_string array, ``low`` its ASCII lower-cased copy (same byte
    offsets) and ``tok`` its tokens (:func:`~hf_spamguard.baseline.hashing.arrow_tokens` of ``low``).
    Tokens are in document order, so per-document sums are ``reduceat`` over token ranges; the lexicon
    words are rare, so everything about them runs on the few tokens that are one.
    """
    n = len(arr)
    doc, th, di = tok.doc, tok.hash, tok.dict_index
    t = doc.size
    docs = _Docs(doc, n)
    n_tokens = docs.count.astype(np.float64)
    safe = np.maximum(n_tokens, 1.0)
    origb, offsets = string_bytes(arr)
    lowb, _ = string_bytes(low)
    n_bytes = np.diff(offsets).astype(np.float64)
    first_of = docs.bounds[:-1]  # global index of each document's first token
    tail_from = first_of + np.floor((1.0 - TAIL_SHARE) * n_tokens).astype(np.int64)
    features: dict[str, np.ndarray] = {}

    # one code per dictionary entry, then the few tokens that carry any lexicon bit
    code = np.zeros(len(tok.dict_hash), dtype=np.int64)
    code[member(tok.dict_key, _BRANDS)] |= _BITS["brand"]
    code[member(tok.dict_key, _BRAND_BIGRAM_FIRST)] |= _BITS["bigram_first"]
    for name, words in _SETS.items():
        code[member(tok.dict_hash, words)] |= _BITS[name]
    category_of = lookup(tok.dict_hash, _CATEGORY_HASHES)
    code[category_of >= 0] |= _BITS["category"]
    is_stop = member(tok.dict_hash, _STOP)[di]
    token_code = code[di]
    rare = np.flatnonzero(token_code)
    rc = token_code[rare]
    rdoc = doc[rare]
    # the lexicon code of the token before each rare token (0 at a document's start)
    prev = np.zeros(rare.size, dtype=np.int64)
    has_prev = (rare > 0) & (rare > first_of[rdoc])
    prev[has_prev] = token_code[rare[has_prev] - 1]

    def rare_with(bit: str, on: np.ndarray = rc) -> np.ndarray:
        return (on & _BITS[bit]) > 0

    # brands: one-word entries, or two consecutive tokens forming a two-word entry
    def key(idx: np.ndarray) -> np.ndarray:  # brand-lookup hash of some tokens
        return tok.dict_key[di[idx]]

    brand = rare_with("brand")
    brand_idx = rare[brand]
    brand_key = key(brand_idx)
    cand = rare[rare_with("bigram_first") & (rare + 1 < t)]
    cand = cand[doc[cand + 1] == doc[cand]]
    if cand.size:
        with np.errstate(over="ignore"):
            pair = key(cand) * PAIR + key(cand + 1)
        hit = member(pair, _BRAND_BIGRAMS)
        # a two-word brand counts once, at its first word (which may also be a one-word brand)
        if hit.any():
            # the pair's second word is part of it, not a brand of its own (as in the explanations)
            second = np.zeros(t, dtype=bool)
            second[cand[hit] + 1] = True
            alone = ~second[brand_idx]
            brand_idx, brand_key = brand_idx[alone], brand_key[alone]
            brand_idx = np.r_[brand_idx, cand[hit]]
            brand_key = np.r_[brand_key, pair[hit]]
            order = np.argsort(brand_idx, kind="stable")
            # where both exist at one position the pair wins (it was appended after the one-word entry)
            last = np.r_[brand_idx[order][1:] != brand_idx[order][:-1], True]
            brand_idx, brand_key = brand_idx[order][last], brand_key[order][last]
    bdoc = doc[brand_idx]
    brand_mentions = np.bincount(bdoc, minlength=n).astype(np.float64)
    in_tail = brand_idx >= tail_from[bdoc]

    # the strict marker ("tags:") and the broad one ("IGNORE pink", "tags for exposure")
    marked = _MARKER_PUNCT[lowb[tok.end[rare]]] | _MARKER_PUNCT[tok.next_byte[rare]]
    strict = marked & (rare_with("strict") | (rare_with("terms") & rare_with("search", prev)))
    strict_at = _first_per_doc(rare[strict], doc, n, t)
    broad = rare_with("ignore") | (rare_with("tag") & ~rare_with("not_before", prev))
    broad |= rare_with("terms") & rare_with("search", prev)
    broad |= rare_with("exposure") & rare_with("exposure_before", prev)
    broad_at = _first_per_doc(rare[broad], doc, n, t)
    last_of = docs.bounds[1:] - 1
    brands_after_broad = np.bincount(bdoc[brand_idx > broad_at[bdoc]], minlength=n)

    # hashtags, sentence punctuation and capitals, token by token (first / last byte of each piece)
    first_byte = lowb[tok.start] if t else np.zeros(0, np.uint8)
    second = lowb[np.minimum(tok.start + 1, tok.end)] if t else np.zeros(0, np.uint8)
    alnum = ((second - np.uint8(97)) < 26) | ((second - np.uint8(48)) < 10)
    hashtags = docs.sum((first_byte == ord("#")) & (tok.end > tok.start) & alnum)
    capital = docs.sum((origb[tok.start] - np.uint8(65)) < 26) if t else np.zeros(n)

    # runs of tokens with no stop word, cut after a token ending a sentence: a stop word always starts
    # a group (and is its only stop word), so a group's run length is its size minus that one token
    ends_sentence = _SENTENCE_END[lowb[tok.end]] if t else np.zeros(0, bool)
    boundary = is_stop.copy()
    boundary[first_of[docs.nonempty]] = True
    boundary[1:] |= ends_sentence[:-1]
    group_start = np.flatnonzero(boundary)
    group_len = np.diff(np.r_[group_start, t]) - is_stop[group_start]
    group_doc = doc[group_start]
    longest = np.zeros(n)
    tail_run = np.zeros(n)
    long_runs = np.zeros(n)
    if group_start.size:
        first_group = np.searchsorted(group_doc, np.flatnonzero(docs.nonempty))
        longest[docs.nonempty] = np.maximum.reduceat(group_len, first_group)
        long_runs[docs.nonempty] = np.add.reduceat(group_len * (group_len >= LONG_RUN), first_group)
        last = docs.last
        open_run = ~is_stop[last] & ~ends_sentence[last]
        last_group = np.searchsorted(group_start, last, side="right") - 1
        tail_run[docs.nonempty] = np.where(open_run, group_len[last_group], 0)
    stop_cum = np.zeros(t + 1, dtype=np.int32)
    np.cumsum(is_stop, dtype=np.int32, out=stop_cum[1:])
    tail_len = np.minimum(docs.count, TAIL_TOKENS)
    tail_stop = stop_cum[docs.bounds[1:]] - stop_cum[docs.bounds[1:] - tail_len]

    # short items: 1-3 tokens between separators (",", "/", "|", ";", "~", a lone "-", "#", line breaks)
    item_start = tok.gap_before.copy()
    item_start[first_of[docs.nonempty]] = True
    newlines = np.flatnonzero(lowb == ord("\n"))
    if t:
        item_start |= first_byte == ord("#")
        item_start[1:] |= _ITEM_END[lowb[tok.end[:-1]]]
        if newlines.size:
            item_start[1:] |= np.searchsorted(newlines, tok.start[1:]) > np.searchsorted(
                newlines, tok.end[:-1]
            )
    punct = docs.sum(_PUNCT[lowb[tok.end]]) if t else np.zeros(n)
    if t and newlines.size:
        punct += np.diff(np.searchsorted(newlines, offsets))
    items = np.flatnonzero(item_start)
    item_len = np.diff(np.r_[items, t])
    short_items = np.bincount(doc[items[item_len <= 3]], minlength=n)

    # style words and garment categories
    style = rare[rare_with("style")]
    cat_idx = rare[rare_with("category")]
    category = _CATEGORY_IDS[category_of[di[cat_idx]]].astype(np.uint64) << np.uint64(24)
    cat_tail = cat_idx >= tail_from[doc[cat_idx]]

    features["log_bytes"] = np.log1p(n_bytes)
    features["log_tokens"] = np.log1p(n_tokens)
    features["log_hashtags"] = np.log1p(hashtags)
    features["hashtag_share"] = hashtags / safe
    features["has_marker"] = (strict_at < t).astype(np.float64)
    features["log_tokens_after_marker"] = np.log1p(np.where(strict_at < t, last_of - strict_at, 0))
    features["log_brand_mentions"] = np.log1p(brand_mentions)
    features["brand_density"] = brand_mentions / safe
    features["log_distinct_brands"] = np.log1p(_distinct_per_doc(bdoc, brand_key, n))
    features["log_brands_after_marker"] = np.log1p(
        np.bincount(bdoc[brand_idx > strict_at[bdoc]], minlength=n)
    )
    features["punct_per_token"] = punct / safe
    features["capitalised_share"] = capital / safe
    features["stop_share"] = docs.sum(is_stop) / safe
    features["tail_stop_share"] = tail_stop / np.maximum(tail_len, 1)
    features["log_longest_run"] = np.log1p(longest)
    features["log_tail_run"] = np.log1p(tail_run)
    features["long_run_share"] = long_runs / safe
    features["log_short_items"] = np.log1p(short_items)
    features["log_distinct_style"] = np.log1p(_distinct_per_doc(doc[style], th[style], n))
    features["style_density"] = np.bincount(doc[style], minlength=n) / safe
    features["n_categories"] = _distinct_per_doc(doc[cat_idx], category, n).astype(np.float64)
    features["n_categories_tail"] = _distinct_per_doc(doc[cat_idx[cat_tail]], category[cat_tail], n).astype(
        float
    )
    features["log_brands_tail"] = np.log1p(_distinct_per_doc(bdoc[in_tail], brand_key[in_tail], n))
    features["has_broad_marker"] = (broad_at < t).astype(np.float64)
    features["log_tokens_after_broad"] = np.log1p(np.where(broad_at < t, last_of - broad_at, 0))
    features["log_brands_after_broad"] = np.log1p(brands_after_broad)
    return np.column_stack([features[name] for name in STUFFING_FEATURES]).astype(np.float64)


__all__ = ["LONG_RUN", "STUFFING_FEATURES", "TAIL_SHARE", "TAIL_TOKENS", "stuffing_features"]
