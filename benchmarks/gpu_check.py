"""The prepared GPU check (issue #14): one command, under 8 minutes, on a CUDA machine without network.

    python benchmarks/gpu_check.py --out gpu_check/            # CUDA: Qwen3-VL-2B-shaped random model
    python benchmarks/gpu_check.py --tiny --out /tmp/gpu_check  # CPU: the same code on the tiny model

On CUDA it builds a model with the real Qwen3-VL-2B-Instruct architecture and sizes (28 text layers of
2048, a 24-layer vision tower, vocabulary 151936, tied embeddings) from its config with random bf16
weights (nothing is downloaded; the tokenizer and processor are the project's tiny offline ones, whose
ids all lie below the model's vocabulary), then measures, each in its own guarded section:

- ``train_lora`` / ``train_qlora``: bf16 LoRA and 4-bit NF4 QLoRA steps of the project's trainer
  (``load_for_training`` + ``SpamGuardSFTTrainer`` with the shipped ``qwen3-vl-2b-qlora.yaml`` and the
  CUDA defaults: bf16, gradient checkpointing, paged 8-bit AdamW) on synthetic listings with photos, the
  same batch at every step: samples/s after warm-up steps, peak GPU memory, the losses (finite, falling);
- ``scoring``: the ``listing-spam`` pipeline (``load_pipeline``) at batch 8 and 32 (scores only), and
  batch 8 with reasons (constrained decoding): items/s, peak GPU memory, every verdict valid;
- ``unsloth``, ``vllm``: only where importable (each in a child process: Unsloth must be imported before
  transformers, vLLM owns the GPU memory it takes); otherwise ``"skipped: <why>"``.

QLoRA and paged 8-bit AdamW need bitsandbytes: without it QLoRA is skipped and LoRA uses plain AdamW
(said in the section). DeepSpeed / FSDP are not measured: one GPU, one process.

After every section ``<out>/gpu_check.json`` and ``<out>/gpu_check.md`` (a Markdown table) are rewritten
atomically, so a run stopped by a time limit keeps what it measured; ``"running"`` names the section that
was under way. ``--tiny`` forces CPU and the tiny model (a few steps, well under a minute): the test suite
runs it. Exit status: 0 when no section failed (skips are fine), 1 otherwise, 2 without CUDA (not --tiny).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the report module beside this script
from gpu_check_report import (  # noqa: E402
    GIB,
    Report,
    Skipped,
    jsonable,
    markdown,
    peak_gib,
    reset_peak,
    sync_cuda,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "scripts" / "configs"

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_name, "1")  # the GPU machine has no network: fail fast, never wait on the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Qwen3-VL-2B-Instruct's config.json (text and vision towers). Token ids are set from the tokenizer.
QWEN3_VL_2B_TEXT: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 262144,
    "rms_norm_eps": 1e-6,
    "attention_bias": False,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 5_000_000.0,
        "mrope_section": [24, 20, 20],
        "mrope_interleaved": True,
    },
}
QWEN3_VL_2B_VISION: dict[str, Any] = {
    "depth": 24,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_heads": 16,
    "hidden_act": "gelu_pytorch_tanh",
    "in_channels": 3,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "out_hidden_size": 2048,
    "num_position_embeddings": 2304,
    "deepstack_visual_indexes": [5, 11, 17],
}

#: Sizes of each mode: (train rows = batch, warm-up steps, timed steps, photo side in px, scored items).
MODES: dict[str, dict[str, Any]] = {
    "2b": {"batch": 8, "warmup": 2, "steps": 10, "image_px": 512, "score_n": 128, "reason_n": 32,
           "lr": 1e-3, "budget_s": 450},
    "tiny": {"batch": 4, "warmup": 1, "steps": 3, "image_px": 64, "score_n": 32, "reason_n": 8,
             "lr": 5e-3, "budget_s": 240},
}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Environment, model, listings
# --------------------------------------------------------------------------------------------------

DISTRIBUTIONS = (
    "torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "tokenizers",
    "huggingface-hub", "safetensors", "pillow", "numpy", "unsloth", "vllm", "deepspeed", "flash-attn",
    "hf-spamguard",
)  # fmt: skip


def bitsandbytes_problem() -> str | None:
    """Why bitsandbytes cannot be used here (``None`` when it imports)."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken CUDA library raises more than ImportError
        return f"bitsandbytes not importable ({type(exc).__name__}: {str(exc)[:200]})"
    return None


