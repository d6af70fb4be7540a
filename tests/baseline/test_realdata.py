"""A short check on the real Depop listings (skipped where ../shared is absent): the two-stage baseline
separates them, and the H&M listing of issue #15 gets a reason naming its keyword block."""

from __future__ import annotations

import numpy as np
import pytest

from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments, tree_grid
from hf_spamguard.policy import binary_scores, roc_auc

pytestmark = pytest.mark.realdata


def test_two_stage_baseline_on_the_real_listings(depop_tsv):
    import pandas as pd

    df = pd.read_csv(depop_tsv, sep="\t", index_col=0)
    texts = df["description"].fillna("").astype(str).tolist()
    y = df["label"].to_numpy().astype(int)
    args = BaselineTrainingArguments(
        Cs=(4.0,), cv=3, stage2_grid=tree_grid(leaves=(8,), iterations=(50,), min_samples_leaf=(20,))
    )
    order = np.random.default_rng(0).permutation(len(texts))  # the file is not in random order
    train, test = order[:1000], order[1000:]
    model = BaselineClassifier().fit([texts[i] for i in train], y[train], args)
    p = model.predict_proba([texts[i] for i in test])
    assert roc_auc(y[test], p) > 0.97
    assert binary_scores(y[test], p >= 0.5)["macro_f1"] > 0.93
    hm = next(t for t in texts if "Ignore: H&M Jumper Sweater Roll Neck" in t)
    reason = model.explain(hm)
    assert "keyword block" in reason and "'ignore:'" in reason and "h&m" in reason
    assert np.isfinite(model.oof_proba_).all()
