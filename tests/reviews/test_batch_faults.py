"""Faults of batch scoring (``spamguard score``): options checked before any file is written, processes
that die with their parent, and scoring that needs no worker process. Real processes, killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from hf_spamguard.reviews.batch import score_reviews
from hf_spamguard.reviews.synthetic import write_generated_reviews


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"chunk_size": -5}, "chunk_size must be an integer >= 1"),
        ({"n_jobs": 0}, "n_jobs must be an integer >= 1, or -1"),
        ({"n_jobs": -2}, "n_jobs must be an integer >= 1, or -1"),
    ],
)
def test_bad_options_write_nothing(
    review_student_dir: Path, tmp_path: Path, kwargs: dict, message: str
) -> None:
    src = write_generated_reviews(tmp_path / "in.parquet", n=50, seed=1)
    out = tmp_path / "out.parquet"
    with pytest.raises(ValueError, match=message):
        score_reviews(review_student_dir, src, out, report=False, progress=False, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]  # no manifest, no parts, no lock
    # ...so the corrected run starts cleanly
    assert score_reviews(review_student_dir, src, out, report=False, progress=False, n_jobs=1).rows == 50


def test_an_output_folder_is_refused_before_scoring(review_student_dir: Path, tmp_path: Path) -> None:
    src = write_generated_reviews(tmp_path / "in.parquet", n=50, seed=1)
    (tmp_path / "out").mkdir()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="is a folder"):
        score_reviews(review_student_dir, src, tmp_path / "out", report=False, progress=False)
    assert time.perf_counter() - t0 < 5 and list((tmp_path / "out").iterdir()) == []


def test_die_with_parent_ends_an_orphan(tmp_path: Path) -> None:
    # parent -> child; the child arms die_with_parent and sleeps; SIGKILL the parent, the child must go.
    pid_file = tmp_path / "child.pid"
    child = textwrap.dedent(
        f"""
        import os, sys, time
        from hf_spamguard.jobs import die_with_parent
        die_with_parent(os.getppid())
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
        """
    )
    parent = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        _wait(lambda: pid_file.is_file() and pid_file.read_text().strip(), 30, "the child to start")
        child_pid = int(pid_file.read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _wait(lambda: not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == "zombie", 5,
              "the orphaned child to exit")  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
        if pid_file.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_scoring_runs_in_one_process_so_a_kill_leaves_nothing_behind(
    review_student_dir: Path, tmp_path: Path
) -> None:
    # The chunks are scored by threads of the `score` process (the work is in Arrow's and NumPy's
    # kernels, which release the GIL): no worker process that could outlive a SIGKILL.
    src = write_generated_reviews(tmp_path / "in.parquet", n=60_000, seed=3)
    out = tmp_path / "out.parquet"
    cmd = [
        sys.executable, "-m", "hf_spamguard", "score", "--model", str(review_student_dir), "--input", str(src),
        "--out", str(out), "--chunk-size", "500", "--n-jobs", "2", "--no-report", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        parent = psutil.Process(proc.pid)

        def busy() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"score exited early: {proc.stderr.read().decode()[-2000:]}")
            parts = tmp_path / "out.parquet.parts"
            return parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 4

        _wait(busy, 120, "the run to write parts")
        assert parent.children(recursive=True) == []
        assert parent.num_threads() >= 3  # the main thread and the 2 scoring threads
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
