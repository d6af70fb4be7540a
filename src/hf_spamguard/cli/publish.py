"""``spamguard publish`` (Hub-ready folders + upload) and ``spamguard demo`` (the end-to-end flow)."""

from __future__ import annotations

from pathlib import Path

import typer

from hf_spamguard.cli._common import UserError, upload_errors, user_errors


def register(app: typer.Typer) -> None:
    @app.command("publish")
    @user_errors
    def publish_cmd(
        model: Path | None = typer.Option(None, "--model", help="Fine-tuned listing-spam model folder."),
        dataset: Path | None = typer.Option(
            None, "--dataset", help="Dataset folder (Parquet layout) or TSV."
        ),
        metric: bool = typer.Option(
            False, "--metric", help="The listing_spam_policy evaluate metric (a Space)."
        ),
        baseline: Path | None = typer.Option(None, "--baseline", help="Baseline or student folder (skops)."),
        repo_id: str | None = typer.Option(None, "--repo-id", help="Target repo, ORG/NAME."),
        private: bool = typer.Option(False, "--private", help="Create the repo as private."),
        dry_run: Path | None = typer.Option(
            None, "--dry-run", help="Write the Hub-ready folder under this folder; upload nothing."
        ),
        token: str | None = typer.Option(
            None, "--token", envvar="HF_TOKEN", help="Hub token (default: HF_TOKEN or the saved login)."
        ),
    ) -> None:
        """Assemble the Hub-ready folder of a model, dataset, metric or baseline and upload it
        (create_repo + upload_folder), or only write it with --dry-run."""
        from hf_spamguard.publish import publish

        chosen = [(k, v) for k, v in (("model", model), ("dataset", dataset), ("baseline", baseline)) if v]
        if metric:
            chosen.append(("metric", None))
        if len(chosen) != 1:
            raise UserError("give exactly one of --model DIR, --dataset DIR, --metric, --baseline DIR")
        kind, source = chosen[0]
        if dry_run is None and not repo_id:
            raise UserError("--repo-id ORG/NAME is required (or --dry-run OUT to only write the folder)")
        with upload_errors(kind, repo_id):
            result = publish(kind, source, repo_id=repo_id, private=private, token=token, dry_run=dry_run)
        for note in result.notes:
            typer.echo(f"Note: {note}")
        if result.url:
            typer.echo(f"Uploaded {kind} ({len(result.files)} files) to {result.url}")
        else:
            typer.echo(f"Wrote {kind} ({len(result.files)} files) to {result.folder}")
        if result.skipped:
            typer.echo(
                f"Left out (training state and diagnostics, not for the Hub): {', '.join(result.skipped)}"
            )

    @app.command("demo")
    @user_errors
    def demo_cmd(
        out: Path = typer.Option(Path("demo_out"), "--out", help="Where to write everything."),
        data: Path | None = typer.Option(
            None,
            "--data",
            help="Run on your TSV (columns product_id, image_url, description, yes_count, "
            "no_count, label) instead of the bundled synthetic demo set.",
        ),
        image_dir: Path | None = typer.Option(
            None, "--image-dir", help="Photos for --data, <product_id>.jpg."
        ),
        quick: bool = typer.Option(False, "--quick", help="Fewer listings and training steps (smoke test)."),
    ) -> None:
        """The whole flow offline on CPU: demo dataset with photos → baseline → tiny Qwen3-VL fine-tune →
        predictions → policy metric + report → cards and dry-run Hub folders, in OUT."""
        from hf_spamguard.demo import run_demo

        run_demo(out, data=data, image_dir=image_dir, quick=quick)
