"""The second stage of a binary baseline: gradient-boosted trees over [the linear stage's logit, the
stuffing features], chosen and calibrated on out-of-fold scores of the training rows only.

Why a second stage: the n-gram model sees which words a listing uses, not how they are laid out; a
keyword list without a marker ("... Summer dress mini skirt shorts top blouse vest bodysuit") is a long
run of tokens with no stop word, which the trees read from the stuffing features
(:mod:`~hf_spamguard.baseline.stuffing`) next to the n-gram evidence. On the Depop data this closes most
of the gap to the goals (``benchmarks/baseline_quality.py``).

Why the trees are exported to arrays: scikit-learn's ``HistGradientBoostingClassifier`` is used to fit
them, but the saved model holds only their node arrays (feature, threshold, children, leaf value), scored
in NumPy (:class:`TreeEnsemble`). The skops file then keeps its arrays-only trusted-types list (no
estimator is ever unpickled), scoring never imports scikit-learn and does not depend on its version,
and OpenMP threads do not compete with the scoring thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Calibrations the grid chooses from: ``none`` (the trees' own log-loss probabilities), ``platt``
#: (a sigmoid of the raw score) and ``isotonic`` (a monotone step function), each fitted on
#: out-of-fold scores.
CALIBRATIONS: tuple[str, ...] = ("none", "platt", "isotonic")


@dataclass(frozen=True)
class TreeConfig:
    """One point of the stage-2 grid (``HistGradientBoostingClassifier`` settings + calibration)."""

    max_leaf_nodes: int
    max_iter: int
    min_samples_leaf: int
    calibration: str = "none"
    learning_rate: float = 0.1
    # Depth 3 bounds scoring to three compares per tree and row; on the Depop data it scored the same
    # as unbounded 7-15-leaf trees (issue #15 research), and 0.1 x 50-100 trees as 0.05 x 100-200.
    max_depth: int | None = 3


def tree_grid(
    leaves: Sequence[int] = (4, 8),
    iterations: Sequence[int] = (50, 100),
    min_samples_leaf: Sequence[int] = (20, 40),
    calibrations: Sequence[str] = CALIBRATIONS,
) -> tuple[TreeConfig, ...]:
    """The stage-2 grid: every combination (the default is 2 x 2 x 2 x 3 = 24 configurations)."""
    return tuple(
        TreeConfig(lv, it, m, c)
        for lv in leaves
        for it in iterations
        for m in min_samples_leaf
        for c in calibrations
    )


#: The default stage-2 grid.
DEFAULT_TREE_GRID = tree_grid()


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``p = sigmoid(a z + b)`` on out-of-fold scores, with Platt's smoothed targets.

    The smoothed targets keep the optimum finite when the scores separate the classes perfectly (small
    or easy data); a tiny ridge on ``a`` and L-BFGS keep the fit stable where Newton steps overshoot.
    Soft targets (probabilities, not all 0/1) are used as they are: they are never perfectly separable.
    """
    from scipy.optimize import minimize

    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if np.any((y > 0) & (y < 1)):
        t = y
    else:
        n_pos = float(y.sum())
        n_neg = float(y.size - n_pos)
        t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        u = a * z + b
        value = np.sum(np.logaddexp(0.0, u) - t * u) + 1e-3 * a * a  # log(1 + e^u), stably
        p = sigmoid(u)
        grad = np.array([np.sum((p - t) * z) + 2e-3 * a, np.sum(p - t)])
        return float(value), grad

    res = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = res.x
    return float(a), float(b)


class Calibrator:
    """``none`` / ``platt`` / ``isotonic`` on a raw score (a logit); arrays only, so it is saved as is."""

    def __init__(self, kind: str = "none", platt: tuple[float, float] = (1.0, 0.0)) -> None:
        if kind not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {kind!r}")
        self.kind = kind
        self.platt = (float(platt[0]), float(platt[1]))
        self.x = np.zeros(0)
        self.y = np.zeros(0)

    @classmethod
    def fit(cls, kind: str, z: np.ndarray, y: np.ndarray) -> Calibrator:
        """Fit ``kind`` on raw scores ``z`` with 0/1 targets ``y``."""
        cal = cls(kind)
        if kind == "platt":
            cal.platt = fit_platt(z, y)
        elif kind == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            # never 0 or 1: a wrong certain probability is an infinite loss
            iso = IsotonicRegression(y_min=1e-3, y_max=1 - 1e-3, out_of_bounds="clip").fit(sigmoid(z), y)
            cal.x = np.asarray(iso.X_thresholds_, dtype=np.float64)
            cal.y = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return cal

    def __call__(self, z: np.ndarray) -> np.ndarray:
        if self.kind == "platt":
            return sigmoid(self.platt[0] * z + self.platt[1])
        if self.kind == "isotonic":
            return np.interp(sigmoid(z), self.x, self.y)
        return sigmoid(z)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "platt": np.asarray(self.platt), "x": self.x, "y": self.y}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Calibrator:
        cal = cls(str(state["kind"]), tuple(np.asarray(state["platt"], dtype=np.float64)))  # type: ignore[arg-type]
        cal.x = np.asarray(state["x"], dtype=np.float64)
        cal.y = np.asarray(state["y"], dtype=np.float64)
        return cal


