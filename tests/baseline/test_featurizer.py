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
