"""Teacher labelling with the tiny Qwen3-VL: logit-based per-label probabilities, shards, resume after
SIGKILL, and multi-process labelling under ``accelerate launch``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hf_spamguard.data.reviews import read_reviews, write_generated_google_local
from hf_spamguard.teacher import (
    LABELS_FILE,
    MANIFEST_FILE,
    LabelingConfig,
    TeacherLabeler,
    label_reviews,
    load_labels,
    read_manifest,
)
from hf_spamguard.verdict import load_taxonomy

N_REVIEWS = 60
SHARD = 6
PROB_COLS = [f"p_{n}" for n in load_taxonomy("reviews").label_names]


@pytest.fixture(scope="module")
def reviews_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_generated_google_local(
        tmp_path_factory.mktemp("gl") / "gl", n=N_REVIEWS, seed=11, duplicates=4, empty=3, undecodable=1
    )


@pytest.fixture(scope="module")
def clean_run(
    tiny_model_dir: Path, reviews_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    """One uninterrupted single-process run: the reference every other run must reproduce."""
    out = tmp_path_factory.mktemp("clean")
    config = LabelingConfig(
        teacher=str(tiny_model_dir), input=str(reviews_dir), out=str(out), shard_size=SHARD, batch_size=4
    )
    result = label_reviews(config, progress=False)
    assert result.labels_path == out / LABELS_FILE
    return load_labels(out)


def _label_cmd(teacher: Path, reviews: Path, out: Path) -> list[str]:
    return [
        "--teacher", str(teacher), "--input", str(reviews), "--out", str(out),
        "--shard-size", str(SHARD), "--batch-size", "4", "--no-progress",
    ]  # fmt: skip


def _assert_same_labels(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got["id"].tolist() == want["id"].tolist()
    assert got["id"].is_unique
    for col in ("row", "status", "unlabellable_reason", "text"):
        assert got[col].tolist() == want[col].tolist(), col
    np.testing.assert_allclose(
        got[PROB_COLS].to_numpy(float), want[PROB_COLS].to_numpy(float), rtol=0, atol=1e-6
    )


def test_labelling_output_is_complete(clean_run: pd.DataFrame, reviews_dir: Path) -> None:
    source = read_reviews(reviews_dir)
    assert clean_run["id"].tolist() == source["id"].tolist()  # every input row once, in input order
    bad = clean_run[clean_run["status"] == "unlabellable"]
    # 3 rating-only reviews (no text) + 1 line of invalid UTF-8: recorded with their reason, not dropped.
    assert sorted(bad["unlabellable_reason"].str.split(" ").str[0]) == ["line", "no", "no", "no"]
    assert bad[PROB_COLS].isna().all().all()
    good = clean_run[clean_run["status"] == "labelled"]
    assert len(good) == N_REVIEWS - 3
    probs = good[PROB_COLS].to_numpy(float)
    assert np.isfinite(probs).all() and ((probs > 0) & (probs < 1)).all()
    assert good["place_name"].notna().all()  # joined from the place metadata


def test_per_label_probabilities_come_from_logits(tiny_model_dir: Path, reviews_dir: Path) -> None:
    """Walking one KV cache label by label gives the probabilities of a plain forward pass over the
    whole forced answer, and batching does not change them."""
    labeler = TeacherLabeler.from_pretrained(tiny_model_dir, "reviews", device="cpu")
    rows = read_reviews(reviews_dir).dropna(subset=["text"]).head(5)
    batched, _ = labeler.label_texts(rows)
    assert labeler._prefix_ids, "the shared system turn should be encoded once and reused"
    single = np.vstack([labeler.label_texts(rows.iloc[[i]])[0] for i in range(len(rows))])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    whole = TeacherLabeler(labeler.model, labeler.tokenizer, "reviews", prefix_cache=False)
    np.testing.assert_allclose(whole.label_texts(rows)[0], batched, atol=1e-6)
    tok = labeler.tokenizer
    for i in range(2):
        ids = tok(labeler.prompt(rows.iloc[i].to_dict()), add_special_tokens=False)["input_ids"]
        for j, (prefix, t_id, f_id, t_rest, f_rest) in enumerate(labeler.steps):
            ids = ids + prefix
            with torch.no_grad():
                logits = labeler.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            p = torch.sigmoid(logits[t_id] - logits[f_id]).item()
            assert batched[i, j] == pytest.approx(p, abs=1e-5)
            ids = ids + ([t_id, *t_rest] if p >= 0.5 else [f_id, *f_rest])
    # The forced segment of the second label is `, "irrelevant":` and the value token carries the space.
    assert tok.decode(labeler.steps[1][0]).strip() == ', "irrelevant":'
    assert tok.decode([labeler.steps[1][1]]).strip() == "true"


def test_rationale_is_a_clean_single_line(tiny_model_dir: Path, reviews_dir: Path) -> None:
    labeler = TeacherLabeler.from_pretrained(
        tiny_model_dir, "reviews", device="cpu", rationale=True, max_rationale_tokens=12
    )
    rows = read_reviews(reviews_dir).dropna(subset=["text"]).head(3)
    probs, rationales = labeler.label_texts(rows)
    plain, _ = TeacherLabeler(labeler.model, labeler.tokenizer, "reviews").label_texts(rows)
    np.testing.assert_allclose(probs, plain, atol=1e-6)  # the rationale never changes the labels
    for text in rationales:
        assert isinstance(text, str) and "\n" not in text and '"' not in text and len(text) <= 200


def test_generic_decoder_teacher(tmp_path: Path, tiny_model_dir: Path, reviews_dir: Path) -> None:
    """A plain causal LM (no M-RoPE) walks the cache with explicit positions and matches a full pass."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    folder = tmp_path / "llama"
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    labeler = TeacherLabeler.from_pretrained(folder, "reviews", device="cpu")
    assert not labeler._own_positions
    rows = read_reviews(reviews_dir).dropna(subset=["text"]).head(4)
    batched, _ = labeler.label_texts(rows)
    for i in range(len(rows)):
        np.testing.assert_allclose(labeler.label_texts(rows.iloc[[i]])[0][0], batched[i], atol=1e-5)


