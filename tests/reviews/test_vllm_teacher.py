"""`spamguard label --engine vllm` (and `--ray`: Ray Data in front of vLLM, on a local cluster) against
the transformers teacher on the tiny Qwen3-VL (CPU).

Runs in the vLLM environment (`scripts/vllm-cpu-env.sh DIR`, then `DIR/bin/python -m pytest -m vllm`);
skipped elsewhere. The reference is the transformers teacher in this process; the vLLM runs are real
`spamguard label` processes, one of them killed with SIGKILL after its first shard and resumed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hf_spamguard.files import LABELS_FILE, MANIFEST_FILE
from hf_spamguard.reviews.labeling import LabelingConfig, label_reviews, load_labels, read_manifest
from hf_spamguard.reviews.synthetic import write_generated_google_local
from hf_spamguard.taxonomy import load_taxonomy

pytestmark = pytest.mark.vllm

N_REVIEWS = 160
SHARD = 4
PROB_COLS = [f"p_{n}" for n in load_taxonomy("reviews").label_names]


@pytest.fixture(scope="module")
def reviews_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_generated_google_local(
        tmp_path_factory.mktemp("gl") / "gl", n=N_REVIEWS, seed=11, duplicates=4, empty=3, undecodable=1
    )


def _cmd(teacher: Path, reviews: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "hf_spamguard", "label", "--teacher", str(teacher), "--input", str(reviews),
        "--out", str(out), "--shard-size", str(SHARD), "--engine", "vllm", "--rationale", "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(
    tiny_model_dir: Path, reviews_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("transformers")
    config = LabelingConfig(
        teacher=str(tiny_model_dir), input=str(reviews_dir), out=str(out), shard_size=SHARD, rationale=True
    )
    label_reviews(config, progress=False)
    return load_labels(out)


def _assert_same_labels(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got["id"].tolist() == want["id"].tolist()
    for col in ("row", "status", "unlabellable_reason", "text"):
        assert got[col].tolist() == want[col].tolist(), col
    np.testing.assert_allclose(
        got[PROB_COLS].to_numpy(float), want[PROB_COLS].to_numpy(float), rtol=0, atol=1e-3
    )


def test_vllm_teacher_gives_the_transformers_probabilities(
    tiny_model_dir: Path, reviews_dir: Path, reference: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "vllm"
    run = subprocess.run(_cmd(tiny_model_dir, reviews_dir, out), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "labels:" in run.stdout
    got = load_labels(out)
    _assert_same_labels(got, reference)
    labelled = got[got["status"] == "labelled"]
    assert labelled[PROB_COLS].notna().all().all()
    # Rationales: single-line JSON-safe strings, generated for every labelled review.
    for text in labelled["rationale"]:
        assert isinstance(text, str) and text == text.strip()
        assert all(ch.isprintable() for ch in text) and '"' not in text and "\\" not in text
    assert (labelled["rationale"].str.len() > 0).mean() > 0.5
    assert read_manifest(out)["engine"] == "vllm"


def test_vllm_labelling_resumes_after_sigkill(
    tiny_model_dir: Path, reviews_dir: Path, reference: pd.DataFrame, tmp_path: Path, sigkill_when
) -> None:
    out = tmp_path / "killed"
    cmd = _cmd(tiny_model_dir, reviews_dir, out)
    sigkill_when(
        cmd,
        lambda: (out / MANIFEST_FILE).is_file() and read_manifest(out)["shards_done"] >= 1,
        "vllm labelling",
        timeout=600,
    )
    manifest = read_manifest(out)
    assert not (out / LABELS_FILE).exists(), "the run finished before it was killed; nothing was tested"
    assert 1 <= len(list((out / "shards").glob("shard-*.parquet"))) < manifest["n_shards"]
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "labels:" in rerun.stdout
    _assert_same_labels(load_labels(out), reference)
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    final = read_manifest(out)
    assert final["complete"] and final["shards_done"] == final["n_shards"]


def test_ray_data_teacher_gives_the_transformers_probabilities(
    tiny_model_dir: Path, reviews_dir: Path, reference: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    cmd = [c for c in _cmd(tiny_model_dir, reviews_dir, out) if c != "--rationale"] + ["--ray"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "labels:" in run.stdout
    got = load_labels(out)
    _assert_same_labels(got, reference)
    assert got["rationale"].isna().all()
    manifest = read_manifest(out)
    assert manifest["engine"] == "vllm" and manifest["complete"]
    # The same job without Ray resumes it (the engine is the job's identity, Ray is not): nothing to do.
    again = subprocess.run([c for c in cmd if c != "--ray"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "(0 now" in again.stdout, again.stderr[-2000:]
