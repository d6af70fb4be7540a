"""The fast featuriser: hashed word / bigram / character n-gram TF-IDF + keyword-stuffing features.

Why hashing in NumPy instead of ``TfidfVectorizer``: scikit-learn's vectorizers tokenise and look up
every token in Python, which dominates scoring time on millions of rows. Here a chunk of listings is
split and de-duplicated in Arrow's C++ kernels and every n-gram is hashed with vectorised polynomial
prefix hashes (uint64 arithmetic wraps, which is exactly the ring we want), so featurising is a handful
of NumPy passes. Scoring never builds the sparse matrix: a linear model's score is a sum over n-gram
occurrences, computed with ``np.bincount`` (:meth:`Featurizer.score_chunk`).

The hashes are part of the saved model's meaning (weights are indexed by bucket): changing a constant,
the tokenisation or the lexicon here invalidates every saved baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from hf_spamguard.baseline.lexicon import ARROW_MARKER, BRAND_BIGRAMS, BRANDS, TRIM_CHARS

# --------------------------------------------------------------------------------------------------
# Hashing kernels
# --------------------------------------------------------------------------------------------------

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

#: The keyword-stuffing features, in column order (they follow the hashed blocks in the matrix).
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


def word_buckets(words: Sequence[str], bits: int) -> np.ndarray:
    """The word-unigram bucket of each of ``words`` (already tokenised), in a space of ``2**bits``: the
    column the featuriser gives the word, computed in Python for a handful of words (explanations)."""
    hashes = np.array([_token_hash_py(w) for w in words], dtype=np.uint64)
    return _bucket(hashes, _SALTS["word"], bits)


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
    flat = pc.ascii_trim(raw, characters=TRIM_CHARS)
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
    parts = pc.split_pattern_regex(low, ARROW_MARKER, max_splits=1)
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


__all__ = ["DENSE_FEATURES", "Featurizer", "FeaturizerConfig", "featurize_chunk", "word_buckets"]
