"""Threshold policy: spam confidence → keep / review / demote, and choosing the thresholds.

``confidence >= demote`` → demote, ``confidence >= review`` → review, otherwise keep, with
``0 <= review <= demote <= 1``. Review and demote are *different* actions with different costs: a
demoted legitimate seller is the expensive error, a reviewed item costs a moderator's minute. The
selection therefore scores them separately (the seed notebook counted both as "spam", so its two
thresholds collapsed into one).

This module is pure NumPy and the standard library and imports nothing from ``hf_spamguard``: the
``evaluate`` metric Space ships a verbatim copy of this file (see
:func:`hf_spamguard.metrics.export_space`), so it must stay self-contained.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

#: Same values as ``hf_spamguard.verdict.DECISIONS`` (kept literal so this file stays self-contained;
#: a test checks that the two agree).
DECISIONS: tuple[str, str, str] = ("keep", "review", "demote")

POLICY_FILE = "policy.json"

#: Default targets of a moderation team (see :func:`select_thresholds`). The only place they are typed:
#: every other default (training, ``baseline train``, the CLI, cards) refers to these.
DEFAULT_TARGET_DEMOTE_PRECISION = 0.98
DEFAULT_TARGET_RECALL = 0.95
DEFAULT_REVIEW_BUDGET = 0.15
#: The three by keyword of :func:`select_thresholds` (read-only), as the metric card names them.
DEFAULT_TARGETS: Mapping[str, float] = MappingProxyType(
    {
        "target_demote_precision": DEFAULT_TARGET_DEMOTE_PRECISION,
        "target_recall": DEFAULT_TARGET_RECALL,
        "review_budget": DEFAULT_REVIEW_BUDGET,
    }
)


_FRACTION = {"min": 0.0, "max": 1.0, "min_open": True}


@dataclass(frozen=True)
class PolicyTargets:
    """What threshold selection aims at (the options of ``baseline train`` and friends)."""

    target_demote_precision: float = field(
        default=DEFAULT_TARGET_DEMOTE_PRECISION,
        metadata={"help": "Demote precision target on validation.", **_FRACTION},
    )
    target_recall: float = field(
        default=DEFAULT_TARGET_RECALL,
        metadata={"help": "Spam recall target of review + demote on validation.", **_FRACTION},
    )
    review_budget: float = field(
        default=DEFAULT_REVIEW_BUDGET,
        metadata={"help": "Largest review queue, as a share of items.", "min": 0.0, "max": 1.0},
    )


class PolicyError(ValueError):
    """Invalid thresholds or inputs to the policy."""


# --------------------------------------------------------------------------------------------------
# Thresholds and decisions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """The two thresholds of the policy; ``0 <= review <= demote <= 1``."""

    review: float = field(metadata={"help": "Confidence at or above which an item goes to human review."})
    demote: float = field(metadata={"help": "Confidence at or above which an item is demoted automatically."})

    def __post_init__(self) -> None:
        for name in ("review", "demote"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
                raise PolicyError(f"threshold {name!r} must be a number, got {value!r}")
            if not math.isfinite(float(value)) or not 0.0 <= float(value) <= 1.0:
                raise PolicyError(f"threshold {name!r} must be in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.review > self.demote:
            raise PolicyError(f"review threshold ({self.review}) must be <= demote threshold ({self.demote})")

    def to_dict(self) -> dict[str, float]:
        return {"review": self.review, "demote": self.demote}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        """Build from ``{"review": r, "demote": d, ...}`` (extra keys such as ``notes`` are ignored)."""
        if not isinstance(data, Mapping):
            raise PolicyError(f"thresholds must be a mapping, got {type(data).__name__}")
        missing = [k for k in ("review", "demote") if k not in data]
        if missing:
            raise PolicyError(f"thresholds are missing {missing}")
        return cls(review=data["review"], demote=data["demote"])

    def save(self, directory: str | os.PathLike[str], *, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``policy.json`` into ``directory`` atomically (``extra`` adds e.g. selection notes)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = self.to_dict()
        if extra:
            payload.update({k: v for k, v in extra.items() if k not in payload})
        target = directory / POLICY_FILE
        # not hf_spamguard.atomic: this module is copied verbatim into metric Spaces and imports nothing
        # from the package
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".policy.", suffix=".tmp")
        try:
            # mkstemp creates the file 0600; a published policy follows the umask like any open() file
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=2)
                fh.write("\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Thresholds:
        """Read ``policy.json`` from ``directory`` (or the file itself)."""
        path = Path(directory)
        if path.is_dir():
            path = path / POLICY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no policy file at {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{path}: invalid JSON ({exc})") from exc
        try:
            return cls.from_dict(data)
        except PolicyError as exc:
            raise PolicyError(f"{path}: {exc}") from exc


def as_thresholds(
    policy: Thresholds | Mapping[str, Any] | str | os.PathLike[str] | None,
) -> Thresholds | None:
    """Accept a :class:`Thresholds`, a dict, a folder/``policy.json`` path, or ``None``."""
    if policy is None or isinstance(policy, Thresholds):
        return policy
    if isinstance(policy, Mapping):
        return Thresholds.from_dict(policy)
    if isinstance(policy, str | os.PathLike):
        return Thresholds.load(policy)
    raise PolicyError(f"cannot use {type(policy).__name__} as a policy")


def _as_confidences(confidences: Any, name: str = "confidences") -> np.ndarray:
    arr = np.asarray(confidences, dtype=np.float64).reshape(-1)
    if arr.size and (np.isnan(arr).any() or arr.min() < 0.0 or arr.max() > 1.0):
        bad = int(np.flatnonzero(np.isnan(arr) | (arr < 0) | (arr > 1))[0])
        raise PolicyError(f"{name}[{bad}] must be a probability in [0, 1], got {arr[bad]!r}")
    return arr


def _as_labels(labels: Any, n: int) -> np.ndarray:
    arr = np.asarray(labels).reshape(-1)
    if arr.size != n:
        raise PolicyError(f"labels and confidences differ in length ({arr.size} != {n})")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = int(np.flatnonzero(~np.isin(arr, (0, 1)))[0])
        raise PolicyError(f"labels[{bad}] must be 0 (not_spam) or 1 (spam), got {arr[bad]!r}")
    return arr.astype(np.int8)


def decide(confidences: Any, thresholds: Thresholds | Mapping[str, Any]) -> np.ndarray:
    """Decisions (``"keep"`` / ``"review"`` / ``"demote"``) for an array of spam confidences."""
    th = as_thresholds(thresholds)
    if th is None:
        raise PolicyError("thresholds are required")
    conf = _as_confidences(confidences)
    index = (conf >= th.review).astype(np.int8) + (conf >= th.demote).astype(np.int8)
    return np.asarray(DECISIONS, dtype="<U6")[index]


def decide_one(confidence: float, thresholds: Thresholds | Mapping[str, Any]) -> str:
    return str(decide([confidence], thresholds)[0])


# --------------------------------------------------------------------------------------------------
# Metrics (NumPy only, so that the metric Space needs no scikit-learn)
# --------------------------------------------------------------------------------------------------


def roc_auc(labels: Any, confidences: Any) -> float | None:
    """Area under the ROC curve (Mann–Whitney with tie-averaged ranks); ``None`` with one class only."""
    conf = _as_confidences(confidences)
    y = _as_labels(labels, conf.size)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(conf, kind="mergesort")
    sorted_conf = conf[order]
    ranks = np.empty(conf.size, dtype=np.float64)
    # average ranks over ties
    _, first, counts = np.unique(sorted_conf, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _descending_groups(labels: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct confidences in descending order with the cumulative spam / not-spam counts at or above each."""
    order = np.argsort(-conf, kind="mergesort")
    c = conf[order]
    y = labels[order]
    last = np.r_[np.flatnonzero(np.diff(c) != 0), c.size - 1] if c.size else np.array([], dtype=int)
    cum_pos = np.cumsum(y, dtype=np.int64)[last]
    cum_neg = (last + 1) - cum_pos
    return c[last], cum_pos, cum_neg


