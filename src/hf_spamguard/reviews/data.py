"""Place reviews for review moderation: readers that stream, and the fingerprint of their input files.

Every reader yields :mod:`pandas` chunks with the same columns (:data:`REVIEW_COLUMNS`), in input order,
so labelling, distillation and batch scoring never see a different shape:

- ``id``: a stable row id (Google Local: ``<gmap_id>:<user_id>:<time>``; tables: an ``id`` /
  ``review_id`` column, else ``<row number>``),
- ``text``, ``rating`` (float, NaN when missing), ``place_name``, ``category``, ``gmap_id``,
- ``error``: why the row cannot be used (undecodable bytes, invalid JSON...) or None. Such rows are
  passed on, not dropped, so that labelling can record them with their reason.

Google Local (https://datarepo.eng.ucsd.edu/mcauley_group/gdrive/googlelocal/) ships reviews and place
metadata as JSON lines (often gzipped), joined on ``gmap_id``; both contain duplicates, which are
removed here (reviews on their id, places on ``gmap_id``; first occurrence wins). CSV/TSV/Parquet/JSONL
files, folders of them and Hub dataset ids are read too. The generated review set is
:mod:`hf_spamguard.reviews.synthetic`; the text a student sees is :func:`hf_spamguard.prompts.student_texts`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.data.tsv import DataValidationError
from hf_spamguard.hub_io import check_hub, is_hub_id, missing_path_error
from hf_spamguard.reviews.arrow_io import (
    SeenIds,
    count_quotes,
    has_fffd,
    id_digests,
    maybe_unclosed,
    rechunk_tables,
)

__all__ = [
    "REVIEW_COLUMNS",
    "TABLE_SUFFIXES",
    "count_reviews",
    "input_fingerprint",
    "SCORE_COLUMNS",
    "SeenIds",
    "arrow_readable",
    "id_digests",
    "iter_review_tables",
    "iter_reviews",
    "read_place_metadata",
    "read_reviews",
    "resolve_review_files",
    "unlabellable_reason",
]

logger = logging.getLogger(__name__)

REVIEW_COLUMNS: tuple[str, ...] = ("id", "text", "rating", "place_name", "category", "gmap_id", "error")

#: Table formats read (and written by :mod:`hf_spamguard.reviews.synthetic`).
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".parquet")
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
_ALIASES = {
    "id": ("id", "review_id"),
    "text": ("text", "review_text", "review", "content"),
    "rating": ("rating", "stars"),
    # not plain "name": in review exports (Google Local's among them) that is the reviewer's name
    "place_name": ("place_name", "business_name"),
    "category": ("category", "place_category", "categories"),
    "gmap_id": ("gmap_id",),
}
# Bytes that could not be decoded as UTF-8 survive reading as lone surrogates (surrogateescape).
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _JSON_SUFFIXES + TABLE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def resolve_review_files(source: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """Split ``source`` (a file or a folder) into (review files, Google Local metadata files), sorted.

    In a folder, files named ``meta-*`` / ``meta_*`` are place metadata; all other JSON/CSV/TSV/Parquet
    files (searched recursively, hidden ones skipped) are reviews.
    """
    path = Path(source)
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise missing_path_error(source, "review file or folder")
    reviews: list[Path] = []
    metas: list[Path] = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            continue
        if _suffix(file) not in _JSON_SUFFIXES + TABLE_SUFFIXES or file.name.lower() == "readme.md":
            continue
        (metas if file.name.lower().startswith(("meta-", "meta_")) else reviews).append(file)
    if not reviews:
        raise FileNotFoundError(f"no review files (.json[l][.gz], .csv, .tsv, .parquet) in {source}")
    return reviews, metas


def input_fingerprint(
    source: str | os.PathLike[str], meta: str | os.PathLike[str] | None = None
) -> list[dict]:
    """Files behind ``source`` with size and modification time: a resumed job checks its input is unchanged."""
    if isinstance(source, str) and is_hub_id(source):
        return [{"hub_id": source}]
    reviews, metas = resolve_review_files(source)
    if meta is not None:
        metas = metas + resolve_review_files(meta)[0]
    out = []
    for f in reviews + metas:
        st = f.stat()
        out.append({"path": str(f.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


# --------------------------------------------------------------------------------------------- JSON lines


def _open_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        yield from fh


def _join_category(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value if v is not None) or None
    return str(value)


def read_place_metadata(paths: Iterable[str | os.PathLike[str]]) -> dict[str, tuple[str | None, str | None]]:
    """Google Local place metadata as ``{gmap_id: (name, category)}``; duplicates keep the first record.

    Lines that cannot be read are skipped with a warning naming file and line: places are context for
    the reviews, and a review whose place is unknown is still labelled (without place fields).
    """
    places: dict[str, tuple[str | None, str | None]] = {}
    for path in map(Path, paths):
        for lineno, raw in enumerate(_open_lines(path), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
                gmap_id = obj["gmap_id"]
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
                logger.warning("%s, line %d: skipping unreadable place record (%s)", path.name, lineno, exc)
                continue
            if gmap_id not in places:
                places[str(gmap_id)] = (obj.get("name"), _join_category(obj.get("category")))
    return places


def _field(obj: dict, column: str) -> Any:
    for key in _ALIASES[column]:
        if key in obj:
            return obj[key]
    return None


def _iter_json_rows(
    path: Path, places: dict[str, tuple[str | None, str | None]], seen: set[int], keep_columns: Sequence[str]
) -> Iterator[dict[str, Any]]:
    for lineno, raw in enumerate(_open_lines(path), start=1):
        if not raw.strip():
            continue
        row: dict[str, Any] = dict.fromkeys(REVIEW_COLUMNS)
        row.update(dict.fromkeys(keep_columns))
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            row.update(id=f"{path.name}:{lineno}", error=f"line {lineno}: undecodable bytes ({exc.reason})")
            yield row
            continue
        except json.JSONDecodeError as exc:
            row.update(id=f"{path.name}:{lineno}", error=f"line {lineno}: invalid JSON ({exc.msg})")
            yield row
            continue
        if not isinstance(obj, dict):
            row.update(id=f"{path.name}:{lineno}", error=f"line {lineno}: expected a JSON object")
            yield row
            continue
        gmap_id = obj.get("gmap_id")
        rid = _field(obj, "id")
        if rid is None:
            if gmap_id is not None and "user_id" in obj:
                rid = f"{gmap_id}:{obj.get('user_id')}:{obj.get('time')}"
            else:
                rid = f"{path.name}:{lineno}"
        rid = str(rid)
        # Dedup on a 64-bit digest of the id: 8 bytes a review instead of the whole string.
        key = int.from_bytes(hashlib.blake2b(rid.encode(), digest_size=8).digest(), "little")
        if key in seen:
            continue
        seen.add(key)
        text = _field(obj, "text")
        rating = _field(obj, "rating")
        try:
            rating = float(rating) if rating is not None else np.nan
        except (TypeError, ValueError):
            rating = np.nan
        name, category = places.get(str(gmap_id), (None, None)) if gmap_id is not None else (None, None)
        row.update(
            id=rid,
            text=None if text is None else str(text),
            rating=rating,
            place_name=name if name is not None else obj.get("place_name"),
            category=category if category is not None else _join_category(obj.get("category")),
            gmap_id=None if gmap_id is None else str(gmap_id),
        )
        for col in keep_columns:
            row[col] = obj.get(col)
        yield row


# --------------------------------------------------------------------------------------------- tables


def _normalise_table(
    df: pd.DataFrame, path: Path, offset: int, prefix: str, text_column: str | None, id_column: str | None
) -> pd.DataFrame:
    cols = {c.lower(): c for c in df.columns}

    def pick(column: str, override: str | None = None) -> str | None:
        if override is not None:
            if override not in df.columns:
                raise DataValidationError(
                    path, None, override, f"no such column (columns: {list(df.columns)})"
                )
            return override
        return next((cols[a] for a in _ALIASES[column] if a in cols), None)

    text_col = pick("text", text_column)
    if text_col is None:
        raise DataValidationError(
            path, None, "text", f"no review text column (expected one of {list(_ALIASES['text'])})"
        )
    out = pd.DataFrame(index=df.index)
    id_col = pick("id", id_column)
    if id_col is None:
        out["id"] = [f"{prefix}{i}" for i in range(offset, offset + len(df))]
    else:
        out["id"] = df[id_col].astype(str).to_numpy()
    text = df[text_col]
    out["text"] = text.where(text.notna(), None).astype(object)
    rating_col = pick("rating")
    out["rating"] = pd.to_numeric(df[rating_col], errors="coerce") if rating_col else np.nan
    for column in ("place_name", "category", "gmap_id"):
        src = pick(column)
        out[column] = df[src].where(df[src].notna(), None).astype(object) if src else None
    error = pd.Series([None] * len(df), index=df.index, dtype=object)
    # CSV/TSV are decoded with errors="replace": invalid UTF-8 shows up as U+FFFD (vectorised check).
    bad = text.astype("str").str.contains("\ufffd", regex=False).fillna(False).to_numpy(bool)
    if text.dtype == object:
        bad |= text.map(lambda t: isinstance(t, str) and _UNDECODABLE.search(t) is not None).to_numpy(bool)
    if bad.any():
        lines = np.flatnonzero(bad) + offset + 2  # 1-based, after the header line
        error[bad] = [f"line {n}: undecodable bytes in field {text_col!r}" for n in lines]
        out.loc[bad, "text"] = None
    out["error"] = error
    return out.reset_index(drop=True)


def _refuse_duplicate_ids(ids: Any, path: Path, offset: int, parquet: bool, seen: SeenIds) -> None:
    """Raise on an empty or repeated id (an Arrow string array or a pandas Series of ids).

    Tables are prepared by people: a repeated id is a mistake that would give one review two labels
    (Google Local dumps, which repeat reviews by design, are de-duplicated instead)."""
    import pyarrow as pa

    if not isinstance(ids, pa.Array | pa.ChunkedArray):
        ids = pa.array([v if isinstance(v, str) else None for v in ids], pa.string())
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()

    def where(i: int) -> tuple[int | None, str]:
        return (None, f" (row {offset + i + 1})") if parquet else (offset + i + 2, "")  # after the header

    if ids.null_count:
        i = int(np.flatnonzero(np.asarray(ids.is_null()))[0])
        line, row = where(i)
        raise DataValidationError(path, line, "id", f"empty id{row}: every row needs an id")
    i = seen.add(id_digests(ids))
    if i >= 0:
        line, row = where(i)
        raise DataValidationError(
            path,
            line,
            "id",
            f"duplicate id {ids[i].as_py()!r}{row}: an earlier row has it; ids must be unique across the input",
        )


@contextmanager
def _reader_errors(path: Path) -> Iterator[None]:
    """The readers' own errors (pandas' "No columns to parse from file", a malformed CSV line, a file
    that is not Parquet, an unreadable file) as one line naming the file."""
    import pyarrow as pa

    try:
        yield
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            path, None, None, "the file is empty (expected a header row with a text column)"
        ) from None
    except (pd.errors.ParserError, pa.ArrowInvalid, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError(path, None, None, f"cannot read the table ({first})") from None


def _iter_table(
    path: Path,
    chunk_size: int,
    prefix: str,
    text_column: str | None,
    id_column: str | None,
    keep: Sequence[str],
    seen: SeenIds,
    skip: int = 0,
) -> Iterator[pd.DataFrame]:
    """The table's rows as normalised chunks; ``skip``: rows already read (by the Arrow reader), not
    yielded again (their ids are in ``seen`` already)."""
    with _reader_errors(path):
        suffix = _suffix(path)
        offset = 0
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            chunks: Iterable[pd.DataFrame] = (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_size))
        else:
            chunks = pd.read_csv(
                path,
                sep="\t" if suffix == ".tsv" else ",",
                dtype="str",
                keep_default_na=False,
                na_values=[""],
                chunksize=chunk_size,
                encoding="utf-8",
                encoding_errors="replace",
                quoting=3
                if suffix == ".tsv"
                else 0,  # TSV exports do not quote; a stray '"' must not eat lines
            )
        for df in chunks:
            if offset + len(df) <= skip:
                offset += len(df)
                continue
            if offset < skip:
                df = df.iloc[skip - offset :]
                offset = skip
            out = _normalise_table(df, path, offset, prefix, text_column, id_column)
            _refuse_duplicate_ids(out["id"], path, offset, suffix == ".parquet", seen)
            for col in keep:
                out[col] = df[col].to_numpy() if col in df.columns else None
            offset += len(df)
            yield out


# ------------------------------------------------------------------------- Arrow tables (batch scoring)

#: The columns :func:`iter_review_tables` yields: what batch scoring reads of a review.
SCORE_COLUMNS: tuple[str, ...] = ("id", "text", "place_name", "category", "error")


def _arrow_chunks(path: Path, chunk_size: int, prefix: str, seen: SeenIds) -> Iterator[tuple[int, Any]]:
    """(rows before, Arrow table of :data:`SCORE_COLUMNS`) of a CSV/TSV/Parquet file; ``(rows, None)``
    last when all was read. Stops silently at anything the pandas reader could read differently (a line
    Arrow cannot parse, bytes not UTF-8, repeated column names, a column not text): the caller reads the
    rest with the pandas reader, from the row reached (so its errors are the pandas reader's too)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    suffix = _suffix(path)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
        else:
            import pyarrow.csv as pv

            sep = "\t" if suffix == ".tsv" else ","
            # TSV exports do not quote (QUOTE_NONE in the pandas reader); CSV fields may hold newlines.
            parse = pv.ParseOptions(
                delimiter=sep, quote_char=False if sep == "\t" else '"', newlines_in_values=sep == ","
            )
            read = pv.ReadOptions(block_size=4 << 20)
            names = pv.open_csv(path, read_options=read, parse_options=parse).schema.names
    except (pa.ArrowInvalid, OSError, ValueError):
        return
    if len(set(names)) != len(names) or "" in names:
        return  # pandas renames those ("text.1", "Unnamed: 0"): its reader decides
    cols = {c.lower(): c for c in names}
    src = {c: next((cols[a] for a in _ALIASES[c] if a in cols), None) for c in SCORE_COLUMNS[:4]}
    if src["text"] is None:
        return  # the pandas reader names the problem
    wanted = list(dict.fromkeys(v for v in src.values() if v is not None))
    try:
        if suffix == ".parquet":
            types = {f.name: f.type for f in pf.schema_arrow}
            if not all(pa.types.is_string(types[c]) or pa.types.is_large_string(types[c]) for c in wanted):
                return
            batches: Iterator[Any] = pf.iter_batches(batch_size=chunk_size, columns=wanted)
        else:
            convert = pv.ConvertOptions(
                column_types={c: pa.string() for c in [*wanted, names[-1]]},
                include_columns=list(dict.fromkeys([*wanted, names[-1]])),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            )
            batches = iter(pv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert))
        offset, last = 0, None
        for batch in batches:
            n = batch.num_rows
            if not n:
                continue
            cols_of = {c: batch.column(c).cast(pa.string()) for c in wanted}
            if suffix == ".parquet":
                for arr in cols_of.values():
                    arr.validate(full=True)  # Parquet strings are not checked for UTF-8 on reading
            if src["id"] is None:
                ids = pc.binary_join_element_wise(
                    prefix, pa.array(np.arange(offset, offset + n)).cast(pa.string()), ""
                )
            else:
                ids = cols_of[src["id"]]
            text = cols_of[src["text"]]
            # invalid UTF-8 never reaches here (it stops the reader); U+FFFD itself is marked as pandas' is
            bad = has_fffd(text)
            error = pa.nulls(n, pa.string())
            if bad.any():
                lines = np.flatnonzero(bad) + offset + 2  # 1-based, after the header line
                msgs = np.full(n, None, dtype=object)
                msgs[bad] = [f"line {k}: undecodable bytes in field {src['text']!r}" for k in lines]
                error = pa.array(msgs, pa.string())
                text = pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), text)
            _refuse_duplicate_ids(ids, path, offset, suffix == ".parquet", seen)
            data = {"id": ids, "text": text}
            for c in ("place_name", "category"):
                data[c] = cols_of[src[c]] if src[c] is not None else pa.nulls(n, pa.string())
            data["error"] = error
            if suffix == ".csv":
                last = batch.column(names[-1])[n - 1].as_py()
            yield offset, pa.table(data)
            offset += n
        if suffix == ".csv" and maybe_unclosed(path, last) and count_quotes(path) % 2:
            return  # maybe a quote never closed, which Arrow reads to the end and pandas refuses
    except (pa.ArrowInvalid, OSError):
        return
    yield offset, None  # the whole file was read


