"""Place reviews for review moderation: readers that stream, and a deterministic generated set.

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
files, folders of them and Hub dataset ids are read too.
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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.atomic import atomic_path, atomic_write_bytes
from hf_spamguard.data.tsv import DataValidationError
from hf_spamguard.hub_io import is_repo_id

__all__ = [
    "GENERATED_LABELS",
    "REVIEW_COLUMNS",
    "count_reviews",
    "folder_fingerprint",
    "generate_reviews",
    "google_local_id",
    "input_fingerprint",
    "iter_generated_reviews",
    "iter_reviews",
    "read_place_metadata",
    "read_reviews",
    "resolve_review_files",
    "student_texts",
    "unlabellable_reason",
    "write_generated_google_local",
    "write_generated_reviews",
]

logger = logging.getLogger(__name__)

REVIEW_COLUMNS: tuple[str, ...] = ("id", "text", "rating", "place_name", "category", "gmap_id", "error")

#: Labels of the generated review set (the ``reviews`` taxonomy); truth columns are ``true_<label>``.
GENERATED_LABELS: tuple[str, ...] = ("advertisement", "irrelevant", "rant_without_visit", "spam")

_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
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
    for suffix in _JSON_SUFFIXES + _TABLE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _is_hub_id(source: str) -> bool:
    return is_repo_id(source) and not Path(source).exists()


def resolve_review_files(source: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """Split ``source`` (a file or a folder) into (review files, Google Local metadata files), sorted.

    In a folder, files named ``meta-*`` / ``meta_*`` are place metadata; all other JSON/CSV/TSV/Parquet
    files (searched recursively, hidden ones skipped) are reviews.
    """
    path = Path(source)
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise FileNotFoundError(f"review input not found: {source}")
    reviews: list[Path] = []
    metas: list[Path] = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            continue
        if _suffix(file) not in _JSON_SUFFIXES + _TABLE_SUFFIXES or file.name.lower() == "readme.md":
            continue
        (metas if file.name.lower().startswith(("meta-", "meta_")) else reviews).append(file)
    if not reviews:
        raise FileNotFoundError(f"no review files (.json[l][.gz], .csv, .tsv, .parquet) in {source}")
    return reviews, metas


def input_fingerprint(
    source: str | os.PathLike[str], meta: str | os.PathLike[str] | None = None
) -> list[dict]:
    """Files behind ``source`` with size and modification time: a resumed job checks its input is unchanged."""
    if isinstance(source, str) and _is_hub_id(source):
        return [{"hub_id": source}]
    reviews, metas = resolve_review_files(source)
    if meta is not None:
        metas = metas + resolve_review_files(meta)[0]
    out = []
    for f in reviews + metas:
        st = f.stat()
        out.append({"path": str(f.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """A short digest of the names, sizes and modification times of the files directly in ``folder``.

    Resumable jobs (labelling with a teacher, scoring with a student) store it to notice a model folder
    that was retrained or replaced between two runs. Metadata rather than content: hashing tens of GB of
    teacher weights on every resume would cost more than it protects (a retrain rewrites the files, so
    their mtimes change even when the sizes do not).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"model folder not found: {folder}")
    h = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


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


def _refuse_duplicate_ids(ids: pd.Series, path: Path, offset: int, parquet: bool, seen: set[int]) -> None:
    # Tables are prepared by people: a repeated id is a mistake that would give one review two labels
    # (Google Local dumps, which repeat reviews by design, are de-duplicated instead). 8 bytes an id.
    for i, rid in enumerate(ids):
        key = int.from_bytes(hashlib.blake2b(rid.encode(), digest_size=8).digest(), "little")
        if key in seen:
            where = f"row {offset + i + 1}" if parquet else None
            raise DataValidationError(
                path,
                None if parquet else offset + i + 2,  # 1-based, after the header line
                "id",
                f"duplicate id {rid!r}{f' ({where})' if where else ''}: an earlier row has it; ids must be "
                "unique across the input",
            )
        seen.add(key)


def _iter_table(
    path: Path,
    chunk_size: int,
    prefix: str,
    text_column: str | None,
    id_column: str | None,
    keep: Sequence[str],
    seen: set[int],
) -> Iterator[pd.DataFrame]:
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
            quoting=3 if suffix == ".tsv" else 0,  # TSV exports do not quote; a stray '"' must not eat lines
        )
    for df in chunks:
        out = _normalise_table(df, path, offset, prefix, text_column, id_column)
        _refuse_duplicate_ids(out["id"], path, offset, suffix == ".parquet", seen)
        for col in keep:
            out[col] = df[col].to_numpy() if col in df.columns else None
        offset += len(df)
        yield out


