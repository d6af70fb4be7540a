"""Batch scoring's Arrow path: the CSV/TSV/Parquet reader without pandas, the student texts and the
featurisation over Arrow arrays, and the output written as the parts are. Each must give exactly what
the pandas path gives (the readers' rules, their error messages, the probabilities, the output bytes)."""

from __future__ import annotations

import csv
import io
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hf_spamguard.data.tsv import DataValidationError
from hf_spamguard.prompts import student_texts, student_texts_arrow
from hf_spamguard.reviews import batch
from hf_spamguard.reviews.batch import _frame_inputs, _table_inputs, score_reviews
from hf_spamguard.reviews.data import (
    SCORE_COLUMNS,
    SeenIds,
    _frame_to_table,
    arrow_readable,
    iter_review_tables,
    iter_reviews,
    read_reviews,
)
from hf_spamguard.reviews.synthetic import write_generated_reviews

# Values that trip readers: quotes, separators, line breaks, blanks of every kind, U+FFFD, non-ASCII.
_PIECES = ["great", "bad, really", 'said "wow"', "two\nlines", "tab\there", " ", "", "\u3000", "\x1c", "\ufffd",
           "café ☕", "NA", "null", "  padded  ", "#tag", "ok\r\nok", "日本語のレビュー", "\u00a0"]  # fmt: skip


def _random_rows(rng: random.Random, n: int) -> list[list[str]]:
    def value() -> str:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 3)))

    return [[f"id{i}", value(), rng.choice(["5", "", "x"]), value(), value()] for i in range(n)]


def _tables_of_frames(source: Path, chunk_size: int) -> list[pa.Table]:
    return [_frame_to_table(df) for df in iter_reviews(source, chunk_size=chunk_size)]


def _same_as_pandas(source: Path, chunk_size: int = 7) -> list[pa.Table]:
    assert arrow_readable(source)
    fast = list(iter_review_tables(source, chunk_size=chunk_size))
    slow = _tables_of_frames(source, chunk_size)
    assert [t.num_rows for t in fast] == [t.num_rows for t in slow]
    for a, b in zip(fast, slow, strict=True):
        assert a.column_names == list(SCORE_COLUMNS)
        assert a.to_pylist() == b.to_pylist()
    return fast


@pytest.mark.parametrize("seed", range(4))
def test_the_arrow_reader_reads_random_csv_and_tsv_as_the_pandas_reader(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    rows = _random_rows(rng, 60)
    header = ["id", "text", "rating", "place_name", "category"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator=rng.choice(["\n", "\r\n"])).writerows([header, *rows])
    (tmp_path / "r.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")
    _same_as_pandas(tmp_path / "r.csv")
    tsv = "\n".join("\t".join(v.replace("\t", " ").replace("\n", " ").replace("\r", " ") for v in r)
                    for r in [header, *rows]) + "\n"  # fmt: skip
    (tmp_path / "r.tsv").write_text(tsv, encoding="utf-8")
    _same_as_pandas(tmp_path / "r.tsv")
    pd.DataFrame(rows, columns=header).replace("", None).to_parquet(tmp_path / "r.parquet")
    _same_as_pandas(tmp_path / "r.parquet")


@pytest.mark.parametrize(
    "content",
    [
        b"id,text,place_name\n1,hi\n2,yo,Cafe\n",  # a short row: pandas fills it, Arrow stops
        b"id,text\n1,hi\n   \n2,yo\n",  # a blank-looking line
        b"id,text\n1,hi,\n",  # one field too many: pandas takes the first as the index
        b"id,text,text\n1,a,b\n",  # repeated names: pandas renames the second
        b"text\nfine\ncaf\xe9 \xff\nok\n",  # not UTF-8: pandas replaces, the row gets its error
        b"\xef\xbb\xbfid,text\n1,with a BOM\n",
        b"id,review_text,business_name\n1,aliases,Cafe X\n",
        b'id,text\n1,"two\nlines"\n2,"the last\nalso"\n',  # a line break in the last field: quotes counted
        b"id,text\n1,no line break at the end",
        b'id,text\n1,a "literal" quote\n2,"closed"',
        b"id,text\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(40)) + b"40,\xff\n",  # late stop
    ],
)
def test_the_arrow_reader_hands_what_it_may_read_differently_to_the_pandas_reader(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    _same_as_pandas(path, chunk_size=4)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"id,body\n1,hello\n", "no review text column"),
        (b"id,text\na,x\nb,y\na,z\n", "duplicate id 'a'"),
        (b"id,text\na,x\n,y\n", "line 3, field 'id': empty id"),
        (b'id,text\n1,"never closed\n', "cannot read the table"),  # Arrow would read it to the end
        (b'id,text\n1,fine\n2,"never closed', "cannot read the table"),
    ],
)
def test_the_arrow_reader_raises_the_pandas_readers_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataValidationError, match=message) as fast:
        list(iter_review_tables(path, chunk_size=2))
    with pytest.raises(DataValidationError) as slow:
        list(iter_reviews(path, chunk_size=2))
    assert str(fast.value) == str(slow.value)


