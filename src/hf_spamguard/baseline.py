"""The classical baseline: hashed word / character n-gram TF-IDF + keyword-stuffing features → logistic
regression, with calibrated probabilities, evidence-naming reasons and skops persistence.

Why hashing in NumPy instead of ``TfidfVectorizer``: scikit-learn's vectorizers tokenise and look up
every token in Python, which dominates scoring time on millions of rows. Here a chunk of listings is
encoded once into a byte array and every n-gram is hashed with vectorised polynomial prefix hashes
(uint64 arithmetic wraps, which is exactly the ring we want), so featurising is a handful of NumPy
passes. Scoring never builds the sparse matrix: a linear model's score is a sum over n-gram
occurrences, computed with ``np.bincount``. Chunks are scored on a thread pool (NumPy releases the
GIL), so memory stays flat in the number of rows.

Files written by :meth:`BaselineClassifier.save_pretrained`: ``model.skops`` (NumPy arrays only: IDF, weights,
calibration; loaded with an explicit trusted-types list; anything else is refused),
``config.json`` (``"model_type": "spamguard-baseline"``, labels, featuriser settings, training record)
and ``policy.json`` (thresholds, binary models only).
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hf_spamguard.atomic import atomic_write_bytes
from hf_spamguard.policy import Thresholds, as_thresholds, decide
from hf_spamguard.verdict import make_verdict

MODEL_TYPE = "spamguard-baseline"
MODEL_FILE = "model.skops"
CONFIG_FILE = "config.json"

#: The only types a ``model.skops`` file may contain (checked before loading; anything else is refused).
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
)


class UntrustedModelError(ValueError):
    """A ``model.skops`` file contains a type outside :data:`TRUSTED_TYPES`."""


# --------------------------------------------------------------------------------------------------
# Brand lexicon and keyword-block markers
# --------------------------------------------------------------------------------------------------

# Brands that keyword stuffers list on fashion marketplaces (lower case; multi-word entries are
# matched as bigrams). Ambiguous words ("lee", "gap", "vans") are in on purpose: in a list they are
# brands, and the model weighs density, not single mentions.
BRANDS: tuple[str, ...] = tuple(
    [
        "nike",
        "adidas",
        "supreme",
        "palace",
        "bape",
        "stussy",
        "carhartt",
        "dickies",
        "levi",
        "levis",
        "wrangler",
        "lee",
        "diesel",
        "guess",
        "gap",
        "zara",
        "topshop",
        "asos",
        "hollister",
        "abercrombie",
        "uniqlo",
        "champion",
        "fila",
        "puma",
        "reebok",
        "vans",
        "converse",
        "jordan",
        "jordans",
        "yeezy",
        "yeezys",
        "gucci",
        "prada",
        "versace",
        "fendi",
        "balenciaga",
        "burberry",
        "chanel",
        "dior",
        "vuitton",
        "lv",
        "hermes",
        "givenchy",
        "moschino",
        "valentino",
        "armani",
        "ysl",
        "celine",
        "loewe",
        "bottega",
        "kenzo",
        "balmain",
        "offwhite",
        "vetements",
        "margiela",
        "cdg",
        "yohji",
        "acne",
        "apc",
        "kith",
        "essentials",
        "undercover",
        "wtaps",
        "visvim",
        "kapital",
        "sacai",
        "ambush",
        "alyx",
        "vlone",
        "assc",
        "bbc",
        "evisu",
        "affliction",
        "juicy",
        "bebe",
        "tommy",
        "hilfiger",
        "lauren",
        "polo",
        "lacoste",
        "patagonia",
        "tnf",
        "arcteryx",
        "columbia",
        "timberland",
        "martens",
        "docs",
        "ugg",
        "uggs",
        "birkenstock",
        "crocs",
        "asics",
        "saucony",
        "salomon",
        "hoka",
        "brandy",
        "reformation",
        "anthropologie",
        "madewell",
        "aritzia",
        "lululemon",
        "gymshark",
        "skims",
        "shein",
        "boohoo",
        "missguided",
        "prettylittlething",
        "plt",
        "hm",
        "mango",
        "bershka",
        "stradivarius",
        "forever21",
        "aeropostale",
        "dkny",
        "kors",
        "coach",
        "tiffany",
        "pandora",
        "swarovski",
        "rolex",
        "casio",
        "gshock",
        "seiko",
        "oakley",
        "rayban",
        "disney",
        "marvel",
        "pokemon",
        "nasa",
        "thrasher",
        "quiksilver",
        "billabong",
        "volcom",
        "roxy",
        "hurley",
        "oneill",
        "superdry",
        "hugo",
        "allsaints",
        "reiss",
        "hobbs",
        "monki",
        "weekday",
        "arket",
        "obey",
        "huf",
        "ellesse",
        "kappa",
        "umbro",
        "lonsdale",
        "slazenger",
        "everlast",
        "starter",
        "nba",
        "nfl",
        "mlb",
        "ncaa",
        "ferrari",
        "porsche",
        "redbubble",
        "lulu",
        "fubu",
        "kangol",
        "stüssy",
        "bapesta",
        "sb",
        "dunk",
        "dunks",
        "airmax",
        "vapormax",
        "foamposite",
        "jansport",
        "fjallraven",
        "kanken",
        "longchamp",
        "hydroflask",
        "stanley",
    ]
)

# Two-word brands (matched as consecutive tokens). Their parts above may also count alone.
BRAND_BIGRAMS: tuple[str, ...] = (
    "off white",
    "stone island",
    "ralph lauren",
    "tommy hilfiger",
    "north face",
    "new balance",
    "dr martens",
    "true religion",
    "ed hardy",
    "von dutch",
    "juicy couture",
    "baby phat",
    "apple bottoms",
    "fred perry",
    "ben sherman",
    "calvin klein",
    "michael kors",
    "kate spade",
    "marc jacobs",
    "tory burch",
    "steve madden",
    "ray ban",
    "urban outfitters",
    "brandy melville",
    "free people",
    "fashion nova",
    "american eagle",
    "old navy",
    "banana republic",
    "louis vuitton",
    "chrome hearts",
    "rick owens",
    "raf simons",
    "comme des",
    "hugo boss",
    "ted baker",
    "all saints",
    "santa cruz",
    "rip curl",
    "harley davidson",
    "fear of",
    "anti social",
    "cp company",
    "princess polly",
    "oh polly",
    "pull bear",
    "forever 21",
    "jack jones",
    "karen millen",
    "sergio tacchini",
    "mitchell ness",
    "ivy park",
    "air max",
    "air force",
    "bape sta",
    "h m",
    "levi s",
    "hydro flask",
)

# "tags:", "ignore:", "keywords -", "search terms:" ...: the start of a keyword-stuffing block (Python
# regex for explanations; the featuriser uses the equivalent RE2 pattern ``_ARROW_MARKER``).
_MARKER_RE_STR = re.compile(
    r"(?<![a-z])(tags|tag|tagged|tagging|ignore|ignored|keywords|keyword|search terms|search|hashtags|"
    r"related|similar|ref|seo)\s*[:\-=>]+"
)

_P = 0x100000001B3  # FNV-64 prime: odd, so invertible modulo 2**64
_P_INV = pow(_P, -1, 2**64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_PAIR = np.uint64(0xC2B2AE3D27D4EB4F)
_SALTS = {"word": np.uint64(0x1234567), "bigram": np.uint64(0x7654321), "char": np.uint64(0x2468ACE)}


class _Powers:
    """Cached P**i and P**-i (mod 2**64) up to the longest chunk seen; grown, never shrunk."""

    def __init__(self) -> None:
        self.pw = np.ones(1, dtype=np.uint64)
        self.inv = np.ones(1, dtype=np.uint64)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        pw, inv = self.pw, self.inv  # read once: another thread may swap in bigger arrays
        if pw.size < n + 1:
            size = max(n + 1, 2 * pw.size)
            with np.errstate(over="ignore"):
                pw = np.cumprod(np.r_[np.uint64(1), np.full(size - 1, _P, dtype=np.uint64)], dtype=np.uint64)
                inv = np.cumprod(
                    np.r_[np.uint64(1), np.full(size - 1, _P_INV, dtype=np.uint64)], dtype=np.uint64
                )
            self.pw, self.inv = pw, inv
        return pw, inv


_POWERS = _Powers()


def _token_hash_py(token: str) -> int:
    """The featuriser's token hash for one token, in Python: sum((byte + 1) * P**k) mod 2**64."""
    h = 0
    p = 1
    for b in token.encode("utf-8"):
        h = (h + (b + 1) * p) % 2**64
        p = (p * _P) % 2**64
    return h


