"""Model, dataset, metric and baseline cards rendered from the ``model_card/`` Jinja templates.

Every function here takes plain facts (dicts, numbers, strings) so that training, ``baseline train``,
``distill``, ``publish`` and the demo can all write their card without this module importing them.
Each writes ``README.md`` in the given folder atomically and returns its path.

Evaluation results go into the card's ``model-index`` (as huggingface_hub ``EvalResult`` entries) and
into a table in the body; both come from the same flattened dictionary, so the numbers agree.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hf_spamguard.atomic import atomic_write_text

# Used in usage snippets when the card is rendered before the repo id is known; ``hub.py`` swaps it
# for the real repo id when it assembles the folder for upload.
REPO_PLACEHOLDER = "your-org/your-model"

# Metrics shown first and written into ``model-index`` (names as the policy metric reports them,
# after flattening nested dicts with "_"). When none of them is present every numeric value is used.
HEADLINE_METRICS = (
    "macro_f1",
    "accuracy",
    "roc_auc",
    "pr_auc",
    "ece",
    "brier",
    "demote_precision",
    "demote_recall",
    "flagged_recall",
    "review_load",
    "wrongly_demoted",
    "f1",
    "micro_f1",
    "agreement",
)

METRIC_PRETTY = {
    "macro_f1": "Macro-F1",
    "micro_f1": "Micro-F1",
    "f1": "F1",
    "accuracy": "Accuracy",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "ece": "ECE",
    "brier": "Brier score",
    "demote_precision": "Demote precision",
    "demote_recall": "Demote recall",
    "review_load": "Review load",
    "flagged_recall": "Spam recall (review + demote)",
    "wrongly_demoted": "Wrongly demoted",
    "agreement": "Agreement with teacher",
}

CARD_FILE = "README.md"


# --------------------------------------------------------------------------------------------- helpers
def template_dir() -> Path:
    """The folder holding the card templates.

    In a wheel they are shipped as ``hf_spamguard/model_card`` (hatch_build.py, regular wheels only); in an
    editable install they are at the repository root (``<repo>/model_card``), two levels above this file.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "model_card", here.parents[1] / "model_card"):
        if (candidate / "model_card.md").is_file():
            return candidate
    raise FileNotFoundError(
        f"card templates not found: looked in {here / 'model_card'} and {here.parents[1] / 'model_card'}"
    )


def template_path(name: str) -> Path:
    """Path of template ``name`` (``model_card``, ``dataset_card``, ``metric_card``, ``baseline_card``)."""
    path = template_dir() / f"{name}.md"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such card template")
    return path


def _render(template: str, card_data: Any, **kwargs: Any) -> str:
    # Rendered like huggingface_hub's RepoCard.from_template, but with StrictUndefined: a typo in a
    # template variable must fail loudly instead of leaving a silent blank in a published card.
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["fmt"] = format_value
    tpl = env.from_string(template_path(template).read_text(encoding="utf-8"))
    values = card_data.to_dict().copy()
    values.update(kwargs)
    return tpl.render(card_data=card_data.to_yaml(), **values).rstrip() + "\n"


