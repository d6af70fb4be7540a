"""Label taxonomies: multi-label policies (review moderation), their presets and YAML files.

A taxonomy is a YAML file naming labels with a definition and examples; presets ship in
``hf_spamguard/taxonomies/``. The verdicts a taxonomy's models answer with live in
:mod:`hf_spamguard.verdict` (``make_label_verdict``).

Layer 0: imports nothing from ``hf_spamguard`` but :mod:`hf_spamguard.atomic` and
:mod:`hf_spamguard.files` (lazily, to save).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_spamguard.files import TAXONOMY_FILE

__all__ = [
    "TAXONOMY_PRESETS",
    "Taxonomy",
    "TaxonomyError",
    "TaxonomyLabel",
    "load_taxonomy",
    "parse_taxonomy",
]

#: Taxonomy presets shipped with the package (``hf_spamguard/taxonomies/<name>.yaml``).
TAXONOMY_PRESETS: tuple[str, ...] = ("reviews", "listings")

_TAXONOMY_DIR = Path(__file__).resolve().parent / "taxonomies"
# Label names become JSON keys, Parquet column suffixes and file names: keep them plain identifiers.
_LABEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class TaxonomyError(ValueError):
    """A taxonomy file is malformed (the message names the file and the field)."""


@dataclass(frozen=True)
class TaxonomyLabel:
    """One policy label: its name, what it means, and example texts that carry it."""

    name: str
    definition: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    """A set of independent (multi-label) policy labels, e.g. ``advertisement``, ``irrelevant``..."""

    name: str
    description: str
    labels: tuple[TaxonomyLabel, ...]
    item: str = "review"

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)

    def __getitem__(self, name: str) -> TaxonomyLabel:
        for label in self.labels:
            if label.name == name:
                return label
        raise KeyError(
            f"taxonomy {self.name!r} has no label {name!r} (labels: {', '.join(self.label_names)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "item": self.item,
            "labels": [
                {"name": lab.name, "definition": lab.definition, "examples": list(lab.examples)}
                for lab in self.labels
            ],
        }

    def save(self, path: str | Path) -> Path:
        """Write the taxonomy as YAML (atomically), e.g. next to a model that predicts it."""
        import yaml

        from hf_spamguard.atomic import atomic_write_text

        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)
        return atomic_write_text(path, text)


def parse_taxonomy(obj: Any, source: str = "<taxonomy>") -> Taxonomy:
    """Build a :class:`Taxonomy` from parsed YAML/JSON, raising :class:`TaxonomyError` naming the field."""
    if not isinstance(obj, Mapping):
        raise TaxonomyError(
            f"{source}: expected a mapping with 'name' and 'labels', got {type(obj).__name__}"
        )
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TaxonomyError(f"{source}, field 'name': expected a non-empty string, got {name!r}")
    raw_labels = obj.get("labels")
    if not isinstance(raw_labels, list) or not raw_labels:
        raise TaxonomyError(f"{source}, field 'labels': expected a non-empty list, got {raw_labels!r}")
    labels: list[TaxonomyLabel] = []
    for i, raw in enumerate(raw_labels):
        where = f"{source}, field 'labels[{i}]"
        if not isinstance(raw, Mapping):
            raise TaxonomyError(f"{where}': expected a mapping with 'name' and 'definition'")
        lname = raw.get("name")
        if not isinstance(lname, str) or not _LABEL_NAME.match(lname):
            raise TaxonomyError(
                f"{where}.name': expected a lowercase identifier like 'rant_without_visit', got {lname!r}"
            )
        if lname in {lab.name for lab in labels}:
            raise TaxonomyError(f"{where}.name': duplicate label {lname!r}")
        definition = raw.get("definition")
        if not isinstance(definition, str) or not definition.strip():
            raise TaxonomyError(f"{where}.definition': expected a non-empty string")
        examples = raw.get("examples") or []
        if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
            raise TaxonomyError(f"{where}.examples': expected a list of strings")
        labels.append(TaxonomyLabel(lname, " ".join(definition.split()), tuple(examples)))
    description = obj.get("description") or ""
    item = obj.get("item") or "review"
    if not isinstance(description, str) or not isinstance(item, str):
        raise TaxonomyError(f"{source}: 'description' and 'item' must be strings")
    return Taxonomy(
        name=name.strip(), description=" ".join(description.split()), labels=tuple(labels), item=item
    )


def load_taxonomy(name_or_path: str | Path | Taxonomy) -> Taxonomy:
    """Load a preset (``"reviews"``, ``"listings"``) or a taxonomy YAML file."""
    if isinstance(name_or_path, Taxonomy):
        return name_or_path
    import yaml  # lazy: the ground floor must import fast

    text = str(name_or_path)
    path = _TAXONOMY_DIR / f"{text}.yaml" if text in TAXONOMY_PRESETS else Path(text)
    if path.is_dir():
        path = path / TAXONOMY_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"taxonomy {text!r} not found: give a preset ({', '.join(TAXONOMY_PRESETS)}) or a YAML file"
        )
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: invalid YAML: {exc}") from exc
    return parse_taxonomy(obj, source=str(path))
