"""The model card of a fine-tuned Qwen3-VL ``listing-spam`` model folder (``model_card/model_card.md``)."""

from __future__ import annotations

from pathlib import Path

from hf_spamguard.cards.facts import ModelCardFacts
from hf_spamguard.cards.render import (
    REPO_PLACEHOLDER,
    config_rows,
    dataset_md,
    eval_results,
    format_value,
    headline_metrics,
    is_hub_ref,
    metric_rows,
    render,
    result_size,
    size_str,
    write_card,
)

#: The Space of the ``listing_spam_policy`` metric the model card links to.
METRIC_SPACE = "hf-spamguard/listing_spam_policy"
#: Shown when the caller names no system prompt (cards cannot import ``prompts``).
SYSTEM_PROMPT_POINTER = "(see hf_spamguard.prompts.SYSTEM_PROMPT)"


def render_model_card(folder: str | Path, facts: ModelCardFacts) -> Path:
    """Write the model card (``README.md``) of a fine-tuned Qwen3-VL ``listing-spam`` model folder from
    ``facts`` (rendered as given: nothing is read from ``folder``; :func:`~hf_spamguard.cards.facts.
    model_card_facts` reads a folder's sidecars into facts) and return its path. ``eval_results``: the
    policy metric's output (or ``metrics.json`` of the report); nested dicts are flattened
    (``demote_precision``...) and the headline metrics go into ``model-index``.
    """
    return _write(Path(folder), facts)


def _write(folder: Path, facts: ModelCardFacts) -> Path:
    from huggingface_hub import ModelCard, ModelCardData

    if not facts.base_model:
        raise ValueError("render_model_card: base_model is required")
    base_model, dataset, results = facts.base_model, facts.dataset, facts.eval_results
    repo_id = facts.repo_id
    model_name = facts.model_name or (repo_id.split("/")[-1] if repo_id else folder.resolve().name)
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model if is_hub_ref(base_model) else None,
        datasets=[dataset] if is_hub_ref(dataset) else None,
        language=facts.language,
        license=facts.license,
        library_name="peft" if facts.adapter else "transformers",
        pipeline_tag="image-text-to-text",
        tags=["hf-spamguard", "listing-spam", "spam-detection", "content-moderation", "qwen3-vl"]
        + (["lora"] if facts.adapter else [])
        + ["custom_code"],
        metrics=list(headline_metrics(results)) or None,
        eval_results=eval_results(
            results,
            task_type="text-classification",
            task_name="Listing keyword-spam moderation",
            dataset=dataset,
            dataset_name=None,
            split=facts.eval_split,
        ),
    )
    temperature = facts.temperature
    content = render(
        "model_card",
        card_data,
        model_name=model_name,
        base_model=base_model,
        base_model_link=f"https://huggingface.co/{base_model}" if is_hub_ref(base_model) else None,
        weights_kind="LoRA adapter (peft) on the base model"
        if facts.adapter
        else "merged weights (base + LoRA)",
        dataset_md=dataset_md(dataset),
        package_version=facts.package_version,
        model_ref=repo_id or REPO_PLACEHOLDER,
        max_reason_chars=facts.max_reason_chars,
        system_prompt=facts.system_prompt or SYSTEM_PROMPT_POINTER,
        temperature_str=format_value(float(temperature)) if temperature is not None else "1 (not calibrated)",
        thresholds=dict(facts.thresholds) if facts.thresholds else None,
        threshold_notes=facts.threshold_notes,
        metrics=metric_rows(results),
        metric_space=METRIC_SPACE,
        eval_split=facts.eval_split,
        eval_size_str=size_str(facts.eval_size or result_size(results)),
        eval_note=facts.eval_note,
        training_config=config_rows(facts.training_config),
        extra_notes=facts.extra_notes,
    )
    return write_card(folder, content, ModelCard)