def test_a_folder_of_tables_keeps_prefixes_and_refuses_an_id_repeated_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("text\none\ntwo\n")
    (tmp_path / "b.parquet").write_bytes(b"")
    pd.DataFrame({"text": ["three", None]}).to_parquet(tmp_path / "b.parquet")
    tables = _same_as_pandas(tmp_path, chunk_size=3)
    assert pa.concat_tables(tables)["id"].to_pylist() == ["a.csv:0", "a.csv:1", "b.parquet:0", "b.parquet:1"]
    (tmp_path / "c.csv").write_text("id,text\nx,1\n")
    (tmp_path / "d.csv").write_text("id,text\ny,1\nx,2\n")
    for f in ("a.csv", "b.parquet"):
        (tmp_path / f).unlink()
    with pytest.raises(DataValidationError, match="d.csv, line 3, field 'id': duplicate id 'x'"):
        list(iter_review_tables(tmp_path))


def test_an_empty_id_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    # it was an AttributeError ('float' object has no attribute 'encode')
    (tmp_path / "r.csv").write_text("id,text\n1,a\n,b\n")
    with pytest.raises(DataValidationError, match="r.csv, line 3, field 'id': empty id"):
        read_reviews(tmp_path / "r.csv")


def test_seen_ids_finds_the_first_repeat_as_a_set_would() -> None:
    rng = np.random.default_rng(0)
    seen, truth = SeenIds(), set()
    for _ in range(300):
        keys = rng.integers(0, 2**63, rng.integers(0, 50), dtype=np.int64).astype(np.uint64)
        if rng.random() < 0.2 and truth:
            keys = np.r_[keys, np.uint64(rng.choice(sorted(truth)))]
        if rng.random() < 0.1 and keys.size:
            keys = np.r_[keys, keys[:1]]
        expected = -1
        local: set[int] = set()
        for i, k in enumerate(keys.tolist()):
            if k in truth or k in local:
                expected = i
                break
            local.add(k)
        assert seen.add(keys) == expected
        if expected < 0:
            truth |= local
    assert sum(r.size for r in seen.runs) == len(truth) and len(seen.runs) <= 10


def test_student_texts_and_inputs_are_the_same_from_arrow_and_from_pandas() -> None:
    rng = random.Random(1)
    rows = _random_rows(rng, 400)
    df = pd.DataFrame(rows, columns=["id", "text", "rating", "place_name", "category"]).replace("", None)
    df["error"] = [None if i % 37 else "line 9: undecodable bytes" for i in range(len(df))]
    table = _frame_to_table(df)
    arrow = student_texts_arrow(table["text"], table["place_name"], table["category"]).to_pylist()
    assert arrow == student_texts(df)
    assert student_texts_arrow(table["text"]).to_pylist() == student_texts(df[["text"]])
    a, b = _table_inputs(table), _frame_inputs(df)
    assert np.array_equal(a.usable, b.usable) and 0 < a.usable.sum() < len(df)
    for field in ("ids", "student", "error"):
        assert getattr(a, field).to_pylist() == getattr(b, field).to_pylist(), field
    usable = pa.array(a.usable)  # the text is read for the report's examples, of scored rows only
    assert a.text.filter(usable).to_pylist() == b.text.filter(usable).to_pylist()


