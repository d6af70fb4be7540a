"""The baseline classifier: the featuriser's columns → logistic regression (one head per label), Platt
calibrated, with verdicts that name their evidence.

Scoring never builds the sparse matrix (:meth:`Featurizer.score_chunk
<hf_spamguard.baseline.featurizer.Featurizer.score_chunk>`), and chunks are scored on a thread pool
(NumPy releases the GIL) with a bounded number in flight, so memory stays flat in the number of rows.

Files written by :meth:`BaselineClassifier.save_pretrained` (see :mod:`hf_spamguard.baseline.persistence`):
``model.skops`` (NumPy arrays only: IDF, weights, calibration; loaded with an explicit trusted-types list;
anything else is refused), ``config.json`` (``"model_type": "spamguard-baseline"``, labels, featuriser
settings, training record) and ``policy.json`` (thresholds, binary models only).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hf_spamguard.baseline.explain import reason_for
from hf_spamguard.baseline.featurizer import DENSE_FEATURES, Featurizer, FeaturizerConfig, word_buckets
from hf_spamguard.baseline.lexicon import tokens
from hf_spamguard.baseline.persistence import MODEL_TYPE, load_folder, save_folder
from hf_spamguard.files import BASELINE_MODEL_FILE
from hf_spamguard.policy import Thresholds, as_thresholds, decide
from hf_spamguard.verdict import make_verdict


@dataclass
class BaselineTrainingArguments:
    """How the baseline is trained."""

    Cs: tuple[float, ...] = field(
        default=(1.0, 4.0, 16.0, 64.0),
        metadata={
            "help": "Inverse regularisation strengths tried by cross-validation on train (comma-separated).",
            "cli": {"parse": "floats", "flag": "--cs"},
        },
    )
    cv: int = field(
        default=5, metadata={"help": "Folds for choosing C and for out-of-fold calibration.", "min": 2}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the fold split."})
    max_iter: int = field(
        default=3000, metadata={"help": "Solver iterations of each logistic regression.", "min": 1}
    )


def _is_soft(y: np.ndarray) -> bool:
    return bool(np.any((y > 0) & (y < 1)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def _fit_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``p = sigmoid(a z + b)`` on out-of-fold scores, with Platt's smoothed targets.

    The smoothed targets keep the optimum finite when the scores separate the classes perfectly (small
    or easy data); a tiny ridge on ``a`` and L-BFGS keep the fit stable where Newton steps overshoot.
    Soft targets (probabilities, not all 0/1) are used as they are: they are never perfectly separable.
    """
    from scipy.optimize import minimize

    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if _is_soft(y):
        t = y
    else:
        n_pos = float(y.sum())
        n_neg = float(y.size - n_pos)
        t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        u = a * z + b
        # log(1 + e^u) computed stably
        log1pexp = np.logaddexp(0.0, u)
        value = np.sum(log1pexp - t * u) + 1e-3 * a * a
        p = _sigmoid(u)
        grad = np.array([np.sum((p - t) * z) + 2e-3 * a, np.sum(p - t)])
        return float(value), grad

    res = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = res.x
    return float(a), float(b)


