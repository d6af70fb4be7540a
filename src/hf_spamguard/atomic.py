"""Atomic file writes, the one implementation every module uses.

Data goes to a temporary file in the target folder, then ``os.replace`` puts it in place: a killed run
leaves either the old file or the new one, never a truncated one, and a failed write removes its
temporary file. ``durable=True`` also fsyncs the file and its folder, for resumable jobs whose
progress must survive a power cut or SIGKILL (labelling shards, scoring parts).

Standard library only: the pipeline's remote code (copied into model folders) may import it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# mkstemp creates files readable by the owner only; published files should follow the umask like open().
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for writers that need a file name (Parquet, PNG...).

    On a clean exit the temporary file replaces ``path``; on an exception it is removed and ``path``
    is left as it was. Creates the parent folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _FILE_MODE)
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_json(
    path: str | os.PathLike[str],
    payload: Any,
    *,
    durable: bool = False,
    indent: int | None = 2,
    **kwargs: Any,
) -> Path:
    """Write ``payload`` as JSON (``indent`` 2, trailing newline) atomically; ``kwargs`` go to ``json.dumps``."""
    return atomic_write_text(path, json.dumps(payload, indent=indent, **kwargs) + "\n", durable=durable)


def stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Temporary files that a killed atomic write left in ``folder`` (safe to delete when no writer runs)."""
    return sorted(Path(folder).glob(".*.tmp"))
