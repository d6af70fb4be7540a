"""The Hub's dataset layout: ``data/<split>-NNNNN-of-NNNNN.parquet`` + a ``README.md`` card whose YAML
declares the ``configs`` (which files form which split) and the features.

``datasets.load_dataset(folder)`` on such a folder — and ``load_dataset("org/name")`` once it is pushed —
returns the same DatasetDict, including the ``ClassLabel`` names and the ``Image`` feature, because
images are embedded as bytes in the Parquet files and the features are in both the Parquet schema
metadata and the card.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_spamguard.atomic import atomic_path, atomic_write_text
from hf_spamguard.files import BUILD_REPORT_FILE, CARD_FILE, IMAGE_STATUS_FILE
from hf_spamguard.hub_io import is_repo_id, upload_folder_to_hub

if TYPE_CHECKING:
    import datasets

    from hf_spamguard.data.builder import BuildReport

__all__ = ["load_listings", "push_dataset", "save_dataset"]

MAX_SHARD_BYTES = 500 * 1024 * 1024  # the Hub's viewer and streaming prefer Parquet files of < ~500 MB
SPLIT_ORDER = ("train", "validation", "test")


def _write_parquet(ds: datasets.Dataset, path: Path, batch_size: int = 1000) -> int:
    """Write ``ds`` to ``path`` atomically, with external image files embedded as bytes."""
    import pyarrow.parquet as pq
    from datasets.table import embed_table_storage

    schema = ds.features.arrow_schema  # carries the `huggingface` features metadata
    arrow = ds.with_format("arrow")
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema=schema) as writer:
        for start in range(0, len(ds), batch_size):
            table = embed_table_storage(arrow[start : start + batch_size])
            writer.write_table(table.cast(schema))
    return path.stat().st_size


def _loading_metadata(dd: datasets.DatasetDict) -> dict[str, Any]:
    """The card YAML that ``load_dataset(folder)`` reads: which files form which split, and the features
    (so that ``ClassLabel`` names and the ``Image`` feature come back even without the Parquet metadata)."""
    first = next(iter(dd.values()))
    splits = list(dd)
    return {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits],
            }
        ],
        "dataset_info": {
            "features": first.features._to_yaml_list(),
            "splits": [
                {"name": s, "num_bytes": int(dd[s].data.nbytes), "num_examples": len(dd[s])} for s in splits
            ],
        },
    }


def save_dataset(
    dd: datasets.DatasetDict | datasets.Dataset, out_dir: str | Path, *, report: BuildReport | None = None
) -> Path:
    """Write ``dd`` (a ``DatasetDict``) to ``out_dir`` in the Hub's layout and return ``out_dir``.

    Files: ``data/<split>-00000-of-0000N.parquet`` (images embedded), ``README.md`` (the dataset card
    of :func:`hf_spamguard.cards.render_dataset_card`, with YAML ``configs`` + ``dataset_info``), and,
    when a build report is given or attached to ``dd`` by :func:`build_dataset`, ``build_report.json``
    and ``image_status.csv``. Existing Parquet files of the written splits are replaced.
    """
    import datasets

    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({"train": dd})
    if not isinstance(dd, datasets.DatasetDict) or not dd:
        raise ValueError("save_dataset expects a non-empty datasets.DatasetDict")
    report = report if report is not None else getattr(dd, "build_report", None)
    out = Path(out_dir)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    ordered = [s for s in SPLIT_ORDER if s in dd] + [s for s in dd if s not in SPLIT_ORDER]
    dd = datasets.DatasetDict({s: dd[s] for s in ordered})
    for split, ds in dd.items():
        for old in data_dir.glob(f"{split}-*.parquet"):
            old.unlink()
        num_shards = max(1, math.ceil((ds.data.nbytes or 1) / MAX_SHARD_BYTES))
        for i in range(num_shards):
            shard = ds.shard(num_shards, i, contiguous=True) if num_shards > 1 else ds
            _write_parquet(shard, data_dir / f"{split}-{i:05d}-of-{num_shards:05d}.parquet")
    if report is not None:
        atomic_write_text(out / BUILD_REPORT_FILE, json.dumps(report.to_dict(), indent=1))
        atomic_write_text(out / IMAGE_STATUS_FILE, report.image_status_csv())
    # One dataset card for every writer (build, publish, demo): the model_card/dataset_card.md template.
    # Imported here: the card machinery (jinja2, huggingface_hub cards) is only needed when saving.
    from hf_spamguard.cards import render_dataset_card

    render_dataset_card(
        out,
        dataset=dd,
        metadata=_loading_metadata(dd),
        build_report=report.to_dict() if report is not None else None,
    )
    return out


def _is_built_folder(path: Path) -> bool:
    return (path / CARD_FILE).is_file() and any((path / "data").glob("*.parquet"))


def load_listings(
    source: str | Path, split: str | None = None, **build_kwargs: Any
) -> datasets.DatasetDict | datasets.Dataset:
    """Load listings from wherever they are; every consumer (baseline, training, predict...) uses this.

    ``source`` can be
      - a folder written by :func:`save_dataset` (Hub layout) → ``load_dataset(folder)``;
      - a folder with ``train.tsv`` [+ ``validation.tsv``, ``test.tsv``, ``images/``] (as handed over
        by the moderation team, or :func:`~hf_spamguard.data.synthetic.write_demo`) → built on the fly;
      - a single ``.tsv`` file → built on the fly (images from a sibling ``images/`` folder), with a
        seeded stratified validation split carved from it. Asking a single TSV for a split it does
        not have (e.g. ``split="test"``) returns the *whole* file as that split, which is what
        "predict on this file" means;
      - a Hub dataset id (``org/name``) → ``load_dataset(id)``.

    Returns a ``DatasetDict``, or a ``Dataset`` when ``split`` is given. ``build_kwargs`` go to
    :func:`~hf_spamguard.data.build_dataset` for TSV sources.
    """
    import datasets

    from hf_spamguard.data.builder import build_dataset

    text = os.fspath(source)
    path = Path(text)
    build_kwargs.setdefault("progress", False)
    if path.is_dir() and _is_built_folder(path):
        dd = datasets.load_dataset(str(path))
    elif path.is_dir() and (path / "train.tsv").is_file():
        dd = build_dataset(
            train=path / "train.tsv",
            validation=path / "validation.tsv" if (path / "validation.tsv").is_file() else None,
            test=path / "test.tsv" if (path / "test.tsv").is_file() else None,
            image_dir=build_kwargs.pop("image_dir", path / "images" if (path / "images").is_dir() else None),
            **build_kwargs,
        )
    elif path.is_file() and path.suffix.lower() in (".tsv", ".txt"):
        image_dir = build_kwargs.pop(
            "image_dir", path.parent / "images" if (path.parent / "images").is_dir() else None
        )
        if split is not None and split not in ("train", "validation"):
            dd = build_dataset(train=path, image_dir=image_dir, validation_size=0, **build_kwargs)
            dd = datasets.DatasetDict({split: dd["train"]})
        else:
            dd = build_dataset(train=path, image_dir=image_dir, **build_kwargs)
    elif path.exists():
        raise ValueError(
            f"{path}: not a listings source (expected a .tsv file, a folder with train.tsv, or a folder "
            "saved by `spamguard dataset build`)"
        )
    elif is_repo_id(text):
        dd = datasets.load_dataset(text)
    else:
        raise FileNotFoundError(f"{source}: no such file or folder (and not a Hub id like 'org/name')")
    if split is None:
        return dd
    if split not in dd:
        raise ValueError(f"{source}: no split {split!r} (available: {', '.join(dd)})")
    return dd[split]


def push_dataset(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a folder written by :func:`save_dataset` to the Hub as a dataset repo; return the commit URL."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not _is_built_folder(folder):
        raise ValueError(
            f"{folder}: not a built dataset (expected README.md and data/*.parquet; "
            "create it with `spamguard dataset build`)"
        )
    return upload_folder_to_hub(
        folder,
        repo_id,
        repo_type="dataset",
        private=private,
        token=token,
        commit_message="Upload listings dataset with hf-spamguard",
    )
