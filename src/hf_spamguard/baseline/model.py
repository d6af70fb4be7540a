"""The baseline classifier: hashed n-gram TF-IDF → logistic regression (one head per label), then, for a
binary model, gradient-boosted trees over [that logit, the stuffing features]; calibrated on
out-of-fold scores, with verdicts that name their evidence.

Every choice is made by cross-validation on the training rows only (nested inside any outer evaluation):
``C`` of the linear stage by out-of-fold log-loss after cross-fitted Platt scaling, then the stage-2
trees and their calibration (none / Platt / isotonic) by out-of-fold log-loss of the stage-2 inputs built
from the linear stage's out-of-fold logits (:mod:`~hf_spamguard.baseline.stage2`). A multi-label model
(the review student) and a model trained on soft targets have the linear stage only, with the stuffing
features as standardised linear columns (``FeaturizerConfig.dense_scale``), Platt calibrated.

Scoring never builds the sparse matrix (:meth:`Featurizer.score_chunk
<hf_spamguard.baseline.featurizer.Featurizer.score_chunk>`), and chunks are scored on a thread pool
(NumPy releases the GIL) with a bounded number in flight, so memory stays flat in the number of rows.

Files written by :meth:`BaselineClassifier.save_pretrained` (see :mod:`hf_spamguard.baseline.persistence`):
``model.skops`` (NumPy arrays and built-ins only: IDF, weights, tree node arrays, calibration; loaded with
an explicit trusted-types list; anything else is refused), ``config.json`` (``"model_type":
"spamguard-baseline"``, ``format_version`` 2, labels, featuriser settings, training record) and
``policy.json`` (thresholds, binary models only).
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
from hf_spamguard.baseline.featurizer import DENSE_FEATURES, Featurizer, FeaturizerConfig, featurize_chunk
from hf_spamguard.baseline.hashing import bigram_buckets, word_buckets
from hf_spamguard.baseline.lexicon import tokens
from hf_spamguard.baseline.persistence import MODEL_TYPE, load_folder, save_folder
from hf_spamguard.baseline.stage2 import (
    DEFAULT_TREE_GRID,
    Calibrator,
    TreeConfig,
    TreeEnsemble,
    crossfit,
    fit_platt,
    fit_stage2,
    log_loss,
    sigmoid,
)
from hf_spamguard.files import BASELINE_MODEL_FILE
from hf_spamguard.policy import Thresholds, as_thresholds, decide
from hf_spamguard.verdict import make_verdict

#: ``config.json``'s ``format_version``: 2 since the stuffing features and the stage-2 trees.
FORMAT_VERSION = 2


@dataclass
class BaselineTrainingArguments:
    """How the baseline is trained (every choice by cross-validation on the training rows)."""

    Cs: tuple[float, ...] = field(
        default=(1.0, 4.0, 16.0),
        metadata={
            "help": "Inverse regularisation strengths tried by cross-validation on train (comma-separated).",
            "cli": {"parse": "floats", "flag": "--cs"},
        },
    )
    cv: int = field(
        default=5,
        metadata={"help": "Folds for every choice and for the out-of-fold scores calibrated.", "min": 2},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the fold split and of the trees."})
    max_iter: int = field(
        default=5000, metadata={"help": "Solver iterations of each logistic regression.", "min": 1}
    )
    stage2: bool = field(
        default=True,
        metadata={
            "help": "Binary models: gradient-boosted trees over the linear logit and the stuffing features "
            "(grid and calibration chosen by cross-validation); --no-stage2: the linear model alone."
        },
    )
    stage2_grid: tuple[TreeConfig, ...] = field(
        default=DEFAULT_TREE_GRID,
        metadata={"help": "The stage-2 configurations tried (Python API only).", "cli_exclude": True},
    )
    stage2_required: bool = field(
        default=False,
        metadata={
            "help": "Keep the trees even where the linear stage alone has the lower out-of-fold log-loss "
            "(Python API only: tests).",
            "cli_exclude": True,
        },
    )


def _is_soft(y: np.ndarray) -> bool:
    return bool(np.any((y > 0) & (y < 1)))


def _record(args: BaselineTrainingArguments) -> dict[str, Any]:
    """The training arguments as JSON-able values (the grid as its size and points)."""
    out = asdict(args)
    out["stage2_grid"] = [asdict(c) for c in args.stage2_grid]
    return out


class BaselineClassifier:
    """Hashed TF-IDF → logistic regression (one head per label) → (binary) boosted trees over the logit
    and the keyword-stuffing features, calibrated.

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
        self.coef_: np.ndarray | None = None  # (L, n_features) float32 (stuffing columns 0 with stage 2)
        self.intercept_: np.ndarray | None = None  # (L,)
        self.calibration_: np.ndarray | None = None  # (L, 2): Platt a, b of the linear-only heads
        self.stage2_: TreeEnsemble | None = None  # binary models: trees over [logit, stuffing]
        self.stage2_calibrator_: Calibrator | None = None
        #: Calibrated out-of-fold probabilities of the training rows ``(n, L)`` (not saved): what the
        #: benchmarks choose thresholds on when there is no validation split.
        self.oof_proba_: np.ndarray | None = None
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
        """Fit on training data only (see the module docstring for what cross-validation chooses).

        ``y`` holds 0/1 labels, or probabilities in [0, 1] (soft targets, e.g. a teacher's): a head with
        any fractional target is fitted on the exact soft cross-entropy, each row entered once as a
        positive with weight ``p`` and once as a negative with weight ``1 - p``; folds are stratified on
        ``p >= 0.5``. Stage 2 is tried for a binary model with 0/1 labels when ``args.stage2`` is set,
        and kept when its out-of-fold log-loss is below the linear stage's (``training_`` records both).
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
        use_stage2 = bool(args.stage2) and not self.multilabel and not _is_soft(Y[:, 0])
        chunks = self.featurizer.fit_transform_chunks(texts)
        # with stage 2 the stuffing features go to the trees, not to the linear model
        X_full = sp.vstack([self.featurizer.transform_chunk(c, dense=not use_stage2) for c in chunks], "csr")
        stuffing = np.concatenate([c.dense for c in chunks]) if chunks else np.zeros((0, len(DENSE_FEATURES)))
        # Only columns seen in training can get a non-zero weight: solve on those (much smaller problem).
        used = np.flatnonzero(X_full.getnnz(axis=0))
        X = X_full[:, used]
        coefs, intercepts, calib, record = [], [], [], {}
        oof_all = np.zeros(Y.shape)
        steps = len(self.head_names) * (len(args.Cs) * args.cv + 1) + (1 if use_stage2 else 0)
        bar = tqdm(total=steps, disable=not progress, desc="baseline")
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
                # lbfgs: the intercept is not penalised (liblinear's is)
                lr = LogisticRegression(C=C, max_iter=args.max_iter)
                if not soft:
                    return lr.fit(X[rows], yj[rows].astype(np.int64))
                both = sp.vstack([X[rows], X[rows]], format="csr")
                target = np.r_[np.ones(rows.size, np.int64), np.zeros(rows.size, np.int64)]
                return lr.fit(both, target, sample_weight=np.r_[yj[rows], 1.0 - yj[rows]])

            best = None
            c_log = []
            for C in args.Cs:
                oof = np.zeros(yj.size)
                for tr, te in splits:
                    oof[te] = fit_lr(tr, C).decision_function(X[te])
                    bar.update(1)
                # the criterion is the log-loss after calibration, which is what the model will output
                p = crossfit("platt", oof, yj, splits) if not soft else sigmoid(oof)
                loss = log_loss(yj, p)
                c_log.append({"C": float(C), "oof_log_loss": loss})
                if best is None or loss < best[0]:
                    best = (loss, C, oof, p)
            assert best is not None
            loss, C, oof, p_oof = best
            a, b = fit_platt(oof, yj)
            lr = fit_lr(np.arange(yj.size), C)
            bar.update(1)
            coef = np.zeros(X_full.shape[1], dtype=np.float32)
            coef[used] = lr.coef_[0]
            coefs.append(coef)
            intercepts.append(float(lr.intercept_[0]))
            calib.append((a, b))
            oof_all[:, j] = p_oof
            record[name] = {
                "C": float(C),
                "cv_log_loss": loss,
                "C_grid": c_log,
                "platt": [a, b],
                "n_pos": n_pos,
                "targets": "soft" if soft else "hard",
            }
            self.stage2_ = self.stage2_calibrator_ = None
            record[name]["n_configurations"] = len(args.Cs)
            if use_stage2:
                inputs = np.column_stack([oof, stuffing])
                trees, calibrator, rec2, p2 = fit_stage2(inputs, hard, splits, args.stage2_grid, args.seed)
                bar.update(1)
                # the linear stage alone is one more candidate, judged on the same out-of-fold
                # log-loss: on a few dozen rows no tree can split and the trees would throw it away
                rec2["used"] = bool(args.stage2_required or rec2["oof_log_loss"] < loss)
                if rec2["used"]:
                    self.stage2_, self.stage2_calibrator_ = trees, calibrator
                    oof_all[:, j] = p2
                record[name]["stage2"] = rec2
                record[name]["n_configurations"] += rec2["n_configurations"]
        bar.close()
        self.coef_ = np.vstack(coefs)
        self.intercept_ = np.asarray(intercepts, dtype=np.float64)
        self.calibration_ = np.asarray(calib, dtype=np.float64)
        self.oof_proba_ = oof_all if self.multilabel else oof_all[:, 0]
        self.training_ = {"n_train": len(texts), "heads": record, "args": _record(args)}
        return self

    # -- scoring -------------------------------------------------------------------------------------
    def _proba_chunk(self, texts: Sequence[str]) -> np.ndarray:
        assert self.coef_ is not None and self.intercept_ is not None and self.calibration_ is not None
        chunk = featurize_chunk(texts, self.featurizer.config)
        z = self.featurizer.linear_scores(chunk, self.coef_, self.intercept_)
        if self.stage2_ is not None and self.stage2_calibrator_ is not None:
            raw = self.stage2_.raw_score(np.column_stack([z[:, 0], chunk.dense]))
            return self.stage2_calibrator_(raw)
        p = sigmoid(z * self.calibration_[:, 0] + self.calibration_[:, 1])
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
        """Words and word pairs of ``text`` whose n-gram weights push hardest towards the label.

        A word's weight is its unigram weight (x idf) plus, with a character block, the weights of its
        character n-grams; a pair's is its bigram weight. Pairs whose words are listed already are
        skipped, so the terms name different evidence.
        """
        self._check_fitted()
        assert self.coef_ is not None
        words = tokens(text or "")
        distinct = list(dict.fromkeys(words))  # in order of appearance
        if not distinct:
            return []
        config, idf = self.featurizer.config, self.featurizer.idf
        coef = self.coef_[head]
        offsets = self._block_offsets()
        w = np.zeros(len(distinct))
        if "word" in idf:
            buckets = word_buckets(distinct, config.word_bits)
            w += coef[offsets["word"] + buckets] * idf["word"][buckets]
        if "char" in idf:
            w += self._char_weights(distinct, coef[offsets["char"] :])
        terms = list(distinct)
        weights = list(w)
        pairs = list(dict.fromkeys(zip(words[:-1], words[1:], strict=True)))
        if "bigram" in idf and pairs:
            b = bigram_buckets(pairs, config.bigram_bits)
            terms += [f"{a} {c}" for a, c in pairs]
            weights += list(coef[offsets["bigram"] + b] * idf["bigram"][b])
        order = np.argsort(-np.asarray(weights), kind="stable")
        out: list[str] = []
        covered: set[str] = set()
        for i in order:
            if weights[i] <= 0 or len(out) >= k:
                break
            parts = set(terms[i].split())
            if parts <= covered:
                continue
            out.append(terms[i])
            covered |= parts
        return out

    def _block_offsets(self) -> dict[str, int]:
        """The first column of every hashed block."""
        out, offset = {}, 0
        for name, bits in self.featurizer.config.blocks():
            out[name] = offset
            offset += 1 << bits
        return out

    def _char_weights(self, words: list[str], char_coef: np.ndarray) -> np.ndarray:
        """Per word: the summed weight (x idf) of the character n-grams inside it."""
        from hf_spamguard.baseline.featurizer import _char_ngrams

        doc, buckets = _char_ngrams(words, self.featurizer.config)
        w = char_coef[buckets] * self.featurizer.idf["char"][buckets]
        return np.bincount(doc, weights=w, minlength=len(words))

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
            "stage2": self.stage2_ is not None,
            "training": self.training_,
            "format_version": FORMAT_VERSION,
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
        if self.stage2_ is not None and self.stage2_calibrator_ is not None:
            state["stage2"] = self.stage2_.state()
            state["stage2_calibration"] = self.stage2_calibrator_.state()
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
        version = config.get("format_version")
        if version != FORMAT_VERSION or list(config.get("dense_features") or []) != list(DENSE_FEATURES):
            raise ValueError(
                f"{folder.directory}: a baseline of format_version {version!r} (this hf-spamguard reads "
                f"{FORMAT_VERSION}: its keyword-stuffing features changed); train it again with "
                "`spamguard baseline train` (or `spamguard distill` for a student)"
            )
        fcfg = dict(config["featurizer"])
        fcfg["char_ngrams"] = tuple(fcfg.get("char_ngrams", ()))
        labels = None if config.get("task") == "binary" else list(config["labels"])
        self = cls(labels=labels, featurizer=FeaturizerConfig(**fcfg), policy=folder.policy)
        self.featurizer = Featurizer.from_state(self.featurizer.config, state["featurizer"])
        self.coef_ = np.asarray(state["coef"], dtype=np.float32)
        self.intercept_ = np.asarray(state["intercept"], dtype=np.float64)
        self.calibration_ = np.asarray(state["calibration"], dtype=np.float64)
        self.training_ = config.get("training", {})
        if "stage2" in state:
            self.stage2_ = TreeEnsemble.from_state(state["stage2"])
            self.stage2_calibrator_ = Calibrator.from_state(state["stage2_calibration"])
            if self.stage2_.n_features != 1 + len(DENSE_FEATURES):
                raise ValueError(f"{folder.directory}: stage-2 trees over {self.stage2_.n_features} features")
        if self.coef_.shape != (len(self.head_names), self.featurizer.n_features):
            model_path = folder.directory / BASELINE_MODEL_FILE
            raise ValueError(f"{model_path}: weights of shape {self.coef_.shape} do not match the config")
        return self


__all__ = ["FORMAT_VERSION", "BaselineClassifier", "BaselineTrainingArguments"]
