"""The project's training arguments and the CPU / CUDA defaults.

``scripts/train.py`` parses three dataclasses with TRL's ``TrlParser``: :class:`ProjectArgs` (this file:
data, reasons, backend, calibration, output), TRL's ``SFTConfig`` (the Trainer's arguments) and TRL's
``ModelConfig`` (model path, LoRA and quantisation). A field name must not appear in two of them, since
``TrlParser`` merges them into one command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hf_spamguard.policy import DEFAULT_REVIEW_BUDGET, DEFAULT_TARGET_DEMOTE_PRECISION, DEFAULT_TARGET_RECALL

#: Backends that can build the model and trainer.
BACKENDS: tuple[str, str] = ("transformers", "unsloth")

#: Sources of the reason in the assistant target (besides a dataset column).
REASON_SOURCES: tuple[str, str] = ("baseline", "evidence")

#: What to do with split-vote rows (``label_confidence`` < 1).
SPLIT_VOTE_MODES: tuple[str, str, str] = ("keep", "downweight", "drop")

#: LoRA targets when the user gives none: the language model's projections only. The vision tower is left
#: frozen because the real listings are mostly text-only, and LoRA on ``lm_head`` is refused by TRL (its
#: fused LM head reads ``lm_head.weight`` directly).
DEFAULT_LORA_TARGET = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

#: Modules kept out of bitsandbytes quantisation: the vision tower (layers narrower than 64 inputs fail in
#: bitsandbytes' 4-bit kernels, and the tower is small) and the output head.
QUANT_SKIP_MODULES: tuple[str, ...] = ("model.visual", "lm_head")


@dataclass
class ProjectArgs:
    """Arguments of hf-spamguard's fine-tuning that are not TRL's ``SFTConfig`` / ``ModelConfig``."""

    dataset: str = field(
        default="",
        metadata={
            "help": "Training data: a folder built by `spamguard dataset build`, a listings .tsv file (built on "
            "the fly; a validation split is carved when missing) or a Hub dataset id."
        },
    )
    train_split: str = field(default="train", metadata={"help": "Split used for training."})
    eval_split: str | None = field(
        default="validation",
        metadata={
            "help": "Split used for evaluation, early stopping, temperature calibration and threshold selection. "
            "Empty or 'none' to train without evaluation (no calibration: temperature 1, default thresholds)."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training rows (quick runs, smoke tests)."}
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Keep only the first N evaluation rows (the scoring pass runs over all of them)."},
    )
    backend: str = field(
        default="transformers",
        metadata={
            "help": "Model/trainer backend: 'transformers' (transformers + peft + bitsandbytes; CPU or CUDA) or "
            "'unsloth' (FastVisionModel + UnslothVisionDataCollator; CUDA only).",
            "choices": list(BACKENDS),
        },
    )
    reason_source: str = field(
        default="baseline",
        metadata={
            "help": "Where the reason of each assistant target comes from when reason_column is unset: "
            "'baseline' (the explanation of a TF-IDF baseline fitted on the training split, with its top terms) "
            "or 'evidence' (the baseline's keyword-stuffing evidence rules only; no fit, instant).",
            "choices": list(REASON_SOURCES),
        },
    )
    reason_column: str | None = field(
        default=None,
        metadata={
            "help": "Dataset column holding a teacher's reason for each row. When unset, the reason in the "
            "assistant target is the explanation of a TF-IDF baseline fitted on the training split."
        },
    )
    split_vote: str = field(
        default="downweight",
        metadata={
            "help": "Rows whose moderators disagreed (label_confidence < 1): 'keep' them at full weight, "
            "'downweight' their loss by label_confidence (floored at split_vote_min_weight), or 'drop' them.",
            "choices": list(SPLIT_VOTE_MODES),
        },
    )
    split_vote_min_weight: float = field(
        default=0.2,
        metadata={
            "help": "Smallest loss weight of a split-vote row when split_vote='downweight' (0 < w <= 1)."
        },
    )
    max_pixels: int | None = field(
        default=None,
        metadata={"help": "Resize listing photos to at most this many pixels (prompt builder's max_pixels)."},
    )
    max_text_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Truncate descriptions to this many tokens (prompt builder's max_text_tokens; saved in "
            "prompt_config.json so inference truncates the same way). Default: the prompt builder's."
        },
    )
    eval_batch_size: int = field(
        default=8, metadata={"help": "Batch size of the scoring pass (evaluation metrics and calibration)."}
    )
    early_stopping_patience: int | None = field(
        default=3,
        metadata={
            "help": "Stop after this many evaluations without improvement of metric_for_best_model "
            "(needs evaluation and load_best_model_at_end). 0 or unset disables early stopping."
        },
    )
    calibrate: bool = field(
        default=True,
        metadata={"help": "Fit a temperature on the evaluation split after training (calibration.json)."},
    )
    target_demote_precision: float = field(
        default=DEFAULT_TARGET_DEMOTE_PRECISION,
        metadata={"help": "Threshold selection: precision required of 'demote' decisions."},
    )
    target_recall: float = field(
        default=DEFAULT_TARGET_RECALL,
        metadata={"help": "Threshold selection: spam recall wanted from 'review' + 'demote'."},
    )
    review_budget: float = field(
        default=DEFAULT_REVIEW_BUDGET,
        metadata={"help": "Threshold selection: largest share of listings sent to human review."},
    )
    merge: bool = field(
        default=True,
        metadata={
            "help": "Merge the LoRA adapter into the base weights in the final folder (a 4-bit run is merged "
            "into a freshly loaded full-precision base); the adapter is kept in <final>/adapter. With false the "
            "final folder holds the adapter only (no pipeline code inside): load it after `import hf_spamguard` with "
            "pipeline('listing-spam', model=folder, model_dir=folder)."
        },
    )
    final_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of the finished model (adapter or merged weights, processor, calibration, policy, "
            "pipeline files). Default: <output_dir>/final."
        },
    )
    baseline_dir: str | None = field(
        default=None,
        metadata={
            "help": "A saved BaselineClassifier folder whose explanations become the reasons (default: fit one "
            "on the training split)."
        },
    )

    build_tiny_model: bool = field(
        default=False,
        metadata={
            "help": "Build the offline tiny random Qwen3-VL (hf_spamguard.testing) at model_name_or_path first "
            "when that folder has no config.json (tests and the CPU demo; no download)."
        },
    )
    demo_dataset_dir: str | None = field(
        default=None,
        metadata={
            "help": "Build the synthetic demo listings (hf_spamguard.data.write_demo + build_dataset, what "
            "`spamguard dataset build --demo` writes) in this folder when it is missing and it is the dataset "
            "trained on (tiny-cpu.yaml: outputs/demo-listings; no download). Another --dataset is never built."
        },
    )
    base_model_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub id of a base model given as a local folder, recorded in the published adapter's "
            "adapter_config.json instead of the folder's path (default: the repo id of a Hugging Face cache "
            "snapshot, else the folder's name)."
        },
    )

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.reason_source not in REASON_SOURCES:
            raise ValueError(
                f"reason_source: expected one of {', '.join(REASON_SOURCES)}, got {self.reason_source!r}"
            )
        if self.split_vote not in SPLIT_VOTE_MODES:
            raise ValueError(
                f"split_vote: expected one of {', '.join(SPLIT_VOTE_MODES)}, got {self.split_vote!r}"
            )
        if not 0.0 < self.split_vote_min_weight <= 1.0:
            raise ValueError(f"split_vote_min_weight: expected 0 < w <= 1, got {self.split_vote_min_weight}")
        if isinstance(self.eval_split, str) and self.eval_split.strip().lower() in ("", "none", "null"):
            self.eval_split = None
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name}: expected a positive number of rows, got {value}")


def cuda_available() -> bool:
    """Whether a CUDA device is usable (torch imported lazily: ``spamguard --help`` must stay fast)."""
    import torch

    return bool(torch.cuda.is_available())


def device_defaults(cuda: bool | None = None) -> dict[str, Any]:
    """Defaults that depend on the machine, applied before the YAML config and the command line.

    CUDA: bf16 (fp16 on pre-Ampere cards), gradient checkpointing, paged 8-bit AdamW, bf16 weights.
    CPU: float32 everywhere (``use_cpu``), no checkpointing (small models; it only costs time), plain AdamW
    (bitsandbytes' paged optimisers need CUDA).
    """
    if cuda is None:
        cuda = cuda_available()
    if cuda:
        import torch

        bf16 = bool(torch.cuda.is_bf16_supported())
        return {
            "use_cpu": False,
            "bf16": bf16,
            "fp16": not bf16,
            "gradient_checkpointing": True,
            "optim": "paged_adamw_8bit",
            "dtype": "bfloat16" if bf16 else "float16",
        }
    return {
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "gradient_checkpointing": False,
        "optim": "adamw_torch",
        "dtype": "float32",
    }


#: Defaults of SFTConfig / ModelConfig that this project changes for every run (vision-language SFT).
PROJECT_DEFAULTS: dict[str, Any] = {
    # A cut through image placeholder tokens raises a token-count mismatch in Qwen3-VL.
    "max_length": None,
    # Loss on the assistant's JSON answer only (needs {% generation %} markers; TRL adds them when missing).
    "assistant_only_loss": True,
    "use_peft": True,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "learning_rate": 2e-4,
    "logging_steps": 10,
    "report_to": "tensorboard",
    "eval_strategy": "steps",
    "save_strategy": "steps",
    "eval_steps": 50,
    "save_steps": 50,
    "save_total_limit": 2,
    "load_best_model_at_end": True,
    "metric_for_best_model": "pr_auc",
    "greater_is_better": True,
    "bnb_4bit_quant_type": "nf4",
    "use_bnb_nested_quant": True,
    "output_dir": "outputs/spamguard-qwen3-vl",
}
