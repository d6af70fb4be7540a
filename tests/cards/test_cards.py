"""Cards: rendered from the model_card/ templates with huggingface_hub's card classes, from plain facts."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard, ModelCardData, SpaceCard

from hf_spamguard import cards
from hf_spamguard.cards import BaselineCardFacts, ModelCardFacts, StudentCardFacts
from hf_spamguard.cards.render import is_hub_ref

REPO_ROOT = Path(__file__).resolve().parents[2]
REVIEW_LABELS = ("advertisement", "irrelevant", "rant_without_visit", "spam")
TRUSTED = ("builtins.dict", "numpy.ndarray")


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


RESULTS = _policy_results()
BASELINE_RESULTS = _policy_results(1)


# ============================================================================================ templates
def test_templates_are_found_in_the_repository_and_exist() -> None:
    assert cards.template_dir() == REPO_ROOT / "model_card"
    for name in ("model_card", "dataset_card", "metric_card", "baseline_card"):
        assert cards.template_path(name).is_file()
    with pytest.raises(FileNotFoundError, match="no_such_card"):
        cards.template_path("no_such_card")


def test_templates_are_found_next_to_the_module_in_a_wheel_layout(tmp_path: Path) -> None:
    # A wheel ships the templates as hf_spamguard/model_card (hatch_build.py): load a copy of
    # cards/render.py from such a layout and check it finds that folder, not the repository's.
    pkg = tmp_path / "site" / "hf_spamguard"
    (pkg / "cards").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "src" / "hf_spamguard" / "cards" / "render.py", pkg / "cards" / "render.py")
    shutil.copytree(REPO_ROOT / "model_card", pkg / "model_card")
    (pkg / "model_card" / "model_card.md").write_text("---\n{{ card_data }}\n---\nWHEEL COPY\n")
    spec = importlib.util.spec_from_file_location("wheel_cards_render", pkg / "cards" / "render.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["wheel_cards_render"] = module
    try:
        spec.loader.exec_module(module)
        assert module.template_dir() == pkg / "model_card"
        assert "WHEEL COPY" in module.render("model_card", ModelCardData(license="apache-2.0"))
    finally:
        del sys.modules["wheel_cards_render"]


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
        assert {"hf_spamguard/cards/__init__.py", "hf_spamguard/cards/render.py"} <= shipped
    else:
        assert shipped == set()
        assert any(n.endswith(".pth") for n in names)


# ============================================================================================ one table
@dataclass
class Case:
    """One card kind with one set of facts, and what its README.md must (not) say."""

    id: str
    render: Callable[..., Path]
    facts: Callable[[Path], Any]  # built from the card's folder (local paths must exist)
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)  # card.data attributes
    check: Callable[[ModelCard], None] | None = None


def _check_policy_index(card: ModelCard, results: dict = RESULTS) -> None:
    index = {r.metric_type: r.metric_value for r in card.data.eval_results}
    for name in ("macro_f1", "roc_auc", "pr_auc", "ece", "brier", "demote_precision", "review_load"):
        assert index[name] == pytest.approx(round(results[name], 4)), name
        assert f"| {name} | {results[name]:.4f} |" in card.text
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    assert {r.dataset_type for r in card.data.eval_results} == {"org/listings"}


def _check_student_index(card: ModelCard) -> None:
    index = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert index == {"macro_f1": 0.7, "advertisement_f1": 0.81, "spam_f1": 0.66}
    assert "listing" not in card.text.lower()  # review wording throughout, no listing-only limitations
    example = next(line for line in card.text.splitlines() if line.startswith("# [{"))
    [verdict] = json.loads(example[2:])
    assert list(verdict) == ["labels", "flags", "reason"] and list(verdict["labels"]) == list(REVIEW_LABELS)
    assert verdict["flags"] == ["advertisement"]  # 0.97 >= 0.61; the others at 0.02 are below threshold


STUDENT = {
    "labels": REVIEW_LABELS,
    "label_thresholds": {"advertisement": 0.61, "irrelevant": 0.42, "rant_without_visit": 0.5, "spam": 0.7},
    "eval_results": {"advertisement": {"f1": 0.81}, "spam": {"f1": 0.66}, "macro_f1": 0.7},
    "target_precision": 0.9,
}

CASES = [
    Case(
        "model-measured",
        cards.render_model_card,
        lambda folder: ModelCardFacts(
            base_model="Qwen/Qwen3-VL-2B-Instruct",
            adapter=True,
            training_config={"learning_rate": 2e-4, "lora_r": 16, "max_steps": 30},
            dataset="org/listings",
            thresholds={"review": 0.4, "demote": 0.75},
            eval_results=RESULTS,
            temperature=1.7,
            system_prompt="You are a careful moderator.",
            repo_id="org/spamguard-vl",
        ),
        present=(
            f"| demote_count | {RESULTS['actions']['demote']['count']} |",  # flattened like flatten_report
            "`confidence >= 0.4000` sends the listing to a human review queue",
            "**T = 1.7000**",
            'pipeline("listing-spam", model="org/spamguard-vl", trust_remote_code=True)',
            "| `lora_r` | 16 |",
            f"({RESULTS['n']} listings)",
            "You are a careful moderator.",
            "at most 200 characters",
            f"[hf-spamguard](https://github.com/hf-spamguard/hf-spamguard) {cards.installed_version()}",
            "## Intended use",
            "## Limitations and risks",
            "Label noise",
            "Adversarial sellers",
        ),
        metadata={"base_model": "Qwen/Qwen3-VL-2B-Instruct", "datasets": ["org/listings"]},
        check=lambda card: (
            _check_policy_index(card),
            {"custom_code", "lora"} <= set(card.data.tags) or pytest.fail("tags"),
        ),
    ),
    Case(
        "model-local-bare",
        cards.render_model_card,
        # a local base model / dataset path is not a Hub id: not in the YAML, but named in the body
        lambda folder: ModelCardFacts(base_model=str(folder), adapter=False, dataset=str(folder)),
        present=(
            "merged weights",
            "| `review` | not selected | |",
            "No evaluation results were recorded",
            "(see hf_spamguard.prompts.SYSTEM_PROMPT)",
            "**T = 1 (not calibrated)**",
            cards.REPO_PLACEHOLDER,  # publish swaps it for the repo id
        ),
        metadata={"base_model": None, "datasets": None, "eval_results": None, "library_name": "transformers"},
        check=lambda card: "lora" not in card.data.tags or pytest.fail("tags"),
    ),
    Case(
        "model-canonical-base",
        cards.render_model_card,
        lambda folder: ModelCardFacts(base_model="gpt2", package_version="9.9.9", extra_notes="Merged late."),
        present=("[`gpt2`](https://huggingface.co/gpt2)", "hf-spamguard) 9.9.9", "## Notes\n\nMerged late."),
        metadata={"base_model": "gpt2"},
    ),
    Case(
        "baseline",
        cards.render_baseline_card,
        lambda folder: BaselineCardFacts(
            dataset="org/listings",
            thresholds={"review": 0.4, "demote": 0.75},
            eval_results=BASELINE_RESULTS,
            trusted_types=TRUSTED,
        ),
        present=(
            "sio.load(",
            f"trusted = {json.dumps(list(TRUSTED))}",
            # the binary baseline's own API, command and files, none of the student's
            "from hf_spamguard.baseline import BaselineClassifier",
            '"is_spam": true',
            "spamguard predict --model",
            "`policy.json`",
            "| `demote` | 0.7500 |",
        ),
        absent=("load_student", "spamguard score", "student.json", "teacher"),
        metadata={"library_name": "sklearn"},
        check=lambda card: (
            "skops" in card.data.tags or pytest.fail("tags"),
            {r.metric_type: r.metric_value for r in card.data.eval_results}["macro_f1"]
            == pytest.approx(round(BASELINE_RESULTS["macro_f1"], 4))
            or pytest.fail("macro_f1"),
        ),
    ),
    Case(
        "baseline-without-trust-list",
        cards.render_baseline_card,
        lambda folder: BaselineCardFacts(),
        present=(
            "sio.load(",
            "compare with hf_spamguard.baseline.TRUSTED_TYPES",
            "No thresholds were recorded",
        ),
        absent=("trusted = [",),
    ),
    Case(
        "student",
        cards.render_student_card,
        lambda folder: StudentCardFacts(
            **STUDENT, teacher="google/gemma-3-12b-it", repo_id="org/review-student", trusted_types=TRUSTED
        ),
        present=(
            "| `irrelevant` | 0.4200 |",
            "distilled from the teacher `google/gemma-3-12b-it`",
            # the student's API, verdict format, command and files, none of the listing baseline's
            "from hf_spamguard.reviews import load_student",
            'load_student("org/review-student")',
            "spamguard score --model student --input",
            "hf download org/review-student --local-dir student",
            "`model.skops`",
            "`config.json`",
            "`student.json`",
            "`taxonomy.yaml`",
            "(target precision 0.9 against the teacher)",
        ),
        absent=("BaselineClassifier", "is_spam", "spamguard predict", "policy.json"),
        check=lambda card: (
            "multi-label" in card.data.tags or pytest.fail("tags"),
            _check_student_index(card),
        ),
    ),
    # Labels given as a bare Parquet file: no manifest, so the teacher is unknown and the card says so.
    Case(
        "student-teacher-unknown",
        cards.render_student_card,
        lambda folder: StudentCardFacts(labels=REVIEW_LABELS),
        present=("teacher not recorded",),
        absent=("trained on labelled data", "distilled from the teacher `"),
    ),
    # a teacher given as a local folder is named, not its path on the labelling machine
    Case(
        "student-local-teacher",
        cards.render_student_card,
        lambda folder: StudentCardFacts(labels=REVIEW_LABELS, teacher="/data/runs/qwen3-teacher"),
        present=("distilled from the teacher `qwen3-teacher` (local)",),
        absent=("/data/runs",),
    ),
    Case(
        "student-per-label-targets",
        cards.render_baseline_card,  # dispatches on the facts class
        lambda folder: StudentCardFacts(
            labels=REVIEW_LABELS, label_thresholds={"spam": 0.5}, target_precision={"spam": 0.99}
        ),
        present=("(target precision spam 0.9900 against the teacher)",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_card_from_facts(case: Case, tmp_path: Path) -> None:
    folder = tmp_path / "card"
    folder.mkdir()
    path = case.render(folder, case.facts(folder))
    assert path == folder / "README.md"
    card = ModelCard.load(path)
    for text in case.present:
        assert text in card.text, text
    for text in case.absent:
        assert text not in card.text, text
    for name, value in case.metadata.items():
        assert getattr(card.data, name) == value, name
    if case.check:
        case.check(card)
    assert not list(folder.glob(".*.tmp")), "atomic write left a temp file"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md"]  # facts only: nothing else read/written


# ============================================================================ facts read from a folder
def test_model_card_facts_read_the_folder_sidecars(tmp_path: Path) -> None:
    from hf_spamguard.policy import Thresholds
    from hf_spamguard.prompts import PromptConfig

    Thresholds(0.3, 0.9).save(tmp_path, extra={"selection": {"notes": ["recall target relaxed"]}})
    (tmp_path / "calibration.json").write_text('{"temperature": 1.7}')
    PromptConfig(system_prompt="Recorded prompt.").save(tmp_path)
    facts = cards.sidecar_facts(tmp_path)
    cards.render_model_card(
        tmp_path, ModelCardFacts(**facts, base_model=str(tmp_path), adapter=False, dataset=str(tmp_path))
    )
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model is None and card.data.datasets is None
    assert "`confidence >= 0.9000` demotes the listing automatically" in card.text
    assert "Selection notes: recall target relaxed" in card.text
    assert "**T = 1.7000**" in card.text and "Recorded prompt." in card.text
    with pytest.raises(ValueError, match="base_model is required"):
        cards.render_model_card(tmp_path, ModelCardFacts(base_model=""))


def test_baseline_card_facts_read_the_policy(tmp_path: Path) -> None:
    from hf_spamguard.policy import Thresholds

    Thresholds(0.4, 0.75).save(tmp_path)
    facts = cards.baseline_card_facts(tmp_path, dataset="org/listings", eval_results=BASELINE_RESULTS)
    assert facts.thresholds == {"review": 0.4, "demote": 0.75}
    text = cards.render_baseline_card(tmp_path, facts).read_text()
    assert "0.7500" in text


def test_student_facts_are_read_from_a_student_folder(tmp_path: Path) -> None:
    (tmp_path / "student.json").write_text(
        json.dumps(
            {
                "labels": ["ad", "spam"],
                "thresholds": {"ad": 0.6, "spam": 0.7},
                "target_precision": {"spam": 0.95},
                "trained_on": "org/reviews",
            }
        )  # fmt: skip
    )
    (tmp_path / "taxonomy.yaml").write_text(
        "name: t\nitem: comment\nlabels:\n- name: ad\n  definition: x | y\n"
    )
    facts = cards.student_card_facts(tmp_path)
    assert facts["labels"] == ["ad", "spam"] and facts["dataset"] == "org/reviews"
    assert facts["taxonomy"]["item"] == "comment" and facts["target_precision"] == {"spam": 0.95}
    student = cards.baseline_card_facts(tmp_path, trusted_types=TRUSTED)
    assert isinstance(student, StudentCardFacts) and student.label_thresholds == {"ad": 0.6, "spam": 0.7}
    text = cards.render_baseline_card(tmp_path, student).read_text()
    assert "| `ad` | 0.6000 | x \\| y |" in text and "each comment" in text
    assert cards.student_card_facts(tmp_path / "nowhere") == {}
    assert isinstance(cards.baseline_card_facts(tmp_path / "nowhere"), BaselineCardFacts)


def test_model_card_facts_read_training_records_and_sidecars(tmp_path: Path) -> None:
    from hf_spamguard.files import SidecarError

    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "org/base"}')
    (tmp_path / "metrics.json").write_text('{"metrics": {"macro_f1": 0.5}}')
    (tmp_path / "policy.json").write_text('{"review": 0.2, "demote": 0.8, "notes": ["a", "b"]}')
    facts = cards.model_card_facts(tmp_path, system_prompt="default prompt")
    assert facts["base_model"] == "org/base" and facts["adapter"] is True and facts["eval_split"] == "test"
    assert facts["eval_results"] == {"macro_f1": 0.5}
    assert facts["thresholds"] == {"review": 0.2, "demote": 0.8} and facts["threshold_notes"] == "a b"
    assert facts["system_prompt"] == "default prompt" and facts["temperature"] is None
    ModelCardFacts(**facts)  # the keys are the facts' fields
    (tmp_path / "calibration.json").write_text("{broken")
    with pytest.raises(SidecarError, match="calibration.json: not valid JSON"):
        cards.model_card_facts(tmp_path)


def test_find_eval_results_prefers_the_report_metrics(tmp_path: Path) -> None:
    assert cards.find_eval_results(tmp_path) is None
    (tmp_path / "policy_metrics.json").write_text('{"macro_f1": 0.1}')
    assert cards.find_eval_results(tmp_path) == {"macro_f1": 0.1}
    (tmp_path / "metrics.json").write_text('{"macro_f1": 0.2}')
    assert cards.find_eval_results(tmp_path) == {"macro_f1": 0.2}


# ============================================================================================ helpers
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


@pytest.mark.parametrize(
    ("ref", "hub"),
    [("org/listings", True), ("gpt2", True), ("./x", False), ("~/x", False), ("a b", False), ("", False)],
)
def test_hub_refs_use_the_one_repo_id_rule(ref: str, hub: bool) -> None:
    assert is_hub_ref(ref) is hub


def test_an_existing_local_path_is_never_a_hub_ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "listings").mkdir(parents=True)
    assert not is_hub_ref("org/listings")


# ============================================================================================ dataset, metric
def test_dataset_card_keeps_the_loading_config(demo_dataset_dir: Path, tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "ds"
    shutil.copytree(demo_dataset_dir, folder)
    before = DatasetCard.load(folder / "README.md").data.to_dict()
    cards.render_dataset_card(folder, repo_id="org/listings")
    card = DatasetCard.load(folder / "README.md")
    assert card.data.to_dict()["configs"] == before["configs"]
    # the user's data: no licence is assumed (`--license` sets one)
    assert card.data.license == "other" and "text-classification" in card.data.task_categories
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
    from hf_spamguard.policy import DEFAULT_TARGETS

    folder = export_space("listing_spam_policy", tmp_path)
    cards.render_metric_card(folder, repo_id="org/listing_spam_policy")
    card = SpaceCard.load(folder / "README.md")
    meta = _front_matter(folder / "README.md")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert {"evaluate", "metric"} <= set(meta["tags"])
    assert 'evaluate.load("org/listing_spam_policy")' in card.text
    assert "### Inputs" in card.text  # the metric's own documentation is kept as the body

    bare = tmp_path / "bare"
    cards.render_metric_card(bare, targets=DEFAULT_TARGETS)
    text = (bare / "README.md").read_text()
    assert "# Metric: listing_spam_policy" in text
    assert "**target_demote_precision** (default 0.98), **target_recall** (default 0.95)" in text
    assert "**review_budget** (default 0.15, share of items)" in text
    shutil.rmtree(bare)
    cards.render_metric_card(bare)  # no defaults named: no numbers typed in the card
    assert "(default 0." not in (bare / "README.md").read_text()