def format_value(value: Any) -> str:
    """How numbers appear in card tables: floats with 4 decimals, everything else as ``str``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        import numpy as np

        if isinstance(value, np.generic):
            value = value.item()
    except ImportError:  # pragma: no cover - numpy is a core dependency
        pass
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def flatten_metrics(results: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float | int]:
    """Flatten nested metric dicts (``{"demote": {"precision": .9}}`` → ``{"demote_precision": .9}``),
    keeping numeric leaves only (booleans, strings, lists and NaN are dropped)."""
    flat: dict[str, float | int] = {}
    for key, value in (results or {}).items():
        name = f"{prefix}{key}"
        if not prefix and (key == "thresholds" or key.endswith("_threshold")):
            continue  # shown in the policy section, not a measurement
        if key == "actions" and isinstance(value, Mapping):
            # ``policy.evaluate_policy`` nests per-action stats under "actions": keep the action name
            # as the prefix ("demote_precision"), as ``policy.flatten_report`` does.
            for sub, subvalue in flatten_metrics(value, prefix=prefix).items():
                flat.setdefault(sub, subvalue)
            continue
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, prefix=f"{name}_"))
        elif _is_number(value):
            value = value.item() if hasattr(value, "item") else value
            flat[name] = value
    return flat


def headline_metrics(results: Mapping[str, Any] | None) -> dict[str, float | int]:
    """The metrics that go into ``model-index``: the :data:`HEADLINE_METRICS` present in ``results``
    (flattened), or every numeric value when none of them is present."""
    flat = flatten_metrics(results)
    chosen = {k: flat[k] for k in HEADLINE_METRICS if k in flat}
    # Per-label metrics of a multi-label student ("advertisement_f1"...) are headline too.
    chosen.update(
        {
            k: v
            for k, v in flat.items()
            if k.endswith(("_f1", "_precision", "_recall"))
            and not k.startswith(("keep_", "review_", "demote_"))  # per-action stats stay in the body table
            and k not in chosen
        }
    )
    return chosen or flat


def _metric_rows(results: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    flat = flatten_metrics(results)
    head = headline_metrics(results)
    ordered = list(head) + [k for k in flat if k not in head]
    return [(k, format_value(flat[k])) for k in ordered]


def metric_value(value: float | int) -> float | int:
    """The value written into ``model-index`` (floats rounded to 4 decimals, as in the body table)."""
    return round(float(value), 4) if isinstance(value, float) else value


def _thresholds_dict(thresholds: Any) -> dict[str, float] | None:
    if thresholds is None:
        return None
    if isinstance(thresholds, Mapping):
        if "review" not in thresholds or "demote" not in thresholds:
            raise ValueError(f"thresholds must have 'review' and 'demote', got keys {sorted(thresholds)}")
        out = {"review": float(thresholds["review"]), "demote": float(thresholds["demote"])}
    elif hasattr(thresholds, "review") and hasattr(thresholds, "demote"):
        out = {"review": float(thresholds.review), "demote": float(thresholds.demote)}
    else:
        raise TypeError(f"thresholds must be a dict or Thresholds, got {type(thresholds).__name__}")
    if not 0.0 <= out["review"] <= out["demote"] <= 1.0:
        raise ValueError(f"thresholds must satisfy 0 <= review <= demote <= 1, got {out}")
    return out


def _looks_like_hub_id(ref: str | None) -> bool:
    if not ref or os.path.exists(ref) or ref.startswith((".", "/", "~")):
        return False
    parts = ref.split("/")
    return 1 <= len(parts) <= 2 and all(p and " " not in p for p in parts)


def _config_rows(config: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    rows = []
    for key, value in (config or {}).items():
        if isinstance(value, Mapping | list | tuple):
            text = json.dumps(value, default=str)
        else:
            text = format_value(value)
        rows.append((str(key), text.replace("|", "\\|")))
    return rows


def _package_version() -> str:
    try:
        from hf_spamguard import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return ""


def _eval_results(
    results: Mapping[str, Any] | None,
    *,
    task_type: str,
    task_name: str,
    dataset: str | None,
    dataset_name: str | None,
    split: str,
) -> list[Any] | None:
    from huggingface_hub import EvalResult

    head = headline_metrics(results)
    if not head:
        return None
    dataset_type = dataset if _looks_like_hub_id(dataset) else "local"
    pretty_dataset = dataset_name or (Path(dataset).name if dataset else "listings")
    return [
        EvalResult(
            task_type=task_type,
            task_name=task_name,
            dataset_type=dataset_type,
            dataset_name=pretty_dataset,
            dataset_split=split,
            metric_type=name,
            metric_name=f"{METRIC_PRETTY.get(name, name)} ({split})",
            metric_value=metric_value(value),
        )
        for name, value in head.items()
    ]


def _dataset_md(dataset: str | None) -> str:
    if not dataset:
        return "an unrecorded dataset"
    if _looks_like_hub_id(dataset):
        return f"[`{dataset}`](https://huggingface.co/datasets/{dataset})"
    return f"`{Path(dataset).name}` (local)"


def _size_str(size: int | None, unit: str = "listings") -> str:
    return f"{size} {unit}" if size else "size not recorded"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _selection_notes(policy: Mapping[str, Any]) -> str | None:
    # ``policy.ThresholdSelection.save`` records what was relaxed under "selection" → "notes".
    notes = (
        (policy.get("selection") or {}).get("notes") if isinstance(policy.get("selection"), Mapping) else None
    )
    notes = notes or policy.get("notes")
    if isinstance(notes, list | tuple):
        notes = " ".join(str(n) for n in notes)
    return str(notes) if notes else None


def _result_size(results: Mapping[str, Any] | None) -> int | None:
    n = (results or {}).get("n")
    return int(n) if _is_number(n) else None


# --------------------------------------------------------------------------------------------- folder facts
# Training settings worth a row in a model card (keys of training_args.json).
CARD_TRAINING_ARGS = (
    "learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "lr_scheduler_type", "optim", "bf16", "gradient_checkpointing", "seed",
)  # fmt: skip

#: What training writes next to the weights (``hf_spamguard.training.run.SUMMARY_FILE``; the name is
#: repeated here because cards sits above training and must not import it).
TRAINING_SUMMARY_FILE = "training_summary.json"


def _read_json_strict(path: Path) -> dict[str, Any]:
    # Facts files are optional, but a corrupt one must be reported rather than silently give a bare card.
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc
    return data if isinstance(data, dict) else {}


def find_eval_results(folder: str | Path) -> dict[str, Any] | None:
    """Measured results saved in ``folder`` (``metrics.json`` of the report, ``eval_results.json``...)."""
    folder = Path(folder)
    for name in ("metrics.json", "eval_results.json", "policy_metrics.json"):
        data = _read_json_strict(folder / name)
        if data:
            return data.get("metrics", data) if isinstance(data.get("metrics"), dict) else data
    return None


def model_card_facts(folder: str | Path, *, adapter: bool | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`render_model_card` for a model folder, from what training wrote next
    to the weights (``training_summary.json``: base model, validation metrics, settings;
    ``training_args.json``), else from ``adapter_config.json`` / ``config.json`` and a saved metrics file.

    Training renders its card with these facts and ``hub`` re-renders from them, so the two agree.
    ``adapter`` defaults to whether the folder holds a peft adapter (``adapter_config.json``).
    """
    folder = Path(folder)
    summary = _read_json_strict(folder / TRAINING_SUMMARY_FILE)
    adapter_cfg = _read_json_strict(folder / "adapter_config.json")
    config = _read_json_strict(folder / "config.json")
    base = (
        summary.get("base_model")
        or adapter_cfg.get("base_model_name_or_path")
        or config.get("_name_or_path")
        or "not recorded"
    )
    project = summary.get("project_args") or {}
    training_args = _read_json_strict(folder / "training_args.json")
    training_config = {k: summary[k] for k in ("backend", "quantized", "device", "train_rows", "global_step",
                                                "train_loss") if k in summary}  # fmt: skip
    training_config.update(
        {k: project[k] for k in ("split_vote", "max_pixels", "reason_source") if k in project}
    )
    training_config.update({k: training_args[k] for k in CARD_TRAINING_ARGS if k in training_args})
    eval_results = summary.get("eval_metrics") or find_eval_results(folder)
    return {
        "base_model": str(base),
        "adapter": bool(adapter_cfg) if adapter is None else adapter,
        "training_config": training_config or None,
        "dataset": project.get("dataset") or None,
        "eval_results": eval_results,
        "eval_split": str(project.get("eval_split") or "validation")
        if summary.get("eval_metrics")
        else "test",
    }