def _frame_to_table(df: pd.DataFrame) -> Any:
    import pyarrow as pa  # a pandas reader's chunk (strings or missing) as an Arrow one

    return pa.table(
        {c: pa.array([v if isinstance(v, str) else None for v in df[c]], pa.string()) for c in SCORE_COLUMNS}
    )


def arrow_readable(source: str | os.PathLike[str], meta: str | os.PathLike[str] | None = None) -> bool:
    """True when :func:`iter_review_tables` reads ``source``: local CSV/TSV/Parquet files, no metadata."""
    if (isinstance(source, str) and is_hub_id(source)) or meta is not None:
        return False
    try:
        reviews, metas = resolve_review_files(source)
    except (OSError, ValueError):
        return False
    return not metas and all(_suffix(f) in TABLE_SUFFIXES for f in reviews)


def iter_review_tables(source: str | os.PathLike[str], *, chunk_size: int = 10_000) -> Iterator[Any]:
    """``iter_reviews(source, chunk_size=chunk_size)`` as Arrow tables of :data:`SCORE_COLUMNS` (null:
    missing), same rows, ids, errors and chunks, read by Arrow's multi-threaded readers (several times
    faster than pandas; :func:`_arrow_chunks` says when the pandas reader takes over)."""

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    reviews, _ = resolve_review_files(source)
    seen = SeenIds()
    root = Path(source)

    def tables() -> Iterator[Any]:
        for path in reviews:
            prefix = "" if len(reviews) == 1 else f"{path.relative_to(root).as_posix()}:"
            done = 0
            for offset, table in _arrow_chunks(path, chunk_size, prefix, seen):
                if table is None:
                    break
                done = offset + table.num_rows
                yield table
            else:  # Arrow stopped early (or never started): the pandas reader reads the rest
                for df in _iter_table(path, chunk_size, prefix, None, None, (), seen, skip=done):
                    yield _frame_to_table(df)

    yield from rechunk_tables(tables(), chunk_size)


