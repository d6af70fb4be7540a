"""The moderation team's real Depop export (skipped where ../shared is absent).

The image URLs in it are dead, so the dataset is built without fetching: every image is None and
the status file says why.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pandas as pd
import pytest

from hf_spamguard.data import LISTING_FEATURES, build_dataset, save_dataset

pytestmark = pytest.mark.realdata


def test_build_real_tsv_roundtrip(depop_tsv: Path, tmp_path: Path) -> None:
    dd = build_dataset(depop_tsv, validation_size=0, cache_dir=tmp_path / "cache", progress=False)
    assert list(dd) == ["train"] and len(dd["train"]) == 1500
    out = save_dataset(dd, tmp_path / "depop")
    loaded = datasets.load_dataset(str(out))["train"]
    assert loaded.features == LISTING_FEATURES and len(loaded) == 1500

    # Labels and votes intact, row for row, compared with an independent pandas read of the file.
    raw = pd.read_csv(depop_tsv, sep="\t", index_col=0, dtype={"product_id": str})
    got = loaded.to_pandas()
    assert got["product_id"].tolist() == raw["product_id"].tolist()
    assert got["label"].tolist() == raw["label"].tolist()
    assert got["yes_count"].tolist() == raw["yes_count"].tolist()
    assert got["no_count"].tolist() == raw["no_count"].tolist()
    assert got["description"].tolist() == raw["description"].tolist()
    assert got["image_url"].tolist() == raw["image_url"].fillna("").tolist()  # some rows have no URL
    assert got["image"].isna().all()  # built without fetching: the URLs are dead
    expected_conf = (raw["yes_count"] - raw["no_count"]).abs() / (raw["yes_count"] + raw["no_count"])
    assert (got["label_confidence"] - expected_conf).abs().max() < 1e-6

    status = pd.read_csv(out / "image_status.csv")
    assert len(status) == 1500 and not status["ok"].any()
    assert status["error"].str.contains("fetching disabled").all()


def test_real_tsv_with_carved_validation(depop_tsv: Path, tmp_path: Path) -> None:
    dd = build_dataset(depop_tsv, cache_dir=tmp_path / "cache", progress=False)
    assert len(dd["train"]) + len(dd["validation"]) == 1500 and len(dd["validation"]) == 150
    spam_share = sum(dd["validation"]["label"]) / len(dd["validation"])
    assert abs(spam_share - 897 / 1500) < 0.01  # stratified