def crossfit(
    kind: str, z: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Out-of-fold calibrated probabilities: each fold calibrated by a calibrator fitted on the others."""
    p = np.zeros(len(z))
    for fit_rows, held_out in folds:
        p[held_out] = Calibrator.fit(kind, z[fit_rows], y[fit_rows])(z[held_out])
    return p


class TreeEnsemble:
    """Boosted binary trees as arrays, scored in NumPy with scikit-learn's decisions (left when
    ``x <= threshold``).

    Every tree is stored as a complete binary tree of its depth ``D`` (heap order: node ``i`` has
    children ``2i + 1`` / ``2i + 2``): ``feature`` / ``threshold`` ``(T, 2^D - 1)``, leaf ``value``
    ``(T, 2^D)``. A leaf above the last level becomes a node that always goes left (threshold +inf)
    down to a copy of itself. Scoring then needs no child arrays (see :meth:`raw_score`); with
    ``max_depth`` 3 that is 7 compares per tree and row, whatever the number of leaves.
    """

    def __init__(self, arrays: dict[str, Any]) -> None:
        self.feature = np.asarray(arrays["feature"], dtype=np.int64)
        self.threshold = np.asarray(arrays["threshold"], dtype=np.float64)
        self.value = np.asarray(arrays["value"], dtype=np.float64)
        self.baseline = float(arrays["baseline"])
        self.n_features = int(arrays["n_features"])
        n_trees, n_leaves = self.value.shape
        self.depth = int(round(np.log2(n_leaves)))
        if (
            n_leaves != 1 << self.depth
            or self.feature.shape != (n_trees, n_leaves - 1)
            or self.threshold.shape != self.feature.shape
            or (self.feature.size and (self.feature.min() < 0 or self.feature.max() >= self.n_features))
        ):
            raise ValueError("stage-2 tree arrays do not fit together")

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """Export a fitted binary ``HistGradientBoostingClassifier`` (numerical features, no NaN)."""
        trees = [nodes for (predictor,) in model._predictors for nodes in [predictor.nodes]]
        if any(nodes["is_categorical"].any() for nodes in trees):
            raise ValueError("categorical splits are not supported")
        depth = max((int(nodes["depth"].max()) for nodes in trees), default=0)
        n_trees, inner = len(trees), (1 << depth) - 1
        feature = np.zeros((n_trees, inner), dtype=np.int64)
        threshold = np.full((n_trees, inner), np.inf)
        value = np.zeros((n_trees, 1 << depth))
        for t, nodes in enumerate(trees):
            todo = [(0, 0, 0)]  # (sklearn node, heap position, level)
            while todo:
                node, pos, level = todo.pop()
                if level == depth:
                    value[t, pos - inner] = nodes["value"][node]
                elif nodes["is_leaf"][node]:
                    todo.append((node, 2 * pos + 1, level + 1))  # threshold +inf: always left
                else:
                    feature[t, pos] = nodes["feature_idx"][node]
                    threshold[t, pos] = nodes["num_threshold"][node]
                    todo.append((int(nodes["left"][node]), 2 * pos + 1, level + 1))
                    todo.append((int(nodes["right"][node]), 2 * pos + 2, level + 1))
        baseline = float(np.ravel(model._baseline_prediction)[0])
        arrays = {"feature": feature, "threshold": threshold, "value": value, "baseline": baseline}
        return cls({**arrays, "n_features": int(model.n_features_in_)})

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """The trees' summed raw score (a logit) of every row of ``X`` ``(n, n_features)``.

        Level by level, every node of the level is compared for every row (a contiguous row of ``X.T``
        per node), and each (tree, row) picks the comparison of the node it is at: ``2^D - 1`` compares
        per tree and row instead of ``D`` random gathers into ``X``, several times faster for the
        shallow trees of stage 2 (the work grows with ``2^D``: keep them shallow).
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} stage-2 features, got shape {X.shape}")
        n, n_trees = X.shape[0], self.value.shape[0]
        # features as rows: a node's comparison for all rows reads one contiguous row of XT
        XT = np.ascontiguousarray(X.T)
        cols = np.arange(n, dtype=np.int64)
        pos = np.zeros((n_trees, n), dtype=np.int64)  # index of each (tree, row)'s node within its level
        for level in range(self.depth):
            nodes = slice((1 << level) - 1, (1 << (level + 1)) - 1)
            right = XT[self.feature[:, nodes].ravel()] > self.threshold[:, nodes].ravel()[:, None]
            if level == 0:
                went = right  # one root per tree
            else:
                first = (np.arange(n_trees, dtype=np.int64) << level)[:, None]  # the tree's first node
                went = right.ravel()[(first + pos) * n + cols]
            pos = 2 * pos + went
        leaf = (np.arange(n_trees, dtype=np.int64) << self.depth)[:, None] + pos
        return self.baseline + self.value.ravel()[leaf].sum(axis=0)

    def state(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "value": self.value,
            "baseline": float(self.baseline),
            "n_features": int(self.n_features),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TreeEnsemble:
        return cls(state)


def _hgb(cfg: TreeConfig, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        max_depth=cfg.max_depth,
        max_iter=cfg.max_iter,
        min_samples_leaf=cfg.min_samples_leaf,
        early_stopping=False,  # the grid's iterations are the choice; no split of the small data
        random_state=seed,
    )


def fit_stage2(
    inputs: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: Sequence[TreeConfig] = DEFAULT_TREE_GRID,
    seed: int = 0,
) -> tuple[TreeEnsemble, Calibrator, dict[str, Any], np.ndarray]:
    """Choose the grid point with the lowest out-of-fold log-loss (after cross-fitted calibration), on
    the training rows only, and refit it on all of them.

    ``inputs`` is ``(n, 1 + n_stuffing)``: the linear stage's out-of-fold logit, then the raw stuffing
    features; ``y`` 0/1. Returns the trees, their calibrator (fitted on the trees' out-of-fold raw scores),
    the selection record and the chosen configuration's out-of-fold probabilities (for thresholds).
    """
    from threadpoolctl import threadpool_limits

    y = np.asarray(y, dtype=np.int64)
    grid = list(grid)
    if not grid:
        raise ValueError("the stage-2 grid is empty")
    # One OpenMP thread: on a few thousand rows the trees' threads mostly wait on each other, and on a
    # shared machine two spinning threads can make a fit 10x slower than one.
    with threadpool_limits(1):
        return _fit_stage2(inputs, y, folds, grid, seed)


def _fit_stage2(
    inputs: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: list[TreeConfig],
    seed: int,
) -> tuple[TreeEnsemble, Calibrator, dict[str, Any], np.ndarray]:
    oof_raw: dict[tuple[Any, ...], np.ndarray] = {}
    log: list[dict[str, Any]] = []
    best: tuple[float, TreeConfig, np.ndarray] | None = None
    for cfg in grid:
        key = (cfg.max_leaf_nodes, cfg.max_iter, cfg.min_samples_leaf, cfg.max_depth, cfg.learning_rate)
        if key not in oof_raw:  # the calibrations of one tree setting share its out-of-fold scores
            raw = np.zeros(len(y))
            for fit_rows, held_out in folds:
                model = _hgb(cfg, seed).fit(inputs[fit_rows], y[fit_rows])
                raw[held_out] = model.decision_function(inputs[held_out])
            oof_raw[key] = raw
        p = crossfit(cfg.calibration, oof_raw[key], y, folds)
        loss = log_loss(y, p)
        log.append({**asdict(cfg), "oof_log_loss": loss})
        if best is None or loss < best[0]:
            best = (loss, cfg, p)
    assert best is not None
    loss, cfg, oof_p = best
    model = _hgb(cfg, seed).fit(inputs, y)
    trees = TreeEnsemble.from_sklearn(model)
    key = (cfg.max_leaf_nodes, cfg.max_iter, cfg.min_samples_leaf, cfg.max_depth, cfg.learning_rate)
    calibrator = Calibrator.fit(cfg.calibration, oof_raw[key], y)
    record = {"chosen": asdict(cfg), "oof_log_loss": loss, "n_configurations": len(grid), "grid": log}
    return trees, calibrator, record, oof_p


__all__ = [
    "CALIBRATIONS",
    "Calibrator",
    "DEFAULT_TREE_GRID",
    "TreeConfig",
    "TreeEnsemble",
    "crossfit",
    "fit_platt",
    "fit_stage2",
    "log_loss",
    "sigmoid",
    "tree_grid",
]
