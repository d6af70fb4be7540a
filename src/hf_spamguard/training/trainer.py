"""The TRL ``SFTTrainer`` subclass used for fine-tuning, and its evaluation by the scoring pass.

Two things are added to TRL's trainer:

- per-example loss weights (split-vote rows down-weighted), carried from the dataset's ``weight`` column
  through the collator as ``sample_weight``;
- evaluation with the policy metric: besides the eval loss, every evaluation runs the scoring pass
  (label probabilities read from the logits after the forced JSON prefix, never generated text) over the
  evaluation rows and logs ROC-AUC, PR-AUC, macro-F1, ECE and Brier score as ``eval_<name>``, so that
  ``metric_for_best_model`` / early stopping can use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from trl import SFTTrainer

#: Metrics of the scoring pass logged at each evaluation (keys of ``policy.evaluate_policy``).
POLICY_METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "macro_f1", "accuracy", "ece", "brier")


class WeightedCollator:
    """Wraps a collator: pops each example's ``weight`` (default 1) and adds a ``sample_weight`` tensor.

    With ``inline_images`` the images are put back into the messages first (Unsloth's collator reads them
    from there).
    """

    def __init__(self, inner: Any, *, inline_images: bool = False) -> None:
        self.inner = inner
        self.inline_images = inline_images

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        weights = [float(ex.pop("weight", 1.0)) for ex in examples]
        if self.inline_images:
            from trl.data_utils import prepare_multimodal_messages

            examples = [
                {"messages": prepare_multimodal_messages(ex["messages"], images=ex.get("images") or [])}
                for ex in examples
            ]
        batch = self.inner(examples)
        # Always present (ones included): every DDP rank must take the same loss path, since the paths'
        # metric gathers are collectives.
        batch["sample_weight"] = torch.tensor(weights, dtype=torch.float32)
        return batch


class _LazyImages:
    """The ``image`` column of a dataset, decoded only for the rows asked for (a slice per batch)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds.select_columns(["image"])

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: slice) -> list[Any]:
        return list(self.ds[index]["image"])


class EvalRows:
    """The evaluation rows the scoring pass reads: descriptions, images (or ``None``) and 0/1 labels.

    ``images`` is anything sliceable: a list, or the dataset's image column decoded per batch (photos of
    a large validation split are never all in memory at once).
    """

    def __init__(self, descriptions: Sequence[str], images: Any, labels: Sequence[int]) -> None:
        if not len(descriptions) == len(images) == len(labels):
            raise ValueError("descriptions, images and labels must have the same length")
        self.descriptions = list(descriptions)
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.descriptions)

    @classmethod
    def from_dataset(cls, ds: Any) -> EvalRows:
        images = _LazyImages(ds) if "image" in ds.column_names else [None] * len(ds)
        return cls(ds["description"], images, ds["label"])


def label_logit_diffs(
    model: Any,
    processor: Any,
    rows: EvalRows,
    *,
    batch_size: int = 8,
    prompt_config: Any = None,
    desc: str = "scoring",
    progress: bool = True,
) -> np.ndarray:
    """``logit(true) - logit(false)`` after the forced answer prefix, for each row (the scoring pass).

    The same computation as the ``listing-spam`` pipeline: the batch is encoded by
    ``scoring.encode_listings`` (which the pipeline uses too) and scored by ``scoring.score_batch``
    without reasons.
    """
    from tqdm.auto import tqdm

    from hf_spamguard.scoring import encode_listings, label_tokens, score_batch

    tokenizer = getattr(processor, "tokenizer", processor)
    tokens = label_tokens(tokenizer)
    was_training = model.training
    model.eval()
    diffs: list[float] = []
    try:
        with torch.no_grad():
            starts = range(0, len(rows), batch_size)
            for start in tqdm(
                starts, desc=desc, unit="batch", leave=False, disable=not progress or len(starts) < 4
            ):
                end = start + batch_size
                inputs = encode_listings(
                    processor, rows.descriptions[start:end], rows.images[start:end], prompt_config
                )
                out = score_batch(model, tokenizer, inputs, reason=False, tokens=tokens)
                diffs.extend(out["logit_diff"])
    finally:
        if was_training:
            model.train()
    return np.asarray(diffs, dtype=np.float64)


