"""``spamguard label`` / ``distill`` / ``score``: review moderation with a teacher and a distilled student.

Options are generated from :mod:`hf_spamguard.reviews.config` (each declared once, on its field).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from hf_spamguard.cli._common import UserError, user_errors
from hf_spamguard.cli._options import config_options
from hf_spamguard.reviews.config import DistillConfig, LabelingConfig, ScoreConfig

Progress = Annotated[bool, typer.Option(help="Show a progress bar.")]


@config_options(LabelingConfig)
def label(config: LabelingConfig, progress: Progress = True) -> None:
    """Label reviews with a teacher model, in resumable shards. Re-run the same command to resume.

    Under `accelerate launch --num_processes N -m hf_spamguard label ...` each process labels its share;
    the last one to finish merges everything into OUT/labels.parquet.
    """
    from hf_spamguard.reviews.labeling import label_reviews

    if config.engine == "vllm":
        from hf_spamguard.reviews.ray_engine import check_ray_installed
        from hf_spamguard.vllm_engine import check_vllm_installed

        try:
            check_vllm_installed()
            if config.ray:
                check_ray_installed()
        except ModuleNotFoundError as exc:
            raise UserError(str(exc)) from None
    result = label_reviews(config, progress=progress)
    rate = result.rows_labelled_now / result.seconds if result.seconds else 0.0
    typer.echo(
        f"shards {result.shards_done}/{result.n_shards} done ({result.shards_labelled_now} now, "
        f"{result.rows_labelled_now} rows, {rate:.1f} rows/s)"
    )
    if result.labels_path is not None:
        typer.echo(f"labels: {result.labels_path}")
    else:
        typer.echo("other processes are still labelling; the last one to finish writes labels.parquet")


@config_options(DistillConfig)
def distill_cmd(config: DistillConfig) -> None:
    """Train the multi-label student (TF-IDF + LR baseline) on teacher labels; per-label thresholds."""
    from hf_spamguard.reviews.distill import distill

    report = distill(config)
    typer.echo(json.dumps(report["summary"], indent=1))
    typer.echo(f"student: {config.out}  report: {Path(config.out) / 'distill_report.md'}")


@config_options(ScoreConfig)
def score_cmd(config: ScoreConfig, progress: Progress = True) -> None:
    """Score a large review file with the student, streaming, resumable; prints rows/s.

    `--engine ray` scores on a Ray cluster (a local one, or `--address auto` on a node of one started with
    `ray start`) with the same output; re-run the same command to resume either.
    """
    from hf_spamguard.reviews.batch import score_reviews

    if config.engine == "ray":
        from hf_spamguard.reviews.ray_engine import check_ray_installed

        try:
            check_ray_installed()
        except ModuleNotFoundError as exc:
            raise UserError(str(exc)) from None
    kwargs = asdict(config)
    result = score_reviews(
        kwargs.pop("model"), kwargs.pop("input"), kwargs.pop("out"), **kwargs, progress=progress
    )
    resumed = result.rows - result.rows_scored_now
    typer.echo(
        f"scored {result.rows} rows in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s)"
        + (f", {resumed} resumed from an earlier run" if resumed else "")
        + f" -> {config.out}"
    )
    if result.report_path is not None:
        typer.echo(f"report: {result.report_path}")


def register(app: typer.Typer) -> None:
    app.command("label")(user_errors(label))
    app.command("distill")(user_errors(distill_cmd))
    app.command("score")(user_errors(score_cmd))
