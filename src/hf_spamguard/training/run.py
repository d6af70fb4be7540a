"""Fine-tuning end to end: arguments → data → model → TRL SFT → calibration → thresholds → model folder.

``scripts/train.py`` and ``spamguard train`` both call :func:`hf_spamguard.training.console.main` (the
command line: help, progress lines, the closing summary); tests and notebooks can call :func:`train` with
the three argument dataclasses. :func:`train` reports what it does on the ``hf_spamguard.training``
logger (shown by the command line, silent in a library call unless logging is configured).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hf_spamguard.atomic import atomic_write_json
from hf_spamguard.files import ADAPTER_CONFIG_FILE, CONFIG_FILE, TRAINING_ARGS_FILE, TRAINING_SUMMARY_FILE
from hf_spamguard.training.args import PROJECT_DEFAULTS, ProjectArgs, cuda_available, device_defaults

logger = logging.getLogger("hf_spamguard.training")


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    final_dir: Path | None = field(
        metadata={"help": "The finished model folder (None on non-main processes)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Calibration temperature."})
    thresholds: dict[str, float] = field(
        default_factory=dict, metadata={"help": "review / demote thresholds."}
    )
    eval_metrics: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Calibrated validation metrics."}
    )
    log_history: list[dict[str, Any]] = field(default_factory=list, metadata={"help": "Trainer log history."})
    global_step: int = field(default=0, metadata={"help": "Optimiser steps done (including resumed ones)."})
    notes: list[str] = field(default_factory=list, metadata={"help": "Defaults applied and choices made."})
    targets_met: bool = field(
        default=False, metadata={"help": "Whether the selected thresholds meet the policy targets."}
    )
    policy_notes: list[str] = field(
        default_factory=list, metadata={"help": "What threshold selection says (targets missed, fallbacks)."}
    )
    warnings: list[str] = field(
        default_factory=list,
        metadata={"help": "Notes that matter for using the model (a temperature fit on its bound...)."},
    )


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


def make_parser(*, cuda: bool | None = None):  # noqa: ANN201 - TrlParser, imported lazily
    """``TrlParser`` over (ProjectArgs, SFTConfig, ModelConfig) with this project's and the machine's defaults.

    Precedence: TRL's defaults < :data:`~hf_spamguard.training.args.PROJECT_DEFAULTS` < CPU/CUDA defaults
    (:func:`~hf_spamguard.training.args.device_defaults`) < the ``--config`` YAML < command-line flags.
    """
    from hf_spamguard.modeling import quiet_library_noise

    quiet_library_noise()  # before trl imports peft and bitsandbytes
    from trl import ModelConfig, SFTConfig, TrlParser

    parser = TrlParser((ProjectArgs, SFTConfig, ModelConfig))
    defaults = {**PROJECT_DEFAULTS, **device_defaults(cuda)}
    if "activation_checkpointing" in {f.name for f in dataclasses.fields(SFTConfig)}:
        # transformers >= 5.x renamed gradient_checkpointing (the old name warns); older ones lack the new.
        defaults["activation_checkpointing"] = defaults.pop("gradient_checkpointing")
    unused = parser.set_defaults_with_config(**defaults)
    if unused:  # a renamed upstream field: fail loudly rather than silently training differently
        raise RuntimeError(f"defaults not understood by TrlParser: {unused}")
    return parser


def parse_args(argv: Sequence[str] | None = None, *, cuda: bool | None = None) -> tuple[Any, Any, Any]:
    """Parse ``argv`` (``--config file.yaml`` plus overrides) into (ProjectArgs, SFTConfig, ModelConfig)."""
    parser = make_parser(cuda=cuda)
    args = []
    for arg in list(argv) if argv is not None else sys.argv[1:]:
        # TrlParser only finds the config given as two words (`--config FILE`).
        args.extend(["--config", arg.split("=", 1)[1]] if arg.startswith("--config=") else [arg])
    project, sft_args, model_args = parser.parse_args_and_config(args)
    return project, sft_args, model_args


def _resolve_resume(value: str | bool | None, output_dir: str) -> str | None:
    """``resume_from_checkpoint``: a path, or ``true`` / ``last`` for the newest checkpoint in output_dir."""
    if value in (None, "", False, "false", "False", "no"):
        return None
    if value is True or str(value).lower() in ("true", "last", "latest", "auto"):
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if last is None:
            raise FileNotFoundError(f"resume_from_checkpoint={value}: no checkpoint-* folder in {output_dir}")
        return last
    if not os.path.isdir(str(value)):
        raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint folder at {value}")
    return str(value)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _subset(ds: Any, n: int | None, seed: int) -> Any:
    if n is None or n >= len(ds):
        return ds
    # Random rather than the first N rows: a file sorted by label would give a one-class subset.
    return ds.shuffle(seed=seed).select(range(n))


def load_splits(project: ProjectArgs, seed: int = 42) -> tuple[Any, Any | None]:
    """The training split and the evaluation split (``None`` when disabled or absent) of ``project.dataset``."""
    from hf_spamguard.data import load_listings

    if not project.dataset:
        raise ValueError(
            "dataset is required: a built dataset folder, a listings .tsv file or a Hub dataset id"
        )
    dd = load_listings(project.dataset)
    if project.train_split not in dd:
        raise ValueError(f"{project.dataset}: no split {project.train_split!r} (splits: {', '.join(dd)})")
    train_ds = _subset(dd[project.train_split], project.max_train_samples, seed)
    eval_ds = None
    if project.eval_split:
        if project.eval_split in dd:
            eval_ds = _subset(dd[project.eval_split], project.max_eval_samples, seed)
        else:
            logger.warning(
                "no %r split in %s: training without evaluation", project.eval_split, project.dataset
            )
    for name, ds in (("train", train_ds), ("eval", eval_ds)):
        if ds is not None:
            missing = [c for c in ("description", "label") if c not in ds.column_names]
            if missing:
                raise ValueError(f"{project.dataset} ({name} split): missing column(s) {', '.join(missing)}")
    return train_ds, eval_ds


def make_reasons(
    project: ProjectArgs, train_ds: Any, eval_ds: Any | None
) -> tuple[list[str], list[str] | None, str]:
    """Reasons for the assistant targets of both splits and where they came from."""
    from hf_spamguard.training.formatting import baseline_reasons

    if project.reason_column:
        out = []
        for name, ds in (("train", train_ds), ("eval", eval_ds)):
            if ds is None:
                out.append(None)
                continue
            if project.reason_column not in ds.column_names:
                raise ValueError(
                    f"reason_column {project.reason_column!r} is not a column of the {name} split"
                )
            values = [str(v or "").strip() for v in ds[project.reason_column]]
            empty = [i for i, v in enumerate(values) if not v]
            if empty:
                raise ValueError(
                    f"{name} split, row {empty[0]}, field {project.reason_column!r}: empty reason "
                    f"({len(empty)} rows); every training target needs a real reason"
                )
            out.append(values)
        return out[0], out[1], f"column {project.reason_column!r}"
    from hf_spamguard.baseline import BaselineClassifier
    from hf_spamguard.training.formatting import fit_reason_baseline

    baseline = None
    if project.baseline_dir:
        baseline = BaselineClassifier.from_pretrained(project.baseline_dir)
        source = f"baseline {project.baseline_dir}"
    elif project.reason_source == "evidence":
        source = "baseline's evidence rules (no fit)"
    else:
        started = time.time()
        _say(f"fitting the TF-IDF baseline whose explanations become the reasons ({len(train_ds)} rows) ...")
        baseline = fit_reason_baseline(train_ds["description"], train_ds["label"])
        _say(f"  fitted in {time.time() - started:.1f} s")
        source = "baseline fitted on the training split"
    evidence_only = baseline is None
    train_reasons = baseline_reasons(
        train_ds["description"], train_ds["label"], baseline=baseline, evidence_only=evidence_only
    )
    eval_reasons = None
    if eval_ds is not None:
        eval_reasons = baseline_reasons(
            eval_ds["description"], eval_ds["label"], baseline=baseline, evidence_only=evidence_only
        )
    return train_reasons, eval_reasons, source


# --------------------------------------------------------------------------------------------------
# Output folder
# --------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _fix_adapter_base(folder: Path, base: str) -> None:
    """Record the base model as an absolute path when it is a local folder, so that the adapter loads from
    any working directory on this machine (the merge right after, ``--merge false`` folders). The
    published copy names it portably instead (:func:`hf_spamguard.modeling.portable_base_name`)."""
    cfg_path = folder / ADAPTER_CONFIG_FILE
    if not cfg_path.is_file():
        return
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = str(Path(base).resolve()) if os.path.isdir(base) else base
    atomic_write_json(cfg_path, cfg, default=str)


def _say(message: str) -> None:
    """A progress line of the main process (on the ``hf_spamguard.training`` logger): launchers set RANK
    in every process they start, and only rank 0 speaks."""
    if os.environ.get("RANK", "0") in ("", "0"):
        logger.info(message)


def ensure_tiny_model(path: str, sft_args: Any) -> None:
    """Build the tiny offline Qwen3-VL at ``path`` unless it exists (main process first, others wait)."""
    if not path:
        raise ValueError("build_tiny_model needs model_name_or_path: the folder to build the tiny model in")
    with sft_args.main_process_first(local=True, desc="build tiny model"):
        if not (Path(path) / CONFIG_FILE).is_file():
            from hf_spamguard.testing import build_tiny_qwen3_vl

            started = time.time()
            _say(f"building the tiny random Qwen3-VL in {path} (first use; no download) ...")
            build_tiny_qwen3_vl(path)
            _say(f"  built in {time.time() - started:.1f} s")


def ensure_demo_dataset(project: ProjectArgs, sft_args: Any) -> bool:
    """Build the synthetic demo dataset in ``project.demo_dataset_dir`` when it is missing and it is
    ``project.dataset`` (main process first, others wait); True when it was built now."""
    folder = project.demo_dataset_dir
    if not folder or not project.dataset:
        return False
    if os.path.abspath(project.dataset) != os.path.abspath(folder):
        return False  # another dataset was asked for: never build demo data in its place
    with sft_args.main_process_first(local=True, desc="build demo dataset"):
        if os.path.exists(folder):
            return False
        import tempfile

        from hf_spamguard.data import build_synthetic_dataset, save_dataset

        started = time.time()
        _say(
            f"building the synthetic demo dataset in {folder} (first use; `spamguard dataset build --demo`) ..."
        )
        with tempfile.TemporaryDirectory(prefix="spamguard-demo-") as tmp:
            dd = build_synthetic_dataset(tmp)
            save_dataset(dd, folder)
        sizes = ", ".join(f"{split} {len(dd[split])}" for split in dd)
        _say(f"  built in {time.time() - started:.1f} s: {sizes}")
        return True


def write_model_folder(
    trainer: Any,
    final_dir: Path,
    *,
    project: ProjectArgs,
    model_args: Any,
    sft_args: Any,
    temperature: float,
    selection: Any,
    prompt_config: Any,
    eval_metrics: dict[str, Any],
    summary: dict[str, Any],
    cuda: bool,
    repo_id: str | None = None,
) -> Path:
    """Write the finished model folder (files by the main process; ``save_model`` runs on every rank
    because it gathers sharded weights under ZeRO-3 / FSDP).

    LoRA runs with ``merge`` (default): the adapter goes to ``final/adapter`` and is merged into a freshly
    loaded full-precision base in ``final`` (so a 4-bit run yields plain weights), which then carries the
    pipeline code. Without ``merge`` the adapter is the folder itself: it loads with ``import hf_spamguard``
    then ``pipeline("listing-spam", model=folder, model_dir=folder)`` (or ``pipeline.load_pipeline``), but
    cannot carry remote code (transformers would look for base weights next to a ``config.json``).

    The model card (``README.md``) is rendered last, from the files written here: the measured
    validation metrics, the calibration temperature and the selected thresholds. ``repo_id`` points its
    usage snippets at the repo the folder will be pushed to.
    """
    from hf_spamguard.pipeline import save_calibration, save_pipeline_files

    is_lora = bool(model_args.use_peft) or project.backend == "unsloth"
    merge = is_lora and project.merge
    weights_dir = final_dir / "adapter" if merge else final_dir
    if trainer.is_world_process_zero() and merge and weights_dir.exists():
        shutil.rmtree(weights_dir)  # a stale adapter from an earlier run must not be merged
    trainer.accelerator.wait_for_everyone()
    weights_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(weights_dir))
    if not trainer.is_world_process_zero():
        return final_dir
    # Trainer.save_model pickles the arguments (training_args.bin); a JSON copy is kept instead: nothing
    # loadable from the Hub may be a pickle.
    (weights_dir / "training_args.bin").unlink(missing_ok=True)
    base = model_args.model_name_or_path
    _fix_adapter_base(weights_dir, base)
    if merge:
        import torch

        from hf_spamguard.modeling import merge_adapter, portable_base_name, set_adapter_base

        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
        merge_adapter(weights_dir, final_dir, dtype=dtype)
        # The adapter kept next to the merged weights is published with them: it names its base by Hub id
        # or folder name, never by this machine's absolute path (the merge above needed that path).
        name, how = portable_base_name(base, project.base_model_id)
        set_adapter_base(weights_dir, name)
        if os.path.isdir(base):
            summary.setdefault("notes", []).append(
                f"adapter/{ADAPTER_CONFIG_FILE} names its base model {name!r} ({how}"
                + ("; load the adapter on its own with base_model=<folder>)" if "no Hub id" in how else ")")
            )
    atomic_write_json(final_dir / TRAINING_ARGS_FILE, json.loads(sft_args.to_json_string()), default=str)
    save_calibration(final_dir, temperature)
    # Inference must build prompts exactly as training did (image budget, text budget).
    prompt_config.save(final_dir)
    selection.save(final_dir)
    if not (final_dir / ADAPTER_CONFIG_FILE).is_file():
        save_pipeline_files(final_dir)
    # Next to the adapter / weights, calibration.json (temperature), policy.json (thresholds),
    # prompt_config.json and the pipeline files: what the model card is rendered from.
    atomic_write_json(
        final_dir / TRAINING_SUMMARY_FILE, _jsonable({**summary, "eval_metrics": eval_metrics}), default=str
    )
    write_model_card(final_dir, sft_args=sft_args, repo_id=repo_id)
    return final_dir


def write_model_card(final_dir: Path, *, sft_args: Any = None, repo_id: str | None = None) -> Path:
    """Render ``final_dir/README.md`` from what training wrote there (``training_summary.json``:
    validation metrics, base model, settings; ``policy.json``; ``calibration.json``)."""
    # The facts come from the same reader publish uses to re-render a card, so the card written here
    # and a published one agree; cards (layer 1) cannot import prompts, so the default prompt is passed.
    # The lazy import keeps `import hf_spamguard.training` free of jinja2 / huggingface_hub cards.
    from hf_spamguard.cards import ModelCardFacts, model_card_facts, render_model_card
    from hf_spamguard.prompts import SYSTEM_PROMPT

    facts = model_card_facts(final_dir, system_prompt=SYSTEM_PROMPT)
    name = (repo_id or "").split("/")[-1]
    if not name and sft_args is not None and getattr(sft_args, "output_dir", None):
        name = Path(sft_args.output_dir).resolve().name  # "final" says nothing about the model
    return render_model_card(final_dir, ModelCardFacts(**facts, repo_id=repo_id, model_name=name or None))


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def _calibrate(
    trainer: Any, project: ProjectArgs, labels: np.ndarray | None, notes: list[str]
) -> tuple[float, Any, dict[str, Any]]:
    """Temperature on the evaluation split, thresholds by ``policy.select_thresholds``, calibrated metrics."""
    from hf_spamguard.policy import (
        PolicyError,
        Thresholds,
        ThresholdSelection,
        evaluate_policy,
        flatten_report,
        select_thresholds,
    )

    default = ThresholdSelection(
        thresholds=Thresholds(review=0.5, demote=0.9),
        objective="default",
        targets_met=False,
        notes=["no labelled evaluation data with both classes: default thresholds 0.5 / 0.9, not selected"],
    )
    if labels is None or len(labels) == 0:
        notes.append("no evaluation split: temperature 1.0 and default thresholds")
        return 1.0, default, {}
    diffs = trainer.score(desc="calibration scoring")
    temperature = 1.0
    if project.calibrate:
        from hf_spamguard.scoring import fit_temperature, temperature_fit_note

        temperature = float(fit_temperature(diffs, labels))
        notes.append(f"temperature {temperature:.4g} fitted on {len(labels)} evaluation rows")
        bound = temperature_fit_note(temperature)
        if bound:
            notes.append(bound)
    confidences = 1.0 / (1.0 + np.exp(-diffs / temperature))
    try:
        selection = select_thresholds(
            labels,
            confidences,
            target_demote_precision=project.target_demote_precision,
            target_recall=project.target_recall,
            review_budget=project.review_budget,
        )
    except PolicyError as exc:
        notes.append(f"threshold selection impossible ({exc}); default thresholds")
        selection = default
    metrics = flatten_report(evaluate_policy(labels, confidences, selection.thresholds))
    # Macro-F1 at the argmax too, comparable with the baseline's and with the per-evaluation logs.
    metrics["macro_f1_at_0.5"] = flatten_report(evaluate_policy(labels, confidences, Thresholds(0.5, 0.5)))[
        "macro_f1"
    ]
    return temperature, selection, metrics


def train(project: ProjectArgs, sft_args: Any, model_args: Any) -> TrainResult:
    """Fine-tune, calibrate, select thresholds and write the model folder (see the module docstring)."""
    import transformers
    from transformers import EarlyStoppingCallback
    from transformers.trainer_utils import IntervalStrategy

    from hf_spamguard.prompts import PromptConfig
    from hf_spamguard.training.backends import check_backend, load_for_training
    from hf_spamguard.training.formatting import add_training_columns, as_sft_dataset
    from hf_spamguard.training.trainer import EvalRows, SpamGuardSFTTrainer

    started = time.time()
    cuda = cuda_available() and not sft_args.use_cpu
    notes: list[str] = []
    # Fail fast (before reading data or loading weights) where the backend cannot run.
    check_backend(project.backend, cuda=cuda)
    resume = _resolve_resume(sft_args.resume_from_checkpoint, sft_args.output_dir)

    if ensure_demo_dataset(project, sft_args):
        notes.append(f"built the synthetic demo dataset in {project.dataset} (demo_dataset_dir)")
    train_ds, eval_ds = load_splits(project, seed=sft_args.seed)
    _say(
        f"data: {project.dataset}: {len(train_ds)} training rows"
        + (f", {len(eval_ds)} evaluation rows" if eval_ds is not None else ", no evaluation split")
    )
    train_reasons, eval_reasons, reason_source = make_reasons(project, train_ds, eval_ds)
    notes.append(f"reasons from the {reason_source}")
    n_before = len(train_ds)
    train_ds = add_training_columns(
        train_ds, train_reasons, split_vote=project.split_vote, min_weight=project.split_vote_min_weight
    )
    if len(train_ds) < n_before:
        notes.append(f"dropped {n_before - len(train_ds)} split-vote training rows")
    if eval_ds is not None:
        eval_ds = add_training_columns(eval_ds, eval_reasons, split_vote="keep")

    if project.build_tiny_model:
        ensure_tiny_model(model_args.model_name_or_path, sft_args)
    _say(f"loading {model_args.model_name_or_path} ({project.backend}, {'CUDA' if cuda else 'CPU'}) ...")
    tm = load_for_training(model_args, sft_args, project, cuda=cuda)
    notes.extend(tm.notes)
    for key, value in tm.sft_overrides.items():
        setattr(sft_args, key, value)
    # The SFT dataset is a lazy view over the listing columns: the Trainer must not drop those columns.
    sft_args.remove_unused_columns = False
    if sft_args.max_length is not None:
        logger.warning(
            "max_length=%s: a cut through image tokens fails for Qwen3-VL; None is safer", sft_args.max_length
        )
    # Pushing is done once, at the end, with the finished folder (hub_io), never by the Trainer.
    push_to_hub, sft_args.push_to_hub = bool(sft_args.push_to_hub), False
    if eval_ds is None:
        sft_args.eval_strategy = IntervalStrategy.NO
        sft_args.load_best_model_at_end = False

    overrides = {"max_pixels": project.max_pixels, "max_text_tokens": project.max_text_tokens}
    prompt_config = PromptConfig(**{k: v for k, v in overrides.items() if v is not None})
    tokenizer = getattr(tm.processor, "tokenizer", tm.processor)
    callbacks = []
    if (
        eval_ds is not None
        and project.early_stopping_patience
        and sft_args.load_best_model_at_end
        and sft_args.eval_strategy != IntervalStrategy.NO
    ):
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=project.early_stopping_patience))
        metric = str(sft_args.metric_for_best_model)
        metric = metric if metric.startswith("eval_") else f"eval_{metric}"
        notes.append(
            f"early stopping after {project.early_stopping_patience} evaluation(s) without improvement "
            f"of {metric}"
        )
    score_rows = EvalRows.from_dataset(eval_ds) if eval_ds is not None else None
    trainer = SpamGuardSFTTrainer(
        model=tm.model,
        args=sft_args,
        train_dataset=as_sft_dataset(train_ds, prompt_config, tokenizer=tokenizer),
        eval_dataset=as_sft_dataset(eval_ds, prompt_config, tokenizer=tokenizer)
        if eval_ds is not None
        else None,
        processing_class=tm.processor,
        peft_config=tm.peft_config,
        data_collator=tm.data_collator,
        callbacks=callbacks,
        score_rows=score_rows,
        score_batch_size=project.eval_batch_size,
        prompt_config=prompt_config,
        inline_images=tm.backend == "unsloth",
    )
    if resume:
        notes.append(f"resumed from {resume}")
    train_output = trainer.train(resume_from_checkpoint=resume)

    labels = score_rows.labels if score_rows is not None else None
    if labels is not None and len(labels):
        _say(f"calibrating on {len(labels)} evaluation rows (temperature, then thresholds) ...")
    temperature, selection, eval_metrics = _calibrate(trainer, project, labels, notes)
    from hf_spamguard.scoring import FIT_TEMPERATURE_BOUNDS, temperature_fit_note

    fitted = bool(project.calibrate and labels is not None and len(labels))
    fit_note = temperature_fit_note(temperature) if fitted else None
    final_dir = Path(project.final_dir or Path(sft_args.output_dir) / "final")
    repo_id = (sft_args.hub_model_id or Path(sft_args.output_dir).name) if push_to_hub else None
    summary = {
        "base_model": model_args.model_name_or_path,
        "backend": tm.backend,
        "quantized": tm.quantized,
        "device": "cuda" if cuda else "cpu",
        "num_processes": trainer.accelerator.num_processes,
        "distributed_backend": getattr(trainer.accelerator.state, "backend", None),
        "train_rows": len(train_ds),
        "eval_rows": 0 if eval_ds is None else len(eval_ds),
        "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_metric": trainer.state.best_metric,
        "train_loss": train_output.training_loss,
        "temperature": temperature,
        # A fit that ends on a bound of its search is a finding, not a calibration (see the note).
        "temperature_fit": {
            "fitted": fitted,
            "bounds": list(FIT_TEMPERATURE_BOUNDS),
            "at_bound": bool(fit_note),
            "note": fit_note,
        },
        "policy": selection.to_dict(),
        "project_args": asdict(project),
        "notes": notes,
        "seconds": round(time.time() - started, 1),
        "versions": {"transformers": transformers.__version__},
    }
    write_model_folder(
        trainer,
        final_dir,
        project=project,
        model_args=model_args,
        sft_args=sft_args,
        temperature=temperature,
        selection=selection,
        prompt_config=prompt_config,
        eval_metrics=eval_metrics,
        summary=summary,
        cuda=cuda,
        repo_id=repo_id,
    )
    is_main = trainer.is_world_process_zero()
    if push_to_hub and is_main:
        from hf_spamguard.hub_io import upload_folder_to_hub

        assert repo_id is not None
        upload_folder_to_hub(
            final_dir,
            repo_id,
            private=bool(getattr(sft_args, "hub_private_repo", False)),
            token=sft_args.hub_token,
            commit_message="Upload fine-tuned listing-spam model",
        )
        notes.append(f"pushed to {repo_id}")
    trainer.accelerator.wait_for_everyone()
    return TrainResult(
        final_dir=final_dir if is_main else None,
        temperature=temperature,
        thresholds=selection.thresholds.to_dict(),
        eval_metrics=eval_metrics,
        log_history=list(trainer.state.log_history),
        global_step=trainer.state.global_step,
        notes=notes,
        targets_met=bool(selection.targets_met),
        policy_notes=list(selection.notes),
        warnings=[fit_note] if fit_note else [],
    )
