"""Shared fixtures. Expensive artefacts (demo data, tiny model, built dataset) are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach the Hub: everything is built offline by the project itself.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPOP_TSV = REPO_ROOT.parent / "shared" / "data" / "depop" / "train_set.tsv"


@pytest.fixture(scope="session")
def depop_tsv() -> Path:
    """The real Depop listings (text only); tests using it skip where ../shared is absent."""
    if not DEPOP_TSV.is_file():
        pytest.skip(f"real data not available: {DEPOP_TSV}")
    return DEPOP_TSV


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic demo listings as the moderation team would hand them over: TSVs + an image folder."""
    from hf_spamguard.data.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_dataset_dir(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo set built into the Hub layout (Parquet + card); load with ``load_dataset(folder)``."""
    from hf_spamguard.data import build_dataset, save_dataset

    dd = build_dataset(
        train=demo_dir / "train.tsv",
        validation=demo_dir / "validation.tsv",
        test=demo_dir / "test.tsv",
        image_dir=demo_dir / "images",
    )
    out = tmp_path_factory.mktemp("demo_dataset")
    save_dataset(dd, out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3-VL with a locally trained tokenizer and processor, saved with save_pretrained."""
    from hf_spamguard.testing import build_tiny_qwen3_vl

    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny_qwen3_vl"))
