"""`spamguard score --engine ray`: a real local Ray cluster (no mocks), compared with the local engine.

One cluster per module (``ray.init(num_cpus=2)``); the SIGKILL tests run the real command in a
subprocess, once joining the module's cluster (``--address``) and once starting its own, and check that
the killed run leaves no Ray worker behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from hf_spamguard.jobs import JobIdentityError
from hf_spamguard.reviews.batch import score_reviews
from hf_spamguard.reviews.ray_engine import _shutdown
from hf_spamguard.reviews.synthetic import write_generated_google_local, write_generated_reviews

ray = pytest.importorskip("ray", reason="the ray engine's tests need the `ray` extra")
ray_data = pytest.importorskip("ray.data", reason="the ray engine's tests need the `ray` extra")


@pytest.fixture(scope="module")
def ray_cluster() -> str:
    """A local 2-CPU cluster for the module; yields its GCS address (for `--address`)."""
    env = dict(os.environ)  # ray.init exports settings (RAY_AUTH_MODE...) into this process's environment
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        # Ray Data's own cluster-wide helper actors (stats, autoscaling coordinator, locality tracker)
        # are created by the first actor-pool run and outlive it: create them now, so that what a
        # test's run starts is that run's alone.
        ray_data.range(2).map_batches(_Identity, compute=ray_data.ActorPoolStrategy(size=1)).count()
        yield context.address_info["gcs_address"]
    finally:
        _shutdown()  # ray.shutdown(), then ends a worker that hangs on its way out (see there)
        os.environ.clear()
        os.environ.update(env)


class _Identity:
    def __call__(self, batch):
        return batch


def _score(student: Path, src: Path, out: Path, **kwargs) -> object:
    return score_reviews(
        student, src, out, chunk_size=kwargs.pop("chunk_size", 400), progress=False, **kwargs
    )


def _inputs(tmp_path: Path, kind: str, n: int = 3000) -> Path:
    if kind == "google-local":  # JSON lines + place metadata, duplicates and an undecodable line
        return write_generated_google_local(tmp_path / "gl", n=n, seed=2)
    return write_generated_reviews(tmp_path / f"in.{kind}", n=n, seed=1)


@pytest.mark.parametrize("kind", ["parquet", "csv", "google-local"])
def test_ray_output_is_the_local_one(
    ray_cluster: str, review_student_dir: Path, tmp_path: Path, kind: str
) -> None:
    src = _inputs(tmp_path, kind)
    local = _score(review_student_dir, src, tmp_path / "local.parquet", n_jobs=1)
    remote = _score(review_student_dir, src, tmp_path / "ray.parquet", engine="ray")
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "ray.parquet")
    )
    assert remote.rows == local.rows == remote.rows_scored_now and remote.label_counts == local.label_counts
    # the same parts, assembled the same way: the very same bytes, report included
    assert (tmp_path / "ray.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    assert (tmp_path / "ray.html").read_bytes() == (tmp_path / "local.html").read_bytes()
    assert not (tmp_path / "ray.parquet.parts").exists() and not (tmp_path / "ray.parquet.lock").exists()


def test_reader_errors_come_out_as_themselves(
    ray_cluster: str, review_student_dir: Path, tmp_path: Path
) -> None:
    # A duplicate id is found by the reader inside Ray's read task: the error is the reader's, one line.
    df = pd.DataFrame({"id": [f"r{i}" for i in range(900)] + ["r5"], "text": ["nice place"] * 901})
    df.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ValueError, match=r"dup\.csv.*duplicate id 'r5'"):
        _score(review_student_dir, tmp_path / "dup.csv", tmp_path / "out.parquet", engine="ray")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "spark"}, "engine must be one of local, ray"),
        ({"concurrency": 2}, "address and concurrency are the ray engine's options"),
        ({"address": "auto"}, "address and concurrency are the ray engine's options"),
        ({"engine": "ray", "n_jobs": 2}, "n_jobs is the local engine's option"),
        ({"engine": "ray", "concurrency": 0}, "concurrency must be an integer >= 1"),
        ({"engine": "ray", "address": "ray://head:10001"}, "Ray Client\\) cannot run Ray Data jobs"),
    ],
)
def test_bad_engine_options_write_nothing(
    review_student_dir: Path, tmp_path: Path, kwargs: dict, message: str
) -> None:
    src = write_generated_reviews(tmp_path / "in.parquet", n=50, seed=1)
    with pytest.raises(ValueError, match=message):
        _score(review_student_dir, src, tmp_path / "out.parquet", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_cli_engine_options_are_checked(review_student_dir: Path, tmp_path: Path) -> None:
    src = write_generated_reviews(tmp_path / "in.parquet", n=50, seed=1)
    base = [sys.executable, "-m", "hf_spamguard", "score", "--model", str(review_student_dir),
            "--input", str(src), "--out", str(tmp_path / "out.parquet")]  # fmt: skip
    for extra, message in (
        (["--engine", "spark"], "'spark' is not one of local, ray"),
        (["--engine", "ray", "--concurrency", "0"], "0 is outside [1, inf]"),
    ):
        res = subprocess.run(base + extra, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and message in res.stderr, res.stderr
    res = subprocess.run(base + ["--concurrency", "2"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "Error: address and concurrency are the ray engine's options" in res.stderr
    assert "Traceback" not in res.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_importing_the_package_does_not_import_ray() -> None:
    code = (
        "import sys, hf_spamguard.reviews, hf_spamguard.reviews.batch, hf_spamguard.reviews.ray_engine, "
        "hf_spamguard.cli; print('ray' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr


# --------------------------------------------------------------------------------------------- kill -9


def _score_cmd(student: Path, src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hf_spamguard", "score", "--model", str(student), "--input", str(src),
            "--out", str(out), "--chunk-size", "500", "--engine", "ray", "--no-report", "--no-progress",
            *extra]  # fmt: skip


def _descendants(proc: psutil.Process) -> dict[int, psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return {p.pid: p for p in proc.children(recursive=True)}
    return {}


def _alive(procs: dict[int, psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
    return alive


def _wait_gone(procs: dict[int, psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (alive := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _kill_when_parts_exist(
    cmd: list[str], parts: Path, watch: psutil.Process | None, env: dict[str, str] | None = None
) -> tuple[dict[int, psutil.Process], dict[int, str]]:
    """Run ``cmd``, SIGKILL it once 3 parts exist; returns the processes it had started under ``watch``
    (default: its own descendants) at that moment, and their names then."""
    before = set(_descendants(watch)) if watch else set()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    started: dict[int, psutil.Process] = {}
    names: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while len(list(parts.glob("part-*.parquet"))) < 3:
            if proc.poll() is not None:
                pytest.fail(f"score exited early: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("timed out waiting for 3 parts")
            time.sleep(0.02)
        root = watch or psutil.Process(proc.pid)
        started = {pid: p for pid, p in _descendants(root).items() if pid not in before and pid != proc.pid}
        for pid, p in started.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                names[pid] = p.name()
        proc.kill()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -9
    return started, names


@pytest.mark.slow
def test_killed_run_resumes_on_the_cluster(
    ray_cluster: str, review_student_dir: Path, tmp_path: Path
) -> None:
    src = write_generated_reviews(tmp_path / "in.parquet", n=60_000, seed=3)
    out = tmp_path / "out.parquet"
    raylet_parent = psutil.Process()  # ray.init started the module's cluster from this process
    workers, names = _kill_when_parts_exist(
        _score_cmd(review_student_dir, src, out, "--address", ray_cluster),
        tmp_path / "out.parquet.parts",
        raylet_parent,
    )
    try:
        assert any("MapWorker" in name for name in names.values()), names
        # The cluster ends the dead driver's job: its actors and read worker go.
        assert not (left := _wait_gone(workers, 30)), [p.name() for p in left]
    finally:
        for p in _alive(workers):
            p.kill()
    done = len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet")))
    assert 3 <= done < 120
    # The folder holds a ray job: the local engine is refused, naming the field.
    with pytest.raises(JobIdentityError, match="'engine' \\('ray' there, 'local' now\\)"):
        _score(review_student_dir, src, out, chunk_size=500, report=False)
    # The same command again resumes: only the missing parts are scored.
    res = subprocess.run(
        _score_cmd(review_student_dir, src, out, "--address", ray_cluster),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (
        "scored 60000 rows in" in res.stdout and f", {500 * done} resumed from an earlier run" in res.stdout
    )
    _score(review_student_dir, src, tmp_path / "local.parquet", chunk_size=500, report=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(out))


@pytest.mark.slow
def test_own_cluster_killed_then_resumed(review_student_dir: Path, tmp_path: Path) -> None:
    # Without --address the command starts a local cluster. kill -9 of the command must end it (Ray's
    # agents, dashboard / runtime-env, notice the raylet's death but then wait about a minute on the
    # dead GCS before exiting: they hold no job, and the test ends them itself); the same command then
    # resumes, and a run that ends normally leaves no process behind at all.
    src = write_generated_reviews(tmp_path / "in.parquet", n=20_000, seed=3)
    out = tmp_path / "out.parquet"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # it must start its own cluster
    started, names = _kill_when_parts_exist(
        _score_cmd(review_student_dir, src, out), tmp_path / "out.parquet.parts", None, env=env
    )
    try:
        assert {"raylet", "gcs_server"} <= set(names.values()), names
        assert any("MapWorker" in name for name in names.values()), names
        workers = {pid: p for pid, p in started.items() if "Agent" not in names.get(pid, "Agent")}
        assert not (left := _wait_gone(workers, 30)), [p.name() for p in left]
    finally:
        for p in _alive(started):
            p.kill()
    done = len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet")))
    proc = subprocess.Popen(
        _score_cmd(review_student_dir, src, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            for pid, child in _descendants(psutil.Process(proc.pid)).items():
                seen.setdefault(pid, child)
                with contextlib.suppress(psutil.NoSuchProcess):  # a worker starts as ray::IDLE
                    names[pid] = psutil.Process(pid).name()
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr[-2000:]
        assert f", {500 * done} resumed from an earlier run" in stdout, stdout
        assert any("MapWorker" in names.get(pid, "") for pid in seen), names
        assert not (left := _wait_gone(seen, 15)), [p.name() for p in left]
    finally:
        proc.kill()
        for p in _alive(seen):
            p.kill()
    _score(review_student_dir, src, tmp_path / "local.parquet", chunk_size=500, report=False, n_jobs=1)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(out))
