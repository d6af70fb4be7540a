"""Every file name of every folder layout the package writes or reads, and the one sidecar reader.

A model folder, a baseline folder, a student folder, a labelling job, a scoring job, a dataset folder
and a report folder are each described here once; every module takes its names from this file (only
``policy.py`` keeps its own copy of :data:`POLICY_FILE`, since it is copied alone into the metric Space;
a test checks the two are equal).

Layer 0, standard library only: the pipeline's remote code (copied into model folders) may import it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------------------------------- any folder
#: The Hub card of any folder (model, baseline, student, dataset, metric Space).
CARD_FILE = "README.md"
#: transformers' / the baseline's model configuration.
CONFIG_FILE = "config.json"

# ------------------------------------------------------------------------- listing model (VLM) folders
#: ``{"review": r, "demote": d, ...}`` of :class:`hf_spamguard.policy.Thresholds` (plus the selection).
POLICY_FILE = "policy.json"
#: ``{"temperature": T}`` fitted on validation data.
CALIBRATION_FILE = "calibration.json"
#: The :class:`~hf_spamguard.prompts.PromptConfig` the model was trained with.
PROMPT_CONFIG_FILE = "prompt_config.json"
#: What training measured and selected, next to the weights.
TRAINING_SUMMARY_FILE = "training_summary.json"
#: transformers' training arguments, saved by the trainer.
TRAINING_ARGS_FILE = "training_args.json"
#: A PEFT adapter's configuration (an adapter-only folder has it instead of full weights).
ADAPTER_CONFIG_FILE = "adapter_config.json"
#: Sidecars a listing model carries next to its weights (copied along on merge and publish).
SIDECAR_FILES = (CALIBRATION_FILE, POLICY_FILE, PROMPT_CONFIG_FILE)
#: The video processor config vLLM's Qwen3-VL processor loads (the project never uses video).
VIDEO_PROCESSOR_CONFIG_FILE = "video_preprocessor_config.json"

# ------------------------------------------------------------------------------------ baseline folders
#: The scikit-learn pipeline, in skops format (never pickle).
BASELINE_MODEL_FILE = "model.skops"

# ------------------------------------------------------------------------------ review student folders
#: The student's settings, thresholds and targets.
STUDENT_FILE = "student.json"
#: The taxonomy a student (or labelling job) predicts.
TAXONOMY_FILE = "taxonomy.yaml"
#: Distillation's student-vs-teacher report (JSON, and the same as Markdown).
DISTILL_REPORT_FILE = "distill_report.json"
DISTILL_REPORT_MARKDOWN_FILE = "distill_report.md"
#: Folder of the misclassified held-out rows, one ``<label>.csv`` each.
ERRORS_DIR = "errors"

# ------------------------------------------------------------------------- resumable jobs (label, score)
#: A job's identity and progress (:mod:`hf_spamguard.jobs`).
MANIFEST_FILE = "manifest.json"
#: The merged output of a labelling job.
LABELS_FILE = "labels.parquet"
#: Per-shard Parquet parts of a labelling job.
SHARD_DIR = "shards"
#: Suffix of the folder holding a scoring job's parts next to its output file.
PARTS_SUFFIX = ".parts"
#: Suffix of a job's lock file, next to the job's final output (``labels.parquet.lock``).
LOCK_SUFFIX = ".lock"

# ----------------------------------------------------------------------------------------- datasets
#: What ``dataset build`` recorded (counts, label reports, image status) in a dataset folder.
BUILD_REPORT_FILE = "build_report.json"
#: Per-row image download status of a dataset build.
IMAGE_STATUS_FILE = "image_status.csv"
#: The builder's own report inside its Arrow cache.
BUILDER_REPORT_FILE = "spamguard_build_report.json"
#: The Parquet files of a dataset folder in the Hub layout: ``data/<split>-NNNNN-of-NNNNN.parquet``.
DATA_DIR = "data"

# ------------------------------------------------------------------------------------------ reports
#: Metrics of an evaluation report (read back by cards as eval results).
METRICS_FILE = "metrics.json"
#: Files a folder's measured results may be in, in order of preference.
EVAL_RESULT_FILES = (METRICS_FILE, "eval_results.json", "policy_metrics.json")
#: The evaluation gallery.
GALLERY_FILE = "gallery.html"
#: The demo's summary.
SUMMARY_FILE = "summary.json"
#: The ``listing_spam_policy`` metric's output the demo keeps next to each report.
POLICY_METRIC_FILE = "policy_metric.json"
#: Suffix of the sidecar ``spamguard predict`` writes next to its output (``preds.jsonl.policy.json``):
#: the thresholds the run applied and the model folder, read back by ``spamguard evaluate``.
PREDICTIONS_POLICY_SUFFIX = ".policy.json"


class SidecarError(ValueError):
    """A JSON sidecar file is not valid JSON (or not an object); the message names the file."""


def read_json(path: str | os.PathLike[str], *, missing: Any = None) -> Any:
    """Read the JSON object in ``path``; ``missing`` when the file does not exist.

    The one reader of the package's JSON sidecars: a file that exists but is not a JSON object raises
    :class:`SidecarError` ``"<path>: not valid JSON (<why>)"`` rather than being silently ignored.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return missing
    except IsADirectoryError:
        raise SidecarError(f"{path}: expected a JSON file, found a folder") from None
    except UnicodeDecodeError as exc:
        raise SidecarError(f"{path}: not valid JSON (not UTF-8: {exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SidecarError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SidecarError(f"{path}: not valid JSON (expected an object, got {type(data).__name__})")
    return data
