"""``spamguard label`` / ``distill`` / ``score``: review moderation with a teacher and a distilled student."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hf_spamguard.cli._common import user_errors


def label(
    teacher: Annotated[str, typer.Option(help="Teacher model folder (merged or adapter) or Hub id.")],
    input: Annotated[
        str,
        typer.Option("--input", help="Reviews: JSON lines (Google Local), CSV/TSV/Parquet, folder, Hub id."),
    ],
    out: Annotated[Path, typer.Option(help="Labels folder (shards/, manifest.json, labels.parquet).")],
    taxonomy: Annotated[
        str, typer.Option(help="Taxonomy preset (reviews, listings) or YAML file.")
    ] = "reviews",
    meta: Annotated[str | None, typer.Option(help="Google Local place metadata file or folder.")] = None,
    shard_size: Annotated[int, typer.Option(help="Rows per shard (checkpoint unit).")] = 256,
    batch_size: Annotated[int, typer.Option(help="Reviews per forward pass.")] = 8,
    rationale: Annotated[bool, typer.Option(help="Also generate a short rationale per review.")] = False,
    max_rationale_tokens: Annotated[int, typer.Option(help="Longest rationale in tokens.")] = 32,
    max_text_chars: Annotated[int, typer.Option(help="Review text is cut to this many characters.")] = 2000,
    limit: Annotated[int | None, typer.Option(help="Label only the first N rows.")] = None,
    device: Annotated[
        str | None, typer.Option(help="Torch device (default: this process's GPU, else CPU).")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="Model dtype (default: bf16 on GPU, fp32 on CPU).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Label reviews with a teacher model, in resumable shards. Re-run the same command to resume.

    Under `accelerate launch --num_processes N -m hf_spamguard label ...` each process labels its share;
    the last one to finish merges everything into OUT/labels.parquet.
    """
    from hf_spamguard.teacher import LabelingConfig, label_reviews

    config = LabelingConfig(
        teacher=teacher,
        input=input,
        out=str(out),
        taxonomy=taxonomy,
        meta=meta,
        shard_size=shard_size,
        batch_size=batch_size,
        rationale=rationale,
        max_rationale_tokens=max_rationale_tokens,
        max_text_chars=max_text_chars,
        limit=limit,
        device=device,
        dtype=dtype,
    )
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


def distill_cmd(
    labels: Annotated[
        Path, typer.Option(help="Teacher labels: a `spamguard label` folder or a labels Parquet file.")
    ],
    out: Annotated[Path, typer.Option(help="Student model folder.")],
    taxonomy: Annotated[
        str | None, typer.Option(help="Taxonomy (default: the one recorded with the labels).")
    ] = None,
    soft: Annotated[
        bool, typer.Option("--soft/--hard", help="Train on teacher probabilities or on 0/1 labels.")
    ] = False,
    target_precision: Annotated[
        str,
        typer.Option(
            help="Precision each label's threshold must reach on validation: one number (0.9), per label "
            "(spam=0.95,advertisement=0.8; others 0.9), or both (0.85,spam=0.95)."
        ),
    ] = "0.9",
    validation_size: Annotated[float, typer.Option(help="Share of rows for threshold selection.")] = 0.15,
    test_size: Annotated[
        float, typer.Option(help="Share of held-out rows for the student-vs-teacher report.")
    ] = 0.15,
    seed: Annotated[int, typer.Option(help="Split seed.")] = 0,
    cv: Annotated[int, typer.Option(help="Cross-validation folds for C and calibration.")] = 3,
    features: Annotated[
        str, typer.Option(help="Student features: words (fast) or full (+ char n-grams).")
    ] = "words",
    cs: Annotated[str, typer.Option(help="Comma-separated C values tried per label.")] = "0.3,1,3,10",
) -> None:
    """Train the multi-label student (TF-IDF + LR baseline) on teacher labels; per-label thresholds."""
    from hf_spamguard.distill import DistillConfig, distill, parse_precision_targets

    report = distill(
        DistillConfig(
            labels=str(labels),
            out=str(out),
            taxonomy=taxonomy,
            soft=soft,
            target_precision=parse_precision_targets(target_precision),
            validation_size=validation_size,
            test_size=test_size,
            seed=seed,
            cv=cv,
            features=features,
            Cs=_floats(cs, "--cs"),
        )
    )
    typer.echo(json.dumps(report["summary"], indent=1))
    typer.echo(f"student: {out}  report: {out / 'distill_report.md'}")


def score_cmd(
    model: Annotated[Path, typer.Option(help="Student folder from `spamguard distill`, or its Hub id.")],
    input: Annotated[str, typer.Option("--input", help="Reviews to score (any format `label` reads).")],
    out: Annotated[Path, typer.Option(help="Output Parquet file (id, p_<label>..., flags).")],
    meta: Annotated[str | None, typer.Option(help="Google Local place metadata file or folder.")] = None,
    chunk_size: Annotated[
        int, typer.Option(help="Rows per chunk (memory is flat in the input size).")
    ] = 20_000,
    n_jobs: Annotated[int, typer.Option(help="Worker processes (default: all cores).")] = -1,
    report: Annotated[
        bool, typer.Option(help="Write OUT.html: label distribution and examples per label.")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Score a large review file with the student, streaming, resumable; prints rows/s."""
    from hf_spamguard.batch import score_reviews

    result = score_reviews(
        model, input, out, meta=meta, chunk_size=chunk_size, n_jobs=n_jobs, report=report, progress=progress
    )
    typer.echo(
        f"scored {result.rows} rows in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s) -> {out}"
    )
    if result.report_path is not None:
        typer.echo(f"report: {result.report_path}")


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ValueError(f"{option}: expected comma-separated numbers, got {text!r}") from exc
    if not values or min(values) <= 0:
        raise ValueError(f"{option}: expected positive numbers, got {text!r}")
    return values


def register(app: typer.Typer) -> None:
    app.command("label")(user_errors(label))
    app.command("distill")(user_errors(distill_cmd))
    app.command("score")(user_errors(score_cmd))