def _iter_hub(source: str, split: str, chunk_size: int, keep: Sequence[str]) -> Iterator[pd.DataFrame]:
    import datasets

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
) -> Iterator[pd.DataFrame]:
    """Stream reviews from ``source`` as DataFrames of exactly ``chunk_size`` rows (the last may be shorter).

    ``source`` is a file (``.json[l][.gz]`` Google Local or generic JSON lines, ``.csv``, ``.tsv``,
    ``.parquet``), a folder of them (Google Local: ``review-*.json`` + ``meta-*.json``), or a Hub dataset
    id (streamed). ``meta`` adds place metadata files/folders. Columns: :data:`REVIEW_COLUMNS` plus
    ``keep_columns``. Memory is flat in the number of rows, except the de-duplication set of JSON inputs
    (8 bytes a review) and the place table.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    keep = [c for c in keep_columns if c not in REVIEW_COLUMNS]
    columns = list(REVIEW_COLUMNS) + keep
    if isinstance(source, str) and _is_hub_id(source):
        yield from _rechunk_frames(_iter_hub(source, split, chunk_size, keep), chunk_size)
        return
    reviews, metas = resolve_review_files(source)
    if meta is not None:
        metas = metas + resolve_review_files(meta)[0]
    places = read_place_metadata(metas) if metas else {}
    seen: set[int] = set()
    table_ids: set[int] = set()
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
    if not (isinstance(source, str) and _is_hub_id(source)) and kwargs.get("meta") is None:
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


def student_texts(df: pd.DataFrame) -> list[str]:
    """The text a student classifier sees for each review: the review plus its place context.

    One function for distillation and batch scoring, so the two cannot drift apart. The place
    category matters for ``irrelevant`` (a review about phones under a pizzeria).
    """

    def column(name: str) -> list[str]:
        if name not in df:
            return [""] * len(df)
        return ["" if not isinstance(v, str) else v for v in df[name].tolist()]

    texts = column("text")
    if "place_name" not in df and "category" not in df:
        return texts
    # One comprehension over plain lists: this runs on every row of batch scoring.
    return [
        (f"{t} [place: {n} | {c}]" if n and c else f"{t} [place: {n or c}]") if (n or c) else t
        for t, n, c in zip(texts, column("place_name"), column("category"), strict=True)
    ]


# --------------------------------------------------------------------------------------------- generated set

_PLACES = (
    ("Luigi's Trattoria", "Italian restaurant", ("pasta", "pizza", "tiramisu", "lasagna")),
    ("Golden Dragon", "Chinese restaurant", ("dumplings", "noodles", "fried rice", "spring rolls")),
    ("Bean There Cafe", "Coffee shop", ("latte", "espresso", "croissant", "cold brew")),
    ("Sunrise Dental", "Dentist", ("cleaning", "checkup", "filling", "appointment")),
    ("QuickFix Auto", "Auto repair shop", ("oil change", "brakes", "tyres", "inspection")),
    ("Green Leaf Market", "Grocery store", ("produce", "bakery", "deli", "checkout")),
    ("Iron Temple Gym", "Gym", ("equipment", "classes", "trainers", "locker room")),
    ("Blue Harbor Hotel", "Hotel", ("room", "breakfast", "front desk", "pool")),
    ("Paws & Claws", "Veterinarian", ("vet", "vaccines", "checkup", "staff")),
    ("Taco Loco", "Mexican restaurant", ("tacos", "burritos", "salsa", "margaritas")),
    ("City Books", "Book store", ("selection", "staff picks", "reading corner", "prices")),
    ("Sparkle Car Wash", "Car wash", ("wash", "wax", "interior", "vacuum")),
)
_GOOD = ("Great", "Amazing", "Lovely", "Excellent", "Really good", "Fantastic", "Solid", "Decent")
_BAD = ("Terrible", "Disappointing", "Awful", "Mediocre", "Poor", "Overpriced", "Cold", "Slow")
_VISIT = (
    "We came here on {day} and the {item} was {adj}.",
    "Stopped by last {day}; the {item} was {adj} and the staff were {staff}.",
    "{adj_cap} {item}, staff were {staff}. Waited about {mins} minutes.",
    "Visited with my family, ordered the {item}. It was {adj}, service {staff}.",
    "My second visit. The {item} is still {adj} and parking was easy.",
)
_STAFF = ("friendly", "rude", "helpful", "slow", "attentive", "busy", "welcoming", "dismissive")
_DAYS = ("Monday", "Friday night", "Saturday", "Sunday morning", "a weekday", "Tuesday lunch")
_AD = (
    "Visit www.{brand}.example for {pct}% off, use code {code} at checkout!",
    "Call {phone} today for the best deals in town, free delivery!",
    "Follow @{brand}deals and DM us for discounts, link in bio: bit.ly/{code}",
    "Cheap {item} at {brand}.example, order now and save {pct}%!!!",
)
_BRANDS = ("bestdeals", "promoking", "shopfast", "megasale", "cheapcity", "dealhub", "savebig")
_IRRELEVANT = (
    "My phone battery keeps dying since the update, does anyone know a fix?",
    "Watching the game tonight, go team! What a season.",
    "The weather has been crazy this week, rain every single day.",
    "Does anyone know when the new season of that show comes out?",
    "Just finished my exams, so happy it is over!",
    "Traffic on the highway was insane this morning.",
    "Happy birthday to my sister, love you!",
)
_RANT = (
    "Never been here but my friend says it's a total scam, avoid.",
    "Haven't visited, but from the photos this place looks disgusting. {stars} star.",
    "I heard on the news they {scandal}. Won't ever go, neither should you.",
    "Didn't go in, the outside looked dirty enough. Pathetic.",
    "Never been, never will. Everyone online says the {item} is garbage.",
)
_SCANDAL = ("cheat customers", "failed an inspection", "underpay staff", "overcharge tourists")
_SPAM_WORDS = ("good", "nice", "best", "wow", "ok", "top", "great", "five stars")


def _generate_chunk(start: int, n: int, seed: int) -> pd.DataFrame:
    # One generator per (seed, block of 10k rows): the set is identical whatever chunk size a caller uses.
    rows: list[dict[str, Any]] = []
    for block in range(start // 10_000, (start + n - 1) // 10_000 + 1):
        rng = np.random.default_rng([seed, block])
        lo, hi = max(start, block * 10_000), min(start + n, (block + 1) * 10_000)
        rows.extend(_generate_block(rng, block * 10_000, lo, hi, seed))
    return pd.DataFrame(rows)


def _generate_block(rng: np.random.Generator, block_start: int, lo: int, hi: int, seed: int) -> list[dict]:
    size = 10_000
    u = rng.random((size, 8))
    ints = rng.integers(0, 1_000_000, size=(size, 8))
    rows = []
    for j in range(lo - block_start, hi - block_start):
        i = block_start + j
        r, k = u[j], ints[j]
        name, category, items = _PLACES[k[0] % len(_PLACES)]
        item = items[k[1] % len(items)]
        ad, irr, rant, spam = bool(r[0] < 0.10), bool(r[1] < 0.09), bool(r[2] < 0.08), bool(r[3] < 0.08)
        if irr and rant:  # an off-topic text is not a rant about the place
            rant = False
        positive = r[4] < 0.6
        adj = (_GOOD if positive else _BAD)[k[2] % 8].lower()
        parts: list[str] = []
        if irr:
            parts.append(_IRRELEVANT[k[3] % len(_IRRELEVANT)])
        elif rant:
            parts.append(
                _RANT[k[3] % len(_RANT)].format(stars=1, scandal=_SCANDAL[k[4] % len(_SCANDAL)], item=item)
            )
        elif not spam or r[5] < 0.5:
            parts.append(
                _VISIT[k[3] % len(_VISIT)].format(
                    day=_DAYS[k[4] % len(_DAYS)],
                    item=item,
                    adj=adj,
                    adj_cap=adj.capitalize(),
                    staff=_STAFF[k[5] % len(_STAFF)],
                    mins=5 + k[6] % 40,
                )
            )
        if ad:
            brand = _BRANDS[k[6] % len(_BRANDS)]
            parts.append(
                _AD[k[7] % len(_AD)].format(
                    brand=brand,
                    pct=10 + k[5] % 50,
                    code=f"{brand[:4].upper()}{k[4] % 100}",
                    phone=f"555-{k[3] % 10000:04d}",
                    item=item,
                )
            )
        if spam:
            word = _SPAM_WORDS[k[7] % len(_SPAM_WORDS)]
            parts.append(" ".join([word] * (6 + k[2] % 10)) + "!" * (k[1] % 5))
        rating = 1 if rant else 5 if ad else (4 + k[6] % 2 if positive else 1 + k[6] % 2)
        rows.append(
            {
                "id": f"r{seed}-{i:08d}",
                "text": " ".join(parts),
                "rating": float(rating),
                "place_name": name,
                "category": category,
                "gmap_id": f"0x{(k[0] % len(_PLACES)) + 1:04x}:demo",
                "error": None,
                "true_advertisement": ad,
                "true_irrelevant": irr,
                "true_rant_without_visit": rant,
                "true_spam": spam,
            }
        )
    return rows


def generate_reviews(n: int = 200, seed: int = 0, *, start: int = 0) -> pd.DataFrame:
    """``n`` deterministic synthetic place reviews (rows ``start .. start+n-1``) with truth columns.

    Columns: :data:`REVIEW_COLUMNS` + ``true_<label>`` for each of :data:`GENERATED_LABELS`. About a
    third of the rows violate at least one policy; labels overlap (an ad can also be spam).
    """
    if n <= 0:
        return pd.DataFrame(columns=list(REVIEW_COLUMNS) + [f"true_{lab}" for lab in GENERATED_LABELS])
    return _generate_chunk(start, n, seed)


def iter_generated_reviews(n: int, seed: int = 0, chunk_size: int = 50_000) -> Iterator[pd.DataFrame]:
    """:func:`generate_reviews` in chunks (for benchmarks: a million rows without holding them)."""
    for start in range(0, n, chunk_size):
        yield generate_reviews(min(chunk_size, n - start), seed, start=start)


def write_generated_reviews(
    path: str | os.PathLike[str], n: int = 200, seed: int = 0, *, chunk_size: int = 50_000
) -> Path:
    """Write the generated set as ``.csv``, ``.tsv`` or ``.parquet`` (streamed; atomic)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in _TABLE_SUFFIXES:
        raise ValueError(f"{path}: expected a .csv, .tsv or .parquet file name")
    writer = None
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for k, chunk in enumerate(iter_generated_reviews(n, seed, chunk_size)):
            chunk = chunk.drop(columns=["error"])
            if suffix == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(fh, table.schema)
                writer.write_table(table)
            else:
                fh.write(
                    chunk.to_csv(sep="\t" if suffix == ".tsv" else ",", index=False, header=k == 0).encode()
                )
        if writer is not None:
            writer.close()
    return path


