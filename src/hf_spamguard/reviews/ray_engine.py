"""Batch scoring on a Ray cluster (``spamguard score --engine ray``): only *where* chunks are scored.

The job itself stays :mod:`hf_spamguard.reviews.batch`'s (manifest identity, lock, numbered atomic
parts, assembly, report); this module replaces its local process pool with Ray Data:

1. **Read**: one Ray Data read task (``_ReviewChunks``, a custom datasource) streams the input
   through the project's reader, :func:`hf_spamguard.reviews.data.iter_reviews`, in the job's
   ``chunk_size``, so chunk ``k`` holds exactly the rows of the local engine's part ``k``. Ray's own
   ``read_parquet`` / ``read_csv`` / ``read_json`` read files in parallel, but the reader's rules are
   sequential by nature (ids that number rows across the input, duplicate ids refused across all
   files, Google Local reviews de-duplicated and joined with their places): a parallel read would give
   other ids and rows. So one process reads, and its rate (``benchmarks/score_speed.py``: "reader
   alone") bounds the engine's, however many actors score. The task runs on the driver's node (the
   input was fingerprinted there) and skips the chunks whose parts exist. Each chunk travels as *one
   row* (part number, row count, the pickled DataFrame): Ray Data splits and merges blocks by size,
   never a row, so a batch of one row is exactly one chunk, whatever the block sizing. Ray Data's
   backpressure pauses the reader while the actors are busy (memory stays flat).
2. **Score**: ``map_batches(StudentScorer, compute=ActorPoolStrategy(size=N), batch_size=1)``, an
   actor pool; each actor takes the student once, in ``__init__``, from the object store (the driver
   ``ray.put``s the one it loaded: the nodes need hf-spamguard installed, not the model folder), and
   returns the part's Parquet bytes, built by the same function as the local engine's parts.
3. **Write**: the driver writes each part by number as it arrives (in any order), atomically.

Resume: Ray Data has no job-level resume of its own. A part file exists complete or not at all, so a
re-run skips every part present (not only a prefix) and scores the rest; the assembly is the local
engine's, so the output is identical to a local run's, row for row.

Errors of the project's code on a worker (a reader's DataValidationError, the student's) travel back
as data and are raised on the driver as themselves (one line in the CLI). A local cluster the run
started is shut down at its end, stragglers included. ``ray://`` (Ray Client) is refused up front:
Ray Data does not run through it.

``ray`` is imported only here, inside the functions: ``import hf_spamguard.reviews`` and the CLI's
start do not pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pandas as pd

__all__ = ["RAY_INSTALL_HINT", "StudentScorer", "check_address", "check_ray_installed", "score_chunks_on_ray"]

logger = logging.getLogger(__name__)

RAY_INSTALL_HINT = "the ray engine needs Ray Data: pip install 'hf-spamguard[ray]'"

#: ``make_part(student, chunk) -> pyarrow.Table``: a scored part, exactly as the local engine writes it.
MakePart = Callable[[Any, pd.DataFrame], Any]
#: ``write_part(k, rows, parquet_bytes)``: called on the driver for every part, in arrival order.
WritePart = Callable[[int, int, bytes], None]


RAY_CLIENT_REFUSAL = (
    "--address ray://... (Ray Client) cannot run Ray Data jobs (Ray Data needs a driver on a cluster node; "
    "ray-project/ray#48682): run the command on a node of the cluster with --address auto, or submit it "
    "there with `ray job submit -- spamguard score ... --address auto`"
)


def check_address(address: str | None) -> None:
    """Refuse an address the engine cannot use, before a job writes anything (:data:`RAY_CLIENT_REFUSAL`)."""
    if address is not None and address.strip().lower().startswith("ray://"):
        raise ValueError(RAY_CLIENT_REFUSAL)


def check_ray_installed() -> None:
    """Raise :class:`ModuleNotFoundError` with the install hint when Ray Data is not importable (checked
    before a job writes anything, without importing Ray)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ModuleNotFoundError(RAY_INSTALL_HINT)