def _hash_strings(strings: Any) -> np.ndarray:
    """:func:`_token_hash_py` of every string of an Arrow (large_)string array, vectorised over its
    UTF-8 buffer with polynomial prefix hashes (uint64 arithmetic wraps modulo 2**64)."""
    import pyarrow as pa

    n = len(strings)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    buffers = strings.buffers()
    off_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=off_type)[strings.offset : strings.offset + n + 1].astype(
        np.int64
    )
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    offsets = offsets - offsets[0]
    m = data.size
    pw, inv = _POWERS.get(m)
    prefix = np.empty(m + 1, dtype=np.uint64)
    prefix[0] = 0
    with np.errstate(over="ignore"):
        np.cumsum((data.astype(np.uint64) + np.uint64(1)) * pw[:m], out=prefix[1:])
        return (prefix[offsets[1:]] - prefix[offsets[:-1]]) * inv[offsets[:-1]]


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Distinct values by sorting (NumPy 2's hash-based ``np.unique`` is several times slower here)."""
    if not keys.size:
        return keys
    k = np.sort(keys)
    return k[np.r_[True, k[1:] != k[:-1]]]


_FILTER_BITS = 16


def _prefilter(sorted_set: np.ndarray) -> np.ndarray:
    table = np.zeros(1 << _FILTER_BITS, dtype=bool)
    table[(sorted_set >> np.uint64(64 - _FILTER_BITS)).astype(np.int64)] = True
    return table


def _member(values: np.ndarray, sorted_set: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """``np.isin`` for a small sorted set: a 64k-entry prefilter on the top bits, then an exact binary
    search on the few candidates (much faster than ``np.isin`` on hundreds of thousands of values)."""
    out = np.zeros(values.shape, dtype=bool)
    if not sorted_set.size or not values.size:
        return out
    if table is None:
        table = _prefilter(sorted_set)
    cand = np.flatnonzero(table[(values >> np.uint64(64 - _FILTER_BITS)).astype(np.int64)])
    if cand.size:
        v = values[cand]
        idx = np.minimum(np.searchsorted(sorted_set, v), sorted_set.size - 1)
        out[cand] = sorted_set[idx] == v
    return out


def _pair_hash_py(h1: int, h2: int) -> int:
    return (h1 * int(_PAIR) + h2) % 2**64


_BRAND_HASHES = np.array(sorted({_token_hash_py(b) for b in BRANDS if " " not in b}), dtype=np.uint64)
_BRAND_BIGRAM_HASHES = np.array(
    sorted({_pair_hash_py(*(_token_hash_py(t) for t in b.split())) for b in BRAND_BIGRAMS}), dtype=np.uint64
)
# first words of the brand bigrams: only tokens among these can start one, so pairs are hashed and
# looked up for those few tokens instead of every adjacent pair
_BRAND_BIGRAM_FIRST = np.array(sorted({_token_hash_py(b.split()[0]) for b in BRAND_BIGRAMS}), dtype=np.uint64)
_BRAND_SET = frozenset(BRANDS)
_BRAND_BIGRAM_SET = frozenset(BRAND_BIGRAMS)


def _tokens(text: str) -> list[str]:
    """The featuriser's tokenisation, in Python (explanations): whitespace split, punctuation trimmed."""
    return [t for t in (w.strip(_TRIM_CHARS) for w in text.lower().split()) if t]


DENSE_FEATURES: tuple[str, ...] = (
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
    "repetition",
    "punct_per_token",
    "capitalised_share",
)


# --------------------------------------------------------------------------------------------------
# Featuriser
# --------------------------------------------------------------------------------------------------


@dataclass
class FeaturizerConfig:
    """Settings of the hashed n-gram + keyword-stuffing featuriser."""

    word_bits: int = field(default=18, metadata={"help": "log2 of the hashed word-unigram space."})
    bigram_bits: int = field(default=18, metadata={"help": "log2 of the hashed word-bigram space (0 = off)."})
    # Off by default: on the Depop data character 3-5-grams moved 5-fold macro-F1 by +0.0007 and AUC by
    # +0.0004 while costing ~2x scoring time (benchmarks/baseline_quality.py --char to compare).
    char_bits: int = field(
        default=0, metadata={"help": "log2 of the hashed character n-gram space (0 = off)."}
    )
    char_ngrams: tuple[int, ...] = field(default=(3, 4, 5), metadata={"help": "Character n-gram lengths."})
    dense_scale: float = field(
        default=1.0, metadata={"help": "Weight of the standardised stuffing features."}
    )

    def blocks(self) -> list[tuple[str, int]]:
        out = [("word", self.word_bits)]
        if self.bigram_bits:
            out.append(("bigram", self.bigram_bits))
        if self.char_bits and self.char_ngrams:
            out.append(("char", self.char_bits))
        return out


@dataclass
class _Chunk:
    """Featurised chunk: per block (doc index, bucket, raw weight) occurrences + dense features."""

    n: int
    occurrences: dict[str, tuple[np.ndarray, np.ndarray]]
    dense: np.ndarray


def _encode(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower-cased UTF-8 bytes of the chunk joined by NUL, the original bytes, and doc start offsets."""
    texts = ["" if t is None else str(t) for t in texts]
    joined = "\x00".join(texts)
    raw = joined.encode("utf-8", "replace")
    orig = np.frombuffer(raw, dtype=np.uint8)
    seps = np.flatnonzero(orig == 0)
    if seps.size != max(len(texts) - 1, 0):  # a NUL inside a listing: make it a space
        raw = "\x00".join(t.replace("\x00", " ") for t in texts).encode("utf-8", "replace")
        orig = np.frombuffer(raw, dtype=np.uint8)
        seps = np.flatnonzero(orig == 0)
    low = np.frombuffer(raw.lower(), dtype=np.uint8)
    starts = np.r_[0, seps + 1].astype(np.int64)
    return low, orig, starts


def _bucket(h: np.ndarray, salt: np.uint64, bits: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (((h ^ salt) * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


_TRIM_CHARS = ".,:;!?()[]{}\"'*#/|-_~+=<>&@%$^`\\"
_ARROW_MARKER = (
    r"(?:^|[^a-z])(?:tags|tag|tagged|tagging|ignore|ignored|keywords|keyword|search terms|search|hashtags|"
    r"related|similar|ref|seo)\s*[:\-=>]+"
)


class _Tokens(NamedTuple):
    doc: np.ndarray  # document index of every token
    hash: np.ndarray  # 64-bit hash of every token
    brand: np.ndarray  # the token is a one-word brand
    bigram_first: np.ndarray  # the token is the first word of some two-word brand
    end: np.ndarray  # byte offset (in the chunk's buffer) of the token's last byte, before trimming


def _arrow_tokens(low: Any) -> _Tokens:
    """The word tokens of a lower-cased Arrow string array, hashed, with their brand-lexicon flags.

    Splitting and de-duplication run in Arrow's C++ kernels; the distinct tokens of the chunk are then
    hashed (and looked up in the lexicons) once each, in vectorised passes over the dictionary.
    """
    import pyarrow.compute as pc

    # whitespace split + trimming punctuation off both ends: ~6x faster than a regex split, and keeps
    # "off-white", "h&m", "levi's" whole
    lists = pc.ascii_split_whitespace(low)
    raw = pc.list_flatten(lists)
    flat = pc.ascii_trim(raw, characters=_TRIM_CHARS)
    parent = np.asarray(pc.list_parent_indices(lists), dtype=np.int64)
    if not len(flat):
        empty = np.zeros(0, bool)
        return _Tokens(np.zeros(0, np.int64), np.zeros(0, np.uint64), empty, empty, np.zeros(0, np.int64))
    keep = np.asarray(pc.binary_length(flat), dtype=np.int64) > 0
    encoded = pc.dictionary_encode(flat)
    hashes = _hash_strings(encoded.dictionary)
    idx = np.asarray(encoded.indices, dtype=np.int64)[keep]
    # Arrow also yields an empty piece where a document starts or ends with whitespace (never kept)
    ends = np.full(len(raw), -1, dtype=np.int64)
    ends[np.asarray(pc.binary_length(raw), dtype=np.int64) > 0] = _token_ends(low)
    return _Tokens(
        parent[keep],
        hashes[idx],
        _member(hashes, _BRAND_HASHES)[idx],
        _member(hashes, _BRAND_BIGRAM_FIRST)[idx],
        ends[keep],
    )


def _token_ends(low: Any) -> np.ndarray:
    """Last byte of every non-empty whitespace-separated run, in the order ``ascii_split_whitespace``
    returns them (runs never cross documents: a document's last byte ends its last run)."""
    data, offsets = _string_bytes(low)
    if not data.size:
        return np.zeros(0, np.int64)
    # ASCII whitespace as Arrow's ascii_split_whitespace sees it: space, \t \n \v \f \r
    word = (data != 32) & ((data - np.uint8(9)) > 4)
    end = np.zeros(data.size, dtype=bool)
    end[:-1] = word[:-1] & ~word[1:]
    last = offsets[1:][offsets[1:] > offsets[:-1]] - 1  # last byte of each non-empty document
    end[last] = word[last]
    return np.flatnonzero(end)


def featurize_chunk(texts: Sequence[str], config: FeaturizerConfig) -> _Chunk:
    """Hash every n-gram of ``texts`` and compute the keyword-stuffing features (vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = ["" if t is None else str(t) for t in texts]
    n = len(texts)
    arr = pa.array(texts, type=pa.large_string())
    # ASCII lower-casing keeps byte offsets identical, so per-document byte counts below can read
    # the original and lower-cased buffers side by side (the lexicons are ASCII anyway)
    low = pc.ascii_lower(arr)
    tokens = _arrow_tokens(low)
    t_doc, th = tokens.doc, tokens.hash
    occ: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    occ["word"] = (t_doc, _bucket(th, _SALTS["word"], config.word_bits))
    same = t_doc[:-1] == t_doc[1:]
    with np.errstate(over="ignore"):
        bh = th[:-1] * _PAIR + th[1:]
    if config.bigram_bits:
        occ["bigram"] = (t_doc[:-1][same], _bucket(bh[same], _SALTS["bigram"], config.bigram_bits))
    if config.char_bits and config.char_ngrams:
        occ["char"] = _char_ngrams(texts, config)

    # keyword-stuffing features
    n_tokens = np.bincount(t_doc, minlength=n).astype(np.float64)
    n_bytes, hashtags, punct, capital = _byte_counts(arr, low)
    # the tokens after the first keyword-block marker ("tags:", "ignore -", ...): the split at the
    # marker gives its end (document end minus the tail's length), and a token is in the block when it
    # ends past it, so the tail is not tokenised a second time (an extract_regex with a capture group
    # costs ~10x this split)
    parts = pc.split_pattern_regex(low, _ARROW_MARKER, max_splits=1)
    has_marker = np.asarray(pc.list_value_length(parts), dtype=np.int64) == 2
    tails = pc.list_slice(parts, 1, 2)
    tail_doc = np.asarray(pc.list_parent_indices(tails), dtype=np.int64)
    _, doc_start = _string_bytes(low)
    marker_end = np.full(n, np.iinfo(np.int64).max)
    marker_end[tail_doc] = doc_start[1:][tail_doc] - np.asarray(
        pc.binary_length(pc.list_flatten(tails)), dtype=np.int64
    )
    after = tokens.end >= marker_end[t_doc]
    tokens_after = np.bincount(t_doc, weights=after, minlength=n)

    def brand_flags(tok: _Tokens) -> tuple[np.ndarray, np.ndarray]:
        """Per token: starts a brand mention (one word, or the first of two); the brand's key."""
        doc, h = tok.doc, tok.hash
        key = h.copy()
        is_bigram = np.zeros(h.size, dtype=bool)
        start = np.flatnonzero(tok.bigram_first[:-1] & (doc[:-1] == doc[1:]))
        if start.size:
            with np.errstate(over="ignore"):
                pair = h[start] * _PAIR + h[start + 1]
            hit = _member(pair, _BRAND_BIGRAM_HASHES)
            is_bigram[start[hit]] = True
            key[start[hit]] = pair[hit]
        return tok.brand | is_bigram, key

    brand_tok, brand_key = brand_flags(tokens)
    brand_mentions = np.bincount(t_doc, weights=brand_tok, minlength=n)
    brand_after = np.bincount(t_doc, weights=brand_tok & after, minlength=n)
    bdoc = t_doc[brand_tok]
    with np.errstate(over="ignore"):
        bkeys = (bdoc.astype(np.uint64) << np.uint64(40)) | (brand_key[brand_tok] >> np.uint64(24))
        # doc in the high 24 bits, 40 bits of token hash below: one sort gives distinct tokens per doc
        keys = (t_doc.astype(np.uint64) << np.uint64(40)) | (th >> np.uint64(24))
    distinct_brands = np.bincount((_sorted_unique(bkeys) >> np.uint64(40)).astype(np.int64), minlength=n)
    distinct_tokens = np.bincount((_sorted_unique(keys) >> np.uint64(40)).astype(np.int64), minlength=n)
    safe_tokens = np.maximum(n_tokens, 1.0)
    dense = np.column_stack(
        [
            np.log1p(n_bytes),
            np.log1p(n_tokens),
            np.log1p(hashtags),
            hashtags / safe_tokens,
            has_marker.astype(np.float64),
            np.log1p(tokens_after),
            np.log1p(brand_mentions),
            brand_mentions / safe_tokens,
            np.log1p(distinct_brands),
            np.log1p(brand_after),
            1.0 - distinct_tokens / safe_tokens,
            punct / safe_tokens,
            capital / safe_tokens,
        ]
    ).astype(np.float64)
    return _Chunk(n=n, occurrences=occ, dense=dense)


def _string_bytes(strings: Any) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets from 0) of an Arrow large_string array, zero-copy."""
    buffers = strings.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def _per_doc(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    # the masks are sparse: locating the set bytes and cutting at the offsets is ~4x cheaper than a
    # weighted bincount over a per-byte document index
    return np.diff(np.searchsorted(np.flatnonzero(mask), offsets)).astype(np.float64)


def _byte_counts(arr: Any, low: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per document: bytes, hashtags ('#' + letter/digit), sentence punctuation, capitalised words."""
    raw, offsets = _string_bytes(arr)
    lowb, _ = _string_bytes(low)
    n = len(arr)
    lengths = np.diff(offsets).astype(np.float64)
    if not raw.size:
        zeros = np.zeros(n)
        return lengths, zeros, zeros, zeros
    # range tests with uint8 wrap-around instead of 256-entry lookup tables: fancy indexing by bytes
    # costs more than the whole rest of this function
    alnum = ((lowb - np.uint8(97)) < 26) | ((lowb - np.uint8(48)) < 10)
    hashtag = np.zeros(raw.size, dtype=bool)
    hashtag[:-1] = (lowb[:-1] == ord("#")) & alnum[1:]
    hashtag[offsets[1:-1] - 1] = False  # never pair a '#' with the next document's first byte
    punct = np.zeros(raw.size, dtype=bool)
    for ch in b".,!?;\n":
        punct |= lowb == ch
    word_start = np.empty(raw.size, dtype=bool)
    word_start[0] = True
    np.logical_not(alnum[:-1], out=word_start[1:])
    word_start[offsets[:-1][offsets[:-1] < raw.size]] = True  # a document's first byte starts a word
    capital = (raw != lowb) & word_start  # ascii_lower changed it: an upper-case ASCII letter
    return lengths, _per_doc(hashtag, offsets), _per_doc(punct, offsets), _per_doc(capital, offsets)


def _char_ngrams(texts: Sequence[str], config: FeaturizerConfig) -> tuple[np.ndarray, np.ndarray]:
    """(doc, bucket) of every byte n-gram, by polynomial prefix hashes over the chunk's bytes."""
    low, _, _ = _encode(texts)
    m = low.size
    pw, inv = _POWERS.get(m)
    docs, buckets = [], []
    with np.errstate(over="ignore"):
        prefix = np.empty(m + 1, dtype=np.uint64)
        prefix[0] = 0
        np.cumsum((low.astype(np.uint64) + np.uint64(1)) * pw[:m], out=prefix[1:])
        byte_doc = np.cumsum(low == 0)  # a NUL belongs to the next doc; windows may not start on it
        for k in config.char_ngrams:
            if m < k:
                continue
            i = np.arange(m - k + 1)
            i = i[(byte_doc[i] == byte_doc[i + k - 1]) & (low[: m - k + 1] != 0)]
            docs.append(byte_doc[i])
            h = (prefix[i + k] - prefix[i]) * inv[i] + np.uint64(k)
            buckets.append(_bucket(h, _SALTS["char"], config.char_bits))
    if not docs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(docs), np.concatenate(buckets)


class Featurizer:
    """Fitted featuriser: IDF per hashed block and the mean / scale of the stuffing features."""

    def __init__(self, config: FeaturizerConfig | None = None) -> None:
        self.config = config or FeaturizerConfig()
        self.idf: dict[str, np.ndarray] = {}
        self.dense_mean = np.zeros(len(DENSE_FEATURES))
        self.dense_scale = np.ones(len(DENSE_FEATURES))

    @property
    def n_features(self) -> int:
        return sum(1 << bits for _, bits in self.config.blocks()) + len(DENSE_FEATURES)

    def fit(self, texts: Sequence[str], chunk_size: int = 20000) -> Featurizer:
        df = {name: np.zeros(1 << bits, dtype=np.float64) for name, bits in self.config.blocks()}
        dense = []
        n = 0
        for start in range(0, len(texts), chunk_size):
            chunk = featurize_chunk(texts[start : start + chunk_size], self.config)
            n += chunk.n
            dense.append(chunk.dense)
            for name, (doc, bucket) in chunk.occurrences.items():
                bits = dict(self.config.blocks())[name]
                pairs = _sorted_unique(doc.astype(np.int64) << bits | bucket)  # one count per (doc, bucket)
                df[name] += np.bincount(pairs & ((1 << bits) - 1), minlength=1 << bits)
        self.idf = {name: (np.log((1.0 + n) / (1.0 + d)) + 1.0).astype(np.float32) for name, d in df.items()}
        dense_all = np.concatenate(dense) if dense else np.zeros((0, len(DENSE_FEATURES)))
        self.dense_mean = dense_all.mean(axis=0) if n else np.zeros(len(DENSE_FEATURES))
        std = dense_all.std(axis=0) if n else np.ones(len(DENSE_FEATURES))
        self.dense_scale = np.where(std > 1e-9, std, 1.0)
        return self

    def _weights(self, chunk: _Chunk) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per block: doc, bucket, value = idf / ||idf-weighted counts of the doc|| (per occurrence)."""
        out = {}
        for name, (doc, bucket) in chunk.occurrences.items():
            w = self.idf[name][bucket].astype(np.float64)
            norm = np.sqrt(np.bincount(doc, weights=w * w, minlength=chunk.n))
            out[name] = (doc, bucket, w / np.where(norm > 0, norm, 1.0)[doc])
        return out

    def dense_features(self, chunk: _Chunk) -> np.ndarray:
        return (chunk.dense - self.dense_mean) / self.dense_scale * self.config.dense_scale

    def transform(self, texts: Sequence[str]) -> Any:
        """CSR matrix ``(n, n_features)`` (training; scoring uses :meth:`score_chunk` instead)."""
        import scipy.sparse as sp

        chunk = featurize_chunk(texts, self.config)
        mats = []
        for name, bits in self.config.blocks():
            doc, bucket, value = self._weights(chunk)[name]
            mat = sp.csr_matrix((value, (doc, bucket)), shape=(chunk.n, 1 << bits))
            mat.sum_duplicates()
            mats.append(mat)
        mats.append(sp.csr_matrix(self.dense_features(chunk)))
        return sp.hstack(mats, format="csr")

    def score_chunk(self, texts: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        """Linear scores ``X @ coef.T + intercept`` without materialising ``X``; coef is ``(L, n_features)``."""
        chunk = featurize_chunk(texts, self.config)
        n_heads = coef.shape[0]
        scores = np.tile(intercept.astype(np.float64), (chunk.n, 1))
        offset = 0
        for name, bits in self.config.blocks():
            doc, bucket = chunk.occurrences[name]
            # the same sums as X @ coef with X from _weights, but the per-document L2 norm divides the
            # per-document sums instead of every occurrence
            w = self.idf[name][bucket].astype(np.float64)
            norm = np.sqrt(np.bincount(doc, weights=w * w, minlength=chunk.n))
            inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
            block = coef[:, offset : offset + (1 << bits)]
            for j in range(n_heads):
                scores[:, j] += np.bincount(doc, weights=block[j, bucket] * w, minlength=chunk.n) * inv
            offset += 1 << bits
        scores += self.dense_features(chunk) @ coef[:, offset:].T
        return scores

    def state(self) -> dict[str, Any]:
        return {
            "idf": {k: np.asarray(v) for k, v in self.idf.items()},
            "dense_mean": np.asarray(self.dense_mean, dtype=np.float64),
            "dense_scale": np.asarray(self.dense_scale, dtype=np.float64),
        }

    @classmethod
    def from_state(cls, config: FeaturizerConfig, state: dict[str, Any]) -> Featurizer:
        self = cls(config)
        self.idf = {k: np.asarray(v, dtype=np.float32) for k, v in state["idf"].items()}
        self.dense_mean = np.asarray(state["dense_mean"], dtype=np.float64)
        self.dense_scale = np.asarray(state["dense_scale"], dtype=np.float64)
        expected = {name: 1 << bits for name, bits in config.blocks()}
        got = {k: v.size for k, v in self.idf.items()}
        if got != expected or self.dense_mean.size != len(DENSE_FEATURES):
            raise ValueError(
                f"featuriser state does not match its config (idf sizes {got}, expected {expected})"
            )
        return self


# --------------------------------------------------------------------------------------------------
# Explanations
# --------------------------------------------------------------------------------------------------


def _brands_in(tokens: list[str]) -> list[str]:
    found: list[str] = []
    i = 0
    while i < len(tokens):
        pair = f"{tokens[i]} {tokens[i + 1]}" if i + 1 < len(tokens) else ""
        if pair in _BRAND_BIGRAM_SET:
            found.append(pair)
            i += 2
            continue
        if tokens[i] in _BRAND_SET:
            found.append(tokens[i])
        i += 1
    return found


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _listing(items: list[str], k: int = 3) -> str:
    return ", ".join(items[:k]) + (", …" if len(items) > k else "")


def describe_evidence(text: str) -> dict[str, Any]:
    """Keyword-stuffing evidence in one listing (used for reasons and the report)."""
    low = (text or "").lower()
    marker = _MARKER_RE_STR.search(low)
    tokens = _tokens(low)
    brands = _unique(_brands_in(tokens))
    after_text = low[marker.end() :] if marker else ""
    after_tokens = _tokens(after_text)
    hashtags = _unique(re.findall(r"#([a-z0-9_]+)", low))
    return {
        "marker": (marker.group(0).strip() if marker else None),
        "marker_word": (marker.group(1) if marker else None),
        "brands": brands,
        "brands_after_marker": _unique(_brands_in(after_tokens)),
        "terms_after_marker": _unique(after_tokens),
        "hashtags": hashtags,
        "n_tokens": len(tokens),
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


# --------------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------------


@dataclass
class BaselineTrainingArguments:
    """How the baseline is trained."""

    Cs: tuple[float, ...] = field(
        default=(1.0, 4.0, 16.0, 64.0),
        metadata={"help": "Inverse regularisation strengths tried by cross-validation on train."},
    )
    cv: int = field(default=5, metadata={"help": "Folds for choosing C and for out-of-fold calibration."})
    seed: int = field(default=0, metadata={"help": "Seed of the fold split."})
    max_iter: int = field(default=3000, metadata={"help": "Solver iterations of each logistic regression."})


def _is_soft(y: np.ndarray) -> bool:
    return bool(np.any((y > 0) & (y < 1)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def _fit_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``p = sigmoid(a z + b)`` on out-of-fold scores, with Platt's smoothed targets.

    The smoothed targets keep the optimum finite when the scores separate the classes perfectly (small
    or easy data); a tiny ridge on ``a`` and L-BFGS keep the fit stable where Newton steps overshoot.
    Soft targets (probabilities, not all 0/1) are used as they are: they are never perfectly separable.
    """
    from scipy.optimize import minimize

    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if _is_soft(y):
        t = y
    else:
        n_pos = float(y.sum())
        n_neg = float(y.size - n_pos)
        t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        u = a * z + b
        # log(1 + e^u) computed stably
        log1pexp = np.logaddexp(0.0, u)
        value = np.sum(log1pexp - t * u) + 1e-3 * a * a
        p = _sigmoid(u)
        grad = np.array([np.sum((p - t) * z) + 2e-3 * a, np.sum(p - t)])
        return float(value), grad

    res = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = res.x
    return float(a), float(b)


class BaselineClassifier:
    """Hashed TF-IDF + keyword-stuffing features → logistic regression (one head per label), calibrated.

    Binary by default (``labels=None``: one head, probability of ``spam``). With ``labels=[...]`` it is
    multi-label: ``fit(texts, Y)`` with ``Y`` of shape ``(n, L)`` and ``predict_proba`` returns ``(n, L)``.
    """

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        featurizer: FeaturizerConfig | None = None,
        policy: Thresholds | None = None,
    ) -> None:
        self.labels = list(labels) if labels is not None else None
        if self.labels is not None and (not self.labels or len(set(self.labels)) != len(self.labels)):
            raise ValueError(f"labels must be distinct and non-empty, got {labels!r}")
        self.featurizer = Featurizer(featurizer)
        self.policy = policy
        self.coef_: np.ndarray | None = None  # (L, n_features) float32
        self.intercept_: np.ndarray | None = None  # (L,)
        self.calibration_: np.ndarray | None = None  # (L, 2): Platt a, b
        self.training_: dict[str, Any] = {}

    # -- properties ----------------------------------------------------------------------------------
    @property
    def multilabel(self) -> bool:
        return self.labels is not None

    @property
    def head_names(self) -> list[str]:
        return list(self.labels) if self.labels is not None else ["spam"]

    def _check_fitted(self) -> None:
        if self.coef_ is None:
            raise RuntimeError("the baseline is not fitted: call fit() or from_pretrained()")

    # -- training ------------------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        y: Any,
        args: BaselineTrainingArguments | None = None,
        *,
        progress: bool = False,
    ) -> BaselineClassifier:
        """Fit on training data only. ``C`` per head by stratified CV log-loss; Platt calibration on the
        out-of-fold scores of the chosen ``C``.

        ``y`` holds 0/1 labels, or probabilities in [0, 1] (soft targets, e.g. a teacher's): a head with
        any fractional target is fitted on the exact soft cross-entropy, each row entered once as a
        positive with weight ``p`` and once as a negative with weight ``1 - p``; folds are stratified on
        ``p >= 0.5``.
        """
        import scipy.sparse as sp
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
        from tqdm.auto import tqdm

        args = args or BaselineTrainingArguments()
        texts = ["" if t is None else str(t) for t in texts]
        Y = np.asarray(y)
        if self.multilabel:
            if Y.ndim != 2 or Y.shape != (len(texts), len(self.head_names)):
                raise ValueError(
                    f"multi-label y must have shape ({len(texts)}, {len(self.head_names)}), got {Y.shape}"
                )
        else:
            if Y.ndim != 1 or Y.shape[0] != len(texts):
                raise ValueError(f"binary y must have shape ({len(texts)},), got {Y.shape}")
            Y = Y[:, None]
        try:
            Y = Y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError("labels must be 0/1 or probabilities in [0, 1]") from None
        if not (np.isfinite(Y).all() and (Y >= 0).all() and (Y <= 1).all()):
            raise ValueError("labels must be 0/1 or probabilities in [0, 1]")
        X_full = self.featurizer.fit(texts).transform(texts)
        # Only columns seen in training can get a non-zero weight: solve on those (much smaller problem).
        used = np.flatnonzero(X_full.getnnz(axis=0))
        X = X_full[:, used]
        coefs, intercepts, calib, record = [], [], [], {}
        bar = tqdm(
            total=len(self.head_names) * (len(args.Cs) * args.cv + 1), disable=not progress, desc="baseline"
        )
        for j, name in enumerate(self.head_names):
            yj = Y[:, j]
            soft = _is_soft(yj)
            hard = (yj >= 0.5).astype(np.int64)
            n_pos = int(hard.sum())
            if n_pos == 0 or n_pos == yj.size:
                raise ValueError(
                    f"label {name!r} has a single class in the training data ({n_pos} of {yj.size})"
                )
            folds = max(2, min(args.cv, n_pos, yj.size - n_pos))
            skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=args.seed)
            splits = list(skf.split(np.zeros(yj.size), hard))

            def fit_lr(rows: np.ndarray, C: float, yj: np.ndarray = yj, soft: bool = soft) -> Any:
                lr = LogisticRegression(C=C, max_iter=args.max_iter, solver="liblinear")
                if not soft:
                    return lr.fit(X[rows], yj[rows].astype(np.int64))
                both = sp.vstack([X[rows], X[rows]], format="csr")
                target = np.r_[np.ones(rows.size, np.int64), np.zeros(rows.size, np.int64)]
                return lr.fit(both, target, sample_weight=np.r_[yj[rows], 1.0 - yj[rows]])

            best = None
            for C in args.Cs:
                oof = np.zeros(yj.size)
                for tr, te in splits:
                    oof[te] = fit_lr(tr, C).decision_function(X[te])
                    bar.update(1)
                p = np.clip(_sigmoid(oof), 1e-12, 1 - 1e-12)
                loss = float(-np.mean(yj * np.log(p) + (1 - yj) * np.log(1 - p)))
                if best is None or loss < best[0]:
                    best = (loss, C, oof)
            assert best is not None
            loss, C, oof = best
            a, b = _fit_platt(oof, yj)
            lr = fit_lr(np.arange(yj.size), C)
            bar.update(1)
            coef = np.zeros(X_full.shape[1], dtype=np.float32)
            coef[used] = lr.coef_[0]
            coefs.append(coef)
            intercepts.append(float(lr.intercept_[0]))
            calib.append((a, b))
            record[name] = {
                "C": float(C),
                "cv_log_loss": loss,
                "platt": [a, b],
                "n_pos": n_pos,
                "targets": "soft" if soft else "hard",
            }
        bar.close()
        self.coef_ = np.vstack(coefs)
        self.intercept_ = np.asarray(intercepts, dtype=np.float64)
        self.calibration_ = np.asarray(calib, dtype=np.float64)
        self.training_ = {"n_train": len(texts), "heads": record, "args": asdict(args)}
        return self

    # -- scoring -------------------------------------------------------------------------------------
    def _proba_chunk(self, texts: Sequence[str]) -> np.ndarray:
        assert self.coef_ is not None and self.intercept_ is not None and self.calibration_ is not None
        z = self.featurizer.score_chunk(texts, self.coef_, self.intercept_)
        p = _sigmoid(z * self.calibration_[:, 0] + self.calibration_[:, 1])
        return p if self.multilabel else p[:, 0]

    def score_chunks(
        self, texts: Iterable[str], chunk_size: int = 2048, n_jobs: int | None = None
    ) -> Iterator[np.ndarray]:
        """Calibrated probabilities, one array per chunk of ``chunk_size`` texts, in input order.

        Consumes ``texts`` lazily and keeps at most ``2 * n_jobs`` chunks in flight, so memory is flat
        in the number of rows. ``n_jobs`` threads (default: all cores) — the work is in NumPy.
        """
        self._check_fitted()
        n_jobs = n_jobs or os.cpu_count() or 1
        iterator = iter(texts)

        def next_chunk() -> list[str]:
            chunk = []
            for t in iterator:
                chunk.append("" if t is None else str(t))
                if len(chunk) >= chunk_size:
                    break
            return chunk

        if n_jobs <= 1:
            while chunk := next_chunk():
                yield self._proba_chunk(chunk)
            return
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            pending: deque[Any] = deque()
            while True:
                while len(pending) < 2 * n_jobs and (chunk := next_chunk()):
                    pending.append(pool.submit(self._proba_chunk, chunk))
                if not pending:
                    return
                yield pending.popleft().result()

    def predict_proba(
        self, texts: Sequence[str] | str, *, chunk_size: int = 2048, n_jobs: int | None = None
    ) -> np.ndarray:
        """Spam probability ``(n,)`` (binary) or per-label probabilities ``(n, L)`` (multi-label)."""
        if isinstance(texts, str):
            texts = [texts]
        parts = list(self.score_chunks(texts, chunk_size=chunk_size, n_jobs=n_jobs))
        if not parts:
            return np.zeros((0, len(self.head_names))) if self.multilabel else np.zeros(0)
        return np.concatenate(parts)

    def top_terms(self, text: str, k: int = 4, head: int = 0) -> list[str]:
        """Words of ``text`` whose unigram weights push hardest towards the label."""
        self._check_fitted()
        assert self.coef_ is not None
        words = _unique(_tokens(text or ""))
        if not words:
            return []
        hashes = np.array([_token_hash_py(w) for w in words], dtype=np.uint64)
        buckets = _bucket(hashes, _SALTS["word"], self.featurizer.config.word_bits)
        w = self.coef_[head, buckets] * self.featurizer.idf["word"][buckets]
        order = np.argsort(-w)
        return [words[i] for i in order[:k] if w[i] > 0]

    def explain(self, text: str, confidence: float | None = None) -> str:
        """A one-line reason for the verdict on ``text`` (binary models)."""
        if confidence is None:
            confidence = float(np.atleast_1d(self.predict_proba([text], n_jobs=1))[0])
        return reason_for(text, confidence, self.top_terms(text) if confidence >= 0.5 else ())

    def __call__(
        self,
        texts: str | Sequence[str],
        policy: Thresholds | dict[str, Any] | str | os.PathLike[str] | None = None,
        *,
        reason: bool = True,
        batch_size: int = 2048,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Verdicts (see :mod:`hf_spamguard.verdict`); ``decision`` added when a policy is given or saved."""
        if self.multilabel:
            raise TypeError("verdicts are binary; use predict_proba() for a multi-label model")
        single = isinstance(texts, str)
        items = [texts] if single else ["" if t is None else str(t) for t in texts]
        th = as_thresholds(policy) if policy is not None else self.policy
        probs = self.predict_proba(items, chunk_size=batch_size)
        decisions = decide(probs, th) if th is not None else [None] * len(items)
        verdicts = [
            make_verdict(
                float(p),
                self.explain(t, float(p)) if reason else "",
                decision=None if d is None else str(d),
            )
            for t, p, d in zip(items, probs, decisions, strict=True)
        ]
        return verdicts[0] if single else verdicts

    # -- persistence ---------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        cfg = asdict(self.featurizer.config)
        cfg["char_ngrams"] = list(cfg["char_ngrams"])
        return {
            "model_type": MODEL_TYPE,
            "task": "multi-label" if self.multilabel else "binary",
            "labels": self.head_names,
            "id2label": {"0": "not_spam", "1": "spam"} if not self.multilabel else None,
            "featurizer": cfg,
            "dense_features": list(DENSE_FEATURES),
            "training": self.training_,
            "format_version": 1,
        }

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.skops``, ``config.json`` and (binary with a policy) ``policy.json``; atomic per file."""
        import skops.io as sio

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "featurizer": self.featurizer.state(),
            "coef": self.coef_,
            "intercept": self.intercept_,
            "calibration": self.calibration_,
        }
        atomic_write_bytes(directory / MODEL_FILE, sio.dumps(state))
        atomic_write_bytes(
            directory / CONFIG_FILE, (json.dumps(self.config_dict(), indent=2, default=float) + "\n").encode()
        )
        if self.policy is not None:
            self.policy.save(directory)
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, revision: str | None = None, token: str | None = None
    ) -> BaselineClassifier:
        """Load a folder written by :meth:`save_pretrained`, or a Hub repo id (``"org/name"``, downloaded
        once into the Hugging Face cache); refuses skops files with untrusted types."""
        import skops.io as sio

        from hf_spamguard.hub_io import local_folder

        directory = local_folder(directory, revision=revision, token=token)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{directory} is not a baseline model folder: no {CONFIG_FILE}")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("model_type") != MODEL_TYPE:
            raise ValueError(
                f"{config_path}: model_type is {config.get('model_type')!r}, expected {MODEL_TYPE!r}"
            )
        model_path = directory / MODEL_FILE
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} is missing")
        present = skops_types(model_path)
        untrusted = sorted(present - set(TRUSTED_TYPES))
        if untrusted:
            raise UntrustedModelError(
                f"{model_path} contains types that are not trusted: {untrusted}; refusing to load"
            )
        state = sio.load(model_path, trusted=sorted(present))
        fcfg = dict(config["featurizer"])
        fcfg["char_ngrams"] = tuple(fcfg.get("char_ngrams", ()))
        labels = None if config.get("task") == "binary" else list(config["labels"])
        policy = None
        if (directory / "policy.json").is_file():
            policy = Thresholds.load(directory)
        self = cls(labels=labels, featurizer=FeaturizerConfig(**fcfg), policy=policy)
        self.featurizer = Featurizer.from_state(self.featurizer.config, state["featurizer"])
        self.coef_ = np.asarray(state["coef"], dtype=np.float32)
        self.intercept_ = np.asarray(state["intercept"], dtype=np.float64)
        self.calibration_ = np.asarray(state["calibration"], dtype=np.float64)
        self.training_ = config.get("training", {})
        if self.coef_.shape != (len(self.head_names), self.featurizer.n_features):
            raise ValueError(f"{model_path}: weights of shape {self.coef_.shape} do not match the config")
        return self