class BaselineClassifier:
    """Hashed TF-IDF + keyword-stuffing features → logistic regression (one head per label), calibrated.

    Binary by default (``labels=None``: one head, probability of ``spam``). With ``labels=[...]`` it is
    multi-label: ``fit(texts, Y)`` with ``Y`` of shape ``(n, L)`` and ``predict_proba`` returns ``(n, L)``.
    """

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        featurizer: FeaturizerConfig | None = None,
        policy: Thresholds | None = None,
    ) -> None:
        self.labels = list(labels) if labels is not None else None
        if self.labels is not None and (not self.labels or len(set(self.labels)) != len(self.labels)):
            raise ValueError(f"labels must be distinct and non-empty, got {labels!r}")
        self.featurizer = Featurizer(featurizer)
        self.policy = policy
        self.coef_: np.ndarray | None = None  # (L, n_features) float32
        self.intercept_: np.ndarray | None = None  # (L,)
        self.calibration_: np.ndarray | None = None  # (L, 2): Platt a, b
        self.training_: dict[str, Any] = {}

    # -- properties ----------------------------------------------------------------------------------
    @property
    def multilabel(self) -> bool:
        return self.labels is not None

    @property
    def head_names(self) -> list[str]:
        return list(self.labels) if self.labels is not None else ["spam"]

    def _check_fitted(self) -> None:
        if self.coef_ is None:
            raise RuntimeError("the baseline is not fitted: call fit() or from_pretrained()")

    # -- training ------------------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        y: Any,
        args: BaselineTrainingArguments | None = None,
        *,
        progress: bool = False,
    ) -> BaselineClassifier:
        """Fit on training data only. ``C`` per head by stratified CV log-loss; Platt calibration on the
        out-of-fold scores of the chosen ``C``.

        ``y`` holds 0/1 labels, or probabilities in [0, 1] (soft targets, e.g. a teacher's): a head with
        any fractional target is fitted on the exact soft cross-entropy, each row entered once as a
        positive with weight ``p`` and once as a negative with weight ``1 - p``; folds are stratified on
        ``p >= 0.5``.
        """
        import scipy.sparse as sp
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
        from tqdm.auto import tqdm

        args = args or BaselineTrainingArguments()
        texts = ["" if t is None else str(t) for t in texts]
        Y = np.asarray(y)
        if self.multilabel:
            if Y.ndim != 2 or Y.shape != (len(texts), len(self.head_names)):
                raise ValueError(
                    f"multi-label y must have shape ({len(texts)}, {len(self.head_names)}), got {Y.shape}"
                )
        else:
            if Y.ndim != 1 or Y.shape[0] != len(texts):
                raise ValueError(f"binary y must have shape ({len(texts)},), got {Y.shape}")
            Y = Y[:, None]
        try:
            Y = Y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError("labels must be 0/1 or probabilities in [0, 1]") from None
        if not (np.isfinite(Y).all() and (Y >= 0).all() and (Y <= 1).all()):
            raise ValueError("labels must be 0/1 or probabilities in [0, 1]")
        X_full = self.featurizer.fit(texts).transform(texts)
        # Only columns seen in training can get a non-zero weight: solve on those (much smaller problem).
        used = np.flatnonzero(X_full.getnnz(axis=0))
        X = X_full[:, used]
        coefs, intercepts, calib, record = [], [], [], {}
        bar = tqdm(
            total=len(self.head_names) * (len(args.Cs) * args.cv + 1), disable=not progress, desc="baseline"
        )
        for j, name in enumerate(self.head_names):
            yj = Y[:, j]
            soft = _is_soft(yj)
            hard = (yj >= 0.5).astype(np.int64)
            n_pos = int(hard.sum())
            if n_pos == 0 or n_pos == yj.size:
                raise ValueError(
                    f"label {name!r} has a single class in the training data ({n_pos} of {yj.size})"
                )
            folds = max(2, min(args.cv, n_pos, yj.size - n_pos))
            skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=args.seed)
            splits = list(skf.split(np.zeros(yj.size), hard))

            def fit_lr(rows: np.ndarray, C: float, yj: np.ndarray = yj, soft: bool = soft) -> Any:
                lr = LogisticRegression(C=C, max_iter=args.max_iter, solver="liblinear")
                if not soft:
                    return lr.fit(X[rows], yj[rows].astype(np.int64))
                both = sp.vstack([X[rows], X[rows]], format="csr")
                target = np.r_[np.ones(rows.size, np.int64), np.zeros(rows.size, np.int64)]
                return lr.fit(both, target, sample_weight=np.r_[yj[rows], 1.0 - yj[rows]])

            best = None
            for C in args.Cs:
                oof = np.zeros(yj.size)
                for tr, te in splits:
                    oof[te] = fit_lr(tr, C).decision_function(X[te])
                    bar.update(1)
                p = np.clip(_sigmoid(oof), 1e-12, 1 - 1e-12)
                loss = float(-np.mean(yj * np.log(p) + (1 - yj) * np.log(1 - p)))
                if best is None or loss < best[0]:
                    best = (loss, C, oof)
            assert best is not None
            loss, C, oof = best
            a, b = _fit_platt(oof, yj)
            lr = fit_lr(np.arange(yj.size), C)
            bar.update(1)
            coef = np.zeros(X_full.shape[1], dtype=np.float32)
            coef[used] = lr.coef_[0]
            coefs.append(coef)
            intercepts.append(float(lr.intercept_[0]))
            calib.append((a, b))
            record[name] = {
                "C": float(C),
                "cv_log_loss": loss,
                "platt": [a, b],
                "n_pos": n_pos,
                "targets": "soft" if soft else "hard",
            }
        bar.close()
        self.coef_ = np.vstack(coefs)
        self.intercept_ = np.asarray(intercepts, dtype=np.float64)
        self.calibration_ = np.asarray(calib, dtype=np.float64)
        self.training_ = {"n_train": len(texts), "heads": record, "args": asdict(args)}
        return self

    # -- scoring -------------------------------------------------------------------------------------
    def _proba_chunk(self, texts: Sequence[str]) -> np.ndarray:
        assert self.coef_ is not None and self.intercept_ is not None and self.calibration_ is not None
        z = self.featurizer.score_chunk(texts, self.coef_, self.intercept_)
        p = _sigmoid(z * self.calibration_[:, 0] + self.calibration_[:, 1])
        return p if self.multilabel else p[:, 0]

    def score_chunks(
        self, texts: Iterable[str], chunk_size: int = 2048, n_jobs: int | None = None
    ) -> Iterator[np.ndarray]:
        """Calibrated probabilities, one array per chunk of ``chunk_size`` texts, in input order.

        Consumes ``texts`` lazily and keeps at most ``2 * n_jobs`` chunks in flight, so memory is flat
        in the number of rows. ``n_jobs`` threads (default: all cores) — the work is in NumPy.
        """
        self._check_fitted()
        n_jobs = n_jobs or os.cpu_count() or 1
        iterator = iter(texts)

        def next_chunk() -> list[str]:
            chunk = []
            for t in iterator:
                chunk.append("" if t is None else str(t))
                if len(chunk) >= chunk_size:
                    break
            return chunk

        if n_jobs <= 1:
            while chunk := next_chunk():
                yield self._proba_chunk(chunk)
            return
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            pending: deque[Any] = deque()
            while True:
                while len(pending) < 2 * n_jobs and (chunk := next_chunk()):
                    pending.append(pool.submit(self._proba_chunk, chunk))
                if not pending:
                    return
                yield pending.popleft().result()

    def predict_proba(
        self, texts: Sequence[str] | str, *, chunk_size: int = 2048, n_jobs: int | None = None
    ) -> np.ndarray:
        """Spam probability ``(n,)`` (binary) or per-label probabilities ``(n, L)`` (multi-label)."""
        if isinstance(texts, str):
            texts = [texts]
        parts = list(self.score_chunks(texts, chunk_size=chunk_size, n_jobs=n_jobs))
        if not parts:
            return np.zeros((0, len(self.head_names))) if self.multilabel else np.zeros(0)
        return np.concatenate(parts)

    def top_terms(self, text: str, k: int = 4, head: int = 0) -> list[str]:
        """Words of ``text`` whose unigram weights push hardest towards the label."""
        self._check_fitted()
        assert self.coef_ is not None
        words = list(dict.fromkeys(tokens(text or "")))  # distinct, in order of appearance
        if not words:
            return []
        buckets = word_buckets(words, self.featurizer.config.word_bits)
        w = self.coef_[head, buckets] * self.featurizer.idf["word"][buckets]
        order = np.argsort(-w)
        return [words[i] for i in order[:k] if w[i] > 0]

    def explain(self, text: str, confidence: float | None = None) -> str:
        """A one-line reason for the verdict on ``text`` (binary models)."""
        if confidence is None:
            confidence = float(np.atleast_1d(self.predict_proba([text], n_jobs=1))[0])
        return reason_for(text, confidence, self.top_terms(text) if confidence >= 0.5 else ())

    def __call__(
        self,
        texts: str | Sequence[str],
        policy: Thresholds | dict[str, Any] | str | os.PathLike[str] | None = None,
        *,
        reason: bool = True,
        batch_size: int = 2048,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Verdicts (see :mod:`hf_spamguard.verdict`); ``decision`` added when a policy is given or saved."""
        if self.multilabel:
            raise TypeError("verdicts are binary; use predict_proba() for a multi-label model")
        single = isinstance(texts, str)
        items = [texts] if single else ["" if t is None else str(t) for t in texts]
        th = as_thresholds(policy) if policy is not None else self.policy
        probs = self.predict_proba(items, chunk_size=batch_size)
        decisions = decide(probs, th) if th is not None else [None] * len(items)
        verdicts = [
            make_verdict(
                float(p),
                self.explain(t, float(p)) if reason else "",
                decision=None if d is None else str(d),
            )
            for t, p, d in zip(items, probs, decisions, strict=True)
        ]
        return verdicts[0] if single else verdicts

    # -- persistence ---------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """What ``config.json`` holds: model type, task, labels, featuriser settings, training record."""
        cfg = asdict(self.featurizer.config)
        cfg["char_ngrams"] = list(cfg["char_ngrams"])
        return {
            "model_type": MODEL_TYPE,
            "task": "multi-label" if self.multilabel else "binary",
            "labels": self.head_names,
            "id2label": {"0": "not_spam", "1": "spam"} if not self.multilabel else None,
            "featurizer": cfg,
            "dense_features": list(DENSE_FEATURES),
            "training": self.training_,
            "format_version": 1,
        }

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.skops``, ``config.json`` and (binary with a policy) ``policy.json``; atomic per file."""
        self._check_fitted()
        state = {
            "featurizer": self.featurizer.state(),
            "coef": self.coef_,
            "intercept": self.intercept_,
            "calibration": self.calibration_,
        }
        return save_folder(directory, state, self.config_dict(), self.policy)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, revision: str | None = None, token: str | None = None
    ) -> BaselineClassifier:
        """Load a folder written by :meth:`save_pretrained`, or a Hub repo id (``"org/name"``, downloaded
        once into the Hugging Face cache); refuses skops files with untrusted types
        (:func:`~hf_spamguard.baseline.persistence.load_folder`) and weights that do not match the config."""
        folder = load_folder(directory, revision=revision, token=token)
        config, state = folder.config, folder.state
        fcfg = dict(config["featurizer"])
        fcfg["char_ngrams"] = tuple(fcfg.get("char_ngrams", ()))
        labels = None if config.get("task") == "binary" else list(config["labels"])
        self = cls(labels=labels, featurizer=FeaturizerConfig(**fcfg), policy=folder.policy)
        self.featurizer = Featurizer.from_state(self.featurizer.config, state["featurizer"])
        self.coef_ = np.asarray(state["coef"], dtype=np.float32)
        self.intercept_ = np.asarray(state["intercept"], dtype=np.float64)
        self.calibration_ = np.asarray(state["calibration"], dtype=np.float64)
        self.training_ = config.get("training", {})
        if self.coef_.shape != (len(self.head_names), self.featurizer.n_features):
            model_path = folder.directory / BASELINE_MODEL_FILE
            raise ValueError(f"{model_path}: weights of shape {self.coef_.shape} do not match the config")
        return self


__all__ = ["BaselineClassifier", "BaselineTrainingArguments"]
