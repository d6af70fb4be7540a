"""TSV validation: every kind of bad input gives a DataValidationError naming file, line and field."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from hf_spamguard.data import DataValidationError, LabelDisagreementWarning, read_listings_tsv

HEADER = "\tproduct_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"


def _row(
    i: int, pid: str, desc: str = "blue jeans size 10", yes: str = "0", no: str = "3", label: str = "0"
) -> str:
    return f"{i}\t{pid}\thttps://img.example/{pid}.jpg\t{desc}\t{yes}\t{no}\t{label}\n"


def _write(tmp_path: Path, text: str | bytes, name: str = "listings.tsv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def _error(path: Path) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        read_listings_tsv(path)
    err = info.value
    assert err.file == path.name and path.name in str(err)
    return err


def test_valid_file_roundtrip(tmp_path: Path) -> None:
    text = HEADER + _row(0, "001", yes="3", no="0", label="1") + _row(1, "002", desc='"quoted, with\ttab"')
    df = read_listings_tsv(_write(tmp_path, text))
    assert list(df["product_id"]) == ["001", "002"]  # strings: leading zeros survive
    assert list(df["label"]) == [1, 0] and list(df["yes_count"]) == [3, 0]
    assert df["description"][1] == "quoted, with\ttab"
    assert list(df["line"]) == [2, 3]
    assert df.attrs["label_report"].n_disagreements == 0


def test_without_index_column_and_with_bom(tmp_path: Path) -> None:
    text = "\ufeffproduct_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n7\t\tshoes\t2\t1\t1\n"
    df = read_listings_tsv(_write(tmp_path, text))
    assert df["product_id"].tolist() == ["7"] and df["image_url"].tolist() == [""]


def test_missing_column(tmp_path: Path) -> None:
    text = "\tproduct_id\timage_url\tdescription\tyes_count\tlabel\n0\t1\tu\td\t3\t1\n"
    err = _error(_write(tmp_path, text))
    assert err.line == 1 and err.field == "no_count"
    assert "line 1" in str(err) and "'no_count'" in str(err) and "missing column" in str(err)


def test_duplicate_product_id(tmp_path: Path) -> None:
    text = HEADER + _row(0, "11") + _row(1, "12") + _row(2, "11")
    err = _error(_write(tmp_path, text))
    assert (err.line, err.field) == (4, "product_id")
    assert "line 4" in str(err) and "duplicate product_id '11'" in str(err) and "line 2" in str(err)


@pytest.mark.parametrize(
    ("yes", "no", "field", "bad"),
    [
        ("abc", "3", "yes_count", "'abc'"),
        ("2", "-1", "no_count", "'-1'"),
        ("1.5", "2", "yes_count", "'1.5'"),
        ("", "2", "yes_count", "''"),
    ],
)
def test_bad_votes(tmp_path: Path, yes: str, no: str, field: str, bad: str) -> None:
    text = HEADER + _row(0, "1") + _row(1, "2", yes=yes, no=no)
    err = _error(_write(tmp_path, text))
    assert (err.line, err.field) == (3, field)
    assert f"line 3, field '{field}'" in str(err) and "non-negative integer" in str(err) and bad in str(err)


@pytest.mark.parametrize("label", ["2", "spam", "", "-1", "0.5"])
def test_bad_label(tmp_path: Path, label: str) -> None:
    text = HEADER + _row(0, "1") + _row(1, "2") + _row(2, "3", label=label)
    err = _error(_write(tmp_path, text))
    assert (err.line, err.field) == (4, "label") and "expected 0 (not spam) or 1 (spam)" in str(err)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    err = _error(_write(tmp_path, content))
    assert "empty file" in str(err)


def test_header_only(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, HEADER))
    assert "no rows" in str(err)


def test_wrong_delimiter_csv(tmp_path: Path) -> None:
    text = ",product_id,image_url,description,yes_count,no_count,label\n0,1,u,nice top,0,3,0\n"
    err = _error(_write(tmp_path, text, "listings.csv"))
    assert err.line == 1 and "wrong delimiter" in str(err) and "comma-separated" in str(err)
    assert str(err).startswith("listings.csv, line 1:")


def test_wrong_number_of_fields(tmp_path: Path) -> None:
    text = HEADER + _row(0, "1") + "1\t2\tu\tdescription with a stray\ttab\t0\t3\t0\n"
    err = _error(_write(tmp_path, text))
    assert err.line == 3 and "expected 7 tab-separated fields" in str(err)


def test_undecodable_text(tmp_path: Path) -> None:
    good = (HEADER + _row(0, "1")).encode()
    bad_row = b"1\t2\thttps://img.example/2.jpg\tcaf\xe9 latte jumper\t0\t3\t0\n"  # Latin-1, not UTF-8
    err = _error(_write(tmp_path, good + bad_row))
    assert (err.line, err.field) == (3, "description")
    assert "line 3, field 'description'" in str(err) and "0xe9" in str(err) and "UTF-8" in str(err)


def test_empty_product_id(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, HEADER + _row(0, "1") + _row(1, " ")))
    assert (err.line, err.field) == (3, "product_id")


def test_line_numbers_count_multiline_quoted_fields(tmp_path: Path) -> None:
    text = HEADER + _row(0, "1", desc='"two\nlines"') + _row(1, "2", label="x")
    err = _error(_write(tmp_path, text))
    assert err.line == 4  # the header, a row on lines 2-3, then the bad row


def test_label_vote_disagreements_are_reported_and_kept(tmp_path: Path) -> None:
    text = (
        HEADER
        + _row(0, "1", yes="3", no="0", label="1")
        + _row(1, "2", yes="3", no="0", label="0")  # disagrees
        + _row(2, "3", yes="1", no="2", label="1")  # disagrees
        + _row(3, "4", yes="2", no="2", label="1")  # tie: no majority
    )
    path = _write(tmp_path, text)
    with pytest.warns(LabelDisagreementWarning, match="2 label\\(s\\) disagree.*2, 3"):
        df = read_listings_tsv(path)
    assert len(df) == 4  # kept, not dropped
    report = df.attrs["label_report"]
    assert report.disagreements == ["2", "3"] and report.ties == ["4"] and report.n_disagreements == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_listings_tsv(path, warn=False)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        read_listings_tsv(tmp_path / "nope.tsv")


def test_real_data_reads_clean(depop_tsv: Path) -> None:
    df = read_listings_tsv(depop_tsv)
    assert len(df) == 1500 and df["product_id"].is_unique
    assert set(df["label"]) == {0, 1}


@pytest.mark.parametrize("vote", ["٣", "３", "৩", "3\u00a0", "\u20093"])
def test_votes_accept_ascii_digits_only(tmp_path: Path, vote: str) -> None:
    """Arabic-Indic, full-width and Bengali digits (and non-ASCII spaces) are not votes: int() would
    silently read them as 3."""
    text = HEADER + _row(0, "1") + _row(1, "2", yes=vote)
    err = _error(_write(tmp_path, text))
    assert (err.line, err.field) == (3, "yes_count") and "non-negative integer" in str(err)


@pytest.mark.parametrize("vote", ["2147483648", "3000000000", str(2**63), str(10**22), "9" * 5000])
def test_votes_above_int32_are_one_line_errors(tmp_path: Path, vote: str) -> None:
    text = HEADER + _row(0, "1") + _row(1, "2", no=vote)
    err = _error(_write(tmp_path, text))
    assert (err.line, err.field) == (3, "no_count")
    assert "too large" in str(err) and "2147483647" in str(err) and "\n" not in str(err)


def test_largest_int32_vote_and_leading_zeros_are_fine(tmp_path: Path) -> None:
    text = (
        HEADER
        + _row(0, "1", yes="2147483647", no="0", label="1")
        + _row(1, "2", yes="000000000000007", label="1")
    )
    df = read_listings_tsv(_write(tmp_path, text))
    assert list(df["yes_count"]) == [2147483647, 7]
