"""The configs of review moderation's commands (``spamguard label``, ``distill``, ``score``).

Plain dataclasses with ``help`` (and range / choice) metadata on every field: the CLI generates its options
from them (:mod:`hf_spamguard.cli._options`), so each option is declared once. Light on purpose: the CLI
imports this module at start, before any command runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FEATURE_SETS", "DistillConfig", "LabelingConfig", "ScoreConfig", "parse_precision_targets"]

_OPEN_FRACTION = {"min": 0.0, "max": 1.0, "min_open": True, "max_open": True}


@dataclass
class LabelingConfig:
    """One labelling job. Re-running with the same values resumes it."""

    teacher: str = field(metadata={"help": "Teacher model: a folder (merged or peft adapter) or a Hub id."})
    input: str = field(
        metadata={"help": "Reviews: Google Local JSON lines, CSV/TSV/Parquet, a folder, or a Hub id."}
    )
    out: str = field(
        metadata={"help": "Output folder: shards/, manifest.json and, when complete, labels.parquet."}
    )
    taxonomy: str = field(
        default="reviews", metadata={"help": "Taxonomy preset (reviews, listings) or YAML file."}
    )
    meta: str | None = field(default=None, metadata={"help": "Google Local place metadata file or folder."})
    shard_size: int = field(
        default=256, metadata={"help": "Rows per shard (the unit of checkpointing).", "min": 1}
    )
    batch_size: int = field(default=8, metadata={"help": "Reviews per forward pass.", "min": 1})
    rationale: bool = field(default=False, metadata={"help": "Also generate a short rationale per review."})
    max_rationale_tokens: int = field(default=32, metadata={"help": "Longest rationale in tokens.", "min": 1})
    max_text_chars: int = field(
        default=2000, metadata={"help": "Review text is cut to this many characters.", "min": 1}
    )
    limit: int | None = field(default=None, metadata={"help": "Label only the first N input rows.", "min": 0})
    device: str | None = field(
        default=None, metadata={"help": "Torch device (default: this process's GPU, else CPU)."}
    )
    dtype: str | None = field(
        default=None, metadata={"help": "Model dtype (default: bfloat16 on GPU, float32 on CPU)."}
    )
    engine: str = field(
        default="transformers",
        metadata={
            "help": "Teacher engine: transformers, or vllm (vLLM in its own environment; it batches by "
            "itself, a shard at a time). The same prompts and probabilities; part of the job's identity.",
            "choices": ("transformers", "vllm"),
        },
    )

    ray: bool = field(
        default=False,
        metadata={
            "help": "With --engine vllm: run the teacher through Ray Data (ray.data.llm) on a local cluster or "
            "the one at --ray-address; the same probabilities, no rationales.",
        },
    )
    ray_address: str | None = field(
        default=None,
        metadata={
            "help": "With --ray: the cluster (auto: the running one; default: $RAY_ADDRESS or a new local one)."
        },
    )
    ray_concurrency: int = field(
        default=1, metadata={"help": "With --ray: vLLM replicas (Ray actors).", "min": 1}
    )

    def __post_init__(self) -> None:
        if self.engine not in ("transformers", "vllm"):
            raise ValueError(f"engine must be transformers or vllm, got {self.engine!r}")
        if self.ray and self.engine != "vllm":
            raise ValueError("--ray runs the vLLM teacher on Ray Data: add --engine vllm")
        if self.ray and self.rationale:
            raise ValueError(
                "--ray labels probabilities only (a rationale follows the whole answer's path): drop "
                "--rationale, or label with --engine vllm without --ray"
            )
        if self.ray_concurrency < 1:
            raise ValueError(f"ray_concurrency must be >= 1, got {self.ray_concurrency}")
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("shard_size and batch_size must be >= 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")


def parse_precision_targets(text: str) -> float | dict[str, float]:
    """``"0.9"`` → 0.9; ``"spam=0.95,advertisement=0.8"`` → per label; ``"0.85,spam=0.95"`` → every label
    0.85 except spam (``"*"`` holds that default). Raises ValueError naming the bad part."""
    default: float | None = None
    per_label: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, _, value = part.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"target precision {part!r}: expected a number or LABEL=NUMBER") from None
        if name:
            per_label[name.strip()] = number
        else:
            default = number
    if not per_label:
        if default is None:
            raise ValueError(f"target precision {text!r}: no value given")
        return default
    if default is not None:
        per_label["*"] = default
    return per_label


#: Featuriser presets of the student (keyword arguments of hf_spamguard.baseline.FeaturizerConfig).
FEATURE_SETS: dict[str, dict[str, Any]] = {"words": {"char_bits": 0}, "full": {}}


@dataclass
class DistillConfig:
    """How a student is distilled from teacher labels."""

    labels: str = field(metadata={"help": "A `spamguard label` folder or a labels Parquet file."})
    out: str = field(metadata={"help": "Student model folder to write."})
    taxonomy: str | None = field(
        default=None, metadata={"help": "Taxonomy (default: recorded with the labels)."}
    )
    soft: bool = field(
        default=False,
        metadata={
            "help": "Train on teacher probabilities (soft targets) instead of 0/1 labels at hard_threshold.",
            "cli": {"flag": "--soft/--hard"},
        },
    )
    hard_threshold: float = field(
        default=0.5, metadata={"help": "Teacher probability at which a label is set.", **_OPEN_FRACTION}
    )
    target_precision: float | dict[str, float] = field(
        default=0.9,
        metadata={
            "help": "Precision each label's threshold must reach on validation: one value for all labels, "
            "or per label ({label: value}; labels left out get 0.9). On the command line: 0.9, "
            "spam=0.95,advertisement=0.8 (others 0.9), or both (0.85,spam=0.95).",
            "cli": {"type": str, "parse": parse_precision_targets, "format": str},
        },
    )
    validation_size: float = field(
        default=0.15, metadata={"help": "Share of rows for threshold selection.", **_OPEN_FRACTION}
    )
    test_size: float = field(
        default=0.15, metadata={"help": "Share of rows held out for the report.", **_OPEN_FRACTION}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the stratified split."})
    cv: int = field(
        default=3, metadata={"help": "Cross-validation folds for the student's C and calibration.", "min": 2}
    )
    features: str = field(
        default="words",
        metadata={
            "help": "Student features: 'words' (hashed word unigrams + bigrams + stuffing features; about 4x "
            "faster to score) or 'full' (the baseline's default, adding character 3-5-grams).",
            "choices": ("words", "full"),
        },
    )
    Cs: tuple[float, ...] = field(
        default=(0.3, 1.0, 3.0, 10.0),
        metadata={
            "help": "Inverse regularisation strengths tried per label (comma-separated).",
            "cli": {"parse": "floats", "flag": "--cs"},
        },
    )
    max_errors: int = field(
        default=200, metadata={"help": "Most misclassified rows written per label.", "min": 0}
    )

    def __post_init__(self) -> None:
        if (
            not 0 < self.validation_size < 1
            or not 0 < self.test_size < 1
            or self.validation_size + self.test_size >= 1
        ):
            raise ValueError("validation_size and test_size must be in (0, 1) with a sum below 1")
        targets = (
            self.target_precision if isinstance(self.target_precision, dict) else {"*": self.target_precision}
        )
        for name, value in targets.items():
            if not isinstance(value, int | float) or not 0 < value <= 1:
                where = "target_precision" if name == "*" else f"target_precision[{name!r}]"
                raise ValueError(f"{where} must be in (0, 1], got {value!r}")
        if self.features not in FEATURE_SETS:
            raise ValueError(f"features must be one of {sorted(FEATURE_SETS)}, got {self.features!r}")


@dataclass
class ScoreConfig:
    """One batch-scoring job (``spamguard score``). Re-running with the same values resumes it."""

    model: str = field(metadata={"help": "Student folder from `spamguard distill`, or its Hub id."})
    input: str = field(metadata={"help": "Reviews to score (any format `label` reads)."})
    out: str = field(metadata={"help": "Output Parquet file (id, p_<label>..., flags)."})
    meta: str | None = field(default=None, metadata={"help": "Google Local place metadata file or folder."})
    chunk_size: int = field(
        default=20_000, metadata={"help": "Rows per chunk (memory is flat in the input size).", "min": 1}
    )
    n_jobs: int = field(
        default=-1, metadata={"help": "Scoring threads of the one process (-1: all cores).", "min": -1}
    )
    report: bool = field(
        default=True, metadata={"help": "Write OUT.html: label distribution and examples per label."}
    )
    engine: str = field(
        default="local",
        metadata={
            "help": "Where chunks are scored: 'local' (--n-jobs processes here) or 'ray' (an actor pool on "
            "a Ray cluster; needs the `ray` extra). Same output, row for row.",
            "choices": ("local", "ray"),
        },
    )
    address: str | None = field(
        default=None,
        metadata={
            "help": "Ray cluster of --engine ray, to run on one of its nodes: 'auto' (the one `ray start` "
            "started on this machine) or HOST:PORT of its head. Default: $RAY_ADDRESS or this machine's "
            "running cluster, else a local one for the run. Not ray:// (Ray Data does not run through Ray "
            "Client; use `ray job submit`)."
        },
    )
    concurrency: int | None = field(
        default=None,
        metadata={"help": "Ray actors scoring in parallel (default: the cluster's CPUs).", "min": 1},
    )

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ValueError(f"n_jobs must be >= 1 or -1 (all cores), got {self.n_jobs}")
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
