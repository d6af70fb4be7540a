"""``spamguard demo``: the whole flow end to end (quick sizes), through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from hf_spamguard.cards import flatten_metrics, headline_metrics
from hf_spamguard.cli import app

VERDICT_KEYS = {"is_spam", "confidence", "reason"}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "Done in" in result.output and "macro-F1" in result.output  # the final summary table
    (out.parent / "console.txt").write_text(result.output)
    return out


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_demo_writes_every_artefact(demo_out: Path) -> None:
    assert list((demo_out / "dataset" / "data").glob("test-*.parquet"))
    for model in ("baseline", "vlm"):
        report = demo_out / "reports" / model
        assert (report / "metrics.json").is_file(), model
        assert (report / "gallery.html").is_file(), model
        assert len(list(report.glob("*.png"))) >= 2, model  # threshold sweep + reliability diagram
        assert (demo_out / "models" / model / "README.md").is_file(), model
    assert (demo_out / "models" / "baseline" / "model.skops").is_file()
    assert (demo_out / "models" / "vlm" / "calibration.json").is_file()
    assert (demo_out / "models" / "vlm" / "policy.json").is_file()
    for name in ("model", "dataset", "baseline", "listing_spam_policy"):
        assert (demo_out / "hub" / name / "README.md").is_file(), name
    assert "custom_pipelines" in (demo_out / "hub" / "model" / "config.json").read_text()
    summary = json.loads((demo_out / "summary.json").read_text())
    assert set(summary["metrics"]) == {"baseline", "vlm"}
    assert set(summary["timings_s"]) >= {"dataset", "baseline", "finetune", "predict", "evaluate", "hub"}


def test_demo_predictions_are_verdicts_for_every_test_row(demo_out: Path) -> None:
    import datasets

    test = datasets.load_dataset(str(demo_out / "dataset"), split="test")
    for model in ("baseline", "vlm"):
        rows = _jsonl(demo_out / "predictions" / f"{model}.jsonl")
        assert [r["id"] for r in rows] == list(test["product_id"]), model
        assert [r["label"] for r in rows] == list(test["label"]), model
        for row in rows:
            assert set(row) >= VERDICT_KEYS and 0.0 <= row["confidence"] <= 1.0
            assert row["decision"] in ("keep", "review", "demote")


@pytest.mark.parametrize("model", ["baseline", "vlm"])
def test_model_card_shows_the_metrics_actually_measured(demo_out: Path, model: str) -> None:
    measured = flatten_metrics(json.loads((demo_out / "reports" / model / "policy_metric.json").read_text()))
    report = flatten_metrics(json.loads((demo_out / "reports" / model / "metrics.json").read_text()))
    card = ModelCard.load(demo_out / "models" / model / "README.md")
    index = {r.metric_type: r.metric_value for r in card.data.eval_results}
    headline = headline_metrics(measured)
    assert {"macro_f1", "roc_auc", "pr_auc", "ece"} <= set(
        headline
    )  # demote_precision is None with no demotes
    for name, value in headline.items():
        assert index[name] == pytest.approx(round(value, 4) if isinstance(value, float) else value), name
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        assert f"| {name} | {shown} |" in card.text, name
        # the report (metrics.json) measured the same thing on the same predictions
        if name in report:
            assert report[name] == pytest.approx(value, abs=1e-9), name
    # the card published in the Hub folder is the same card, pointed at the demo repo id
    hub_name = "model" if model == "vlm" else "baseline"
    published = (demo_out / "hub" / hub_name / "README.md").read_text()
    assert yaml.safe_load(published.split("---\n")[1])["model-index"][0]["results"][0]["metrics"][0][
        "value"
    ] == (card.data.eval_results[0].metric_value)


def test_demo_with_a_bad_tsv_fails_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "listings.tsv"
    bad.write_text("product_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n1\t\tok\tabc\t0\t1\n")
    result = CliRunner().invoke(app, ["demo", "--data", str(bad), "--out", str(tmp_path / "out"), "--quick"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and result.output.strip().endswith(errors[0])
    message = errors[0]
    assert "listings.tsv" in message and "yes_count" in message and "line 2" in message


def test_user_tsv_gets_train_validation_and_test_splits(demo_dir: Path, tmp_path: Path) -> None:
    from hf_spamguard.demo import DemoConfig, _build_dataset

    dataset_dir, sizes = _build_dataset(
        tmp_path, demo_dir / "train.tsv", demo_dir / "images", DemoConfig.quick()
    )
    import datasets

    dd = datasets.load_dataset(str(dataset_dir))
    assert set(dd) == {"train", "validation", "test"}
    ids = [set(dd[s]["product_id"]) for s in dd]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]), "splits overlap"
    n_rows = len((demo_dir / "train.tsv").read_text().strip().splitlines()) - 1
    assert sum(len(dd[s]) for s in dd) == n_rows
    assert set(dd["test"]["label"]) == {0, 1}
    assert "test" in sizes


def test_published_demo_model_runs_where_the_package_is_not_installed(demo_out: Path, tmp_path: Path) -> None:
    # The fine-tuned (merged) model as written for the Hub, loaded by plain transformers in an
    # interpreter that cannot import hf_spamguard (python -S: the editable install's .pth is not run).
    import os
    import subprocess
    import sys
    import sysconfig

    code = (
        "import json, sys\n"
        "try:\n    import hf_spamguard\nexcept ImportError:\n    pass\nelse:\n    sys.exit('importable')\n"
        "from transformers import pipeline\n"
        "pipe = pipeline('listing-spam', model=sys.argv[1], trust_remote_code=True)\n"
        "print('RESULT=' + json.dumps(pipe(['Levi 501 jeans. tags: wrangler lee diesel y2k'], reason=False)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=sysconfig.get_paths()["purelib"], HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code, str(demo_out / "hub" / "model")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdicts = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))[7:])
    policy = json.loads((demo_out / "models" / "vlm" / "policy.json").read_text())
    assert len(verdicts) == 1 and set(verdicts[0]) >= VERDICT_KEYS
    # the saved policy.json is applied by default: the decision follows the stored thresholds
    confidence = verdicts[0]["confidence"]
    expected = (
        "demote" if confidence >= policy["demote"] else "review" if confidence >= policy["review"] else "keep"
    )
    assert verdicts[0]["decision"] == expected


def test_demo_on_real_listings_end_to_end(depop_tsv: Path, tmp_path: Path) -> None:
    # The documented "same flow on your data" path, on 240 real Depop listings (text only: their photo
    # URLs are dead and no image folder is given).
    lines = depop_tsv.read_text(encoding="utf-8").splitlines()
    tsv = tmp_path / "listings.tsv"
    tsv.write_text("\n".join(lines[:241]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["demo", "--data", str(tsv), "--out", str(out), "--quick"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"] == str(tsv)
    import datasets

    dd = datasets.load_dataset(str(out / "dataset"))
    assert sum(len(split) for split in dd.values()) == 240
    assert all(image is None for image in dd["test"]["image"])
    for model in ("baseline", "vlm"):
        rows = _jsonl(out / "predictions" / f"{model}.jsonl")
        assert [r["id"] for r in rows] == list(dd["test"]["product_id"]), model
    # Real keyword spam is learnable from 170-odd rows: the baseline ranks it well above chance.
    assert summary["metrics"]["baseline"]["roc_auc"] > 0.8, summary["metrics"]["baseline"]


def test_demo_leaves_no_scratch_and_says_when_the_vlm_has_no_signal(demo_out: Path) -> None:
    """No empty models/vlm_training/ is left behind; a temperature fit on its bound is reported in
    summary.json and on screen; the Hub-ready adapter names its base without this machine's path."""
    models = demo_out / "models"
    assert not (models / "vlm_training").exists() and not list(models.glob(".vlm_training-*"))
    summary = json.loads((demo_out / "summary.json").read_text())
    calib = summary["vlm_calibration"]
    training = json.loads((models / "vlm" / "training_summary.json").read_text())
    assert calib["temperature"] == pytest.approx(training["temperature"])
    assert calib["at_bound"] == training["temperature_fit"]["at_bound"]
    low, high = calib["test_confidence_range"]
    assert 0.0 <= low <= high <= 1.0
    shown = " ".join((demo_out.parent / "console.txt").read_text().split())  # rich wraps long lines
    if calib["at_bound"] and calib["temperature"] >= 1.0:
        assert "no signal" in calib["note"] and f"{low:.3f}–{high:.3f}" in calib["note"]
        assert "hit the upper bound" in shown and any("no signal" in n for n in summary["notes"])
    else:
        assert calib["note"] is None
    adapter = (demo_out / "hub" / "model" / "adapter" / "adapter_config.json").read_text()
    assert json.loads(adapter)["base_model_name_or_path"] == "tiny-qwen3-vl-base"
    assert str(demo_out) not in adapter
    assert str(demo_out) not in (demo_out / "hub" / "model" / "adapter" / "README.md").read_text()
    assert "\ufffd" not in (demo_out / "predictions" / "vlm.jsonl").read_text(encoding="utf-8")


def test_console_output_is_not_wrapped_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    # captured stdout is not a terminal, like a log or CI: a long path or number stays whole on its line
    from hf_spamguard.demo import _Steps

    steps = _Steps(total=1)
    long_line = "Everything is in " + "/very/long/path" * 8 + " 0.123456789"
    steps.console.print(long_line)
    assert long_line in capsys.readouterr().out.splitlines()
