"""Hashing kernels of the featuriser: polynomial token / byte n-gram hashes, set membership by hash, and
the chunk's tokens with their byte positions (Arrow's C++ kernels split, NumPy hashes).

Why hashing in NumPy instead of ``TfidfVectorizer``: scikit-learn's vectorizers tokenise and look up
every token in Python, which dominates scoring time on millions of rows. Here a chunk of listings is
split and de-duplicated in Arrow's C++ kernels and every n-gram is hashed with vectorised polynomial
prefix hashes (uint64 arithmetic wraps, which is exactly the ring we want).

The hashes are part of the saved model's meaning (weights are indexed by bucket): changing a constant or
the tokenisation here invalidates every saved baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from hf_spamguard.baseline.lexicon import BRAND_KEY_DROP, BRAND_KEY_TRIM, TRIM_CHARS

_P = 0x100000001B3  # FNV-64 prime: odd, so invertible modulo 2**64
_P_INV = pow(_P, -1, 2**64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
PAIR = np.uint64(0xC2B2AE3D27D4EB4F)
SALTS = {"word": np.uint64(0x1234567), "bigram": np.uint64(0x7654321), "char": np.uint64(0x2468ACE)}


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


POWERS = _Powers()


def token_hash_py(token: str) -> int:
    """The featuriser's token hash for one token, in Python: sum((byte + 1) * P**k) mod 2**64."""
    h = 0
    p = 1
    for b in token.encode("utf-8"):
        h = (h + (b + 1) * p) % 2**64
        p = (p * _P) % 2**64
    return h


def pair_hash_py(h1: int, h2: int) -> int:
    """The hash of a token pair (bigrams), in Python."""
    return (h1 * int(PAIR) + h2) % 2**64


def hash_set(words: Iterable[str]) -> np.ndarray:
    """Sorted distinct :func:`token_hash_py` of ``words`` (for :func:`member`)."""
    return np.array(sorted({token_hash_py(w) for w in words}), dtype=np.uint64)


def hash_strings(strings: Any) -> np.ndarray:
    """:func:`token_hash_py` of every string of an Arrow (large_)string array, vectorised over its
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
    pw, inv = POWERS.get(m)
    prefix = np.empty(m + 1, dtype=np.uint64)
    prefix[0] = 0
    with np.errstate(over="ignore"):
        np.cumsum((data.astype(np.uint64) + np.uint64(1)) * pw[:m], out=prefix[1:])
        return (prefix[offsets[1:]] - prefix[offsets[:-1]]) * inv[offsets[:-1]]


def sorted_unique(keys: np.ndarray) -> np.ndarray:
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


def member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin`` for a small sorted set: a 64k-entry prefilter on the top bits, then an exact binary
    search on the few candidates (much faster than ``np.isin`` on hundreds of thousands of values)."""
    return lookup(values, sorted_set) >= 0


