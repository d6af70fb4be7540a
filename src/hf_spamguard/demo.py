"""``spamguard demo``: the whole flow, offline, on CPU, in a few minutes.

demo listings (or your TSV) → dataset in the Hub layout → TF-IDF baseline (thresholds on validation) →
tiny Qwen3-VL built offline and fine-tuned with LoRA (TRL) → predictions of both on the test split →
the ``listing_spam_policy`` metric + evaluation report → model/dataset cards → dry-run Hub folders.

Everything lands in ``out_dir``; ``summary.json`` there holds the numbers of the final table.
The tiny model has random initial weights and a locally trained tokenizer: the demo proves the
machinery end to end; its VLM scores are not a quality claim (the baseline's are meaningful).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hf_spamguard.atomic import atomic_write_text
from hf_spamguard.cards import (
    BaselineCardFacts,
    ModelCardFacts,
    flatten_metrics,
    policy_facts,
    render_baseline_card,
    render_dataset_card,
    render_model_card,
    sidecar_facts,
)
from hf_spamguard.files import ADAPTER_CONFIG_FILE, POLICY_METRIC_FILE, SUMMARY_FILE

# Numbers shown in the final table (flattened names of the policy metric's output).
SUMMARY_METRICS = (
    ("macro_f1", "macro-F1 (at demote threshold)"),
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("ece", "ECE"),
    ("demote_precision", "demote precision"),
    ("flagged_recall", "spam recall (review + demote)"),
    ("review_load", "review load (share of items)"),
)
DEMO_REPO_IDS = {
    "model": "your-org/spamguard-demo-vl",
    "dataset": "your-org/spamguard-demo-listings",
    "metric": "your-org/listing_spam_policy",
    "baseline": "your-org/spamguard-demo-baseline",
}


@dataclass
class DemoConfig:
    """Sizes of the demo run (``quick`` shrinks them for smoke tests)."""

    n_listings: int = field(
        default=300, metadata={"help": "Synthetic listings generated (ignored with data)."}
    )
    max_steps: int = field(default=30, metadata={"help": "Optimiser steps of the tiny Qwen3-VL fine-tune."})
    max_train_samples: int = field(default=160, metadata={"help": "Training rows used by the fine-tune."})
    max_eval_samples: int = field(
        default=64, metadata={"help": "Validation rows for calibration/thresholds."}
    )
    batch_size: int = field(default=4, metadata={"help": "Per-device training batch size."})
    learning_rate: float = field(default=5e-3, metadata={"help": "LoRA learning rate (tiny model: large)."})
    max_pixels: int = field(default=16384, metadata={"help": "Photo budget (16 image tokens per photo)."})
    reason: bool = field(default=True, metadata={"help": "Generate reasons in the VLM's test predictions."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Cap on test rows (user data)."})
    baseline_cs: tuple[float, ...] = field(
        default=(0.3, 1.0, 3.0), metadata={"help": "C values tried by the baseline's cross-validation."}
    )
    baseline_cv: int = field(default=3, metadata={"help": "Folds of the baseline's cross-validation."})
    seed: int = field(default=0, metadata={"help": "Seed of data generation, splits and training."})

    @classmethod
    def quick(cls) -> DemoConfig:
        """The smoke-test sizes of ``spamguard demo --quick``: every step runs, on as little as keeps both
        classes in every split (80 listings, 2 steps, 4-token photos, no reasons, one C)."""
        return cls(
            n_listings=80,
            max_steps=2,
            max_train_samples=16,
            max_eval_samples=16,
            max_pixels=4096,
            reason=False,
            baseline_cs=(1.0,),
            baseline_cv=2,
        )


@dataclass
class DemoResult:
    """Where things are and what was measured."""

    out_dir: Path
    dataset_dir: Path
    baseline_dir: Path
    model_dir: Path
    hub_dir: Path
    metrics: dict[str, dict[str, Any]]
    reports: dict[str, Path]
    predictions: dict[str, Path]
    timings: dict[str, float]
    notes: list[str]


# --------------------------------------------------------------------------------------------- display
class _Steps:
    """A header line when a step starts (the step's own progress bars run below it) and a check line
    with its duration when it ends."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        import sys

        from rich.console import Console

        # Not a terminal (a log, a pipe, CI): rich would wrap at 80 columns and break paths and numbers
        # mid-line; a long line is better there. A terminal keeps its own width.
        width = None if sys.stdout.isatty() else 200
        self.console = Console(highlight=False, quiet=not enabled, width=width, soft_wrap=width is not None)
        self.total = total
        self.done = 0
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, key: str, title: str) -> Iterator[Callable[[str], None]]:
        self.done += 1
        label = f"[{self.done}/{self.total}] {title}"
        details: list[str] = []
        self.console.print(f"[bold cyan]→ {label}[/bold cyan]")
        start = time.perf_counter()
        yield details.append
        seconds = time.perf_counter() - start
        self.timings[key] = round(seconds, 1)
        extra = f" — {'; '.join(details)}" if details else ""
        self.console.print(f"[green]✓[/green] {label} [dim]({seconds:.1f} s)[/dim]{extra}")


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Silence library chatter (per-split "Generating ..." bars, deprecation warnings, info logs) so that
    the demo's own step lines and the training progress bar stay readable."""
    import warnings

    import datasets
    import transformers

    bars_were_enabled = datasets.utils.logging.is_progress_bar_enabled()
    verbosity = transformers.logging.get_verbosity()
    tf_bars_were_enabled = transformers.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" / "Writing model shards"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        if bars_were_enabled:
            datasets.utils.logging.enable_progress_bar()
        transformers.logging.set_verbosity(verbosity)
        if tf_bars_were_enabled:
            transformers.utils.logging.enable_progress_bar()


