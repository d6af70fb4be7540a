"""``spamguard baseline train``: fit the baseline on ``train``, select thresholds on ``validation``, save
the folder with its policy and card."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import numpy as np

from hf_spamguard.baseline.featurizer import FeaturizerConfig
from hf_spamguard.baseline.model import BaselineClassifier, BaselineTrainingArguments
from hf_spamguard.baseline.persistence import TRUSTED_TYPES
from hf_spamguard.policy import PolicyTargets


def _compact(args: BaselineTrainingArguments) -> dict[str, Any]:
    """The training arguments for the card: the stage-2 grid as its size (the choices are in
    ``config.json``'s training record)."""
    out = asdict(args)
    out["stage2_grid"] = f"{len(args.stage2_grid)} configurations" if args.stage2 else "off"
    return out


def train_baseline(
    dataset: Any,
    out: str | os.PathLike[str],
    *,
    targets: PolicyTargets | None = None,
    args: BaselineTrainingArguments | None = None,
    featurizer: FeaturizerConfig | None = None,
) -> dict[str, Any]:
    """Fit on ``train`` only, select thresholds on ``validation``, save the folder; returns a summary.

    ``dataset`` is anything :func:`hf_spamguard.data.load_listings` accepts (or a ``DatasetDict``) and
    must have ``train`` and ``validation`` splits (``ValueError`` otherwise). ``out`` gets the model
    files, ``policy.json`` with the selection record and the model card. The summary holds ``out``,
    ``n_train``, ``n_validation`` and ``selection`` (targets, thresholds, what they achieved).
    """
    from hf_spamguard.policy import evaluate_policy, flatten_report, select_thresholds

    targets = targets or PolicyTargets()
    args = args or BaselineTrainingArguments()
    if hasattr(dataset, "keys") and not isinstance(dataset, str | os.PathLike):
        dd = dataset
    else:
        from hf_spamguard.data import load_listings

        dd = load_listings(dataset)
    for split in ("train", "validation"):
        if split not in dd:
            raise ValueError(f"{dataset}: the dataset needs a {split!r} split (has {', '.join(dd)})")

    def columns(split: str) -> tuple[list[str], np.ndarray]:
        ds = dd[split].select_columns(["description", "label"])
        texts = ["" if t is None else str(t) for t in ds["description"]]
        return texts, np.asarray(ds["label"], dtype=np.int64)

    train_texts, train_y = columns("train")
    val_texts, val_y = columns("validation")
    model = BaselineClassifier(featurizer=featurizer).fit(train_texts, train_y, args, progress=True)
    val_p = model.predict_proba(val_texts)
    selection = select_thresholds(
        val_y,
        val_p,
        **asdict(targets),
    )
    model.policy = selection.thresholds
    model.training_["validation"] = flatten_report(evaluate_policy(val_y, val_p, selection.thresholds))
    # cards only renders the facts passed here; imported when a folder is written, not when the
    # baseline is (the same as distill)
    from hf_spamguard.cards import BaselineCardFacts, render_baseline_card
    from hf_spamguard.jobs import job_lock

    # One writer at a time: a second run into the same folder stops with the holder's pid instead of
    # mixing its files with this one's.
    with job_lock(out):
        model.save_pretrained(out)
        selection.save(out)  # policy.json with the selection record (targets, achieved, notes)
        render_baseline_card(
            out,
            BaselineCardFacts(
                dataset=str(dataset) if isinstance(dataset, str | os.PathLike) else None,
                thresholds=selection.thresholds.to_dict(),
                threshold_notes=" ".join(selection.notes) or None,
                eval_results=model.training_["validation"],
                eval_split="validation",
                eval_size=len(val_texts),
                training_config={**_compact(args), "featurizer": asdict(model.featurizer.config)},
                eval_note="Measured on the validation split, where the thresholds were also selected: "
                "evaluate on a held-out test split (`spamguard predict` + `spamguard evaluate`) for "
                "unbiased numbers.",
                trusted_types=TRUSTED_TYPES,
            ),
        )
    return {
        "out": str(out),
        "n_train": len(train_texts),
        "n_validation": len(val_texts),
        "selection": selection.to_dict(),
    }


__all__ = ["train_baseline"]
