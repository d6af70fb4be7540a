"""Threshold policy: decisions, selection on hand-made cases with known answers, metrics."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from hf_spamguard import policy
from hf_spamguard.policy import (
    Costs,
    PolicyError,
    Thresholds,
    decide,
    evaluate_policy,
    select_label_thresholds,
    select_thresholds,
)

# Descending confidences; precision of "conf >= t" is 1 down to 0.85, then drops at 0.80 (a legit item).
CONF = np.array([0.95, 0.90, 0.85, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20])
LABELS = np.array([1, 1, 1, 0, 1, 1, 0, 1, 0, 0])


def test_decisions_match_verdict_module():
    from hf_spamguard.verdict import DECISIONS

    assert policy.DECISIONS == DECISIONS


def test_decide_boundaries_are_inclusive():
    th = Thresholds(review=0.5, demote=0.9)
    assert decide([0.0, 0.49, 0.5, 0.89, 0.9, 1.0], th).tolist() == [
        "keep",
        "keep",
        "review",
        "review",
        "demote",
        "demote",
    ]
    assert decide([0.7], {"review": 0.2, "demote": 0.2}).tolist() == ["demote"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(review=0.9, demote=0.5),
        dict(review=-0.1, demote=0.5),
        dict(review=0.1, demote=1.5),
        dict(review="a", demote=1),
    ],
)
def test_thresholds_are_validated(kwargs):
    with pytest.raises(PolicyError):
        Thresholds(**kwargs)


def test_decide_rejects_bad_confidences():
    with pytest.raises(PolicyError, match=r"confidences\[1\]"):
        decide([0.2, float("nan")], Thresholds(0.3, 0.6))
    with pytest.raises(PolicyError, match=r"confidences\[0\]"):
        decide([1.2], Thresholds(0.3, 0.6))


def test_thresholds_save_load_roundtrip(tmp_path):
    th = Thresholds(review=0.25, demote=0.8)
    path = th.save(tmp_path, extra={"notes": ["x"]})
    assert path.name == "policy.json"
    assert json.loads(path.read_text())["notes"] == ["x"]
    assert Thresholds.load(tmp_path) == th
    assert Thresholds.load(path) == th
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "policy.json").write_text('{"review": 0.9, "demote": 0.1}')
    with pytest.raises(PolicyError, match="policy.json"):
        Thresholds.load(tmp_path / "bad")


def test_select_meets_all_targets_when_budget_allows():
    sel = select_thresholds(LABELS, CONF, target_demote_precision=0.98, target_recall=0.95, review_budget=0.5)
    # demote: lowest threshold with precision >= 0.98 is 0.85 (0.80 adds a legit item: 3/4)
    assert sel.demote == 0.85
    # all 6 spam items need conf >= 0.40; the queue [0.40, 0.85) holds 5 of 10 items = 50% <= budget
    assert sel.review == 0.40
    assert sel.review < sel.demote  # the two thresholds do not collapse
    assert sel.targets_met and not sel.notes
    assert sel.achieved["flagged_recall"] == 1.0
    assert sel.achieved["review_load"] == 0.5


@pytest.mark.parametrize(("budget", "review", "recall"), [(0.2, 0.70, 4 / 6), (0.3, 0.60, 5 / 6)])
def test_select_relaxes_recall_to_fit_review_budget(budget, review, recall):
    sel = select_thresholds(LABELS, CONF, review_budget=budget)
    assert sel.demote == 0.85
    assert sel.review == review
    assert not sel.targets_met
    assert sel.achieved["flagged_recall"] == pytest.approx(recall)
    assert sel.achieved["review_load"] <= budget
    assert any("recall relaxed" in note for note in sel.notes)


def test_select_unreachable_precision_demotes_nothing():
    y = np.array([1, 0, 1, 0, 1, 0])
    conf = np.array([0.9, 0.9, 0.8, 0.7, 0.6, 0.5])
    sel = select_thresholds(y, conf, target_demote_precision=0.98, review_budget=1.0)
    assert sel.demote == 1.0
    assert not sel.targets_met
    assert "not reachable" in sel.notes[0]
    assert evaluate_policy(y, conf, sel.thresholds)["actions"]["demote"]["count"] == 0
    # review then takes all spam: lowest spam at 0.6
    assert sel.review == 0.6
    # confidence exactly 1.0 cannot be kept out by a threshold in [0, 1]: the notes say so
    conf[1] = 1.0
    sel = select_thresholds(y, conf, target_demote_precision=0.98, review_budget=1.0)
    assert sel.demote == 1.0
    assert any("1 validation item(s) have confidence exactly 1.0" in note for note in sel.notes)


def test_select_when_demote_alone_reaches_recall():
    y = np.array([1, 1, 1, 0, 0])
    conf = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    sel = select_thresholds(y, conf)
    assert (sel.review, sel.demote) == (0.7, 0.7)
    assert sel.targets_met
    assert "review band is empty" in sel.notes[0]


def test_select_needs_both_classes():
    with pytest.raises(PolicyError, match="both spam and not-spam"):
        select_thresholds([1, 1], [0.3, 0.4])


def _brute_force_cost(y, conf, costs):
    cands = sorted(set(conf.tolist()) | {1.0})
    best = None
    c = costs.to_dict()
    for r, d in itertools.product(cands, cands):
        if r > d:
            continue
        dec = decide(conf, Thresholds(r, d))
        total = sum(c[f"{a}_{'spam' if t else 'not_spam'}"] for a, t in zip(dec, y, strict=True))
        if best is None or total < best - 1e-9:
            best = total
    return best / y.size


@pytest.mark.parametrize(
    "costs",
    [
        Costs(),
        Costs(demote_not_spam=100, keep_spam=10, review_spam=2, review_not_spam=2),
        Costs(review_spam=50, review_not_spam=50),
    ],
)
def test_expected_cost_selection_is_optimal(costs):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    conf = np.clip(np.round(0.35 * y + rng.random(40) * 0.65, 2), 0, 0.99)
    sel = select_thresholds(y, conf, costs=costs)
    assert sel.objective == "expected_cost"
    assert sel.achieved["expected_cost_per_item"] == pytest.approx(_brute_force_cost(y, conf, costs))
    dec = decide(conf, sel.thresholds)
    c = costs.to_dict()
    realised = np.mean([c[f"{a}_{'spam' if t else 'not_spam'}"] for a, t in zip(dec, y, strict=True)])
    assert realised == pytest.approx(sel.achieved["expected_cost_per_item"])


def test_costs_reject_unknown_keys():
    with pytest.raises(PolicyError, match="unknown cost keys"):
        select_thresholds(LABELS, CONF, costs={"demote_legit": 3})


def test_evaluate_policy_counts_and_rates():
    rep = evaluate_policy(LABELS, CONF, Thresholds(review=0.6, demote=0.85))
    a = rep["actions"]
    assert (a["demote"]["count"], a["review"]["count"], a["keep"]["count"]) == (3, 3, 4)
    assert a["review"]["precision"] == pytest.approx(2 / 3)
    assert a["keep"]["precision"] == pytest.approx(3 / 4)  # not-spam share of kept items
    assert a["keep"]["share_of_spam"] == pytest.approx(1 / 6)
    assert rep["flagged_recall"] == pytest.approx(5 / 6)
    assert rep["review_load"] == pytest.approx(0.3)
    assert rep["wrongly_demoted"] == 0
    # macro-F1 at the demote threshold: spam F1 = 2*3/(6+0+3) = 2/3, not-spam F1 = 2*4/(8+3+0) = 8/11
    assert rep["macro_f1"] == pytest.approx((2 / 3 + 8 / 11) / 2)
    json.dumps(rep)  # JSON-serialisable (None, not NaN)


def test_metric_values_match_sklearn():
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    conf = np.round(np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1), 2)  # many ties
    assert policy.roc_auc(y, conf) == pytest.approx(roc_auc_score(y, conf))
    assert policy.pr_auc(y, conf) == pytest.approx(average_precision_score(y, conf))
    assert policy.brier_score(y, conf) == pytest.approx(brier_score_loss(y, conf))
    assert policy.roc_auc([1, 1], [0.2, 0.3]) is None


def test_ece_known_answer():
    # one bin, mean confidence 0.8, spam rate 0.5 → ECE 0.3; a perfectly calibrated split → 0
    assert policy.expected_calibration_error([1, 0, 1, 0], [0.8] * 4) == pytest.approx(0.3)
    assert policy.expected_calibration_error([0, 0, 1, 1], [0.0, 0.0, 1.0, 1.0]) == pytest.approx(0.0)


def test_threshold_sweep_monotone_recall():
    sweep = policy.threshold_sweep(LABELS, CONF, grid=[0.0, 0.5, 0.85, 1.0])
    assert sweep["recall"] == pytest.approx([1.0, 5 / 6, 0.5, 0.0])
    assert sweep["precision"][2] == 1.0 and sweep["precision"][3] is None


def test_select_label_thresholds():
    Y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]])
    P = np.array(
        [[0.9, 0.1, 0.1], [0.7, 0.2, 0.2], [0.6, 0.8, 0.1], [0.5, 0.4, 0.3], [0.1, 0.6, 0.2], [0.2, 0.3, 0.1]]
    )
    out = select_label_thresholds(Y, P, ["ad", "rant", "none"], target_precision=0.9)
    assert out["ad"] == 0.7  # 0.6 would admit a negative
    # rant: precision 1 at 0.8, 1/2 at 0.6 → 0.8 is the lowest with precision >= 0.9
    assert out["rant"] == 0.8
    assert out["none"] == 0.5 and any("none" in n for n in out.notes)
    relaxed = select_label_thresholds(Y[:, :1], np.array([[0.1], [0.2], [0.9], [0.3], [0.4], [0.5]]), ["ad"])
    assert relaxed.notes and "F1" in relaxed.notes[0]
    with pytest.raises(PolicyError, match="shape"):
        select_label_thresholds(Y, P[:, :2], ["a", "b", "c"])


def test_policy_file_follows_the_umask(tmp_path) -> None:
    import os
    import stat

    from hf_spamguard.policy import Thresholds

    old = os.umask(0o022)
    try:
        path = Thresholds(0.3, 0.9).save(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