# --------------------------------------------------------------------------------------------- steps
def _build_dataset(out: Path, data: Path | None, image_dir: Path | None, cfg: DemoConfig) -> tuple[Path, str]:
    from hf_spamguard.data import build_dataset, build_synthetic_dataset, save_dataset

    if data is None:
        dd = build_synthetic_dataset(out / "demo_data", n=cfg.n_listings, seed=cfg.seed)
        provenance = (
            f"Synthetic listings generated by `hf_spamguard.data.synthetic.write_demo(n={cfg.n_listings}, "
            f"seed={cfg.seed})`: honest descriptions and keyword-stuffed ones, each with a generated photo "
            "(some without). A demonstration set, not a substitute for real moderation data."
        )
    else:
        data = Path(data)
        if not data.is_file():
            raise FileNotFoundError(f"{data}: no such TSV file")
        dd = build_dataset(train=data, image_dir=image_dir, validation_size=0.15, seed=42, progress=False)
        if "test" not in dd:
            # One TSV: hold out a stratified test split so that the numbers are measured on unseen rows.
            parts = dd["train"].train_test_split(test_size=0.2, stratify_by_column="label", seed=42)
            report = getattr(dd, "build_report", None)
            dd["train"], dd["test"] = parts["train"], parts["test"]
            if report is not None:
                dd.build_report = report
        if cfg.max_test_samples and len(dd["test"]) > cfg.max_test_samples:
            dd["test"] = dd["test"].shuffle(seed=42).select(range(cfg.max_test_samples))
        provenance = f"Built from `{data.name}` (train/validation/test carved with seed 42, stratified)."
    dataset_dir = save_dataset(dd, out / "dataset")
    render_dataset_card(dataset_dir, dataset=dd, provenance=provenance, repo_id=DEMO_REPO_IDS["dataset"])
    sizes = ", ".join(f"{split} {len(dd[split])}" for split in dd)
    return dataset_dir, sizes


