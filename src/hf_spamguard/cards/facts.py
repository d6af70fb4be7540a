"""What a card says, as plain values: the facts classes, and the readers that find them in a folder.

A card renderer takes one facts object and formats it; it validates nothing (thresholds come from
``policy.Thresholds``, already checked) and imports nothing above layer 0, so every writer (training,
``baseline train``, ``distill``, ``publish``, the demo) passes what only it knows: the system prompt,
the skops trust list, the policy's default targets. The readers below collect the facts a folder
records about itself (``training_summary.json``, ``policy.json``, ``student.json``...), so that a card
re-rendered at publish time says the same as the one written next to the weights.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_spamguard.cards.render import is_number
from hf_spamguard.files import (
    ADAPTER_CONFIG_FILE,
    CALIBRATION_FILE,
    CONFIG_FILE,
    EVAL_RESULT_FILES,
    POLICY_FILE,
    PROMPT_CONFIG_FILE,
    STUDENT_FILE,
    TAXONOMY_FILE,
    TRAINING_ARGS_FILE,
    TRAINING_SUMMARY_FILE,
    read_json,
)
from hf_spamguard.verdict import MAX_REASON_CHARS


def installed_version() -> str:
    """The installed hf-spamguard version (``""`` when the distribution's metadata is missing)."""
    # Read from the distribution, not ``hf_spamguard.__version__``: cards must not import the top package.
    try:
        return importlib.metadata.version("hf-spamguard")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return ""


# --------------------------------------------------------------------------------------------- facts
@dataclass(frozen=True, kw_only=True)
class CardFacts:
    """Facts every model card (listing VLM, baseline, review student) shows."""

    model_name: str | None = field(
        default=None, metadata={"help": "Title; default the repo's or folder's name."}
    )
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub repo of the usage snippets; None leaves REPO_PLACEHOLDER."}
    )
    dataset: str | None = field(default=None, metadata={"help": "Training data: a Hub id or a local path."})
    eval_results: Mapping[str, Any] | None = field(
        default=None, metadata={"help": "Measured results (nested dicts are flattened); None: not recorded."}
    )
    eval_split: str = field(default="test", metadata={"help": "Split the results were measured on."})
    eval_size: int | None = field(
        default=None, metadata={"help": "Rows measured; default eval_results['n']."}
    )
    eval_note: str | None = field(default=None, metadata={"help": "A sentence under the results table."})
    training_config: Mapping[str, Any] | None = field(
        default=None, metadata={"help": "Settings shown in the training table."}
    )
    thresholds: Mapping[str, float] | None = field(
        default=None,
        metadata={"help": "{'review': r, 'demote': d}, already validated (policy.Thresholds.to_dict())."},
    )
    threshold_notes: str | None = field(
        default=None, metadata={"help": "What the threshold selection relaxed."}
    )
    license: str = "apache-2.0"
    language: str | list[str] = "en"
    package_version: str = field(default_factory=installed_version)


@dataclass(frozen=True, kw_only=True)
class ModelCardFacts(CardFacts):
    """Facts of a fine-tuned Qwen3-VL ``listing-spam`` model folder."""

    base_model: str = field(metadata={"help": "The model that was fine-tuned (Hub id or local path)."})
    adapter: bool = field(default=True, metadata={"help": "A peft LoRA adapter (False: merged weights)."})
    temperature: float | None = field(default=None, metadata={"help": "Calibration temperature; None: 1."})
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "The system prompt the model was trained with; None: a pointer to prompts.py."},
    )
    max_reason_chars: int = MAX_REASON_CHARS
    extra_notes: str | None = field(default=None, metadata={"help": "A 'Notes' section at the end."})


@dataclass(frozen=True, kw_only=True)
class BaselineCardFacts(CardFacts):
    """Facts of a skops listing baseline (binary keyword spam)."""

    trusted_types: Sequence[str] | None = field(
        default=None,
        metadata={
            "help": "hf_spamguard.baseline.TRUSTED_TYPES, shown in the inspection snippet; None: omitted."
        },
    )


