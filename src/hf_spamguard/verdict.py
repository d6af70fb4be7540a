"""The verdict schema: the one shape every model in the package answers with.

A verdict is ``{"is_spam": bool, "confidence": float in [0, 1], "reason": str}``, plus ``"decision"``
(``keep`` / ``review`` / ``demote``) when a threshold policy is applied. ``confidence`` is always the
calibrated probability of spam computed by the package, never a number a model typed.

This module is the ground floor of the package: it imports nothing from ``hf_spamguard``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

#: Binary label names for listing keyword spam, in ``ClassLabel`` order (0 = not_spam, 1 = spam).
LABEL_NAMES: tuple[str, str] = ("not_spam", "spam")

#: Keys of a verdict, in serialisation order.
VERDICT_KEYS: tuple[str, str, str] = ("is_spam", "confidence", "reason")

#: Decisions of the threshold policy, from least to most severe.
DECISIONS: tuple[str, str, str] = ("keep", "review", "demote")

#: Longest ``reason`` kept, in characters.
MAX_REASON_CHARS = 200

VERDICT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ListingSpamVerdict",
    "type": "object",
    "properties": {
        "is_spam": {"type": "boolean"},
        "confidence": {"type": "number", "minimum": 0.0, "maximum": 1.0},
        "reason": {"type": "string", "maxLength": MAX_REASON_CHARS, "pattern": "^[^\\n\\r]*$"},
        "decision": {"type": "string", "enum": list(DECISIONS)},
    },
    "required": list(VERDICT_KEYS),
    "additionalProperties": False,
}

_WHITESPACE = re.compile(r"\s+")


class VerdictError(ValueError):
    """A verdict does not follow the schema."""


def clean_reason(text: str | None) -> str:
    """Make ``text`` a valid ``reason``: one line, no control characters, at most 200 characters."""
    if not text:
        return ""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 1].rstrip() + "…"
    return text


def make_verdict(
    confidence: float,
    reason: str | None = "",
    *,
    is_spam: bool | None = None,
    decision: str | None = None,
) -> dict[str, Any]:
    """Build a schema-valid verdict.

    ``is_spam`` defaults to ``confidence >= 0.5`` (the argmax of the two renormalised label
    probabilities). ``decision`` is added only when given (a policy was applied).
    """
    confidence = float(confidence)
    if math.isnan(confidence):
        raise VerdictError("confidence is NaN")
    confidence = min(1.0, max(0.0, confidence))
    verdict: dict[str, Any] = {
        "is_spam": bool(confidence >= 0.5) if is_spam is None else bool(is_spam),
        "confidence": confidence,
        "reason": clean_reason(reason),
    }
    if decision is not None:
        if decision not in DECISIONS:
            raise VerdictError(f"decision must be one of {DECISIONS}, got {decision!r}")
        verdict["decision"] = decision
    return verdict


def validate_verdict(obj: Mapping[str, Any]) -> None:
    """Raise :class:`VerdictError` unless ``obj`` is a verdict exactly as the schema says."""
    if not isinstance(obj, Mapping):
        raise VerdictError(f"verdict must be an object, got {type(obj).__name__}")
    keys = set(obj)
    allowed = set(VERDICT_KEYS) | {"decision"}
    if missing := set(VERDICT_KEYS) - keys:
        raise VerdictError(f"verdict is missing {sorted(missing)}")
    if extra := keys - allowed:
        raise VerdictError(f"verdict has unexpected keys {sorted(extra, key=repr)}")  # keys of any type
    if not isinstance(obj["is_spam"], bool):
        raise VerdictError("is_spam must be a boolean")
    conf = obj["confidence"]
    # compared as is: float() of a huge int overflows, and NaN fails the comparison
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0.0 <= conf <= 1.0:
        raise VerdictError(f"confidence must be a number in [0, 1], got {conf!r}")
    reason = obj["reason"]
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS or "\n" in reason or "\r" in reason:
        raise VerdictError("reason must be a single line of at most 200 characters")
    if "decision" in obj and obj["decision"] not in DECISIONS:
        raise VerdictError(f"decision must be one of {DECISIONS}")


def verdict_to_json(verdict: Mapping[str, Any]) -> str:
    """Serialise a verdict (validated first) as one line of JSON."""
    validate_verdict(verdict)
    return json.dumps(dict(verdict), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------------
# Multi-label verdicts (review moderation). A *label verdict* is ``{"labels": {name: probability},
# "flags": [names at or above their threshold, in taxonomy order], "reason": str}``; probabilities are
# computed by the package (teacher logits or student classifier), never typed by a model.
# ---------------------------------------------------------------------------------------------------

#: Keys of a multi-label verdict, in serialisation order.
LABEL_VERDICT_KEYS: tuple[str, str, str] = ("labels", "flags", "reason")


def make_label_verdict(
    probabilities: Mapping[str, float],
    thresholds: Mapping[str, float] | float = 0.5,
    reason: str | None = "",
) -> dict[str, Any]:
    """Build a multi-label verdict; a label is flagged when its probability is >= its threshold."""
    labels: dict[str, float] = {}
    flags: list[str] = []
    for name, p in probabilities.items():
        p = float(p)
        if math.isnan(p):
            raise VerdictError(f"probability of {name!r} is NaN")
        p = min(1.0, max(0.0, p))
        labels[name] = p
        thr = thresholds if isinstance(thresholds, int | float) else thresholds.get(name, 0.5)
        if p >= float(thr):
            flags.append(name)
    return {"labels": labels, "flags": flags, "reason": clean_reason(reason)}


def validate_label_verdict(
    obj: Mapping[str, Any], label_names: tuple[str, ...] | list[str] | None = None
) -> None:
    """Raise :class:`VerdictError` unless ``obj`` is a multi-label verdict (for ``label_names`` if given)."""
    if not isinstance(obj, Mapping) or set(obj) != set(LABEL_VERDICT_KEYS):
        raise VerdictError(f"label verdict must have exactly the keys {list(LABEL_VERDICT_KEYS)}")
    labels = obj["labels"]
    if not isinstance(labels, Mapping):
        raise VerdictError("labels must map label names to probabilities")
    if label_names is not None and list(labels) != list(label_names):
        raise VerdictError(f"labels must be {list(label_names)}, got {list(labels)}")
    for name, p in labels.items():
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
            raise VerdictError(f"probability of {name!r} must be a number in [0, 1], got {p!r}")
    flags = obj["flags"]
    if not isinstance(flags, list) or any(f not in labels for f in flags) or len(set(flags)) != len(flags):
        raise VerdictError("flags must be a list of distinct label names")
    reason = obj["reason"]
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS or "\n" in reason or "\r" in reason:
        raise VerdictError("reason must be a single line of at most 200 characters")


def label_verdict_json_schema(taxonomy: Any) -> dict[str, Any]:
    """The JSON Schema of the multi-label verdict for ``taxonomy`` (a :class:`~hf_spamguard.taxonomy.Taxonomy`)."""
    names = list(taxonomy.label_names)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{taxonomy.name.capitalize()}LabelVerdict",
        "type": "object",
        "properties": {
            "labels": {
                "type": "object",
                "properties": {n: {"type": "number", "minimum": 0.0, "maximum": 1.0} for n in names},
                "required": names,
                "additionalProperties": False,
            },
            "flags": {"type": "array", "items": {"enum": names}, "uniqueItems": True},
            "reason": {"type": "string", "maxLength": MAX_REASON_CHARS, "pattern": "^[^\\n\\r]*$"},
        },
        "required": list(LABEL_VERDICT_KEYS),
        "additionalProperties": False,
    }