def _pack(exc: BaseException) -> bytes:
    """``exc`` for the driver: pickled, or, if it does not survive pickling (an ``__init__`` that takes
    other arguments than the message, like the readers' DataValidationError), its nearest built-in
    class with its message; either way with the worker's traceback as a note (shown with a traceback,
    not in the CLI's one-line message)."""
    where = "".join(traceback.format_exception(exc)).rstrip()
    try:
        pickle.loads(pickle.dumps(exc))
        copy = exc
    except Exception:  # noqa: BLE001 - any exception that does not round-trip: keep type family + message
        base = next(c for c in type(exc).__mro__ if c.__module__ == "builtins")
        copy = base(str(exc))
    copy.add_note(f"(raised on a Ray worker)\n{where}")
    return pickle.dumps(copy)


# Errors of the project's code on a worker (the reader's, the student's) travel as data, in an "error"
# column, not as exceptions: Ray hands the driver a worker's exception only if it unpickles, and Ray
# Data wraps a UDF's into its own (UserCodeException), keeping only the traceback text. The driver
# raises the original, so the CLI prints it as the one line it would be on the local engine.


class StudentScorer:
    """The actor of the scoring pool: holds the student, turns one-chunk batches into part bytes."""

    def __init__(self, student: Any, make_part: MakePart) -> None:
        """``student``: the student, or its object-store reference (fetched here, once per actor)."""
        import ray
        from threadpoolctl import threadpool_limits

        # One BLAS thread per actor: the pool already has one actor per CPU (as the local workers).
        threadpool_limits(1)
        self.error: bytes | None = None
        try:
            self.student = ray.get(student) if isinstance(student, ray.ObjectRef) else student
        except Exception as exc:  # reported with the first batch, as data (see above)
            self.error = _pack(exc)
        self.make_part = make_part

    def __call__(self, batch: Any) -> Any:
        """``batch``: a ``pyarrow.Table`` of rows (part, rows, chunk, error); returns (part, rows, table,
        error). Arrow, not pandas, batches: pandas would turn a null binary into NaN or None by column."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables: list[bytes | None] = []
        errors: list[bytes | None] = []
        for blob, error in zip(batch["chunk"].to_pylist(), batch["error"].to_pylist(), strict=True):
            table = None
            if error is None and self.error is None:
                try:
                    sink = pa.BufferOutputStream()
                    pq.write_table(self.make_part(self.student, pickle.loads(blob)), sink)
                    table = sink.getvalue().to_pybytes()
                except Exception as exc:
                    error = _pack(exc)
            tables.append(table)
            errors.append(error if error is not None else self.error)
        return pa.table(
            {
                "part": batch["part"],
                "rows": batch["rows"],
                "table": pa.array(tables, pa.large_binary()),
                "error": pa.array(errors, pa.large_binary()),
            }
        )


def _row(k: int, rows: int, chunk: bytes | None, error: bytes | None) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "part": pa.array([k], pa.int64()),
            "rows": pa.array([rows], pa.int64()),
            "chunk": pa.array([chunk], pa.large_binary()),
            "error": pa.array([error], pa.large_binary()),
        }
    )


def _chunk_rows(source: str, meta: str | None, chunk_size: int, skip: frozenset[int]) -> Iterator[Any]:
    """The read task's blocks: one single-row Arrow table per chunk not in ``skip``; a reader error
    ends the stream with a row that carries it."""
    from hf_spamguard.reviews.data import iter_reviews

    try:
        for k, chunk in enumerate(iter_reviews(source, meta=meta, chunk_size=chunk_size)):
            if k not in skip:
                yield _row(k, len(chunk), pickle.dumps(chunk, protocol=5), None)
    except Exception as exc:  # a duplicate id, a malformed file...: to the driver, as data
        yield _row(-1, 0, None, _pack(exc))


def _datasource(source: str, meta: str | None, chunk_size: int, skip: frozenset[int]) -> Any:
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class _ReviewChunks(Datasource):
        """The input as one read task (the reader is sequential), on the driver's node."""

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        @property
        def supports_distributed_reads(self) -> bool:
            return False  # run on the driver's node: the files the manifest fingerprinted

        def get_read_tasks(self, parallelism: int, **_: Any) -> list[ReadTask]:
            meta_ = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(lambda: _chunk_rows(source, meta, chunk_size, skip), meta_)]

    return _ReviewChunks()


#: Settings of the run's datasets (a dataset keeps the context it was made with, so they hold for this
#: run only; the caller's own datasets keep theirs).
_DATASET_SETTINGS: dict[str, Any] = {
    # A read task merges what it yields into blocks of up to this size (128 MiB by default): many
    # chunks in one block, so one bundle, so one actor for all of them. One byte ships each chunk on
    # its own as soon as it is read.
    "target_max_block_size": 1,
    # Our progress bar counts rows; Ray Data's bars and per-run log lines would interleave with it.
    "enable_progress_bars": False,
    "enable_auto_log_stats": False,
    "print_on_execution_start": False,
}


