"""Reading and validating the moderation team's listings TSV.

Every problem is reported as a :class:`DataValidationError` that names the file, the line (1-based,
as an editor shows it; the header is line 1) and the field, so that whoever produced the file can fix
it. Rows whose label disagrees with the rater-vote majority are *kept* (the label is the moderation
team's final decision) but reported: see :class:`LabelReport`.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_VOTES",
    "REQUIRED_COLUMNS",
    "DataValidationError",
    "LabelDisagreementWarning",
    "LabelReport",
    "read_listings_tsv",
]

REQUIRED_COLUMNS = ("product_id", "image_url", "description", "yes_count", "no_count", "label")
# ASCII only: ``\d`` and int() also accept other scripts' digits ("٣" would be read as 3).
_INT_RE = re.compile(r"\s*\+?([0-9]+)\s*", re.ASCII)
# yes_count / no_count are int32 in LISTING_FEATURES (not imported: that would import ``datasets``).
MAX_VOTES = 2**31 - 1
# csv's default field limit (128 KiB) is too small for some pasted descriptions.
csv.field_size_limit(16 * 1024 * 1024)


class DataValidationError(ValueError):
    """A problem in an input file, with where it is: ``file`` (name), ``line`` (1-based) and ``field``."""

    def __init__(self, file: str | Path, line: int | None, field: str | None, problem: str) -> None:
        self.file = Path(file).name if file else "<input>"
        self.path = str(file)
        self.line = line
        self.field = field
        self.problem = problem
        where = [self.file]
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {problem}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Errors cross process boundaries (datasets' num_proc workers, Ray actors): the default pickling
        # calls __init__ with the message alone and fails there, hiding the real error.
        return type(self), (self.path, self.line, self.field, self.problem)


class LabelDisagreementWarning(UserWarning):
    """Some labels disagree with the majority of the rater votes (they are kept; see LabelReport)."""


@dataclass
class LabelReport:
    """Rows whose ``label`` disagrees with the strict majority of ``yes_count`` vs ``no_count``.

    Ties (``yes == no``) have no majority and are counted separately. The rows are kept as labelled:
    the label is the team's final decision and may deliberately overrule the raters.
    """

    file: str
    rows: int
    disagreements: list[str] = field(default_factory=list, metadata={"help": "product_ids"})
    ties: list[str] = field(default_factory=list, metadata={"help": "product_ids with yes == no"})

    @property
    def n_disagreements(self) -> int:
        return len(self.disagreements)

    def summary(self, max_ids: int = 10) -> str:
        text = (
            f"{self.file}: {self.rows} rows, {self.n_disagreements} label(s) disagree with the vote majority"
        )
        if self.disagreements:
            shown = ", ".join(self.disagreements[:max_ids])
            more = f" (+{self.n_disagreements - max_ids} more)" if self.n_disagreements > max_ids else ""
            text += f" (kept as labelled): {shown}{more}"
        if self.ties:
            text += f"; {len(self.ties)} tied vote(s)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        column = raw.count(b"\t", line_start, exc.start)
        header = raw.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r").split("\t")
        name = header[column] if column < len(header) and header[column] else f"column {column + 1}"
        raise DataValidationError(
            path, line, name, f"undecodable text: byte 0x{raw[exc.start]:02x} is not valid UTF-8"
        ) from None
    return text.removeprefix("\ufeff")  # spreadsheet exports often start with a BOM


def _check_delimiter(path: Path, header_line: str) -> None:
    if "\t" in header_line:
        return
    for delimiter, name in ((",", "comma"), (";", "semicolon"), ("|", "pipe")):
        if header_line.count(delimiter) >= 3:
            raise DataValidationError(
                path,
                1,
                None,
                f"wrong delimiter: the header is {name}-separated, expected tab-separated columns "
                f"{', '.join(REQUIRED_COLUMNS)} (save the file as TSV)",
            )
    raise DataValidationError(
        path, 1, None, f"expected a tab-separated header with columns {', '.join(REQUIRED_COLUMNS)}"
    )


def _parse_count(path: Path, line: int, name: str, value: str) -> int:
    match = _INT_RE.fullmatch(value)
    if match is None:
        raise DataValidationError(
            path, line, name, f"expected a non-negative integer, got {_shorten(value)!r}"
        )
    digits = match.group(1).lstrip("0") or "0"
    # Compare lengths first: int() of thousands of digits is slow and, past 4300, raises ValueError.
    if len(digits) > len(str(MAX_VOTES)) or int(digits) > MAX_VOTES:
        raise DataValidationError(
            path,
            line,
            name,
            f"vote count {_shorten(digits)} is too large (the largest allowed is {MAX_VOTES})",
        )
    return int(digits)


def _shorten(value: str, limit: int = 40) -> str:
    """``value`` cut to ``limit`` characters, so that an error message stays one readable line."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


