"""Fuzzing the listings TSV reader: whatever bytes it is given, it returns a valid table or raises the
package's own one-line :class:`DataValidationError`, never another exception (and never a traceback
for the user of ``spamguard dataset build``)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_spamguard.data.tsv import MAX_VOTES, REQUIRED_COLUMNS, DataValidationError, read_listings_tsv

# Small budgets: the whole module runs in a few seconds (the reader is fast, the examples are small).
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that have broken (or could break) CSV readers: quotes, separators, line ends, NUL, BOMs,
# numbers of every shape (signs, other scripts' digits, huge, float), and non-ASCII text.
TOKENS = [
    "",
    " ",
    '"',
    '""',
    '"a\tb"',
    '"multi\nline"',
    '"unclosed',
    "\t",
    "\n",
    "\r",
    "\r\n",
    ",",
    ";",
    "|",
    "\x00",
    "\ufeff",
    "\\",
    "0",
    "1",
    "3",
    "+2",
    "-1",
    "1.5",
    "1e3",
    "007",
    "٣",
    "３",
    str(MAX_VOTES),
    str(MAX_VOTES + 1),
    str(2**63),
    str(10**22),
    "9" * 5000,
    "nan",
    "inf",
    "ünïcödé 😀",
    "\u2028",
    "\x85",
    "https://img.example/x.jpg",
    *REQUIRED_COLUMNS,
]

field_text = st.one_of(
    st.sampled_from(TOKENS),
    st.text(max_size=12),
    st.lists(st.sampled_from(TOKENS), max_size=4).map("".join),
)


numbers = st.one_of(
    st.integers(0, 10),
    st.integers(-(2**70), 2**80),
    st.sampled_from([MAX_VOTES, MAX_VOTES + 1, 2**63, 10**22]),
).map(str)
# Per column: mostly plausible values (so that rows get past the first checks and reach the later
# ones), sometimes anything at all.
COLUMN_VALUES = {
    "": st.integers(0, 99).map(str),
    "product_id": st.one_of(st.integers(0, 20).map(str), field_text),
    "image_url": field_text,
    "description": field_text,
    "yes_count": st.one_of(numbers, numbers, field_text),
    "no_count": st.one_of(numbers, numbers, field_text),
    "label": st.one_of(st.sampled_from(["0", "1", "0", "1"]), field_text),
}


@st.composite
def tsv_texts(draw: st.DrawFn) -> str:
    """A header (the required columns, maybe shuffled, maybe with an index or extra column, maybe a
    column lost) and rows of tricky fields, joined with a drawn separator and line end."""
    columns = list(draw(st.permutations(REQUIRED_COLUMNS)))
    if draw(st.booleans()):
        columns.insert(0, "")
    if draw(st.integers(0, 5)) == 0:
        columns.pop(draw(st.integers(0, len(columns) - 1)))
    if draw(st.integers(0, 5)) == 0:
        columns.append(draw(field_text))
    sep = draw(st.sampled_from(["\t", "\t", "\t", ",", ";"]))
    end = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        fields = [draw(COLUMN_VALUES.get(c, field_text)) for c in columns]
        change = draw(st.sampled_from([0, 0, 0, -1, 1]))
        fields = fields[:-1] if change < 0 else fields + [draw(field_text)] * change
        rows.append(sep.join(fields))
    return end.join([sep.join(columns), *rows]) + draw(st.sampled_from(["", end, end * 2]))


@st.composite
def valid_rows(draw: st.DrawFn) -> str:
    """A well-formed file with arbitrary (tab-free, quote-free) text in the free-text columns."""
    free = st.text(
        st.characters(blacklist_characters='\t\n\r"\x00', blacklist_categories=("Cs",)), max_size=20
    )
    header = "\t".join(REQUIRED_COLUMNS)
    rows = []
    for i in range(draw(st.integers(1, 4))):
        rows.append(
            "\t".join(
                [
                    f"id{i}",
                    draw(free),
                    draw(free),
                    str(draw(st.integers(0, MAX_VOTES))),
                    str(draw(st.integers(0, MAX_VOTES))),
                    draw(st.sampled_from(["0", "1"])),
                ]
            )
        )
    return "\n".join([header, *rows]) + "\n"


def _check(raw: bytes) -> None:
    """Run the reader on ``raw``: a valid result or a one-line DataValidationError, nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.tsv"
        path.write_bytes(raw)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                df = read_listings_tsv(path)
        except DataValidationError as exc:
            message = str(exc)
            assert message.startswith("fuzz.tsv") and "\n" not in message and "\r" not in message
            return
    assert len(df) >= 1 and df["product_id"].is_unique
    assert all(isinstance(p, str) and p for p in df["product_id"])
    assert set(df["label"]) <= {0, 1}
    for column in ("yes_count", "no_count"):
        assert str(df[column].dtype) == "int64"
        assert df[column].between(0, MAX_VOTES).all()
    assert df["line"].is_monotonic_increasing and (df["line"] >= 2).all()


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(raw: bytes) -> None:
    _check(raw)


@FUZZ
@given(tsv_texts(), st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
def test_structured_tsv_in_several_encodings(text: str, encoding: str) -> None:
    _check(text.encode(encoding, errors="replace"))


@FUZZ
@given(tsv_texts(), st.binary(max_size=8), st.integers(0, 200))
def test_bytes_spliced_into_a_tsv(text: str, junk: bytes, at: int) -> None:
    raw = text.encode("utf-8")
    at = min(at, len(raw))
    _check(raw[:at] + junk + raw[at:])


@settings(max_examples=100, deadline=None)
@given(valid_rows())
def test_well_formed_files_are_read(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ok.tsv"
        path.write_text(text, encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = read_listings_tsv(path)
    assert len(df) == text.count("\n") - 1