def lookup(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Index of each of ``values`` in ``sorted_set``, -1 where absent (same method as :func:`member`)."""
    out = np.full(values.shape, -1, dtype=np.int64)
    if not sorted_set.size or not values.size:
        return out
    table = _prefilter(sorted_set)
    cand = np.flatnonzero(table[(values >> np.uint64(64 - _FILTER_BITS)).astype(np.int64)])
    if cand.size:
        v = values[cand]
        idx = np.minimum(np.searchsorted(sorted_set, v), sorted_set.size - 1)
        hit = sorted_set[idx] == v
        out[cand[hit]] = idx[hit]
    return out


def bucket(h: np.ndarray, salt: np.uint64, bits: int) -> np.ndarray:
    """The hashed-space column of each hash (top ``bits`` bits of a salted multiplicative mix)."""
    with np.errstate(over="ignore"):
        return (((h ^ salt) * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


def word_buckets(words: Sequence[str], bits: int) -> np.ndarray:
    """The word-unigram bucket of each of ``words`` (already tokenised), in a space of ``2**bits``: the
    column the featuriser gives the word, computed in Python for a handful of words (explanations)."""
    hashes = np.array([token_hash_py(w) for w in words], dtype=np.uint64)
    return bucket(hashes, SALTS["word"], bits)


def bigram_buckets(pairs: Sequence[tuple[str, str]], bits: int) -> np.ndarray:
    """The bigram bucket of each ``(first, second)`` token pair (explanations)."""
    hashes = np.array([pair_hash_py(token_hash_py(a), token_hash_py(b)) for a, b in pairs], dtype=np.uint64)
    return bucket(hashes, SALTS["bigram"], bits)


class Tokens(NamedTuple):
    """The kept (non-empty after trimming) word tokens of a chunk, in document order."""

    doc: np.ndarray  # document index of every token
    hash: np.ndarray  # 64-bit hash of every token (the n-gram features' key)
    dict_index: np.ndarray  # index of the token in ``dictionary``
    dictionary: Any  # the chunk's distinct trimmed tokens (Arrow string array)
    dict_hash: np.ndarray  # hash of every dictionary entry
    dict_key: np.ndarray  # hash of each entry's brand-lookup spelling (h&m -> hm, levi’s -> levis)
    end: np.ndarray  # byte offset (in the chunk's buffer) of the token's last byte, before trimming
    start: np.ndarray  # byte offset of the token's first byte, before trimming
    gap_before: np.ndarray  # a whitespace piece that trims to nothing ("-", "/", "•"...) precedes it
    next_byte: np.ndarray  # first byte of the next whitespace piece of the document (0 at its end)


def arrow_tokens(low: Any) -> Tokens:
    """The word tokens of a lower-cased Arrow large_string array, hashed, with byte positions.

    Splitting and de-duplication run in Arrow's C++ kernels; the distinct tokens of the chunk are then
    hashed (and given their brand-lookup spelling) once each, in vectorised passes over the dictionary.
    """
    import pyarrow.compute as pc

    # whitespace split + trimming punctuation off both ends: ~6x faster than a regex split, and keeps
    # "off-white", "h&m", "levi's" whole
    lists = pc.ascii_split_whitespace(low)
    raw = pc.list_flatten(lists)
    flat = pc.ascii_trim(raw, characters=TRIM_CHARS)
    parent = np.asarray(pc.list_parent_indices(lists), dtype=np.int64)
    keep = np.asarray(pc.binary_length(flat), dtype=np.int64) > 0
    if not keep.any():
        i64, u64 = np.zeros(0, np.int64), np.zeros(0, np.uint64)
        return Tokens(i64, u64, i64, flat[:0], u64, u64, i64, i64, np.zeros(0, bool), np.zeros(0, np.uint8))
    encoded = pc.dictionary_encode(flat)
    dictionary = encoded.dictionary
    hashes = hash_strings(dictionary)
    keys = _brand_key_hashes(dictionary, hashes)
    idx = np.asarray(encoded.indices, dtype=np.int64)
    raw_len = np.asarray(pc.binary_length(raw), dtype=np.int64)
    nonempty = raw_len > 0
    # Arrow also yields an empty piece where a document starts or ends with whitespace (never kept)
    ends = np.full(len(raw), -1, dtype=np.int64)
    data, _ = string_bytes(low)
    ends[nonempty] = _token_ends(low)
    starts = ends - raw_len + 1
    kept = np.flatnonzero(keep)
    doc = parent[kept]
    # the next piece's first byte ("tags :" has its colon there)
    following = np.minimum(kept + 1, len(raw) - 1)
    has_next = (kept + 1 < len(raw)) & (parent[following] == doc) & nonempty[following]
    next_byte = np.zeros(kept.size, dtype=np.uint8)
    next_byte[has_next] = data[starts[following[has_next]]]
    # a dropped piece between two kept tokens of the same document: its raw index lies between theirs
    # (Arrow yields empty pieces only at a document's ends, so whatever lies between is a separator)
    gap = np.zeros(kept.size, dtype=bool)
    gap[1:] = (np.diff(kept) > 1) & (doc[1:] == doc[:-1])
    ki = idx[kept]
    return Tokens(doc, hashes[ki], ki, dictionary, hashes, keys, ends[kept], starts[kept], gap, next_byte)


_KEY_BYTES = np.zeros(256, dtype=bool)
_KEY_BYTES[list(b"&'.-")] = True
_KEY_BYTES[0xE2] = True  # first byte of the UTF-8 curly quotes


def _brand_key_hashes(dictionary: Any, hashes: np.ndarray) -> np.ndarray:
    """Hash of every dictionary entry's brand-lookup spelling: curly quotes trimmed, then ``& ' ’ - .``
    removed inside (:func:`~hf_spamguard.baseline.lexicon.brand_key`). Only the few entries holding one
    of those bytes go through the regex; the others keep their hash."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data, offsets = string_bytes(dictionary)
    if not data.size:
        return hashes
    odd = np.flatnonzero(np.diff(np.searchsorted(np.flatnonzero(_KEY_BYTES[data]), offsets)) > 0)
    if not odd.size:
        return hashes
    subset = dictionary.take(pa.array(odd))
    keyed = pc.replace_substring_regex(pc.utf8_trim(subset, BRAND_KEY_TRIM), BRAND_KEY_DROP, "")
    keys = hashes.copy()
    keys[odd] = hash_strings(keyed)
    return keys


def _token_ends(low: Any) -> np.ndarray:
    """Last byte of every non-empty whitespace-separated run, in the order ``ascii_split_whitespace``
    returns them (runs never cross documents: a document's last byte ends its last run)."""
    data, offsets = string_bytes(low)
    if not data.size:
        return np.zeros(0, np.int64)
    # ASCII whitespace as Arrow's ascii_split_whitespace sees it: space, \t \n \v \f \r
    word = (data != 32) & ((data - np.uint8(9)) > 4)
    end = np.zeros(data.size, dtype=bool)
    end[:-1] = word[:-1] & ~word[1:]
    last = offsets[1:][offsets[1:] > offsets[:-1]] - 1  # last byte of each non-empty document
    end[last] = word[last]
    return np.flatnonzero(end)


def string_bytes(strings: Any) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets from 0) of an Arrow large_string array, zero-copy."""
    buffers = strings.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def per_doc(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Set bytes of ``mask`` per document (``offsets`` from :func:`string_bytes`)."""
    # the masks are sparse: locating the set bytes and cutting at the offsets is ~4x cheaper than a
    # weighted bincount over a per-byte document index
    return np.diff(np.searchsorted(np.flatnonzero(mask), offsets)).astype(np.float64)


def encode_bytes(texts: Sequence[str]) -> np.ndarray:
    """Lower-cased UTF-8 bytes of the chunk joined by NUL (a NUL inside a listing becomes a space)."""
    texts = ["" if t is None else str(t) for t in texts]
    raw = "\x00".join(texts).encode("utf-8", "replace")
    if raw.count(0) != max(len(texts) - 1, 0):
        raw = "\x00".join(t.replace("\x00", " ") for t in texts).encode("utf-8", "replace")
    return np.frombuffer(raw.lower(), dtype=np.uint8)


__all__ = [
    "PAIR",
    "POWERS",
    "SALTS",
    "Tokens",
    "arrow_tokens",
    "bigram_buckets",
    "bucket",
    "encode_bytes",
    "hash_set",
    "hash_strings",
    "lookup",
    "member",
    "pair_hash_py",
    "per_doc",
    "sorted_unique",
    "string_bytes",
    "token_hash_py",
    "word_buckets",
]
