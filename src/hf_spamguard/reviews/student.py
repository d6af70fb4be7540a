"""The distilled review student: a multi-label classifier with its taxonomy and per-label thresholds.

A student folder holds the baseline classifier's files (``model.skops``, ``config.json``; none when every
label is a constant), ``taxonomy.yaml`` and ``student.json`` (taxonomy name, labels, per-label
thresholds, labels predicted as a constant because the teacher never / always set them, and what
distillation recorded). :func:`load_student` reads one (or downloads it from the Hub);
:func:`multilabel_split` is the stratified split distillation trains, thresholds and tests on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hf_spamguard.atomic import atomic_write_json
from hf_spamguard.files import STUDENT_FILE, TAXONOMY_FILE, read_json
from hf_spamguard.prompts import student_texts
from hf_spamguard.taxonomy import Taxonomy, load_taxonomy
from hf_spamguard.verdict import make_label_verdict

if TYPE_CHECKING:  # imported where used: batch scoring of CSV/Parquet never needs pandas
    import pandas as pd

__all__ = ["STUDENT_TYPE", "Student", "load_student", "multilabel_split"]

#: ``model_type`` of ``student.json``.
STUDENT_TYPE = "spamguard-review-student"


def multilabel_split(Y: np.ndarray, sizes: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Split rows into ``len(sizes) + 1`` index arrays (the rest first, then one per size), stratified
    jointly on all labels with iterative stratification. Deterministic for a seed."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    Y = np.asarray(Y, dtype=int)
    remaining = np.arange(len(Y))
    out: list[np.ndarray] = []
    share_left = 1.0
    for size in sizes:
        frac = size / share_left
        n_take = int(round(frac * len(remaining)))
        if n_take < 1 or n_take >= len(remaining):
            raise ValueError(f"{len(Y)} rows are too few for a split of {size:.0%}")
        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_take, random_state=seed)
        keep, take = next(splitter.split(np.zeros(len(remaining)), Y[remaining]))
        out.append(np.sort(remaining[take]))
        remaining = np.sort(remaining[keep])
        share_left -= size
    return [remaining, *out]


class Student:
    """The distilled classifier with its taxonomy and per-label thresholds."""

    def __init__(
        self,
        classifier: Any,
        taxonomy: Taxonomy,
        thresholds: dict[str, float],
        constants: dict[str, float] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.classifier = classifier
        self.taxonomy = taxonomy
        self.thresholds = {n: float(thresholds.get(n, 0.5)) for n in taxonomy.label_names}
        self.constants = dict(constants or {})
        self.info = dict(info or {})
        trained = list(classifier.head_names) if classifier is not None else []
        self._columns = [trained.index(n) if n in trained else None for n in taxonomy.label_names]
        missing = [
            n
            for n, c in zip(taxonomy.label_names, self._columns, strict=True)
            if c is None and n not in self.constants
        ]
        if missing:
            raise ValueError(f"student has neither a head nor a constant for labels {missing}")

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.taxonomy.label_names

    def predict_proba(self, texts: Sequence[str], *, n_jobs: int | None = 1) -> np.ndarray:
        """Per-label probabilities ``(n, L)`` for student texts (:func:`hf_spamguard.prompts.student_texts`)."""
        n = len(texts)
        out = np.empty((n, len(self.label_names)), dtype=np.float64)
        heads = (
            self.classifier.predict_proba(list(texts), n_jobs=n_jobs)
            if self.classifier is not None and n
            else None
        )
        for j, (name, col) in enumerate(zip(self.label_names, self._columns, strict=True)):
            out[:, j] = self.constants[name] if col is None else heads[:, col]
        return out

    def predict_arrow(self, texts: Any, *, chunk_size: int = 8192) -> np.ndarray:
        """:meth:`predict_proba` of an Arrow string array of student texts
        (:func:`hf_spamguard.prompts.student_texts_arrow`), featurised without Python strings, in
        slices of ``chunk_size`` (the probabilities do not depend on it: every row is featurised on
        its own; 8192 is the fastest here)."""
        n = len(texts)
        out = np.empty((n, len(self.label_names)), dtype=np.float64)
        clf, heads = self.classifier, None
        if clf is not None and n:
            clf._check_fitted()
            heads = np.concatenate(
                [clf._proba_chunk(texts.slice(i, chunk_size)) for i in range(0, n, chunk_size)]
            )
            heads = heads if heads.ndim == 2 else heads[:, None]
        for j, (name, col) in enumerate(zip(self.label_names, self._columns, strict=True)):
            out[:, j] = self.constants[name] if col is None else heads[:, col]
        return out

    def predict_reviews(self, reviews: pd.DataFrame) -> np.ndarray:
        """Probabilities for review rows (text + place context), as batch scoring computes them."""
        return self.predict_proba(student_texts(reviews))

    def __call__(self, reviews: pd.DataFrame | Sequence[str]) -> list[dict[str, Any]]:
        """Multi-label verdicts (:func:`hf_spamguard.verdict.make_label_verdict`) with the saved thresholds."""
        import pandas as pd

        P = (
            self.predict_reviews(reviews)
            if isinstance(reviews, pd.DataFrame)
            else self.predict_proba(list(reviews))
        )
        return [
            make_label_verdict(dict(zip(self.label_names, row, strict=True)), self.thresholds) for row in P
        ]

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write the student folder: the classifier's files, ``taxonomy.yaml`` and ``student.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.classifier is not None:
            self.classifier.save_pretrained(directory)
        self.taxonomy.save(directory / TAXONOMY_FILE)
        payload = {
            "model_type": STUDENT_TYPE,
            "taxonomy": self.taxonomy.name,
            "labels": list(self.label_names),
            "thresholds": self.thresholds,
            "constant_labels": self.constants,
            "has_classifier": self.classifier is not None,
            **self.info,
        }
        _write_json(directory / STUDENT_FILE, payload)
        return directory


def load_student(
    directory: str | os.PathLike[str], *, revision: str | None = None, token: str | None = None
) -> Student:
    """Load a student folder written by :func:`distill`, or a Hub repo id (``"org/name"``, downloaded once
    into the Hugging Face cache)."""
    from hf_spamguard.baseline import BaselineClassifier
    from hf_spamguard.hub_io import local_folder

    directory = local_folder(directory, revision=revision, token=token)
    path = directory / STUDENT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a student folder (no {STUDENT_FILE}); make one with `spamguard distill`"
        )
    info = read_json(path)
    if info.get("model_type") != STUDENT_TYPE:
        raise ValueError(f"{path}: model_type is {info.get('model_type')!r}, expected {STUDENT_TYPE!r}")
    taxonomy = load_taxonomy(directory / TAXONOMY_FILE)
    classifier = BaselineClassifier.from_pretrained(directory) if info.get("has_classifier", True) else None
    extra = {
        k: v
        for k, v in info.items()
        if k not in {"model_type", "taxonomy", "labels", "thresholds", "constant_labels", "has_classifier"}
    }
    return Student(classifier, taxonomy, info["thresholds"], info.get("constant_labels") or {}, extra)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, default=float, ensure_ascii=False)
