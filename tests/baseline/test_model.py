"""The baseline classifier: quality on demo data, scoring paths, verdicts and reasons, multi-label heads."""

from __future__ import annotations

import numpy as np
import pytest

from hf_spamguard.baseline import BaselineClassifier
from hf_spamguard.policy import Thresholds, roc_auc
from hf_spamguard.verdict import validate_verdict


def test_baseline_separates_spam_on_held_out_rows(model, demo_rows):
    texts, y = demo_rows
    p = model.predict_proba(texts[200:])
    assert p.shape == (100,)
    assert ((p >= 0) & (p <= 1)).all()
    assert roc_auc(y[200:], p) > 0.95
    assert model.training_["heads"]["spam"]["C"] == 4.0


def test_chunking_and_threads_do_not_change_scores(model, demo_rows):
    texts, _ = demo_rows
    ref = model.predict_proba(texts, n_jobs=1, chunk_size=10_000)
    chunks = list(model.score_chunks(iter(texts), chunk_size=7, n_jobs=2))
    assert len(chunks) == -(-len(texts) // 7)
    np.testing.assert_allclose(np.concatenate(chunks), ref, rtol=1e-9)


def test_verdicts_and_reasons(model):
    stuffed = "Diesel jeans W30. Tags: levi wrangler lee nike adidas carhartt stussy supreme vans"
    honest = "Blue cotton dress, worn twice, no marks. Size 10."
    verdicts = model([stuffed, honest], policy=Thresholds(review=0.3, demote=0.9))
    for v in verdicts:
        validate_verdict(v)
    assert verdicts[0]["is_spam"] and verdicts[0]["decision"] in ("review", "demote")
    assert verdicts[0]["reason"].startswith("lists 9 brands after 'tags:' (levi, wrangler, lee")
    assert not verdicts[1]["is_spam"] and verdicts[1]["decision"] == "keep"
    single = model(honest)
    assert isinstance(single, dict) and "decision" not in single


def test_multilabel_heads(demo_rows, tmp_path, fast_args):
    texts, y = demo_rows
    has_hashtag = np.array(["#" in t for t in texts], dtype=int)
    Y = np.column_stack([y, has_hashtag])
    clf = BaselineClassifier(labels=["spam", "hashtags"]).fit(texts[:200], Y[:200], fast_args)
    P = clf.predict_proba(texts[200:])
    assert P.shape == (100, 2)
    assert roc_auc(Y[200:, 1], P[:, 1]) > 0.9
    clf.save_pretrained(tmp_path)
    again = BaselineClassifier.from_pretrained(tmp_path)
    assert again.labels == ["spam", "hashtags"]
    np.testing.assert_array_equal(again.predict_proba(texts[200:]), P)
    with pytest.raises(TypeError):
        clf(texts[:2])
    with pytest.raises(ValueError, match="shape"):
        BaselineClassifier(labels=["a", "b"]).fit(texts[:10], y[:10])
