"""Resumable-job bookkeeping (hf_spamguard.jobs): the output lock against a real second process, stale
locks, untrusted parts, temporary files, identity errors, process ranks; and that `label` and `score`
both use it."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from hf_spamguard.files import LABELS_FILE, MANIFEST_FILE
from hf_spamguard.jobs import (
    JobIdentityError,
    JobLockedError,
    Parts,
    check_identity,
    job_lock,
    lock_path,
    process_rank,
    remove_temp_files,
    temp_target,
    write_manifest,
)

WAIT = 60  # seconds: the longest any step here may take before the test fails instead of hanging

# Takes the lock on argv[1], says so, and holds it until stdin closes; SIGALRM bounds its life.
HOLDER = """
import signal, sys
signal.alarm(60)
from hf_spamguard.jobs import job_lock
with job_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def _start_holder(output: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(output)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([proc.stdout], [], [], WAIT)
    if not ready or proc.stdout.readline().strip() != "locked":
        proc.kill()
        proc.wait(timeout=WAIT)
        pytest.fail(f"the lock holder did not start: {proc.stderr.read()[-2000:]}")
    return proc


def test_a_second_run_stops_at_once_naming_the_live_holder(tmp_path: Path) -> None:
    output = tmp_path / "scores.parquet"
    proc = _start_holder(output)
    try:
        assert lock_path(output).read_text().strip() == str(proc.pid)
        for attempt in ({}, {"rank": 0, "world": 2}, {"rank": 1, "world": 2}):
            with (
                pytest.raises(JobLockedError, match=rf"\(pid {proc.pid}\)") as err,
                job_lock(output, **attempt),
            ):
                pytest.fail("the lock was taken twice")
            assert "\n" not in str(err.value) and str(lock_path(output)) in str(err.value)
        assert isinstance(err.value, FileExistsError)  # the CLI prints it as one line, exit code 1
    finally:
        # SIGKILL: no clean-up runs in the holder, its lock file stays; the OS drops the flock.
        proc.kill()
        proc.wait(timeout=WAIT)
    assert proc.returncode == -signal.SIGKILL
    assert lock_path(output).read_text().strip() == str(proc.pid)
    with job_lock(output) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock.exists()  # a lock released cleanly leaves nothing next to the output


def test_a_stale_lock_file_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, timeout=WAIT
    )
    output = tmp_path / "labels" / LABELS_FILE
    output.parent.mkdir()
    lock_path(output).write_text(f"{int(dead.stdout)}\n")
    with job_lock(output) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock_path(output).exists()


def test_processes_of_one_run_share_the_lock_but_a_second_run_is_refused(tmp_path: Path) -> None:
    output = tmp_path / LABELS_FILE
    with job_lock(output, rank=0, world=2), job_lock(output, rank=1, world=2):
        assert lock_path(output).read_text().strip() == str(os.getpid())  # process 0's pid
        with pytest.raises(JobLockedError), job_lock(output):
            pytest.fail("a single-process run got in beside a multi-process one")
        second = rf"{lock_path(output, 1).name}: .*\(pid {os.getpid()}\)"
        with pytest.raises(JobLockedError, match=second), job_lock(output, rank=1, world=2):
            pytest.fail("a second run's process 1 got in")
    with job_lock(output):  # all released
        pass


def test_parts_scan_untrusted_parts_and_temporary_files(tmp_path: Path, caplog) -> None:
    parts = Parts(tmp_path / "shards", "shard")
    for k in (0, 1, 3):
        parts.write(k, pa.table({"row": [k]}).replace_schema_metadata({b"spamguard": '{"process": "0"}'}))
    (parts.folder / "shard-000002.parquet").write_bytes(b"not parquet")  # a disk failure
    (parts.folder / "notes.parquet").write_bytes(b"")  # not a part
    assert list(parts.existing()) == [0, 1, 2, 3]
    assert parts.index("shard-000007.parquet") == 7 and parts.index("part-000007.parquet") is None
    scan = parts.scan()
    assert scan == {k: {"rows": 1, "process": "0"} for k in (0, 1, 3)}
    assert not (parts.folder / "shard-000002.parquet").exists()  # unreadable: done again

    tmps = [parts.folder / f".{parts.name(k)}.x{k}y.tmp" for k in range(4)]
    for tmp in tmps:
        tmp.write_bytes(b"half a part")
    assert temp_target(tmps[1]) == "shard-000001.parquet"
    assert remove_temp_files(parts.folder, lambda name: parts.index(name) % 2 == 1) == 2
    assert [t.exists() for t in tmps] == [True, False, True, False]
    assert remove_temp_files(parts.folder) == 2 and not any(t.exists() for t in tmps)

    with caplog.at_level("WARNING"):
        assert parts.remove_untrusted(lambda k: k == 1) == 1
        assert list(parts.existing()) == [0, 3]
        assert parts.remove_untrusted() == 2 and parts.existing() == {}
    assert "without a manifest.json" in caplog.text


