"""Streaming batch scoring of reviews with a distilled student (``spamguard score``), a resumable job.

The input is read in chunks of ``chunk_size`` rows (memory flat in the number of rows; CSV/TSV/Parquet
files as Arrow tables, without pandas: :func:`hf_spamguard.reviews.data.iter_review_tables`), scored
by ``n_jobs`` threads of this process (the work is in Arrow's and NumPy's kernels, which release the
GIL), and written in order as numbered Parquet parts, each atomically, in ``<out>.parts/``. A part's
existence means its rows are scored, so a killed run resumes with the first missing part (the
bookkeeping is :mod:`hf_spamguard.jobs`'): the parts folder's ``manifest.json`` pins the student (a
fingerprint of its files), the input files, the chunk size and the engine, and parts found without it
are not trusted (removed, the run starts over). A run holds the job's lock (``<out>.lock``): a second
run on the same output stops at once naming the first one's pid. Each part also goes, as it is
written, into ``out``'s temporary file through one ``pyarrow.parquet.ParquetWriter`` (one row group
per part; a resumed run first copies the parts already there); at the end that file replaces ``out``
atomically and the parts folder is removed. With ``engine="ray"`` an actor pool on a Ray cluster
scores the chunks instead (:mod:`hf_spamguard.reviews.ray_engine`) and the parts, which arrive out of
order, are copied into ``out`` at the end; the output is the same, byte for byte.

Each part carries, in its Parquet metadata, its label counts and its top examples per label, so the
HTML report (label distribution + examples) needs no second pass over the data.

``ScoreResult.seconds`` (and so ``rows_per_second``, which ``spamguard score`` prints) covers the whole
run, assembly and report included; ``scoring_seconds`` / ``assembly_seconds`` split it.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import math
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from hf_spamguard.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from hf_spamguard.files import PARTS_SUFFIX
from hf_spamguard.hub_io import check_hub, is_hub_id, local_folder
from hf_spamguard.jobs import (
    PART_METADATA_KEY,
    Parts,
    check_identity,
    folder_fingerprint,
    job_lock,
    read_manifest,
    remove_temp_files,
    write_manifest,
)
from hf_spamguard.prompts import student_texts, student_texts_arrow
from hf_spamguard.reviews.data import (
    SCORE_COLUMNS,
    count_reviews,
    input_fingerprint,
    iter_reviews,
)
from hf_spamguard.reviews.student import Student, load_student

if TYPE_CHECKING:  # pandas is imported only for inputs read by pandas (start-up: ~0.2 s)
    import pandas as pd

__all__ = ["ScoreResult", "score_frame", "score_reviews", "write_score_report"]

FORMAT = "spamguard-scores/1"
EXAMPLE_CHARS = 300
#: Where the chunks are scored: this machine's process pool, or a Ray cluster (:mod:`.ray_engine`).
ENGINES = ("local", "ray")


@dataclass
class ScoreResult:
    """What a scoring run did."""

    out_path: Path
    rows: int = field(metadata={"help": "Rows in the output (resumed parts included)."})
    rows_scored_now: int = field(metadata={"help": "Rows scored by this run."})
    seconds: float = field(
        metadata={"help": "Wall time of this run, start to end: loading, scoring, assembly and report."}
    )
    label_counts: dict[str, int] = field(default_factory=dict, metadata={"help": "Flagged rows per label."})
    report_path: Path | None = None
    scoring_seconds: float = field(
        default=0.0, metadata={"help": "Part of `seconds` until every part is written (loading included)."}
    )
    assembly_seconds: float = field(
        default=0.0, metadata={"help": "Part of `seconds` spent copying the parts into the output file."}
    )

    @property
    def rows_per_second(self) -> float:
        """Rows scored by this run per second of the whole run (assembly included, so not overstated)."""
        return self.rows_scored_now / self.seconds if self.seconds > 0 else 0.0


class _Inputs(NamedTuple):
    """What scoring reads of a chunk, as Arrow arrays: from a pandas chunk (:func:`_frame_inputs`) or an
    Arrow one (:func:`_table_inputs`), the same values for the same rows (tests compare them)."""

    ids: Any  # string
    text: Any  # string: the review, for the report's examples (of usable rows only)
    usable: np.ndarray  # bool: a reader error, no text or blank text leaves a row unscored
    student: Any  # large_string: the student texts of the usable rows
    error: Any  # string: the reader's reason a row is unusable


def _frame_inputs(chunk: pd.DataFrame) -> _Inputs:
    import pyarrow as pa

    text = chunk["text"]
    usable = text.notna().to_numpy() & (text.fillna("").astype(str).str.strip() != "").to_numpy()
    if "error" in chunk:
        usable &= chunk["error"].isna().to_numpy()
    error = chunk["error"] if "error" in chunk else [None] * len(chunk)
    return _Inputs(
        ids=pa.array(chunk["id"].astype(str).tolist(), pa.string()),
        text=pa.array(text.fillna("").astype(str).tolist(), pa.string()),
        usable=usable,
        student=pa.array(student_texts(chunk[usable]), pa.large_string()),
        error=pa.array([e if isinstance(e, str) else None for e in error], pa.string()),
    )


# Not whitespace for str.strip(): any ASCII character but \t \n \v \f \r, \x1c-\x1f and the space.
_NOT_BLANK = r"[\x00-\x08\x0e-\x1b!-\x7f]"


def _table_inputs(table: Any) -> _Inputs:
    """:func:`_frame_inputs` of an Arrow chunk (:func:`hf_spamguard.reviews.data.iter_review_tables`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = table["text"].combine_chunks()
    usable = np.asarray(pc.fill_null(pc.match_substring_regex(text, _NOT_BLANK), False), dtype=bool)
    # the rare rest (no ASCII character that is surely not blank): str.strip() decides, as for pandas
    rest = np.flatnonzero(~usable & np.asarray(text.is_valid()))
    if rest.size:
        values = text.take(pa.array(rest)).to_pylist()
        usable[rest] = [v.strip() != "" for v in values]
    error = table["error"].combine_chunks()
    usable &= np.asarray(error.is_null())
    rows = table if usable.all() else table.filter(pa.array(usable))
    return _Inputs(
        ids=table["id"].combine_chunks(),
        text=text,
        usable=usable,
        student=student_texts_arrow(rows["text"], rows["place_name"], rows["category"]),
        error=error,
    )


def _inputs(chunk: Any) -> _Inputs:
    import pyarrow as pa

    return _table_inputs(chunk) if isinstance(chunk, pa.Table) else _frame_inputs(chunk)


def _score_inputs(student: Student, inputs: _Inputs) -> np.ndarray:
    probs = np.full((len(inputs.usable), len(student.label_names)), np.nan, dtype=np.float32)
    if inputs.usable.any():
        probs[inputs.usable] = student.predict_arrow(inputs.student)
    return probs


def score_frame(student: Student, chunk: pd.DataFrame) -> np.ndarray:
    """Probabilities ``(n, L)`` for a chunk of review rows (a pandas DataFrame, or an Arrow table of
    :data:`hf_spamguard.reviews.data.SCORE_COLUMNS`); NaN rows for reader errors / empty text."""
    return _score_inputs(student, _inputs(chunk))


def _part_table(student: Student, inputs: _Inputs, probs: np.ndarray, k_examples: int) -> Any:
    import pyarrow as pa

    names = student.label_names
    thr = np.array([student.thresholds[n] for n in names], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        flagged = probs >= thr  # NaN compares False: unscored rows carry no flag
    # Flags as a list column built from offsets (no Python loop over rows).
    _, cols = np.nonzero(flagged)
    offsets = np.concatenate([[0], np.cumsum(flagged.sum(axis=1))]).astype(np.int32)
    # "element": the name Parquet gives the list's items, so a part read back has the same schema
    flags = pa.ListArray.from_arrays(
        pa.array(offsets),
        pa.array(np.asarray(names, dtype=object)[cols], pa.string()),
        type=pa.list_(pa.field("element", pa.string())),
    )
    data: dict[str, Any] = {"id": inputs.ids}
    for j, name in enumerate(names):
        col = probs[:, j]
        data[f"p_{name}"] = pa.array(col, pa.float32(), mask=np.isnan(col))
    data["flags"] = flags
    data["error"] = inputs.error
    # Summary travels inside the part: counts and the most confident examples of each label.
    examples: dict[str, list] = {}
    for j, name in enumerate(names):
        idx = np.flatnonzero(flagged[:, j])
        top = idx[np.argsort(-probs[idx, j], kind="stable")[:k_examples]]
        examples[name] = [
            [
                float(probs[i, j]),
                inputs.ids[int(i)].as_py(),
                (inputs.text[int(i)].as_py() or "")[:EXAMPLE_CHARS],
            ]
            for i in top
        ]
    summary = {
        "rows": len(inputs.usable),
        "scored": int((~np.isnan(probs[:, 0])).sum()) if len(names) else 0,
        "flagged": {n: int(flagged[:, j].sum()) for j, n in enumerate(names)},
        "any_flag": int(flagged.any(axis=1).sum()),
        "examples": examples,
    }
    table = pa.table(data)
    return table.replace_schema_metadata({PART_METADATA_KEY: json.dumps(summary)})


def _scored_part(student: Student, chunk: Any, k_examples: int) -> Any:
    """Part table of one chunk (what a Ray actor computes, :mod:`hf_spamguard.reviews.ray_engine`)."""
    inputs = _inputs(chunk)
    return _part_table(student, inputs, _score_inputs(student, inputs), k_examples)


def _chunks_with_index(
    source: str, meta: str | None, chunk_size: int, skip: int
) -> Iterator[tuple[int, Any]]:
    # arrow=True: CSV/TSV/Parquet files come as Arrow tables, read without pandas (several times
    # faster); the same rows and chunks as the DataFrames of the other inputs
    for k, chunk in enumerate(iter_reviews(source, meta=meta, chunk_size=chunk_size, arrow=True)):
        if k >= skip:
            yield k, chunk


def score_reviews(
    model_dir: str | os.PathLike[str],
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    meta: str | None = None,
    chunk_size: int = 20_000,
    n_jobs: int = -1,
    report: bool = True,
    progress: bool = True,
    examples_per_label: int = 5,
    student: Student | None = None,
    engine: str = "local",
    address: str | None = None,
    concurrency: int | None = None,
) -> ScoreResult:
    """Score every review of ``source`` with the student in ``model_dir`` into the Parquet file ``out``.

    Output columns: ``id``, ``p_<label>`` (float32; null where the row had no usable text), ``flags``
    (labels at or above their threshold), ``error`` (the reader's reason a row is unusable). Rows in
    input order. Resumable: re-run the same command after an interruption. ``student``: the already
    loaded student of ``model_dir`` (saves loading it again when scoring several files). ``engine``:
    ``"local"`` (``n_jobs`` threads here) or ``"ray"`` (an actor pool of ``concurrency`` actors on
    the Ray cluster at ``address``, see :func:`hf_spamguard.reviews.ray_engine.score_chunks_on_ray`):
    the same output, row for row; the engine is part of the job's identity. Raises
    :class:`hf_spamguard.jobs.JobLockedError` when another run is writing ``out``, ``ValueError`` when
    its unfinished parts belong to a run with other settings.
    """
    from tqdm.auto import tqdm

    # Options are checked before anything is written: a bad one must not leave a manifest behind that
    # then blocks the corrected run.
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or (n_jobs < 1 and n_jobs != -1):
        raise ValueError(f"n_jobs must be an integer >= 1, or -1 for all cores, got {n_jobs!r}")
    if examples_per_label < 0:
        raise ValueError(f"examples_per_label must be >= 0, got {examples_per_label!r}")
    _check_engine(engine, n_jobs, address, concurrency)
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; the output must be a Parquet file path")
    t0 = time.perf_counter()
    model_dir = local_folder(model_dir)  # a Hub id is downloaded once into the HF cache
    if isinstance(source, str) and is_hub_id(source):
        check_hub(source, repo_type="dataset")  # unreachable: one line now, not after the progress bar
    if student is None:
        student = load_student(model_dir)
    identity = {
        "format": FORMAT,
        "model": str(model_dir.resolve()),
        "model_fingerprint": folder_fingerprint(model_dir),
        "input": str(source),
        "input_files": input_fingerprint(source, meta),
        "chunk_size": chunk_size,
        "engine": engine,
    }
    parts = Parts(out.with_name(out.name + PARTS_SUFFIX), "part")
    with job_lock(out):
        done = _resume(parts, identity, out)
        total = None
        try:
            total = count_reviews(source, meta=meta) if str(source).endswith(".parquet") else None
        except (OSError, ValueError):
            total = None
        n_workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
        rows_now = 0
        # The ray engine's parts arrive out of order: every part present counts, not only a prefix.
        present = len(parts.existing()) if engine == "ray" else done
        with tqdm(
            total=total,
            initial=min(total, present * chunk_size) if total else 0,
            unit="row",
            unit_scale=True,
            desc="scoring",
            disable=not progress,
        ) as bar:

            def finish(k: int, table: Any, output: _Output) -> None:
                nonlocal rows_now
                _write_part(parts, k, table)
                output.add(table)  # the output is written as the parts are: no second pass at the end
                rows_now += table.num_rows
                bar.update(table.num_rows)

            if engine == "ray":
                from hf_spamguard.reviews.ray_engine import score_chunks_on_ray

                def write_part(k: int, rows: int, data: bytes) -> None:
                    nonlocal rows_now
                    atomic_write_bytes(parts.path(k), data, durable=True)
                    rows_now += rows
                    bar.update(rows)

                # Parts arrive out of order, so every part present is skipped, not only a prefix.
                score_chunks_on_ray(
                    student,
                    str(source),
                    meta=meta,
                    chunk_size=chunk_size,
                    skip=parts.existing().keys(),
                    make_part=functools.partial(_scored_part, k_examples=examples_per_label),
                    write_part=write_part,
                    address=address,
                    concurrency=concurrency,
                )
                t_scored = time.perf_counter()
                summaries = _assemble(parts, out, student)
                t_assembled = time.perf_counter()
                scoring, assembly = t_scored - t0, t_assembled - t_scored
            else:
                chunks = _chunks_with_index(str(source), meta, chunk_size, done)
                span: list[float] = []

                def score_into(output: _Output) -> None:
                    span.append(time.perf_counter())  # the parts of an earlier run are in the output
                    _score_chunks(
                        student, chunks, n_workers, examples_per_label, lambda k, t: finish(k, t, output)
                    )
                    span.append(time.perf_counter())

                t_start = time.perf_counter()
                summaries = _assemble(parts, out, student, upto=done, then=score_into)
                t_assembled = time.perf_counter()
                scoring = (t_start - t0) + (span[1] - span[0])
                assembly = (t_assembled - t_start) - (span[1] - span[0])
        stats = _merge_summaries(summaries, student.label_names, examples_per_label)
        report_path = None
        if report:
            report_path = write_score_report(
                stats,
                out.with_suffix(".html"),
                model_dir=model_dir,
                source=str(source),
                thresholds=student.thresholds,
            )
    return ScoreResult(
        out_path=out,
        rows=stats["rows"],
        rows_scored_now=rows_now,
        seconds=time.perf_counter() - t0,
        label_counts=stats["flagged"],
        report_path=report_path,
        scoring_seconds=scoring,
        assembly_seconds=assembly,
    )


def _check_engine(engine: str, n_jobs: int, address: str | None, concurrency: int | None) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "local" and (address is not None or concurrency is not None):
        raise ValueError(
            "address and concurrency are the ray engine's options: add engine='ray' (--engine ray)"
        )
    if engine == "ray":
        if n_jobs != -1:
            raise ValueError("n_jobs is the local engine's option; the ray engine's is concurrency")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        from hf_spamguard.reviews.ray_engine import check_address, check_ray_installed

        check_address(address)
        check_ray_installed()


def _resume(parts: Parts, identity: dict[str, Any], out: Path) -> int:
    """Check or start the parts folder (under the job's lock); returns how many parts are done."""
    parts.folder.mkdir(parents=True, exist_ok=True)
    old = read_manifest(parts.folder)
    if old is not None:
        check_identity(
            parts.folder,
            old,
            identity,
            what="scoring run",
            advice=f"re-run it with the same settings, or delete {parts.folder} to start over",
            adopt_missing=("engine",),  # recorded since the ray engine; older jobs ran locally
        )
    else:
        parts.remove_untrusted()
        write_manifest(parts.folder, identity)
    # Under the lock no other run writes here: every temporary file is a killed write's.
    remove_temp_files(parts.folder)
    remove_temp_files(out.parent, lambda name: name in {out.name, out.with_suffix(".html").name})
    # Parts are written in order, so the done ones are 0..k-1; anything after a gap is rewritten.
    scanned = parts.scan()
    done = 0
    while done in scanned:
        done += 1
    return done


def _score_chunks(
    student: Student,
    chunks: Iterator[tuple[int, Any]],
    n_workers: int,
    k_examples: int,
    finish: Callable[[int, Any], None],
) -> None:
    """Score every chunk into its part table on ``n_workers`` threads, and hand each to ``finish`` (in
    this thread, in chunk order).

    Threads, not processes: the work is in Arrow's and NumPy's kernels, which release the GIL, so
    threads scale as processes did without pickling every chunk and its probabilities across, without
    forking a copy of the student, and nothing outlives a killed run.
    """
    if n_workers == 1:
        for k, chunk in chunks:
            finish(k, _scored_part(student, chunk, k_examples))
        return
    # At most 2 chunks per worker in flight: enough to keep every core busy, memory bounded.
    inflight: deque[tuple[int, Future]] = deque()
    with ThreadPoolExecutor(n_workers, thread_name_prefix="score") as pool:
        for k, chunk in chunks:
            inflight.append((k, pool.submit(_scored_part, student, chunk, k_examples)))
            while len(inflight) >= 2 * n_workers:
                kk, fut = inflight.popleft()
                finish(kk, fut.result())
        while inflight:
            kk, fut = inflight.popleft()
            finish(kk, fut.result())


class _Output:
    """The output file being written: one row group per part, in part order, through one
    ``ParquetWriter`` on a temporary file that replaces ``out`` when :meth:`close` is called (atomic:
    a killed run leaves only the temporary file, which the next run removes). Collects the parts'
    summaries (their Parquet metadata)."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.writer: Any = None
        self.summaries: list[dict[str, Any]] = []

    def add(self, table: Any) -> None:
        import pyarrow.parquet as pq

        self.summaries.append(json.loads(table.schema.metadata[PART_METADATA_KEY]))
        table = table.replace_schema_metadata(None)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.fh, table.schema, use_dictionary=_DICTIONARY)
        self.writer.write_table(table)

    def close(self, student: Student) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:  # empty input: still a valid, empty file
            empty = _part_table(
                student,
                _table_inputs(pa.table({c: pa.array([], pa.string()) for c in SCORE_COLUMNS})),
                np.zeros((0, len(student.label_names))),
                0,
            )
            self.writer = pq.ParquetWriter(
                self.fh, empty.schema.remove_metadata(), use_dictionary=_DICTIONARY
            )
            self.writer.write_table(pa.Table.from_batches([], schema=empty.schema.remove_metadata()))
        self.writer.close()


#: Columns worth a Parquet dictionary (few distinct values). Not the ids, all distinct: trying a
#: dictionary for them was 60% of the writing time.
_DICTIONARY = ["flags", "error"]


def _write_part(parts: Parts, k: int, table: Any) -> None:
    """Part ``k``, atomically and durably."""
    import pyarrow.parquet as pq

    with atomic_path(parts.path(k), durable=True) as tmp:
        pq.write_table(table, tmp, use_dictionary=_DICTIONARY)


def _assemble(
    parts: Parts, out: Path, student: Student, upto: int | None = None, then: Any = None
) -> list[dict[str, Any]]:
    """Stream the parts (those numbered below ``upto``, or all) into ``out``, atomically, then drop the
    parts folder; ``then(output)``, when given, adds the rest first (the local engine scores into the
    output as it goes). Returns the parts' summaries, in order."""
    import pyarrow.parquet as pq

    with atomic_path(out, durable=True) as tmp_out, open(tmp_out, "wb") as fh:
        output = _Output(fh)
        try:
            for k, f in parts.existing().items():
                if upto is None or k < upto:
                    output.add(pq.read_table(f))
            if then is not None:
                then(output)
        except BaseException:
            # closed now, while its file is open: the temporary file goes, and the writer must not
            # try to finish it later, when the garbage collector gets to it
            with contextlib.suppress(Exception):
                if output.writer is not None:
                    output.writer.close()
            raise
        output.close(student)
    shutil.rmtree(parts.folder, ignore_errors=True)
    return output.summaries


def _merge_summaries(summaries: list[dict], names: tuple[str, ...], k: int) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "rows": sum(s["rows"] for s in summaries),
        "scored": sum(s["scored"] for s in summaries),
        "any_flag": sum(s["any_flag"] for s in summaries),
        "flagged": {n: sum(s["flagged"][n] for s in summaries) for n in names},
    }
    examples = {}
    for n in names:
        pool = [e for s in summaries for e in s["examples"][n]]
        pool.sort(key=lambda e: -e[0])
        examples[n] = pool[:k]
    stats["examples"] = examples
    return stats


def write_score_report(
    stats: dict[str, Any],
    path: str | os.PathLike[str],
    *,
    model_dir: Any = "",
    source: str = "",
    thresholds: Any = None,
) -> Path:
    """A small self-contained HTML page: label distribution (bars) and the top examples per label."""
    path = Path(path)
    rows = max(1, stats["rows"])
    esc = html.escape
    bars = []
    for name, count in stats["flagged"].items():
        share = count / rows
        thr = f"{float(thresholds[name]):.3f}" if thresholds is not None else ""
        bars.append(
            f"<tr><td>{esc(name)}</td><td>{thr}</td><td>{count:,}</td><td>{share:.2%}</td>"
            f'<td><div class="bar" style="width:{max(1, math.ceil(300 * share))}px"></div></td></tr>'
        )
    sections = []
    for name, items in stats["examples"].items():
        lis = "".join(
            f"<li><b>{p:.3f}</b> <code>{esc(rid)}</code> {esc(text)}</li>" for p, rid, text in items
        )
        sections.append(f"<h3>{esc(name)}</h3><ol>{lis or '<li><i>no flagged review</i></li>'}</ol>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>spamguard score report</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}} td,th{{padding:2px 10px;text-align:left}}
.bar{{background:#d9534f;height:12px}} li{{margin:4px 0}} code{{color:#666}}</style></head>
<body><h1>Review scoring report</h1>
<p>Model <code>{esc(str(model_dir))}</code>, input <code>{esc(source)}</code>: {stats["rows"]:,} rows,
{stats["scored"]:,} scored, {stats["any_flag"]:,} ({stats["any_flag"] / rows:.2%}) flagged with at least one label.</p>
<h2>Predicted label distribution</h2>
<table><tr><th>label</th><th>threshold</th><th>flagged</th><th>share</th><th></th></tr>{"".join(bars)}</table>
<h2>Most confident examples per label</h2>{"".join(sections)}
</body></html>
"""
    return atomic_write_text(path, page)
