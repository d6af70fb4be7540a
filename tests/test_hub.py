"""Publishing: Hub-ready folders that load where hf_spamguard is not installed, the upload path of the
real ``huggingface_hub`` client against a fake Hub on 127.0.0.1, and loading back by Hub id.

The fake Hub (a test double of the Hub's endpoints, the one thing these tests mock) is in
``tests/fake_hub.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hf_spamguard.cli import app
from hf_spamguard.publish import list_files, publish
from tests.fake_hub import FakeHub

REPO_IDS = {
    "model": "org/spamguard-vl",
    "dataset": "org/listings",
    "metric": "org/listing_spam_policy",
    "baseline": "org/spamguard-baseline",
}
REPO_TYPES = {"model": "model", "dataset": "dataset", "metric": "space", "baseline": "model"}
DRY_RUN_NAMES = {
    "model": "model",
    "dataset": "dataset",
    "metric": "listing_spam_policy",
    "baseline": "baseline",
}


# ===================================================================================== fixtures
@pytest.fixture(scope="module")
def baseline_dir(demo_dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real baseline trained on the demo train split and saved with skops."""
    import datasets

    from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments

    train = datasets.load_dataset(str(demo_dataset_dir), split="train")
    fast = BaselineTrainingArguments(Cs=(1.0,), cv=2)  # the folder's content matters here, not its quality
    clf = BaselineClassifier().fit(train["description"], train["label"], fast)
    out = tmp_path_factory.mktemp("baseline")
    clf.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sources(tiny_model_dir: Path, demo_dataset_dir: Path, baseline_dir: Path) -> dict[str, Path | None]:
    return {"model": tiny_model_dir, "dataset": demo_dataset_dir, "metric": None, "baseline": baseline_dir}


