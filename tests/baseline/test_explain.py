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
    np.testing.assert_array_equal(
        has_marker, [describe_evidence(t)["marker_kind"] == "strict" for t in texts]
    )


BROAD = [
    "IGNORE pink size 8 princess polly",  # no punctuation, capitals
    "please ignore 💓 brandy melville",
    "~ignore tags ~  urban outfitters",
    "tags~~~~  safety pin, butterfly patch",
    "Tags (sorry): carhartt dickies",
    "TAGS FOR EXPOSURE urban outfitters",
    "branded for exposure  size 0",
    "tagged 4 exposure!! nike",
    "search terms y2k",
    "new with tags, never worn",  # the garment's tags: not a block
    "no tags but never worn",
    "a plain description",
]


def test_the_broad_marker_covers_what_sellers_write_and_agrees_with_the_featuriser():
    expected = [1] * 9 + [0, 0, 0]
    dense = featurize_chunk(BROAD, FeaturizerConfig()).dense
    np.testing.assert_array_equal(dense[:, DENSE_FEATURES.index("has_broad_marker")], expected)
    np.testing.assert_array_equal([describe_evidence(t)["marker"] is not None for t in BROAD], expected)
    after = np.rint(np.expm1(dense[:, DENSE_FEATURES.index("log_tokens_after_broad")]))
    assert after[0] == 5 and after[5] == 4  # "pink size 8 princess polly"; "for exposure urban outfitters"


HM = (
    "FREE SHIPPING!   Cream Roll Neck Jumper Size Small. Thin sweater from H&M - only worn a handful of "
    "times.   Perfect for a size 8.   Ignore: H&M Jumper Sweater Roll Neck High Bat Wing Sleeve Cream Beige "
    "Nude Soft Thin Autumn Winter Spring Trend Luxe Minimal   #H&M #Jumper #Sweater #Luxe #Autumn"
)


def test_a_missed_keyword_block_is_named_not_denied():
    # Issue #15: this listing was missed and its reason said "no keyword list". Whichever side the
    # model takes, the reason names the block and the brand spelled with '&'.
    ev = describe_evidence(HM)
    assert ev["marker"] == "ignore:" and ev["brands"] == ["h&m"]
    clean = reason_for(HM, 0.2)
    assert "no keyword list" not in clean
    assert clean.startswith("reads as an item description, though it has a keyword block after 'ignore:'")
    assert "h&m" in clean
    assert reason_for(HM, 0.9).startswith("keyword block of 20 terms after 'ignore:' (h&m, jumper")


def test_brands_are_matched_through_generic_spelling_rules():
    text = "H&M top, Levi’s jeans, levi's jacket, OFF-WHITE tee, “Nike” cap, Jordan’s"
    assert describe_evidence(text)["brands"] == ["h&m", "levi’s", "off-white", "“nike”", "jordan’s"]
    dense = featurize_chunk([text], FeaturizerConfig()).dense[0]
    assert round(np.expm1(dense[DENSE_FEATURES.index("log_brand_mentions")])) == 6
    assert round(np.expm1(dense[DENSE_FEATURES.index("log_distinct_brands")])) == 5


def test_a_keyword_list_without_a_marker_is_named():
    text = "Summer dress. mini skirt shorts tee blouse vest bodysuit crop cami corset tube halter bralette"
    ev = describe_evidence(text)
    assert ev["marker"] is None and len(ev["keyword_run"]) == 13
    assert reason_for(text, 0.9).startswith("a list of 13 terms with no sentence around them (mini, skirt")
    assert reason_for(text, 0.1).startswith("reads as an item description, though it lists 13 terms in a row")
    dense = featurize_chunk([text], FeaturizerConfig()).dense[0]
    assert round(np.expm1(dense[DENSE_FEATURES.index("log_longest_run")])) == 13
    assert round(np.expm1(dense[DENSE_FEATURES.index("log_tail_run")])) == 13
