"""What a user sees when a source is missing or the Hub cannot be reached: one line, at once.

Every test runs the real ``spamguard`` entry point in a subprocess with ``HF_HUB_OFFLINE`` unset and
``HF_ENDPOINT`` at a closed port on 127.0.0.1 (nothing listens there, so a connection is refused at
once): a command that retried would take ~25 s and end in a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPAMGUARD = str(Path(sys.executable).with_name("spamguard"))
FAST = 10.0  # seconds, interpreter start included: one short attempt, no retries


def _closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture()
def online_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user who is online as far as the client knows, with an unreachable Hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env.update(
        HF_ENDPOINT=_closed_endpoint(),
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([SPAMGUARD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - start


def _one_line_error(proc: subprocess.CompletedProcess, seconds: float) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert seconds < FAST, f"took {seconds:.1f} s"
    return lines[0]


@pytest.fixture(scope="module")
def baseline_model(demo_dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import datasets

    from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments

    train = datasets.load_dataset(str(demo_dataset_dir), split="train")
    clf = BaselineClassifier().fit(
        train["description"], train["label"], BaselineTrainingArguments(Cs=(1.0,), cv=2)
    )
    out = tmp_path_factory.mktemp("baseline")
    clf.save_pretrained(out)
    return out


def test_a_mistyped_local_path_is_an_error_at_once(online_env: dict[str, str], tmp_path: Path) -> None:
    # `data/` exists here, so `data/listngs2` is a typo of a local folder, never a Hub id to try
    (tmp_path / "data" / "listings").mkdir(parents=True)
    proc, seconds = _run(
        ["baseline", "train", "--dataset", "data/listngs2", "--out", "model"], online_env, tmp_path
    )
    line = _one_line_error(proc, seconds)
    assert "data/listngs2: no such file or folder" in line, line
    assert "(a local path, not looked up on the Hub: data/ is a local folder)" in line, line
    assert "cannot reach" not in line, line
    # a path with a data file's suffix is local too, whatever its first folder
    proc, seconds = _run(
        ["baseline", "train", "--dataset", "exports/listings.tsv", "--out", "model"], online_env, tmp_path
    )
    assert "exports/listings.tsv: no such file or folder" in _one_line_error(proc, seconds)


def test_an_unreachable_hub_dataset_is_one_line(
    online_env: dict[str, str], tmp_path: Path, baseline_model: Path
) -> None:
    args = ["predict", "--model", str(baseline_model), "--dataset", "ORG/some-listings", "--out", "p.jsonl"]
    proc, seconds = _run(args, online_env, tmp_path)
    line = _one_line_error(proc, seconds)
    assert "cannot reach the Hub for 'ORG/some-listings'" in line, line
    assert online_env["HF_ENDPOINT"] in line and "set HF_HUB_OFFLINE=1 to work offline" in line, line
    assert not (tmp_path / "p.jsonl").exists()

    proc, seconds = _run(
        ["baseline", "train", "--dataset", "org/listings", "--out", "m"], online_env, tmp_path
    )
    assert "cannot reach the Hub for 'org/listings'" in _one_line_error(proc, seconds)


def test_an_unreachable_hub_model_is_one_line(online_env: dict[str, str], tmp_path: Path) -> None:
    args = ["predict", "--model", "ORG/some-model", "--dataset", "x.tsv", "--out", "p.jsonl"]
    proc, seconds = _run(args, online_env, tmp_path)
    line = _one_line_error(proc, seconds)
    assert "cannot reach the Hub for 'ORG/some-model'" in line and "HF_HUB_OFFLINE=1" in line, line


@pytest.mark.parametrize("kind", ["dataset", "metric"])
def test_publish_to_an_unreachable_hub_is_one_line(
    online_env: dict[str, str], tmp_path: Path, demo_dataset_dir: Path, kind: str
) -> None:
    args = ["publish", "--metric"] if kind == "metric" else ["publish", "--dataset", str(demo_dataset_dir)]
    proc, seconds = _run([*args, "--repo-id", "org/listing_spam_policy"], online_env, tmp_path)
    line = _one_line_error(proc, seconds)
    assert "cannot reach the Hub" in line and online_env["HF_ENDPOINT"] in line, line
    assert "nothing was uploaded" in line, line


def test_dataset_push_to_an_unreachable_hub_is_one_line(
    online_env: dict[str, str], tmp_path: Path, demo_dataset_dir: Path
) -> None:
    proc, seconds = _run(
        ["dataset", "push", str(demo_dataset_dir), "--repo-id", "org/x"], online_env, tmp_path
    )
    line = _one_line_error(proc, seconds)
    assert "cannot reach the Hub" in line and online_env["HF_ENDPOINT"] in line, line
    assert "upload of the dataset to org/x failed" in line, line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["score", "--model", "{student}", "--input", "org/some-reviews", "--out", "s.parquet"],
            "org/some-reviews",
        ),
        (
            ["label", "--teacher", "org/some-teacher", "--input", "{reviews}", "--out", "labels"],
            "org/some-teacher",
        ),
    ],
)
def test_review_hub_ids_fail_fast_when_the_hub_is_unreachable(
    online_env: dict[str, str], tmp_path: Path, review_student_dir: Path, args: list[str], expected: str
) -> None:
    from hf_spamguard.reviews.synthetic import write_generated_reviews

    reviews = write_generated_reviews(tmp_path / "in.parquet", n=20, seed=0)
    args = [a.format(student=review_student_dir, reviews=reviews) for a in args]
    proc, seconds = _run(args, online_env, tmp_path)
    line = _one_line_error(proc, seconds)
    assert f"cannot reach the Hub for {expected!r}" in line, line
