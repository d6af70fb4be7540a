"""`spamguard predict` on bad options, bad paths, kills and full disks (#11.6, #11.13, #11.14, #12.5, #12.9).

Every failure is one line, comes before the work where it can, and never leaves a half-written or
temporary file behind (the next run removes what a killed one left).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hf_spamguard.predict import policy_sidecar, predict_to_jsonl, read_prediction_policy
from tests.cli_run import spamguard


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("predict:")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def baseline_dir(demo_dir, tmp_path_factory) -> Path:
    from hf_spamguard.baseline import train_baseline

    out = tmp_path_factory.mktemp("baseline")
    train_baseline(demo_dir, out)
    return out


# ------------------------------------------------------------------------------ #11.6 numeric options
@pytest.mark.parametrize("value", ["0", "-1"])
def test_batch_size_below_one_is_a_usage_error(baseline_dir, demo_dir, tmp_path, value):
    # before: 0 span at 100% CPU forever (the timeout turns that into a failure), -1 a traceback
    proc = spamguard(
        "predict",
        "--model",
        str(baseline_dir),
        "--dataset",
        str(demo_dir),
        "--out",
        str(tmp_path / "p.jsonl"),
        "--batch-size",
        value,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"Invalid value for --batch-size: {value} is outside [1, inf]" in proc.stderr
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: batch_size=0 used to loop forever."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "8"])
def test_batch_size_is_checked_in_python_too(baseline_dir, demo_dir, tmp_path, value):
    with deadline(60), pytest.raises(ValueError, match=r"^batch_size must be an integer ≥ 1, got "):
        predict_to_jsonl(baseline_dir, demo_dir, out=tmp_path / "p.jsonl", batch_size=value)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- #11.13 paths, before the work
def test_out_that_is_a_folder_is_refused_before_scoring(baseline_dir, demo_dir, tmp_path, monkeypatch):
    import hf_spamguard.baseline as baseline

    def no_scoring(*args, **kwargs):
        raise AssertionError("the model was loaded although --out cannot be written")

    monkeypatch.setattr(baseline.BaselineClassifier, "from_pretrained", classmethod(no_scoring))
    (tmp_path / "out").mkdir()
    with pytest.raises(
        FileExistsError, match=r"out: is a folder; give the file to write, e.g. .*predictions.jsonl"
    ):
        predict_to_jsonl(baseline_dir, demo_dir, out=tmp_path / "out")
    line = one_line_error(
        spamguard(
            "predict",
            "--model",
            str(baseline_dir),
            "--dataset",
            str(demo_dir),
            "--out",
            str(tmp_path / "out"),
        )
    )
    assert "out: is a folder" in line


def test_model_that_is_a_file_says_so(demo_dir, tmp_path):
    (tmp_path / "model.skops").write_text("x")
    line = one_line_error(
        spamguard(
            "predict",
            "--model",
            str(tmp_path / "model.skops"),
            "--dataset",
            str(demo_dir),
            "--out",
            str(tmp_path / "p.jsonl"),
        )
    )
    assert "model.skops: is a file; --model takes a model folder" in line


_PERMISSION_DENIED = textwrap.dedent(
    """
    import sys
    import hf_spamguard.data as data

    def load_listings(source, split=None, **kwargs):
        # what reading a TSV the user may not read raises (simulated: root reads every file)
        raise PermissionError(13, "Permission denied", f"{source}/train.tsv")

    data.load_listings = load_listings
    from hf_spamguard.cli import main

    sys.argv = ["spamguard", *sys.argv[1:]]
    main()
    """
)


def test_permission_denied_on_the_dataset_is_one_line(baseline_dir, demo_dir, tmp_path):
    out = tmp_path / "p.jsonl"
    if os.geteuid() != 0:  # a real unreadable file
        data = tmp_path / "data"
        data.mkdir()
        (data / "train.tsv").write_text((demo_dir / "train.tsv").read_text())
        (data / "train.tsv").chmod(0)
        proc = spamguard("predict", "--model", str(baseline_dir), "--dataset", str(data), "--out", str(out))
    else:
        data = demo_dir
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _PERMISSION_DENIED,
                "predict",
                "--model",
                str(baseline_dir),
                "--dataset",
                str(data),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    line = one_line_error(proc)
    assert line == f"Error: cannot read the dataset {data}: permission denied ({data}/train.tsv)"
    assert not out.exists()


def test_a_second_run_into_the_same_out_stops_at_once(baseline_dir, demo_dir, tmp_path):
    from hf_spamguard.jobs import job_lock

    out = tmp_path / "p.jsonl"
    with job_lock(out):
        line = one_line_error(
            spamguard("predict", "--model", str(baseline_dir), "--dataset", str(demo_dir), "--out", str(out))
        )
    assert f"another run (pid {os.getpid()})" in line and not out.exists()


# ----------------------------------------------------------------------------- #11.14 killed runs
def test_leftover_temp_files_of_a_killed_run_are_removed(baseline_dir, demo_dir, tmp_path):
    out = tmp_path / "p.jsonl"
    leftovers = [tmp_path / ".p.jsonl.k3j2l1ab.tmp", tmp_path / ".p.jsonl.policy.json.zz81qq0x.tmp"]
    for f in leftovers:
        f.write_bytes(b"")
    other = tmp_path / ".other.jsonl.abcdefgh.tmp"  # another output's: not ours to remove
    other.write_bytes(b"")
    proc = spamguard("predict", "--model", str(baseline_dir), "--dataset", str(demo_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.jsonl.abcdefgh.tmp",
        "p.jsonl",
        "p.jsonl.policy.json",
    ]


def test_kill_9_during_predict_leaves_nothing_after_the_next_run(
    tiny_model_dir, demo_dir, tmp_path, sigkill_when
):
    out = tmp_path / "p.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "hf_spamguard",
        "predict",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(demo_dir),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--no-progress",
    ]
    sigkill_when(cmd, lambda: any(tmp_path.glob(".p.jsonl.*.tmp")), "predict")
    assert not out.exists() and any(tmp_path.glob(".p.jsonl.*.tmp"))  # what the kill left
    proc = spamguard(*cmd[3:])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "p.jsonl.policy.json"]
    assert len(out.read_text().splitlines()) == 45


# ----------------------------------------------------------------------------------- full disk
@contextlib.contextmanager
def small_disk(folder: Path, free_pages: int) -> Iterator[Path]:
    """A 64 KiB tmpfs at ``folder`` with about ``free_pages`` 4 KiB pages left (root only)."""
    if os.geteuid() != 0:
        pytest.skip("the full-disk test mounts a 64 KiB tmpfs, which needs root; not running as root")
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); full-disk test skipped")
    try:
        (folder / "filler").write_bytes(b"x" * (4096 * (16 - free_pages)))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_while_writing_predictions_is_one_line(baseline_dir, demo_dir, tmp_path):
    with small_disk(tmp_path / "disk", free_pages=2) as disk:
        out = disk / "p.jsonl"
        line = one_line_error(
            spamguard(
                "predict",
                "--model",
                str(baseline_dir),
                "--dataset",
                str(demo_dir),
                "--split",
                "train",
                "--out",
                str(out),
            )
        )
        assert line == (
            f"Error: cannot write predictions to {out}: no space left on device (nothing was written; free "
            "some space and run again)"
        )
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_full_disk_while_writing_a_report_is_one_line(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        "".join(json.dumps({"id": str(i), "confidence": i / 40, "label": i % 2}) + "\n" for i in range(40))
    )
    with small_disk(tmp_path / "disk", free_pages=6) as disk:
        report = disk / "report"
        report.mkdir()
        (report / "metrics.json").write_text("{}")  # an earlier (tiny) report
        line = one_line_error(spamguard("evaluate", "--predictions", str(preds), "--out", str(report)))
        assert line.startswith(f"Error: cannot write the report to {report}: no space left on device")
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "report"]
        assert [p.name for p in report.iterdir()] == ["metrics.json"] and (
            report / "metrics.json"
        ).read_text() == "{}"


# ---------------------------------------------------------------------------- #12.5 policy sidecar
def test_predict_records_the_thresholds_it_applied(baseline_dir, demo_dir, tmp_path):
    out = tmp_path / "p.jsonl"
    proc = spamguard("predict", "--model", str(baseline_dir), "--dataset", str(demo_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    policy = json.loads((baseline_dir / "policy.json").read_text())
    sidecar = read_prediction_policy(out)
    assert sidecar["matches_file"] is True and policy_sidecar(out).name == "p.jsonl.policy.json"
    assert sidecar["thresholds"] == {"review": policy["review"], "demote": policy["demote"]}
    assert sidecar["model"] == str(baseline_dir) and sidecar["model_kind"] == "baseline"
    assert sidecar["predictions"]["rows"] == 45
    assert f"thresholds applied: review {policy['review']:.3f}, demote {policy['demote']:.3f}" in proc.stdout
    report = spamguard("evaluate", "--predictions", str(out), "--out", str(tmp_path / "r"))
    assert (
        f"review {policy['review']:.3f}, demote {policy['demote']:.3f} (applied by spamguard predict"
        in report.stdout
    )


# -------------------------------------------------------------------------------- #12.9 progress bar
def test_progress_counts_rows_as_they_are_scored_and_stays(tiny_model_dir, demo_dir, tmp_path):
    proc = spamguard(
        "predict",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(demo_dir),
        "--out",
        str(tmp_path / "p.jsonl"),
        "--batch-size",
        "4",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    segments = [
        s.strip() for s in proc.stderr.replace("\n", "\r").split("\r") if s.strip().startswith("predict")
    ]
    shown = [int(m.group(1)) for s in segments if (m := re.search(r"\| *(\d+)/45 \[", s))]
    assert len([k for k in shown if 0 < k < 45]) > 0, segments  # moved while scoring ...
    assert all(k % 4 == 0 or k == 45 for k in shown), shown  # ... a batch of rows at a time
    # a rate in rows (tqdm writes "s/rows" when a row takes over a second), never in "it"
    assert all(
        re.search(r"rows/s\]|s/rows\]", s) and "it/s" not in s and "s/it" not in s for s in segments
    ), segments
    last = proc.stderr.rstrip("\n").split("\r")[-1]
    assert "45/45" in last, repr(proc.stderr[-300:])  # left on screen, not erased


def test_no_progress_is_quiet(baseline_dir, demo_dir, tmp_path):
    proc = spamguard(
        "predict",
        "--model",
        str(baseline_dir),
        "--dataset",
        str(demo_dir),
        "--out",
        str(tmp_path / "p.jsonl"),
        "--no-progress",
    )
    assert proc.returncode == 0 and "predict:" not in proc.stderr, proc.stderr
