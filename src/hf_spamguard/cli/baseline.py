"""``spamguard baseline train``: fit the TF-IDF + stuffing-features baseline, select thresholds, save."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hf_spamguard.baseline.model import BaselineTrainingArguments
from hf_spamguard.cli._common import user_errors
from hf_spamguard.cli._options import config_options
from hf_spamguard.policy import PolicyTargets


def register(app: typer.Typer) -> None:
    baseline_app = typer.Typer(
        help="The fast classical baseline (TF-IDF + keyword-stuffing features + LR).", no_args_is_help=True
    )
    app.add_typer(baseline_app, name="baseline")

    @baseline_app.command("train")
    @user_errors
    @config_options(PolicyTargets, BaselineTrainingArguments)
    def train(
        targets: PolicyTargets,
        args: BaselineTrainingArguments,
        dataset: Annotated[
            str,
            typer.Option("--dataset", help="Built dataset folder, folder with train.tsv, or a .tsv file."),
        ],
        out: Annotated[
            Path, typer.Option("--out", help="Model folder to write (model.skops, config.json, policy.json).")
        ],
    ) -> None:
        """Fit on the train split, choose review/demote thresholds on validation, save the model folder."""
        from hf_spamguard.baseline import train_baseline

        result = train_baseline(dataset, out, targets=targets, args=args)
        sel = result["selection"]
        typer.echo(f"saved {out}  (train {result['n_train']}, validation {result['n_validation']})")
        typer.echo(f"thresholds: review {sel['review']:.4f}  demote {sel['demote']:.4f}")
        ach = sel["achieved"]
        typer.echo(
            "validation: demote precision {dp}, spam recall of review+demote {fr}, review load {rl}, macro-F1 {f1}".format(
                dp=_fmt(ach.get("demote_precision")),
                fr=_fmt(ach.get("flagged_recall")),
                rl=_fmt(ach.get("review_load")),
                f1=_fmt(ach.get("macro_f1")),
            )
        )
        for note in sel["notes"]:
            typer.echo(f"note: {note}")


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]
