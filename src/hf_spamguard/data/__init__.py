"""Listing datasets: TSV validation, image fetching, the `datasets` builder, Hub layout, synthetic listings.

Names are imported lazily so that ``import hf_spamguard.data`` (and the CLI) start fast: ``datasets``
(pandas, pyarrow) is only imported when a name that needs it is first used. Never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hf_spamguard.lazy import lazy_exports

_EXPORTS = {
    "DataValidationError": "tsv",
    "LabelDisagreementWarning": "tsv",
    "LabelReport": "tsv",
    "REQUIRED_COLUMNS": "tsv",
    "read_listings_tsv": "tsv",
    "IMAGE_EXTENSIONS": "features",
    "LISTING_FEATURES": "features",
    "label_confidence": "features",
    "BuildReport": "builder",
    "ListingsBuilder": "builder",
    "ListingsConfig": "builder",
    "build_dataset": "builder",
    "build_synthetic_dataset": "builder",
    "load_listings": "hub_layout",
    "push_dataset": "hub_layout",
    "save_dataset": "hub_layout",
    "FetchResult": "images",
    "ImageLoadError": "images",
    "fetch_images": "images",
    "load_image": "images",
    "generate_demo_listings": "synthetic",
    "write_demo": "synthetic",
}

__all__ = [
    "BuildReport",
    "DataValidationError",
    "FetchResult",
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "LISTING_FEATURES",
    "LabelDisagreementWarning",
    "LabelReport",
    "ListingsBuilder",
    "ListingsConfig",
    "REQUIRED_COLUMNS",
    "build_dataset",
    "build_synthetic_dataset",
    "fetch_images",
    "generate_demo_listings",
    "label_confidence",
    "load_image",
    "load_listings",
    "push_dataset",
    "read_listings_tsv",
    "save_dataset",
    "write_demo",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hf_spamguard.data.builder import (
        BuildReport,
        ListingsBuilder,
        ListingsConfig,
        build_dataset,
        build_synthetic_dataset,
    )
    from hf_spamguard.data.features import IMAGE_EXTENSIONS, LISTING_FEATURES, label_confidence
    from hf_spamguard.data.hub_layout import load_listings, push_dataset, save_dataset
    from hf_spamguard.data.images import FetchResult, ImageLoadError, fetch_images, load_image
    from hf_spamguard.data.synthetic import generate_demo_listings, write_demo
    from hf_spamguard.data.tsv import (
        REQUIRED_COLUMNS,
        DataValidationError,
        LabelDisagreementWarning,
        LabelReport,
        read_listings_tsv,
    )
