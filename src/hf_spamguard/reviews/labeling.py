"""Teacher labelling as a resumable sharded job (``spamguard label``), on :mod:`hf_spamguard.jobs`.

The input is cut into fixed shards of ``shard_size`` rows, in input order. A shard is written to a
temporary file, fsynced and renamed, so a shard file either exists complete or not at all; the file's
existence *is* the record that the shard is done. ``manifest.json`` (rewritten atomically after every
shard) records the job's identity (teacher with a fingerprint of its files or its Hub revision, dtype,
taxonomy, prompt, input files, shard size...) and progress; a resume whose identity differs is refused,
so one label file never mixes two models, and shards found without a manifest are not trusted (removed,
the job starts over). A run holds the job's lock (``labels.parquet.lock`` in the output folder): a
second run on the same folder stops at once naming the first one's pid. Killed at any moment, even with
SIGKILL, the same command resumes with the missing shards: no row lost, repeated or half-written.

Under ``accelerate launch --num_processes N`` (or ``torchrun``) process ``p`` labels shards
``k % N == p``; whichever process finishes last merges the shards, in shard order, into
``labels.parquet``, so the result does not depend on ``N``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.atomic import atomic_path
from hf_spamguard.files import LABELS_FILE, SHARD_DIR
from hf_spamguard.jobs import (
    PART_METADATA_KEY,
    Parts,
    check_identity,
    job_lock,
    process_rank,
    remove_temp_files,
    write_manifest,
)
from hf_spamguard.jobs import read_manifest as read_job_manifest
from hf_spamguard.prompts import review_system_prompt
from hf_spamguard.reviews.config import LabelingConfig
from hf_spamguard.reviews.data import count_reviews, input_fingerprint, iter_reviews, unlabellable_reason
from hf_spamguard.reviews.teacher import (
    TeacherLabeler,
    default_device,
    dtype_name,
    same_teacher,
    teacher_fingerprint,
)
from hf_spamguard.taxonomy import Taxonomy, load_taxonomy

__all__ = [
    "LabelingConfig",
    "LabelingResult",
    "label_reviews",
    "load_labels",
    "merge_shards",
    "read_manifest",
]

FORMAT = "spamguard-teacher-labels/1"
STATUS_LABELLED = "labelled"
STATUS_UNLABELLABLE = "unlabellable"
#: Review columns copied from the input into the labels, so a student can be trained from them alone.
PASSTHROUGH_COLUMNS = ("text", "rating", "place_name", "category", "gmap_id")
#: Identity fields that manifests written by earlier versions lack: adopted with a warning on resume.
_LATER_IDENTITY_FIELDS = ("teacher_fingerprint", "dtype")


@dataclass
class LabelingResult:
    """What one process did, and the merged file when the job is complete."""

    out_dir: Path
    n_rows: int
    n_shards: int
    shards_done: int
    shards_labelled_now: int
    rows_labelled_now: int
    seconds: float
    labels_path: Path | None


# --------------------------------------------------------------------------------------------- identity


def _identity(config: LabelingConfig, taxonomy: Taxonomy) -> dict[str, Any]:
    prompt_hash = hashlib.sha256(review_system_prompt(taxonomy).encode()).hexdigest()[:16]
    return {
        "teacher": config.teacher,
        "teacher_fingerprint": teacher_fingerprint(config.teacher),
        "dtype": dtype_name(config.device, config.dtype),
        "taxonomy": taxonomy.to_dict(),
        "prompt_sha256": prompt_hash,
        "input": config.input,
        "meta": config.meta,
        "input_files": input_fingerprint(config.input, config.meta),
        "shard_size": config.shard_size,
        "rationale": config.rationale,
        "max_rationale_tokens": config.max_rationale_tokens if config.rationale else None,
        "max_text_chars": config.max_text_chars,
        "limit": config.limit,
        "engine": config.engine,
    }


def _check_identity(old: dict[str, Any], new: dict[str, Any], out_dir: Path) -> None:
    """Refuse to resume ``out_dir`` with another identity (:func:`hf_spamguard.jobs.check_identity`)."""
    check_identity(
        out_dir,
        old,
        new,
        what="labelling job",
        advice="resume with the same settings or use a new --out",
        field_advice={
            "teacher_fingerprint": (
                "the teacher's files changed since this job started (retrained, replaced or another Hub "
                "revision) and its labels would mix two models: label into a new --out (or delete "
                f"{out_dir} to start over), or restore the teacher the job started with"
            ),
            "dtype": (
                f"resume with --dtype {old.get('dtype')} (the default is bfloat16 on GPU, float32 on CPU) "
                "or use a new --out"
            ),
        },
        # A job recorded before engines existed ran on transformers.
        same={"teacher_fingerprint": same_teacher, "engine": lambda a, b: (a or "transformers") == b},
        adopt_missing=_LATER_IDENTITY_FIELDS,
    )


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a labelling folder (job identity, shard progress, completion)."""
    manifest = read_job_manifest(out_dir)
    if manifest is None:
        raise FileNotFoundError(f"no labelling manifest in {out_dir} (expected manifest.json)")
    return manifest