def test_featurising_an_arrow_array_scores_exactly_as_strings(review_student_dir: Path) -> None:
    from hf_spamguard.reviews.student import load_student

    student = load_student(review_student_dir)
    texts = [t for r in _random_rows(random.Random(2), 300) for t in r[1:2]] + [None, ""]
    as_strings = student.predict_proba(["" if t is None else t for t in texts])
    arr = pa.array(texts, pa.string())
    assert np.array_equal(student.predict_arrow(arr), as_strings)
    assert np.array_equal(student.predict_arrow(arr, chunk_size=17), as_strings)  # chunking changes nothing


def test_the_arrow_path_writes_the_bytes_the_pandas_path_writes(
    review_student_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_generated_reviews(tmp_path / "in.csv", n=3000, seed=4)
    fast, slow = tmp_path / "fast.parquet", tmp_path / "slow.parquet"
    score_reviews(review_student_dir, src, fast, chunk_size=700, n_jobs=2, progress=False)
    real = batch.iter_reviews
    monkeypatch.setattr(batch, "iter_reviews", lambda *a, **k: real(*a, **{**k, "arrow": False}))
    score_reviews(review_student_dir, src, slow, chunk_size=700, n_jobs=1, progress=False)
    assert fast.read_bytes() == slow.read_bytes()
    assert fast.with_suffix(".html").read_text() == slow.with_suffix(".html").read_text()
    assert pq.ParquetFile(fast).metadata.num_row_groups == 5


def test_a_run_killed_mid_way_resumes_into_the_same_file(
    review_student_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_generated_reviews(tmp_path / "in.csv", n=2000, seed=6)
    clean, out = tmp_path / "clean.parquet", tmp_path / "out.parquet"
    score_reviews(review_student_dir, src, clean, chunk_size=300, n_jobs=2, report=False, progress=False)
    real = batch._write_part

    def dies_at_part_four(parts, k, table):
        if k == 4:
            raise KeyboardInterrupt
        real(parts, k, table)

    monkeypatch.setattr(batch, "_write_part", dies_at_part_four)
    with pytest.raises(KeyboardInterrupt):
        score_reviews(review_student_dir, src, out, chunk_size=300, n_jobs=2, report=False, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".out.parquet.*"))  # the output's temp file went
    assert len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet"))) == 4
    monkeypatch.setattr(batch, "_write_part", real)
    result = score_reviews(
        review_student_dir, src, out, chunk_size=300, n_jobs=2, report=False, progress=False
    )
    assert result.rows == 2000 and result.rows_scored_now == 2000 - 4 * 300
    assert out.read_bytes() == clean.read_bytes()


def test_loading_a_student_imports_neither_skops_nor_sklearn(review_student_dir: Path) -> None:
    # skops imports scikit-learn and SciPy (1-2 s): most of a whole `spamguard score` process's start-up
    code = (
        "import sys; from hf_spamguard.reviews.student import load_student; "
        f"load_student({str(review_student_dir)!r}); "
        "print(sorted(m for m in ('skops', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_plain_reader_loads_what_skops_loads(review_student_dir: Path, tmp_path: Path) -> None:
    import skops.io as sio

    from hf_spamguard.baseline.persistence import _load_plain, skops_types

    def same(a, b) -> bool:
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list | tuple):
            return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
        if isinstance(a, np.ndarray):
            return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
        return type(a) is type(b) and a == b

    path = review_student_dir / "model.skops"
    assert same(_load_plain(path), sio.load(path, trusted=sorted(skops_types(path))))
    state = {"a": [1, 2.5, "x", True, None, (1, 2)], "b": {"c": np.arange(3.0)}}
    (tmp_path / "s.skops").write_bytes(sio.dumps(state))
    assert same(_load_plain(tmp_path / "s.skops"), state)
    (tmp_path / "t.skops").write_bytes(sio.dumps({"x": np.float64(2.0), "d": np.dtype("float32")}))
    assert _load_plain(tmp_path / "t.skops") is None  # not plain: left to skops
