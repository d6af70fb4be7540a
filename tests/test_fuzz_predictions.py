"""Fuzzing the prediction readers: the JSON Lines reader behind ``spamguard evaluate``
(:func:`hf_spamguard.predict.read_predictions`) and :func:`hf_spamguard.verdict.validate_verdict`.

Whatever they are given (random bytes, broken quotes, numbers of every size, other encodings, odd
types), they return a valid result or raise the package's own one-line error (a ``ValueError``
subclass whose message has no newline), never another exception.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_spamguard.predict import PredictionsError, read_predictions
from hf_spamguard.verdict import DECISIONS, VerdictError, validate_verdict

# Small budgets: the module runs in a few seconds.
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON pieces that have broken readers: quotes, escapes, NaN/Infinity, huge and odd numbers, nesting.
TOKENS = [
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    '"',
    '\\"',
    "\\u0000",
    "\\ud800",
    "NaN",
    "Infinity",
    "-Infinity",
    "null",
    "true",
    "false",
    "0",
    "1",
    "-0",
    "1e999",
    "-1e-400",
    "0.5",
    "1.0000000000000002",
    str(2**63),
    str(10**22),
    "9" * 5000,
    "[" * 2000,
    '"id"',
    '"confidence"',
    '"label"',
    '"is_spam"',
    '"decision"',
    '"reason"',
    '"delete"',
    '"false"',
    '"keep"',
    "\ufeff",
    "\x00",
    "\r",
    "\n",
    "\u2028",
    "ünï 😀",
    " ",
]

json_ish = st.lists(st.sampled_from(TOKENS), max_size=12).map("".join)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from([*DECISIONS, "delete", "false", "1", "", 10**400, -(10**400)]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)

# Rows that are mostly right, so that the later checks (types, ranges, duplicates) are reached too.
good_row = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(0, 3)), "confidence": st.floats(0, 1)},
    optional={
        "label": st.sampled_from([0, 1, None]),
        "is_spam": st.booleans(),
        "decision": st.sampled_from(DECISIONS),
        "reason": st.text(max_size=10),
    },
)
row = st.one_of(
    good_row,
    good_row.flatmap(
        lambda r: st.sampled_from(sorted(r)).flatmap(lambda k: values.map(lambda v: {**r, k: v}))
    ),
    st.dictionaries(
        st.sampled_from(["id", "confidence", "label", "is_spam", "decision", "reason", "x"]),
        values,
        max_size=6,
    ),
    values,
)


def encoded_line(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=True).encode("utf-8")


line = st.one_of(
    row.map(encoded_line),
    json_ish.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    row.map(lambda r: json.dumps(r, allow_nan=True).encode("utf-16")),
    row.map(lambda r: json.dumps(r, ensure_ascii=False, allow_nan=True).encode("latin-1", "replace")),
)


def check_predictions(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.jsonl"
        path.write_bytes(data)
        try:
            rows = read_predictions(path)
        except PredictionsError as exc:
            assert "\n" not in str(exc) and "\r" not in str(exc), str(exc)
            return
    seen = set()
    for r in rows:
        assert isinstance(r, dict) and str(r["id"]) not in seen
        seen.add(str(r["id"]))
        conf = r["confidence"]
        assert (
            not isinstance(conf, bool)
            and 0 <= conf <= 1
            and not (isinstance(conf, float) and math.isnan(conf))
        )
        assert r.get("label", 0) in (0, 1) and not isinstance(r.get("label"), bool)
        assert r.get("decision", "keep") in DECISIONS and isinstance(r.get("is_spam", True), bool)


@FUZZ
@given(st.lists(line, min_size=0, max_size=6).map(lambda lines: b"\n".join(lines)))
def test_predictions_reader_never_raises_anything_else(data):
    check_predictions(data)


@FUZZ
@given(st.binary(max_size=200))
def test_predictions_reader_on_random_bytes(data):
    check_predictions(data)


# Verdict-shaped objects: the three keys with any values, plus extra keys of any hashable type.
verdict_like = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries({"is_spam": values, "confidence": values, "reason": values}),
    st.dictionaries(st.one_of(st.integers(), st.text(max_size=3), st.none()), values, max_size=2),
)


@FUZZ
@given(
    st.one_of(
        verdict_like,
        row,
        st.dictionaries(values.filter(lambda v: isinstance(v, int | str | None)), values, max_size=4),
    )
)
def test_validate_verdict_never_raises_anything_else(obj):
    try:
        validate_verdict(obj)
    except VerdictError as exc:
        assert "\n" not in str(exc) and "\r" not in str(exc), str(exc)
        return
    assert isinstance(obj["is_spam"], bool) and 0 <= obj["confidence"] <= 1 and isinstance(obj["reason"], str)


def test_known_hard_cases():
    for verdict in (
        {"is_spam": True, "confidence": 10**400, "reason": ""},  # float() of it overflows
        {"is_spam": True, "confidence": 0.5, "reason": "", 1: "x", "y": 2},  # keys that do not sort
        {"is_spam": True, "confidence": float("nan"), "reason": ""},
    ):
        try:
            validate_verdict(verdict)
        except VerdictError as exc:
            assert "\n" not in str(exc)
        else:
            raise AssertionError(f"accepted {verdict!r}")
    for data in (
        b"[" * 100_000,
        b'{"id": "a", "confidence": ' + b"9" * 5000 + b"}",
        b'{"id": "a", "confidence": 1e999}',
    ):
        check_predictions(data)