@dataclass(frozen=True, kw_only=True)
class StudentCardFacts(CardFacts):
    """Facts of a multi-label review student distilled with ``spamguard distill`` (``thresholds`` unused)."""

    labels: Sequence[str] = field(default=(), metadata={"help": "Label names, in head order."})
    label_thresholds: Mapping[str, float] | None = field(
        default=None, metadata={"help": "Per-label thresholds."}
    )
    teacher: str | None = field(default=None, metadata={"help": "The teacher model; None: not recorded."})
    target_precision: float | Mapping[str, float] | None = field(
        default=None, metadata={"help": "Precision target(s) of the threshold selection."}
    )
    taxonomy: Mapping[str, Any] | None = field(default=None, metadata={"help": "The taxonomy as a dict."})
    task_description: str | None = field(default=None, metadata={"help": "Default '<item> moderation'."})
    trusted_types: Sequence[str] | None = field(
        default=None,
        metadata={
            "help": "hf_spamguard.baseline.TRUSTED_TYPES, shown in the inspection snippet; None: omitted."
        },
    )


# --------------------------------------------------------------------------------------------- readers
def find_eval_results(folder: str | Path) -> dict[str, Any] | None:
    """Measured results saved in ``folder`` (``metrics.json`` of the report, ``eval_results.json``...)."""
    folder = Path(folder)
    for name in EVAL_RESULT_FILES:
        data = read_json(folder / name, missing={})
        if data:
            return data["metrics"] if isinstance(data.get("metrics"), dict) else data
    return None


def selection_notes(policy: Mapping[str, Any]) -> str | None:
    """The notes of a ``policy.json``: what ``policy.ThresholdSelection.save`` recorded as relaxed."""
    selection = policy.get("selection")
    notes = (selection.get("notes") if isinstance(selection, Mapping) else None) or policy.get("notes")
    if isinstance(notes, list | tuple):
        notes = " ".join(str(n) for n in notes)
    return str(notes) if notes else None


def policy_facts(folder: str | Path) -> dict[str, Any]:
    """``thresholds`` and ``threshold_notes`` from ``folder/policy.json`` (None when not recorded).

    The file is written by ``policy.Thresholds.save``, which validated the values; they are only read here.
    """
    policy = read_json(Path(folder) / POLICY_FILE, missing={})
    thresholds = None
    if {"review", "demote"} <= set(policy):
        thresholds = {"review": float(policy["review"]), "demote": float(policy["demote"])}
    return {"thresholds": thresholds, "threshold_notes": selection_notes(policy)}


def sidecar_facts(folder: str | Path) -> dict[str, Any]:
    """What a listing model's sidecars record (None when absent): ``thresholds`` and ``threshold_notes``
    (``policy.json``), ``temperature`` (``calibration.json``), ``system_prompt`` (``prompt_config.json``)."""
    folder = Path(folder)
    facts = policy_facts(folder)
    facts["temperature"] = read_json(folder / CALIBRATION_FILE, missing={}).get("temperature")
    facts["system_prompt"] = read_json(folder / PROMPT_CONFIG_FILE, missing={}).get("system_prompt")
    return facts


# Training settings worth a row in a model card (keys of training_args.json).
CARD_TRAINING_ARGS = (
    "learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "lr_scheduler_type", "optim", "bf16", "gradient_checkpointing", "seed",
)  # fmt: skip


def model_card_facts(
    folder: str | Path, *, adapter: bool | None = None, system_prompt: str | None = None
) -> dict[str, Any]:
    """Keyword arguments of :class:`ModelCardFacts` (and of ``render_model_card``) for a model folder,
    from what training wrote next to the weights (``training_summary.json``: base model, validation
    metrics, settings; ``training_args.json``), else from ``adapter_config.json`` / ``config.json`` and
    a saved metrics file, plus the sidecars (:func:`sidecar_facts`).

    Training renders its card with these facts and ``publish`` re-renders from them, so the two agree.
    ``adapter`` defaults to whether the folder holds a peft adapter (``adapter_config.json``).
    ``system_prompt``: the one to show when ``prompt_config.json`` records none (the caller passes
    ``prompts.SYSTEM_PROMPT``, the default of a folder without one; cards cannot import it).
    """
    folder = Path(folder)
    summary = read_json(folder / TRAINING_SUMMARY_FILE, missing={})
    adapter_cfg = read_json(folder / ADAPTER_CONFIG_FILE, missing={})
    config = read_json(folder / CONFIG_FILE, missing={})
    base = (
        summary.get("base_model")
        or adapter_cfg.get("base_model_name_or_path")
        or config.get("_name_or_path")
        or "not recorded"
    )
    project = summary.get("project_args") or {}
    training_args = read_json(folder / TRAINING_ARGS_FILE, missing={})
    training_config = {k: summary[k] for k in ("backend", "quantized", "device", "train_rows", "global_step",
                                                "train_loss") if k in summary}  # fmt: skip
    training_config.update(
        {k: project[k] for k in ("split_vote", "max_pixels", "reason_source") if k in project}
    )
    training_config.update({k: training_args[k] for k in CARD_TRAINING_ARGS if k in training_args})
    eval_results = summary.get("eval_metrics") or find_eval_results(folder)
    facts: dict[str, Any] = {
        "base_model": str(base),
        "adapter": bool(adapter_cfg) if adapter is None else adapter,
        "training_config": training_config or None,
        "dataset": project.get("dataset") or None,
        "eval_results": eval_results,
        "eval_split": str(project.get("eval_split") or "validation")
        if summary.get("eval_metrics")
        else "test",
    }
    facts.update(sidecar_facts(folder))
    facts["system_prompt"] = facts["system_prompt"] or system_prompt
    return facts