def skops_types(path: str | os.PathLike[str]) -> set[str]:
    """Every type a skops file would instantiate (``module.Class``), read from its ``schema.json``.

    ``skops.io.get_untrusted_types`` lists only the types skops does not trust by default, and skops
    trusts e.g. scikit-learn estimators and NumPy functions; a model that holds nothing but arrays and
    built-ins must refuse those too, so the whole tree is checked against :data:`TRUSTED_TYPES`.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise UntrustedModelError(f"{path}: not a readable skops file ({err})") from err
    types: set[str] = set()
    todo: list[Any] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__module__" in node:
                types.add(f"{node.get('__module__')}.{node.get('__class__')}")
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return types


def is_baseline_folder(directory: str | os.PathLike[str]) -> bool:
    """True when ``directory/config.json`` says ``"model_type": "spamguard-baseline"``."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (json.JSONDecodeError, AttributeError):
        return False


def seed_reference_pipeline() -> Any:
    """The seed notebook's model, for comparisons: word TF-IDF (10k features, English stop words) + LR."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(max_features=10000, stop_words="english"), LogisticRegression(max_iter=1000)
    )


__all__ = [
    "BRANDS",
    "BaselineClassifier",
    "BaselineTrainingArguments",
    "DENSE_FEATURES",
    "Featurizer",
    "FeaturizerConfig",
    "MODEL_TYPE",
    "TRUSTED_TYPES",
    "UntrustedModelError",
    "describe_evidence",
    "is_baseline_folder",
    "reason_for",
    "seed_reference_pipeline",
]


def train_baseline(
    dataset: Any,
    out: str | os.PathLike[str],
    *,
    target_demote_precision: float = 0.98,
    target_recall: float = 0.95,
    review_budget: float = 0.15,
    cv: int = 5,
    seed: int = 0,
    Cs: Sequence[float] | None = None,
    featurizer: FeaturizerConfig | None = None,
) -> dict[str, Any]:
    """Fit on ``train`` only, select thresholds on ``validation``, save the folder; returns a summary.

    ``dataset`` is anything :func:`hf_spamguard.data.load_listings` accepts (or a ``DatasetDict``).
    """
    from hf_spamguard.policy import evaluate_policy, flatten_report, select_thresholds

    if hasattr(dataset, "keys") and not isinstance(dataset, str | os.PathLike):
        dd = dataset
    else:
        from hf_spamguard.data import load_listings

        dd = load_listings(dataset)
    for split in ("train", "validation"):
        if split not in dd:
            raise ValueError(f"{dataset}: the dataset needs a {split!r} split (has {', '.join(dd)})")

    def columns(split: str) -> tuple[list[str], np.ndarray]:
        ds = dd[split].select_columns(["description", "label"])
        texts = ["" if t is None else str(t) for t in ds["description"]]
        return texts, np.asarray(ds["label"], dtype=np.int64)

    train_texts, train_y = columns("train")
    val_texts, val_y = columns("validation")
    args = BaselineTrainingArguments(cv=cv, seed=seed)
    if Cs is not None:
        args.Cs = tuple(float(c) for c in Cs)
    model = BaselineClassifier(featurizer=featurizer).fit(train_texts, train_y, args, progress=True)
    val_p = model.predict_proba(val_texts)
    selection = select_thresholds(
        val_y,
        val_p,
        target_demote_precision=target_demote_precision,
        target_recall=target_recall,
        review_budget=review_budget,
    )
    model.policy = selection.thresholds
    model.training_["validation"] = flatten_report(evaluate_policy(val_y, val_p, selection.thresholds))
    model.save_pretrained(out)
    selection.save(out)  # policy.json with the selection record (targets, achieved, notes)
    # cards sits above this module and only renders the facts passed here: the lazy import keeps the
    # import graph pointing down at module level (the same as distill).
    from hf_spamguard.cards import render_baseline_card

    render_baseline_card(
        out,
        dataset=str(dataset) if isinstance(dataset, str | os.PathLike) else None,
        eval_results=model.training_["validation"],
        eval_split="validation",
        eval_size=len(val_texts),
        training_config={**asdict(args), "featurizer": asdict(model.featurizer.config)},
        eval_note="Measured on the validation split, where the thresholds were also selected: "
        "evaluate on a held-out test split (`spamguard predict` + `spamguard evaluate`) for unbiased numbers.",
    )
    return {
        "out": str(out),
        "n_train": len(train_texts),
        "n_validation": len(val_texts),
        "selection": selection.to_dict(),
    }
