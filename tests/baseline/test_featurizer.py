"""The hashing featuriser: fused scoring equals the training matrix, odd texts, keyword-block features."""

from __future__ import annotations

import numpy as np

from hf_spamguard.baseline import DENSE_FEATURES, FeaturizerConfig, featurize_chunk


def test_fused_scoring_matches_the_training_matrix(model, demo_rows):
    texts, _ = demo_rows
    X = model.featurizer.transform(texts[:50])
    direct = X @ model.coef_[0].astype(np.float64) + model.intercept_[0]
    fused = model.featurizer.score_chunk(texts[:50], model.coef_, model.intercept_)[:, 0]
    np.testing.assert_allclose(fused, direct, rtol=1e-5, atol=1e-6)


def test_odd_texts_are_scored(model):
    p = model.predict_proba(["", "a\x00b", None, "ünïcödé 🙂 #tag", "x" * 5000])  # type: ignore[list-item]
    assert p.shape == (5,) and np.isfinite(p).all()
    chunk = featurize_chunk(["a\x00b c", "d"], model.featurizer.config)
    assert chunk.n == 2 and chunk.dense.shape[0] == 2


def test_keyword_block_features_count_the_tokens_after_the_first_marker():
    # Token positions come from the bytes while the tokens come from Arrow's split: leading/trailing
    # whitespace, empty documents, non-ASCII text and a second marker must not shift them.
    texts = [
        "",
        "   ",
        "  Levi jeans. TAGS: nike adidas vintage ",
        "Été robe\t\ttags:\n\nzara gucci y2k. keywords: prada",
        "no block here, just nike",
        "x tags:",
    ]
    dense = featurize_chunk(texts, FeaturizerConfig()).dense
    col = {name: dense[:, i] for i, name in enumerate(DENSE_FEATURES)}
    np.testing.assert_array_equal(col["has_marker"], [0, 0, 1, 1, 0, 1])
    np.testing.assert_allclose(np.expm1(col["log_tokens_after_marker"]), [0, 0, 3, 5, 0, 0])
    np.testing.assert_allclose(np.expm1(col["log_brands_after_marker"]), [0, 0, 2, 3, 0, 0])
    np.testing.assert_allclose(np.expm1(col["log_brand_mentions"]), [0, 0, 3, 3, 1, 0])


def test_fused_scoring_matches_the_matrix_with_a_sublinear_character_block(demo_rows):
    from hf_spamguard.baseline import Featurizer

    texts, _ = demo_rows
    config = FeaturizerConfig(char_bits=16, char_ngrams=(2, 3))
    feat = Featurizer(config).fit(texts[:100])
    coef = np.random.default_rng(0).normal(size=(2, feat.n_features)).astype(np.float32)
    X = feat.transform(texts[100:150])
    direct = X @ coef.T.astype(np.float64)
    fused = feat.score_chunk(texts[100:150], coef, np.zeros(2))
    np.testing.assert_allclose(fused, direct, rtol=1e-6, atol=1e-6)


def test_sublinear_tf_and_min_df():
    from hf_spamguard.baseline import Featurizer

    texts = ["aaaa b", "aa c", "zz zz", "q"]
    feat = Featurizer(FeaturizerConfig(bigram_bits=0, char_bits=12, char_ngrams=(2,))).fit(texts)
    chunk = featurize_chunk(["aaaa"], feat.config)
    block = chunk.occurrences["char"]
    assert block.tf is not None and block.doc.size == 1  # "aa" three times: one entry, tf 1 + log 3
    np.testing.assert_allclose(block.tf, [1 + np.log(3)])
    # "zz" is in one training document only: min_df 2 gives it idf 0; "aa" (two documents) keeps it
    aa, zz = block.bucket[0], featurize_chunk(["zz"], feat.config).occurrences["char"].bucket[0]
    assert feat.idf["char"][aa] > 0 and feat.idf["char"][zz] == 0
    keep_all = Featurizer(FeaturizerConfig(bigram_bits=0, char_bits=12, char_ngrams=(2,), min_df=1)).fit(
        texts
    )
    assert keep_all.idf["char"][zz] > 0


def test_edge_texts_of_the_stuffing_features():
    # a bigram brand's first word with no brand anywhere; only separators; a lone marker; one token
    texts = ["off road bike", "- / |", "tags", "x", "", "ralph lauren, polo"]
    dense = featurize_chunk(texts, FeaturizerConfig()).dense
    assert dense.shape == (6, len(DENSE_FEATURES)) and np.isfinite(dense).all()
    col = {name: dense[:, i] for i, name in enumerate(DENSE_FEATURES)}
    np.testing.assert_allclose(np.rint(np.expm1(col["log_brand_mentions"])), [0, 0, 0, 0, 0, 2])
    np.testing.assert_array_equal(col["has_broad_marker"], [0, 0, 1, 0, 0, 0])