def student_card_facts(folder: str | Path) -> dict[str, Any]:
    """What a student folder records about itself (``student.json`` + ``taxonomy.yaml``), as keyword
    arguments of :class:`StudentCardFacts` (``labels``, ``label_thresholds``, ``target_precision``,
    ``dataset``, ``taxonomy``); empty when ``folder`` is not a student folder.

    ``publish`` renders a missing card from these, so it says the same as the one ``distill`` writes."""
    folder = Path(folder)
    info = read_json(folder / STUDENT_FILE, missing={})
    if not info:
        return {}
    facts: dict[str, Any] = {"labels": list(info.get("labels") or [])}
    if isinstance(info.get("thresholds"), Mapping):
        facts["label_thresholds"] = dict(info["thresholds"])
    if is_number(info.get("target_precision")) or isinstance(info.get("target_precision"), Mapping):
        facts["target_precision"] = info["target_precision"]
    if info.get("trained_on"):
        facts["dataset"] = str(info["trained_on"])
    taxonomy_path = folder / TAXONOMY_FILE
    if taxonomy_path.is_file():
        import yaml

        try:
            taxonomy = yaml.safe_load(taxonomy_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{taxonomy_path}: invalid YAML ({exc})") from exc
        if isinstance(taxonomy, Mapping):
            facts["taxonomy"] = dict(taxonomy)
    return facts


_STUDENT_ONLY = ("label_thresholds", "teacher", "target_precision", "taxonomy", "task_description")


def baseline_card_facts(
    folder: str | Path,
    *,
    student: bool | None = None,
    labels: Iterable[str] | None = None,
    **given: Any,
) -> BaselineCardFacts | StudentCardFacts:
    """The facts of a skops baseline or student folder: ``given`` (fields of :class:`BaselineCardFacts`
    or :class:`StudentCardFacts`; None counts as not given) completed with what ``folder`` records.

    ``student``: a student card; by default when ``folder`` holds a ``student.json`` or ``labels`` has
    more than one name. For a student, labels, ``label_thresholds``, ``taxonomy``, ``target_precision``
    and ``dataset`` come from the folder (:func:`student_card_facts`) when not given, label thresholds
    last from ``policy.json``; for a binary baseline ``thresholds`` and ``threshold_notes`` come from
    ``policy.json``."""
    folder = Path(folder)
    labels = list(labels or [])
    recorded = student_card_facts(folder)
    if student is None:
        student = bool(recorded) or len(labels) > 1
    given = {k: v for k, v in given.items() if v is not None}
    policy = read_json(folder / POLICY_FILE, missing={})
    if not student:
        for key in _STUDENT_ONLY:  # ignored for a binary baseline, as they always were
            given.pop(key, None)
        given.setdefault("thresholds", policy_facts(folder)["thresholds"])
        given.setdefault("threshold_notes", selection_notes(policy))
        return BaselineCardFacts(**given)
    given.pop("thresholds", None)  # a student has one threshold per label
    for key in ("label_thresholds", "target_precision", "dataset", "taxonomy"):
        if key in recorded:
            given.setdefault(key, recorded[key])
    labels = labels or recorded.get("labels", [])
    if "label_thresholds" not in given:
        maybe = policy.get("label_thresholds", policy)
        found = {k: maybe[k] for k in labels if is_number(maybe.get(k))}
        if found:
            given["label_thresholds"] = found
    given.setdefault("threshold_notes", selection_notes(policy))
    return StudentCardFacts(labels=tuple(labels), **given)
