"""Shared fixtures. Expensive artefacts (demo data, tiny model, built dataset) are built once per session."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# No test may reach the Hub: everything is built offline by the project itself.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPOP_TSV = REPO_ROOT.parent / "shared" / "data" / "depop" / "train_set.tsv"
VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """vLLM tests run in the vLLM environment only (vLLM pins its own torch and transformers)."""
    if VLLM_INSTALLED:
        return
    skip = pytest.mark.skip(
        reason="vLLM is not installed here: scripts/vllm-cpu-env.sh DIR, then DIR/bin/python -m pytest -m vllm"
    )
    for item in items:
        if "vllm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def depop_tsv() -> Path:
    """The real Depop listings (text only); tests using it skip where ../shared is absent."""
    if not DEPOP_TSV.is_file():
        pytest.skip(f"real data not available: {DEPOP_TSV}")
    return DEPOP_TSV


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic demo listings as the moderation team would hand them over: TSVs + an image folder."""
    from hf_spamguard.data.synthetic import write_demo

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


def _teacher_like_labels(n: int, seed: int) -> Any:
    """Teacher output for the generated reviews: confident, slightly noisy probabilities of the truth."""
    import numpy as np

    from hf_spamguard.reviews.synthetic import GENERATED_LABELS, generate_reviews

    df = generate_reviews(n, seed=seed).drop(columns=["error"])
    rng = np.random.default_rng(seed)
    for name in GENERATED_LABELS:
        truth = df.pop(f"true_{name}").to_numpy()
        df[f"p_{name}"] = np.clip(np.where(truth, 0.9, 0.08) + rng.normal(0, 0.05, n), 0.001, 0.999)
    df["status"] = "labelled"
    return df


@pytest.fixture(scope="session")
def teacher_like_labels() -> Callable[[int, int], Any]:
    """``make(n, seed)`` → a labels DataFrame shaped like ``spamguard label`` output (no teacher run)."""
    return _teacher_like_labels


@pytest.fixture(scope="session")
def review_labels_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.parquet"
    _teacher_like_labels(700, seed=4).to_parquet(path)
    return path


@pytest.fixture(scope="session")
def review_student_dir(review_labels_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A review-moderation student distilled (fast settings) from :func:`review_labels_file`, with its
    card, distill report and errors/*.csv."""
    from hf_spamguard.reviews.distill import DistillConfig, distill

    out = tmp_path_factory.mktemp("student")
    config = DistillConfig(labels=str(review_labels_file), out=str(out), taxonomy="reviews", Cs=(1.0,), cv=2)
    distill(config, progress=False)
    return out


@pytest.fixture(scope="session")
def sigkill_when() -> Callable[..., None]:
    """``sigkill_when(cmd, ready, what)``: start ``cmd``, SIGKILL it as soon as ``ready()`` is true, and
    fail the test if it exits on its own first (then the kill would test nothing)."""

    def run(cmd: list[str], ready: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not ready():
                if proc.poll() is not None:
                    pytest.fail(f"{what} exited early: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"{what} was not killed (exit code {proc.returncode})"

    return run
