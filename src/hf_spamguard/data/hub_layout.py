"""The Hub's dataset layout: ``data/<split>-NNNNN-of-NNNNN.parquet`` + a ``README.md`` card whose YAML
declares the ``configs`` (which files form which split) and the features.

``datasets.load_dataset(folder)`` on such a folder — and ``load_dataset("org/name")`` once it is pushed —
returns the same DatasetDict, including the ``ClassLabel`` names and the ``Image`` feature, because
images are embedded as bytes in the Parquet files and the features are in both the Parquet schema
metadata and the card.

A dataset folder is written as a whole (:func:`atomic_folder`): the new one is built beside the old
one and swapped in only when complete, so a failed or killed rebuild (a full disk, SIGKILL) leaves the
previous dataset as it was, and a rebuild with fewer splits leaves no stale split behind.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_spamguard.atomic import atomic_path, atomic_write_text
from hf_spamguard.files import BUILD_REPORT_FILE, CARD_FILE, DATA_DIR, IMAGE_STATUS_FILE
from hf_spamguard.hub_io import is_hub_id, local_folder, missing_path_error, upload_folder_to_hub

if TYPE_CHECKING:
    import datasets

    from hf_spamguard.data.builder import BuildReport

__all__ = ["atomic_folder", "check_output_folder", "load_listings", "push_dataset", "save_dataset"]

MAX_SHARD_BYTES = 500 * 1024 * 1024  # the Hub's viewer and streaming prefer Parquet files of < ~500 MB
SPLIT_ORDER = ("train", "validation", "test")
#: What :func:`save_dataset` writes (and so replaces) in a dataset folder; anything else there is kept.
MANAGED_ENTRIES = (DATA_DIR, CARD_FILE, BUILD_REPORT_FILE, IMAGE_STATUS_FILE)
_PARTIAL, _REPLACED = ".partial", ".replaced"
# Folders and files are created like open() and mkdir() create them: following the umask.
_UMASK = os.umask(0)
os.umask(_UMASK)


# --------------------------------------------------------------------------------------------- folders
def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a libc without renameat2 (glibc < 2.28, musl)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # a file system that cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def _link_or_copy(src: str, dst: str) -> None:
    # A hard link costs nothing and leaves the old folder untouched; copy where links are refused.
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def remove_partial_folders(path: str | os.PathLike[str]) -> int:
    """Remove what killed :func:`atomic_folder` runs left beside ``path`` (``.<name>.*.partial`` /
    ``.replaced``); returns how many. Only call it while holding ``path``'s lock: a live run's folder
    looks the same."""
    path = Path(path)
    if not path.parent.is_dir():
        return 0
    # Exactly the names atomic_folder makes (mkdtemp's 8 random characters, a pid): never those of a
    # sibling folder whose name starts the same (``ds`` and ``ds.v2``).
    mine = re.compile(
        re.escape(f".{path.name}.")
        + rf"(?:[A-Za-z0-9_]{{8}}{re.escape(_PARTIAL)}|[0-9]+{re.escape(_REPLACED)})"
    )
    stale = [p for p in path.parent.iterdir() if mine.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)


@contextmanager
def atomic_folder(
    path: str | os.PathLike[str], *, keep: Callable[[str], bool] | None = None
) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to fill; on a clean exit it replaces ``path`` as a whole.

    The folder is ``.<name>.<random>.partial`` in ``path``'s parent (so the swap is a rename on one
    file system), created with the umask's permissions (``tempfile.mkdtemp`` alone gives 0700). On an
    exception it is removed and ``path`` is left exactly as it was. Entries of the old ``path`` for which
    ``keep(name)`` is true and that the new folder lacks are carried over (hard links, not moves: until
    the swap the old folder is untouched). The swap is one ``renameat2(RENAME_EXCHANGE)`` on Linux, so
    readers see the old folder or the new one, never none; elsewhere two renames. A ``path`` that is a
    symbolic link keeps it: the folder it points at is the one replaced.
    """
    path = Path(path)
    if path.is_symlink():  # replace the folder it points at, not the link (which may lead to another disk)
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=_PARTIAL, dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        if keep is not None and path.is_dir():
            for entry in sorted(path.iterdir()):
                if not keep(entry.name) or os.path.lexists(tmp / entry.name):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, tmp / entry.name, symlinks=True, copy_function=_link_or_copy)
                else:
                    _link_or_copy(str(entry), str(tmp / entry.name))
        if not path.exists():
            os.replace(tmp, path)
        elif _exchange(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        else:
            old = path.with_name(f".{path.name}.{os.getpid()}{_REPLACED}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------- save
def _write_parquet(ds: datasets.Dataset, path: Path, batch_size: int = 1000) -> int:
    """Write ``ds`` to ``path`` atomically, with external image files embedded as bytes."""
    import pyarrow.parquet as pq
    from datasets.table import embed_table_storage

    schema = ds.features.arrow_schema  # carries the `huggingface` features metadata
    arrow = ds.with_format("arrow")
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema=schema) as writer:
        for start in range(0, len(ds), batch_size):
            table = embed_table_storage(arrow[start : start + batch_size])
            writer.write_table(table.cast(schema))
    return path.stat().st_size


def _loading_metadata(dd: datasets.DatasetDict) -> dict[str, Any]:
    """The card YAML that ``load_dataset(folder)`` reads: which files form which split, and the features
    (so that ``ClassLabel`` names and the ``Image`` feature come back even without the Parquet metadata)."""
    first = next(iter(dd.values()))
    splits = list(dd)
    return {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*"} for s in splits],
            }
        ],
        "dataset_info": {
            "features": first.features._to_yaml_list(),
            "splits": [
                {"name": s, "num_bytes": int(dd[s].data.nbytes), "num_examples": len(dd[s])} for s in splits
            ],
        },
    }


