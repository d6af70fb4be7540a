"""listing_spam_policy: an `evaluate` metric for keep / review / demote moderation policies.

A thin wrapper: every line of logic lives in ``hf_spamguard.policy`` (pure NumPy). In the exported
Space folder the import below is rewritten to the verbatim copy ``spamguard_policy.py`` that
``hf_spamguard.metrics.export_space`` places next to this file.
"""

import datasets
import evaluate

from hf_spamguard.policy import (
    DEFAULT_REVIEW_BUDGET,
    DEFAULT_TARGET_DEMOTE_PRECISION,
    DEFAULT_TARGET_RECALL,
    compute_policy_metric,
)

_DESCRIPTION = f"""
Evaluates a keyword-spam moderation policy. `predictions` are calibrated spam confidences in [0, 1],
`references` the true labels (1 = spam). With `review` and `demote` given, those thresholds are applied;
otherwise they are selected on these data to meet `target_demote_precision` (default {DEFAULT_TARGET_DEMOTE_PRECISION}),
`target_recall` (default {DEFAULT_TARGET_RECALL}) within `review_budget` (default {DEFAULT_REVIEW_BUDGET} of items), or, with `costs`, to
minimise the expected cost. Returns per-action counts, precision, share of spam and review load,
ROC-AUC, PR-AUC, macro-F1 at the demote threshold, ECE and Brier score, and notes on relaxed targets.
"""

_KWARGS_DESCRIPTION = f"""
Args:
    predictions (list of float): spam confidence of each listing, in [0, 1].
    references (list of int): 1 = spam, 0 = not spam.
    review (float, optional): fixed review threshold (requires `demote`).
    demote (float, optional): fixed demote threshold.
    target_demote_precision (float, optional): default {DEFAULT_TARGET_DEMOTE_PRECISION}.
    target_recall (float, optional): default {DEFAULT_TARGET_RECALL}.
    review_budget (float, optional): largest review queue as a share of items, default {DEFAULT_REVIEW_BUDGET}.
    costs (dict, optional): per-outcome costs (keys of `Costs`) for the expected-cost objective.
    n_bins (int, optional): bins of the calibration error, default 10.
Returns:
    dict: `roc_auc`, `pr_auc`, `macro_f1`, `accuracy`, `ece`, `brier`, `review_threshold`,
    `demote_threshold`, `<action>_count|precision|share_of_spam|share_of_items` for keep/review/demote,
    `review_load`, `flagged_recall`, `targets_met`, `notes`.
Examples:
    >>> metric = evaluate.load("listing_spam_policy")
    >>> out = metric.compute(predictions=[0.1, 0.6, 0.95], references=[0, 1, 1], review=0.5, demote=0.9)
    >>> out["demote_count"], out["review_count"]
    (1, 1)
"""

_CITATION = """
@software{hf_spamguard,
  title = {hf-spamguard: keyword-spam moderation for marketplace listings},
  year = {2026}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ListingSpamPolicy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://huggingface.co/docs/evaluate"],
        )

    def _compute(self, predictions, references, **kwargs):
        return compute_policy_metric(references, predictions, **kwargs)
