"""Quality of the baseline on the real Depop listings: 5-fold cross-validation, references on the same folds.

Prints one table: the seed notebook's word TF-IDF + LR, the issue's references (char_wb TF-IDF + LR,
word + char_wb TF-IDF stacked + LR or a linear SVM, boosted trees over the stuffing features alone), the
fast featuriser's character block alone (to show it matches char_wb), the previous default recipe, the
default with its optional character block and the shipped default. Then a nested-CV section: what the
default's inner cross-validation chose in every outer fold, and how many configurations were tried.

Protocol: outer ``StratifiedKFold(5, shuffle=True, random_state=0)``; every model is fitted on the whole
outer-train part and scored on the outer-test part, so every choice a model makes (C, trees,
calibration) is nested inside. Policy columns: thresholds (demote precision >= 0.98, recall of
review+demote >= 0.92) chosen on out-of-fold scores of the outer-train part only (the baseline's own
inner out-of-fold probabilities; 3-fold out-of-fold scores for scikit-learn references) and applied
to the outer-test part; counts are pooled over the five test parts. ``err_*``: error rates at 0.5 on the
rows whose raters agreed and on those whose raters split.

    nice python benchmarks/baseline_quality.py [--models default char_wb ...] [--folds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "depop" / "train_set.tsv"

#: Design configurations evaluated on these same outer folds before the default was fixed (feature
#: families, blocks, tf variants, model families, grids): 87 in the research round (issue #15) and 11
#: while implementing (raw vs sublinear word/bigram tf x2; the default with the first stage-2 grid, with
#: trees bounded to depth 3, after two feature revisions; the linear, previous-settings and char rows of
#: those revisions). Only the grids inside a fit are nested; these choices were not, which makes the
#: default's numbers somewhat optimistic.
SCREENED_ON_OUTER_FOLDS = 87 + 11


def _models() -> dict[str, tuple[str, str, Any]]:
    """name -> (label, kind, factory); kind "sk" is a scikit-learn estimator, "sg" a baseline config."""
    from hf_spamguard.baseline import BaselineTrainingArguments, FeaturizerConfig
    from references import (
        StuffingBoosting,
        char_wb_reference,
        seed_reference_pipeline,
        word_char_reference,
        word_char_svm_reference,
    )

    return {
        "seed": ("seed: word TF-IDF + LR (reference)", "sk", seed_reference_pipeline),
        "char_wb": ("char_wb(2,5) sublinear min_df2 TF-IDF + LR C=4", "sk", char_wb_reference),
        "word_char": ("word(1,2) + char_wb(1,6) TF-IDF stacked + LR C=4", "sk", word_char_reference),
        "word_char_svm": ("word(1,2) + char_wb(1,6) TF-IDF + LinearSVC C=0.1, Platt", "sk", word_char_svm_reference),
        "stuffing_gbm": ("boosted trees over the 26 stuffing features only", "sk", StuffingBoosting),
        "fast_char": (
            "fast char 2-5 block alone (2^20, sublinear, min_df 2) + LR, Platt",
            "sg",
            (FeaturizerConfig(word_bits=0, bigram_bits=0, char_bits=20), BaselineTrainingArguments(Cs=(4.0,), stage2=False)),
        ),
        "previous": (
            "previous default's settings (min_df 1, C 1-64, no stage 2) over today's features",
            "sg",
            (FeaturizerConfig(min_df=1), BaselineTrainingArguments(Cs=(1.0, 4.0, 16.0, 64.0), stage2=False)),
        ),
        "linear": (
            "default features, linear stage only (--no-stage2; stuffing as LR columns)",
            "sg",
            (FeaturizerConfig(), BaselineTrainingArguments(stage2=False)),
        ),
        "default_char": (
            "default + char 2-5 block (char_bits=20)",
            "sg",
            (FeaturizerConfig(char_bits=20), BaselineTrainingArguments()),
        ),
        "default": ("spamguard baseline (shipped default)", "sg", (FeaturizerConfig(), BaselineTrainingArguments())),
    }  # fmt: skip


def _pooled_policy(y: np.ndarray, demoted: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    n_spam = max(int(y.sum()), 1)
    return {
        "demote_prec": float(y[demoted].mean()) if demoted.any() else float("nan"),
        "demote_rec": float(y[demoted].sum() / n_spam),
        "flag_rec": float(y[flagged].sum() / n_spam),
        "review_load": float((flagged & ~demoted).mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=None, help="rows to run (default: all)")
    parser.add_argument("--target-precision", type=float, default=0.98)
    parser.add_argument("--target-recall", type=float, default=0.92)
    parser.add_argument("--save-oof", type=Path, default=None, help="folder for each row's OOF scores")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: {args.data} not found (the real data lives outside the repository)")
        return 0

    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    from hf_spamguard.baseline import BaselineClassifier
    from hf_spamguard.policy import binary_scores, expected_calibration_error, roc_auc, select_thresholds

    models = _models()
    chosen = args.models or list(models)
    unknown = sorted(set(chosen) - set(models))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(models)}")
    df = pd.read_csv(args.data, sep="\t", index_col=0)
    texts = df["description"].fillna("").astype(str).tolist()
    y = df["label"].to_numpy().astype(int)
    # rows where the raters disagreed: the labels the benchmark cannot expect any model to reproduce
    split_votes = (df["yes_count"].to_numpy() > 0) & (df["no_count"].to_numpy() > 0)
    outer = list(StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0).split(texts, y))
    targets = {"target_demote_precision": args.target_precision, "target_recall": args.target_recall}

    rows, nested = [], []
    for key in chosen:
        label, kind, factory = models[key]
        oof = np.zeros(len(y))
        demoted = np.zeros(len(y), dtype=bool)
        flagged = np.zeros(len(y), dtype=bool)
        start = time.perf_counter()
        configs = None
        for fold, (tr, te) in enumerate(outer):
            fit_texts = [texts[i] for i in tr]
            test_texts = [texts[i] for i in te]
            if kind == "sk":
                inner_p = np.zeros(len(tr))
                for a, b in StratifiedKFold(3, shuffle=True, random_state=0).split(fit_texts, y[tr]):
                    part = factory().fit([fit_texts[i] for i in a], y[tr][a])
                    inner_p[b] = part.predict_proba([fit_texts[i] for i in b])[:, 1]
                p_te = factory().fit(fit_texts, y[tr]).predict_proba(test_texts)[:, 1]
            else:
                fcfg, targs = factory
                model = BaselineClassifier(featurizer=fcfg).fit(fit_texts, y[tr], targs)
                inner_p = model.oof_proba_
                p_te = model.predict_proba(test_texts)
                head = model.training_["heads"]["spam"]
                configs = head["n_configurations"]
                if key == "default":
                    nested.append((fold, head))
            selection = select_thresholds(y[tr], inner_p, **targets)
            oof[te] = p_te
            demoted[te] = p_te >= selection.thresholds.demote
            flagged[te] = p_te >= selection.thresholds.review
            print(f"  {key}: fold {fold + 1}/{args.folds} done", file=sys.stderr, flush=True)
        pred = oof >= 0.5
        rows.append(
            {
                "model": label,
                "macro_f1@0.5": binary_scores(y, pred)["macro_f1"],
                "err_unanimous": float(np.mean(pred[~split_votes] != y[~split_votes])),
                "err_split_votes": float(np.mean(pred[split_votes] != y[split_votes])),
                "ece": expected_calibration_error(y, oof),
                "roc_auc": roc_auc(y, oof),
                **_pooled_policy(y, demoted, flagged),
                "configs_per_fit": "-" if configs is None else str(configs),
                "seconds": time.perf_counter() - start,
            }
        )
        if args.save_oof:
            args.save_oof.mkdir(parents=True, exist_ok=True)
            np.save(args.save_oof / f"{key}.npy", oof)

    cols = list(rows[0])
    print(f"\n{args.folds}-fold CV on {args.data.name} ({len(y)} listings, {y.mean():.1%} spam, "
          f"{split_votes.sum()} split-vote rows); same folds for every row. Policy: thresholds for demote "
          f"precision >= {args.target_precision} and review+demote recall >= {args.target_recall} chosen on "
          "out-of-fold scores of each outer-train part, counts pooled over the test parts.\n")  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join(["---"] * len(cols)) + "|")
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            cells.append(v if isinstance(v, str) else f"{v:.0f}" if c == "seconds" else f"{v:.4f}")
        print("| " + " | ".join(cells) + " |")
    if nested:
        print("\nNested CV of the shipped default (outer folds above; inner: the fit's own "
              "StratifiedKFold on the outer-train part):")  # fmt: skip
        for fold, head in nested:
            s2 = head.get("stage2", {}).get("chosen", {})
            print(f"  fold {fold + 1}: C={head['C']:g}; trees {s2.get('max_leaf_nodes')} leaves, "
                  f"{s2.get('max_iter')} iterations, min_samples_leaf {s2.get('min_samples_leaf')}, "
                  f"calibration {s2.get('calibration')}; trees kept: {head.get('stage2', {}).get('used')}; "
                  f"{head['n_configurations']} configurations")  # fmt: skip
        per_fit = nested[0][1]["n_configurations"]
        print(f"  configurations tried: {per_fit} per fit (inner CV, on training rows only), "
              f"{per_fit * len(nested)} over the {len(nested)} outer folds; design choices screened on "
              f"these outer folds before the default was fixed: {SCREENED_ON_OUTER_FOLDS}.")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