def _iter_hub(source: str, split: str, chunk_size: int, keep: Sequence[str]) -> Iterator[pd.DataFrame]:
    import datasets

    # One short probe first: datasets' own retries take ~25 s to say the Hub is unreachable.
    check_hub(source, repo_type="dataset")
    try:
        ds = datasets.load_dataset(source, split=split, streaming=True)
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, no such split...: one clear message
        raise FileNotFoundError(
            f"review input {source!r} is not a file or folder, and loading it as a Hub dataset failed: {exc}"
        ) from exc
    offset = 0
    for batch in ds.iter(batch_size=chunk_size):
        df = pd.DataFrame(batch)
        out = _normalise_table(df, Path(source), offset, "", None, None)
        for col in keep:
            out[col] = df[col].to_numpy() if col in df.columns else None
        offset += len(df)
        yield out


def _rechunk(rows: Iterable[dict[str, Any]], chunk_size: int, columns: list[str]) -> Iterator[pd.DataFrame]:
    buf: list[dict[str, Any]] = []
    for row in rows:
        buf.append(row)
        if len(buf) >= chunk_size:
            yield pd.DataFrame(buf, columns=columns)
            buf = []
    if buf:
        yield pd.DataFrame(buf, columns=columns)


def _rechunk_frames(frames: Iterable[pd.DataFrame], chunk_size: int) -> Iterator[pd.DataFrame]:
    """Re-cut frames into exactly ``chunk_size`` rows (the last may be shorter): callers align chunks by count."""
    pending: list[pd.DataFrame] = []
    n = 0
    for df in frames:
        if df.empty:
            continue
        pending.append(df)
        n += len(df)
        while n >= chunk_size:
            whole = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
            yield whole.iloc[:chunk_size].reset_index(drop=True)
            rest = whole.iloc[chunk_size:]
            pending = [rest] if len(rest) else []
            n = len(rest)
    if n:
        yield pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0].reset_index(drop=True)


