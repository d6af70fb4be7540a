"""Teacher labelling with the tiny Qwen3-VL: logit-based per-label probabilities, shards, resume after
SIGKILL, a job identity that pins the teacher's weights and dtype, multi-process labelling under
``accelerate launch``; and batch scoring resumed after SIGKILL, as labelling is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hf_spamguard.files import LABELS_FILE, MANIFEST_FILE
from hf_spamguard.reviews.data import read_reviews
from hf_spamguard.reviews.labeling import (
    LabelingConfig,
    _check_identity,
    label_reviews,
    load_labels,
    read_manifest,
)
from hf_spamguard.reviews.synthetic import (
    generate_reviews,
    write_generated_google_local,
    write_generated_reviews,
)
from hf_spamguard.reviews.teacher import TeacherLabeler, teacher_fingerprint
from hf_spamguard.taxonomy import load_taxonomy

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
    tiny_model_dir: Path, reviews_dir: Path, clean_run: pd.DataFrame, tmp_path: Path, sigkill_when
) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hf_spamguard", "label", *_label_cmd(tiny_model_dir, reviews_dir, out)]
    sigkill_when(
        cmd, lambda: (out / MANIFEST_FILE).is_file() and read_manifest(out)["shards_done"] >= 1, "labelling"
    )
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


def test_resume_with_a_retrained_teacher_or_another_dtype_is_refused(
    tiny_model_dir: Path, reviews_dir: Path, tmp_path: Path
) -> None:
    from hf_spamguard.testing import build_tiny_qwen3_vl

    teacher = Path(shutil.copytree(tiny_model_dir, tmp_path / "teacher"))
    out = tmp_path / "job"
    base = {"teacher": str(teacher), "input": str(reviews_dir), "limit": 6, "shard_size": 3, "device": "cpu"}
    label_reviews(LabelingConfig(**base, out=str(out)), progress=False)
    before = load_labels(out)
    manifest = read_manifest(out)
    assert manifest["dtype"] == "float32"  # the default, resolved: what the labels were computed in
    assert manifest["teacher_fingerprint"] == teacher_fingerprint(teacher)
    # Naming the default dtype explicitly is the same job.
    again = label_reviews(LabelingConfig(**base, out=str(out), dtype="float32"), progress=False)
    assert again.shards_labelled_now == 0

    with pytest.raises(ValueError, match=r"different 'dtype' \('float32' there, 'bfloat16' now\)") as err:
        label_reviews(LabelingConfig(**base, out=str(out), dtype="bfloat16"), progress=False)
    assert "--dtype float32" in str(err.value)

    build_tiny_qwen3_vl(teacher, seed=1)  # retrained in place: same file names, new weights
    with pytest.raises(ValueError, match="different 'teacher_fingerprint'") as err:
        label_reviews(LabelingConfig(**base, out=str(out)), progress=False)
    assert str(out / MANIFEST_FILE) in str(err.value) and "new --out" in str(err.value)
    # Refused before touching anything: the job still holds the first teacher's labels only.
    assert read_manifest(out) == manifest
    pd.testing.assert_frame_equal(load_labels(out), before)
    # Following the advice works, and shows what a resume would have mixed in: other probabilities.
    fresh = tmp_path / "fresh"
    label_reviews(LabelingConfig(**base, out=str(fresh)), progress=False)
    after = load_labels(fresh)
    assert after["id"].tolist() == before["id"].tolist()
    assert not np.allclose(
        after[PROB_COLS].to_numpy(float), before[PROB_COLS].to_numpy(float), equal_nan=True
    )


def test_teacher_fingerprint_covers_hub_revisions_and_adapter_bases(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # A Hub teacher is identified by the commit in the local cache (real cache layout, no network).
    cache = tmp_path / "hub"
    snapshot = cache / "models--org--teacher" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--org--teacher" / "refs").mkdir()
    (cache / "models--org--teacher" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert teacher_fingerprint("org/teacher") == {"hub_id": "org/teacher", "revision": "abc123"}
    uncached = teacher_fingerprint("org/other")
    assert uncached == {"hub_id": "org/other", "revision": None}
    with pytest.raises(FileNotFoundError, match="missing: no such teacher model folder"):
        teacher_fingerprint(str(tmp_path / "missing"))

    # A job started before the Hub teacher was cached accepts the revision its first load recorded,
    # but never a different revision once one is recorded.
    def identity(fp: dict) -> dict:
        return {"teacher": fp["hub_id"], "teacher_fingerprint": fp}

    _check_identity(identity(uncached), identity({**uncached, "revision": "abc123"}), tmp_path)
    with pytest.raises(ValueError, match="teacher_fingerprint.*revision"):
        _check_identity(
            identity({**uncached, "revision": "abc123"}),
            identity({**uncached, "revision": "def456"}),
            tmp_path,
        )

    # An adapter's identity includes its base model: retraining the base changes it.
    base = Path(shutil.copytree(tiny_model_dir, tmp_path / "base"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    fp = teacher_fingerprint(adapter)
    assert fp["base"] == teacher_fingerprint(base) and fp["folder"] == str(adapter.resolve())
    config = base / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    changed = teacher_fingerprint(adapter)
    assert changed["files"] == fp["files"] and changed["base"] != fp["base"]


# --------------------------------------------------------------------------------------------- scoring


def test_score_resumes_after_sigkill(review_student_dir: Path, tmp_path: Path, sigkill_when) -> None:
    from hf_spamguard.reviews.batch import score_reviews

    n, chunk = 10_000, 100  # 100 parts: the kill lands well before the last one
    src = write_generated_reviews(tmp_path / "in.parquet", n=n, seed=9)
    clean = tmp_path / "clean.parquet"
    score_reviews(review_student_dir, src, clean, chunk_size=chunk, n_jobs=1, report=False, progress=False)
    out = tmp_path / "out.parquet"
    parts = tmp_path / "out.parquet.parts"
    cmd = [
        sys.executable, "-m", "hf_spamguard", "score", "--model", str(review_student_dir), "--input", str(src),
        "--out", str(out), "--chunk-size", str(chunk), "--n-jobs", "1", "--no-report", "--no-progress",
    ]  # fmt: skip
    sigkill_when(cmd, lambda: parts.is_dir() and any(parts.glob("part-*.parquet")), "scoring")
    assert not out.exists(), "the run finished before it was killed; nothing was tested"
    done = len(list(parts.glob("part-*.parquet")))
    assert 1 <= done < n // chunk
    result = score_reviews(
        review_student_dir, src, out, chunk_size=chunk, n_jobs=1, report=False, progress=False
    )
    assert result.rows == n and result.rows_scored_now == n - done * chunk  # resumed, not restarted
    # The rate covers the whole run: the final copy of every part into the output is part of it.
    assert result.assembly_seconds > 0
    assert result.seconds >= result.scoring_seconds + result.assembly_seconds
    assert result.rows_per_second == pytest.approx(result.rows_scored_now / result.seconds)
    scored = pd.read_parquet(out)
    ids = generate_reviews(n, seed=9)["id"].tolist()
    assert scored["id"].is_unique and scored["id"].tolist() == ids  # every input row once, in order
    pd.testing.assert_frame_equal(scored, pd.read_parquet(clean))
    assert not parts.exists() and not list(tmp_path.rglob("*.tmp"))


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
