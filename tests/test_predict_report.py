"""`spamguard baseline train` → `spamguard predict` → `spamguard evaluate`, end to end on the demo data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hf_spamguard.cli import app
from hf_spamguard.predict import model_kind, predict_to_jsonl, read_predictions
from hf_spamguard.report import write_report

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline_model")
    result = runner.invoke(
        app, ["baseline", "train", "--dataset", str(demo_dir), "--out", str(out), "--cv", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "thresholds: review" in result.output
    return out


def test_train_saves_model_and_selected_policy(trained):
    assert model_kind(trained) == "baseline"
    policy = json.loads((trained / "policy.json").read_text())
    assert 0 <= policy["review"] <= policy["demote"] <= 1
    assert policy["selection"]["targets"]["target_demote_precision"] == 0.98
    config = json.loads((trained / "config.json").read_text())
    assert "validation" in config["training"]


def test_train_writes_the_model_card_with_the_validation_results(trained):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained / "README.md")
    assert card.data.library_name == "sklearn"
    (result,) = card.data.eval_results[:1]
    assert result.dataset_split == "validation"
    validation = json.loads((trained / "config.json").read_text())["training"]["validation"]
    by_type = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert by_type["roc_auc"] == pytest.approx(validation["roc_auc"], abs=1e-4)
    policy = json.loads((trained / "policy.json").read_text())
    assert f"{policy['demote']:.3f}"[:4] in card.text  # the selected thresholds are in the card body


def test_predict_writes_rows_in_input_order(trained, demo_dir, tmp_path):
    from hf_spamguard.data import load_listings

    out = tmp_path / "preds.jsonl"
    result = runner.invoke(
        app, ["predict", "--model", str(trained), "--dataset", str(demo_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    test = load_listings(demo_dir, "test")
    assert [r["id"] for r in rows] == list(test["product_id"])
    assert [r["label"] for r in rows] == list(test["label"])
    for r in rows:
        assert set(r) == {"id", "is_spam", "confidence", "reason", "decision", "label"}
        assert r["reason"]
    assert read_predictions(out)[0]["id"] == rows[0]["id"]


def test_evaluate_report(trained, demo_dir, tmp_path):
    preds = tmp_path / "preds.jsonl"
    predict_to_jsonl(trained, demo_dir, split="test", out=preds, batch_size=16)
    # make the gallery face hostile text: it must come out escaped
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    rows[0]["reason"] = "<script>alert(1)</script>"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report"
    result = runner.invoke(
        app, ["evaluate", "--predictions", str(preds), "--out", str(report), "--dataset", str(demo_dir)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    policy = json.loads((trained / "policy.json").read_text())
    # the thresholds predict applied travel in its sidecar (#12.5): the report shows the model's own
    assert metrics["thresholds_source"] == "applied by spamguard predict"
    assert metrics["thresholds"] == {"review": policy["review"], "demote": policy["demote"]}
    for action in ("keep", "review", "demote"):  # the thresholds reproduce every decision
        assert metrics["actions"][action]["count"] == sum(r["decision"] == action for r in rows)
    assert metrics["roc_auc"] > 0.9
    assert sum(a["count"] for a in metrics["actions"].values()) == len(rows)
    for name in ("threshold_sweep.png", "reliability.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report / "gallery.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "Demoted, legitimate" in page and "Kept, spam" in page and "Correctly kept" in page
    assert "thumbnails/" in page and any((report / "thumbnails").iterdir())


def test_report_with_fixed_thresholds_and_bad_files(tmp_path):
    preds = tmp_path / "p.jsonl"
    rows = [
        {"id": str(i), "is_spam": c >= 0.5, "confidence": c, "reason": "", "label": y}
        for i, (c, y) in enumerate([(0.9, 1), (0.8, 1), (0.6, 0), (0.2, 0), (0.1, 1)])
    ]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = write_report(preds, tmp_path / "r", thresholds={"review": 0.5, "demote": 0.85})
    assert metrics["actions"]["demote"]["count"] == 1 and metrics["actions"]["review"]["count"] == 2
    preds.write_text(json.dumps(rows[0]) + "\n" + '{"id": "x", "confidence": 1.7}\n')
    result = runner.invoke(app, ["evaluate", "--predictions", str(preds), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 1
    assert "p.jsonl, line 2, field 'confidence'" in result.output


def test_predict_errors_are_one_line(tmp_path):
    result = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(tmp_path / "nope"),
            "--dataset",
            "x.tsv",
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert result.exit_code == 1 and "no such model folder" in result.output


def test_baseline_cli_does_not_import_torch():
    code = "import sys; from hf_spamguard.cli import app; import hf_spamguard.baseline, hf_spamguard.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_predict_dispatches_to_the_vlm_pipeline(tiny_model_dir, demo_dir, tmp_path):
    from hf_spamguard.data import load_listings

    rows = load_listings(demo_dir, "test").select(range(3))
    assert model_kind(tiny_model_dir) == "vlm"
    summary = predict_to_jsonl(tiny_model_dir, rows, out=tmp_path / "vlm.jsonl", batch_size=3, reason=True)
    assert summary.model_kind == "vlm" and summary.n == 3
    out = read_predictions(tmp_path / "vlm.jsonl")
    assert [r["id"] for r in out] == list(rows["product_id"])
    assert all(0.0 <= r["confidence"] <= 1.0 and "label" in r for r in out)


@pytest.mark.parametrize(
    "command,option",
    [
        (["baseline", "train"], "--target-demote-precision"),
        (["predict"], "--split"),
        (["evaluate"], "--predictions"),
    ],
)
def test_help_names_the_options(command, option):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and option in result.output