def test_resume_after_sigkill(
    tiny_model_dir: Path, reviews_dir: Path, clean_run: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hf_spamguard", "label", *_label_cmd(tiny_model_dir, reviews_dir, out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if (out / MANIFEST_FILE).is_file() and read_manifest(out)["shards_done"] >= 1:
                break
            if proc.poll() is not None:
                pytest.fail(f"labelling exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    manifest = read_manifest(out)
    assert not (out / LABELS_FILE).exists(), "the run finished before it was killed; nothing was tested"
    assert 1 <= len(list((out / "shards").glob("shard-*.parquet"))) < manifest["n_shards"]
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "labels:" in rerun.stdout
    _assert_same_labels(load_labels(out), clean_run)
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    final = read_manifest(out)
    assert final["complete"] and final["shards_done"] == final["n_shards"]
    assert final["counts"] == {"labelled": N_REVIEWS - 3, "unlabellable": 4}
    # The same job again (in-process, same settings): nothing left to label, same result.
    config = LabelingConfig(
        teacher=str(tiny_model_dir), input=str(reviews_dir), out=str(out), shard_size=SHARD, batch_size=4
    )
    again = label_reviews(config, progress=False)
    assert again.shards_labelled_now == 0 and again.labels_path == out / LABELS_FILE
    _assert_same_labels(load_labels(out), clean_run)


def test_resume_with_other_settings_is_refused(
    tiny_model_dir: Path, reviews_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "job"
    base = {"teacher": str(tiny_model_dir), "input": str(reviews_dir), "out": str(out), "limit": 10}
    label_reviews(LabelingConfig(**base, shard_size=5), progress=False)
    assert len(load_labels(out)) == 10
    with pytest.raises(ValueError, match="shard_size"):
        label_reviews(LabelingConfig(**base, shard_size=4), progress=False)


@pytest.mark.slow
def test_accelerate_two_processes_merge_to_the_single_process_result(
    tiny_model_dir: Path, reviews_dir: Path, clean_run: pd.DataFrame, tmp_path: Path
) -> None:
    if shutil.which("accelerate") is None and not (Path(sys.executable).parent / "accelerate").exists():
        pytest.skip("accelerate launcher not installed")
    out = tmp_path / "ddp"
    launcher = str(Path(sys.executable).parent / "accelerate")
    # On accelerate 1.x `launch --cpu` runs ONE process (its multi-CPU mode expects an MPI launcher);
    # the torchrun-based launcher below starts two, and on a machine without CUDA both run on the CPU.
    cmd = [
        launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "hf_spamguard", "label", *_label_cmd(tiny_model_dir, reviews_dir, out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    labels = load_labels(out)
    _assert_same_labels(labels, clean_run)
    shards = read_manifest(out)["shards"]
    assert {info["process"] for info in shards.values()} == {"0", "1"}  # both processes did work
    assert json.loads((out / MANIFEST_FILE).read_text())["complete"]