def check_output_folder(out: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an ``out_dir`` that :func:`save_dataset` would not replace: a file
    (``NotADirectoryError``), or a folder that is not a dataset folder (``FileExistsError``: its
    ``data/`` or ``README.md`` would go)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: is a file, not a folder to write the dataset to")
    if not out.is_dir() or _is_built_folder(out):
        return
    foreign = sorted(
        p.name for p in out.iterdir() if not p.name.startswith(".") and p.name != CARD_FILE
    )  # a fresh clone of a Hub dataset repo holds .git, .gitattributes and maybe a README.md
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise FileExistsError(
            f"{out}: exists and is not a dataset folder (it holds {shown}); give a new or empty folder, "
            "or one written by `spamguard dataset build`"
        )


def save_dataset(
    dd: datasets.DatasetDict | datasets.Dataset,
    out_dir: str | Path,
    *,
    report: BuildReport | None = None,
    license: str | None = None,
    lock: bool = True,
) -> Path:
    """Write ``dd`` (a ``DatasetDict``) to ``out_dir`` in the Hub layout and return ``out_dir``.

    Files: ``data/<split>-00000-of-0000N.parquet`` (images embedded), ``README.md`` (the dataset card
    of :func:`hf_spamguard.cards.render_dataset_card`, with YAML ``configs`` + ``dataset_info`` and
    ``license``: a Hub license id, default the folder's card's, else ``other``), and, when a build report
    is given or attached to ``dd`` by :func:`build_dataset`, ``build_report.json`` and ``image_status.csv``.

    The folder is replaced as a whole (:func:`atomic_folder`): on any failure the previous dataset there
    is left intact, and afterwards it holds exactly ``dd``'s splits. Other entries of a previous folder
    (``.git``, ``.gitattributes``, a ``LICENSE``...) are kept. A folder that exists and is not a dataset
    folder (it holds files other than hidden ones and a ``README.md``) is refused with
    ``FileExistsError``. ``lock``: hold ``out_dir``'s job lock (:func:`hf_spamguard.jobs.job_lock`) while
    writing, so that a concurrent writer stops at once with :class:`~hf_spamguard.jobs.JobLockedError`
    naming the holder's pid; pass False when the caller holds it.
    """
    import datasets

    from hf_spamguard.jobs import job_lock

    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({"train": dd})
    if not isinstance(dd, datasets.DatasetDict) or not dd:
        raise ValueError("save_dataset expects a non-empty datasets.DatasetDict")
    report = report if report is not None else getattr(dd, "build_report", None)
    out = Path(out_dir)
    ordered = [s for s in SPLIT_ORDER if s in dd] + [s for s in dd if s not in SPLIT_ORDER]
    dd = datasets.DatasetDict({s: dd[s] for s in ordered})
    if not lock:
        return _save(dd, out, report, license)
    with job_lock(out):
        return _save(dd, out, report, license)


def _save(dd: datasets.DatasetDict, out: Path, report: BuildReport | None, license: str | None) -> Path:
    # Imported here: the card machinery (jinja2, huggingface_hub cards) is only needed when saving.
    from hf_spamguard.cards import render_dataset_card

    check_output_folder(out)
    remove_partial_folders(out)  # a killed run's leftovers (the caller holds the lock)
    if license is None and (out / CARD_FILE).is_file():
        license = _card_license(out / CARD_FILE)
    with atomic_folder(out, keep=lambda name: name not in MANAGED_ENTRIES) as tmp:
        data_dir = tmp / DATA_DIR
        data_dir.mkdir()
        for split, ds in dd.items():
            num_shards = max(1, math.ceil((ds.data.nbytes or 1) / MAX_SHARD_BYTES))
            for i in range(num_shards):
                shard = ds.shard(num_shards, i, contiguous=True) if num_shards > 1 else ds
                _write_parquet(shard, data_dir / f"{split}-{i:05d}-of-{num_shards:05d}.parquet")
        if report is not None:
            atomic_write_text(tmp / BUILD_REPORT_FILE, json.dumps(report.to_dict(), indent=1))
            atomic_write_text(tmp / IMAGE_STATUS_FILE, report.image_status_csv())
        # One dataset card for every writer (build, publish, demo): the model_card/dataset_card.md template.
        render_dataset_card(
            tmp,
            dataset=dd,
            metadata=_loading_metadata(dd),
            build_report=report.to_dict() if report is not None else None,
            license=license,
        )
    return out


def _card_license(card: Path) -> str | None:
    from huggingface_hub import DatasetCard

    try:
        value = DatasetCard.load(card, ignore_metadata_errors=True).data.license
    except Exception:  # noqa: BLE001 - an unreadable card has no license to keep
        return None
    return value if isinstance(value, str) and value else None


def _is_built_folder(path: Path) -> bool:
    return (path / CARD_FILE).is_file() and any((path / DATA_DIR).glob("*.parquet"))


# --------------------------------------------------------------------------------------------- load
def load_listings(
    source: str | Path, split: str | None = None, **build_kwargs: Any
) -> datasets.DatasetDict | datasets.Dataset:
    """Load listings from wherever they are; every consumer (baseline, training, predict...) uses this.

    ``source`` can be
      - a folder written by :func:`save_dataset` (Hub layout) → ``load_dataset(folder)``;
      - a folder with ``train.tsv`` [+ ``validation.tsv``, ``test.tsv``, ``images/``] (as handed over
        by the moderation team, or :func:`~hf_spamguard.data.synthetic.write_demo`) → built on the fly;
      - a single ``.tsv`` file → built on the fly (images from a sibling ``images/`` folder), with a
        seeded stratified validation split carved from it. Asking a single TSV for a split it does
        not have (e.g. ``split="test"``) returns the *whole* file as that split, which is what
        "predict on this file" means;
      - a Hub dataset id (``org/name``, by :func:`hf_spamguard.hub_io.is_hub_id`'s rule) → its snapshot
        (:func:`hf_spamguard.hub_io.local_folder`, cached) → ``load_dataset(snapshot)``.

    Returns a ``DatasetDict``, or a ``Dataset`` when ``split`` is given. ``build_kwargs`` go to
    :func:`~hf_spamguard.data.build_dataset` for TSV sources. A local path that does not exist raises
    ``FileNotFoundError`` at once, an unreachable Hub
    :class:`~hf_spamguard.hub_io.HubUnreachableError` after one short attempt (both one line).
    """
    import datasets

    from hf_spamguard.data.builder import build_dataset

    text = os.fspath(source)
    path = Path(text)
    build_kwargs.setdefault("progress", False)
    if path.is_dir() and _is_built_folder(path):
        dd = datasets.load_dataset(str(path))
    elif path.is_dir() and (path / "train.tsv").is_file():
        dd = build_dataset(
            train=path / "train.tsv",
            validation=path / "validation.tsv" if (path / "validation.tsv").is_file() else None,
            test=path / "test.tsv" if (path / "test.tsv").is_file() else None,
            image_dir=build_kwargs.pop("image_dir", path / "images" if (path / "images").is_dir() else None),
            **build_kwargs,
        )
    elif path.is_file() and path.suffix.lower() in (".tsv", ".txt"):
        image_dir = build_kwargs.pop(
            "image_dir", path.parent / "images" if (path.parent / "images").is_dir() else None
        )
        if split is not None and split not in ("train", "validation"):
            dd = build_dataset(train=path, image_dir=image_dir, validation_size=0, **build_kwargs)
            dd = datasets.DatasetDict({split: dd["train"]})
        else:
            dd = build_dataset(train=path, image_dir=image_dir, **build_kwargs)
    elif path.exists():
        raise ValueError(
            f"{path}: not a listings source (expected a .tsv file, a folder with train.tsv, or a folder "
            "saved by `spamguard dataset build`)"
        )
    elif is_hub_id(text):
        dd = datasets.load_dataset(str(local_folder(text, repo_type="dataset", what="file or folder")))
    else:
        raise missing_path_error(text)
    if split is None:
        return dd
    if split not in dd:
        raise ValueError(f"{source}: no split {split!r} (available: {', '.join(dd)})")
    return dd[split]


# --------------------------------------------------------------------------------------------- push
def push_dataset(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    license: str | None = None,
) -> str:
    """Upload a folder written by :func:`save_dataset` to the Hub as a dataset repo; return the commit URL.

    ``license`` (a Hub license id): first set it in the folder's card (rendered again in place, so the
    folder and the repo agree)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not _is_built_folder(folder):
        raise ValueError(
            f"{folder}: not a built dataset (expected README.md and data/*.parquet; "
            "create it with `spamguard dataset build`)"
        )
    if license is not None:
        from hf_spamguard.cards import render_dataset_card

        render_dataset_card(folder, license=license)
    return upload_folder_to_hub(
        folder,
        repo_id,
        repo_type="dataset",
        private=private,
        token=token,
        commit_message="Upload listings dataset with hf-spamguard",
    )
