"""The second stage: exported trees score like scikit-learn's, calibrations, and the model's two stages."""

from __future__ import annotations

import numpy as np
import pytest

from hf_spamguard.baseline import DENSE_FEATURES, BaselineClassifier, BaselineTrainingArguments
from hf_spamguard.baseline.stage2 import Calibrator, TreeConfig, TreeEnsemble, _hgb, crossfit, tree_grid


@pytest.mark.parametrize("leaves,iterations,depth", [(8, 30, 3), (4, 60, 3), (15, 40, None)])
def test_exported_trees_score_exactly_like_scikit_learn(leaves, iterations, depth):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    X[:, 3] = np.round(X[:, 3])  # ties at thresholds: "left when x <= threshold" must match
    y = (X[:, 0] + X[:, 1] ** 2 + 0.3 * rng.normal(size=600) > 0.7).astype(int)
    model = _hgb(TreeConfig(leaves, iterations, 10, max_depth=depth), 0).fit(X, y)
    trees = TreeEnsemble.from_sklearn(model)
    new = rng.normal(size=(300, 6))
    np.testing.assert_allclose(trees.raw_score(new), model.decision_function(new), rtol=0, atol=1e-12)
    again = TreeEnsemble.from_state(trees.state())
    np.testing.assert_array_equal(again.raw_score(new), trees.raw_score(new))
    with pytest.raises(ValueError, match="6 stage-2 features"):
        trees.raw_score(new[:, :5])


def test_calibrators_round_trip_and_are_monotone():
    rng = np.random.default_rng(1)
    z = rng.normal(size=400) * 3
    y = (rng.random(400) < 1 / (1 + np.exp(-z / 2))).astype(int)
    grid = np.linspace(-6, 6, 50)
    for kind in ("none", "platt", "isotonic"):
        cal = Calibrator.fit(kind, z, y)
        p = cal(grid)
        assert ((p > 0) & (p < 1)).all() and (np.diff(p) >= 0).all()
        np.testing.assert_array_equal(Calibrator.from_state(cal.state())(grid), p)
    assert Calibrator.fit("platt", z, y).platt[0] == pytest.approx(0.5, abs=0.15)  # z / 2 was the truth
    folds = [(np.arange(200, 400), np.arange(200)), (np.arange(200), np.arange(200, 400))]
    assert crossfit("isotonic", z, y, folds).shape == (400,)
    with pytest.raises(ValueError, match="calibration"):
        Calibrator("beta")


def test_binary_model_has_two_stages_and_out_of_fold_probabilities(model, demo_rows):
    texts, y = demo_rows
    assert model.stage2_ is not None and model.stage2_.n_features == 1 + len(DENSE_FEATURES)
    head = model.training_["heads"]["spam"]
    assert head["stage2"]["n_configurations"] == 2 and head["n_configurations"] == 3
    assert head["stage2"]["chosen"]["calibration"] in ("none", "platt")
    # the stuffing features go to the trees: the linear stage has no weight on them
    assert not model.coef_[0, -len(DENSE_FEATURES) :].any()
    assert model.oof_proba_.shape == (200,) and ((model.oof_proba_ > 0) & (model.oof_proba_ < 1)).all()


def test_no_stage2_and_soft_targets_give_a_linear_model(demo_rows, fast_args):
    texts, y = demo_rows
    linear = BaselineClassifier().fit(
        texts[:150], y[:150], BaselineTrainingArguments(Cs=(4.0,), cv=3, stage2=False)
    )
    assert linear.stage2_ is None and linear.coef_[0, -len(DENSE_FEATURES) :].any()
    soft = BaselineClassifier().fit(texts[:150], np.clip(y[:150], 0.1, 0.9), fast_args)
    assert soft.stage2_ is None and soft.training_["heads"]["spam"]["targets"] == "soft"


def test_the_grid_is_every_combination():
    grid = tree_grid()
    assert len(grid) == 24 and len(set(grid)) == 24
    assert {c.calibration for c in grid} == {"none", "platt", "isotonic"}


def test_the_trees_are_dropped_where_the_linear_stage_alone_is_better():
    # 24 rows: no tree can split with min_samples_leaf >= 20, so the trees would predict a constant 0.5
    # and throw the (perfect) linear evidence away; the out-of-fold comparison keeps the linear stage
    texts = ["nike tags: adidas puma gucci prada", "blue dress size 8 worn once"] * 12
    y = np.array([1, 0] * 12)
    model = BaselineClassifier().fit(texts, y)
    record = model.training_["heads"]["spam"]["stage2"]
    assert model.stage2_ is None and record["used"] is False
    assert record["oof_log_loss"] >= model.training_["heads"]["spam"]["cv_log_loss"]
    p = model.predict_proba(texts[:2])
    assert p[0] > 0.8 and p[1] < 0.2
