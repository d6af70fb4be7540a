"""``spamguard predict`` and ``spamguard evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hf_spamguard.cli._common import user_errors


def register(app: typer.Typer) -> None:
    @app.command("predict")
    @user_errors
    def predict(
        model: Path = typer.Option(
            ..., "--model", help="Model folder or Hub id: a baseline or a fine-tuned VLM."
        ),
        dataset: str = typer.Option(
            ..., "--dataset", help="Built dataset folder, folder with TSVs, .tsv file or Hub id."
        ),
        out: Path = typer.Option(..., "--out", help="JSON Lines file to write."),
        split: str = typer.Option("test", "--split", help="Split to score."),
        batch_size: int = typer.Option(256, "--batch-size", help="Rows per batch."),
        reason: bool = typer.Option(True, "--reason/--no-reason", help="Write a reason for every verdict."),
    ) -> None:
        """Score a dataset split; one verdict per line, in input order."""
        from hf_spamguard.predict import predict_to_jsonl

        summary = predict_to_jsonl(model, dataset, split=split, out=out, batch_size=batch_size, reason=reason)
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(summary.decisions.items()))
        typer.echo(
            f"wrote {summary.n} predictions ({summary.model_kind}) to {summary.out}"
            + (f": {decisions}" if decisions else "")
        )

    @app.command("evaluate")
    @user_errors
    def evaluate(
        predictions: Path = typer.Option(
            ..., "--predictions", help="JSON Lines written by `spamguard predict`."
        ),
        out: Path = typer.Option(..., "--out", help="Report folder (metrics.json, PNG plots, gallery.html)."),
        dataset: str | None = typer.Option(
            None, "--dataset", help="Dataset source for description excerpts and thumbnails."
        ),
        split: str = typer.Option("test", "--split", help="Split of --dataset."),
        policy: Path | None = typer.Option(
            None, "--policy", help="policy.json (or a model folder) with the thresholds to apply."
        ),
    ) -> None:
        """Write the evaluation report of a predictions file."""
        from hf_spamguard.report import write_report

        metrics = write_report(predictions, out, thresholds=policy, dataset=dataset, split=split)
        keys = (
            "roc_auc",
            "pr_auc",
            "macro_f1",
            "ece",
            "brier",
            "demote_precision",
            "flagged_recall",
            "review_load",
        )
        typer.echo(json.dumps({k: metrics.get(k) for k in keys}))
        typer.echo(f"report written to {out}")