# --------------------------------------------------------------------------------------------- shards


def _shards(out_dir: Path) -> Parts:
    return Parts(out_dir / SHARD_DIR, "shard")


def _shard_schema(label_names: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("row", pa.int64()),
            ("id", pa.string()),
            ("status", pa.string()),
            ("unlabellable_reason", pa.string()),
            *[(f"p_{name}", pa.float64()) for name in label_names],
            ("rationale", pa.string()),
            ("text", pa.string()),
            ("rating", pa.float64()),
            ("place_name", pa.string()),
            ("category", pa.string()),
            ("gmap_id", pa.string()),
        ]
    )


def _write_progress(
    out_dir: Path, identity: dict, n_rows: int, n_shards: int, shards: dict[int, dict], extra: dict
) -> None:
    parts = _shards(out_dir)
    manifest = {
        "format": FORMAT,
        **identity,
        "n_rows": n_rows,
        "n_shards": n_shards,
        "shards_done": len(shards),
        "rows_done": int(sum(s["rows"] for s in shards.values())),
        "shards": {parts.name(k): shards[k] for k in sorted(shards)},
        **extra,
    }
    write_manifest(out_dir, manifest)


def _iter_shards(config: LabelingConfig, n_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    seen = 0
    for k, chunk in enumerate(iter_reviews(config.input, meta=config.meta, chunk_size=config.shard_size)):
        if seen >= n_rows:
            return
        chunk = chunk.iloc[: n_rows - seen]
        chunk.index = range(seen, seen + len(chunk))
        seen += len(chunk)
        yield k, chunk


def _label_shard(labeler: TeacherLabeler, chunk: pd.DataFrame, batch_size: int, bar: Any, rank: int) -> Any:
    import pyarrow as pa

    names = labeler.taxonomy.label_names
    n = len(chunk)
    probs = np.full((n, len(names)), np.nan)
    rationales: list[str | None] = [None] * n
    reasons = [unlabellable_reason(row) for row in chunk.to_dict("records")]
    ok = [i for i in range(n) if reasons[i] is None]
    # Similar lengths batched together: less padding. Deterministic, so results do not depend on N.
    ok.sort(key=lambda i: len(str(chunk["text"].iloc[i])))
    bar.update(n - len(ok))
    for start in range(0, len(ok), batch_size):
        idx = ok[start : start + batch_size]
        p, r = labeler.label_texts(chunk.iloc[idx])
        probs[idx] = p
        for i, text in zip(idx, r, strict=True):
            rationales[i] = text
        bar.update(len(idx))

    def col(name: str) -> list[Any]:
        values = chunk[name].tolist() if name in chunk else [None] * n
        return [None if (isinstance(v, float) and math.isnan(v)) else v for v in values]

    data: dict[str, Any] = {
        "row": chunk.index.to_list(),
        "id": chunk["id"].astype(str).tolist(),
        "status": [STATUS_LABELLED if r is None else STATUS_UNLABELLABLE for r in reasons],
        "unlabellable_reason": reasons,
    }
    for j, name in enumerate(names):
        data[f"p_{name}"] = [None if math.isnan(v) else float(v) for v in probs[:, j]]
    data["rationale"] = rationales
    for name in PASSTHROUGH_COLUMNS:
        values = col(name)
        data[name] = [None if v is None else (float(v) if name == "rating" else str(v)) for v in values]
    table = pa.Table.from_pydict(data, schema=_shard_schema(names))
    info = {"labelled": len(ok), "unlabellable": n - len(ok), "process": str(rank)}
    return table.replace_schema_metadata({PART_METADATA_KEY: json.dumps(info)}), info


# --------------------------------------------------------------------------------------------- the job


def _load_labeler(config: LabelingConfig, taxonomy: Taxonomy) -> TeacherLabeler:
    """The teacher of ``config`` on its engine (transformers, or vLLM: :mod:`hf_spamguard.reviews.vllm_teacher`)."""
    if config.ray:
        from hf_spamguard.reviews.ray_engine import check_address
        from hf_spamguard.reviews.ray_teacher import RayTeacherLabeler

        check_address(config.ray_address)
        return RayTeacherLabeler.from_pretrained(
            config.teacher,
            taxonomy,
            dtype=config.dtype,
            max_text_chars=config.max_text_chars,
            address=config.ray_address,
            concurrency=config.ray_concurrency,
        )
    labeler_class = TeacherLabeler
    if config.engine == "vllm":
        from hf_spamguard.reviews.vllm_teacher import VLLMTeacherLabeler as labeler_class
    return labeler_class.from_pretrained(
        config.teacher,
        taxonomy,
        device=default_device(config.device),
        dtype=config.dtype,
        max_text_chars=config.max_text_chars,
        rationale=config.rationale,
        max_rationale_tokens=config.max_rationale_tokens,
    )


def label_reviews(
    config: LabelingConfig,
    *,
    process_index: int | None = None,
    num_processes: int | None = None,
    labeler: TeacherLabeler | None = None,
    progress: bool = True,
) -> LabelingResult:
    """Label ``config.input`` with the teacher into ``config.out`` (resumable; see the module docstring).

    ``process_index`` / ``num_processes`` default to ``RANK`` / ``WORLD_SIZE`` (set by ``accelerate
    launch`` and ``torchrun``). Returns what this process did; ``labels_path`` is set once every shard
    exists and the merge is written. Raises :class:`hf_spamguard.jobs.JobLockedError` when another run
    is working on ``config.out``, ``ValueError`` when the folder holds a job with other settings.
    """
    t0 = time.perf_counter()
    rank, world = process_rank(process_index, num_processes)
    taxonomy = load_taxonomy(config.taxonomy)
    out = Path(config.out)
    identity = _identity(config, taxonomy)  # before mkdir: a missing teacher or bad dtype leaves no folder
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    with job_lock(out / LABELS_FILE, rank=rank, world=world):
        return _label_locked(config, taxonomy, identity, rank, world, labeler, progress, t0)


def _label_locked(
    config: LabelingConfig,
    taxonomy: Taxonomy,
    identity: dict[str, Any],
    rank: int,
    world: int,
    labeler: TeacherLabeler | None,
    progress: bool,
    t0: float,
) -> LabelingResult:
    from tqdm.auto import tqdm

    out = Path(config.out)
    shards = _shards(out)

    def mine(k: int) -> bool:
        return k % world == rank

    old = read_job_manifest(out)
    if old is not None:
        _check_identity(old, identity, out)
        n_rows = int(old["n_rows"])
    else:
        shards.remove_untrusted(mine)
        n_rows = count_reviews(config.input, meta=config.meta)
        if config.limit is not None:
            n_rows = min(n_rows, config.limit)
    # Temporary files of a killed run: of this process's shards only (the others' may be live); a
    # single process owns every temporary file of the folder (manifest, merge included).
    remove_temp_files(shards.folder, lambda name: (k := shards.index(name)) is not None and mine(k))
    if world == 1:
        remove_temp_files(out)
    n_shards = math.ceil(n_rows / config.shard_size)
    done = shards.scan()
    _write_progress(out, identity, n_rows, n_shards, done, {"complete": False})

    def shard_rows(k: int) -> int:
        return min(config.shard_size, n_rows - k * config.shard_size)

    todo = [k for k in range(n_shards) if mine(k) and k not in done]
    total = sum(shard_rows(k) for k in range(n_shards) if mine(k))
    labelled_now = rows_now = 0
    if todo:
        own = labeler is None
        if own:
            labeler = _load_labeler(config, taxonomy)
            # A Hub teacher is in the local cache only now: record the revision actually loaded, and
            # refuse when the Hub moved on since the job's earlier shards were labelled.
            loaded = teacher_fingerprint(config.teacher)
            if loaded != identity["teacher_fingerprint"]:
                identity = {**identity, "teacher_fingerprint": loaded}
                if old is not None:
                    _check_identity(old, identity, out)
        # vLLM schedules its own batches: it gets a shard at a time.
        batch_size = (
            max(config.batch_size, config.shard_size) if config.engine == "vllm" else config.batch_size
        )
        todo_set = set(todo)
        try:
            with tqdm(
                total=total,
                initial=total - sum(shard_rows(k) for k in todo),
                unit="review",
                desc="labelling" if world == 1 else f"labelling [{rank + 1}/{world}]",
                disable=not progress,
                dynamic_ncols=True,
                smoothing=0.1,
            ) as bar:
                # A labeller with a `prepare` pass (Ray Data) labels groups of shards at once; the
                # others a shard at a time. Either way each shard is written atomically as it is done.
                group_rows = getattr(labeler, "pass_rows", 0)
                group: list[tuple[int, pd.DataFrame]] = []
                for k, chunk in _iter_shards(config, n_rows):
                    if k not in todo_set:
                        continue
                    group.append((k, chunk))
                    last = len(todo_set) == len(group)
                    if sum(len(c) for _, c in group) < group_rows and not last:
                        continue
                    if group_rows:
                        labeler.prepare([c for _, c in group])
                    for k_done, chunk_done in group:
                        table, info = _label_shard(labeler, chunk_done, batch_size, bar, rank)
                        shards.write(k_done, table)
                        done[k_done] = {"rows": len(chunk_done), **info}
                        done = shards.scan(done)  # progress of every process, as far as the files tell
                        _write_progress(out, identity, n_rows, n_shards, done, {"complete": False})
                        labelled_now += 1
                        rows_now += len(chunk_done)
                        todo_set.discard(k_done)
                    group = []
                    if not todo_set:
                        break
        finally:
            if own and hasattr(labeler, "close"):
                labeler.close()  # the vLLM engine's memory and processes
        if todo_set:
            raise RuntimeError(
                f"the input ended before shards {sorted(todo_set)[:5]}: did it change while labelling?"
            )
    labels_path = None
    done = shards.scan(done)  # the other processes' shards written meanwhile
    if len(done) == n_shards:
        labels_path = merge_shards(out)
    return LabelingResult(
        out_dir=out,
        n_rows=n_rows,
        n_shards=n_shards,
        shards_done=len(done),
        shards_labelled_now=labelled_now,
        rows_labelled_now=rows_now,
        seconds=time.perf_counter() - t0,
        labels_path=labels_path,
    )


def merge_shards(out_dir: str | os.PathLike[str]) -> Path:
    """Concatenate every shard, in shard order, into ``labels.parquet`` (streamed; atomic; idempotent).

    Raises when a shard is missing. Checks that the rows are exactly ``0 .. n_rows-1`` once each.
    """
    import pyarrow.parquet as pq

    out = Path(out_dir)
    manifest = read_manifest(out)
    n_rows, n_shards = int(manifest["n_rows"]), int(manifest["n_shards"])
    names = [lab["name"] for lab in manifest["taxonomy"]["labels"]]
    shards = _shards(out)
    paths = [shards.path(k) for k in range(n_shards)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{out}: {len(missing)} shard(s) not labelled yet (first: {missing[0]}); run the labelling again"
        )
    path = out / LABELS_FILE
    expected = 0
    counts = {"labelled": 0, "unlabellable": 0}
    positives = dict.fromkeys(names, 0)
    with atomic_path(path, durable=True) as tmp, pq.ParquetWriter(tmp, _shard_schema(names)) as writer:
        for p in paths:
            table = pq.read_table(p).replace_schema_metadata(None)
            rows = table.column("row").to_numpy()
            if len(rows) and not np.array_equal(rows, np.arange(expected, expected + len(rows))):
                raise ValueError(
                    f"{p}: rows are not {expected}..{expected + len(rows) - 1}; the shard is inconsistent"
                )
            expected += len(rows)
            status = table.column("status").to_pylist()
            counts["labelled"] += status.count(STATUS_LABELLED)
            counts["unlabellable"] += status.count(STATUS_UNLABELLABLE)
            for name in names:
                col = table.column(f"p_{name}").to_numpy(zero_copy_only=False)
                positives[name] += int(np.nansum(col >= 0.5))
            writer.write_table(table)
        if expected != n_rows:  # raised inside: the temporary file goes, labels.parquet is untouched
            raise ValueError(f"{out}: shards hold {expected} rows, the manifest says {n_rows}")
    done = shards.scan()
    summary = {
        "shards_done": len(done),
        "rows_done": int(sum(s["rows"] for s in done.values())),
        "shards": {shards.name(k): done[k] for k in sorted(done)},
        "complete": True,
        "labels_file": LABELS_FILE,
        "counts": counts,
        "teacher_positive_rate": {
            k: (v / counts["labelled"] if counts["labelled"] else None) for k, v in positives.items()
        },
    }
    manifest.update(summary)
    write_manifest(out, manifest)
    return path


def load_labels(source: str | os.PathLike[str], *, labelled_only: bool = False) -> pd.DataFrame:
    """Teacher labels as a DataFrame, from a labelling folder (``labels.parquet``) or a Parquet file."""
    path = Path(source)
    if path.is_dir():
        path = path / LABELS_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{source}: no {LABELS_FILE}; is the labelling complete? (see manifest.json)"
            )
    df = pd.read_parquet(path)
    if labelled_only and "status" in df:
        df = df[df["status"] == STATUS_LABELLED].reset_index(drop=True)
    return df
