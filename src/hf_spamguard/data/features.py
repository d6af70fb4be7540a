"""The listing dataset's features: the one definition every stage relies on (see DESIGN.md)."""

from __future__ import annotations

import datasets

from hf_spamguard.verdict import LABEL_NAMES

__all__ = ["IMAGE_EXTENSIONS", "LISTING_FEATURES", "label_confidence"]

LISTING_FEATURES = datasets.Features(
    {
        "product_id": datasets.Value("string"),
        "description": datasets.Value("string"),
        "image": datasets.Image(),  # None when the listing has no usable image
        "image_url": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(LABEL_NAMES)),
        "yes_count": datasets.Value("int32"),
        "no_count": datasets.Value("int32"),
        "label_confidence": datasets.Value("float32"),
    }
)

# Looked up in this order as <image_dir>/<product_id>.<ext>.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def label_confidence(yes_count: int, no_count: int) -> float:
    """Rater agreement |yes - no| / (yes + no): 1.0 unanimous, near 0 for split votes, 0.0 without votes."""
    total = yes_count + no_count
    return abs(yes_count - no_count) / total if total else 0.0
