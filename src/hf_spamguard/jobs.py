"""Resumable sharded jobs: the bookkeeping shared by teacher labelling and batch scoring.

A job writes numbered Parquet parts into one folder (``shards/shard-000000.parquet``... for labelling,
``<out>.parts/part-000000.parquet``... for scoring) next to a ``manifest.json`` that records the job's
identity. The rules, the same for both:

- **One run at a time** (:func:`job_lock`): a run holds an OS lock (``fcntl.flock``) on a lock file
  next to its final output, holding its pid. The OS drops the lock when the process ends, however it
  ends (SIGKILL included), so a lock file left by a dead run is simply taken over; a second run while
  the first is alive stops at once with :class:`JobLockedError` naming the holder's pid.
- **The manifest is the job's identity** (:func:`read_manifest`, :func:`write_manifest`,
  :func:`check_identity`): written atomically and durably; a resume whose identity differs is refused
  with one error naming the manifest and every field that differs.
- **Parts without a manifest are not trusted** (:func:`Parts.remove_untrusted`): nothing says which
  job wrote them, so the job starts over and removes them, with a warning.
- **A part exists complete or not at all** (:func:`Parts.write`): written to a temporary file, fsynced,
  renamed. Temporary files a killed run left behind are removed on resume (:func:`remove_temp_files`).
- **Processes coordinate through the files only**: a process takes its rank and world size from the
  launcher's environment (:func:`process_rank`), no process group or barrier.

Layer 0: standard library only at import (pyarrow is imported inside the functions that read parts).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hf_spamguard.atomic import atomic_path, atomic_write_json, stale_temp_files
from hf_spamguard.files import LOCK_SUFFIX, MANIFEST_FILE, read_json

__all__ = [
    "die_with_parent",
    "JobIdentityError",
    "JobLockedError",
    "Parts",
    "check_identity",
    "folder_fingerprint",
    "job_lock",
    "lock_path",
    "process_rank",
    "read_manifest",
    "remove_temp_files",
    "temp_target",
    "write_manifest",
]

logger = logging.getLogger(__name__)

#: Parquet metadata key under which a part carries its own summary (counts, examples...).
PART_METADATA_KEY = b"spamguard"


class JobLockedError(FileExistsError):
    """Another live run holds the job's lock. The message is one line naming the holder's pid."""


class JobIdentityError(ValueError):
    """A job folder holds a job with another identity than the one being resumed."""


# --------------------------------------------------------------------------------------------- lock


def lock_path(output: str | os.PathLike[str], rank: int | None = None) -> Path:
    """The lock file of the job whose final output is ``output``: ``<output>.lock`` next to it
    (``<output>.rank<k>.lock`` for process ``k`` of a multi-process run)."""
    output = Path(output)
    tag = "" if rank is None else f".rank{rank}"
    return output.with_name(f"{output.name}{tag}{LOCK_SUFFIX}")


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "a process whose pid is not recorded yet"


def _acquire(path: Path, *, shared: bool, write_pid: bool) -> int:
    """Open ``path`` and take its flock without waiting; returns the descriptor.

    The lock is taken on the file the path names *now*: a holder that released the lock unlinks its
    file, and a run that opened the old file just before must not believe it holds the new one, so
    the inode is compared after locking and the attempt repeated on a mismatch.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise JobLockedError(
                f"{path}: another run ({_holder(path)}) is working on this job; wait for it to end or "
                "stop it, then run the command again"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        if write_pid:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd


def _release(path: Path, fd: int, *, unlink: bool) -> None:
    try:
        if unlink:
            # Unlinked while still locked: a run that opened it meanwhile sees the inode change.
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


@contextmanager
def job_lock(output: str | os.PathLike[str], *, rank: int = 0, world: int = 1) -> Iterator[Path]:
    """Hold the job's lock (see :func:`lock_path`) for the ``with`` block; yields the lock file.

    A single-process run takes ``<output>.lock`` exclusively and removes it at the end. In a run of
    ``world > 1`` processes (``accelerate launch``, ``torchrun``) every process takes that file shared
    (so a single-process run is refused while any of them lives, and they are refused while one runs)
    and its own ``<output>.rank<k>.lock`` exclusively (so a second multi-process run is refused too);
    process 0 writes its pid into the shared file, which stays behind (removing a file others still
    hold would let a new run lock a fresh one beside them). Raises :class:`JobLockedError` at once,
    never waits.
    """
    output = Path(output)
    main = lock_path(output)
    if world <= 1:
        fd = _acquire(main, shared=False, write_pid=True)
        try:
            yield main
        finally:
            _release(main, fd, unlink=True)
        return
    fd = _acquire(main, shared=True, write_pid=rank == 0)
    try:
        own = lock_path(output, rank)
        own_fd = _acquire(own, shared=False, write_pid=True)
        try:
            yield main
        finally:
            _release(own, own_fd, unlink=True)
    finally:
        _release(main, fd, unlink=False)


# --------------------------------------------------------------------------------------------- manifest


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of the job in ``folder``, or None when there is none (a file that is not a JSON
    object raises :class:`hf_spamguard.files.SidecarError` naming it)."""
    return read_json(Path(folder) / MANIFEST_FILE)


def write_manifest(folder: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Write ``folder/manifest.json`` atomically and durably (fsynced: it must survive a power cut)."""
    return atomic_write_json(
        Path(folder) / MANIFEST_FILE, dict(manifest), indent=1, ensure_ascii=False, durable=True
    )


def check_identity(
    folder: str | os.PathLike[str],
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    what: str,
    advice: str,
    field_advice: Mapping[str, str] | None = None,
    same: Mapping[str, Callable[[Any, Any], bool]] | None = None,
    adopt_missing: Iterable[str] = (),
) -> None:
    """Refuse to resume the job in ``folder`` when its recorded identity ``old`` differs from ``new``.

    Compares every key of ``new`` (with ``same[key]`` where given, else ``==``). Keys in
    ``adopt_missing`` that ``old`` lacks (fields that earlier versions did not record) are adopted with
    a warning. Raises :class:`JobIdentityError`, one line: ``"<folder>/manifest.json: this folder holds
    a <what> with a different 'k' (<old> there, <new> now), ...; <advice>"``, where the advice is
    ``field_advice`` of the differing fields, else ``advice``.
    """
    path = Path(folder) / MANIFEST_FILE
    adopt = set(adopt_missing)
    compare = dict(same or {})
    differ = []
    for key, value in new.items():
        if key not in old and key in adopt:
            logger.warning(
                "%s: the job predates recording %r; assuming the current one (%r) is the one it started with",
                path,
                key,
                value,
            )
            continue
        equal = compare.get(key, lambda a, b: a == b)
        if not equal(old.get(key), value):
            differ.append(key)
    if not differ:
        return
    fields = ", ".join(f"{key!r} ({old.get(key)!r} there, {new[key]!r} now)" for key in differ)
    hows = list(dict.fromkeys((field_advice or {}).get(key, advice) for key in differ))
    raise JobIdentityError(f"{path}: this folder holds a {what} with a different {fields}; {'; '.join(hows)}")


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """A short digest of the names, sizes and modification times of the files directly in ``folder``.

    Part of a job's identity when the job runs a model folder (the teacher of labelling, the student of
    scoring): it notices a folder that was retrained or replaced between two runs. Metadata rather
    than content: hashing tens of GB of teacher weights on every resume would cost more than it
    protects (a retrain rewrites the files, so their mtimes change even when the sizes do not).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"model folder not found: {folder}")
    h = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------- temp files


def temp_target(tmp: str | os.PathLike[str]) -> str:
    """The file name an atomic write's temporary file was for (``.x.parquet.ab12.tmp`` → ``x.parquet``)."""
    name = Path(tmp).name.removeprefix(".").removesuffix(".tmp")
    return name.rpartition(".")[0]


def remove_temp_files(folder: str | os.PathLike[str], owned: Callable[[str], bool] | None = None) -> int:
    """Remove the temporary files that killed atomic writes left in ``folder``; returns how many.

    Only call it while holding the job's lock: a live writer's temporary file looks the same.
    ``owned(target_name)`` restricts it to the targets this process writes (one process of many).
    """
    if not Path(folder).is_dir():
        return 0
    removed = 0
    for tmp in stale_temp_files(folder):
        if owned is None or owned(temp_target(tmp)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


# --------------------------------------------------------------------------------------------- parts


class Parts:
    """The numbered Parquet parts ``<prefix>-000000.parquet``, ``-000001``... of a job in ``folder``."""

    def __init__(self, folder: str | os.PathLike[str], prefix: str) -> None:
        self.folder = Path(folder)
        self.prefix = prefix

    def name(self, k: int) -> str:
        return f"{self.prefix}-{k:06d}.parquet"

    def path(self, k: int) -> Path:
        return self.folder / self.name(k)

    def index(self, name: str) -> int | None:
        """The number of a part file name, or None when ``name`` is not one of these parts."""
        stem, dot, suffix = name.partition(".")
        head, _, number = stem.rpartition("-")
        if head != self.prefix or suffix != "parquet" or not number.isdigit():
            return None
        return int(number)

    def existing(self) -> dict[int, Path]:
        """The part files present, by number, in order (contents not read)."""
        if not self.folder.is_dir():
            return {}
        found = {}
        for path in self.folder.glob(f"{self.prefix}-*.parquet"):
            k = self.index(path.name)
            if k is not None:
                found[k] = path
        return dict(sorted(found.items()))

    def scan(self, known: Mapping[int, dict[str, Any]] | None = None) -> dict[int, dict[str, Any]]:
        """``{k: {"rows": n, **summary}}`` of every readable part (``summary``: the part's metadata).

        Parts in ``known`` are not read again. An unreadable part (a disk failure) is removed with a
        warning, so that it is done again.
        """
        import pyarrow.parquet as pq

        out = dict(known or {})
        for k, path in self.existing().items():
            if k in out:
                continue
            try:
                meta = pq.ParquetFile(path).metadata
            except Exception:  # noqa: BLE001 - any unreadable file: do that part again
                logger.warning("%s is unreadable; it will be done again", path)
                path.unlink(missing_ok=True)
                continue
            info = json.loads((meta.metadata or {}).get(PART_METADATA_KEY, b"{}"))
            out[k] = {"rows": meta.num_rows, **info}
        return dict(sorted(out.items()))

    def remove_untrusted(self, owned: Callable[[int], bool] | None = None) -> int:
        """Remove the parts of a folder that has no manifest (nothing says which job wrote them), with
        a warning; ``owned(k)`` restricts it to this process's parts. Returns how many were removed."""
        stray = [p for k, p in self.existing().items() if owned is None or owned(k)]
        for path in stray:
            path.unlink(missing_ok=True)
        if stray:
            logger.warning(
                "%s: %d part(s) without a %s, so not known to belong to this job: removed, starting over",
                self.folder,
                len(stray),
                MANIFEST_FILE,
            )
        return len(stray)

    def write(self, k: int, table: Any) -> Path:
        """Write part ``k`` (a ``pyarrow.Table``) atomically and durably: complete, or not there at all."""
        import pyarrow.parquet as pq

        path = self.path(k)
        with atomic_path(path, durable=True) as tmp:
            pq.write_table(table, tmp)
        return path


# --------------------------------------------------------------------------------------------- processes


def _env_int(names: tuple[str, ...]) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return None


def process_rank(process_index: int | None = None, num_processes: int | None = None) -> tuple[int, int]:
    """``(rank, world size)`` of this process; arguments that are None come from the environment.

    Processes coordinate through the job's files only, so no process group (and no barrier that could
    time out on a long job) is needed: torchrun / ``accelerate launch --multi_gpu`` export ``RANK`` /
    ``WORLD_SIZE``; MPI launchers (``mpirun -n N accelerate launch --cpu ...``, accelerate's multi-CPU
    mode) export ``PMI_*`` / ``OMPI_*`` / ``MV2_*``. Outside a launcher: ``(0, 1)``.
    """
    if num_processes is None:
        num_processes = (
            _env_int(("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")) or 1
        )
    if process_index is None:
        process_index = _env_int(("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")) or 0
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process index {process_index} outside 0..{num_processes - 1}")
    return process_index, num_processes


def die_with_parent(parent_pid: int, *, poll_seconds: float = 0.5) -> None:
    """Make this (worker) process exit as soon as ``parent_pid`` dies, even by SIGKILL.

    A pool worker whose job was killed would otherwise be re-parented to init and keep its memory (a
    loaded model) until it finishes its task. On Linux the kernel delivers SIGKILL on the parent's
    death (``PR_SET_PDEATHSIG``); elsewhere, and as a backstop, a daemon thread watches the parent pid.
    """
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no libc prctl: the watchdog below still applies
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="spamguard-parent-watch", daemon=True).start()