def pr_auc(labels: Any, confidences: Any) -> float | None:
    """Average precision (area under the precision–recall curve, step-wise like scikit-learn)."""
    conf = _as_confidences(confidences)
    y = _as_labels(labels, conf.size)
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    _, tp, fp = _descending_groups(y, conf)
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier_score(labels: Any, confidences: Any) -> float | None:
    conf = _as_confidences(confidences)
    y = _as_labels(labels, conf.size)
    return float(np.mean((conf - y) ** 2)) if conf.size else None


def reliability_curve(labels: Any, confidences: Any, n_bins: int = 10) -> dict[str, list[float | int | None]]:
    """Equal-width bins of the spam confidence: mean confidence, spam rate and count per bin."""
    conf = _as_confidences(confidences)
    y = _as_labels(labels, conf.size)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_pos = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = sum_conf / counts
        rate = sum_pos / counts
    return {
        "bin_edges": edges.tolist(),
        "mean_confidence": [None if c == 0 else float(m) for c, m in zip(counts, mean_conf, strict=True)],
        "spam_rate": [None if c == 0 else float(r) for c, r in zip(counts, rate, strict=True)],
        "count": counts.astype(int).tolist(),
    }


def expected_calibration_error(labels: Any, confidences: Any, n_bins: int = 10) -> float | None:
    """ECE of the spam probability: count-weighted |mean confidence − spam rate| over equal-width bins."""
    conf = _as_confidences(confidences)
    if not conf.size:
        return None
    curve = reliability_curve(labels, conf, n_bins)
    total = 0.0
    for m, r, c in zip(curve["mean_confidence"], curve["spam_rate"], curve["count"], strict=True):
        if c:
            total += c * abs(m - r)  # type: ignore[operator]
    return float(total / conf.size)


