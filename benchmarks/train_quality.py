"""Validation quality of fine-tuning on the real Depop listings (text only), next to the baseline.

    nice python benchmarks/train_quality.py [--tsv ../shared/data/depop/train_set.tsv] [--epochs 2]

Runs on CPU. The VLM is the tiny random Qwen3-VL that ``hf_spamguard.testing`` builds offline (hidden size
64, 2 layers, a BPE trained on the synthetic demo corpus): no pretrained weights can be downloaded here,
so this measures that the whole training path works on real data and what such a small model learns
in a few minutes, not what Qwen3-VL-2B would reach. Both models see the same train / validation split
(``load_listings`` on the TSV: a seeded stratified 10 % validation split). The VLM is trained with the
shipped tiny CPU config twice: LoRA (the path used for real models) and full fine-tuning (the tiny
random model has little to adapt). The validation split is used for calibration and threshold
selection, so the calibrated ECE is optimistic; macro-F1 at 0.5 and the AUCs do not depend on it.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TSV = REPO.parent / "shared" / "data" / "depop" / "train_set.tsv"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def baseline_row(tsv: Path) -> dict:
    import numpy as np

    from hf_spamguard.baseline import BaselineClassifier
    from hf_spamguard.data import load_listings
    from hf_spamguard.policy import Thresholds, evaluate_policy

    dd = load_listings(tsv)
    start = time.perf_counter()
    model = BaselineClassifier().fit(list(dd["train"]["description"]), np.asarray(dd["train"]["label"]))
    seconds = time.perf_counter() - start
    probs = model.predict_proba(list(dd["validation"]["description"]))
    report = evaluate_policy(dd["validation"]["label"], probs, Thresholds(0.5, 0.5))
    return {
        "model": "baseline (TF-IDF + keyword features + LR, 5-fold CV)",
        "train_rows": len(dd["train"]),
        "val_rows": len(dd["validation"]),
        "macro_f1": report["macro_f1"],
        "roc_auc": report["roc_auc"],
        "pr_auc": report["pr_auc"],
        "ece": report["ece"],
        "seconds": seconds,
        "steps": "-",
    }


def vlm_row(tsv: Path, work: Path, *, full: bool, epochs: float, max_train: int | None, lr: float) -> dict:
    from hf_spamguard.training.run import parse_args, train

    out = work / ("full" if full else "lora")
    argv = [
        "--config", str(REPO / "scripts" / "configs" / "tiny-cpu.yaml"),
        "--model_name_or_path", str(work / "tiny-qwen3-vl"),
        "--dataset", str(tsv),
        "--output_dir", str(out),
        "--max_steps", "-1",
        "--num_train_epochs", str(epochs),
        "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "16",
        "--eval_batch_size", "16",
        "--learning_rate", str(lr),
        "--lr_scheduler_type", "cosine",
        "--warmup_steps", "0.05",
        "--eval_strategy", "epoch",
        "--save_strategy", "no",
        "--load_best_model_at_end", "false",
        "--logging_steps", "20",
        "--disable_tqdm", "true",
        "--reason_source", "baseline",
        "--use_peft", "false" if full else "true",
        "--lora_r", "16",
        "--lora_alpha", "32",
    ]  # fmt: skip
    project, sft, model = parse_args(argv, cuda=False)
    project.max_train_samples = max_train
    project.max_eval_samples = None
    start = time.perf_counter()
    result = train(project, sft, model)
    seconds = time.perf_counter() - start
    m = result.eval_metrics
    evals = [h for h in result.log_history if "eval_macro_f1" in h]
    summary = json.loads((result.final_dir / "training_summary.json").read_text())
    return {
        "model": f"tiny Qwen3-VL ({'full fine-tune' if full else 'LoRA r=16'}), calibrated T={result.temperature:.3g}",
        "train_rows": summary["train_rows"],
        "val_rows": m.get("n"),
        "macro_f1": m.get("macro_f1_at_0.5"),
        "roc_auc": m.get("roc_auc"),
        "pr_auc": m.get("pr_auc"),
        "ece": m.get("ece"),
        "seconds": seconds,
        "steps": result.global_step,
        "per_epoch_f1": [round(h["eval_macro_f1"], 3) for h in evals],
    }


def fmt(value, col: str = "") -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if col == "seconds" else f"{value:.3f}"
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tsv", type=Path, default=DEFAULT_TSV)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-train", type=int, default=None, help="train on a random subset (quick runs)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)"
    )
    parser.add_argument("--skip-full", action="store_true", help="only the LoRA run")
    args = parser.parse_args(argv)
    if not args.tsv.is_file():
        print(f"real data not found: {args.tsv}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    from hf_spamguard.testing import build_tiny_qwen3_vl

    rows = [baseline_row(args.tsv)]
    with tempfile.TemporaryDirectory(prefix="train_quality_") as tmp:
        work = Path(tmp)
        build_tiny_qwen3_vl(work / "tiny-qwen3-vl")
        rows.append(
            vlm_row(args.tsv, work, full=False, epochs=args.epochs, max_train=args.max_train, lr=5e-3)
        )
        if not args.skip_full:
            rows.append(
                vlm_row(args.tsv, work, full=True, epochs=args.epochs, max_train=args.max_train, lr=1e-3)
            )
    cols = ["model", "train_rows", "val_rows", "steps", "macro_f1", "roc_auc", "pr_auc", "ece", "seconds"]
    print(f"\nValidation quality on {args.tsv.name} (text only), CPU, torch threads={args.threads}\n")
    print("| " + " | ".join(c.replace("_", " ") for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(fmt(row.get(c), c) for c in cols) + " |")
    for row in rows[1:]:
        print(f"{row['model']}: validation macro-F1 after each epoch {row['per_epoch_f1']}")
    print("macro-F1 at confidence 0.5; ECE after temperature calibration on the same validation split.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
