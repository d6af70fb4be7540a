"""`spamguard dataset build / push`, in-process (CliRunner) and as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from typer.testing import CliRunner

from hf_spamguard.cli import app

runner = CliRunner()
HEADER = "\tproduct_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"


def test_help_for_every_command() -> None:
    for args in (["dataset", "--help"], ["dataset", "build", "--help"], ["dataset", "push", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output
    assert "--fetch-images" in runner.invoke(app, ["dataset", "build", "--help"]).output
    assert "--force" in runner.invoke(app, ["dataset", "build", "--help"]).output
    assert "--repo-id" in runner.invoke(app, ["dataset", "push", "--help"]).output


def test_build_demo_in_process(tmp_path: Path) -> None:
    out = tmp_path / "demo_ds"
    result = runner.invoke(
        app, ["dataset", "build", "--demo", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    )
    assert result.exit_code == 0, result.output
    assert "train: 210 rows, validation: 45 rows, test: 45 rows" in result.output
    assert "images: 267/300 available" in result.output
    dd = datasets.load_dataset(str(out))
    assert {s: len(dd[s]) for s in dd} == {"train": 210, "validation": 45, "test": 45}
    assert (out / "image_status.csv").is_file()


def test_build_reports_disagreements(tmp_path: Path) -> None:
    tsv = tmp_path / "t.tsv"
    tsv.write_text(HEADER + "0\ta\t\tx\t3\t0\t0\n1\tb\t\ty\t0\t3\t0\n", encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "dataset",
            "build",
            "--train",
            str(tsv),
            "--validation-size",
            "0",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 label(s) disagree with the vote majority (kept as labelled): a" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--demo", "--train", "x.tsv"], "either --demo or --train"),
        ([], "missing --train"),
        (["--train", "missing.tsv"], "missing.tsv"),
    ],
)
def test_build_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["dataset", "build", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_subprocess_build_and_bad_input(demo_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache")}
    out = tmp_path / "built"
    cmd = [
        sys.executable,
        "-m",
        "hf_spamguard",
        "dataset",
        "build",
        "--train",
        str(demo_dir / "train.tsv"),
        "--test",
        str(demo_dir / "test.tsv"),
        "--image-dir",
        str(demo_dir / "images"),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "validation:" in done.stdout  # carved from train
    dd = datasets.load_dataset(str(out))
    assert len(dd["train"]) + len(dd["validation"]) == 210 and len(dd["test"]) == 45

    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "0\t1\t\tjeans\tthree\t0\t1\n", encoding="utf-8")
    done = subprocess.run(
        [*cmd[:5], "--train", str(bad), "--out", str(tmp_path / "o2")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert "bad.tsv, line 2, field 'yes_count'" in done.stderr
    assert "Traceback" not in done.stderr  # a one-line error, not a stack trace


def test_push_uploads_the_folder_as_a_dataset(demo_dataset_dir: Path, monkeypatch) -> None:
    """The Hub's upload endpoints are the only thing replaced here (the Hub is unreachable offline):
    HfApi.create_repo / HfApi.upload_folder record their arguments instead of making HTTP calls."""
    import huggingface_hub

    calls: list[tuple[str, tuple, dict]] = []

    def create_repo(self, *args, **kwargs):
        calls.append(("create_repo", args, kwargs))
        return f"https://huggingface.co/datasets/{args[0]}"

    def upload_folder(self, *args, **kwargs):
        calls.append(("upload_folder", args, kwargs))
        return "https://huggingface.co/datasets/org/listings/commit/abc123"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    result = runner.invoke(
        app, ["dataset", "push", str(demo_dataset_dir), "--repo-id", "org/listings", "--private"]
    )
    assert result.exit_code == 0, result.output
    assert "commit/abc123" in result.output
    (name1, args1, kw1), (name2, _, kw2) = calls
    assert name1 == "create_repo" and args1[0] == "org/listings"
    assert kw1["repo_type"] == "dataset" and kw1["private"] is True and kw1["exist_ok"] is True
    assert name2 == "upload_folder" and kw2["repo_type"] == "dataset" and kw2["repo_id"] == "org/listings"
    assert Path(kw2["folder_path"]) == demo_dataset_dir
    uploaded = {
        p.relative_to(demo_dataset_dir).as_posix() for p in demo_dataset_dir.rglob("*") if p.is_file()
    }
    assert "README.md" in uploaded and any(p.startswith("data/train-") for p in uploaded)


def test_push_refuses_a_folder_that_is_not_a_built_dataset(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    result = runner.invoke(app, ["dataset", "push", str(tmp_path), "--repo-id", "org/name"])
    assert result.exit_code == 1 and "not a built dataset" in result.output
    result = runner.invoke(app, ["dataset", "push", str(tmp_path / "nope"), "--repo-id", "org/name"])
    assert result.exit_code == 1 and "no such folder" in result.output


def test_push_failure_is_one_line_not_a_traceback(demo_dataset_dir: Path) -> None:
    # No mock: huggingface_hub's own offline mode refuses the request, as it would on a machine
    # without the Hub; the command must say so in one line with a hint.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(demo_dataset_dir.parent / "hf_home")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_spamguard",
            "dataset",
            "push",
            str(demo_dataset_dir),
            "--repo-id",
            "org/x",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "upload of the dataset to org/x failed" in proc.stderr
    assert "unset HF_HUB_OFFLINE" in proc.stderr


def test_build_force_rebuilds_instead_of_reusing_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["dataset", "build", "--train", "{train}", "--out", "{out}", "--cache-dir", str(cache)]
    train = tmp_path / "train.tsv"
    rows = "".join(
        f"{i}\t{i}\t\tlisting number {i} tags: a b c\t{i % 2}\t{1 - i % 2}\t{i % 2}\n" for i in range(40)
    )
    train.write_text(HEADER + rows)

    def build(out: Path, *extra: str) -> dict[str, int]:
        result = runner.invoke(app, [a.format(train=train, out=out) for a in args] + list(extra))
        assert result.exit_code == 0, result.output
        return {str(p): p.stat().st_mtime_ns for p in cache.rglob("*.arrow")}

    first = build(tmp_path / "a")
    assert first and build(tmp_path / "b") == first  # reused: the Arrow files are not rewritten
    again = build(tmp_path / "c", "--force")
    assert set(again) == set(first) and all(again[k] != first[k] for k in first)  # regenerated


def test_build_with_carved_validation_prints_the_report_once(tmp_path: Path) -> None:
    tsv = tmp_path / "listings.tsv"
    tsv.write_text(
        HEADER
        + "".join(f"{i}\tp{i}\t\tx {i}\t{3 * (i % 2)}\t{3 - 3 * (i % 2)}\t{i % 2}\n" for i in range(20)),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["dataset", "build", "--train", str(tsv), "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "validation:" in result.output
    assert result.output.count("listings.tsv: 20 rows") == 1, result.output
    assert (out / "README.md").read_text(encoding="utf-8").count("| `listings.tsv` |") == 1


def test_build_and_push_set_the_license(demo_dataset_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import shutil

    import huggingface_hub
    import yaml

    def license_of(folder: Path) -> str:
        return yaml.safe_load((folder / "README.md").read_text(encoding="utf-8").split("---\n")[1])["license"]

    out = tmp_path / "out"
    args = ["dataset", "build", "--demo", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert runner.invoke(app, [*args, "--license", "cc-by-nc-4.0"]).exit_code == 0
    assert license_of(out) == "cc-by-nc-4.0"

    folder = shutil.copytree(demo_dataset_dir, tmp_path / "copy")
    assert license_of(folder) == "other"
    uploaded: list[str] = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *a, **k: None)
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "upload_folder",
        lambda self, **k: uploaded.append(license_of(Path(k["folder_path"]))) or "https://x/commit/1",
    )
    result = runner.invoke(
        app, ["dataset", "push", str(folder), "--repo-id", "org/x", "--license", "cc-by-4.0"]
    )
    assert result.exit_code == 0, result.output
    assert uploaded == ["cc-by-4.0"] and license_of(folder) == "cc-by-4.0"