@contextlib.contextmanager
def _run_settings() -> Iterator[None]:
    """Apply :data:`_DATASET_SETTINGS` while the run's datasets are made; quiet Ray Data's INFO logs."""
    import ray.data
    from ray.util.debug import log_once

    ctx = ray.data.DataContext.get_current()
    saved = {name: getattr(ctx, name) for name in _DATASET_SETTINGS if hasattr(ctx, name)}
    for name in saved:
        setattr(ctx, name, _DATASET_SETTINGS[name])
    log_once("ray_data_progress_manager_disabled")  # consumes the one-time "bars disabled" warning
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(ctx, name, value)


@contextlib.contextmanager
def _quiet_ray_data_logs() -> Iterator[None]:
    """Ray Data's INFO lines ("execution finished"...) off for the run; its warnings stay."""
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        data_logger.setLevel(level)


def _connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (None: ``RAY_ADDRESS`` / this machine's running cluster, else a new
    local one); returns whether this call started the connection (and so must end it)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    return True


def _ray_processes() -> list[Any]:
    """This process's descendants that belong to a Ray cluster it started (raylet, GCS, workers...)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with accelerate, a core dependency
        return []
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            name, cmdline = proc.name(), " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if name.startswith("ray::") or name in {"raylet", "gcs_server"} or "/ray/" in cmdline:
            found.append(proc)
    return found


def _shutdown(grace_seconds: float = 5.0) -> None:
    """``ray.shutdown()`` of a connection this run opened, then end what is left of the local cluster
    it started: an actor can hang on its way out once its raylet is gone (seen here with Ray 2.60: a
    MapWorker of a finished dataset, stuck in the core worker's destructor, kept running after the
    run). Only this process's own Ray descendants are touched; with a cluster it joined there are none.
    """
    import ray

    own = _ray_processes()
    ray.shutdown()
    if not own:
        return
    import psutil

    _, alive = psutil.wait_procs(own, timeout=grace_seconds)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    if alive:
        logger.warning("ended %d Ray process(es) left after the cluster's shutdown", len(alive))


def score_chunks_on_ray(
    student: Any,
    source: str,
    *,
    meta: str | None,
    chunk_size: int,
    skip: Iterable[int],
    make_part: MakePart,
    write_part: WritePart,
    address: str | None = None,
    concurrency: int | None = None,
) -> None:
    """Score every chunk of ``source`` not in ``skip`` on Ray, handing each part to ``write_part``.

    ``concurrency``: actors in the pool (default: the cluster's CPUs, one CPU each). A connection this
    call opens (``address``; None starts a local cluster unless one runs on this machine) is closed at
    the end; an existing one (``ray.init`` by the caller) is used and left open. An error raised by the
    project's code inside Ray (the reader's, the student's) is raised here as itself, not wrapped; the
    parts written until then stay (a re-run resumes).
    """
    check_address(address)
    check_ray_installed()
    import ray
    import ray.data

    opened = _connect(address)
    try:
        with _quiet_ray_data_logs():
            n_actors = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
            # One copy in the object store for all actors (Ray Data passes the reference on unresolved). The
            # driver holds it until the run ends, so a restarted actor still finds it.
            student_ref = ray.put(student)
            with _run_settings():
                # One read task (the reader is sequential) whose blocks are not split further; it reserves no
                # CPU: every CPU goes to an actor, and the reader mostly waits on them.
                ds = ray.data.read_datasource(
                    _datasource(source, meta, chunk_size, frozenset(skip)), num_cpus=0, override_num_blocks=1
                ).map_batches(
                    StudentScorer,
                    fn_constructor_args=(student_ref, make_part),
                    batch_size=1,
                    batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=n_actors),
                    num_cpus=1,
                )
            batches = ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1)
            try:
                for batch in batches:
                    for row in batch.to_pylist():
                        if row["error"] is not None:
                            raise pickle.loads(row["error"]) from None
                        write_part(row["part"], row["rows"], row["table"])
            finally:
                close = getattr(batches, "close", None)
                if close is not None:  # stop the run now (an error): its actors and the reader end
                    close()
    finally:
        if opened:
            _shutdown()