def read_listings_tsv(path: str | Path, *, warn: bool = True):
    """Read and validate a listings TSV; return a ``pandas.DataFrame`` with columns
    ``product_id`` (str), ``image_url`` (str), ``description`` (str), ``yes_count``/``no_count``/``label``
    (int) and ``line`` (the row's line in the file, for later error messages).

    An optional unnamed leading index column (as written by ``DataFrame.to_csv``) is dropped; extra
    named columns are ignored. The :class:`LabelReport` is in ``df.attrs["label_report"]`` and, when
    any label disagrees with the votes and ``warn`` is true, a :class:`LabelDisagreementWarning` is
    emitted.

    Raises :class:`DataValidationError` (naming file, line and field) for: a missing or empty file,
    a wrong delimiter, undecodable text, missing columns, a wrong number of fields, an empty or
    duplicate ``product_id``, votes that are not non-negative integers written in ASCII digits (``٣``
    or ``３`` are refused, not read as 3) or that exceed :data:`MAX_VOTES` (the int32 of the dataset
    features), and a label other than 0/1. Error messages are one line; long values are shortened.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    text = _decode(path, raw)
    if not text.strip():
        raise DataValidationError(path, None, None, "empty file (expected a header and at least one row)")
    header_line = text.split("\n", 1)[0].rstrip("\r")
    _check_delimiter(path, header_line)

    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataValidationError(path, 1, None, f"malformed header: {exc}") from None
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataValidationError(
            path,
            1,
            missing[0],
            f"missing column(s) {', '.join(repr(m) for m in missing)}; the header has {header}",
        )
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise DataValidationError(path, 1, dupes[0], "column appears more than once in the header")
    index = {c: header.index(c) for c in REQUIRED_COLUMNS}

    columns: dict[str, list[Any]] = {c: [] for c in (*REQUIRED_COLUMNS, "line")}
    seen: dict[str, int] = {}
    report = LabelReport(file=path.name, rows=0)
    line = reader.line_num  # the last line of the header
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataValidationError(path, reader.line_num, None, f"malformed row: {exc}") from None
        # A quoted field may span lines: the row starts after the previous row's last line.
        line, row_end = line + 1, reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            line = row_end
            continue  # blank line (e.g. a trailing newline pair)
        if len(fields) != len(header):
            raise DataValidationError(
                path,
                line,
                None,
                f"expected {len(header)} tab-separated fields like the header, got {len(fields)} "
                "(a tab inside a description must be quoted)",
            )
        values = {c: fields[i] for c, i in index.items()}
        pid = values["product_id"].strip()
        if not pid:
            raise DataValidationError(path, line, "product_id", "empty product_id")
        if pid in seen:
            raise DataValidationError(
                path, line, "product_id", f"duplicate product_id {pid!r} (first seen on line {seen[pid]})"
            )
        seen[pid] = line
        yes = _parse_count(path, line, "yes_count", values["yes_count"])
        no = _parse_count(path, line, "no_count", values["no_count"])
        label_text = values["label"].strip()
        if label_text not in ("0", "1"):
            raise DataValidationError(
                path, line, "label", f"expected 0 (not spam) or 1 (spam), got {_shorten(values['label'])!r}"
            )
        label = int(label_text)
        if yes == no:
            if yes:
                report.ties.append(pid)
        elif (yes > no) != bool(label):
            report.disagreements.append(pid)
        columns["product_id"].append(pid)
        columns["image_url"].append(values["image_url"].strip())
        columns["description"].append(values["description"])
        columns["yes_count"].append(yes)
        columns["no_count"].append(no)
        columns["label"].append(label)
        columns["line"].append(line)
        line = row_end
    if not columns["product_id"]:
        raise DataValidationError(path, None, None, "no rows: the file has a header but no listings")
    report.rows = len(columns["product_id"])
    df = pd.DataFrame(columns)
    for c in ("yes_count", "no_count", "label", "line"):
        df[c] = df[c].astype("int64")
    df.attrs["label_report"] = report
    df.attrs["source"] = str(path)
    if warn and report.disagreements:
        warnings.warn(report.summary(), LabelDisagreementWarning, stacklevel=2)
    return df
