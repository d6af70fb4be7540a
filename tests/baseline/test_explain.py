"""Reasons and evidence: the Python marker regex and tokenisation agree with the featuriser's."""

from __future__ import annotations

import numpy as np

from hf_spamguard.baseline import (
    DENSE_FEATURES,
    FeaturizerConfig,
    describe_evidence,
    featurize_chunk,
    reason_for,
)


def test_evidence_names_the_marker_brands_and_hashtags():
    ev = describe_evidence("Off White tee. Tags: nike, (adidas) stone island #y2k #vintage")
    assert ev["marker"] == "tags:" and ev["marker_word"] == "tags"
    assert ev["brands"] == ["off white", "nike", "adidas", "stone island"]
    assert ev["brands_after_marker"] == ["nike", "adidas", "stone island"]
    assert ev["hashtags"] == ["y2k", "vintage"]
    assert reason_for("Off White tee. Tags: nike, adidas", 0.9).startswith("lists 2 brands after 'tags:'")
    assert reason_for("Plain blue dress", 0.1) == "reads as an ordinary item description, no keyword list"


def test_the_python_marker_agrees_with_the_featuriser():
    texts = ["x tags: a b", "xtags: a", "SEO=> nike", "related - zara", "no marker", "search terms: y2k"]
    dense = featurize_chunk(texts, FeaturizerConfig()).dense
    has_marker = dense[:, DENSE_FEATURES.index("has_marker")]
    np.testing.assert_array_equal(has_marker, [describe_evidence(t)["marker"] is not None for t in texts])