def binary_scores(labels: Any, predicted: Any) -> dict[str, float | None]:
    """Accuracy, per-class F1 and macro-F1 for 0/1 predictions."""
    y = np.asarray(labels).astype(np.int8).reshape(-1)
    p = np.asarray(predicted).astype(np.int8).reshape(-1)
    out: dict[str, float | None] = {"accuracy": float(np.mean(y == p)) if y.size else None}
    f1s = []
    for cls, name in ((1, "spam"), (0, "not_spam")):
        tp = int(np.sum((p == cls) & (y == cls)))
        fp = int(np.sum((p == cls) & (y != cls)))
        fn = int(np.sum((p != cls) & (y == cls)))
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
        out[f"f1_{name}"] = float(f1)
        f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s))
    return out


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def evaluate_policy(
    labels: Any, confidences: Any, thresholds: Thresholds | Mapping[str, Any], *, n_bins: int = 10
) -> dict[str, Any]:
    """Everything a moderation team wants to know about a policy on labelled data.

    Per action (keep / review / demote): ``count``, ``share_of_items``, ``spam`` (spam items in it),
    ``precision`` (spam share for review/demote, not-spam share for keep), ``share_of_spam``. Plus the
    review load, the spam recall of demote ∪ review, ROC-AUC, PR-AUC, accuracy and macro-F1 of
    spam-vs-not at the demote threshold, ECE and Brier score. Undefined values are ``None``.
    """
    th = as_thresholds(thresholds)
    if th is None:
        raise PolicyError("thresholds are required")
    conf = _as_confidences(confidences)
    y = _as_labels(labels, conf.size)
    n = int(conf.size)
    n_spam = int(y.sum())
    decisions = decide(conf, th)
    actions: dict[str, dict[str, Any]] = {}
    for action in DECISIONS:
        mask = decisions == action
        count = int(mask.sum())
        spam = int(y[mask].sum())
        good = count - spam
        actions[action] = {
            "count": count,
            "share_of_items": _ratio(count, n),
            "spam": spam,
            "not_spam": good,
            "precision": _ratio(good if action == "keep" else spam, count),
            "share_of_spam": _ratio(spam, n_spam),
        }
    flagged = decisions != "keep"
    report: dict[str, Any] = {
        "n": n,
        "n_spam": n_spam,
        "thresholds": th.to_dict(),
        "actions": actions,
        "review_load": actions["review"]["share_of_items"],
        "demote_precision": actions["demote"]["precision"],
        "demote_recall": actions["demote"]["share_of_spam"],
        "flagged_recall": _ratio(int(y[flagged].sum()), n_spam),
        "wrongly_demoted": actions["demote"]["not_spam"],
        "roc_auc": roc_auc(y, conf),
        "pr_auc": pr_auc(y, conf),
    }
    report.update(binary_scores(y, conf >= th.demote))
    report["ece"] = expected_calibration_error(y, conf, n_bins)
    report["brier"] = brier_score(y, conf)
    return report


