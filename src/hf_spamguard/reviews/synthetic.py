"""A deterministic generated set of place reviews with truth labels, as tables or in Google Local layout.

Used by the tests, the benchmarks and the demo: the same ``(n, seed)`` always gives the same rows,
whatever chunk size a caller streams them in. About a third of the rows violate at least one policy of
the ``reviews`` taxonomy (:data:`GENERATED_LABELS`); labels overlap (an ad can also be spam).
:func:`write_generated_google_local` writes them as messy as real dumps are (duplicates, rating-only
reviews, invalid UTF-8), so that :func:`hf_spamguard.reviews.data.iter_reviews` is tested on them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.atomic import atomic_path, atomic_write_bytes
from hf_spamguard.reviews.data import REVIEW_COLUMNS, TABLE_SUFFIXES

__all__ = [
    "GENERATED_LABELS",
    "generate_reviews",
    "google_local_id",
    "iter_generated_reviews",
    "write_generated_google_local",
    "write_generated_reviews",
]

#: Labels of the generated review set (the ``reviews`` taxonomy); truth columns are ``true_<label>``.
GENERATED_LABELS: tuple[str, ...] = ("advertisement", "irrelevant", "rant_without_visit", "spam")

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
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
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