def _train_baseline(dataset_dir: Path, out_dir: Path, cfg: DemoConfig) -> dict[str, Any]:
    """What ``spamguard baseline train`` does: fit on train, thresholds on validation, save."""
    from hf_spamguard.baseline import BaselineTrainingArguments, train_baseline

    args = BaselineTrainingArguments(Cs=tuple(cfg.baseline_cs), cv=cfg.baseline_cv, seed=cfg.seed)
    return train_baseline(dataset_dir, out_dir, args=args)


def _train_vlm(dataset_dir: Path, baseline_dir: Path, base_dir: Path, out_dir: Path, cfg: DemoConfig) -> Any:
    import tempfile

    # The Trainer's output_dir holds nothing the demo keeps (no checkpoints, no logs): a temporary folder
    # next to the model, removed afterwards, so no empty models/vlm_training/ is left behind.
    with tempfile.TemporaryDirectory(prefix=".vlm_training-", dir=out_dir.parent) as scratch:
        return _train_vlm_in(dataset_dir, baseline_dir, base_dir, out_dir, cfg, Path(scratch))


def _train_vlm_in(
    dataset_dir: Path, baseline_dir: Path, base_dir: Path, out_dir: Path, cfg: DemoConfig, scratch: Path
) -> Any:
    from hf_spamguard.training import parse_args, train

    argv = [
        "--dataset", str(dataset_dir),
        "--model_name_or_path", str(base_dir),
        "--baseline_dir", str(baseline_dir),
        "--output_dir", str(scratch),
        "--final_dir", str(out_dir),
        "--dtype", "float32",
        "--use_peft", "true",
        "--lora_r", "8",
        "--lora_alpha", "16",
        "--lora_dropout", "0.0",
        "--max_train_samples", str(cfg.max_train_samples),
        "--max_eval_samples", str(cfg.max_eval_samples),
        "--max_pixels", str(cfg.max_pixels),
        "--eval_batch_size", "16",
        "--early_stopping_patience", "0",
        "--use_cpu", "true",
        "--bf16", "false",
        "--fp16", "false",
        "--gradient_checkpointing", "false",
        "--optim", "adamw_torch",
        "--max_steps", str(cfg.max_steps),
        "--per_device_train_batch_size", str(cfg.batch_size),
        "--gradient_accumulation_steps", "1",
        "--learning_rate", str(cfg.learning_rate),
        "--lr_scheduler_type", "constant",
        "--assistant_only_loss", "true",
        "--logging_steps", str(max(1, cfg.max_steps // 4)),
        "--eval_strategy", "no",
        "--save_strategy", "no",
        "--load_best_model_at_end", "false",
        "--report_to", "none",
        "--dataloader_num_workers", "0",
        "--disable_tqdm", "false",
        "--seed", str(cfg.seed),
    ]  # fmt: skip
    project, sft_args, model_args = parse_args(argv)
    return train(project, sft_args, model_args), {
        "base_model": "tiny Qwen3-VL (hf_spamguard.testing, random init)",
        "method": "LoRA (peft), merged",
        "lora_r": 8,
        "lora_alpha": 16,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "max_train_samples": cfg.max_train_samples,
        "max_pixels": cfg.max_pixels,
        "assistant_only_loss": True,
        "device": "cpu (float32)",
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _policy_metric(predictions: Path, thresholds: dict[str, float]) -> dict[str, Any]:
    """The ``listing_spam_policy`` evaluate metric on a predictions file, at fixed thresholds."""
    import evaluate

    from hf_spamguard.metrics import path as metric_path

    rows = _read_jsonl(predictions)
    labelled = [r for r in rows if r.get("label") is not None]
    if not labelled:
        raise ValueError(f"{predictions}: no row has a label; cannot evaluate")
    metric = evaluate.load(metric_path("listing_spam_policy"))
    return metric.compute(
        predictions=[float(r["confidence"]) for r in labelled],
        references=[int(r["label"]) for r in labelled],
        review=thresholds["review"],
        demote=thresholds["demote"],
    )


def _thresholds_of(folder: Path) -> dict[str, float]:
    from hf_spamguard.policy import Thresholds

    return Thresholds.load(folder).to_dict()


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------- run
def run_demo(
    out_dir: str | os.PathLike[str] = "demo_out",
    data: str | os.PathLike[str] | None = None,
    *,
    image_dir: str | os.PathLike[str] | None = None,
    quick: bool = False,
    config: DemoConfig | None = None,
    show: bool = True,
) -> DemoResult:
    """Run the demo into ``out_dir`` (see the module docstring); ``data`` = your listings TSV.

    ``quick`` (or a custom ``config``) shrinks the run for smoke tests; ``show=False`` silences the
    progress display and the final table."""
    from hf_spamguard.baseline import TRUSTED_TYPES
    from hf_spamguard.predict import predict_to_jsonl
    from hf_spamguard.prompts import SYSTEM_PROMPT
    from hf_spamguard.publish import publish
    from hf_spamguard.report import write_report
    from hf_spamguard.testing import build_tiny_qwen3_vl

    cfg = config or (DemoConfig.quick() if quick else DemoConfig())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models, preds_dir, reports_dir, hub_dir = (
        out / "models",
        out / "predictions",
        out / "reports",
        out / "hub",
    )
    steps = _Steps(total=9, enabled=show)
    started = time.perf_counter()
    notes: list[str] = []

    with _quiet_libraries():
        with steps.step("dataset", "Dataset: listings + photos → Parquet (Hub layout)") as say:
            dataset_dir, sizes = _build_dataset(
                out, Path(data) if data else None, Path(image_dir) if image_dir else None, cfg
            )
            say(sizes)

        with steps.step(
            "baseline", "Baseline: TF-IDF + keyword-stuffing features → logistic regression"
        ) as say:
            baseline_dir = models / "baseline"
            selection = _train_baseline(dataset_dir, baseline_dir, cfg)["selection"]
            notes += [f"baseline thresholds: {n}" for n in selection["notes"]]
            say(
                f"review {selection['review']:.3f}, demote {selection['demote']:.3f} (selected on validation)"
            )

        with steps.step("tiny_model", "Tiny Qwen3-VL built offline (random weights, local tokenizer)") as say:
            base_dir = build_tiny_qwen3_vl(models / "tiny-qwen3-vl-base", seed=cfg.seed)
            say(str(base_dir))

        with steps.step("finetune", f"Fine-tune: TRL SFT + LoRA, {cfg.max_steps} steps on CPU") as say:
            model_dir = models / "vlm"
            result, training_config = _train_vlm(dataset_dir, baseline_dir, base_dir, model_dir, cfg)
            losses = [h["loss"] for h in result.log_history if "loss" in h]
            if losses:
                say(f"loss {losses[0]:.3f} → {losses[-1]:.3f}")
            th = result.thresholds
            bound = " (the fit's bound)" if result.warnings else ""
            say(
                f"temperature {result.temperature:.3g}{bound}, review {th['review']:.3f}, demote {th['demote']:.3f}"
            )
            notes += [f"fine-tune: {n}" for n in result.notes]

        predictions: dict[str, Path] = {}
        speed: dict[str, float] = {}
        with steps.step("predict", "Predict the test split with both models") as say:
            preds_dir.mkdir(parents=True, exist_ok=True)
            for name, folder, reason in (("baseline", baseline_dir, True), ("vlm", model_dir, cfg.reason)):
                t0 = time.perf_counter()
                predictions[name] = preds_dir / f"{name}.jsonl"
                predict_to_jsonl(
                    folder,
                    dataset_dir,
                    split="test",
                    out=predictions[name],
                    batch_size=16,
                    reason=reason,
                    progress=False,  # the demo prints its own step lines
                )
                rows = _read_jsonl(predictions[name])
                n = len(rows)
                speed[name] = n / max(time.perf_counter() - t0, 1e-9)
                say(f"{name}: {n} rows, {speed[name]:.0f}/s")
                if name == "vlm":
                    spread = [float(r["confidence"]) for r in rows] or [float("nan")]
        vlm_signal = _signal_note(result, min(spread), max(spread))
        if vlm_signal:
            notes.append(f"tiny Qwen3-VL: {vlm_signal}")

        metrics: dict[str, dict[str, Any]] = {}
        reports: dict[str, Path] = {}
        with steps.step("evaluate", "Evaluate: listing_spam_policy metric + report (plots, gallery)") as say:
            for name, folder in (("baseline", baseline_dir), ("vlm", model_dir)):
                thresholds = _thresholds_of(folder)
                metrics[name] = _policy_metric(predictions[name], thresholds)
                reports[name] = reports_dir / name
                write_report(
                    predictions[name], reports[name], thresholds=thresholds, dataset=dataset_dir, split="test"
                )
                atomic_write_text(
                    reports[name] / POLICY_METRIC_FILE,
                    json.dumps(_json_safe(metrics[name]), indent=2) + "\n",
                )
                f1 = metrics[name].get("macro_f1")
                say(f"{name}: macro-F1 {f1:.3f}" if isinstance(f1, float) else f"{name}: macro-F1 n/a")

        with steps.step("cards", "Cards: model, baseline and dataset cards with the measured results") as say:
            n_test = metrics["vlm"].get("n")
            sidecars = sidecar_facts(model_dir)  # thresholds, selection notes, temperature, prompt
            render_model_card(
                model_dir,
                ModelCardFacts(
                    **{**sidecars, "system_prompt": sidecars["system_prompt"] or SYSTEM_PROMPT},
                    # the folder's name, not this machine's path (the card is published)
                    base_model=base_dir.name,
                    adapter=(model_dir / ADAPTER_CONFIG_FILE).is_file(),
                    training_config=training_config,
                    dataset=str(dataset_dir),
                    eval_results=metrics["vlm"],
                    eval_size=n_test,
                    # the repo id stays a placeholder in models/: `spamguard publish --repo-id` fills it in
                    model_name=DEMO_REPO_IDS["model"].split("/")[-1],
                    eval_note="The tiny model starts from random weights and a short run: these numbers show "
                    "that the machinery works end to end, not the quality of a real Qwen3-VL fine-tune.",
                ),
            )
            render_baseline_card(
                baseline_dir,
                BaselineCardFacts(
                    **policy_facts(baseline_dir),
                    dataset=str(dataset_dir),
                    eval_results=metrics["baseline"],
                    training_config={"Cs": list(cfg.baseline_cs), "cv": cfg.baseline_cv, "seed": cfg.seed},
                    model_name=DEMO_REPO_IDS["baseline"].split("/")[-1],
                    trusted_types=TRUSTED_TYPES,
                ),
            )
            say("README.md in models/vlm, models/baseline, dataset")

        with steps.step("hub", "Hub-ready folders (dry run: nothing is uploaded)") as say:
            sources = {"model": model_dir, "dataset": dataset_dir, "metric": None, "baseline": baseline_dir}
            for kind, source in sources.items():
                publish(kind, source, repo_id=DEMO_REPO_IDS[kind], dry_run=hub_dir)
            say(f"{hub_dir}/{{model,dataset,baseline,listing_spam_policy}}")

        with steps.step("summary", "Summary") as say:
            summary = {
                "out_dir": str(out),
                "data": str(data) if data else "synthetic demo listings",
                "config": asdict(cfg),
                "metrics": {k: flatten_metrics(v) for k, v in metrics.items()},
                "thresholds": {"baseline": _thresholds_of(baseline_dir), "vlm": _thresholds_of(model_dir)},
                "predict_rows_per_s": {k: round(v, 1) for k, v in speed.items()},
                "vlm_calibration": {
                    "temperature": result.temperature,
                    "at_bound": bool(result.warnings),
                    "test_confidence_range": [min(spread), max(spread)],
                    "note": vlm_signal,
                },
                "timings_s": steps.timings,
                "total_s": round(time.perf_counter() - started, 1),
                "paths": {
                    "dataset": str(dataset_dir),
                    "baseline": str(baseline_dir),
                    "model": str(model_dir),
                    "reports": {k: str(v) for k, v in reports.items()},
                    "predictions": {k: str(v) for k, v in predictions.items()},
                    "hub": str(hub_dir),
                },
                "notes": notes,
            }
            atomic_write_text(out / SUMMARY_FILE, json.dumps(_json_safe(summary), indent=2) + "\n")
            say(str(out / SUMMARY_FILE))

    if show:
        _print_summary(steps.console, summary)
    return DemoResult(
        out_dir=out,
        dataset_dir=dataset_dir,
        baseline_dir=baseline_dir,
        model_dir=model_dir,
        hub_dir=hub_dir,
        metrics=metrics,
        reports=reports,
        predictions=predictions,
        timings=dict(steps.timings),
        notes=notes,
    )


def _signal_note(result: Any, low: float, high: float) -> str | None:
    """What the summary says when the fine-tuned tiny model's calibration found no signal (its
    temperature fit ended on the upper bound, squashing every confidence towards 0.5)."""
    if not result.warnings or result.temperature < 1.0:
        return None
    return (
        f"its temperature fit hit the upper bound (T = {result.temperature:.3g}): the random model carries "
        f"no signal a calibration can use, so every test confidence lies in {low:.3f}–{high:.3f} and its "
        "thresholds sit there too; a real Qwen3-VL fine-tune is needed for meaningful VLM numbers"
    )


def _print_summary(console: Any, summary: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    # Metrics as rows, models as columns: fits any terminal width.
    names = {"baseline": "TF-IDF baseline", "vlm": "tiny Qwen3-VL (LoRA)"}
    models = list(summary["metrics"])
    table = Table(
        title=f"Test split — {summary['data']}", title_justify="left", box=box.SIMPLE_HEAVY, pad_edge=False
    )
    table.add_column("metric")
    for key in models:
        table.add_column(names.get(key, key), justify="right")

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else ("–" if value is None else str(value))

    for metric, title in SUMMARY_METRICS:
        table.add_row(title, *(cell(summary["metrics"][k].get(metric)) for k in models))

    def band(th: dict[str, float]) -> str:
        text = f"{th['review']:.3f} / {th['demote']:.3f}"
        return text + " (no review band)" if th["review"] == th["demote"] else text

    table.add_row("review / demote at", *(band(summary["thresholds"][k]) for k in models))
    table.add_row("predict rows/s", *(f"{summary['predict_rows_per_s'][k]:.0f}" for k in models))
    console.print(table)
    paths = summary["paths"]
    console.print(
        f"[bold]Done in {summary['total_s']:.0f} s.[/bold] Everything is in [cyan]{summary['out_dir']}[/cyan]:\n"
        f"  reports      {paths['reports']['baseline']}, {paths['reports']['vlm']} (metrics.json, plots, gallery.html)\n"
        f"  models       {paths['baseline']}, {paths['model']} (with README.md model cards)\n"
        f"  dataset      {paths['dataset']}\n"
        f"  Hub folders  {paths['hub']} (upload with `spamguard publish --model DIR --repo-id ORG/NAME`)"
    )
    note = (summary.get("vlm_calibration") or {}).get("note")
    if note:
        console.print(f"[yellow]Note:[/yellow] tiny Qwen3-VL: {note}.")
    console.print(
        "[dim]The tiny VLM starts from random weights: its numbers prove the pipeline, not model quality.[/dim]"
    )
