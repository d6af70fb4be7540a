"""Distillation: a fast multi-label student (the baseline classifier) trained on teacher labels.

``distill`` reads the teacher's ``labels.parquet``, splits the labelled rows into train / validation /
test with *iterative stratification* (Sechidis et al. 2011, the ``iterative-stratification`` package) so
that rare labels and label combinations are represented in every split, fits
:class:`hf_spamguard.baseline.BaselineClassifier` in multi-label mode on train, picks one threshold per
label on validation (:func:`hf_spamguard.policy.select_label_thresholds`, a target precision per label),
and compares student to teacher on the held-out test rows (agreement, per-label precision / recall / F1),
writing the misclassified test rows of each label to ``errors/<label>.csv`` for error analysis.

Student folder: the baseline's files (``model.skops``, ``config.json``) plus ``student.json`` (taxonomy
name, per-label thresholds, labels predicted as a constant because the teacher never / always set them),
``taxonomy.yaml``, ``distill_report.json`` / ``.md`` and ``errors/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.atomic import atomic_path, atomic_write_json, atomic_write_text
from hf_spamguard.data.reviews import student_texts
from hf_spamguard.taxonomy import TAXONOMY_PRESETS, Taxonomy, load_taxonomy, parse_taxonomy
from hf_spamguard.verdict import make_label_verdict

__all__ = [
    "STUDENT_FILE",
    "DistillConfig",
    "Student",
    "distill",
    "load_student",
    "multilabel_split",
    "student_vs_teacher",
]

STUDENT_FILE = "student.json"
TAXONOMY_FILE = "taxonomy.yaml"
STUDENT_TYPE = "spamguard-review-student"
#: Featuriser presets of the student (keyword arguments of hf_spamguard.baseline.FeaturizerConfig).
FEATURE_SETS: dict[str, dict[str, Any]] = {"words": {"char_bits": 0}, "full": {}}


@dataclass
class DistillConfig:
    """How a student is distilled from teacher labels."""

    labels: str = field(metadata={"help": "A `spamguard label` folder or a labels Parquet file."})
    out: str = field(metadata={"help": "Student model folder to write."})
    taxonomy: str | None = field(
        default=None, metadata={"help": "Taxonomy (default: recorded with the labels)."}
    )
    soft: bool = field(
        default=False,
        metadata={
            "help": "Train on teacher probabilities (soft targets) instead of 0/1 labels at hard_threshold."
        },
    )
    hard_threshold: float = field(
        default=0.5, metadata={"help": "Teacher probability at which a label is set."}
    )
    target_precision: float | dict[str, float] = field(
        default=0.9,
        metadata={
            "help": "Precision each label's threshold must reach on validation: one value for all labels, "
            "or per label ({label: value}; labels left out get 0.9). See parse_precision_targets."
        },
    )
    validation_size: float = field(default=0.15, metadata={"help": "Share of rows for threshold selection."})
    test_size: float = field(default=0.15, metadata={"help": "Share of rows held out for the report."})
    seed: int = field(default=0, metadata={"help": "Seed of the stratified split."})
    cv: int = field(
        default=3, metadata={"help": "Cross-validation folds for the student's C and calibration."}
    )
    features: str = field(
        default="words",
        metadata={
            "help": "Student features: 'words' (hashed word unigrams + bigrams + stuffing features; about 4x "
            "faster to score) or 'full' (the baseline's default, adding character 3-5-grams)."
        },
    )
    Cs: tuple[float, ...] = field(
        default=(0.3, 1.0, 3.0, 10.0), metadata={"help": "Inverse regularisation strengths tried per label."}
    )
    max_errors: int = field(default=200, metadata={"help": "Most misclassified rows written per label."})

    def __post_init__(self) -> None:
        if (
            not 0 < self.validation_size < 1
            or not 0 < self.test_size < 1
            or self.validation_size + self.test_size >= 1
        ):
            raise ValueError("validation_size and test_size must be in (0, 1) with a sum below 1")
        targets = (
            self.target_precision if isinstance(self.target_precision, dict) else {"*": self.target_precision}
        )
        for name, value in targets.items():
            if not isinstance(value, int | float) or not 0 < value <= 1:
                where = "target_precision" if name == "*" else f"target_precision[{name!r}]"
                raise ValueError(f"{where} must be in (0, 1], got {value!r}")
        if self.features not in FEATURE_SETS:
            raise ValueError(f"features must be one of {sorted(FEATURE_SETS)}, got {self.features!r}")


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
        """Per-label probabilities ``(n, L)`` for student texts (see :func:`~hf_spamguard.data.reviews.student_texts`)."""
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

    def predict_reviews(self, reviews: pd.DataFrame) -> np.ndarray:
        """Probabilities for review rows (text + place context), as batch scoring computes them."""
        return self.predict_proba(student_texts(reviews))

    def __call__(self, reviews: pd.DataFrame | Sequence[str]) -> list[dict[str, Any]]:
        """Multi-label verdicts (:func:`hf_spamguard.verdict.make_label_verdict`) with the saved thresholds."""
        P = (
            self.predict_reviews(reviews)
            if isinstance(reviews, pd.DataFrame)
            else self.predict_proba(list(reviews))
        )
        return [
            make_label_verdict(dict(zip(self.label_names, row, strict=True)), self.thresholds) for row in P
        ]

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
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


def parse_precision_targets(text: str) -> float | dict[str, float]:
    """``"0.9"`` → 0.9; ``"spam=0.95,advertisement=0.8"`` → per label; ``"0.85,spam=0.95"`` → every label
    0.85 except spam (``"*"`` holds that default). Raises ValueError naming the bad part."""
    default: float | None = None
    per_label: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, _, value = part.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"target precision {part!r}: expected a number or LABEL=NUMBER") from None
        if name:
            per_label[name.strip()] = number
        else:
            default = number
    if not per_label:
        if default is None:
            raise ValueError(f"target precision {text!r}: no value given")
        return default
    if default is not None:
        per_label["*"] = default
    return per_label


def _label_targets(target: float | dict[str, float], names: Sequence[str]) -> dict[str, float]:
    if not isinstance(target, dict):
        return dict.fromkeys(names, float(target))
    unknown = sorted(set(target) - set(names) - {"*"})
    if unknown:
        raise ValueError(
            f"target_precision names labels that are not in the taxonomy: {unknown} (labels: {list(names)})"
        )
    default = float(target.get("*", 0.9))
    return {n: float(target.get(n, default)) for n in names}


def _targets_record(targets: dict[str, float]) -> float | dict[str, float]:
    # one number when every label shares it, else the per-label targets actually used
    values = set(targets.values())
    return values.pop() if len(values) == 1 else dict(targets)


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
    info = json.loads(path.read_text(encoding="utf-8"))
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


def _taxonomy_of(labels_source: Path, df: pd.DataFrame, override: str | None) -> Taxonomy:
    if override is not None:
        return load_taxonomy(override)
    manifest = (labels_source if labels_source.is_dir() else labels_source.parent) / "manifest.json"
    if manifest.is_file():
        return parse_taxonomy(
            json.loads(manifest.read_text(encoding="utf-8"))["taxonomy"], source=str(manifest)
        )
    names = [c[2:] for c in df.columns if c.startswith("p_")]
    if not names:
        raise ValueError(f"{labels_source}: no p_<label> columns and no manifest; pass --taxonomy")
    for preset in TAXONOMY_PRESETS:
        if tuple(names) == load_taxonomy(preset).label_names:
            return load_taxonomy(preset)
    raise ValueError(
        f"{labels_source}: labels {names} match no preset taxonomy and there is no manifest; pass --taxonomy"
    )


def student_vs_teacher(
    Y_teacher: np.ndarray, P_student: np.ndarray, thresholds: dict[str, float], names: Sequence[str]
) -> dict[str, Any]:
    """Agreement of thresholded student flags with the teacher's hard labels, per label and overall."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

    Y = np.asarray(Y_teacher, dtype=int)
    thr = np.array([thresholds[n] for n in names])
    S = (P_student >= thr).astype(int)
    per_label = {}
    for j, name in enumerate(names):
        p, r, f, _ = precision_recall_fscore_support(Y[:, j], S[:, j], average="binary", zero_division=0)
        auc = roc_auc_score(Y[:, j], P_student[:, j]) if 0 < Y[:, j].sum() < len(Y) else None
        per_label[name] = {
            "teacher_positives": int(Y[:, j].sum()),
            "student_positives": int(S[:, j].sum()),
            "agreement": float((Y[:, j] == S[:, j]).mean()) if len(Y) else None,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "roc_auc": None if auc is None else float(auc),
            "threshold": float(thresholds[name]),
        }
    return {
        "n": int(len(Y)),
        "exact_match_agreement": float((Y == S).all(axis=1).mean()) if len(Y) else None,
        "label_agreement": float((Y == S).mean()) if len(Y) else None,
        "micro_f1": float(f1_score(Y, S, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(Y, S, average="macro", zero_division=0)),
        "per_label": per_label,
    }


def distill(config: DistillConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train, threshold, evaluate and save a student (see the module docstring). Returns the report."""
    from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments, FeaturizerConfig
    from hf_spamguard.policy import select_label_thresholds

    source = Path(config.labels)
    path = source / "labels.parquet" if source.is_dir() else source
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `spamguard label` to completion first")
    df = pd.read_parquet(path)
    taxonomy = _taxonomy_of(source, df, config.taxonomy)
    names = list(taxonomy.label_names)
    targets = _label_targets(config.target_precision, names)
    missing = [f"p_{n}" for n in names if f"p_{n}" not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} for taxonomy {taxonomy.name!r}")
    n_all = len(df)
    if "status" in df:
        df = df[df["status"] == "labelled"]
    df = df.dropna(subset=[f"p_{n}" for n in names]).reset_index(drop=True)
    if len(df) < 20:
        raise ValueError(f"{path}: only {len(df)} labelled rows; distillation needs at least 20")
    P_teacher = df[[f"p_{n}" for n in names]].to_numpy(dtype=np.float64)
    Y = (P_teacher >= config.hard_threshold).astype(int)
    train, val, test = multilabel_split(Y, [config.validation_size, config.test_size], seed=config.seed)
    texts = student_texts(df)
    fit_texts = [texts[i] for i in train]
    # soft: the teacher's probabilities are the targets (the baseline fits the exact soft cross-entropy)
    fit_Y = P_teacher[train] if config.soft else Y[train]
    # A label the teacher never (or always) sets in train cannot have a classifier head: predict its
    # training rate as a constant, and say so in the report.
    pos = Y[train].sum(axis=0)
    trainable = [n for j, n in enumerate(names) if 2 <= pos[j] <= len(train) - 2]
    constants = {n: float(P_teacher[train, j].mean()) for j, n in enumerate(names) if n not in trainable}
    classifier = None
    if trainable:
        cols = [names.index(n) for n in trainable]
        classifier = BaselineClassifier(
            labels=trainable, featurizer=FeaturizerConfig(**FEATURE_SETS[config.features])
        )
        classifier.fit(
            fit_texts,
            fit_Y[:, cols],
            BaselineTrainingArguments(Cs=tuple(config.Cs), cv=config.cv, seed=config.seed),
            progress=progress,
        )
    student = Student(classifier, taxonomy, dict.fromkeys(names, 0.5), constants)
    P_val = student.predict_proba([texts[i] for i in val], n_jobs=None)
    selection = select_label_thresholds(Y[val], P_val, names, targets)
    student.thresholds = {n: float(selection[n]) for n in names}
    notes = list(getattr(selection, "notes", [])) + [
        f"{n}: the teacher sets it in {int(pos[names.index(n)])} of {len(train)} training rows; predicted as a constant {p:.3f}"
        for n, p in constants.items()
    ]
    P_test = student.predict_proba([texts[i] for i in test], n_jobs=None)
    comparison = student_vs_teacher(Y[test], P_test, student.thresholds, names)
    out = Path(config.out)
    errors_dir = out / "errors"
    errors_dir.mkdir(parents=True, exist_ok=True)
    error_files = {}
    for j, name in enumerate(names):
        s = P_test[:, j] >= student.thresholds[name]
        t = Y[test, j].astype(bool)
        rows = []
        for kind, mask in (("false_positive", s & ~t), ("false_negative", ~s & t)):
            for i in np.flatnonzero(mask):
                r = df.iloc[test[i]]
                rows.append(
                    {
                        "kind": kind,
                        "id": r["id"],
                        "teacher_p": float(P_teacher[test[i], j]),
                        "student_p": float(P_test[i, j]),
                        "gap": abs(float(P_teacher[test[i], j]) - float(P_test[i, j])),
                        "text": r.get("text"),
                        "place_name": r.get("place_name"),
                        "category": r.get("category"),
                    }
                )
        err = pd.DataFrame(
            rows, columns=["kind", "id", "teacher_p", "student_p", "gap", "text", "place_name", "category"]
        )
        err = err.sort_values("gap", ascending=False, kind="stable").head(config.max_errors)
        target = errors_dir / f"{name}.csv"
        with atomic_path(target) as tmp:
            err.to_csv(tmp, index=False)
        error_files[name] = {"file": f"errors/{name}.csv", "rows": int(len(err))}
    student.info = {
        "trained_on": str(path),
        "soft_targets": config.soft,
        "target_precision": _targets_record(targets),
        "input_text": "review text + ' [place: name | category]' (hf_spamguard.data.reviews.student_texts)",
    }
    student.save_pretrained(out)
    report = {
        "summary": {
            "labels_file": str(path),
            "rows_in_file": n_all,
            "rows_labelled": len(df),
            "split": {"train": len(train), "validation": len(val), "test": len(test)},
            "targets": "soft" if config.soft else "hard",
            "test_exact_match_agreement": comparison["exact_match_agreement"],
            "test_micro_f1": comparison["micro_f1"],
            "test_macro_f1": comparison["macro_f1"],
        },
        "config": asdict(config),
        "thresholds": student.thresholds,
        "target_precision": student.info["target_precision"],
        "threshold_notes": notes,
        "teacher_positive_rate": {n: float(Y[:, j].mean()) for j, n in enumerate(names)},
        "student_vs_teacher_test": comparison,
        "error_files": error_files,
    }
    _write_json(out / "distill_report.json", report)
    atomic_write_text(out / "distill_report.md", _report_markdown(report, names))
    _write_card(out, report, names, source, config)
    return report


def _write_card(
    out: Path, report: dict[str, Any], names: Sequence[str], source: Path, config: DistillConfig
) -> None:
    """Every student folder carries its card, with the held-out agreement with the teacher as results."""
    # cards sits on a higher floor but only renders templates from the facts passed here (it never
    # imports distill), so the lazy import keeps the import graph pointing down at module level.
    from hf_spamguard.cards import render_baseline_card

    comparison = report["student_vs_teacher_test"]
    results: dict[str, Any] = {
        "macro_f1": comparison["macro_f1"],
        "micro_f1": comparison["micro_f1"],
        "exact_match_agreement": comparison["exact_match_agreement"],
    }
    results.update({f"{n}_f1": comparison["per_label"][n]["f1"] for n in names})
    # The teacher is only known from the manifest `spamguard label` writes next to labels.parquet; a
    # bare Parquet file elsewhere has none, and the card then says the teacher was not recorded.
    manifest = (source if source.is_dir() else source.parent) / "manifest.json"
    teacher = None
    if manifest.is_file():
        teacher = json.loads(manifest.read_text(encoding="utf-8")).get("teacher")
    split = report["summary"]["split"]
    training = {
        "targets": report["summary"]["targets"],
        "hard_threshold": config.hard_threshold,
        "features": config.features,
        "Cs": list(config.Cs),
        "cv": config.cv,
        "seed": config.seed,
        "rows (train / validation / test)": f"{split['train']} / {split['validation']} / {split['test']}",
    }
    render_baseline_card(
        out,
        student=True,
        labels=names,
        label_thresholds=report["thresholds"],
        teacher=str(teacher) if teacher else None,
        taxonomy=load_taxonomy(out / TAXONOMY_FILE).to_dict(),
        target_precision=report["target_precision"],
        eval_results=results,
        training_config=training,
        dataset=str(source),
        eval_split="test",
        eval_size=comparison["n"],
        eval_note="Held-out rows of the teacher-labelled data: the scores measure the student's agreement "
        "with the teacher's hard labels, not with human moderators.",
        threshold_notes="; ".join(report["threshold_notes"]) or None,
    )


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _report_markdown(report: dict[str, Any], names: Sequence[str]) -> str:
    s = report["summary"]
    c = report["student_vs_teacher_test"]
    lines = [
        "# Student vs teacher (held-out test rows)",
        "",
        f"Labels: `{s['labels_file']}` — {s['rows_labelled']} labelled rows of {s['rows_in_file']}; "
        f"split train {s['split']['train']} / validation {s['split']['validation']} / test {s['split']['test']} "
        f"(iterative stratification); {s['targets']} targets.",
        "",
        f"Exact-match agreement (all labels equal): **{_fmt(c['exact_match_agreement'])}**; label-wise agreement "
        f"{_fmt(c['label_agreement'])}; micro-F1 {_fmt(c['micro_f1'])}; macro-F1 {_fmt(c['macro_f1'])}.",
        "",
        "| label | threshold | teacher + | student + | agreement | precision | recall | F1 | ROC-AUC | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in names:
        m = c["per_label"][n]
        e = report["error_files"][n]
        lines.append(
            f"| {n} | {_fmt(m['threshold'])} | {m['teacher_positives']} | {m['student_positives']} | "
            f"{_fmt(m['agreement'])} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} | "
            f"{_fmt(m['roc_auc'])} | [{e['rows']}]({e['file']}) |"
        )
    if report["threshold_notes"]:
        lines += ["", "Notes:", *[f"- {note}" for note in report["threshold_notes"]]]
    return "\n".join(lines) + "\n"
