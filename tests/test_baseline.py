"""The TF-IDF + keyword-stuffing baseline: quality on demo data, persistence, safety, scoring paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_spamguard.baseline import (
    BaselineClassifier,
    BaselineTrainingArguments,
    UntrustedModelError,
    featurize_chunk,
    is_baseline_folder,
)
from hf_spamguard.policy import Thresholds, roc_auc
from hf_spamguard.verdict import validate_verdict

FAST = BaselineTrainingArguments(Cs=(4.0,), cv=3)


class NotAllowed:  # an arbitrary object smuggled into a model file
    def __init__(self) -> None:
        self.payload = "rm -rf /"


@pytest.fixture(scope="module")
def demo_rows():
    from hf_spamguard.data.demo import generate_demo_listings

    rows = generate_demo_listings(n=300, seed=1)
    return [r["description"] for r in rows], np.array([int(r["label"]) for r in rows])


@pytest.fixture(scope="module")
def model(demo_rows):
    texts, y = demo_rows
    return BaselineClassifier().fit(texts[:200], y[:200], FAST)


def test_baseline_separates_spam_on_held_out_rows(model, demo_rows):
    texts, y = demo_rows
    p = model.predict_proba(texts[200:])
    assert p.shape == (100,)
    assert ((p >= 0) & (p <= 1)).all()
    assert roc_auc(y[200:], p) > 0.95
    assert model.training_["heads"]["spam"]["C"] == 4.0


def test_fused_scoring_matches_the_training_matrix(model, demo_rows):
    texts, _ = demo_rows
    X = model.featurizer.transform(texts[:50])
    direct = X @ model.coef_[0].astype(np.float64) + model.intercept_[0]
    fused = model.featurizer.score_chunk(texts[:50], model.coef_, model.intercept_)[:, 0]
    np.testing.assert_allclose(fused, direct, rtol=1e-5, atol=1e-6)


def test_chunking_and_threads_do_not_change_scores(model, demo_rows):
    texts, _ = demo_rows
    ref = model.predict_proba(texts, n_jobs=1, chunk_size=10_000)
    chunks = list(model.score_chunks(iter(texts), chunk_size=7, n_jobs=2))
    assert len(chunks) == -(-len(texts) // 7)
    np.testing.assert_allclose(np.concatenate(chunks), ref, rtol=1e-9)


def test_odd_texts_are_scored(model):
    p = model.predict_proba(["", "a\x00b", None, "ünïcödé 🙂 #tag", "x" * 5000])  # type: ignore[list-item]
    assert p.shape == (5,) and np.isfinite(p).all()
    chunk = featurize_chunk(["a\x00b c", "d"], model.featurizer.config)
    assert chunk.n == 2 and chunk.dense.shape[0] == 2


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


def test_save_load_roundtrip_identical(model, demo_rows, tmp_path):
    texts, _ = demo_rows
    model.policy = Thresholds(review=0.4, demote=0.8)
    try:
        model.save_pretrained(tmp_path)
    finally:
        model.policy = None
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "spamguard-baseline" and config["labels"] == ["spam"]
    assert is_baseline_folder(tmp_path)
    loaded = BaselineClassifier.from_pretrained(tmp_path)
    assert loaded.policy == Thresholds(review=0.4, demote=0.8)
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


def test_untrusted_types_are_refused(model, tmp_path):
    import skops.io as sio

    model.save_pretrained(tmp_path)
    state = sio.load(tmp_path / "model.skops", trusted=None)
    state["extra"] = NotAllowed()
    (tmp_path / "model.skops").write_bytes(sio.dumps(state))
    with pytest.raises(UntrustedModelError, match="NotAllowed"):
        BaselineClassifier.from_pretrained(tmp_path)
    # a function reference (the classic pickle attack vector) is refused too
    state.pop("extra")
    state["hook"] = eval
    (tmp_path / "model.skops").write_bytes(sio.dumps(state))
    with pytest.raises(UntrustedModelError, match="eval"):
        BaselineClassifier.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "extra,name",
    [
        # all three are trusted by skops' defaults, so get_untrusted_types() alone would let them through
        (lambda: __import__("sklearn.linear_model").linear_model.LogisticRegression(), "LogisticRegression"),
        (lambda: np.add, "add"),
        (lambda: np.float32(1.5), "float32"),
    ],
)
def test_types_skops_trusts_by_default_are_refused_too(model, tmp_path, extra, name):
    import skops.io as sio

    model.save_pretrained(tmp_path)
    state = sio.load(tmp_path / "model.skops", trusted=None)
    state["extra"] = extra()
    (tmp_path / "model.skops").write_bytes(sio.dumps(state))
    with pytest.raises(UntrustedModelError, match=name):
        BaselineClassifier.from_pretrained(tmp_path)
    (tmp_path / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(UntrustedModelError, match="not a readable skops file"):
        BaselineClassifier.from_pretrained(tmp_path)


def test_from_pretrained_rejects_other_folders(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen3_vl"}')
    with pytest.raises(ValueError, match="model_type"):
        BaselineClassifier.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        BaselineClassifier.from_pretrained(tmp_path / "missing")


def test_multilabel_heads(demo_rows, tmp_path):
    texts, y = demo_rows
    has_hashtag = np.array(["#" in t for t in texts], dtype=int)
    Y = np.column_stack([y, has_hashtag])
    clf = BaselineClassifier(labels=["spam", "hashtags"]).fit(texts[:200], Y[:200], FAST)
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


def test_keyword_block_features_count_the_tokens_after_the_first_marker():
    # Token positions come from the bytes while the tokens come from Arrow's split: leading/trailing
    # whitespace, empty documents, non-ASCII text and a second marker must not shift them.
    from hf_spamguard.baseline import DENSE_FEATURES, FeaturizerConfig, featurize_chunk

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