def environment(cuda: bool) -> dict[str, Any]:
    import torch

    import hf_spamguard

    versions = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "versions": versions,
        "hf_spamguard_from": str(Path(hf_spamguard.__file__).parent),
        "cuda": cuda,
        "torch_cuda": torch.version.cuda,
        "bitsandbytes": bitsandbytes_problem() or "ok",
        "importable": {m: importlib.util.find_spec(m) is not None for m in ("unsloth", "vllm", "deepspeed")},
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=f"{props.name}, {props.total_memory / GIB:.0f} GiB",
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            bf16=bool(torch.cuda.is_bf16_supported()),
        )
    else:
        info["device"] = f"CPU ({os.cpu_count()} cores)"
    info["summary"] = (
        f"{info['device']}; torch {versions['torch']} (CUDA {torch.version.cuda}); "
        + ", ".join(f"{d} {versions[d] or 'absent'}" for d in ("transformers", "trl", "peft", "bitsandbytes"))
    )
    return info


def qwen3_vl_2b_config(tokenizer: Any) -> Any:
    """A ``Qwen3VLConfig`` with Qwen3-VL-2B-Instruct's sizes; special-token ids from ``tokenizer``."""
    from transformers import Qwen3VLConfig

    from hf_spamguard.testing import SPECIAL_TOKENS

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    if len(tokenizer) > QWEN3_VL_2B_TEXT["vocab_size"]:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, more than the model's vocabulary")
    config = Qwen3VLConfig(
        text_config={
            **QWEN3_VL_2B_TEXT,
            "pad_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "bos_token_id": None,
        },
        vision_config=dict(QWEN3_VL_2B_VISION),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    config.eos_token_id = ids["<|im_end|>"]
    config.pad_token_id = ids["<|endoftext|>"]
    return config


def _param_counts(model: Any) -> dict[str, int]:
    counts = {"total": 0, "vision": 0, "language": 0}
    for name, p in model.named_parameters():  # tied weights are listed once
        counts["total"] += p.numel()
        counts["vision" if ".visual." in f".{name}" else "language"] += p.numel()
    return counts


def build_model(work: Path, *, tiny: bool, cuda: bool) -> tuple[Path, dict[str, Any]]:
    """The model folder the other sections load, and what it is. The 2B shape is always checked on the
    meta device (no memory), so ``--tiny`` also proves that the 2B config builds with the right size."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from hf_spamguard.modeling import load_processor
    from hf_spamguard.testing import build_tiny_qwen3_vl

    tiny_dir = build_tiny_qwen3_vl(work / "tiny-qwen3-vl")
    processor = load_processor(tiny_dir)
    config = qwen3_vl_2b_config(processor.tokenizer)
    with torch.device("meta"):
        shape = _param_counts(Qwen3VLForConditionalGeneration(config))
    info: dict[str, Any] = {"qwen3_vl_2b_params": shape}
    if tiny:
        model = Qwen3VLForConditionalGeneration.from_pretrained(tiny_dir)
        info.update(model="tiny Qwen3-VL (random)", folder=str(tiny_dir), params=_param_counts(model))
        del model
        info["summary"] = (
            f"tiny model, {info['params']['total'] / 1e6:.2f} M params; the 2B config builds with "
            f"{shape['total'] / 1e9:.3f} B params (meta device)"
        )
        return tiny_dir, info
    folder = work / "qwen3-vl-2b-random"
    started = time.perf_counter()
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    tiny_gen = Qwen3VLForConditionalGeneration.from_pretrained(tiny_dir).generation_config
    model.generation_config = tiny_gen  # eos / pad ids of the tiny tokenizer, greedy
    built_s = time.perf_counter() - started
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    info.update(
        model="Qwen3-VL-2B shape (random bf16 weights, tiny tokenizer)",
        folder=str(folder),
        params=_param_counts(model),
        build_s=round(built_s, 2),
        save_s=round(time.perf_counter() - started - built_s, 2),
        folder_gib=round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / GIB, 3),
    )
    del model
    info["summary"] = (
        f"{info['params']['total'] / 1e9:.3f} B params ({info['params']['vision'] / 1e6:.0f} M vision), "
        f"built in {info['build_s']:.0f} s, saved {info['folder_gib']:.1f} GiB in {info['save_s']:.0f} s"
    )
    return folder, info


def synthetic_listings(n: int, image_px: int) -> list[dict[str, Any]]:
    """``n`` synthetic listings (both labels), every one with a rendered ``image_px``-square photo."""
    from hf_spamguard.data.synthetic import generate_demo_listings, render_demo_image

    rows = generate_demo_listings(n=max(n, 2), seed=0)[:n]
    return [
        {
            "description": r["description"],
            "label": int(r["label"]),
            "image": render_demo_image(r, size=image_px),
        }
        for r in rows
    ]


# --------------------------------------------------------------------------------------------------
# Training: the project's trainer on a repeated batch
# --------------------------------------------------------------------------------------------------


def _step_timer(cuda: bool) -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall-clock time at the end of every optimiser step (after a CUDA sync)."""

        def __init__(self) -> None:
            self.begin = 0.0
            self.ends: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            sync_cuda(cuda)
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            sync_cuda(cuda)
            self.ends.append(time.perf_counter())

    return StepTimer()


def _checkpointing_flag() -> str:
    """transformers >= 5.x renamed gradient_checkpointing to activation_checkpointing (as make_parser)."""
    import dataclasses

    from trl import SFTConfig

    names = {f.name for f in dataclasses.fields(SFTConfig)}
    return "--activation_checkpointing" if "activation_checkpointing" in names else "--gradient_checkpointing"


def run_training(
    model_dir: Path, work: Path, *, mode: str, cuda: bool, quantized: bool, backend: str = "transformers"
) -> dict[str, Any]:
    """``warmup + steps`` optimiser steps of the project's trainer on one repeated batch of listings.

    The same sequence as :func:`hf_spamguard.training.run.train` (parse the shipped config with the
    machine's defaults, ``load_for_training``, the training columns, ``as_sft_dataset``,
    ``SpamGuardSFTTrainer``), without the dataset loading, calibration and model folder around it.
    Raises :class:`Skipped` for QLoRA without bitsandbytes, before anything heavy is imported.
    """
    bnb = bitsandbytes_problem()
    if quantized and bnb:
        raise Skipped(f"{bnb}: QLoRA not measured")
    import torch
    from datasets import Dataset

    from hf_spamguard.prompts import PromptConfig
    from hf_spamguard.training.backends import load_for_training
    from hf_spamguard.training.formatting import add_training_columns, as_sft_dataset, baseline_reasons
    from hf_spamguard.training.run import parse_args
    from hf_spamguard.training.trainer import SpamGuardSFTTrainer

    size = MODES[mode]
    tiny = mode == "tiny"
    batch, warmup, steps = size["batch"], size["warmup"], size["steps"]
    argv = [
        "--config", str(CONFIGS / ("tiny-cpu.yaml" if tiny else "qwen3-vl-2b-qlora.yaml")),
        "--model_name_or_path", str(model_dir), "--build_tiny_model", "false", "--backend", backend,
        "--output_dir", str(work / f"train-{backend}-{'qlora' if quantized else 'lora'}"),
        "--load_in_4bit", str(quantized).lower(), "--max_steps", str(warmup + steps),
        "--per_device_train_batch_size", str(batch), "--gradient_accumulation_steps", "1",
        "--learning_rate", str(size["lr"]), "--lr_scheduler_type", "constant", "--warmup_steps", "0",
        "--logging_steps", "1", "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "false", "--report_to", "none", "--disable_tqdm", "true",
        "--dataloader_num_workers", "0", "--max_pixels", str(size["image_px"] ** 2),
        # The GPU run's checkpointing on CPU too: the tiny run then exercises that path.
        _checkpointing_flag(), "true",
    ]  # fmt: skip
    notes = []
    if bnb and cuda:
        argv += ["--optim", "adamw_torch"]
        notes.append(f"{bnb}: plain AdamW instead of paged 8-bit AdamW")
    project, sft_args, model_args = parse_args(argv, cuda=cuda)
    on_cuda = cuda and not sft_args.use_cpu

    rows = synthetic_listings(batch, size["image_px"])
    ds = Dataset.from_dict({k: [r[k] for r in rows] for k in ("description", "label", "image")})
    reasons = baseline_reasons(ds["description"], ds["label"], evidence_only=True)
    ds = add_training_columns(ds, reasons, split_vote="keep")

    reset_peak(on_cuda)
    tm = load_for_training(model_args, sft_args, project, cuda=on_cuda)
    for key, value in tm.sft_overrides.items():
        setattr(sft_args, key, value)
    sft_args.remove_unused_columns = False
    prompt_config = PromptConfig(max_pixels=project.max_pixels)
    timer = _step_timer(on_cuda)
    trainer = SpamGuardSFTTrainer(
        model=tm.model,
        args=sft_args,
        train_dataset=as_sft_dataset(ds, prompt_config, tokenizer=tm.processor.tokenizer),
        processing_class=tm.processor,
        peft_config=tm.peft_config,
        data_collator=tm.data_collator,
        callbacks=[timer],
        prompt_config=prompt_config,
        inline_images=tm.backend == "unsloth",
    )
    try:  # what one batch costs, for reading samples/s
        sample = trainer.data_collator([trainer.train_dataset[i] for i in range(len(ds))])
        image_id = trainer.model.config.image_token_id
        lengths = {
            "tokens_per_sample": round(float(sample["attention_mask"].sum()) / len(ds), 1),
            "image_tokens_per_sample": round(float((sample["input_ids"] == image_id).sum()) / len(ds), 1),
            "trained_tokens_per_sample": round(float((sample["labels"] != -100).sum()) / len(ds), 1),
        }
    except Exception as exc:  # noqa: BLE001 - only informative
        lengths = {"tokens_per_sample": None, "lengths_error": f"{type(exc).__name__}: {exc}"[:300]}
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    # After the Trainer put the model on the GPU (a bf16 model is loaded on the CPU first).
    weights_gib = round(torch.cuda.memory_allocated() / GIB, 3) if on_cuda else None
    reset_peak(on_cuda)
    output = trainer.train()

    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    ends = timer.ends
    timed = len(ends) - warmup
    start = ends[warmup - 1] if warmup else timer.begin
    seconds = ends[-1] - start if timed > 0 else float("nan")
    finite = bool(losses) and all(math.isfinite(v) for v in losses)
    falling = finite and len(losses) > 1 and losses[-1] < losses[0]
    result: dict[str, Any] = {
        "backend": tm.backend,
        "quantized": tm.quantized,
        "device": "cuda" if on_cuda else "cpu",
        "dtype": str(tm.model.dtype).removeprefix("torch."),
        "optim": str(getattr(sft_args.optim, "value", sft_args.optim)),
        "bf16": bool(sft_args.bf16),
        "gradient_checkpointing": bool(sft_args.gradient_checkpointing),
        "batch_size": batch,
        "warmup_steps": warmup,
        "timed_steps": timed,
        "steps_done": trainer.state.global_step,
        "timed_seconds": round(seconds, 3),
        "samples_per_s": round(timed * batch / seconds, 3) if timed > 0 else None,
        "seconds_per_step": round(seconds / timed, 4) if timed > 0 else None,
        "trainable_params": trainable,
        **lengths,
        "weights_gpu_gib": weights_gib,
        **peak_gib(on_cuda),
        "losses": [round(v, 5) for v in losses],
        "losses_finite": finite,
        "loss_falling": falling,
        "train_loss": output.training_loss,
        # Every step's collation (photo preprocessing) is in the timed loop: no DataLoader workers.
        "dataloader_num_workers": sft_args.dataloader_num_workers,
        "notes": tm.notes + notes,
    }
    if result["tokens_per_sample"] and result["samples_per_s"]:
        result["tokens_per_s"] = round(result["samples_per_s"] * result["tokens_per_sample"], 1)
    peak = result["peak_gpu_gib"]
    result["summary"] = (
        f"{result['samples_per_s']} samples/s (batch {batch}, {result.get('tokens_per_sample')} tokens/sample, "
        f"{result['optim']}), peak {'-' if peak is None else f'{peak:.1f} GiB'}, loss "
        f"{losses[0]:.3f} → {losses[-1]:.3f} ({'falling' if falling else 'NOT falling'})"
        if losses
        else "no loss logged"
    )
    del trainer, tm
    return result


# --------------------------------------------------------------------------------------------------
# Scoring: the listing-spam pipeline
# --------------------------------------------------------------------------------------------------


def run_scoring(model_dir: Path, *, mode: str, cuda: bool) -> dict[str, Any]:
    """Items/s of ``load_pipeline(...)`` at batch 8 and 32 (scores only) and at batch 8 with reasons."""
    from hf_spamguard.pipeline import load_pipeline
    from hf_spamguard.prompts import PromptConfig
    from hf_spamguard.verdict import validate_verdict

    size = MODES[mode]
    device = "cuda" if cuda else "cpu"
    pipe = load_pipeline(
        model_dir, device=device, prompt_config=PromptConfig(max_pixels=size["image_px"] ** 2)
    )
    rows = synthetic_listings(size["score_n"], size["image_px"])
    inputs = [{"text": r["description"], "image": r["image"]} for r in rows]
    result: dict[str, Any] = {"device": device, "dtype": str(pipe.model.dtype).removeprefix("torch.")}
    runs = [(8, False, size["score_n"]), (32, False, size["score_n"]), (8, True, size["reason_n"])]
    for batch, reason, n in runs:
        n = max(n, batch)
        kwargs = {"batch_size": batch, "reason": reason, "max_reason_tokens": 48}
        pipe(inputs[:batch], **kwargs)  # warm-up: kernels, allocator
        sync_cuda(cuda)
        reset_peak(cuda)
        started = time.perf_counter()
        out = pipe(inputs[:n], **kwargs)
        sync_cuda(cuda)
        seconds = time.perf_counter() - started
        valid = 0
        for verdict in out:
            try:
                validate_verdict(verdict)
                valid += int(math.isfinite(verdict["confidence"]))
            except Exception:  # noqa: BLE001 - counted as invalid
                pass
        key = f"batch_{batch}{'_reasons' if reason else ''}"
        result[key] = {
            "items": n,
            "seconds": round(seconds, 3),
            "items_per_s": round(n / seconds, 2),
            "valid_verdicts": valid,
            **peak_gib(cuda),
        }
    result["all_valid"] = all(
        v["valid_verdicts"] == v["items"] for v in result.values() if isinstance(v, dict)
    )
    result["summary"] = "; ".join(
        f"{k.replace('_', ' ')}: {v['items_per_s']} items/s"
        + (f", peak {v['peak_gpu_gib']:.1f} GiB" if v.get("peak_gpu_gib") is not None else "")
        for k, v in result.items()
        if isinstance(v, dict)
    ) + ("; all verdicts valid" if result["all_valid"] else "; INVALID verdicts")
    del pipe
    return result


# --------------------------------------------------------------------------------------------------
# Optional engines, each in a child process
# --------------------------------------------------------------------------------------------------


def run_vllm(model_dir: Path, *, mode: str) -> dict[str, Any]:
    """The project's vLLM engine (:class:`hf_spamguard.vllm_engine.VLLMListingScorer`: the same prompts,
    label tokens and verdicts as the pipeline) on the same listings: listings/s scoring only and with
    reasons (48 tokens)."""
    from hf_spamguard.vllm_engine import VLLMListingScorer

    size = MODES[mode]
    rows = [
        {"text": r["description"], "image": r["image"]}
        for r in synthetic_listings(size["score_n"], size["image_px"])
    ]
    out: dict[str, Any] = {"requests": len(rows)}
    with VLLMListingScorer(model_dir, gpu_memory_utilization=0.5) as scorer:
        scorer(rows[:4], reason=True)  # warm-up
        for name, reason in (("score", False), ("reasons", True)):
            started = time.perf_counter()
            scorer(rows, reason=reason)
            seconds = time.perf_counter() - started
            out[f"{name}_listings_per_s"] = round(len(rows) / seconds, 2)
    out["summary"] = (
        f"{out['score_listings_per_s']:.1f} listings/s scoring, {out['reasons_listings_per_s']:.1f} with reasons"
    )
    return out


def run_child(report: Report, name: str, model_dir: Path, work: Path, *, mode: str, cuda: bool) -> None:
    """Run section ``name`` (unsloth / vllm) in a fresh interpreter when its package is importable."""
    module = {"unsloth": "unsloth", "vllm": "vllm"}[name]
    if not cuda:
        report.skip(name, f"{module} needs a CUDA GPU")
        return
    if importlib.util.find_spec(module) is None:
        report.skip(name, f"{module} not importable (not installed)")
        return
    left = report.deadline - time.monotonic()
    if left < 60:
        report.skip(name, f"time budget: {left:.0f} s left")
        return
    result_file = work / f"{name}.json"

    def child() -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--child", name, "--model-dir", str(model_dir),
               "--work", str(work), "--child-out", str(result_file)]  # fmt: skip
        try:
            proc = subprocess.run(cmd, timeout=left - 20, capture_output=True, text=True)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"child process ran past {left - 20:.0f} s") from exc
        if not result_file.is_file():
            raise RuntimeError(f"child exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
        entry = json.loads(result_file.read_text())
        if entry.pop("status") == "skipped":
            raise Skipped(entry.get("reason", "skipped"))
        return entry

    report.run(name, child)


def child_main(args: argparse.Namespace) -> int:
    """Entry of a child process: one section, its result as JSON in ``--child-out``."""
    from hf_spamguard.atomic import atomic_write_json

    if args.child == "unsloth":
        import unsloth  # noqa: F401  before transformers / trl / peft, so that its patches apply

        import hf_spamguard.modeling  # noqa: F401  registers the processor class Unsloth's loader meets
    try:
        if args.child == "unsloth":
            entry = {"status": "ok", **run_training(
                args.model_dir, args.work, mode="2b", cuda=True, quantized=not bitsandbytes_problem(),
                backend="unsloth",
            )}  # fmt: skip
        else:
            entry = {"status": "ok", **run_vllm(args.model_dir, mode="2b")}
    except Skipped as exc:
        entry = {"status": "skipped", "reason": str(exc)}
    atomic_write_json(args.child_out, jsonable(entry), allow_nan=False)
    return 0


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="folder of the JSON and Markdown")
    parser.add_argument("--tiny", action="store_true", help="CPU and the tiny model (the suite's test)")
    parser.add_argument("--budget-s", type=float, help="skip sections that would start after this many s")
    parser.add_argument("--work", type=Path, help="scratch folder (models); default: a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--child", choices=("unsloth", "vllm"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        return child_main(args)
    import torch

    mode = "tiny" if args.tiny else "2b"
    cuda = bool(torch.cuda.is_available()) and not args.tiny
    budget = args.budget_s if args.budget_s is not None else MODES[mode]["budget_s"]
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    meta = {
        "mode": mode,
        "model": "tiny Qwen3-VL" if args.tiny else "Qwen3-VL-2B shape, random weights",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "budget_s": budget,
        "sizes": MODES[mode],
    }
    report = Report(args.out, meta, deadline=time.monotonic() + budget)
    started = time.perf_counter()
    try:
        report.run("environment", lambda: environment(cuda))
        if not args.tiny and not cuda:
            report.record("model", {"status": "failed", "error": "no CUDA device: run with --tiny on CPU"})
            print(markdown(report.data))
            return 2
        built: dict[str, Path] = {}

        def model() -> dict[str, Any]:
            folder, info = build_model(work, tiny=args.tiny, cuda=cuda)
            built["dir"] = folder
            return info

        report.run("model", model)
        if "dir" not in built:
            print(markdown(report.data))
            return 1
        model_dir = built["dir"]
        for name, quantized in (("train_lora", False), ("train_qlora", True)):
            report.run(
                name,
                lambda q=quantized: run_training(model_dir, work, mode=mode, cuda=cuda, quantized=q),
                needs_s=0 if args.tiny else 60,
            )
        report.run(
            "scoring", lambda: run_scoring(model_dir, mode=mode, cuda=cuda), needs_s=0 if args.tiny else 45
        )
        for name in ("unsloth", "vllm"):
            run_child(report, name, model_dir, work, mode=mode, cuda=cuda)
    finally:
        report.data["seconds"] = round(time.perf_counter() - started, 1)
        report.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        report.write()
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(report.data), flush=True)
    print(f"[gpu_check] wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