# --------------------------------------------------------------------------------------------- model card
def render_model_card(
    folder: str | Path,
    *,
    base_model: str,
    adapter: bool = True,
    training_config: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    thresholds: Any = None,
    eval_results: Mapping[str, Any] | None = None,
    temperature: float | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    eval_split: str = "test",
    eval_size: int | None = None,
    threshold_notes: str | None = None,
    system_prompt: str | None = None,
    eval_note: str | None = None,
    extra_notes: str | None = None,
    license: str = "apache-2.0",
    language: str | list[str] = "en",
) -> Path:
    """Write the model card (``README.md``) of a fine-tuned Qwen3-VL ``listing-spam`` model folder.

    ``thresholds``: ``{"review": r, "demote": d}`` or a ``policy.Thresholds``; when None it is read
    from ``folder/policy.json`` if present. ``temperature``: read from ``folder/calibration.json`` when
    None. ``eval_results``: the policy metric's output (or ``metrics.json`` of the report); nested dicts
    are flattened (``demote_precision``...) and the headline metrics go into ``model-index``.
    ``adapter``: True for a peft LoRA adapter folder, False for merged weights.
    """
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    if not base_model:
        raise ValueError("render_model_card: base_model is required")
    policy = _read_json(folder / "policy.json") or {}
    if thresholds is None and {"review", "demote"} <= set(policy):
        thresholds = policy
    thresholds = _thresholds_dict(thresholds)
    threshold_notes = threshold_notes or _selection_notes(policy)
    eval_size = eval_size or _result_size(eval_results)
    if temperature is None:
        temperature = (_read_json(folder / "calibration.json") or {}).get("temperature")
    if system_prompt is None:
        try:
            from hf_spamguard.prompts import SYSTEM_PROMPT as system_prompt
        except ImportError:  # the prompt module is another issue's; the card stays renderable without it
            system_prompt = "(see hf_spamguard.prompts.SYSTEM_PROMPT)"
    try:
        from hf_spamguard.verdict import MAX_REASON_CHARS
    except ImportError:  # pragma: no cover
        MAX_REASON_CHARS = 200  # noqa: N806
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else folder.resolve().name)
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model if _looks_like_hub_id(base_model) else None,
        datasets=[dataset] if _looks_like_hub_id(dataset) else None,
        language=language,
        license=license,
        library_name="peft" if adapter else "transformers",
        pipeline_tag="image-text-to-text",
        tags=["hf-spamguard", "listing-spam", "spam-detection", "content-moderation", "qwen3-vl"]
        + (["lora"] if adapter else [])
        + ["custom_code"],
        metrics=list(headline_metrics(eval_results)) or None,
        eval_results=_eval_results(
            eval_results,
            task_type="text-classification",
            task_name="Listing keyword-spam moderation",
            dataset=dataset,
            dataset_name=None,
            split=eval_split,
        ),
    )
    content = _render(
        "model_card",
        card_data,
        model_name=model_name,
        base_model=base_model,
        base_model_link=f"https://huggingface.co/{base_model}" if _looks_like_hub_id(base_model) else None,
        weights_kind="LoRA adapter (peft) on the base model" if adapter else "merged weights (base + LoRA)",
        dataset_md=_dataset_md(dataset),
        package_version=_package_version(),
        model_ref=repo_id or REPO_PLACEHOLDER,
        max_reason_chars=MAX_REASON_CHARS,
        system_prompt=system_prompt,
        temperature_str=format_value(float(temperature)) if temperature is not None else "1 (not calibrated)",
        thresholds=thresholds,
        threshold_notes=threshold_notes,
        metrics=_metric_rows(eval_results),
        metric_space="hf-spamguard/listing_spam_policy",
        eval_split=eval_split,
        eval_size_str=_size_str(eval_size),
        eval_note=eval_note,
        training_config=_config_rows(training_config),
        extra_notes=extra_notes,
    )
    ModelCard(content)  # parses the YAML header: a malformed card fails here, not on the Hub
    return atomic_write_text(folder / CARD_FILE, content)


