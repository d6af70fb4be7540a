"""Cards of skops models (``model_card/baseline_card.md``): the binary listing baseline and the
multi-label review student distilled with ``spamguard distill``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hf_spamguard.cards.facts import BaselineCardFacts, CardFacts, StudentCardFacts
from hf_spamguard.cards.render import (
    REPO_PLACEHOLDER,
    config_rows,
    dataset_md,
    eval_results,
    format_value,
    headline_metrics,
    is_hub_ref,
    local_or_hub_md,
    metric_rows,
    render,
    result_size,
    size_str,
    write_card,
)

#: Input of the student's usage snippet when the taxonomy has no example of its first label.
DEFAULT_EXAMPLE_TEXT = "Best pizza in town!!! Order online at www.pizzapromo.example, code SAVE20"


def render_baseline_card(folder: str | Path, facts: BaselineCardFacts | StudentCardFacts) -> Path:
    """Write the card (``README.md``) of a skops baseline (binary listing spam) from ``facts``, or of a
    student when ``facts`` is a :class:`StudentCardFacts` (:func:`render_student_card`); return its path.
    :func:`~hf_spamguard.cards.facts.baseline_card_facts` reads a folder's records into facts.
    ``trusted_types`` None leaves the trust list out of the snippet."""
    if isinstance(facts, StudentCardFacts):
        return render_student_card(folder, facts)
    return _write(Path(folder), facts, student=None)


def render_student_card(folder: str | Path, facts: StudentCardFacts) -> Path:
    """Write the card (``README.md``) of a multi-label review student from ``facts`` (usage with
    ``load_student``, ``spamguard score``, ``student.json``); return its path. ``facts.teacher`` None says
    that the teacher was not recorded."""
    return _write(Path(folder), facts, student=facts)


def _example_text(taxonomy: Mapping[str, Any], labels: Sequence[str]) -> str:
    # The taxonomy's own example of its first label, so that the snippet's input and the illustrative
    # verdict below it (first label set) agree whatever the taxonomy is.
    for lab in taxonomy.get("labels") or []:
        if isinstance(lab, Mapping) and labels and lab.get("name") == labels[0] and lab.get("examples"):
            return str(lab["examples"][0])
    return DEFAULT_EXAMPLE_TEXT


def _example_verdict(labels: Sequence[str], thresholds: Mapping[str, float]) -> str:
    # An illustrative verdict in the student's real output format (verdict.make_label_verdict): the
    # first label confidently set, the others not.
    probs = {name: (0.97 if i == 0 else 0.02) for i, name in enumerate(labels)}
    flags = [n for n, p in probs.items() if p >= float(thresholds.get(n, 0.5))]
    return json.dumps({"labels": probs, "flags": flags, "reason": ""})


def _student_values(student: StudentCardFacts) -> dict[str, Any]:
    """Template variables only a student card has (empty ones for the binary card)."""
    labels = list(student.labels)
    taxonomy = dict(student.taxonomy or {})
    item = str(taxonomy.get("item") or "review")
    definitions = {
        str(lab.get("name")): " ".join(str(lab.get("definition") or "").split()).replace("|", "\\|")
        for lab in taxonomy.get("labels") or []
        if isinstance(lab, Mapping)
    }
    label_thresholds = dict(student.label_thresholds or {})
    target = student.target_precision
    return {
        "labels_md": ", ".join(f"`{label}`" for label in labels),
        "n_labels": len(labels),
        "example_text": json.dumps(_example_text(taxonomy, labels), ensure_ascii=False),
        "example_verdict": _example_verdict(labels, label_thresholds),
        "item": item,
        "taxonomy_name": taxonomy.get("name") or "",
        "taxonomy_description": " ".join(str(taxonomy.get("description") or "").split()),
        # a local teacher path is the labelling machine's business: name the folder only
        "teacher_md": local_or_hub_md(student.teacher) if student.teacher else None,
        "task_description": student.task_description or f"{item} moderation",
        "label_thresholds": [
            (k, format_value(float(v)), definitions.get(k, "")) for k, v in label_thresholds.items()
        ],
        "target_precision": (
            ", ".join(f"{k} {format_value(float(v))}" for k, v in target.items())
            if isinstance(target, Mapping)
            else target
        ),
    }


_BINARY_VALUES: dict[str, Any] = {
    "labels_md": "",
    "n_labels": 0,
    "example_text": json.dumps(DEFAULT_EXAMPLE_TEXT),
    "example_verdict": "",
    "item": "review",
    "taxonomy_name": "",
    "taxonomy_description": "",
    "teacher_md": None,
    "task_description": "review moderation",
    "label_thresholds": [],
    "target_precision": None,
}


def _write(folder: Path, facts: CardFacts, *, student: StudentCardFacts | None) -> Path:
    from huggingface_hub import ModelCard, ModelCardData

    values = _student_values(student) if student else dict(_BINARY_VALUES)
    results, dataset, repo_id = facts.eval_results, facts.dataset, facts.repo_id
    model_name = facts.model_name or (repo_id.split("/")[-1] if repo_id else folder.resolve().name)
    trusted_types = getattr(facts, "trusted_types", None)
    card_data = ModelCardData(
        model_name=model_name,
        datasets=[dataset] if is_hub_ref(dataset) else None,
        language=facts.language,
        license=facts.license,
        library_name="sklearn",
        pipeline_tag="text-classification",
        tags=["hf-spamguard", "skops", "sklearn", "text-classification", "content-moderation"]
        + (["multi-label", "distillation"] if student else ["spam-detection", "listing-spam"]),
        metrics=list(headline_metrics(results)) or None,
        eval_results=eval_results(
            results,
            task_type="text-classification",
            task_name=("Multi-label " + values["task_description"])
            if student
            else "Listing keyword-spam moderation",
            dataset=dataset,
            dataset_name=None if dataset or not student else "teacher labels",
            split=facts.eval_split,
        ),
    )
    content = render(
        "baseline_card",
        card_data,
        trusted_types=json.dumps(list(trusted_types)) if trusted_types is not None else None,
        model_name=model_name,
        student=bool(student),
        dataset_md=dataset_md(dataset),
        package_version=facts.package_version,
        model_ref=repo_id or REPO_PLACEHOLDER,
        thresholds=dict(facts.thresholds) if facts.thresholds and not student else None,
        threshold_notes=facts.threshold_notes,
        metrics=metric_rows(results),
        eval_split=facts.eval_split,
        eval_size_str=size_str(
            facts.eval_size or result_size(results), f"{values['item']}s" if student else "listings"
        ),
        eval_note=facts.eval_note,
        training_config=config_rows(facts.training_config),
        **values,
    )
    return write_card(folder, content, ModelCard)
