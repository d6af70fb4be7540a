"""`spamguard dataset build` under faults, as a user meets them: a full disk, a concurrent second
build into the same --out, options out of range. The real entry point runs in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest

HEADER = "\tproduct_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"
SPAMGUARD = str(Path(sys.executable).with_name("spamguard"))


def _spamguard(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run([SPAMGUARD, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _tiny_tsv(folder: Path, n: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tsv = folder / "train.tsv"
    rows = "".join(f"{i}\tq{i}\t\tjeans {i}\t{i % 2 * 3}\t{(1 - i % 2) * 3}\t{i % 2}\n" for i in range(n))
    tsv.write_text(HEADER + rows, encoding="utf-8")
    return tsv


def _digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs: room for a tiny text-only dataset, not for the demo set with its photos."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(
            "the disk-full test mounts a small tmpfs, which needs root (these tests do not run as root)"
        )
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the disk-full test needs one"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_leaves_the_previous_dataset_intact(small_disk: Path, tmp_path: Path) -> None:
    out = small_disk / "listings"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    done = _spamguard(
        "dataset", "build", "--train", str(_tiny_tsv(tmp_path / "in")), "--out", str(out), *cache
    )
    assert done.returncode == 0, done.stderr
    before = _digest(out)
    rows = {s: len(d) for s, d in datasets.load_dataset(str(out), cache_dir=str(tmp_path / "l")).items()}

    # the demo set (300 listings with photos) does not fit: the rebuild fails with one line
    done = _spamguard("dataset", "build", "--demo", "--out", str(out), *cache)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, done.stderr
    assert f"cannot build the dataset {out}: no space left on device" in error[0]
    assert "the previous dataset there is unchanged" in error[0] and "free some space" in error[0]
    # ... and the dataset from before is there, byte for byte, and loads
    assert _digest(out) == before
    again = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "l2"))
    assert {s: len(d) for s, d in again.items()} == rows
    assert sorted(p.name for p in small_disk.iterdir()) == ["listings"]  # no temporary folder, no lock


def test_a_second_build_into_the_same_out_stops_at_once(tmp_path: Path) -> None:
    out = tmp_path / "listings"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom hf_spamguard.jobs import job_lock\n"
            f"with job_lock({str(out)!r}):\n    print('locked', flush=True)\n    time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        done = _spamguard("dataset", "build", "--train", str(_tiny_tsv(tmp_path / "in")), "--out", str(out))
        assert time.monotonic() - start < 15  # at once: no build before the lock
        assert done.returncode == 1
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error:"), done.stderr
        assert f"pid {holder.pid}" in lines[0] and "another run" in lines[0], lines[0]
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed (-9): its lock went with it, and the next build takes it over
    done = _spamguard(
        "dataset",
        "build",
        "--train",
        str(_tiny_tsv(tmp_path / "in")),
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "listings.lock").exists()


def test_baseline_train_takes_the_same_lock(tmp_path: Path, demo_dataset_dir: Path) -> None:
    from hf_spamguard.baseline import train_baseline
    from hf_spamguard.jobs import JobLockedError, job_lock

    out = tmp_path / "baseline"
    with job_lock(out), pytest.raises(JobLockedError, match=f"pid {os.getpid()}"):
        train_baseline(demo_dataset_dir, out)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--validation-size", "-1"], "--validation-size"),
        (["--validation-size", "1"], "--validation-size"),
        (["--validation-size", "nan"], "--validation-size"),
        (["--max-workers", "0"], "--max-workers"),
        (["--seed", "-1"], "--seed"),
        (["--timeout", "0"], "--timeout"),
        (["--license", "CC BY 4.0"], "--license"),
    ],
)
def test_options_out_of_range_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from hf_spamguard.cli import app

    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["dataset", "build", "--demo", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_an_out_that_cannot_be_replaced_is_refused_before_the_build(tmp_path: Path) -> None:
    afile = tmp_path / "listings.parquet"
    afile.write_bytes(b"not a folder")
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    for out, message in ((afile, "is a file, not a folder"), (project, "exists and is not a dataset folder")):
        done = _spamguard("dataset", "build", "--demo", "--out", str(out), "--cache-dir", str(tmp_path / "c"))
        assert done.returncode == 1
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], done.stderr  # no "Generating ..." build output
    assert afile.read_bytes() == b"not a folder" and sorted(p.name for p in project.iterdir()) == ["src"]
    assert not (tmp_path / "c").exists()  # nothing was built


def test_data_validation_errors_survive_pickling() -> None:
    # Errors raised in worker processes (datasets' num_proc, Ray actors) are pickled back to the caller;
    # before, unpickling called __init__ with the message alone and raised a TypeError instead.
    import pickle

    from hf_spamguard.data.tsv import DataValidationError

    error = DataValidationError("/data/listings.tsv", 7, "label", "expected 0 or 1, got 'yes'")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is DataValidationError and str(back) == str(error)
    assert (back.file, back.path, back.line, back.field) == ("listings.tsv", "/data/listings.tsv", 7, "label")