# --------------------------------------------------------------------------------------------- baseline card
#: What ``distill`` writes next to a student's skops files (``hf_spamguard.distill.STUDENT_FILE`` and
#: ``TAXONOMY_FILE``; the names are repeated here because distill imports cards, never the reverse).
STUDENT_FILE = "student.json"
STUDENT_TAXONOMY_FILE = "taxonomy.yaml"


def student_card_facts(folder: str | Path) -> dict[str, Any]:
    """What a student folder records about itself (``student.json`` + ``taxonomy.yaml``), as keyword
    arguments of :func:`render_baseline_card`; empty when ``folder`` is not a student folder.

    ``publish`` renders a missing card from these, so it says the same as the one ``distill`` writes."""
    folder = Path(folder)
    info = _read_json_strict(folder / STUDENT_FILE)
    if not info:
        return {}
    facts: dict[str, Any] = {"student": True, "labels": list(info.get("labels") or [])}
    if isinstance(info.get("thresholds"), Mapping):
        facts["label_thresholds"] = dict(info["thresholds"])
    if _is_number(info.get("target_precision")) or isinstance(info.get("target_precision"), Mapping):
        facts["target_precision"] = info["target_precision"]
    if info.get("trained_on"):
        facts["dataset"] = str(info["trained_on"])
    taxonomy_path = folder / STUDENT_TAXONOMY_FILE
    if taxonomy_path.is_file():
        import yaml

        try:
            taxonomy = yaml.safe_load(taxonomy_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{taxonomy_path}: invalid YAML ({exc})") from exc
        if isinstance(taxonomy, Mapping):
            facts["taxonomy"] = dict(taxonomy)
    return facts


def _example_text(taxonomy: Mapping[str, Any], labels: list[str]) -> str:
    # The taxonomy's own example of its first label, so that the snippet's input and the illustrative
    # verdict below it (first label set) agree whatever the taxonomy is.
    for lab in taxonomy.get("labels") or []:
        if isinstance(lab, Mapping) and labels and lab.get("name") == labels[0] and lab.get("examples"):
            return str(lab["examples"][0])
    return "Best pizza in town!!! Order online at www.pizzapromo.example, code SAVE20"


def _example_verdict(labels: list[str], thresholds: Mapping[str, float]) -> str:
    # An illustrative verdict in the student's real output format (verdict.make_label_verdict): the
    # first label confidently set, the others not.
    probs = {name: (0.97 if i == 0 else 0.02) for i, name in enumerate(labels)}
    flags = [n for n, p in probs.items() if p >= float(thresholds.get(n, 0.5))]
    return json.dumps({"labels": probs, "flags": flags, "reason": ""})


def render_baseline_card(
    folder: str | Path,
    *,
    dataset: str | None = None,
    thresholds: Any = None,
    eval_results: Mapping[str, Any] | None = None,
    training_config: Mapping[str, Any] | None = None,
    labels: Iterable[str] | None = None,
    label_thresholds: Mapping[str, float] | None = None,
    teacher: str | None = None,
    target_precision: float | Mapping[str, float] | None = None,
    student: bool | None = None,
    taxonomy: Mapping[str, Any] | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    eval_split: str = "test",
    eval_size: int | None = None,
    threshold_notes: str | None = None,
    task_description: str | None = None,
    eval_note: str | None = None,
    license: str = "apache-2.0",
    language: str | list[str] = "en",
) -> Path:
    """Write the card (``README.md``) of a skops baseline (binary listing spam) or of a multi-label
    student distilled with ``spamguard distill``.

    ``student``: render the student card (usage with ``load_student``, ``spamguard score``,
    ``student.json``); by default when ``folder`` holds a ``student.json`` or ``labels`` has more than
    one name. For a student, facts not given here (labels, ``label_thresholds``, ``taxonomy`` as the
    dict of ``taxonomy.yaml``, ``target_precision``, ``dataset``) are read from the folder
    (:func:`student_card_facts`); ``teacher`` None says that the teacher was not recorded. For a binary
    baseline ``thresholds`` is read from ``folder/policy.json`` when not given."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    labels = list(labels or [])
    facts = student_card_facts(folder)
    if student is None:
        student = bool(facts) or len(labels) > 1
    policy = _read_json(folder / "policy.json") or {}
    if student:
        labels = labels or facts.get("labels", [])
        if label_thresholds is None:
            label_thresholds = facts.get("label_thresholds")
        if label_thresholds is None:
            maybe = policy.get("label_thresholds", policy)
            label_thresholds = {k: maybe[k] for k in labels if _is_number(maybe.get(k))} or None
        target_precision = target_precision if target_precision is not None else facts.get("target_precision")
        dataset = dataset or facts.get("dataset")
        taxonomy = taxonomy if taxonomy is not None else facts.get("taxonomy")
    elif thresholds is None and {"review", "demote"} <= set(policy):
        thresholds = policy
    taxonomy = dict(taxonomy or {})
    item = str(taxonomy.get("item") or "review")
    task_description = task_description or f"{item} moderation"
    definitions = {
        str(lab.get("name")): " ".join(str(lab.get("definition") or "").split()).replace("|", "\\|")
        for lab in taxonomy.get("labels") or []
        if isinstance(lab, Mapping)
    }
    threshold_notes = threshold_notes or _selection_notes(policy)
    eval_size = eval_size or _result_size(eval_results)
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else folder.resolve().name)
    card_data = ModelCardData(
        model_name=model_name,
        datasets=[dataset] if _looks_like_hub_id(dataset) else None,
        language=language,
        license=license,
        library_name="sklearn",
        pipeline_tag="text-classification",
        tags=["hf-spamguard", "skops", "sklearn", "text-classification", "content-moderation"]
        + (["multi-label", "distillation"] if student else ["spam-detection", "listing-spam"]),
        metrics=list(headline_metrics(eval_results)) or None,
        eval_results=_eval_results(
            eval_results,
            task_type="text-classification",
            task_name=("Multi-label " + task_description) if student else "Listing keyword-spam moderation",
            dataset=dataset,
            dataset_name=None if dataset or not student else "teacher labels",
            split=eval_split,
        ),
    )
    try:
        from hf_spamguard.baseline import TRUSTED_TYPES as trusted_types
    except ImportError:  # pragma: no cover - the baseline module is another issue's
        trusted_types = (
            "builtins.dict",
            "numpy.ndarray",
            "sklearn.linear_model._logistic.LogisticRegression",
        )
    label_thresholds = dict(label_thresholds or {})
    content = _render(
        "baseline_card",
        card_data,
        trusted_types=json.dumps(list(trusted_types)),
        model_name=model_name,
        student=student,
        labels_md=", ".join(f"`{label}`" for label in labels),
        n_labels=len(labels),
        example_text=json.dumps(_example_text(taxonomy, labels), ensure_ascii=False),
        example_verdict=_example_verdict(labels, label_thresholds) if student else "",
        item=item,
        taxonomy_name=taxonomy.get("name") or "",
        taxonomy_description=" ".join(str(taxonomy.get("description") or "").split()),
        # a local teacher path is the labelling machine's business: name the folder only
        teacher_md=(f"`{teacher}`" if _looks_like_hub_id(teacher) else f"`{Path(teacher).name}` (local)")
        if teacher
        else None,
        task_description=task_description,
        dataset_md=_dataset_md(dataset),
        package_version=_package_version(),
        model_ref=repo_id or REPO_PLACEHOLDER,
        thresholds=_thresholds_dict(thresholds) if not student else None,
        label_thresholds=[
            (k, format_value(float(v)), definitions.get(k, "")) for k, v in label_thresholds.items()
        ],
        target_precision=(
            ", ".join(f"{k} {format_value(float(v))}" for k, v in target_precision.items())
            if isinstance(target_precision, Mapping)
            else target_precision
        ),
        threshold_notes=threshold_notes,
        metrics=_metric_rows(eval_results),
        eval_split=eval_split,
        eval_size_str=_size_str(eval_size, f"{item}s" if student else "listings"),
        eval_note=eval_note,
        training_config=_config_rows(training_config),
    )
    ModelCard(content)
    return atomic_write_text(folder / CARD_FILE, content)


# --------------------------------------------------------------------------------------------- dataset card
FEATURE_MEANINGS = {
    "product_id": "the marketplace's id of the listing (unique)",
    "description": "the seller's description, as written",
    "image": "the listing photo (embedded bytes), or None when missing",
    "image_url": "where the photo was fetched from",
    "label": "0 = not_spam, 1 = spam (moderator decision)",
    "yes_count": "moderator votes for spam",
    "no_count": "moderator votes for not spam",
    "label_confidence": "vote agreement: abs(yes − no) / (yes + no)",
}


def _feature_type(feature: Any) -> str:
    name = type(feature).__name__
    if name == "ClassLabel":
        return f"ClassLabel({', '.join(feature.names)})"
    if name == "Value":
        return feature.dtype
    return name


def _split_stats(name: str, ds: Any) -> dict[str, Any]:
    import pyarrow.compute as pc

    rows = len(ds)
    stats: dict[str, Any] = {"name": name, "rows": rows, "spam": "–", "not_spam": "–", "spam_share": "–"}
    stats.update(with_image="–", unanimous="–", _images=None, _agreement=None, _disagree=0)
    if rows == 0:
        return stats
    columns = set(ds.column_names)
    table = ds.select_columns(
        [c for c in ("label", "image", "label_confidence", "yes_count", "no_count") if c in columns]
    ).with_format("arrow")[:]
    if "label" in columns:
        spam = int(pc.sum(pc.equal(table["label"], 1)).as_py() or 0)
        stats.update(spam=spam, not_spam=rows - spam, spam_share=f"{spam / rows:.1%}")
        if {"yes_count", "no_count"} <= columns:
            yes, no = table["yes_count"], table["no_count"]
            majority = pc.if_else(pc.greater(yes, no), 1, pc.if_else(pc.less(yes, no), 0, -1))
            disagree = pc.and_(pc.not_equal(majority, -1), pc.not_equal(majority, table["label"]))
            stats["_disagree"] = int(pc.sum(disagree).as_py() or 0)
    if "image" in columns:
        col = table["image"]
        present = pc.and_(
            pc.is_valid(col),
            pc.or_(pc.is_valid(pc.struct_field(col, "bytes")), pc.is_valid(pc.struct_field(col, "path"))),
        )
        n_img = int(pc.sum(pc.fill_null(present, False)).as_py() or 0)
        stats.update(with_image=f"{n_img} ({n_img / rows:.0%})", _images=n_img)
    if "label_confidence" in columns:
        conf = table["label_confidence"]
        unanimous = int(pc.sum(pc.greater_equal(conf, 0.9999)).as_py() or 0)
        stats.update(
            unanimous=f"{unanimous} ({unanimous / rows:.0%})", _agreement=float(pc.sum(conf).as_py())
        )
    return stats


def _build_report_facts(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # The facts of a data.BuildReport dict (build_report.json) that the card shows; ids stay in the file.
    if not report:
        return None
    files = [
        {
            "file": Path(str(r.get("file", ""))).name,
            "rows": r.get("rows", "–"),
            "disagreements": len(r.get("disagreements") or []),
            "ties": len(r.get("ties") or []),
        }
        for r in report.get("label_reports") or []
    ]
    status = list(report.get("image_status") or [])
    sources: dict[str, int] = {}
    for row in status:
        if row.get("ok"):
            sources[str(row.get("source"))] = sources.get(str(row.get("source")), 0) + 1
    return {
        "files": files,
        "disagreements": sum(f["disagreements"] for f in files),
        "images_total": len(status),
        "images_available": sum(sources.values()),
        "image_sources": ", ".join(f"{k}: {v}" for k, v in sorted(sources.items())),
    }


def render_dataset_card(
    folder: str | Path,
    *,
    dataset: Any = None,
    repo_id: str | None = None,
    pretty_name: str = "Marketplace listings: keyword spam",
    summary: str | None = None,
    provenance: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    build_report: Mapping[str, Any] | None = None,
    license: str = "apache-2.0",
    language: str | list[str] = "en",
) -> Path:
    """Write the dataset card (``README.md``) of a dataset folder in the Hub layout.

    ``dataset``: the ``DatasetDict`` saved there (loaded from ``folder`` with ``datasets.load_dataset``
    when None). ``metadata``: YAML that ``load_dataset`` needs (``configs:``, ``dataset_info``), as
    ``data.save_dataset`` passes it; YAML already in the folder's card is kept otherwise, so
    ``load_dataset(folder)`` keeps finding the same splits when the card is rendered again.
    ``build_report``: the ``data.BuildReport`` as a dict (label/vote disagreements per input file, image
    availability); read from the folder's ``build_report.json`` when None.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    from hf_spamguard.data.hub_layout import BUILD_REPORT_FILENAME, IMAGE_STATUS_FILENAME

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a dataset folder")
    if dataset is None:
        import datasets

        dataset = datasets.load_dataset(str(folder))
    existing: dict[str, Any] = {}
    if (folder / CARD_FILE).is_file():
        existing = DatasetCard.load(folder / CARD_FILE, ignore_metadata_errors=True).data.to_dict()
    if build_report is None:
        build_report = _read_json_strict(folder / BUILD_REPORT_FILENAME)
    report = _build_report_facts(build_report)
    splits = [_split_stats(name, dataset[name]) for name in dataset]
    total = sum(s["rows"] for s in splits)
    n_images = [s["_images"] for s in splits if s["_images"] is not None]
    agreement = [s["_agreement"] for s in splits if s["_agreement"] is not None]
    first = dataset[next(iter(dataset))]
    features = [
        {"name": name, "type": _feature_type(feat), "meaning": FEATURE_MEANINGS.get(name, "")}
        for name, feat in first.features.items()
    ]
    size_category = next(
        (
            label
            for limit, label in (
                (1_000, "n<1K"),
                (10_000, "1K<n<10K"),
                (100_000, "10K<n<100K"),
                (1_000_000, "100K<n<1M"),
            )
            if total < limit
        ),
        "n>1M",
    )
    meta = dict(existing)
    meta.update(metadata or {})
    meta.update(
        license=license,
        language=language if isinstance(language, list) else [language],
        pretty_name=pretty_name,
        size_categories=[size_category],
        task_categories=["text-classification", "image-classification"],
        tags=sorted(
            {*meta.get("tags", []), "hf-spamguard", "spam-detection", "content-moderation", "marketplace"}
        ),
    )
    card_data = DatasetCardData(**meta)
    content = _render(
        "dataset_card",
        card_data,
        pretty_name=pretty_name,
        summary=summary
        or (
            f"{total} marketplace listings (text + photo) labelled by moderators as keyword spam or not. "
            'Keyword spam is a description stuffed with unrelated brands, hashtags or "tags:" blocks so '
            "that the item ranks in searches it does not belong in."
        ),
        dataset_ref=repo_id or "your-org/your-dataset",
        splits=splits,
        features=features,
        mean_agreement=f"{sum(agreement) / total:.3f}" if agreement and total else None,
        # the build report counts per input file and lists the ids; without one, count from the votes
        disagreements=report["disagreements"] if report else sum(s["_disagree"] for s in splits),
        build_report=report,
        build_report_file=BUILD_REPORT_FILENAME,
        image_status_file=IMAGE_STATUS_FILENAME if (folder / IMAGE_STATUS_FILENAME).is_file() else None,
        image_share=f"{sum(n_images) / total:.0%}" if n_images and total else None,
        provenance=provenance
        or "Listings and votes from the moderation team's TSV export; photos from a local folder and/or "
        "fetched from `image_url` with hf-spamguard's safe fetcher (failures recorded, not crashed on).",
        package_version=_package_version(),
    )
    DatasetCard(content)
    return atomic_write_text(folder / CARD_FILE, content)


# --------------------------------------------------------------------------------------------- metric card
def render_metric_card(
    folder: str | Path,
    *,
    repo_id: str | None = None,
    sdk: str = "gradio",
    sdk_version: str | None = None,
    app_file: str = "app.py",
    title: str = "listing_spam_policy",
) -> Path:
    """Write the Space card (``README.md`` with the Space's YAML: sdk, app_file, tags...) of the exported
    ``listing_spam_policy`` evaluate module in ``folder``.

    The metric's own documentation (the card ``metrics.export_space`` copies next to the script) is kept
    as the body, with ``evaluate.load`` snippets pointed at ``repo_id``; the template supplies the body
    only when there is none. Space metadata already in that card is kept unless set here."""
    import re

    from huggingface_hub import SpaceCard, SpaceCardData

    folder = Path(folder)
    existing: dict[str, Any] = {}
    metric_doc = None
    if (folder / CARD_FILE).is_file():
        card = SpaceCard.load(folder / CARD_FILE, ignore_metadata_errors=True)
        existing = card.data.to_dict()
        metric_doc = card.text.strip() or None
    ref = repo_id or title
    if metric_doc:
        metric_doc = re.sub(r'evaluate\.load\("[^"]*"\)', f'evaluate.load("{ref}")', metric_doc)
    meta: dict[str, Any] = {
        "emoji": "🛡️",
        "colorFrom": "indigo",
        "colorTo": "green",
        "pinned": False,
        "license": "apache-2.0",
        "short_description": "Keep/review/demote policy metric for spam moderation",
        "description": "Evaluates a keep / review / demote moderation policy from spam confidences.",
        **existing,
    }
    meta.update(title=title, sdk=sdk, app_file=app_file)
    if sdk_version:
        meta["sdk_version"] = sdk_version
    meta["tags"] = list(dict.fromkeys([*meta.get("tags", []), "evaluate", "metric", "hf-spamguard"]))
    card_data = SpaceCardData(**meta)
    content = _render(
        "metric_card",
        card_data,
        metric_ref=ref,
        metric_doc=metric_doc,
        module_file=f"{title}.py",
        package_version=_package_version(),
    )
    SpaceCard(content)
    return atomic_write_text(folder / CARD_FILE, content)