def test_identity_error_names_the_manifest_and_every_field_that_differs(tmp_path: Path) -> None:
    old = {"model": "a", "chunk_size": 10, "input": "x"}
    write_manifest(tmp_path, old)
    check_identity(tmp_path, old, dict(old), what="scoring run", advice="start over")
    with pytest.raises(JobIdentityError) as err:
        check_identity(
            tmp_path,
            old,
            {"model": "b", "chunk_size": 20, "input": "x"},
            what="scoring run",
            advice="use the same settings",
            field_advice={"model": "restore the model"},
        )
    message = str(err.value)
    assert message.startswith(
        f"{tmp_path / MANIFEST_FILE}: this folder holds a scoring run with a different "
    )
    assert "'model' ('a' there, 'b' now), 'chunk_size' (10 there, 20 now)" in message
    assert message.endswith("; restore the model; use the same settings") and "\n" not in message
    # custom equality, and fields earlier versions did not record
    check_identity(
        tmp_path,
        old,
        {**old, "model": "A"},
        what="job",
        advice="",
        same={"model": lambda a, b: a == b.lower()},
    )
    check_identity(tmp_path, old, {**old, "dtype": "float32"}, what="job", advice="", adopt_missing=["dtype"])
    with pytest.raises(JobIdentityError, match="'dtype'"):
        check_identity(tmp_path, old, {**old, "dtype": "float32"}, what="job", advice="")


def test_process_rank_from_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "RANK",
        "WORLD_SIZE",
        "PMI_RANK",
        "PMI_SIZE",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
    assert process_rank() == (0, 1)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert process_rank() == (3, 4)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert process_rank() == (1, 2) and process_rank(0, 1) == (0, 1)
    with pytest.raises(ValueError, match="outside 0..1"):
        process_rank(2, 2)


# --------------------------------------------------------------------------------------------- the two jobs


def test_score_distrusts_parts_without_manifest_cleans_temp_files_and_holds_the_lock(
    review_student_dir: Path, tmp_path: Path
) -> None:
    from hf_spamguard.reviews.batch import score_reviews
    from hf_spamguard.reviews.synthetic import generate_reviews, write_generated_reviews

    src = write_generated_reviews(tmp_path / "in.parquet", n=50, seed=3)
    out = tmp_path / "out.parquet"
    parts = Parts(tmp_path / "out.parquet.parts", "part")
    # A part from some other run (no manifest says whose): it must not end up in the output.
    stray = pd.DataFrame({"id": ["not-an-input-row"], "p_spam": [1.0]})
    parts.write(0, pa.Table.from_pandas(stray, preserve_index=False))
    leftovers = [parts.folder / ".part-000001.parquet.abc.tmp", tmp_path / ".out.parquet.def.tmp"]
    for tmp in leftovers:
        tmp.write_bytes(b"killed mid-write")
    holder = _start_holder(out)
    try:
        with pytest.raises(JobLockedError, match=rf"pid {holder.pid}"):
            score_reviews(review_student_dir, src, out, chunk_size=20, n_jobs=1, report=False, progress=False)
    finally:
        holder.stdin.close()  # the holder ends cleanly
        holder.wait(timeout=WAIT)
    assert parts.path(0).exists()  # the refused run touched nothing
    result = score_reviews(
        review_student_dir, src, out, chunk_size=20, n_jobs=1, report=False, progress=False
    )
    scored = pd.read_parquet(out)
    assert scored["id"].tolist() == generate_reviews(50, seed=3)["id"].tolist()
    assert result.rows == result.rows_scored_now == 50
    assert not any(tmp.exists() for tmp in leftovers) and not parts.folder.exists()
    assert not lock_path(out).exists()


def test_label_distrusts_shards_without_manifest(tiny_model_dir: Path, tmp_path: Path) -> None:
    from hf_spamguard.reviews.labeling import LabelingConfig, label_reviews, load_labels
    from hf_spamguard.reviews.synthetic import write_generated_reviews

    src = write_generated_reviews(tmp_path / "in.csv", n=4, seed=2)
    out = tmp_path / "labels"
    shards = Parts(out / "shards", "shard")
    shards.write(0, pa.table({"row": [0], "id": ["stray"]}))
    config = LabelingConfig(
        teacher=str(tiny_model_dir), input=str(src), out=str(out), shard_size=4, device="cpu"
    )
    result = label_reviews(config, progress=False)
    assert result.shards_labelled_now == 1  # labelled again, not taken from the stray shard
    assert load_labels(out)["id"].tolist() == pd.read_csv(src)["id"].astype(str).tolist()
    assert not lock_path(out / LABELS_FILE).exists()


def test_distill_into_a_folder_another_run_holds_stops_at_once(
    tmp_path: Path, review_labels_file: Path
) -> None:
    out = tmp_path / "student"
    proc = _start_holder(out)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "hf_spamguard", "distill", "--labels", str(review_labels_file),
             "--out", str(out), "--cv", "2", "--cs", "1"],
            capture_output=True, text=True, timeout=WAIT,
        )  # fmt: skip
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)
    assert run.returncode == 1, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"(pid {proc.pid})" in lines[0], run.stderr[-2000:]
    assert not out.exists() or not any(out.iterdir())