def flatten_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """One level of keys (``review_count``, ``demote_precision``, ...) for tables and ``evaluate``."""
    flat: dict[str, Any] = {}
    for key, value in report.items():
        if key == "actions":
            for action, stats in value.items():
                for stat, v in stats.items():
                    flat.setdefault(f"{action}_{stat}", v)
        elif key == "thresholds":
            for name, v in value.items():
                flat[f"{name}_threshold"] = v
        elif not isinstance(value, Mapping | list):
            flat[key] = value
    return flat


def threshold_sweep(
    labels: Any, confidences: Any, grid: Sequence[float] | None = None
) -> dict[str, list[Any]]:
    """Precision, recall and item share of ``confidence >= t`` for each ``t`` in ``grid`` (for plots)."""
    conf = _as_confidences(confidences)
    y = _as_labels(labels, conf.size)
    grid_arr = np.linspace(0.0, 1.0, 101) if grid is None else np.asarray(grid, dtype=np.float64)
    sorted_conf = np.sort(conf)
    pos_conf = np.sort(conf[y == 1])
    n_at = conf.size - np.searchsorted(sorted_conf, grid_arr, side="left")
    tp_at = pos_conf.size - np.searchsorted(pos_conf, grid_arr, side="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_at > 0, tp_at / np.maximum(n_at, 1), np.nan)
    recall = tp_at / pos_conf.size if pos_conf.size else np.full(grid_arr.shape, np.nan)
    share = n_at / conf.size if conf.size else np.full(grid_arr.shape, np.nan)
    return {
        "threshold": grid_arr.tolist(),
        "precision": [None if np.isnan(v) else float(v) for v in precision],
        "recall": [None if np.isnan(v) else float(v) for v in recall],
        "share_flagged": [None if np.isnan(v) else float(v) for v in share],
    }


# --------------------------------------------------------------------------------------------------
# Threshold selection
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Costs:
    """Expected-cost objective: the cost of each (decision, true label) outcome, per item.

    The defaults say: a wrongly demoted legitimate listing costs 20 (seller harm, support ticket), a
    missed spam listing 5 (search pollution), a review 1 (a moderator's minute) whatever the label.
    """

    demote_not_spam: float = field(default=20.0, metadata={"help": "Demoting a legitimate listing."})
    demote_spam: float = field(default=0.0, metadata={"help": "Demoting a spam listing."})
    review_not_spam: float = field(default=1.0, metadata={"help": "Reviewing a legitimate listing."})
    review_spam: float = field(default=1.0, metadata={"help": "Reviewing a spam listing."})
    keep_not_spam: float = field(default=0.0, metadata={"help": "Keeping a legitimate listing."})
    keep_spam: float = field(default=5.0, metadata={"help": "Keeping (missing) a spam listing."})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Costs:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise PolicyError(
                f"unknown cost keys {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**{k: float(v) for k, v in data.items()})

    def to_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in self.__dataclass_fields__}


@dataclass
class ThresholdSelection:
    """The selected thresholds and an honest account of how they were reached."""

    thresholds: Thresholds = field(metadata={"help": "The selected thresholds."})
    objective: str = field(metadata={"help": "'targets' or 'expected_cost'."})
    targets: dict[str, float] = field(default_factory=dict, metadata={"help": "Targets or costs requested."})
    achieved: dict[str, Any] = field(default_factory=dict, metadata={"help": "Metrics of the selection."})
    targets_met: bool = field(default=True, metadata={"help": "False when a target had to be relaxed."})
    notes: list[str] = field(default_factory=list, metadata={"help": "What was relaxed and why."})

    @property
    def review(self) -> float:
        return self.thresholds.review

    @property
    def demote(self) -> float:
        return self.thresholds.demote

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.thresholds.to_dict(),
            "objective": self.objective,
            "targets": dict(self.targets),
            "achieved": dict(self.achieved),
            "targets_met": self.targets_met,
            "notes": list(self.notes),
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """``policy.json`` with the thresholds plus the selection record."""
        extra = self.to_dict()
        extra.pop("review")
        extra.pop("demote")
        return self.thresholds.save(directory, extra={"selection": extra})


def _check_selection_inputs(labels: Any, confidences: Any) -> tuple[np.ndarray, np.ndarray]:
    conf = _as_confidences(confidences)
    y = _as_labels(labels, conf.size)
    if conf.size == 0:
        raise PolicyError("cannot select thresholds on an empty set")
    n_spam = int(y.sum())
    if n_spam == 0 or n_spam == y.size:
        raise PolicyError(
            f"threshold selection needs both spam and not-spam examples (got {n_spam} spam of {y.size})"
        )
    return y, conf


def select_thresholds(
    labels: Any,
    confidences: Any,
    *,
    target_demote_precision: float = DEFAULT_TARGET_DEMOTE_PRECISION,
    target_recall: float = DEFAULT_TARGET_RECALL,
    review_budget: float = DEFAULT_REVIEW_BUDGET,
    costs: Costs | Mapping[str, float] | None = None,
) -> ThresholdSelection:
    """Choose review / demote thresholds on labelled (validation) data.

    With targets (the default):

    - **demote**: the lowest threshold whose demote precision is ``>= target_demote_precision``. If no
      threshold reaches it, demote is set to 1.0 (only items at confidence 1.0 are demoted) and the
      notes say so: demoting legitimate sellers is the costly error, so we do not trade it away.
    - **review**: the highest threshold (``<= demote``) at which demote ∪ review still catches
      ``target_recall`` of the spam, provided the review queue (items between the thresholds) stays
      within ``review_budget`` of all items. If the budget does not allow it, recall is relaxed: the
      review threshold becomes the lowest one that fits the budget, and the notes give the recall reached.

    With ``costs`` (a :class:`Costs` or a dict of its fields) the pair minimising the expected cost per
    item is chosen instead (exact, in O(n log n)).

    Thresholds are observed confidence values, so "confidence >= threshold" reproduces the counts.
    """
    y, conf = _check_selection_inputs(labels, confidences)
    for name, value in (
        ("target_demote_precision", target_demote_precision),
        ("target_recall", target_recall),
        ("review_budget", review_budget),
    ):
        if not 0.0 <= float(value) <= 1.0:
            raise PolicyError(f"{name} must be in [0, 1], got {value!r}")
    if costs is not None:
        return _select_by_cost(y, conf, costs if isinstance(costs, Costs) else Costs.from_dict(costs))

    n = y.size
    n_spam = int(y.sum())
    values, cum_pos, cum_neg = _descending_groups(y, conf)  # values descending
    cum_all = cum_pos + cum_neg
    precision = cum_pos / cum_all
    notes: list[str] = []
    met = True

    # demote: lowest threshold with precision >= target, i.e. the last (largest-index) group meeting it
    ok = np.flatnonzero(precision >= target_demote_precision)
    if ok.size:
        d_idx = int(ok[-1])
        demote = float(values[d_idx])
        n_demoted = int(cum_all[d_idx])
    else:
        met = False
        best = int(np.argmax(precision))
        demote = 1.0
        n_demoted = int(np.sum(conf >= 1.0))
        notes.append(
            f"demote precision target {target_demote_precision:.3f} is not reachable on this data (best "
            f"{precision[best]:.3f} at threshold {values[best]:.4f}); demote threshold set to 1.0 so that "
            "only items at confidence exactly 1.0 are demoted automatically — route flagged items to "
            "review instead"
        )
        if n_demoted:
            notes.append(
                f"{n_demoted} validation item(s) have confidence exactly 1.0 and would still be demoted"
            )

    # review: candidates are the group values <= demote (descending), flagged = conf >= value
    cand = np.flatnonzero(values <= demote)
    review_load = (cum_all[cand] - n_demoted) / n
    recall = cum_pos[cand] / n_spam
    demote_recall = float(np.sum((conf >= demote) & (y == 1)) / n_spam)
    if demote_recall >= target_recall:
        review = demote
        notes.append(
            f"demote alone reaches the recall target ({demote_recall:.3f} >= {target_recall:.3f}); "
            "the review band is empty"
        )
    else:
        reach = np.flatnonzero(recall >= target_recall)
        # highest threshold reaching the recall target = first candidate (descending) that reaches it
        r_pos = int(reach[0]) if reach.size else None
        if r_pos is not None and review_load[r_pos] <= review_budget + 1e-12:
            review = float(values[cand[r_pos]])
        else:
            met = False
            fits = np.flatnonzero(review_load <= review_budget + 1e-12)
            if fits.size:
                r_pos2 = int(fits[-1])  # the lowest threshold that still fits the budget
                review = float(values[cand[r_pos2]])
                why = (
                    f"needs a review queue of {review_load[r_pos]:.1%}"
                    if r_pos is not None
                    else "is not reachable even when everything is flagged"
                )
                notes.append(
                    f"recall target {target_recall:.3f} {why}, over the review budget of {review_budget:.1%}; "
                    f"recall relaxed to {recall[r_pos2]:.3f} (review queue {review_load[r_pos2]:.1%})"
                )
            else:
                review = demote
                notes.append(
                    f"no review threshold fits the review budget of {review_budget:.1%}; the review band is "
                    f"empty and spam recall is {demote_recall:.3f} (target {target_recall:.3f})"
                )
    thresholds = Thresholds(review=min(review, demote), demote=demote)
    achieved = flatten_report(evaluate_policy(y, conf, thresholds))
    return ThresholdSelection(
        thresholds=thresholds,
        objective="targets",
        targets={
            "target_demote_precision": float(target_demote_precision),
            "target_recall": float(target_recall),
            "review_budget": float(review_budget),
        },
        achieved={k: achieved[k] for k in _ACHIEVED_KEYS},
        targets_met=met,
        notes=notes,
    )


_ACHIEVED_KEYS = (
    "demote_precision",
    "demote_recall",
    "flagged_recall",
    "review_load",
    "demote_count",
    "review_count",
    "keep_count",
    "macro_f1",
)


def _select_by_cost(y: np.ndarray, conf: np.ndarray, costs: Costs) -> ThresholdSelection:
    # Demote the top-a distinct values, review the next (b - a), keep the rest (0 <= a <= b <= K).
    # cost(a, b) = f(a) + g(b) + const, so the optimum is a prefix-minimum scan over b.
    values, cum_pos, cum_neg = _descending_groups(y, conf)
    sp = np.r_[0, cum_pos].astype(np.float64)
    ng = np.r_[0, cum_neg].astype(np.float64)
    n_pos, n_neg = sp[-1], ng[-1]
    f = (costs.demote_spam - costs.review_spam) * sp + (costs.demote_not_spam - costs.review_not_spam) * ng
    g = (costs.review_spam - costs.keep_spam) * sp + (costs.review_not_spam - costs.keep_not_spam) * ng
    const = costs.keep_spam * n_pos + costs.keep_not_spam * n_neg
    prefix_arg = np.zeros(f.size, dtype=np.int64)
    best = 0
    for i in range(1, f.size):  # O(K); K <= n distinct values
        if f[i] < f[best]:
            best = i
        prefix_arg[i] = best
    total = f[prefix_arg] + g
    b = int(np.argmin(total))
    a = int(prefix_arg[b])
    notes: list[str] = []

    def threshold_for(k: int) -> float:
        if k == 0:
            if values[0] >= 1.0:
                notes.append("confidence 1.0 cannot be excluded by a threshold in [0, 1]")
            return 1.0
        return float(values[k - 1])

    demote = threshold_for(a)
    review = threshold_for(b) if b > a else demote
    thresholds = Thresholds(review=min(review, demote), demote=demote)
    achieved = flatten_report(evaluate_policy(y, conf, thresholds))
    out = {k: achieved[k] for k in _ACHIEVED_KEYS}
    out["expected_cost_per_item"] = float((total[b] + const) / y.size)
    return ThresholdSelection(
        thresholds=thresholds,
        objective="expected_cost",
        targets=costs.to_dict(),
        achieved=out,
        targets_met=True,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------------
# Multi-label: one threshold per label
# --------------------------------------------------------------------------------------------------


class LabelThresholds(dict):
    """``{label: threshold}`` with ``.notes`` (a list) saying where a target could not be met."""

    notes: list[str]

    def __init__(self, *args: Any, notes: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notes = list(notes or [])

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": {k: float(v) for k, v in self.items()}, "notes": list(self.notes)}


def select_label_thresholds(
    Y: Any,
    P: Any,
    labels: Sequence[str],
    target_precision: float | Mapping[str, float] = 0.9,
) -> LabelThresholds:
    """Per-label decision thresholds for a multi-label model (``Y``, ``P``: shape ``(n, L)``).

    For each label: the lowest threshold whose precision is ``>= target_precision`` (a float, or a dict
    per label). Where that is not reachable the F1-maximising threshold is used and a note says so; a
    label with no positive example gets 0.5 and a note.
    """
    Y_arr = np.asarray(Y)
    P_arr = np.asarray(P, dtype=np.float64)
    if Y_arr.ndim != 2 or P_arr.shape != Y_arr.shape:
        raise PolicyError(f"Y and P must both have shape (n, L); got {Y_arr.shape} and {P_arr.shape}")
    if len(labels) != Y_arr.shape[1]:
        raise PolicyError(f"{len(labels)} label names for {Y_arr.shape[1]} columns")
    out = LabelThresholds()
    for j, name in enumerate(labels):
        target = (
            float(target_precision[name])
            if isinstance(target_precision, Mapping)
            else float(target_precision)
        )
        y = _as_labels(Y_arr[:, j], Y_arr.shape[0])
        conf = _as_confidences(P_arr[:, j], name=f"P[:, {j}]")
        if y.sum() == 0:
            out[name] = 0.5
            out.notes.append(f"{name}: no positive example; threshold left at 0.5")
            continue
        values, tp, fp = _descending_groups(y, conf)
        precision = tp / (tp + fp)
        ok = np.flatnonzero(precision >= target)
        if ok.size:
            out[name] = float(values[ok[-1]])
        else:
            f1 = 2 * tp / (tp + fp + y.sum())
            k = int(np.argmax(f1))
            out[name] = float(values[k])
            out.notes.append(
                f"{name}: precision target {target:.3f} not reachable (best {precision.max():.3f}); "
                f"using the F1-maximising threshold {values[k]:.4f} (precision {precision[k]:.3f})"
            )
    return out


# --------------------------------------------------------------------------------------------------
# The `evaluate` metric's entry point (the metric module is a thin wrapper over this function)
# --------------------------------------------------------------------------------------------------


def compute_policy_metric(
    references: Any,
    predictions: Any,
    *,
    review: float | None = None,
    demote: float | None = None,
    target_demote_precision: float = DEFAULT_TARGET_DEMOTE_PRECISION,
    target_recall: float = DEFAULT_TARGET_RECALL,
    review_budget: float = DEFAULT_REVIEW_BUDGET,
    costs: Mapping[str, float] | None = None,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Flat metric dict: fixed thresholds when ``review``/``demote`` are given, else selected on the data."""
    if (review is None) != (demote is None):
        raise PolicyError("give both `review` and `demote` thresholds, or neither (to select them)")
    notes: list[str] = []
    met: bool | None = None
    if review is not None:
        thresholds = Thresholds(review=review, demote=demote)  # type: ignore[arg-type]
        selection = None
    else:
        selection = select_thresholds(
            references,
            predictions,
            target_demote_precision=target_demote_precision,
            target_recall=target_recall,
            review_budget=review_budget,
            costs=costs,
        )
        thresholds = selection.thresholds
        notes = selection.notes
        met = selection.targets_met
    result = flatten_report(evaluate_policy(references, predictions, thresholds, n_bins=n_bins))
    result["thresholds_selected"] = selection is not None
    result["targets_met"] = met
    result["notes"] = notes
    return result
