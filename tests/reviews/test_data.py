"""Review moderation, ground floor: taxonomies, label verdicts, review readers, the generated review set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hf_spamguard.data.tsv import DataValidationError
from hf_spamguard.prompts import student_texts
from hf_spamguard.reviews.data import (
    REVIEW_COLUMNS,
    count_reviews,
    iter_reviews,
    read_reviews,
    unlabellable_reason,
)
from hf_spamguard.reviews.synthetic import (
    GENERATED_LABELS,
    generate_reviews,
    google_local_id,
    write_generated_google_local,
    write_generated_reviews,
)
from hf_spamguard.taxonomy import TAXONOMY_PRESETS, TaxonomyError, load_taxonomy
from hf_spamguard.verdict import (
    VerdictError,
    label_verdict_json_schema,
    make_label_verdict,
    validate_label_verdict,
)


def test_presets_load_and_round_trip(tmp_path: Path) -> None:
    reviews = load_taxonomy("reviews")
    assert reviews.label_names == ("advertisement", "irrelevant", "rant_without_visit", "spam")
    assert all(label.definition and label.examples for label in reviews.labels)
    assert load_taxonomy("listings").label_names == ("spam",)
    assert set(TAXONOMY_PRESETS) == {"reviews", "listings"}
    saved = reviews.save(tmp_path / "t.yaml")
    assert load_taxonomy(saved) == reviews
    assert load_taxonomy(tmp_path / "t.yaml").to_dict() == reviews.to_dict()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: x\nlabels: []\n", "'labels'"),
        ("labels:\n  - name: ok\n    definition: d\n", "'name'"),
        ("name: x\nlabels:\n  - name: Bad Name\n    definition: d\n", "labels[0].name"),
        (
            "name: x\nlabels:\n  - name: a\n    definition: d\n  - name: a\n    definition: e\n",
            "labels[1].name",
        ),
        ("name: x\nlabels:\n  - name: a\n", "labels[0].definition"),
    ],
)
def test_bad_taxonomy_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TaxonomyError, match="bad.yaml") as err:
        load_taxonomy(path)
    assert field in str(err.value)


def test_unknown_taxonomy_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="reviews, listings"):
        load_taxonomy("no-such-taxonomy")


def test_label_verdict_flags_follow_thresholds() -> None:
    v = make_label_verdict(
        {"advertisement": 0.7, "spam": 0.2, "irrelevant": 1.3}, {"advertisement": 0.8, "spam": 0.1}
    )
    assert v == {
        "labels": {"advertisement": 0.7, "spam": 0.2, "irrelevant": 1.0},
        "flags": ["spam", "irrelevant"],
        "reason": "",
    }
    validate_label_verdict(v, ["advertisement", "spam", "irrelevant"])
    with pytest.raises(VerdictError):
        validate_label_verdict({**v, "flags": ["nope"]})
    with pytest.raises(VerdictError):
        validate_label_verdict(v, ["spam"])
    with pytest.raises(VerdictError):
        make_label_verdict({"a": float("nan")})
    schema = label_verdict_json_schema(load_taxonomy("reviews"))
    assert schema["properties"]["labels"]["required"] == list(load_taxonomy("reviews").label_names)


def test_google_local_reader_joins_dedups_and_records_bad_rows(tmp_path: Path) -> None:
    folder = write_generated_google_local(tmp_path / "gl", n=40, seed=3, duplicates=6, empty=2, undecodable=1)
    df = read_reviews(folder, chunk_size=7)
    assert list(df.columns) == list(REVIEW_COLUMNS)
    truth = generate_reviews(40, seed=3)
    # 40 unique reviews (6 duplicates removed) + 1 undecodable line kept with its reason.
    assert len(df) == 41 and df["id"].is_unique
    bad = df[df["error"].notna()]
    assert (
        len(bad) == 1
        and "undecodable" in bad["error"].iloc[0]
        and bad["id"].iloc[0].startswith("review-Demo.json:")
    )
    good = df[df["error"].isna()].set_index("id")
    ids = [google_local_id(g, i, seed=3) for i, g in enumerate(truth["gmap_id"])]
    assert sorted(good.index) == sorted(ids)
    row = good.loc[ids[5]]
    assert row["text"] == truth["text"].iloc[5] and row["place_name"] == truth["place_name"].iloc[5]
    assert row["category"].startswith(truth["category"].iloc[5])  # joined on gmap_id from meta-*.json
    assert good.loc[ids[0], "text"] is None or pd.isna(good.loc[ids[0], "text"])  # rating-only review
    assert unlabellable_reason(good.loc[ids[0]].to_dict()) == "no text"
    assert unlabellable_reason(bad.iloc[0].to_dict()).startswith("line ")
    assert count_reviews(folder) == 41
    # chunks have exactly chunk_size rows (the last may be shorter): labelling relies on it for shards.
    assert [len(c) for c in iter_reviews(folder, chunk_size=16)] == [16, 16, 9]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_table_readers_agree_with_the_generator(tmp_path: Path, suffix: str) -> None:
    path = write_generated_reviews(tmp_path / f"r{suffix}", n=120, seed=2, chunk_size=50)
    df = read_reviews(path, chunk_size=33, keep_columns=["true_spam"])
    truth = generate_reviews(120, seed=2)
    assert df["id"].tolist() == truth["id"].tolist()
    assert df["text"].tolist() == truth["text"].tolist()
    assert np.allclose(df["rating"].to_numpy(float), truth["rating"].to_numpy(float))
    assert df["error"].isna().all()
    assert count_reviews(path) == 120


def test_table_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,body\n1,hello\n")
    with pytest.raises(DataValidationError, match=r"x\.csv.*'text'"):
        read_reviews(path)
    raw = tmp_path / "y.csv"
    raw.write_bytes(b"id,text\n1,fine\n2,caf\xe9 \xff\n")
    df = read_reviews(raw)
    assert df["error"].iloc[0] is None and "line 3" in df["error"].iloc[1] and "'text'" in df["error"].iloc[1]


def test_generated_set_is_deterministic_and_chunk_independent() -> None:
    a = generate_reviews(25_000, seed=7)
    b = pd.concat(
        [generate_reviews(9_000, seed=7), generate_reviews(16_000, seed=7, start=9_000)], ignore_index=True
    )
    pd.testing.assert_frame_equal(a, b)
    rates = a[[f"true_{n}" for n in GENERATED_LABELS]].mean()
    assert ((rates > 0.05) & (rates < 0.15)).all()
    assert not a["text"].str.strip().eq("").any()


def test_student_texts_carry_place_context() -> None:
    df = generate_reviews(3, seed=0)
    texts = student_texts(df)
    assert texts[0].startswith(df["text"].iloc[0]) and df["category"].iloc[0] in texts[0]
    assert student_texts(df[["text"]]) == df["text"].tolist()


def test_taxonomy_json_roundtrip_via_manifest_style_dict() -> None:
    from hf_spamguard.taxonomy import parse_taxonomy

    t = load_taxonomy("reviews")
    assert parse_taxonomy(json.loads(json.dumps(t.to_dict()))) == t


def test_a_reviewer_name_column_is_not_taken_for_the_place(tmp_path: Path) -> None:
    # Review exports call the reviewer "name"; only explicit place columns give the place context.
    path = tmp_path / "reviews.csv"
    pd.DataFrame(
        {"review_id": ["a", "b"], "review_text": ["great", "bad"], "name": ["Ann", "Bob"], "stars": [5, 1]}
    ).to_csv(path, index=False)
    df = read_reviews(path)
    assert df["place_name"].isna().all() and list(df["rating"]) == [5.0, 1.0]
    pd.DataFrame({"id": ["a"], "text": ["great"], "name": ["Ann"], "business_name": ["Cafe X"]}).to_csv(
        path, index=False
    )
    assert read_reviews(path)["place_name"].tolist() == ["Cafe X"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_repeated_id_in_a_table_is_refused_with_its_place(tmp_path: Path, suffix: str) -> None:
    df = pd.DataFrame({"id": ["a", "b", "c", "b"], "text": ["one", "two", "three", "four"]})
    path = tmp_path / f"reviews{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path)
    where = "line 5" if suffix == ".csv" else "row 4"
    with pytest.raises(DataValidationError, match="duplicate id 'b'") as err:
        read_reviews(path, chunk_size=2)  # the repeat is in a later chunk than the first occurrence
    assert str(err.value).startswith(f"reviews{suffix}") and where in str(err.value)
    assert err.value.field == "id"
    # across the files of a folder too
    folder = tmp_path / "folder"
    folder.mkdir()
    df.iloc[:2].to_csv(folder / "part1.csv", index=False)
    df.iloc[1:3].to_csv(folder / "part2.csv", index=False)
    with pytest.raises(DataValidationError, match="part2.csv, line 2, field 'id'"):
        read_reviews(folder)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty.csv: the file is empty"),
        ("empty.tsv", b"", "empty.tsv: the file is empty"),
        ("bad.parquet", b"not parquet at all", "bad.parquet: cannot read the table"),
    ],
)
def test_unreadable_tables_are_one_line_naming_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataValidationError, match=message) as err:
        read_reviews(path)
    assert "\n" not in str(err.value)