def write_generated_google_local(
    out_dir: str | os.PathLike[str],
    n: int = 200,
    seed: int = 0,
    *,
    duplicates: int = 5,
    empty: int = 3,
    undecodable: int = 1,
) -> Path:
    """Write the generated set in the Google Local layout: ``review-Demo.json`` + ``meta-Demo.json``.

    Real dumps are messy, and so is this one: ``duplicates`` reviews (and every place) appear twice,
    ``empty`` reviews have ``"text": null`` (rating only) and ``undecodable`` lines carry invalid UTF-8.
    Returns the folder; truth labels are those of ``generate_reviews(n, seed)`` (ids: :func:`google_local_id`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = generate_reviews(n, seed)
    lines: list[bytes] = []
    for i, row in enumerate(df.itertuples(index=False)):
        user = f"1{seed:03d}{i:08d}"
        obj = {
            "user_id": user,
            "name": f"User {i}",
            "time": 1_600_000_000_000 + i * 3_600_000,
            "rating": int(row.rating),
            "text": None if i < empty else row.text,
            "pics": None,
            "resp": None,
            "gmap_id": row.gmap_id,
        }
        lines.append(json.dumps(obj).encode())
    dup = [lines[i] for i in range(empty, min(n, empty + duplicates))]
    bad = [b'{"user_id": "x", "text": "caf\xe9 \xff\xfe broken", "gmap_id": "0x0001:demo"}'] * undecodable
    # Interleave so that duplicates and bad lines sit in the middle of the file, as in real dumps.
    mid = len(lines) // 2
    body = lines[:mid] + bad + dup + lines[mid:]
    atomic_write_bytes(out / "review-Demo.json", b"\n".join(body) + b"\n")
    metas = []
    for k, (name, category, _items) in enumerate(_PLACES):
        metas.append(
            json.dumps(
                {
                    "name": name,
                    "address": f"{k + 1} Main St, Demo City",
                    "gmap_id": f"0x{k + 1:04x}:demo",
                    "category": [category, "Local business"],
                    "avg_rating": 4.1,
                    "num_of_reviews": 100 + k,
                }
            ).encode()
        )
    atomic_write_bytes(out / "meta-Demo.json", b"\n".join(metas + metas) + b"\n")
    return out


def google_local_id(gmap_id: str, index: int, seed: int = 0) -> str:
    """The id :func:`iter_reviews` gives row ``index`` of :func:`write_generated_google_local` (for tests)."""
    return f"{gmap_id}:1{seed:03d}{index:08d}:{1_600_000_000_000 + index * 3_600_000}"
