"""The fast featuriser: hashed word / bigram / character n-gram TF-IDF + keyword-stuffing features.

A chunk of listings is tokenised and hashed by :mod:`~hf_spamguard.baseline.hashing` (Arrow's C++
kernels split, NumPy hashes), its stuffing features come from :mod:`~hf_spamguard.baseline.stuffing`.
Scoring never builds the sparse matrix: a linear model's score is a sum over n-gram occurrences,
computed with ``np.bincount`` (:meth:`Featurizer.linear_scores`).

Weights per block: idf ``log((1 + n) / (1 + df)) + 1`` fitted on the training rows, 0 for buckets seen
in fewer than ``min_df`` training documents (one-off n-grams only add noise); each block is
L2-normalised on its own. Word and bigram blocks count every occurrence (raw tf; on the Depop data
sublinear tf there was no better and costs a sort per chunk); the character block, when on, uses
sublinear tf ``1 + log(count)`` per (document, bucket) by default, which is what makes it as good as
scikit-learn's ``char_wb`` TF-IDF (see ``benchmarks/baseline_quality.py``).

The hashes, the tokenisation and the lexicon are part of the saved model's meaning (weights are indexed
by bucket): changing them invalidates every saved baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from hf_spamguard.baseline.hashing import (
    PAIR,
    POWERS,
    SALTS,
    arrow_tokens,
    bucket,
    encode_bytes,
    sorted_unique,
    string_bytes,
    word_buckets,
)
from hf_spamguard.baseline.stuffing import STUFFING_FEATURES, stuffing_features

#: The keyword-stuffing features, in column order (they follow the hashed blocks in the matrix).
DENSE_FEATURES: tuple[str, ...] = STUFFING_FEATURES


@dataclass
class FeaturizerConfig:
    """Settings of the hashed n-gram + keyword-stuffing featuriser."""

    word_bits: int = field(default=18, metadata={"help": "log2 of the hashed word-unigram space (0 = off)."})
    bigram_bits: int = field(default=18, metadata={"help": "log2 of the hashed word-bigram space (0 = off)."})
    # Off by default: character 2-5-grams make the linear stage as good as char_wb TF-IDF, but they
    # cost ~3x the scoring time of everything else together, and with the stuffing stage on top they
    # add little (benchmarks/baseline_quality.py, benchmarks/baseline_speed.py).
    char_bits: int = field(
        default=0, metadata={"help": "log2 of the hashed character n-gram space (0 = off; 20 is good)."}
    )
    char_ngrams: tuple[int, ...] = field(
        default=(2, 3, 4, 5), metadata={"help": "Character (byte) n-gram lengths."}
    )
    char_sublinear: bool = field(
        default=True, metadata={"help": "Character block: tf = 1 + log(count) per document and bucket."}
    )
    min_df: int = field(
        default=2, metadata={"help": "Buckets in fewer training documents than this get idf 0.", "min": 1}
    )
    dense_scale: float = field(
        default=1.0,
        metadata={"help": "Weight of the standardised stuffing features in a linear-only model."},
    )

    def blocks(self) -> list[tuple[str, int]]:
        out = [("word", self.word_bits)] if self.word_bits else []
        if self.bigram_bits:
            out.append(("bigram", self.bigram_bits))
        if self.char_bits and self.char_ngrams:
            out.append(("char", self.char_bits))
        return out


class _Block(NamedTuple):
    """One hashed block of a chunk: an entry per occurrence (raw tf) or per distinct bucket (sublinear)."""

    doc: np.ndarray
    bucket: np.ndarray
    tf: np.ndarray | None  # None: 1 per occurrence
    doc_sorted: bool  # entries are in document order (per-document sums by reduceat)

    def segments(self, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(first entry of each non-empty document, which documents are non-empty) of a document-sorted
        block, for :meth:`doc_sum` (computed once per block: every head sums over the same ranges)."""
        if not self.doc_sorted:
            return None
        bounds = np.searchsorted(self.doc, np.arange(n + 1))
        nonempty = bounds[1:] > bounds[:-1]
        return bounds[:-1][nonempty], nonempty

    def doc_sum(
        self, values: np.ndarray, n: int, segments: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """Per-document sums of ``values`` (one per entry); ``segments``: :meth:`segments` of ``n``."""
        if not self.doc_sorted:
            return np.bincount(self.doc, weights=values, minlength=n)
        # reduceat over contiguous document ranges is several times cheaper than a weighted bincount
        starts, nonempty = segments if segments is not None else self.segments(n)
        out = np.zeros(n)
        if values.size:
            out[nonempty] = np.add.reduceat(values, starts)
        return out


@dataclass
class _Chunk:
    """Featurised chunk: the hashed blocks + the stuffing features."""

    n: int
    occurrences: dict[str, _Block]
    dense: np.ndarray


def featurize_chunk(texts: Sequence[str], config: FeaturizerConfig) -> _Chunk:
    """Hash every n-gram of ``texts`` (strings, or an Arrow string array: nulls count as "") and compute
    the keyword-stuffing features (vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, pa.Array):  # no round trip through Python strings (batch scoring)
        arr = pc.fill_null(texts.cast(pa.large_string()), "")
        # Rebuilt with offsets from 0: a slice's cast keeps its first offset, and Arrow's ascii_lower
        # (pyarrow 26) then misreads such an array. Zero-copy for the bytes.
        data, offsets = string_bytes(arr)
        arr = pa.Array.from_buffers(
            pa.large_string(), len(arr), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        texts = arr.to_pylist() if config.char_bits and config.char_ngrams else arr
    else:
        texts = ["" if t is None else str(t) for t in texts]
        arr = pa.array(texts, type=pa.large_string())
    n = len(arr)
    # ASCII lower-casing keeps byte offsets identical, so per-document byte counts can read the
    # original and lower-cased buffers side by side (the lexicons are ASCII anyway)
    low = pc.ascii_lower(arr)
    tokens = arrow_tokens(low)
    t_doc, th = tokens.doc, tokens.hash
    occ: dict[str, _Block] = {}
    if config.word_bits:
        occ["word"] = _Block(t_doc, bucket(th, SALTS["word"], config.word_bits), None, True)
    if config.bigram_bits:
        same = t_doc[:-1] == t_doc[1:]
        with np.errstate(over="ignore"):
            bh = th[:-1] * PAIR + th[1:]
        occ["bigram"] = _Block(
            t_doc[:-1][same], bucket(bh[same], SALTS["bigram"], config.bigram_bits), None, True
        )
    if config.char_bits and config.char_ngrams:
        doc, buckets = _char_ngrams(texts, config)
        if config.char_sublinear:
            occ["char"] = _sublinear(doc, buckets, config.char_bits)
        else:
            occ["char"] = _Block(doc, buckets, None, False)
    return _Chunk(n=n, occurrences=occ, dense=stuffing_features(arr, low, tokens))


def _sublinear(doc: np.ndarray, buckets: np.ndarray, bits: int) -> _Block:
    """Distinct (doc, bucket) pairs with tf = 1 + log(count) (one sort of the packed pairs)."""
    if not doc.size:
        return _Block(doc, buckets, np.zeros(0), True)
    pairs = np.sort(doc.astype(np.int64) << bits | buckets)
    first = np.r_[True, pairs[1:] != pairs[:-1]]
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, pairs.size])
    distinct = pairs[starts]
    return _Block(distinct >> bits, distinct & ((1 << bits) - 1), 1.0 + np.log(counts), True)


def _char_ngrams(texts: Sequence[str], config: FeaturizerConfig) -> tuple[np.ndarray, np.ndarray]:
    """(doc, bucket) of every byte n-gram, by polynomial prefix hashes over the chunk's bytes."""
    low = encode_bytes(texts)
    m = low.size
    pw, inv = POWERS.get(m)
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
            buckets.append(bucket(h, SALTS["char"], config.char_bits))
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
        """IDF of every block (``min_df`` applied) and the stuffing features' mean / scale, on ``texts``."""
        self.fit_transform_chunks(texts, chunk_size)
        return self

    def fit_transform_chunks(self, texts: Sequence[str], chunk_size: int = 20000) -> list[_Chunk]:
        """:meth:`fit`, returning the featurised chunks (so training featurises its rows once)."""
        bits_of = dict(self.config.blocks())
        df = {name: np.zeros(1 << bits, dtype=np.float64) for name, bits in bits_of.items()}
        chunks = []
        n = 0
        for start in range(0, len(texts), chunk_size):
            chunk = featurize_chunk(texts[start : start + chunk_size], self.config)
            chunks.append(chunk)
            n += chunk.n
            for name, (doc, buckets, _, _) in chunk.occurrences.items():
                bits = bits_of[name]
                pairs = sorted_unique(doc.astype(np.int64) << bits | buckets)  # one count per (doc, bucket)
                df[name] += np.bincount(pairs & ((1 << bits) - 1), minlength=1 << bits)
        min_df = max(int(self.config.min_df), 1)
        self.idf = {
            name: ((np.log((1.0 + n) / (1.0 + d)) + 1.0) * (d >= min_df)).astype(np.float32)
            for name, d in df.items()
        }
        dense_all = (
            np.concatenate([c.dense for c in chunks]) if chunks else np.zeros((0, len(DENSE_FEATURES)))
        )
        self.dense_mean = dense_all.mean(axis=0) if n else np.zeros(len(DENSE_FEATURES))
        std = dense_all.std(axis=0) if n else np.ones(len(DENSE_FEATURES))
        self.dense_scale = np.where(std > 1e-9, std, 1.0)
        return chunks

    def _block_values(
        self, name: str, chunk: _Chunk, segments: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(doc, bucket, tf * idf, 1 / norm per document) of one block.

        The norm is the square root of the sum, over the block's entries (occurrences in a raw-tf block,
        distinct buckets in a sublinear one), of (tf * idf)^2; training and scoring share this definition.
        """
        block = chunk.occurrences[name]
        doc, buckets, tf = block.doc, block.bucket, block.tf
        w = self.idf[name][buckets].astype(np.float64)
        if tf is not None:
            w = w * tf
        norm = np.sqrt(block.doc_sum(w * w, chunk.n, segments))
        inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
        return doc, buckets, w, inv

    def dense_features(self, chunk: _Chunk) -> np.ndarray:
        """The chunk's stuffing features standardised and weighted by ``dense_scale`` (linear models)."""
        return (chunk.dense - self.dense_mean) / self.dense_scale * self.config.dense_scale

    def transform_chunk(self, chunk: _Chunk, *, dense: bool = True) -> Any:
        """CSR matrix ``(n, n_features)`` of a featurised chunk; the stuffing columns are zero when
        ``dense`` is False (a model whose stuffing features go to its second stage)."""
        import scipy.sparse as sp

        mats = []
        for name, bits in self.config.blocks():
            doc, buckets, w, inv = self._block_values(name, chunk)
            mat = sp.csr_matrix((w * inv[doc], (doc, buckets)), shape=(chunk.n, 1 << bits))
            mat.sum_duplicates()
            mats.append(mat)
        values = self.dense_features(chunk) if dense else np.zeros((chunk.n, len(DENSE_FEATURES)))
        mats.append(sp.csr_matrix(values))
        return sp.hstack(mats, format="csr")

    def transform(self, texts: Sequence[str], *, dense: bool = True) -> Any:
        """CSR matrix ``(n, n_features)`` (training; scoring uses :meth:`linear_scores` instead)."""
        return self.transform_chunk(featurize_chunk(texts, self.config), dense=dense)

    def linear_scores(self, chunk: _Chunk, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        """``X @ coef.T + intercept`` of a featurised chunk without materialising ``X``; coef is
        ``(L, n_features)``. Stuffing columns whose weights are all zero are skipped."""
        n_heads = coef.shape[0]
        scores = np.tile(intercept.astype(np.float64), (chunk.n, 1))
        offset = 0
        for name, bits in self.config.blocks():
            entries = chunk.occurrences[name]
            segments = entries.segments(chunk.n)
            doc, buckets, w, inv = self._block_values(name, chunk, segments)
            # the same sums as X @ coef, but the per-document L2 norm divides the per-document sums
            # instead of every occurrence
            weights = coef[:, offset : offset + (1 << bits)]
            for j in range(n_heads):
                scores[:, j] += entries.doc_sum(weights[j, buckets] * w, chunk.n, segments) * inv
            offset += 1 << bits
        dense_coef = coef[:, offset:]
        if dense_coef.any():
            scores += self.dense_features(chunk) @ dense_coef.T
        return scores

    def score_chunk(self, texts: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        """:meth:`linear_scores` of ``texts``."""
        return self.linear_scores(featurize_chunk(texts, self.config), coef, intercept)

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
                f"featuriser state does not match its config (idf sizes {got}, expected {expected}; "
                f"{self.dense_mean.size} stuffing features, expected {len(DENSE_FEATURES)})"
            )
        return self


__all__ = ["DENSE_FEATURES", "Featurizer", "FeaturizerConfig", "featurize_chunk", "word_buckets"]
