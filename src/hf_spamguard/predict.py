"""``spamguard predict``: score a dataset split with a baseline or VLM model folder → JSON Lines.

Each output line is ``{"id", "is_spam", "confidence", "reason", "decision"}`` (``decision`` when the
model folder has a ``policy.json``) plus ``"label"`` when the input has one, in input order. The file
is written to a temporary sibling and renamed, so a crash never leaves a half-written prediction file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_spamguard.atomic import atomic_path
from hf_spamguard.verdict import validate_verdict


@dataclass
class PredictionSummary:
    """What :func:`predict_to_jsonl` wrote."""

    out: Path = field(metadata={"help": "The JSON Lines file."})
    n: int = field(metadata={"help": "Rows written."})
    model_kind: str = field(metadata={"help": "'baseline' or 'vlm'."})
    decisions: dict[str, int] = field(default_factory=dict, metadata={"help": "Rows per decision."})


def _label_of(row: dict[str, Any]) -> int | None:
    label = row.get("label")
    if label is None or isinstance(label, bool):
        return None if label is None else int(label)
    try:
        value = int(label)
    except (TypeError, ValueError):
        return None
    return value if value in (0, 1) else None  # -1 = unlabelled in `datasets` ClassLabel convention


def _rows(ds: Any, columns: list[str], batch_size: int) -> Iterator[dict[str, Any]]:
    present = [c for c in columns if c in ds.column_names]
    view = ds.select_columns(present)
    for batch in view.iter(batch_size=batch_size):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys), strict=True):
            yield dict(zip(keys, values, strict=True))


def _verdicts_baseline(
    model_dir: Path, ds: Any, batch_size: int, reason: bool
) -> Iterator[tuple[dict, dict]]:
    from hf_spamguard.baseline import BaselineClassifier

    model = BaselineClassifier.from_pretrained(model_dir)
    if model.multilabel:
        raise ValueError(f"{model_dir}: a multi-label baseline cannot write listing-spam predictions")
    buffer: list[dict[str, Any]] = []

    def flush() -> Iterator[tuple[dict, dict]]:
        texts = [r.get("description") or "" for r in buffer]
        # batch_size is the rows read per step; the baseline scores in its own (larger) chunks
        verdicts = model(texts, reason=reason)
        yield from zip(buffer, verdicts, strict=True)
        buffer.clear()

    for row in _rows(ds, ["product_id", "description", "label"], batch_size):
        buffer.append(row)
        if len(buffer) >= max(batch_size, 1) * 8:
            yield from flush()
    if buffer:
        yield from flush()


def _verdicts_vlm(model_dir: Path, ds: Any, batch_size: int, reason: bool) -> Iterator[tuple[dict, dict]]:
    from hf_spamguard.pipeline import load_pipeline

    pipe = load_pipeline(model_dir, batch_size=batch_size)
    buffer: list[dict[str, Any]] = []

    def flush() -> Iterator[tuple[dict, dict]]:
        inputs = [{"text": r.get("description") or "", "image": r.get("image")} for r in buffer]
        verdicts = pipe(inputs, batch_size=batch_size, reason=reason)
        if isinstance(verdicts, dict):
            verdicts = [verdicts]
        yield from zip(buffer, verdicts, strict=True)
        buffer.clear()

    for row in _rows(ds, ["product_id", "description", "image", "label"], batch_size):
        buffer.append(row)
        if len(buffer) >= max(batch_size, 1) * 4:
            yield from flush()
    if buffer:
        yield from flush()


def model_kind(model_dir: str | os.PathLike[str]) -> str:
    """``"baseline"`` for a spamguard-baseline folder, ``"vlm"`` for anything with a config.json.

    ``model_dir`` may be a Hub repo id (``"org/name"``): it is downloaded once into the Hugging Face cache.
    """
    from hf_spamguard.baseline import is_baseline_folder
    from hf_spamguard.hub_io import local_folder

    path = local_folder(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model folder")
    if is_baseline_folder(path):
        return "baseline"
    if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
        return "vlm"
    raise ValueError(f"{model_dir}: not a model folder (no config.json / adapter_config.json)")


def predict_to_jsonl(
    model_dir: str | os.PathLike[str],
    source: Any,
    *,
    split: str | None = "test",
    out: str | os.PathLike[str],
    batch_size: int = 256,
    reason: bool = True,
) -> PredictionSummary:
    """Score ``source`` (a built dataset folder, a TSV, a Hub id, or a ``datasets.Dataset``) with the model
    in ``model_dir`` (a folder or a Hub repo id) and write JSON Lines to ``out`` atomically."""
    from tqdm.auto import tqdm

    from hf_spamguard.hub_io import local_folder

    # Resolved once: both the kind check and the scorer then read the same (downloaded) snapshot.
    model_dir = local_folder(model_dir)
    kind = model_kind(model_dir)
    if hasattr(source, "column_names"):
        ds = source
    else:
        from hf_spamguard.data import load_listings

        ds = load_listings(source, split)
    if "description" not in ds.column_names:
        raise ValueError(f"{source}: the dataset has no 'description' column")
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    scorer = _verdicts_baseline if kind == "baseline" else _verdicts_vlm
    counts: dict[str, int] = {}
    n = 0
    with atomic_path(out_path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for i, (row, verdict) in enumerate(
            tqdm(
                scorer(Path(model_dir), ds, batch_size, reason),
                total=len(ds),
                desc="predict",
                leave=False,
            )
        ):
            validate_verdict(verdict)
            record: dict[str, Any] = {"id": row.get("product_id", str(i))}
            record.update(verdict)
            label = _label_of(row)
            if label is not None:
                record["label"] = label
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
            if "decision" in verdict:
                counts[verdict["decision"]] = counts.get(verdict["decision"], 0) + 1
    return PredictionSummary(out=out_path, n=n, model_kind=kind, decisions=counts)


def read_predictions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and check a predictions file; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such predictions file")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}, line {line_no}: invalid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path.name}, line {line_no}: expected a JSON object")
            for key in ("id", "confidence"):
                if key not in row:
                    raise ValueError(f"{path.name}, line {line_no}, field '{key}': missing")
            conf = row["confidence"]
            if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0.0 <= conf <= 1.0:
                raise ValueError(
                    f"{path.name}, line {line_no}, field 'confidence': expected a number in [0, 1], got {conf!r}"
                )
            if "label" in row and row["label"] not in (0, 1):
                raise ValueError(
                    f"{path.name}, line {line_no}, field 'label': expected 0 or 1, got {row['label']!r}"
                )
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no predictions")
    return rows


__all__ = ["PredictionSummary", "model_kind", "predict_to_jsonl", "read_predictions"]
