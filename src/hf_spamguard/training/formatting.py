"""Dataset rows → SFT conversations.

Every conversation comes from :func:`hf_spamguard.prompts.build_messages`, the same builder inference
uses, with the assistant target ``{"is_spam": ..., "reason": "..."}``. The reason is a real one: a
teacher's (a dataset column) or the TF-IDF baseline's explanation of the row, never a placeholder.

Conversations are built lazily (``Dataset.with_transform``): photos are decoded and resized per batch
instead of being re-encoded into a second Arrow table, which is what TRL does for vision datasets too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:
    import datasets

    from hf_spamguard.prompts import PromptConfig

#: Columns added to the listing dataset before the lazy transform.
REASON_COLUMN = "sft_reason"
WEIGHT_COLUMN = "sft_weight"


def split_vote_weight(label_confidence: float | None, mode: str, min_weight: float = 0.2) -> float | None:
    """Loss weight of a row from its moderator agreement; ``None`` means "drop the row".

    ``label_confidence`` is |yes - no| / (yes + no): 1 when moderators agreed, lower on split votes. A missing
    value (no vote counts) counts as agreement.
    """
    if label_confidence is None or label_confidence >= 1.0 or mode == "keep":
        return 1.0
    if mode == "drop":
        return None
    if mode == "downweight":
        return max(float(label_confidence), float(min_weight))
    raise ValueError(f"split_vote: expected keep, downweight or drop, got {mode!r}")


def fit_reason_baseline(texts: Sequence[str], labels: Sequence[int]) -> Any:
    """A :class:`~hf_spamguard.baseline.BaselineClassifier` fitted for reasons only.

    Only its evidence and top terms reach the reasons (never its probabilities), so one C and two folds
    are enough.
    """
    from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments

    return BaselineClassifier().fit(
        ["" if t is None else str(t) for t in texts],
        [int(y) for y in labels],
        BaselineTrainingArguments(Cs=(1.0,), cv=2, seed=0),
    )


def baseline_reasons(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    baseline: Any = None,
    fit_texts: Sequence[str] | None = None,
    fit_labels: Sequence[int] | None = None,
    evidence_only: bool = False,
) -> list[str]:
    """The baseline's explanation of each text *for its gold label*: the reason in the assistant target.

    The explanation is asked on the label's side (spam evidence for a spam row, "reads as an item
    description" for a clean one), so the reason never argues against the label the model is taught.
    ``baseline`` is a fitted :class:`~hf_spamguard.baseline.BaselineClassifier`; without one, a baseline
    is fitted on ``fit_texts`` / ``fit_labels`` (the training split: never evaluation rows). With
    ``evidence_only`` no baseline is needed: the reasons come from the baseline's evidence rules
    (brands after a marker, hashtag runs...) without its learnt top terms.
    """
    from hf_spamguard.baseline import reason_for

    if len(texts) != len(labels):
        raise ValueError(f"baseline_reasons: {len(texts)} texts but {len(labels)} labels")
    if baseline is None and not evidence_only:
        if fit_texts is None or fit_labels is None:
            raise ValueError(
                "baseline_reasons: pass a fitted baseline, fit_texts and fit_labels, or evidence_only"
            )
        baseline = fit_reason_baseline(fit_texts, fit_labels)
    reasons = []
    rows = tqdm(
        zip(texts, labels, strict=True), total=len(texts), desc="reasons", unit="row", leave=False,
        disable=len(texts) < 500,
    )  # fmt: skip
    for text, label in rows:
        confidence = 1.0 if int(label) == 1 else 0.0
        if evidence_only:
            reason = reason_for(text or "", confidence)
        else:
            reason = baseline.explain(text or "", confidence)
        reasons.append(str(reason or "").strip())
    empty = [i for i, r in enumerate(reasons) if not r]
    if empty:
        raise ValueError(
            f"the baseline gave an empty explanation for {len(empty)} rows (first: row {empty[0]})"
        )
    return reasons


def _image_from_part(part: dict[str, Any]) -> Any:
    for key in ("image", "url", "path", "image_url"):
        if part.get(key) is not None:
            return part[key]
    return None


def to_conversation(
    description: str,
    image: Any,
    *,
    is_spam: bool,
    reason: str,
    prompt_config: PromptConfig | None = None,
    tokenizer: Any = None,
) -> dict[str, Any]:
    """One training conversation: ``{"messages": [...], "images": [...]}`` in TRL's vision format.

    Image parts produced by the prompt builder become ``{"type": "image"}`` placeholders and the image goes
    to ``images`` (TRL puts it back in place); a text-only listing has ``images == []``.
    """
    from hf_spamguard.data.images import load_image
    from hf_spamguard.prompts import build_messages

    messages = build_messages(
        description,
        image,
        answer={"is_spam": bool(is_spam), "reason": reason},
        config=prompt_config,
        tokenizer=tokenizer,
        load_image=load_image,
    )
    images: list[Any] = []
    normalised = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        else:
            parts = []
            for part in content or []:
                if part.get("type") == "image":
                    img = _image_from_part(part)
                    if img is None:  # a placeholder already: keep it unfilled only if an image exists
                        continue
                    images.append(img)
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": part.get("text", "")})
        normalised.append({"role": message["role"], "content": parts})
    if not normalised or normalised[-1]["role"] != "assistant":
        raise ValueError("build_messages(answer=...) did not end with the assistant turn")
    return {"messages": normalised, "images": images}


def add_training_columns(
    ds: datasets.Dataset,
    reasons: Sequence[str],
    *,
    split_vote: str = "downweight",
    min_weight: float = 0.2,
) -> datasets.Dataset:
    """Add the reason and loss-weight columns; drop split-vote rows when ``split_vote == "drop"``."""
    if len(reasons) != len(ds):
        raise ValueError(f"got {len(reasons)} reasons for {len(ds)} rows")
    confidences: Iterable[Any] = (
        ds["label_confidence"] if "label_confidence" in ds.column_names else [None] * len(ds)
    )
    weights = [split_vote_weight(c, split_vote, min_weight) for c in confidences]
    ds = ds.add_column(REASON_COLUMN, [str(r) for r in reasons])
    ds = ds.add_column(WEIGHT_COLUMN, [1.0 if w is None else float(w) for w in weights])
    keep = [i for i, w in enumerate(weights) if w is not None]
    if len(keep) < len(ds):
        ds = ds.select(keep)
    if len(ds) == 0:
        raise ValueError("no training rows left after dropping split-vote rows")
    return ds


def conversation_transform(prompt_config: PromptConfig | None = None, tokenizer: Any = None):
    """A ``Dataset.with_transform`` function: listing rows (with the training columns) → conversations.

    Pass the model's ``tokenizer`` so that the description's token budget is applied as at inference.
    """

    def transform(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        n = len(batch["description"])
        images = batch.get("image") or [None] * n
        out: dict[str, list[Any]] = {"messages": [], "images": [], "weight": []}
        for i in range(n):
            conv = to_conversation(
                batch["description"][i] or "",
                images[i],
                is_spam=bool(batch["label"][i]),
                reason=batch[REASON_COLUMN][i],
                prompt_config=prompt_config,
                tokenizer=tokenizer,
            )
            out["messages"].append(conv["messages"])
            out["images"].append(conv["images"])
            out["weight"].append(float(batch[WEIGHT_COLUMN][i]))
        return out

    return transform


def as_sft_dataset(
    ds: datasets.Dataset, prompt_config: PromptConfig | None = None, *, tokenizer: Any = None
) -> datasets.Dataset:
    """Lazily formatted view of ``ds``: rows read as ``{"messages", "images", "weight"}``."""
    missing = [c for c in ("description", "label", REASON_COLUMN, WEIGHT_COLUMN) if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"dataset is missing column(s) {', '.join(missing)} (call add_training_columns first)"
        )
    return ds.with_transform(conversation_transform(prompt_config, tokenizer))
