"""Distillation: a fast multi-label student (the baseline classifier) trained on teacher labels.

``distill`` reads the teacher's ``labels.parquet``, splits the labelled rows into train / validation /
test with *iterative stratification* (Sechidis et al. 2011, the ``iterative-stratification`` package;
:func:`hf_spamguard.reviews.student.multilabel_split`) so that rare labels and label combinations are
represented in every split, fits :class:`hf_spamguard.baseline.BaselineClassifier` in multi-label mode
on train, picks one threshold per label on validation (:func:`hf_spamguard.policy.select_label_thresholds`,
a target precision per label, :func:`parse_precision_targets`), and compares student to teacher on the
held-out test rows (:func:`student_vs_teacher`: agreement, per-label precision / recall / F1), writing
the misclassified test rows of each label to ``errors/<label>.csv`` for error analysis.

Student folder (:class:`hf_spamguard.reviews.student.Student`): the baseline's files (``model.skops``,
``config.json``) plus ``student.json``, ``taxonomy.yaml``, ``distill_report.json`` / ``.md``,
``errors/`` and the card (``README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.atomic import atomic_path, atomic_write_json, atomic_write_text
from hf_spamguard.files import (
    DISTILL_REPORT_FILE,
    DISTILL_REPORT_MARKDOWN_FILE,
    ERRORS_DIR,
    LABELS_FILE,
    MANIFEST_FILE,
    TAXONOMY_FILE,
    read_json,
)
from hf_spamguard.prompts import student_texts
from hf_spamguard.reviews.config import FEATURE_SETS, DistillConfig, parse_precision_targets
from hf_spamguard.reviews.labeling import STATUS_LABELLED
from hf_spamguard.reviews.student import Student, multilabel_split
from hf_spamguard.taxonomy import TAXONOMY_PRESETS, Taxonomy, load_taxonomy, parse_taxonomy

__all__ = [
    "FEATURE_SETS",
    "DistillConfig",
    "distill",
    "parse_precision_targets",
    "student_vs_teacher",
]


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


def _taxonomy_of(labels_source: Path, df: pd.DataFrame, override: str | None) -> Taxonomy:
    if override is not None:
        return load_taxonomy(override)
    manifest = (labels_source if labels_source.is_dir() else labels_source.parent) / MANIFEST_FILE
    recorded = read_json(manifest)
    if recorded is not None:
        return parse_taxonomy(recorded["taxonomy"], source=str(manifest))
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
    """Train, threshold, evaluate and save a student (see the module docstring). Returns the report.

    Holds the job lock on ``config.out`` for the whole run: a second ``distill`` into the same folder
    raises :class:`hf_spamguard.jobs.JobLockedError` at once, naming the first one's pid."""
    from hf_spamguard.jobs import job_lock

    with job_lock(config.out):
        return _distill(config, progress=progress)


def _distill(config: DistillConfig, *, progress: bool) -> dict[str, Any]:
    from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments, FeaturizerConfig
    from hf_spamguard.policy import select_label_thresholds

    source = Path(config.labels)
    path = source / LABELS_FILE if source.is_dir() else source
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
        df = df[df["status"] == STATUS_LABELLED]
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
    errors_dir = out / ERRORS_DIR
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
        error_files[name] = {"file": f"{ERRORS_DIR}/{name}.csv", "rows": int(len(err))}
    student.info = {
        "trained_on": str(path),
        "soft_targets": config.soft,
        "target_precision": _targets_record(targets),
        "input_text": "review text + ' [place: name | category]' (hf_spamguard.prompts.student_texts)",
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
    _write_json(out / DISTILL_REPORT_FILE, report)
    atomic_write_text(out / DISTILL_REPORT_MARKDOWN_FILE, _report_markdown(report, names))
    _write_card(out, report, names, source, config)
    return report


def _write_card(
    out: Path, report: dict[str, Any], names: Sequence[str], source: Path, config: DistillConfig
) -> None:
    """Every student folder carries its card, with the held-out agreement with the teacher as results."""
    # cards (layer 1) renders templates from the facts passed here; imported on use, as it loads jinja.
    from hf_spamguard.baseline import TRUSTED_TYPES
    from hf_spamguard.cards import StudentCardFacts, render_student_card

    comparison = report["student_vs_teacher_test"]
    results: dict[str, Any] = {
        "macro_f1": comparison["macro_f1"],
        "micro_f1": comparison["micro_f1"],
        "exact_match_agreement": comparison["exact_match_agreement"],
    }
    results.update({f"{n}_f1": comparison["per_label"][n]["f1"] for n in names})
    # The teacher is only known from the manifest `spamguard label` writes next to labels.parquet; a
    # bare Parquet file elsewhere has none, and the card then says the teacher was not recorded.
    manifest = read_json((source if source.is_dir() else source.parent) / MANIFEST_FILE, missing={})
    teacher = manifest.get("teacher")
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
    render_student_card(
        out,
        StudentCardFacts(
            labels=tuple(names),
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
            trusted_types=TRUSTED_TYPES,
        ),
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


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, default=float, ensure_ascii=False)
