"""Distilled student and streaming batch scoring: split, thresholds, error analysis, resumable scoring,
and the `spamguard label → distill → score` chain end to end on the tiny teacher."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hf_spamguard.reviews.batch as batch
from hf_spamguard.cli import app
from hf_spamguard.reviews.batch import score_reviews
from hf_spamguard.reviews.distill import DistillConfig, distill
from hf_spamguard.reviews.student import load_student, multilabel_split
from hf_spamguard.reviews.synthetic import (
    GENERATED_LABELS,
    generate_reviews,
    write_generated_google_local,
    write_generated_reviews,
)

FAST = {"Cs": (1.0,), "cv": 2}


@pytest.fixture(scope="module")
def labels_file(review_labels_file: Path) -> Path:
    return review_labels_file


@pytest.fixture(scope="module")
def student_dir(review_student_dir: Path) -> Path:
    return review_student_dir


def test_multilabel_split_is_stratified_and_disjoint() -> None:
    Y = generate_reviews(2000, seed=1)[[f"true_{n}" for n in GENERATED_LABELS]].to_numpy(int)
    train, val, test = multilabel_split(Y, [0.15, 0.15], seed=0)
    assert (
        len(np.intersect1d(train, val))
        == len(np.intersect1d(train, test))
        == len(np.intersect1d(val, test))
        == 0
    )
    assert sorted(np.concatenate([train, val, test])) == list(range(2000))
    assert len(val) == len(test) == 300
    overall = Y.mean(axis=0)
    for part in (train, val, test):
        np.testing.assert_allclose(Y[part].mean(axis=0), overall, atol=0.01)
    again = multilabel_split(Y, [0.15, 0.15], seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test), strict=True))


@pytest.mark.parametrize("p_alpha,p_beta", [(0.8, 0.2), (0.65, 0.1)])
def test_soft_targets_are_learnt_as_probabilities(p_alpha: float, p_beta: float) -> None:
    # Two kinds of row whose teacher probability is p_alpha / p_beta: trained on the soft cross-entropy
    # the student predicts those probabilities; trained on the hard labels it would say ~1 and ~0.
    from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments

    texts = ["alpha listing"] * 150 + ["beta listing"] * 150
    P = np.r_[np.full(150, p_alpha), np.full(150, p_beta)]
    # weak regularisation: soft targets keep the optimum finite, so every fold lands on the same logits
    args = BaselineTrainingArguments(Cs=(64.0,), cv=3)
    soft = BaselineClassifier(labels=["ad"]).fit(texts, P[:, None], args)
    hard = BaselineClassifier(labels=["ad"]).fit(texts, (P[:, None] >= 0.5).astype(int), args)
    new = ["alpha listing", "beta listing"]
    np.testing.assert_allclose(soft.predict_proba(new)[:, 0], [p_alpha, p_beta], atol=0.03)
    assert hard.predict_proba(new)[0, 0] > 0.9 and hard.predict_proba(new)[1, 0] < 0.1
    assert soft.training_["heads"]["ad"]["targets"] == "soft"
    assert hard.training_["heads"]["ad"]["targets"] == "hard"
    with pytest.raises(ValueError, match="probabilities in"):
        BaselineClassifier(labels=["ad"]).fit(texts, (P * 2)[:, None], args)


def test_distill_writes_student_thresholds_report_and_errors(student_dir: Path, labels_file: Path) -> None:
    report = json.loads((student_dir / "distill_report.json").read_text())
    comparison = report["student_vs_teacher_test"]
    assert report["summary"]["split"] == {"train": 490, "validation": 105, "test": 105}
    # The generated policies are learnable: the student agrees with the teacher on held-out rows.
    assert comparison["micro_f1"] > 0.85 and comparison["label_agreement"] > 0.95
    for name in GENERATED_LABELS:
        m = comparison["per_label"][name]
        assert m["f1"] > 0.7 and 0 < m["threshold"] < 1
        errors = pd.read_csv(student_dir / "errors" / f"{name}.csv")
        assert set(errors["kind"]) <= {"false_positive", "false_negative"}
        assert len(errors) == report["error_files"][name]["rows"]
        assert ((errors["kind"] == "false_positive") == (errors["student_p"] >= m["threshold"])).all()
    assert "| advertisement |" in (student_dir / "distill_report.md").read_text()
    # The student's card carries the measured agreement and the per-label thresholds.
    card = (student_dir / "README.md").read_text()
    assert "model-index" in card and "multi-label" in card
    assert f"{comparison['macro_f1']:.3f}"[:4] in card
    for name in GENERATED_LABELS:
        assert f"`{name}`" in card
    student = load_student(student_dir)
    assert student.label_names == tuple(GENERATED_LABELS)
    verdicts = student(generate_reviews(3, seed=99))
    assert all(set(v) == {"labels", "flags", "reason"} for v in verdicts)


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_student_card_shows_the_student_api_and_command_and_both_work(
    student_dir: Path, tmp_path: Path
) -> None:
    from hf_spamguard.cards import REPO_PLACEHOLDER

    card = (student_dir / "README.md").read_text()
    # labels came as a bare Parquet file (no `spamguard label` manifest next to it): teacher unknown
    assert "teacher not recorded" in card and "trained on labelled data" not in card
    for name in ("`model.skops`", "`config.json`", "`student.json`", "`taxonomy.yaml`"):
        assert name in card and (student_dir / name.strip("`")).is_file(), name
    for wrong in ("BaselineClassifier", "is_spam", "spamguard predict", "policy.json"):
        assert wrong not in card, wrong
    assert not (student_dir / "policy.json").exists()
    assert "listing" not in card.lower()

    # The usage snippet, pointed at the local folder instead of downloading it, runs and returns
    # verdicts shaped like the example in the card.
    snippet = _code_blocks(card, "python")[0]
    assert "from hf_spamguard.reviews import load_student" in snippet
    local = snippet.replace(f'load_student("{REPO_PLACEHOLDER}")', f"load_student({str(student_dir)!r})")
    assert local != snippet
    *body, call, example = local.strip().splitlines()
    namespace: dict = {}
    exec("\n".join(body), namespace)
    verdicts = eval(call, namespace)
    [shown] = json.loads(example.removeprefix("# "))
    assert len(verdicts) == 1 and list(verdicts[0]) == list(shown) == ["labels", "flags", "reason"]
    assert list(verdicts[0]["labels"]) == list(shown["labels"]) == list(GENERATED_LABELS)

    # The command, with the downloaded folder and file names replaced, is a working `spamguard score`.
    download, command = _code_blocks(card, "bash")[0].strip().splitlines()
    args = shlex.split(command)[1:]
    assert args[0] == "score"
    # it scores the folder the line above downloads to
    local_dir = shlex.split(download)[shlex.split(download).index("--local-dir") + 1]
    assert args[args.index("--model") + 1] == local_dir
    src = write_generated_reviews(tmp_path / "reviews.csv", n=40, seed=11)
    values = {"--model": str(student_dir), "--input": str(src), "--out": str(tmp_path / "scores.parquet")}
    args = [values.get(prev, arg) for prev, arg in zip(["", *args[:-1]], args, strict=True)]
    result = CliRunner().invoke(app, [*args, "--no-progress", "--n-jobs", "1"])
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(tmp_path / "scores.parquet")
    assert len(scored) == 40 and {"id", "flags", *(f"p_{n}" for n in GENERATED_LABELS)} <= set(scored)
    assert (tmp_path / "scores.html").is_file()  # the report the card mentions


def test_distill_with_soft_targets_and_a_label_the_teacher_never_sets(
    tmp_path: Path, teacher_like_labels
) -> None:
    df = teacher_like_labels(300, 8)
    df["p_rant_without_visit"] = 0.01
    df.to_parquet(tmp_path / "labels.parquet")
    report = distill(
        DistillConfig(labels=str(tmp_path / "labels.parquet"), out=str(tmp_path / "s"), soft=True, **FAST),
        progress=False,
    )
    assert report["summary"]["targets"] == "soft"
    assert any("rant_without_visit" in note and "constant" in note for note in report["threshold_notes"])
    student = load_student(tmp_path / "s")
    P = student.predict_reviews(generate_reviews(20, seed=3))
    assert P.shape == (20, 4) and np.allclose(P[:, 2], 0.01)


def test_score_streams_in_parallel_and_matches_the_student(student_dir: Path, tmp_path: Path) -> None:
    src = write_generated_reviews(tmp_path / "big.csv", n=3000, seed=21)
    out = tmp_path / "scored.parquet"
    result = score_reviews(student_dir, src, out, chunk_size=400, n_jobs=2, progress=False)
    scored = pd.read_parquet(out)
    reviews = generate_reviews(3000, seed=21)
    assert result.rows == 3000 and scored["id"].tolist() == reviews["id"].tolist()
    student = load_student(student_dir)
    expected = student.predict_reviews(reviews)
    np.testing.assert_allclose(scored[[f"p_{n}" for n in GENERATED_LABELS]].to_numpy(), expected, atol=1e-6)
    flags = [
        [n for j, n in enumerate(GENERATED_LABELS) if row[j] >= student.thresholds[n]]
        for row in scored[[f"p_{n}" for n in GENERATED_LABELS]].to_numpy()
    ]
    assert [list(f) for f in scored["flags"]] == flags
    assert result.label_counts == {n: sum(n in f for f in flags) for n in GENERATED_LABELS}
    page = result.report_path.read_text()
    assert all(n in page for n in GENERATED_LABELS) and "3,000 rows" in page
    assert not out.with_name(out.name + ".parts").exists()
    import pyarrow.parquet as pq

    assert pq.ParquetFile(out).metadata.num_row_groups == 8  # written incrementally, one group per chunk


def test_score_resumes_after_an_interruption(
    student_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_generated_reviews(tmp_path / "in.parquet", n=2000, seed=5)
    clean = tmp_path / "clean.parquet"
    score_reviews(student_dir, src, clean, chunk_size=300, n_jobs=1, report=False, progress=False)
    out = tmp_path / "out.parquet"
    real = batch.iter_reviews

    def dies_after_three_chunks(*args, **kwargs):
        for k, chunk in enumerate(real(*args, **kwargs)):
            if k == 3:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(batch, "iter_reviews", dies_after_three_chunks)
    with pytest.raises(KeyboardInterrupt):
        score_reviews(student_dir, src, out, chunk_size=300, n_jobs=1, report=False, progress=False)
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts == ["part-000000.parquet", "part-000001.parquet", "part-000002.parquet"] and not out.exists()
    monkeypatch.setattr(batch, "iter_reviews", real)
    with pytest.raises(ValueError, match="chunk_size"):
        score_reviews(student_dir, src, out, chunk_size=100, n_jobs=1, report=False, progress=False)
    result = score_reviews(student_dir, src, out, chunk_size=300, n_jobs=2, report=False, progress=False)
    assert result.rows == 2000 and result.rows_scored_now == 2000 - 900
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(clean))


def test_score_keeps_unusable_rows_with_their_reason(student_dir: Path, tmp_path: Path) -> None:
    folder = write_generated_google_local(tmp_path / "gl", n=30, seed=2, empty=2, undecodable=1)
    out = tmp_path / "s.parquet"
    score_reviews(student_dir, folder, out, n_jobs=1, progress=False)
    scored = pd.read_parquet(out)
    assert len(scored) == 31
    unscored = scored[scored["p_spam"].isna()]
    assert len(unscored) == 3 and all(len(f) == 0 for f in unscored["flags"])
    assert unscored["error"].notna().sum() == 1


def test_cli_label_distill_score_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    src = write_generated_reviews(tmp_path / "reviews.tsv", n=48, seed=6)
    labels = tmp_path / "labels"
    res = runner.invoke(
        app,
        ["label", "--teacher", str(tiny_model_dir), "--input", str(src), "--out", str(labels),
         "--shard-size", "24", "--batch-size", "8", "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (labels / "labels.parquet").is_file() and "rows/s" in res.output
    student = tmp_path / "student"
    res = runner.invoke(
        app, ["distill", "--labels", str(labels), "--out", str(student), "--cs", "1", "--cv", "2"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads((student / "student.json").read_text())["taxonomy"] == "reviews"
    # a label folder carries the manifest: the card names the teacher (a local one by its folder name)
    card = (student / "README.md").read_text()
    assert f"distilled from the teacher `{tiny_model_dir.name}` (local)" in card
    assert "teacher not recorded" not in card and str(tiny_model_dir.parent) not in card
    scored = tmp_path / "scored.parquet"
    res = runner.invoke(
        app, ["score", "--model", str(student), "--input", str(src), "--out", str(scored), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "rows/s" in res.output and len(pd.read_parquet(scored)) == 48
    res = runner.invoke(
        app, ["score", "--model", str(tmp_path / "nope"), "--input", str(src), "--out", str(scored)]
    )
    assert res.exit_code == 1 and "Error:" in res.output and "student" in res.output


def test_precision_targets_parse_from_the_command_line_form() -> None:
    from hf_spamguard.reviews.distill import parse_precision_targets

    assert parse_precision_targets("0.9") == 0.9
    assert parse_precision_targets("spam=0.95, advertisement=0.8") == {"spam": 0.95, "advertisement": 0.8}
    assert parse_precision_targets("0.85,spam=0.95") == {"spam": 0.95, "*": 0.85}
    with pytest.raises(ValueError, match="'spam=high'"):
        parse_precision_targets("spam=high")
    with pytest.raises(ValueError, match=r"target_precision\['spam'\] must be in \(0, 1\]"):
        DistillConfig(labels="x", out="y", target_precision={"spam": 1.5})


def test_per_label_precision_targets_move_only_their_label(tmp_path: Path, teacher_like_labels) -> None:
    teacher_like_labels(300, 8).to_parquet(tmp_path / "labels.parquet")

    def run(name: str, target: float | dict[str, float]) -> dict:
        config = DistillConfig(
            labels=str(tmp_path / "labels.parquet"), out=str(tmp_path / name), target_precision=target, **FAST
        )
        return distill(config, progress=False)

    uniform, strict = run("uniform", 0.5), run("strict", {"spam": 0.99, "*": 0.5})
    assert strict["thresholds"]["spam"] >= uniform["thresholds"]["spam"]
    for name in GENERATED_LABELS:
        if name != "spam":
            assert strict["thresholds"][name] == uniform["thresholds"][name], name
    student = json.loads((tmp_path / "strict" / "student.json").read_text())
    assert student["target_precision"]["spam"] == 0.99 and student["target_precision"]["advertisement"] == 0.5
    assert "spam 0.99" in (tmp_path / "strict" / "README.md").read_text()
    with pytest.raises(ValueError, match="not in the taxonomy: \\['spma'\\]"):
        run("typo", {"spma": 0.9})
