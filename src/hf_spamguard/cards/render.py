"""Template lookup, strict rendering and the value formatting shared by every card.

Templates are the ``model_card/*.md`` files: at the repository root in an editable install, shipped as
``hf_spamguard/model_card`` in a regular wheel (``hatch_build.py``). They are rendered with
``StrictUndefined``, so a typo in a template variable fails loudly instead of leaving a silent blank in
a published card.

Evaluation results go into the card's ``model-index`` (as huggingface_hub ``EvalResult`` entries) and
into a table in the body; both come from :func:`flatten_metrics`, so the numbers agree.

Layer 1: imports nothing of the package above layer 0.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hf_spamguard.atomic import atomic_write_text
from hf_spamguard.files import CARD_FILE
from hf_spamguard.hub_io import is_repo_id

#: Used in usage snippets when the card is rendered before the repo id is known; ``publish`` swaps it
#: for the real repo id when it assembles the folder for upload.
REPO_PLACEHOLDER = "your-org/your-model"

#: Metrics shown first and written into ``model-index`` (names as the policy metric reports them,
#: after flattening nested dicts with "_"). When none of them is present every numeric value is used.
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

# The package folder (hf_spamguard/) and, in an editable install, the repository root above src/.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------- templates
def template_dir() -> Path:
    """The folder holding the card templates.

    In a wheel they are shipped as ``hf_spamguard/model_card`` (hatch_build.py, regular wheels only); in an
    editable install they are at the repository root (``<repo>/model_card``), two levels above the package.
    """
    candidates = (_PACKAGE_DIR / "model_card", _PACKAGE_DIR.parents[1] / "model_card")
    for candidate in candidates:
        if (candidate / "model_card.md").is_file():
            return candidate
    raise FileNotFoundError(f"card templates not found: looked in {candidates[0]} and {candidates[1]}")


def template_path(name: str) -> Path:
    """Path of template ``name`` (``model_card``, ``dataset_card``, ``metric_card``, ``baseline_card``)."""
    path = template_dir() / f"{name}.md"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such card template")
    return path


def render(template: str, card_data: Any, **values: Any) -> str:
    """Render template ``template`` with ``card_data`` (a huggingface_hub ``CardData``: its YAML is the
    front matter, its fields are template variables too) and ``values``; a variable the template uses
    but nobody passed raises ``jinja2.UndefinedError``."""
    # Rendered like huggingface_hub's RepoCard.from_template, but with StrictUndefined.
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["fmt"] = format_value
    tpl = env.from_string(template_path(template).read_text(encoding="utf-8"))
    variables = card_data.to_dict().copy()
    variables.update(values)
    return tpl.render(card_data=card_data.to_yaml(), **variables).rstrip() + "\n"


def write_card(folder: str | Path, content: str, card_class: Any) -> Path:
    """Check that ``content`` parses as ``card_class`` (``ModelCard``, ``DatasetCard``, ``SpaceCard``: a
    malformed YAML header fails here, not on the Hub), then write it as ``folder/README.md`` atomically."""
    card_class(content)
    return atomic_write_text(Path(folder) / CARD_FILE, content)


# --------------------------------------------------------------------------------------------- values
def format_value(value: Any) -> str:
    """How numbers appear in card tables: floats with 4 decimals, everything else as ``str``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def is_number(value: Any) -> bool:
    """A real number (NumPy scalars included), not a boolean and not NaN."""
    if isinstance(value, bool):
        return False
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
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
        elif is_number(value):
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


def metric_rows(results: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(name, formatted value)`` rows of the body's results table: headline metrics first."""
    flat = flatten_metrics(results)
    head = headline_metrics(results)
    ordered = list(head) + [k for k in flat if k not in head]
    return [(k, format_value(flat[k])) for k in ordered]


def metric_value(value: float | int) -> float | int:
    """The value written into ``model-index`` (floats rounded to 4 decimals, as in the body table)."""
    return round(float(value), 4) if isinstance(value, float) else value


def result_size(results: Mapping[str, Any] | None) -> int | None:
    """How many items the results were measured on (their ``n``), if recorded."""
    n = (results or {}).get("n")
    return int(n) if is_number(n) else None


def config_rows(config: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(setting, value)`` rows of the training table (nested values as JSON, pipes escaped)."""
    rows = []
    for key, value in (config or {}).items():
        if isinstance(value, Mapping | list | tuple):
            text = json.dumps(value, default=str)
        else:
            text = format_value(value)
        rows.append((str(key), text.replace("|", "\\|")))
    return rows


def size_str(size: int | None, unit: str = "listings") -> str:
    """``"45 listings"``, or that the size was not recorded."""
    return f"{size} {unit}" if size else "size not recorded"


# --------------------------------------------------------------------------------------------- Hub refs
def is_hub_ref(ref: str | None) -> bool:
    """``ref`` names a Hub repo for card metadata (``base_model``, ``datasets``, links), not a local path.

    The repo-id rule is :func:`hf_spamguard.hub_io.is_repo_id`, with bare canonical names (``gpt2``)
    accepted since a card may name such a base model; a path that exists here is local whatever its form.
    """
    return bool(ref) and not os.path.exists(ref) and is_repo_id(ref, allow_canonical=True)


def local_or_hub_md(ref: str) -> str:
    """``ref`` as card text: the Hub id in backticks, or a local folder's name only (its path on the
    machine that wrote the card is nobody's business) marked ``(local)``."""
    return f"`{ref}`" if is_hub_ref(ref) else f"`{Path(ref).name}` (local)"


def dataset_md(dataset: str | None) -> str:
    """The training / evaluation data as card text: a link to a Hub dataset, or a local folder's name."""
    if not dataset:
        return "an unrecorded dataset"
    if is_hub_ref(dataset):
        return f"[`{dataset}`](https://huggingface.co/datasets/{dataset})"
    return f"`{Path(dataset).name}` (local)"


def eval_results(
    results: Mapping[str, Any] | None,
    *,
    task_type: str,
    task_name: str,
    dataset: str | None,
    dataset_name: str | None,
    split: str,
) -> list[Any] | None:
    """The ``model-index`` entries (huggingface_hub ``EvalResult``) of the headline metrics, or None."""
    from huggingface_hub import EvalResult

    head = headline_metrics(results)
    if not head:
        return None
    dataset_type = dataset if dataset and is_hub_ref(dataset) else "local"
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