def iter_reviews(
    source: str | os.PathLike[str],
    *,
    meta: str | os.PathLike[str] | None = None,
    chunk_size: int = 10_000,
    text_column: str | None = None,
    id_column: str | None = None,
    keep_columns: Sequence[str] = (),
    split: str = "train",
    arrow: bool = False,
) -> Iterator[pd.DataFrame]:
    """Stream reviews from ``source`` as DataFrames of exactly ``chunk_size`` rows (the last may be shorter).

    ``source`` is a file (``.json[l][.gz]`` Google Local or generic JSON lines, ``.csv``, ``.tsv``,
    ``.parquet``), a folder of them (Google Local: ``review-*.json`` + ``meta-*.json``), or a Hub dataset
    id (streamed). ``meta`` adds place metadata files/folders. Columns: :data:`REVIEW_COLUMNS` plus
    ``keep_columns``. Memory is flat in the number of rows, except the de-duplication set of JSON inputs
    (8 bytes a review) and the place table. ``arrow``: batch scoring's fast path; where
    :func:`arrow_readable` accepts ``source`` (and no column option is given), the chunks are
    :func:`iter_review_tables`' Arrow tables instead.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if arrow and not (text_column or id_column or keep_columns) and arrow_readable(source, meta):
        yield from iter_review_tables(source, chunk_size=chunk_size)
        return
    keep = [c for c in keep_columns if c not in REVIEW_COLUMNS]
    columns = list(REVIEW_COLUMNS) + keep
    if isinstance(source, str) and is_hub_id(source):
        yield from _rechunk_frames(_iter_hub(source, split, chunk_size, keep), chunk_size)
        return
    reviews, metas = resolve_review_files(source)
    if meta is not None:
        metas = metas + resolve_review_files(meta)[0]
    places = read_place_metadata(metas) if metas else {}
    seen: set[int] = set()
    table_ids = SeenIds()
    root = Path(source)

    def frames() -> Iterator[pd.DataFrame]:
        for path in reviews:
            prefix = "" if len(reviews) == 1 else f"{path.relative_to(root).as_posix()}:"
            if _suffix(path) in _JSON_SUFFIXES:
                yield from _rechunk(_iter_json_rows(path, places, seen, keep), chunk_size, columns)
            else:
                yield from _iter_table(path, chunk_size, prefix, text_column, id_column, keep, table_ids)

    yield from _rechunk_frames(frames(), chunk_size)


def read_reviews(source: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """All of :func:`iter_reviews` in one DataFrame (for small inputs)."""
    chunks = list(iter_reviews(source, **kwargs))
    if not chunks:
        return pd.DataFrame(columns=list(REVIEW_COLUMNS))
    return pd.concat(chunks, ignore_index=True)


def count_reviews(source: str | os.PathLike[str], **kwargs: Any) -> int:
    """Number of rows :func:`iter_reviews` yields (a full pass, cheap next to labelling; Parquet: metadata)."""
    if not (isinstance(source, str) and is_hub_id(source)) and kwargs.get("meta") is None:
        files, metas = resolve_review_files(source)
        if not metas and all(_suffix(f) == ".parquet" for f in files):
            import pyarrow.parquet as pq

            return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    kwargs.setdefault("chunk_size", 50_000)
    return sum(len(c) for c in iter_reviews(source, **kwargs))


def unlabellable_reason(row: Any) -> str | None:
    """Why a review row cannot be labelled or scored (reader error, missing or empty text), or None."""
    error = row.get("error")
    if isinstance(error, str) and error:
        return error
    text = row.get("text")
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return "no text"
    if not str(text).strip():
        return "empty text"
    return None
