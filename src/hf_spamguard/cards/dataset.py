"""The dataset card of a listings dataset in the Hub layout (``model_card/dataset_card.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hf_spamguard.cards.facts import installed_version
from hf_spamguard.cards.render import render, write_card
from hf_spamguard.files import BUILD_REPORT_FILE, CARD_FILE, IMAGE_STATUS_FILE, read_json

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

#: The card's ``license`` until the data's owner sets one (``--license`` of ``dataset build`` / ``push``).
UNSET_LICENSE = "other"

_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


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


def _modality(with_images: int, total: int, has_image_column: bool) -> str:
    """What the rows hold, as the summary says it: a dataset without any photo is text-only."""
    if not has_image_column or not with_images:
        return "text only: no listing has a photo"
    if with_images < total:
        return f"text, and a photo for {with_images / total:.0%} of them"
    return "text + photo"


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
    license: str | None = None,
    language: str | list[str] = "en",
    package_version: str | None = None,
) -> Path:
    """Write the dataset card (``README.md``) of a dataset folder in the Hub layout.

    ``dataset``: the ``DatasetDict`` saved there (loaded from ``folder`` with ``datasets.load_dataset``
    when None). ``metadata``: YAML that ``load_dataset`` needs (``configs:``, ``dataset_info``), as
    ``data.save_dataset`` passes it; YAML already in the folder's card is kept otherwise, so
    ``load_dataset(folder)`` keeps finding the same splits when the card is rendered again.
    ``build_report``: the ``data.BuildReport`` as a dict (label/vote disagreements per input file, image
    availability); read from the folder's ``build_report.json`` when None. ``license``: a Hub license id
    for the data; default the folder's card's, else :data:`UNSET_LICENSE` (``other``), which the card
    explains how to set: only the data's owner can choose it. ``package_version``: default the installed
    hf-spamguard's.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

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
        build_report = read_json(folder / BUILD_REPORT_FILE, missing={})
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
    size_category = next((label for limit, label in _SIZE_CATEGORIES if total < limit), "n>1M")
    with_images = sum(n_images)
    meta = dict(existing)
    meta.update(metadata or {})
    license = license or meta.get("license") or UNSET_LICENSE
    meta.update(
        license=license,
        language=language if isinstance(language, list) else [language],
        pretty_name=pretty_name,
        size_categories=[size_category],
        task_categories=["text-classification"] + (["image-classification"] if with_images else []),
        tags=sorted(
            {*meta.get("tags", []), "hf-spamguard", "spam-detection", "content-moderation", "marketplace"}
        ),
    )
    card_data = DatasetCardData(**meta)
    content = render(
        "dataset_card",
        card_data,
        pretty_name=pretty_name,
        summary=summary
        or (
            f"{total} marketplace listings ({_modality(with_images, total, bool(n_images))}) labelled by "
            "moderators as keyword spam or not. "
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
        build_report_file=BUILD_REPORT_FILE,
        image_status_file=IMAGE_STATUS_FILE if (folder / IMAGE_STATUS_FILE).is_file() else None,
        image_share=f"{with_images / total:.0%}" if n_images and total else None,
        text_only=bool(n_images) and not with_images,
        license=license,
        license_unset=license == UNSET_LICENSE,
        provenance=provenance
        or "Listings and votes from the moderation team's TSV export; photos from a local folder and/or "
        "fetched from `image_url` with hf-spamguard's safe fetcher (failures recorded, not crashed on).",
        package_version=installed_version() if package_version is None else package_version,
    )
    return write_card(folder, content, DatasetCard)