@pytest.fixture(scope="module")
def dry_run(sources: dict[str, Path | None], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four folders written by the CLI's ``--dry-run``."""
    out = tmp_path_factory.mktemp("dry_run")
    runner = CliRunner()
    for kind, source in sources.items():
        args = ["publish", f"--{kind}"] + ([str(source)] if source else [])
        args += ["--repo-id", REPO_IDS[kind], "--dry-run", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"Wrote {kind}" in result.output
    return out


def _fresh_env(tmp: Path) -> dict[str, str]:
    # Only site-packages on the path, and python -S so that no .pth file runs: the editable install's
    # .pth (which adds src/) is never processed, so hf_spamguard cannot be imported.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "VIRTUAL_ENV"))}
    env.update(
        PYTHONPATH=sysconfig.get_paths()["purelib"],
        HF_HOME=str(tmp / "hf_home"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


FRESH_LOADER = r"""
import json, sys
try:
    import hf_spamguard  # noqa: F401
except ImportError:
    pass
else:
    sys.exit("hf_spamguard must not be importable in this process")
out_dir = sys.argv[1]
result = {"hf_spamguard_in_modules": any(m.startswith("hf_spamguard") for m in sys.modules)}

import datasets
dd = datasets.load_dataset(f"{out_dir}/dataset")
result["dataset"] = {split: {"ids": list(dd[split]["product_id"]), "labels": list(dd[split]["label"]),
                             "features": dd[split].features.to_dict()} for split in dd}

import evaluate
metric = evaluate.load(f"{out_dir}/listing_spam_policy")
result["metric"] = metric.compute(predictions=[0.1, 0.35, 0.6, 0.95, 0.97, 0.2], references=[0, 0, 1, 1, 1, 0],
                                  review=0.3, demote=0.9)

import hashlib
import skops.io as sio
path = f"{out_dir}/baseline/model.skops"
untrusted = sio.get_untrusted_types(file=path)
trusted = json.loads(sys.argv[2])
if not set(untrusted) <= set(trusted):
    sys.exit(f"unexpected types in model.skops: {sorted(set(untrusted) - set(trusted))}")
state = sio.load(path, trusted=untrusted)
result["baseline"] = {"untrusted": untrusted, "keys": sorted(state),
                      "coef_sha256": hashlib.sha256(state["coef"].tobytes()).hexdigest()}
texts = ["Vintage Levi's 501 jeans, W32 L30, great condition.",
         "Nike tee. tags: adidas gucci prada supreme bape stussy palace y2k vintage 90s streetwear"]

from transformers import pipeline
pipe = pipeline("listing-spam", model=f"{out_dir}/model", trust_remote_code=True)
result["model"] = pipe([{"text": texts[0], "image": None}, texts[1]], reason=False)
result["hf_spamguard_in_modules_after"] = any(m.startswith("hf_spamguard") for m in sys.modules)
print("RESULT=" + json.dumps(result, default=str))
"""


@pytest.fixture(scope="module")
def fresh_loads(dry_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Load every dry-run folder with the standard loaders in ONE fresh interpreter without hf_spamguard."""
    tmp = tmp_path_factory.mktemp("fresh")
    from hf_spamguard.baseline import TRUSTED_TYPES

    proc = subprocess.run(
        [sys.executable, "-S", "-c", FRESH_LOADER, str(dry_run), json.dumps(list(TRUSTED_TYPES))],
        cwd=tmp,
        env=_fresh_env(tmp),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))
    return json.loads(line[len("RESULT=") :])


# ===================================================================================== dry-run folders
def test_fresh_process_cannot_import_the_package(fresh_loads: dict[str, Any]) -> None:
    assert fresh_loads["hf_spamguard_in_modules"] is False
    assert fresh_loads["hf_spamguard_in_modules_after"] is False


def test_dataset_folder_loads_with_load_dataset(fresh_loads: dict[str, Any], demo_dataset_dir: Path) -> None:
    import datasets

    original = datasets.load_dataset(str(demo_dataset_dir))
    loaded = fresh_loads["dataset"]
    assert set(loaded) == set(original)
    for split in original:
        assert loaded[split]["ids"] == list(original[split]["product_id"])
        assert loaded[split]["labels"] == list(original[split]["label"])
        assert loaded[split]["features"] == original[split].features.to_dict()


def test_metric_folder_loads_with_evaluate(fresh_loads: dict[str, Any]) -> None:
    from hf_spamguard.policy import compute_policy_metric

    expected = compute_policy_metric(
        [0, 0, 1, 1, 1, 0], [0.1, 0.35, 0.6, 0.95, 0.97, 0.2], review=0.3, demote=0.9
    )
    got = fresh_loads["metric"]
    for key in ("demote_precision", "review_load", "roc_auc", "macro_f1", "demote_count", "review_count"):
        assert got[key] == pytest.approx(expected[key]), key
    assert got["demote_count"] == 2 and got["review_count"] == 2


def test_baseline_folder_loads_with_skops(fresh_loads: dict[str, Any], baseline_dir: Path) -> None:

    from hf_spamguard.baseline import BaselineClassifier

    got = fresh_loads["baseline"]
    ours = BaselineClassifier.from_pretrained(baseline_dir)
    assert got["coef_sha256"] == hashlib.sha256(ours.coef_.tobytes()).hexdigest()
    assert {"coef", "featurizer"} <= set(got["keys"])


def test_model_folder_runs_in_the_listing_spam_pipeline(fresh_loads: dict[str, Any]) -> None:
    verdicts = fresh_loads["model"]
    assert len(verdicts) == 2
    for verdict in verdicts:
        assert {"is_spam", "confidence", "reason"} <= set(verdict)
        assert isinstance(verdict["is_spam"], bool) and 0.0 <= verdict["confidence"] <= 1.0


def test_dry_run_folders_have_cards_and_no_training_state(dry_run: Path) -> None:
    for kind, name in DRY_RUN_NAMES.items():
        folder = dry_run / name
        text = (folder / "README.md").read_text()
        assert text.startswith("---\n"), kind
        assert REPO_IDS[kind] in text, f"{kind} card does not point at its repo"
        assert "your-org/" not in text, kind
    model_files = list_files(dry_run / "model")
    assert "config.json" in model_files and any(f.endswith(".safetensors") for f in model_files)
    assert "custom_pipelines" in (dry_run / "model" / "config.json").read_text()
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in model_files)
    assert {"app.py", "listing_spam_policy.py", "requirements.txt"} <= set(
        list_files(dry_run / "listing_spam_policy")
    )
    assert "sdk: gradio" in (dry_run / "listing_spam_policy" / "README.md").read_text()


def test_dry_run_folders_follow_the_umask(dry_run: Path, baseline_dir: Path, tmp_path: Path) -> None:
    import shutil

    umask = os.umask(0)
    os.umask(umask)
    dir_mode, file_mode = 0o777 & ~umask, 0o666 & ~umask

    def modes(folder: Path) -> dict[str, int]:
        return {
            p.relative_to(folder.parent).as_posix(): p.stat().st_mode & 0o777
            for p in [folder, *folder.rglob("*")]
        }

    for name in DRY_RUN_NAMES.values():
        found = modes(dry_run / name)
        assert {k: v for k, v in found.items() if (dry_run / k).is_dir() and v != dir_mode} == {}, name
        assert {k: v for k, v in found.items() if (dry_run / k).is_file() and v != file_mode} == {}, name
    # a source file written owner-only (policy.json by policy.py's mkstemp, a 0600 weight file) is
    # published like every other file
    src = shutil.copytree(baseline_dir, tmp_path / "src")
    os.chmod(src / "config.json", 0o600)
    os.chmod(src / "model.skops", 0o600)
    folder = publish("baseline", src, dry_run=tmp_path / "out").folder
    assert set(modes(folder).values()) <= {dir_mode, file_mode}
    assert (src / "model.skops").stat().st_mode & 0o777 == 0o600  # the source is left as it was


def test_training_state_is_left_out(demo_dataset_dir: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(demo_dataset_dir, src)
    (src / "checkpoint-5").mkdir()
    (src / "checkpoint-5" / "optimizer.pt").write_bytes(b"\x80\x04pickle")
    (src / "training_args.bin").write_bytes(b"\x80\x04pickle")
    result = publish("dataset", src, dry_run=tmp_path / "out")
    assert sorted(result.skipped) == ["checkpoint-5", "training_args.bin"]
    assert not any(f.startswith("checkpoint-") or f.endswith(".bin") for f in result.files)


STUDENT_HUB_FILES = {"README.md", "config.json", "model.skops", "student.json", "taxonomy.yaml"}
STUDENT_DIAGNOSTICS = ["distill_report.json", "distill_report.md", "errors"]


def test_student_publish_leaves_out_its_diagnostics(review_student_dir: Path, tmp_path: Path) -> None:
    from hf_spamguard.reviews.student import load_student
    from hf_spamguard.reviews.synthetic import generate_reviews

    # the diagnostics exist (review text and place names in errors/), so leaving them out is a choice
    errors = sorted(p.name for p in (review_student_dir / "errors").iterdir())
    assert errors and all(name.endswith(".csv") for name in errors)
    assert {"distill_report.json", "distill_report.md"} <= {p.name for p in review_student_dir.iterdir()}

    result = publish("baseline", review_student_dir, repo_id="org/review-student", dry_run=tmp_path / "out")
    assert set(result.files) == STUDENT_HUB_FILES
    assert not (result.folder / "errors").exists() and not list(result.folder.glob("distill_report*"))
    assert sorted(result.skipped) == STUDENT_DIAGNOSTICS
    card = (result.folder / "README.md").read_text()
    assert 'load_student("org/review-student")' in card
    assert "spamguard score --model" in card and "BaselineClassifier" not in card
    assert "errors/" not in card and "distill_report" not in card

    # what is published is the student itself: same labels, thresholds and probabilities
    published, original = load_student(result.folder), load_student(review_student_dir)
    reviews = generate_reviews(25, seed=9)
    assert published.label_names == original.label_names and published.thresholds == original.thresholds
    assert (published.predict_reviews(reviews) == original.predict_reviews(reviews)).all()
    assert [v["flags"] for v in published(reviews)] == [v["flags"] for v in original(reviews)]

    # the CLI says what it left out
    out = CliRunner().invoke(
        app, ["publish", "--baseline", str(review_student_dir), "--dry-run", str(tmp_path / "cli")]
    )
    assert out.exit_code == 0, out.output
    assert "Left out" in out.output and all(name in out.output for name in STUDENT_DIAGNOSTICS)
    assert set(list_files(tmp_path / "cli" / "baseline")) == STUDENT_HUB_FILES


def test_student_without_card_gets_the_student_card(review_student_dir: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "student"
    shutil.copytree(review_student_dir, src)
    (src / "README.md").unlink()
    result = publish("baseline", src, repo_id="org/review-student", dry_run=tmp_path / "out")
    card = (result.folder / "README.md").read_text()
    thresholds = json.loads((src / "student.json").read_text())["thresholds"]
    assert "from hf_spamguard.reviews import load_student" in card and "`student.json`" in card
    for name, value in thresholds.items():
        assert f"| `{name}` | {value:.4f} |" in card, name
    assert "teacher not recorded" in card and "is_spam" not in card and "policy.json" not in card


def test_metric_named_after_its_space_still_loads(tmp_path: Path) -> None:
    import evaluate

    result = publish("metric", None, repo_id="org/spam_policy", dry_run=tmp_path)
    assert result.folder == tmp_path / "spam_policy" and "spam_policy.py" in result.files
    assert 'evaluate.load("spam_policy.py")' in (result.folder / "app.py").read_text()
    metric = evaluate.load(str(result.folder))
    out = metric.compute(predictions=[0.1, 0.95], references=[0, 1], review=0.5, demote=0.9)
    assert out["demote_count"] == 1


def test_publish_refuses_bad_sources(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a model folder"):
        publish("model", tmp_path / "empty", dry_run=tmp_path / "out")
    with pytest.raises(ValueError, match="no model.skops"):
        publish("baseline", tmp_path / "empty", dry_run=tmp_path / "out")
    with pytest.raises(ValueError, match="no Parquet files"):
        publish("dataset", tmp_path / "empty", dry_run=tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        publish("dataset", tmp_path / "missing", dry_run=tmp_path / "out")
    with pytest.raises(ValueError, match="must not contain or be inside"):
        publish("dataset", tmp_path / "empty", dry_run=tmp_path / "empty")
    with pytest.raises(ValueError, match="must not contain or be inside"):
        publish("dataset", tmp_path, dry_run=tmp_path / "out")
    with pytest.raises(ValueError, match="--repo-id"):
        publish("metric", None)
    with pytest.raises(ValueError, match="Python identifier"):
        publish("metric", None, repo_id="org/listing-spam-policy", dry_run=tmp_path / "out")
    assert not (tmp_path / "out" / "model").exists()


def test_cli_publish_errors_are_one_line() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["publish", "--metric", "--dataset", "x"])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "Error: give exactly one of --model DIR, --dataset DIR, --metric, --baseline DIR"
    )
    result = runner.invoke(app, ["publish", "--metric"])
    assert result.exit_code == 1 and result.output.startswith("Error: --repo-id ORG/NAME is required")
    result = runner.invoke(app, ["publish", "--baseline", "/no/such/folder", "--dry-run", "/tmp/x"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "no model.skops" in result.output
    assert len(result.output.strip().splitlines()) == 1


# ===================================================================================== upload (fake Hub)
@pytest.fixture()
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The fake Hub, with the in-process client pointed at it (constants are read at import time) and
    downloads cached in ``tmp_path/hf_cache`` instead of the user's Hugging Face cache."""
    import huggingface_hub.constants as constants

    with FakeHub() as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        # file URLs are built from this template, formatted with the endpoint at import
        template = hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        yield hub


def test_upload_sends_exactly_the_dry_run_files(
    fake_hub: FakeHub, sources: dict[str, Path | None], dry_run: Path
) -> None:
    for kind, source in sources.items():
        result = publish(
            kind, source, repo_id=REPO_IDS[kind], token=fake_hub.token, private=kind == "dataset"
        )
        repo = fake_hub.repo(REPO_TYPES[kind], REPO_IDS[kind])
        local = dry_run / DRY_RUN_NAMES[kind]
        expected = {name: (local / name).read_bytes() for name in list_files(local)}
        assert set(repo.files) == set(expected), kind
        for name, data in expected.items():
            assert repo.files[name] == data, f"{kind}: {name} differs"
        assert result.url and result.url.endswith(repo.commits[-1]["oid"])
        assert repo.commits[-1]["summary"] == f"Upload {kind} with hf-spamguard"
    assert fake_hub.repo("dataset", REPO_IDS["dataset"]).private is True
    assert fake_hub.repo("model", REPO_IDS["model"]).private is False
    assert fake_hub.repo("space", REPO_IDS["metric"]).sdk == "gradio"
    # binary files went through LFS (batch + PUT + verify), text files inline
    assert any(p.endswith(".parquet") for p in fake_hub.repo("dataset", REPO_IDS["dataset"]).lfs_paths)
    assert "model.skops" in fake_hub.repo("model", REPO_IDS["baseline"]).lfs_paths
    assert "README.md" not in fake_hub.repo("model", REPO_IDS["model"]).lfs_paths
    assert len(fake_hub.yaml_validated) >= 4
    assert fake_hub.unexpected == []


def test_upload_twice_reuses_the_repo(fake_hub: FakeHub) -> None:
    first = publish("metric", None, repo_id=REPO_IDS["metric"], token=fake_hub.token)
    second = publish("metric", None, repo_id=REPO_IDS["metric"], token=fake_hub.token)
    assert len(fake_hub.repo("space", REPO_IDS["metric"]).commits) == 2
    assert first.files == second.files
    assert fake_hub.unexpected == []


def test_cli_upload_in_a_subprocess_with_hf_endpoint(tmp_path: Path) -> None:
    with FakeHub() as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(
            HF_ENDPOINT=hub.endpoint,
            HF_HUB_DISABLE_XET="1",
            HF_HUB_OFFLINE="0",
            HF_HOME=str(tmp_path / "hf_home"),
            HF_TOKEN=hub.token,
        )
        cmd = [sys.executable, "-m", "hf_spamguard", "publish", "--metric", "--repo-id", REPO_IDS["metric"]]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"{hub.endpoint}/spaces/{REPO_IDS['metric']}/commit/" in proc.stdout
        files = hub.repo("space", REPO_IDS["metric"]).files
        assert {"README.md", "app.py", "listing_spam_policy.py", "spamguard_policy.py"} <= set(files)
        assert b"sdk: gradio" in files["README.md"]

        env["HF_TOKEN"] = "hf_wrong"
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        assert proc.stderr.strip().startswith("Error:") and "401" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert hub.unexpected == []


# ===================================================================================== download (fake Hub)
def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_baseline_loads_back_from_the_hub_by_id(
    fake_hub: FakeHub, baseline_dir: Path, demo_dataset_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets
    import huggingface_hub.constants as constants
    import numpy as np

    from hf_spamguard.baseline import BaselineClassifier
    from hf_spamguard.hub_io import local_folder

    repo_id = REPO_IDS["baseline"]
    publish("baseline", baseline_dir, repo_id=repo_id, token=fake_hub.token)
    repo = fake_hub.repo("model", repo_id)
    assert "model.skops" in repo.lfs_paths  # the download below goes through the LFS headers too

    # the snapshot is in the Hugging Face cache, and holds exactly the bytes that were uploaded
    folder = local_folder(repo_id)
    assert folder.is_relative_to(constants.HF_HUB_CACHE) and folder.name == repo.head
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == (
        repo.files
    )

    texts = datasets.load_dataset(str(demo_dataset_dir), split="test")["description"]
    expected = BaselineClassifier.from_pretrained(baseline_dir).predict_proba(texts)
    loaded = BaselineClassifier.from_pretrained(repo_id)
    assert np.array_equal(loaded.predict_proba(texts), expected)
    pinned = BaselineClassifier.from_pretrained(repo_id, revision=repo.head)
    assert np.array_equal(pinned.predict_proba(texts), expected)
    with pytest.raises(FileNotFoundError, match="revision 'no-such-branch' does not exist"):
        BaselineClassifier.from_pretrained(repo_id, revision="no-such-branch")

    # downloaded once: offline, the cached snapshot is used and the Hub is not asked again
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    asked = len(fake_hub.requests)
    assert np.array_equal(BaselineClassifier.from_pretrained(repo_id).predict_proba(texts), expected)
    assert len(fake_hub.requests) == asked
    assert fake_hub.unexpected == []


def test_student_loads_back_from_the_hub_by_id(fake_hub: FakeHub, review_student_dir: Path) -> None:
    from hf_spamguard.reviews.student import load_student
    from hf_spamguard.reviews.synthetic import generate_reviews

    publish("baseline", review_student_dir, repo_id="org/review-student", token=fake_hub.token)
    loaded, original = load_student("org/review-student"), load_student(review_student_dir)
    reviews = generate_reviews(40, seed=11)
    assert loaded.label_names == original.label_names and loaded.thresholds == original.thresholds
    assert (loaded.predict_reviews(reviews) == original.predict_reviews(reviews)).all()
    assert [v["flags"] for v in loaded(reviews)] == [v["flags"] for v in original(reviews)]
    assert fake_hub.unexpected == []


def test_score_with_a_hub_student_id(fake_hub: FakeHub, review_student_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from hf_spamguard.reviews.batch import score_reviews
    from hf_spamguard.reviews.synthetic import write_generated_reviews

    publish("baseline", review_student_dir, repo_id="org/review-student", token=fake_hub.token)
    source = write_generated_reviews(tmp_path / "reviews.parquet", n=300, seed=5)
    hub = score_reviews("org/review-student", source, tmp_path / "hub.parquet", progress=False)
    local = score_reviews(review_student_dir, source, tmp_path / "local.parquet", progress=False)
    assert hub.rows == local.rows == 300
    pd.testing.assert_frame_equal(pd.read_parquet(hub.out_path), pd.read_parquet(local.out_path))
    assert fake_hub.unexpected == []


def test_cli_predict_with_a_hub_model_id(
    fake_hub: FakeHub, baseline_dir: Path, demo_dataset_dir: Path, tmp_path: Path
) -> None:
    repo_id = REPO_IDS["baseline"]
    publish("baseline", baseline_dir, repo_id=repo_id, token=fake_hub.token)
    runner = CliRunner()
    outputs = {}
    for name, model in (("hub", repo_id), ("local", str(baseline_dir))):
        out = tmp_path / f"{name}.jsonl"
        args = ["predict", "--model", model, "--dataset", str(demo_dataset_dir), "--out", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "predictions (baseline)" in result.output
        outputs[name] = out.read_text().splitlines()
    assert len(outputs["hub"]) == 45 and outputs["hub"] == outputs["local"]
    assert fake_hub.unexpected == []


def test_vlm_predict_with_a_hub_model_id(
    fake_hub: FakeHub, tiny_model_dir: Path, demo_dir: Path, tmp_path: Path
) -> None:
    from hf_spamguard.data import load_listings
    from hf_spamguard.predict import model_kind, predict_to_jsonl, read_predictions

    repo_id = REPO_IDS["model"]
    result = publish("model", tiny_model_dir, repo_id=repo_id, token=fake_hub.token)
    assert model_kind(repo_id) == "vlm"
    rows = load_listings(demo_dir, "test").select(range(3))
    hub = predict_to_jsonl(repo_id, rows, out=tmp_path / "hub.jsonl", batch_size=3, reason=False)
    local = predict_to_jsonl(tiny_model_dir, rows, out=tmp_path / "local.jsonl", batch_size=3, reason=False)
    assert hub.model_kind == "vlm" and hub.n == local.n == 3
    got, expected = read_predictions(hub.out), read_predictions(local.out)
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    assert [r["confidence"] for r in got] == pytest.approx([r["confidence"] for r in expected], abs=1e-6)
    assert set(result.files) == set(fake_hub.repo("model", repo_id).files)
    assert fake_hub.unexpected == []


def test_hub_id_errors_are_one_line(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as constants

    from hf_spamguard.baseline import BaselineClassifier
    from hf_spamguard.hub_io import local_folder
    from hf_spamguard.reviews.student import load_student

    def error(load: Any, name: str) -> str:
        with pytest.raises(FileNotFoundError) as info:
            load(name)
        message = str(info.value)
        assert len(message.splitlines()) == 1, message
        assert message.startswith(f"{name}: not a local folder, and downloading it from the Hub"), message
        return message

    missing = f"no such model repo on {fake_hub.endpoint}"
    assert missing in error(BaselineClassifier.from_pretrained, "org/no-such-baseline")
    assert missing in error(load_student, "org/no-such-student")
    result = CliRunner().invoke(
        app, ["predict", "--model", "org/no-such-model", "--dataset", "x.tsv", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert (
        result.output.startswith("Error: org/no-such-model: not a local folder") and missing in result.output
    )

    # paths that are not repo ids never reach the Hub, and keep the callers' own errors
    asked = len(fake_hub.requests)
    with pytest.raises(FileNotFoundError, match="is not a baseline model folder"):
        BaselineClassifier.from_pretrained(tmp_path / "org" / "missing")
    for path in ("./org/missing", "~/org/missing", "org/missing/", "missing", "org/missing/deeper"):
        assert local_folder(path) == Path(path)
    assert len(fake_hub.requests) == asked

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "unset HF_HUB_OFFLINE to download it" in error(local_folder, "org/no-such-model")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    closed = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", closed)
    with pytest.raises(FileNotFoundError) as info:
        local_folder("org/no-such-model")
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith("org/no-such-model: not a local folder, and cannot reach the Hub for "), message
    assert f"the request to {closed} failed" in message and "set HF_HUB_OFFLINE=1 to work offline" in message
    assert fake_hub.unexpected == []


def test_an_unreachable_hub_falls_back_to_the_cached_snapshot(
    fake_hub: FakeHub, baseline_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import huggingface_hub.constants as constants

    from hf_spamguard.hub_io import local_folder

    publish("baseline", baseline_dir, repo_id="org/cached", token=fake_hub.token)
    first = local_folder("org/cached")
    closed = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", closed)
    with caplog.at_level(logging.WARNING, logger="hf_spamguard.hub_io"):
        assert local_folder("org/cached") == first
    assert f"cannot reach the Hub for 'org/cached': the request to {closed} failed" in caplog.text
    assert "using the cached snapshot" in caplog.text


def test_dataset_loads_back_from_the_hub_by_id(
    fake_hub: FakeHub, demo_dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets
    import datasets.config

    # datasets keeps its own copy of the endpoint and offline flag, read at import time
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", fake_hub.endpoint)
    template = fake_hub.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", template)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)

    repo_id = REPO_IDS["dataset"]
    publish("dataset", demo_dataset_dir, repo_id=repo_id, token=fake_hub.token, private=True)
    loaded = datasets.load_dataset(repo_id, token=fake_hub.token, cache_dir=str(tmp_path / "datasets"))
    original = datasets.load_dataset(str(demo_dataset_dir), cache_dir=str(tmp_path / "datasets"))
    assert set(loaded) == set(original) == {"train", "validation", "test"}
    for split in original:
        assert loaded[split].features == original[split].features
        assert loaded[split]["product_id"] == original[split]["product_id"]
        assert loaded[split]["label"] == original[split]["label"]
    # every consumer's loader (load_listings: baseline, train, predict) finds it by id as well
    from hf_spamguard.data import load_listings

    publish("dataset", demo_dataset_dir, repo_id="org/public-listings", token=fake_hub.token)
    test = load_listings("org/public-listings", split="test")
    assert test["product_id"] == original["test"]["product_id"] and test.features == original["test"].features
    assert fake_hub.unexpected == []


def test_model_without_card_gets_one_from_its_training_summary(tmp_path: Path) -> None:
    from hf_spamguard.cards import ModelCardFacts, model_card_facts, render_model_card

    (tmp_path / "config.json").write_text('{"_name_or_path": "/somewhere/local"}')
    summary = {
        "base_model": "Qwen/Qwen3-VL-2B-Instruct",
        "backend": "transformers",
        "global_step": 120,
        "project_args": {"dataset": "org/listings", "eval_split": "validation", "max_pixels": 200704},
        "eval_metrics": {"macro_f1": 0.9321, "roc_auc": 0.98, "review_threshold": 0.3, "n": 45},
    }
    (tmp_path / "training_summary.json").write_text(json.dumps(summary))
    (tmp_path / "training_args.json").write_text('{"learning_rate": 0.0002, "output_dir": "x"}')
    facts = model_card_facts(tmp_path)
    assert facts["adapter"] is False  # no adapter_config.json
    assert facts["base_model"] == "Qwen/Qwen3-VL-2B-Instruct" and facts["eval_split"] == "validation"
    assert facts["training_config"] == {"backend": "transformers", "global_step": 120, "max_pixels": 200704,
                                        "learning_rate": 0.0002}  # fmt: skip
    text = render_model_card(tmp_path, ModelCardFacts(**facts)).read_text()
    assert "| macro_f1 | 0.9321 |" in text and "**validation** split" in text and "(45 listings)" in text
    assert "review_threshold" not in text  # thresholds are policy, not measurements


# ===================================================================================== adapter-only model folders
@pytest.fixture(scope="module")
def adapter_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``spamguard train --merge false`` leaves: a peft LoRA adapter (non-zero, so it changes the
    scores) + calibration, policy, prompt config, training summary/args, the training-written card and a
    pickled training_args.bin that must not be published."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from hf_spamguard.cards import ModelCardFacts, model_card_facts, render_model_card
    from hf_spamguard.pipeline import save_calibration
    from hf_spamguard.policy import Thresholds
    from hf_spamguard.prompts import PromptConfig

    out = tmp_path_factory.mktemp("adapter_run") / "final"
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    lora = LoraConfig(
        r=4, lora_alpha=16, target_modules=r".*language_model.*\.(q_proj|v_proj)", init_lora_weights=False
    )
    get_peft_model(base, lora).save_pretrained(out)
    save_calibration(out, 2.0)
    Thresholds(review=0.3, demote=0.8).save(out)
    PromptConfig(max_pixels=4096).save(out)
    summary = {
        "base_model": str(tiny_model_dir),
        "backend": "transformers",
        "global_step": 3,
        "project_args": {"dataset": "demo", "eval_split": "validation", "merge": False},
        "eval_metrics": {"macro_f1": 0.8123, "pr_auc": 0.9345, "n": 12},
    }
    (out / "training_summary.json").write_text(json.dumps(summary))
    (out / "training_args.json").write_text('{"learning_rate": 0.0002}')
    (out / "training_args.bin").write_bytes(b"\x80\x04pickle")
    render_model_card(out, ModelCardFacts(**model_card_facts(out)))  # as training writes it: an adapter card
    assert "library_name: peft" in (out / "README.md").read_text()
    assert not (out / "config.json").exists()
    return out


def test_adapter_only_folder_is_merged_for_the_hub(adapter_run: Path, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard
    from transformers import pipeline

    import hf_spamguard  # noqa: F401  registers the task
    from hf_spamguard.pipeline import load_pipeline

    result = CliRunner().invoke(
        app,
        ["publish", "--model", str(adapter_run), "--repo-id", "org/vl-merged", "--dry-run", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert "Note: merged the LoRA adapter into its base model" in result.output
    assert "training_args.bin" in result.output  # reported as left out
    folder = tmp_path / "model"
    files = set(list_files(folder))
    assert {"config.json", "model.safetensors", "calibration.json", "policy.json", "prompt_config.json",
            "training_summary.json", "spamguard_pipeline.py", "adapter/adapter_config.json",
            "adapter/adapter_model.safetensors", "README.md"} <= files  # fmt: skip
    # No adapter_config.json next to config.json (transformers would look for base weights in the repo).
    assert "adapter_config.json" not in files and "training_args.bin" not in files
    assert "custom_pipelines" in json.loads((folder / "config.json").read_text())
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "transformers" and "lora" not in card.data.tags
    assert "| macro_f1 | 0.8123 |" in card.text and "org/vl-merged" in card.text
    assert "merged into the base model" in card.text

    texts = [{"text": "Nike tee. tags: adidas puma gucci", "image": None}, "plain summer dress, worn once"]
    expected = load_pipeline(adapter_run, device="cpu")(texts, reason=False)  # adapter merged in memory
    pipe = pipeline("listing-spam", model=str(folder), trust_remote_code=True, device="cpu")
    got = pipe(texts, reason=False)
    assert [v["confidence"] for v in got] == pytest.approx([v["confidence"] for v in expected], abs=1e-5)
    assert [v["decision"] for v in got] == [v["decision"] for v in expected]  # policy.json came along
    assert pipe.default_temperature == 2.0


def test_adapter_with_a_missing_base_is_a_clear_error(adapter_run: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "adapter"
    shutil.copytree(adapter_run, src)
    cfg = json.loads((src / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "no-such-base")
    (src / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="base_model_name_or_path.*no-such-base"):
        publish("model", src, dry_run=tmp_path / "out")
    assert not (tmp_path / "out" / "model").exists()
