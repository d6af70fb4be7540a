"""Cards: rendered from the model_card/ templates with huggingface_hub's card classes."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard, SpaceCard

from hf_spamguard import cards

REPO_ROOT = Path(__file__).resolve().parents[1]


def _front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def _policy_results(seed: int = 0) -> dict:
    from hf_spamguard.policy import evaluate_policy

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    conf = np.clip(labels * 0.6 + rng.normal(0.2, 0.2, 200), 0, 1)
    return evaluate_policy(labels, conf, {"review": 0.4, "demote": 0.75})


def test_templates_are_found_in_the_repository_and_exist() -> None:
    assert cards.template_dir() == REPO_ROOT / "model_card"
    for name in ("model_card", "dataset_card", "metric_card", "baseline_card"):
        assert cards.template_path(name).is_file()
    with pytest.raises(FileNotFoundError, match="no_such_card"):
        cards.template_path("no_such_card")


def test_templates_are_found_next_to_the_module_in_a_wheel_layout(tmp_path: Path) -> None:
    # A wheel ships the templates as hf_spamguard/model_card (hatch_build.py): load a copy of
    # cards.py from such a layout and check it finds that folder, not the repository's.
    pkg = tmp_path / "site" / "hf_spamguard"
    pkg.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "src" / "hf_spamguard" / "cards.py", pkg / "cards.py")
    shutil.copytree(REPO_ROOT / "model_card", pkg / "model_card")
    (pkg / "model_card" / "model_card.md").write_text("---\n{{ card_data }}\n---\nWHEEL COPY\n")
    spec = importlib.util.spec_from_file_location("wheel_cards", pkg / "cards.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["wheel_cards"] = module
    try:
        spec.loader.exec_module(module)
        assert module.template_dir() == pkg / "model_card"
        out = module.render_model_card(tmp_path / "m", base_model="org/base")
        assert "WHEEL COPY" in out.read_text()
    finally:
        del sys.modules["wheel_cards"]


@pytest.mark.parametrize("version", ["standard", "editable"])
def test_wheels_ship_the_templates_only_where_they_are_needed(tmp_path: Path, version: str) -> None:
    # The real build backend on the real pyproject: a regular wheel carries hf_spamguard/model_card/*.md;
    # an editable wheel must carry no hf_spamguard/ folder at all, or that folder alone imports as a
    # namespace package wherever site-packages is on the path (and cards read the checkout anyway).
    import zipfile

    pytest.importorskip("hatchling")
    pytest.importorskip("editables")
    from hatchling.builders.wheel import WheelBuilder

    wheel = next(WheelBuilder(str(REPO_ROOT)).build(directory=str(tmp_path), versions=[version]))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n for n in names if n.startswith("hf_spamguard/")}
    if version == "standard":
        templates = {f"hf_spamguard/model_card/{p.name}" for p in (REPO_ROOT / "model_card").glob("*.md")}
        assert templates and templates <= shipped
        assert "hf_spamguard/cards.py" in shipped
    else:
        assert shipped == set()
        assert any(n.endswith(".pth") for n in names)


def test_model_card_carries_the_measured_policy_metrics(tmp_path: Path) -> None:
    results = _policy_results()
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "calibration.json").write_text('{"temperature": 1.7}')
    path = cards.render_model_card(
        folder,
        base_model="Qwen/Qwen3-VL-2B-Instruct",
        adapter=True,
        training_config={"learning_rate": 2e-4, "lora_r": 16, "max_steps": 30},
        dataset="org/listings",
        thresholds={"review": 0.4, "demote": 0.75},
        eval_results=results,
        repo_id="org/spamguard-vl",
    )
    assert path == folder / "README.md"
    card = ModelCard.load(path)
    assert card.data.base_model == "Qwen/Qwen3-VL-2B-Instruct"
    assert card.data.datasets == ["org/listings"]
    assert "custom_code" in card.data.tags and "lora" in card.data.tags
    index = {r.metric_type: r.metric_value for r in card.data.eval_results}
    for name in ("macro_f1", "roc_auc", "pr_auc", "ece", "brier", "demote_precision", "review_load"):
        assert index[name] == pytest.approx(round(results[name], 4)), name
        assert f"| {name} | {results[name]:.4f} |" in card.text
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    assert {r.dataset_type for r in card.data.eval_results} == {"org/listings"}
    # per-action stats are flattened like policy.flatten_report does
    assert f"| demote_count | {results['actions']['demote']['count']} |" in card.text
    # policy, calibration, usage and training facts
    assert "`confidence >= 0.4000` sends the listing to a human review queue" in card.text
    assert "**T = 1.7000**" in card.text
    assert 'pipeline("listing-spam", model="org/spamguard-vl", trust_remote_code=True)' in card.text
    assert "| `lora_r` | 16 |" in card.text
    assert f"({results['n']} listings)" in card.text
    for section in ("## Intended use", "## Limitations and risks", "Label noise", "Adversarial sellers"):
        assert section in card.text
    assert not list(folder.glob(".*.tmp")), "atomic write left a temp file"


def test_model_card_reads_policy_json_and_omits_local_paths_from_metadata(tmp_path: Path) -> None:
    from hf_spamguard.policy import Thresholds

    Thresholds(0.3, 0.9).save(tmp_path)
    cards.render_model_card(tmp_path, base_model=str(tmp_path), adapter=False, dataset=str(tmp_path))
    card = ModelCard.load(tmp_path / "README.md")
    # a local base model / dataset path is not a Hub id: not in the YAML, but named in the body
    assert card.data.base_model is None and card.data.datasets is None
    assert card.data.eval_results is None
    assert "merged weights" in card.text
    assert "`confidence >= 0.9000` demotes the listing automatically" in card.text
    assert "No evaluation results were recorded" in card.text
    assert cards.REPO_PLACEHOLDER in card.text  # hub.py swaps it for the repo id at publish time


def test_bad_thresholds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="review <= demote"):
        cards.render_model_card(tmp_path, base_model="org/b", thresholds={"review": 0.9, "demote": 0.5})
    with pytest.raises(ValueError, match="'review' and 'demote'"):
        cards.render_model_card(tmp_path, base_model="org/b", thresholds={"review": 0.2})
    assert not (tmp_path / "README.md").exists()


def test_flatten_metrics_keeps_numbers_only() -> None:
    flat = cards.flatten_metrics(
        {
            "a": 1,
            "b": 0.5,
            "c": None,
            "d": "x",
            "e": True,
            "f": float("nan"),
            "g": {"h": np.float32(0.25)},
            "thresholds": {"review": 0.1},
            "actions": {"keep": {"count": 3}},
        }
    )
    assert flat == {"a": 1, "b": 0.5, "g_h": 0.25, "keep_count": 3}
    assert isinstance(flat["g_h"], float)


def test_baseline_and_student_cards(tmp_path: Path) -> None:
    results = _policy_results(1)
    binary = tmp_path / "baseline"
    cards.render_baseline_card(
        binary, dataset="org/listings", thresholds={"review": 0.4, "demote": 0.75}, eval_results=results
    )
    card = ModelCard.load(binary / "README.md")
    assert card.data.library_name == "sklearn" and "skops" in card.data.tags
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["macro_f1"] == pytest.approx(
        round(results["macro_f1"], 4)
    )
    assert "sio.load(" in card.text and "trusted=" in card.text
    # the binary baseline's own API, command and files, none of the student's
    assert "from hf_spamguard.baseline import BaselineClassifier" in card.text
    assert '"is_spam": true' in card.text and "spamguard predict --model" in card.text
    assert "`policy.json`" in card.text and "listing" in card.text
    for student_only in ("load_student", "spamguard score", "student.json", "teacher"):
        assert student_only not in card.text, student_only

    student = tmp_path / "student"
    names = ["advertisement", "irrelevant", "rant_without_visit", "spam"]
    cards.render_baseline_card(
        student,
        labels=names,
        label_thresholds={"advertisement": 0.61, "irrelevant": 0.42, "rant_without_visit": 0.5, "spam": 0.7},
        eval_results={"advertisement": {"f1": 0.81}, "spam": {"f1": 0.66}, "macro_f1": 0.7},
        teacher="google/gemma-3-12b-it",
        target_precision=0.9,
        repo_id="org/review-student",
    )
    card = ModelCard.load(student / "README.md")
    assert "multi-label" in card.data.tags
    index = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert index == {"macro_f1": 0.7, "advertisement_f1": 0.81, "spam_f1": 0.66}
    assert "| `irrelevant` | 0.4200 |" in card.text
    assert "distilled from the teacher `google/gemma-3-12b-it`" in card.text
    # the student's API, verdict format, command and files, none of the listing baseline's
    assert "from hf_spamguard.distill import load_student" in card.text
    assert 'load_student("org/review-student")' in card.text
    assert "spamguard score --model student --input" in card.text
    assert "hf download org/review-student --local-dir student" in card.text
    for name in ("`model.skops`", "`config.json`", "`student.json`", "`taxonomy.yaml`"):
        assert name in card.text, name
    for binary_only in ("BaselineClassifier", "is_spam", "spamguard predict", "policy.json"):
        assert binary_only not in card.text, binary_only
    assert "listing" not in card.text.lower()  # review wording throughout, no listing-only limitations
    example = next(line for line in card.text.splitlines() if line.startswith("# [{"))
    [verdict] = json.loads(example[2:])
    assert list(verdict) == ["labels", "flags", "reason"] and list(verdict["labels"]) == names
    assert verdict["flags"] == ["advertisement"]  # 0.97 >= 0.61; the others at 0.02 are below threshold

    # Labels given as a bare Parquet file: no manifest, so the teacher is unknown and the card says so.
    unknown = tmp_path / "unknown_teacher"
    cards.render_baseline_card(unknown, labels=names, student=True)
    text = (unknown / "README.md").read_text()
    assert "teacher not recorded" in text and "trained on labelled data" not in text
    assert "distilled from the teacher `" not in text
    # a teacher given as a local folder is named, not its path on the labelling machine
    cards.render_baseline_card(unknown, labels=names, teacher="/data/runs/qwen3-teacher")
    text = (unknown / "README.md").read_text()
    assert "distilled from the teacher `qwen3-teacher` (local)" in text and "/data/runs" not in text


def test_dataset_card_keeps_the_loading_config(demo_dataset_dir: Path, tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "ds"
    shutil.copytree(demo_dataset_dir, folder)
    before = DatasetCard.load(folder / "README.md").data.to_dict()
    cards.render_dataset_card(folder, repo_id="org/listings")
    card = DatasetCard.load(folder / "README.md")
    assert card.data.to_dict()["configs"] == before["configs"]
    assert card.data.license == "apache-2.0" and "text-classification" in card.data.task_categories
    dd = datasets.load_dataset(str(folder))
    for split in dd:
        n = len(dd[split])
        spam = sum(dd[split]["label"])
        with_image = sum(
            x is not None for x in dd[split].cast_column("image", datasets.Image(decode=False))["image"]
        )
        assert f"| {split} | {n} | {spam} | {n - spam} |" in card.text
        assert f"| {with_image} ({with_image / n:.0%}) |" in card.text
    assert 'load_dataset("org/listings")' in card.text
    assert "`label_confidence` | float32" in card.text


def test_metric_card_is_a_space_card(tmp_path: Path) -> None:
    from hf_spamguard.metrics import export_space

    folder = export_space("listing_spam_policy", tmp_path)
    cards.render_metric_card(folder, repo_id="org/listing_spam_policy")
    card = SpaceCard.load(folder / "README.md")
    meta = _front_matter(folder / "README.md")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert {"evaluate", "metric"} <= set(meta["tags"])
    assert 'evaluate.load("org/listing_spam_policy")' in card.text
    assert "### Inputs" in card.text  # the metric's own documentation is kept as the body

    bare = tmp_path / "bare"
    cards.render_metric_card(bare)
    assert "# Metric: listing_spam_policy" in (bare / "README.md").read_text()