def policy_metrics(labels: np.ndarray, confidences: np.ndarray) -> dict[str, float]:
    """The policy metric at the argmax (thresholds 0.5 / 0.5): threshold-free scores and macro-F1."""
    from hf_spamguard.policy import Thresholds, evaluate_policy

    report = evaluate_policy(labels, confidences, Thresholds(review=0.5, demote=0.5))
    out = {}
    for key in POLICY_METRICS:
        value = report.get(key)
        # An undefined score (one class only in a tiny split) is logged as NaN rather than dropped, so
        # that metric_for_best_model always finds its key.
        out[key] = float("nan") if value is None else float(value)
    return out


def _refuse_other_losses(args: Any, kwargs: dict[str, Any]) -> None:
    """The weighted loss below is TRL's token NLL; refuse settings that would swap in another loss,
    rather than ignore them silently."""
    problems = []
    loss_type = getattr(args, "loss_type", "nll")
    if loss_type not in (None, "nll"):
        problems.append(f"loss_type={loss_type!r}")
    if getattr(args, "label_smoothing_factor", 0.0):
        problems.append(f"label_smoothing_factor={args.label_smoothing_factor}")
    if kwargs.get("compute_loss_func") is not None:
        problems.append("compute_loss_func")
    if problems:
        raise ValueError(
            f"{', '.join(problems)}: not supported by hf-spamguard's trainer, whose loss is the token "
            "negative log-likelihood weighted per row by rater agreement (label_confidence); remove the "
            "setting, or train with TRL's SFTTrainer directly"
        )


class SpamGuardSFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` with loss weights and the scoring-pass evaluation (see module docstring)."""

    def __init__(
        self,
        *args: Any,
        score_rows: EvalRows | None = None,
        score_batch_size: int = 8,
        prompt_config: Any = None,
        inline_images: bool = False,
        **kwargs: Any,
    ) -> None:
        _refuse_other_losses(kwargs.get("args") or (args[1] if len(args) > 1 else None), kwargs)
        super().__init__(*args, **kwargs)
        # Wrapped after TRL built (or received) its collator, so that its pad-token and chat-template set-up
        # stays TRL's own.
        self.data_collator = WeightedCollator(self.data_collator, inline_images=inline_images)
        self.score_rows = score_rows
        self.score_batch_size = score_batch_size
        self.prompt_config = prompt_config
        self.last_logit_diffs: np.ndarray | None = None

    # -- loss weights ------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        weights = inputs.pop("sample_weight", None)
        if weights is None or return_outputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)
        per_token_loss = -outputs.log_probs  # (batch, seq - 1), zero on ignored positions
        w = weights.to(per_token_loss.device, per_token_loss.dtype).unsqueeze(1)
        num_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
        # Same normalisation as TRL's (tokens of the whole batch): a weight w < 1 makes that row's tokens
        # count w times as much, without changing the scale of the loss of agreed rows.
        loss = (per_token_loss * w).sum() / torch.as_tensor(num_tokens).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        # Same gathers in the same order as TRL's compute_loss (they are collectives under DDP).
        num_valid = self.accelerator.gather_for_metrics(outputs.label_mask.sum()).sum()
        entropy_sum = self.accelerator.gather_for_metrics(outputs.entropy.detach().sum()).sum()
        num_correct = self.accelerator.gather_for_metrics(outputs.is_top1.sum()).sum()
        self._metrics[mode]["entropy"].append((entropy_sum / num_valid).item() if num_valid > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append(
            (num_correct / num_valid).item() if num_valid > 0 else 0.0
        )
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss

    # -- evaluation with the scoring pass ------------------------------------------------------------
    def score(self, rows: EvalRows | None = None, *, desc: str = "scoring") -> np.ndarray:
        """Logit differences of ``rows`` (default: the evaluation rows) with the current model.

        Every process scores all rows, in lockstep: sharded models (ZeRO-3, FSDP) need every rank in each
        forward pass, and the result is then identical on all ranks without a gather.
        """
        rows = rows if rows is not None else self.score_rows
        if rows is None or len(rows) == 0:
            return np.zeros(0)
        model = self.model
        return label_logit_diffs(
            model,
            self.processing_class,
            rows,
            batch_size=self.score_batch_size,
            prompt_config=self.prompt_config,
            desc=desc,
            progress=not self.args.disable_tqdm,
        )

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):  # noqa: ANN001
        output = super().evaluation_loop(
            dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
        )
        if self.score_rows is not None and len(self.score_rows) and metric_key_prefix.startswith("eval"):
            diffs = self.score(desc="eval scoring")
            self.last_logit_diffs = diffs
            confidences = 1.0 / (1.0 + np.exp(-diffs))
            for key, value in policy_metrics(self.score_rows.labels, confidences).items():
                output.metrics[f"{metric_key_prefix}_{key}"] = value
        return output
