"""Quality of the baseline on the real Depop listings: 5-fold cross-validation.

Prints one table: the seed notebook's plain word TF-IDF + logistic regression (reference row) and the
hf-spamguard baseline, with macro-F1 (at 0.5 and at the selected demote threshold), ROC-AUC, PR-AUC,
ECE, Brier, and demote precision / recall and review load at thresholds selected on an inner
validation split of each training fold (never on the test fold).

    nice python benchmarks/baseline_quality.py [--char] [--folds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "depop" / "train_set.tsv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--char", action="store_true", help="also evaluate the variant with character n-grams"
    )
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: {args.data} not found (the real data lives outside the repository)")
        return 0

    import pandas as pd
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from hf_spamguard.baseline import BaselineClassifier, FeaturizerConfig
    from hf_spamguard.policy import (
        binary_scores,
        brier_score,
        evaluate_policy,
        expected_calibration_error,
        pr_auc,
        roc_auc,
        select_thresholds,
    )
    from references import seed_reference_pipeline

    df = pd.read_csv(args.data, sep="\t", index_col=0)
    texts = df["description"].fillna("").astype(str).tolist()
    y = df["label"].to_numpy().astype(int)
    # rows where the raters disagreed: the labels the benchmark cannot expect any model to reproduce
    split_votes = (df["yes_count"].to_numpy() > 0) & (df["no_count"].to_numpy() > 0)
    models = {"seed: word TF-IDF + LR (reference)": None, "spamguard baseline": FeaturizerConfig()}
    if args.char:
        models["spamguard baseline + char 3-5-grams"] = FeaturizerConfig(char_bits=19)

    outer = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
    rows = []
    for name, cfg in models.items():
        oof = np.zeros(len(y))
        policy_rows = []
        start = time.perf_counter()
        for fold, (tr, te) in enumerate(outer.split(texts, y)):
            # thresholds are chosen on a validation split carved from the training fold
            fit_idx, val_idx = train_test_split(tr, test_size=0.2, stratify=y[tr], random_state=fold)
            fit_texts = [texts[i] for i in fit_idx]
            if cfg is None:
                model = seed_reference_pipeline().fit(fit_texts, y[fit_idx])

                def proba(idx, model=model):
                    return model.predict_proba([texts[i] for i in idx])[:, 1]
            else:
                model = BaselineClassifier(featurizer=cfg).fit(fit_texts, y[fit_idx])

                def proba(idx, model=model):
                    return model.predict_proba([texts[i] for i in idx])

            selection = select_thresholds(y[val_idx], proba(val_idx))
            p_te = proba(te)
            oof[te] = p_te
            rep = evaluate_policy(y[te], p_te, selection.thresholds)
            policy_rows.append(
                (
                    rep["demote_precision"] or 0.0,
                    rep["demote_recall"],
                    rep["flagged_recall"],
                    rep["review_load"],
                    rep["macro_f1"],
                )
            )
            print(f"  {name}: fold {fold + 1}/{args.folds} done", file=sys.stderr, flush=True)
        pol = np.mean(np.asarray(policy_rows, dtype=float), axis=0)
        rows.append(
            {
                "model": name,
                "macro_f1@0.5": binary_scores(y, oof >= 0.5)["macro_f1"],
                "macro_f1@demote": pol[4],
                "roc_auc": roc_auc(y, oof),
                "pr_auc": pr_auc(y, oof),
                "ece": expected_calibration_error(y, oof),
                "brier": brier_score(y, oof),
                "demote_prec": pol[0],
                "demote_rec": pol[1],
                "flag_rec": pol[2],
                "review_load": pol[3],
                "err_unanimous": float(np.mean((oof[~split_votes] >= 0.5) != y[~split_votes])),
                "err_split_votes": float(np.mean((oof[split_votes] >= 0.5) != y[split_votes])),
                # macro-F1 if every unanimous row were right and split-vote rows kept this model's errors
                "f1_ceiling": binary_scores(y, np.where(split_votes, oof >= 0.5, y == 1))["macro_f1"],
                "seconds": time.perf_counter() - start,
            }
        )
    cols = list(rows[0])
    print(
        f"\n{args.folds}-fold CV on {args.data.name} ({len(y)} listings, {y.mean():.1%} spam); policy columns are"
    )
    print("means over folds at thresholds selected on an inner validation split (targets: demote precision")
    print(">= 0.98, recall of review+demote >= 0.95, review budget 0.15). err_* are error rates at 0.5 on")
    print(
        f"rows with unanimous votes and on the {split_votes.sum()} rows whose raters disagreed; f1_ceiling is"
    )
    print("the macro-F1 with every unanimous row right and the split-vote rows as predicted.\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join(["---"] * len(cols)) + "|")
    for r in rows:
        print(
            "| "
            + " | ".join(
                r["model"] if c == "model" else f"{r[c]:.4f}" if c != "seconds" else f"{r[c]:.0f}"
                for c in cols
            )
            + " |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
